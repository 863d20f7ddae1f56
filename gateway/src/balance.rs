//! Instance choice for one request. Instances are taken by priority (lowest number
//! first); within a priority the algorithm orders the healthy ones: `roundrobin`
//! (smooth weighted), `chash` (weighted rendezvous hashing on a request key: a key
//! stays on its instance, and only the keys of an instance that leaves move) or
//! `least_busy` (fewest requests in flight across the fleet, per unit of weight).
//! Ejected instances are left out; when every instance is ejected, all are tried,
//! the least recently ejected first (panic mode).

use crate::providers::Provider;
use http::{HeaderMap, HeaderName};
use shared::config::Algorithm;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub struct Instance {
    pub provider: Arc<Provider>,
    pub priority: i32,
    pub weight: u32,
}

/// What `chash` hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashOn {
    /// `tenant/consumer` of the caller
    Consumer,
    Ip,
    Header(HeaderName),
    Cookie(String),
}

impl HashOn {
    /// None for a value that is none of `consumer`, `ip`, `header:<name>`, `cookie:<name>`.
    pub fn parse(s: &str) -> Option<HashOn> {
        match s {
            "consumer" => Some(HashOn::Consumer),
            "ip" => Some(HashOn::Ip),
            _ => {
                if let Some(h) = s.strip_prefix("header:") {
                    HeaderName::from_bytes(h.trim().as_bytes())
                        .ok()
                        .map(HashOn::Header)
                } else {
                    s.strip_prefix("cookie:")
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .map(|c| HashOn::Cookie(c.to_string()))
                }
            }
        }
    }

    /// The request's key; the client address when the chosen value is missing.
    pub fn key(&self, consumer: Option<&str>, headers: &HeaderMap, ip: IpAddr) -> Vec<u8> {
        let found = match self {
            HashOn::Consumer => consumer.map(|c| c.as_bytes().to_vec()),
            HashOn::Ip => None,
            HashOn::Header(h) => headers.get(h).map(|v| v.as_bytes().to_vec()),
            HashOn::Cookie(name) => cookie(headers, name).map(|v| v.as_bytes().to_vec()),
        };
        found.unwrap_or_else(|| ip.to_string().into_bytes())
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub struct Balancer {
    instances: Vec<Instance>,
    groups: Vec<Group>,
    algorithm: Algorithm,
    pub hash_on: HashOn,
    /// per instance: the seed of its rendezvous hash (from the provider id)
    seeds: Vec<u64>,
    /// rotates ties between equally busy instances
    ties: AtomicUsize,
}

struct Group {
    /// indexes into `instances`, in config order
    members: Vec<usize>,
    /// smooth weighted round-robin sequence of positions in `members`
    schedule: Vec<usize>,
    next: AtomicUsize,
}

/// What one pick needs to know about the instances (by index).
pub struct Inputs<'a> {
    /// when the instance's current ejection began, if it is ejected
    pub ejected: &'a dyn Fn(usize) -> Option<u64>,
    /// requests in flight at the instance across the fleet (`least_busy`)
    pub busy: &'a dyn Fn(usize) -> i64,
    /// the request's key (`chash`)
    pub key: &'a [u8],
}

/// The instances to try, in order.
pub struct Plan {
    pub order: Vec<usize>,
    /// every instance was ejected: they are all tried anyway
    pub panic: bool,
}

impl Balancer {
    /// `instances` must be non-empty with weights >= 1 (validated by the route).
    pub fn new(instances: Vec<Instance>, algorithm: Algorithm, hash_on: HashOn) -> Balancer {
        let mut priorities: Vec<i32> = instances.iter().map(|i| i.priority).collect();
        priorities.sort_unstable();
        priorities.dedup();
        let groups = priorities
            .into_iter()
            .map(|prio| {
                let members: Vec<usize> = (0..instances.len())
                    .filter(|&i| instances[i].priority == prio)
                    .collect();
                let weights: Vec<u32> = members.iter().map(|&i| instances[i].weight).collect();
                Group {
                    schedule: smooth_wrr(&weights),
                    members,
                    next: AtomicUsize::new(0),
                }
            })
            .collect();
        let seeds = instances
            .iter()
            .map(|i| xxhash_rust::xxh3::xxh3_64(i.provider.id.as_bytes()))
            .collect();
        Balancer {
            instances,
            groups,
            algorithm,
            hash_on,
            seeds,
            ties: AtomicUsize::new(0),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn instance(&self, i: usize) -> &Instance {
        &self.instances[i]
    }

    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    /// The order in which this request tries instances: the healthy ones of each
    /// priority group as the algorithm orders them, then the next group.
    pub fn plan(&self, inp: &Inputs<'_>) -> Plan {
        let mut order = Vec::with_capacity(self.instances.len());
        for g in &self.groups {
            let healthy = |i: usize| (inp.ejected)(i).is_none();
            match self.algorithm {
                Algorithm::Roundrobin => self.round_robin(g, &healthy, &mut order),
                Algorithm::Chash => self.by_hash(g, &healthy, inp.key, &mut order),
                Algorithm::LeastBusy => self.least_busy(g, &healthy, inp.busy, &mut order),
            }
        }
        if !order.is_empty() {
            return Plan {
                order,
                panic: false,
            };
        }
        // every instance is out: the one ejected longest ago is the likeliest back
        order.extend(0..self.instances.len());
        order.sort_by_key(|&i| (inp.ejected)(i).unwrap_or(0));
        Plan { order, panic: true }
    }

    fn round_robin(&self, g: &Group, ok: &dyn Fn(usize) -> bool, out: &mut Vec<usize>) {
        let n = g.members.len();
        let len = g.schedule.len();
        // the weighted pick; an ejected one is drawn past (its turns go round the
        // schedule, so the healthy ones keep their weighted shares)
        let first = (0..len)
            .map(|_| g.schedule[g.next.fetch_add(1, Ordering::Relaxed) % len])
            .find(|&m| ok(g.members[m]))
            .or_else(|| (0..n).find(|&m| ok(g.members[m])));
        let Some(first) = first else {
            return;
        };
        out.extend(
            (0..n)
                .map(|k| g.members[(first + k) % n])
                .filter(|&i| ok(i)),
        );
    }

    fn by_hash(&self, g: &Group, ok: &dyn Fn(usize) -> bool, key: &[u8], out: &mut Vec<usize>) {
        let start = out.len();
        out.extend(g.members.iter().copied().filter(|&i| ok(i)));
        // weighted rendezvous: -ln(u) / weight, smallest first
        let rank = |i: usize| {
            let h = xxhash_rust::xxh3::xxh3_64_with_seed(key, self.seeds[i]);
            let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            -u.ln() / f64::from(self.instances[i].weight)
        };
        out[start..].sort_by(|&a, &b| rank(a).total_cmp(&rank(b)));
    }

    fn least_busy(
        &self,
        g: &Group,
        ok: &dyn Fn(usize) -> bool,
        busy: &dyn Fn(usize) -> i64,
        out: &mut Vec<usize>,
    ) {
        let start = out.len();
        let n = g.members.len();
        // equally busy instances take turns
        let turn = self.ties.fetch_add(1, Ordering::Relaxed);
        out.extend((0..n).map(|k| g.members[(turn + k) % n]).filter(|&i| ok(i)));
        let load = |i: usize| busy(i).max(0) as f64 / f64::from(self.instances[i].weight);
        out[start..].sort_by(|&a, &b| load(a).total_cmp(&load(b)));
    }
}

/// nginx's smooth weighted round-robin, unrolled into one cycle of picks.
fn smooth_wrr(weights: &[u32]) -> Vec<usize> {
    let g = weights.iter().copied().fold(0, gcd).max(1);
    let w: Vec<i64> = weights.iter().map(|&x| i64::from(x / g)).collect();
    let total: i64 = w.iter().sum();
    let mut current = vec![0i64; w.len()];
    let mut out = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        let mut best = 0;
        for i in 0..w.len() {
            current[i] += w[i];
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        out.push(best);
    }
    out
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_sequence() {
        assert_eq!(smooth_wrr(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(smooth_wrr(&[2, 2]), vec![0, 1]);
        assert_eq!(smooth_wrr(&[8, 2]).len(), 5);
        let s = smooth_wrr(&[3, 1]);
        assert_eq!(s.iter().filter(|&&i| i == 0).count(), 3);
    }

    fn balancer(spec: &[(&str, i32, u32)], algorithm: Algorithm) -> Balancer {
        let instances = spec
            .iter()
            .map(|(id, priority, weight)| Instance {
                provider: Arc::new(crate::providers::Provider::mock_for_tests(id)),
                priority: *priority,
                weight: *weight,
            })
            .collect();
        Balancer::new(instances, algorithm, HashOn::Consumer)
    }

    fn pick(b: &Balancer, ejected: &[usize], key: &[u8]) -> Plan {
        let ej = |i: usize| ejected.contains(&i).then_some(10 + i as u64);
        let busy = |_: usize| 0;
        b.plan(&Inputs {
            ejected: &ej,
            busy: &busy,
            key,
        })
    }

    #[test]
    fn roundrobin_skips_ejected_and_falls_to_the_next_priority() {
        let b = balancer(
            &[("a", 0, 1), ("b", 0, 1), ("c", 1, 1)],
            Algorithm::Roundrobin,
        );
        let firsts: Vec<usize> = (0..4).map(|_| pick(&b, &[], b"").order[0]).collect();
        assert_eq!(firsts, vec![0, 1, 0, 1]);
        for _ in 0..4 {
            assert_eq!(pick(&b, &[0], b"").order, vec![1, 2]);
        }
        // with one of three ejected, the other two keep equal shares
        let b3 = balancer(
            &[("a", 0, 1), ("b", 0, 1), ("c", 0, 1)],
            Algorithm::Roundrobin,
        );
        let mut seen = [0; 3];
        for _ in 0..300 {
            seen[pick(&b3, &[0], b"").order[0]] += 1;
        }
        assert_eq!(seen, [0, 150, 150]);
        let p = pick(&b, &[0, 1], b"");
        assert_eq!((p.order, p.panic), (vec![2], false));
        // all out: panic, least recently ejected (smallest since) first
        let p = pick(&b, &[0, 1, 2], b"");
        assert_eq!((p.order, p.panic), (vec![0, 1, 2], true));
    }

    #[test]
    fn chash_is_stable_and_moves_only_the_keys_of_a_leaving_instance() {
        let b = balancer(
            &[("a", 0, 1), ("b", 0, 1), ("c", 0, 1), ("d", 0, 1)],
            Algorithm::Chash,
        );
        let keys: Vec<String> = (0..2000).map(|k| format!("tenant/consumer-{k}")).collect();
        let before: Vec<usize> = keys
            .iter()
            .map(|k| pick(&b, &[], k.as_bytes()).order[0])
            .collect();
        let again: Vec<usize> = keys
            .iter()
            .map(|k| pick(&b, &[], k.as_bytes()).order[0])
            .collect();
        assert_eq!(before, again);
        for i in 0..4 {
            let share = before.iter().filter(|&&x| x == i).count();
            assert!(
                (350..650).contains(&share),
                "instance {i} has {share} of 2000"
            );
        }
        let after: Vec<usize> = keys
            .iter()
            .map(|k| pick(&b, &[2], k.as_bytes()).order[0])
            .collect();
        for (x, y) in before.iter().zip(&after) {
            if *x != 2 {
                assert_eq!(x, y, "a key of a staying instance moved");
            } else {
                assert_ne!(*y, 2);
            }
        }
    }

    #[test]
    fn chash_follows_weights() {
        let b = balancer(&[("a", 0, 3), ("b", 0, 1)], Algorithm::Chash);
        let on_a = (0..4000)
            .filter(|k| pick(&b, &[], format!("k{k}").as_bytes()).order[0] == 0)
            .count();
        assert!(
            (2800..3200).contains(&on_a),
            "{on_a} of 4000 on the weight-3 instance"
        );
    }

    #[test]
    fn least_busy_takes_the_idlest_per_weight() {
        let b = balancer(
            &[("a", 0, 1), ("b", 0, 1), ("c", 0, 2)],
            Algorithm::LeastBusy,
        );
        let ej = |_: usize| None;
        let busy = |i: usize| [5, 1, 4][i];
        let p = b.plan(&Inputs {
            ejected: &ej,
            busy: &busy,
            key: b"",
        });
        assert_eq!(p.order, vec![1, 2, 0]);
        // ties take turns
        let idle = |_: usize| 0;
        let firsts: std::collections::HashSet<usize> = (0..6)
            .map(|_| {
                b.plan(&Inputs {
                    ejected: &ej,
                    busy: &idle,
                    key: b"",
                })
                .order[0]
            })
            .collect();
        assert_eq!(firsts.len(), 3);
    }

    #[test]
    fn hash_on_parses_and_finds_cookies() {
        assert_eq!(HashOn::parse("consumer"), Some(HashOn::Consumer));
        assert_eq!(HashOn::parse("cookie:"), None);
        assert_eq!(HashOn::parse("nope"), None);
        let mut h = HeaderMap::new();
        h.insert(http::header::COOKIE, "a=1; session=xyz".parse().unwrap());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let c = HashOn::parse("cookie:session").unwrap();
        assert_eq!(c.key(None, &h, ip), b"xyz");
        assert_eq!(HashOn::Consumer.key(None, &h, ip), b"10.0.0.1");
    }
}
