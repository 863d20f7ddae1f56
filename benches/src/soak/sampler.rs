//! One sample of the soak: per replica its resident memory, open file
//! descriptors and tokio tasks (with its auth cache size, to explain growth),
//! and Redis's memory and key count.

use super::fleet::Fleet;
use crate::{fd_count, rss_kib, status_kib, tcp_sockets};
use gateway_tests::metrics::Scrape;
use std::sync::Arc;

/// A replica at one instant (`None`: could not be read).
#[derive(Debug, Clone, Default)]
pub struct ReplicaSample {
    pub rss_kib: Option<u64>,
    /// the anonymous part of `rss_kib` (the heap, stacks): what a leak grows;
    /// the rest is mostly the binary's pages
    pub anon_kib: Option<u64>,
    pub fds: Option<u64>,
    /// `gateway_tokio_alive_tasks`
    pub tasks: Option<f64>,
    /// `gateway_auth_cache_entries`
    pub auth_cache: Option<f64>,
    /// `gateway_quota_bypassed_total`: admitted unchecked, Redis not answering
    /// in time (each such request's usage leaves an `S` tombstone)
    pub bypassed: Option<f64>,
    /// the FDs by what they are
    pub fd_kinds: Option<FdKinds>,
}

/// A replica's file descriptors by what they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FdKinds {
    /// connections of clients to the data listener
    pub clients: u64,
    /// connections to the upstream (the mock)
    pub upstream: u64,
    /// connections to Redis (the pool, the pub/sub subscription)
    pub redis: u64,
    /// everything else: listeners, admin connections, files, the runtime's
    pub other: u64,
}

impl FdKinds {
    /// Classifies the sockets of `pid` (whose data listener is on
    /// `listen_port`) by their ports.
    fn of(
        pid: u32,
        total: u64,
        listen_port: u16,
        upstream_port: u16,
        redis_port: u16,
    ) -> Option<FdKinds> {
        let mut k = FdKinds::default();
        for (local, remote, listening) in tcp_sockets(pid)? {
            if listening {
                continue;
            }
            if local == listen_port {
                k.clients += 1;
            } else if remote == upstream_port {
                k.upstream += 1;
            } else if remote == redis_port {
                k.redis += 1;
            }
        }
        k.other = total.saturating_sub(k.clients + k.upstream + k.redis);
        Some(k)
    }
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

/// Everything at one instant.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// seconds since the traffic started
    pub t_s: f64,
    /// taken while the traffic ran (false: the one after it stopped)
    pub under_load: bool,
    pub replicas: Vec<ReplicaSample>,
    /// `INFO memory` `used_memory`, bytes
    pub redis_used: Option<u64>,
    /// `DBSIZE`
    pub redis_keys: Option<u64>,
    /// members of every quota lease zset (reservations held, tombstones)
    pub lease_members: Option<u64>,
    /// requests finished so far
    pub requests: u64,
    /// the machine's 1-minute load average (other work on it shows here)
    pub load1: Option<f64>,
}

/// Takes a sample of `fleet` (Redis through `redis-cli`, off the runtime's
/// workers).
pub async fn take(fleet: &Arc<Fleet>, t_s: f64, under_load: bool, requests: u64) -> Sample {
    let mut replicas = Vec::new();
    for gw in &fleet.gateways {
        // /proc first: the scrape's own connection is not among the FDs
        let pid = gw.pid();
        let (rss_kib, fds) = (rss_kib(pid), fd_count(pid));
        let fd_kinds = fds.and_then(|total| {
            FdKinds::of(
                pid,
                total,
                port_of(gw.listen_addr()),
                fleet.mock.port(),
                fleet.redis.port(),
            )
        });
        let scrape = Scrape::try_from_url(&gw.admin_url()).await.ok();
        let gauge = |name: &str| scrape.as_ref().and_then(|s| s.value(name, &[]).ok());
        replicas.push(ReplicaSample {
            rss_kib,
            anon_kib: status_kib(pid, "RssAnon"),
            fds,
            tasks: gauge("gateway_tokio_alive_tasks"),
            auth_cache: gauge("gateway_auth_cache_entries"),
            bypassed: gauge("gateway_quota_bypassed_total"),
            fd_kinds,
        });
    }
    let f = fleet.clone();
    let (redis_used, redis_keys, lease_members) = tokio::task::spawn_blocking(move || {
        let used = f
            .redis
            .try_cli(&["INFO", "memory"])
            .ok()
            .and_then(|info| crate::stats::info_number(&info, "used_memory"))
            .map(|v| v as u64);
        let keys = f
            .redis
            .try_cli(&["DBSIZE"])
            .ok()
            .and_then(|n| n.trim().parse().ok());
        let leases = f
            .redis
            .try_cli(&["EVAL", LEASE_CARD, "0"])
            .ok()
            .and_then(|n| n.trim().parse().ok());
        (used, keys, leases)
    })
    .await
    .unwrap_or((None, None, None));
    Sample {
        t_s,
        under_load,
        replicas,
        redis_used,
        redis_keys,
        lease_members,
        requests,
        load1: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next()?.parse().ok()),
    }
}

/// Lists every key with its `MEMORY USAGE` in one call (a script: SCAN in
/// Redis, no round trip per key).
const KEYS_WITH_MEMORY: &str = "local out = {} local cursor = '0' repeat \
local r = redis.call('SCAN', cursor, 'COUNT', 1000) cursor = r[1] \
for _, k in ipairs(r[2]) do out[#out + 1] = k out[#out + 1] = redis.call('MEMORY', 'USAGE', k) or 0 end \
until cursor == '0' return out";

/// The members of every quota lease zset together.
const LEASE_CARD: &str = "local n = 0 local cursor = '0' repeat \
local r = redis.call('SCAN', cursor, 'MATCH', '*qlease', 'COUNT', 1000) cursor = r[1] \
for _, k in ipairs(r[2]) do n = n + redis.call('ZCARD', k) end until cursor == '0' return n";

/// Per quota lease zset: its key, the reservations it holds (of which past
/// their lease), its `E` and `S` tombstones (see lua/quota_lib).
const LEASE_MEMBERS: &str =
    "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000) \
local out = {} local cursor = '0' repeat \
local r = redis.call('SCAN', cursor, 'MATCH', '*qlease', 'COUNT', 1000) cursor = r[1] \
for _, k in ipairs(r[2]) do local held, late, e, s = 0, 0, 0, 0 \
local m = redis.call('ZRANGE', k, 0, -1, 'WITHSCORES') \
for i = 1, #m, 2 do local first = string.match(m[i], '^[^\\n]*') \
if first == 'E' then e = e + 1 elseif first == 'S' then s = s + 1 \
else held = held + 1 if tonumber(m[i + 1]) < now then late = late + 1 end end end \
out[#out + 1] = k .. ' ' .. held .. ' ' .. late .. ' ' .. e .. ' ' .. s end \
until cursor == '0' return out";

/// A quota lease zset's members by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseMembers {
    pub key: String,
    /// reservations not settled yet
    pub held: u64,
    /// of which past their lease (their replica never settled them)
    pub late: u64,
    /// `E` tombstones: leases that ended, their reservation given back
    pub ended: u64,
    /// `S` tombstones: usage charged without a reservation
    pub charged: u64,
}

/// Every quota lease zset's members by kind.
pub async fn lease_members(fleet: &Arc<Fleet>) -> Result<Vec<LeaseMembers>, String> {
    let f = fleet.clone();
    let text = tokio::task::spawn_blocking(move || f.redis.try_cli(&["EVAL", LEASE_MEMBERS, "0"]))
        .await
        .map_err(|e| e.to_string())??;
    let mut out: Vec<LeaseMembers> = text
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let [key, held, late, ended, charged] = w.as_slice() else {
                return None;
            };
            Some(LeaseMembers {
                key: key.to_string(),
                held: held.parse().ok()?,
                late: late.parse().ok()?,
                ended: ended.parse().ok()?,
                charged: charged.parse().ok()?,
            })
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// Redis's keys grouped by kind (the key with its digests as `<hex>` and its
/// numbers as `#`): (kind, keys, bytes), most memory first.
pub async fn key_kinds(fleet: &Arc<Fleet>) -> Result<Vec<(String, u64, u64)>, String> {
    let f = fleet.clone();
    let text =
        tokio::task::spawn_blocking(move || f.redis.try_cli(&["EVAL", KEYS_WITH_MEMORY, "0"]))
            .await
            .map_err(|e| e.to_string())??;
    Ok(group_keys(&text))
}

/// `redis-cli`'s lines (key, bytes, key, bytes, ...) grouped by kind.
fn group_keys(text: &str) -> Vec<(String, u64, u64)> {
    let mut groups: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let [key, bytes] = pair else { continue };
        let e = groups.entry(kind_of(key)).or_insert((0, 0));
        e.0 += 1;
        e.1 += bytes.trim().parse::<u64>().unwrap_or(0);
    }
    let mut out: Vec<(String, u64, u64)> =
        groups.into_iter().map(|(k, (n, b))| (k, n, b)).collect();
    out.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    out
}

/// A key with its runs of 16 or more hex digits as `<hex>` and the other
/// runs of digits as `#`.
fn kind_of(key: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 16 {
            out.push_str("<hex>");
        } else if !run.is_empty() {
            let mut digits = false;
            for c in run.chars() {
                if c.is_ascii_digit() {
                    if !digits {
                        out.push('#');
                    }
                    digits = true;
                } else {
                    out.push(c);
                    digits = false;
                }
            }
        }
        run.clear();
    };
    for c in key.chars() {
        if c.is_ascii_hexdigit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::{group_keys, kind_of};

    #[test]
    fn keys_are_grouped_by_kind() {
        assert_eq!(
            kind_of("gw:{t:soak}:q:per-user:u123:42"),
            "gw:{t:soak}:q:per-user:u#:#"
        );
        assert_eq!(
            kind_of("gw:{k:0123456789abcdef0123456789abcdef}"),
            "gw:{k:<hex>}"
        );
        // short hex-looking words keep their letters
        assert_eq!(kind_of("gw:{h:mock}:bad"), "gw:{h:mock}:bad");
        let g = group_keys("a:1\n100\na:2\n50\nb\n10\n");
        assert_eq!(
            g,
            vec![("a:#".to_string(), 2, 150), ("b".to_string(), 1, 10)]
        );
    }
}
