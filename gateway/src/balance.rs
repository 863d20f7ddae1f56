//! Instance choice for one request: priority groups (lowest number first), smooth
//! weighted round-robin inside a group, then the group's other members and the next
//! groups as fallback order. Shared health will filter this order (later issue).

use crate::providers::Provider;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub struct Instance {
    pub provider: Arc<Provider>,
    pub priority: i32,
    pub weight: u32,
}

pub struct Balancer {
    instances: Vec<Instance>,
    groups: Vec<Group>,
}

struct Group {
    /// indexes into `instances`, in config order
    members: Vec<usize>,
    /// smooth weighted round-robin sequence of positions in `members`
    schedule: Vec<usize>,
    next: AtomicUsize,
}

impl Balancer {
    /// `instances` must be non-empty with weights >= 1 (validated by the route).
    pub fn new(instances: Vec<Instance>) -> Balancer {
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
        Balancer { instances, groups }
    }

    pub fn instance(&self, i: usize) -> &Instance {
        &self.instances[i]
    }

    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    /// The order in which this request tries instances: for each priority group, the
    /// weighted pick first, then the group's other members, then the next group.
    pub fn plan(&self) -> Vec<usize> {
        let mut order = Vec::with_capacity(self.instances.len());
        for g in &self.groups {
            let n = g.members.len();
            let start = if g.schedule.is_empty() {
                0
            } else {
                g.schedule[g.next.fetch_add(1, Ordering::Relaxed) % g.schedule.len()]
            };
            order.extend((0..n).map(|k| g.members[(start + k) % n]));
        }
        order
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
}
