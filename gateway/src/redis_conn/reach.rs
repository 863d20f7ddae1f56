//! Which Redis nodes answer, node by node: the one standalone server, or each
//! master of a Redis Cluster with the hash slots it serves. A call that gets no
//! answer marks the node that owns its key's slot; data-plane calls for a slot
//! whose node is marked are refused at once (the caller applies its outage
//! policy) while the other nodes' slots carry on. A node is marked reachable
//! again by the next call it answers or by the state monitor's probe. No I/O
//! here: `redis_conn` reports, `probe` feeds the cluster's slot map.

use arc_swap::ArcSwap;
use redis::{Arg, Cmd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// No node is known to serve the slot.
const NOBODY: u16 = u16::MAX;

/// How long after a node is back (or its slots have a new master) the quotas
/// of its slots keep their outage policy: every replica notices the return
/// within the monitor's poll of an unreachable node (100 ms) and lands the
/// usage it admitted meanwhile, so that none reserves against a window the
/// others' outage usage is not in yet.
pub const SETTLE_MS: u64 = 300;

/// The hash slot of a hash tag's content (`t:acme` for `gw:{t:acme}:...`).
pub fn tag_slot(tag: &str) -> u16 {
    crc16::State::<crc16::XMODEM>::calculate(tag.as_bytes()) % SLOTS
}

/// The hash slot of a key: its hash tag (the first non-empty `{...}`), or the
/// whole key when it has none, as Redis Cluster computes it.
pub fn key_slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&c| c == b'{').and_then(|open| {
        let rest = key.get(open + 1..)?;
        let close = rest.iter().position(|&c| c == b'}')?;
        rest.get(..close).filter(|t| !t.is_empty())
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(key)) % SLOTS
}

/// The slot of the first key a command names, when that key carries a hash tag
/// (every key the gateway writes does); None for commands without one
/// (`PUBLISH`, `PING`, `SCRIPT LOAD`, `CLUSTER ...`).
pub fn cmd_slot(cmd: &Cmd) -> Option<u16> {
    let mut args = cmd.args_iter().map(|a| match a {
        Arg::Simple(b) => b,
        _ => &[][..],
    });
    let name = args.next()?;
    let key = if name.eq_ignore_ascii_case(b"EVALSHA") || name.eq_ignore_ascii_case(b"EVAL") {
        let _script = args.next()?;
        let keys = args.next()?;
        if keys == b"0" {
            return None;
        }
        args.next()?
    } else {
        args.next()?
    };
    let open = key.iter().position(|&c| c == b'{')?;
    key.get(open + 1..)?
        .iter()
        .position(|&c| c == b'}')
        .filter(|&close| close > 0)?;
    Some(key_slot(key))
}

/// One Redis node as the data plane sees it.
pub struct Node {
    /// `host:port`
    pub addr: String,
    down: AtomicBool,
    /// ms on the [`Reach`] clock when it last became reachable again (0: never
    /// was unreachable)
    back_at: AtomicU64,
}

impl Node {
    fn new(addr: String) -> Arc<Node> {
        Arc::new(Node {
            addr,
            down: AtomicBool::new(false),
            back_at: AtomicU64::new(0),
        })
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }
}

/// Which node serves each slot.
struct Topology {
    /// index into `nodes` per slot, [`NOBODY`] when unknown; empty for a
    /// standalone server (node 0 serves everything)
    owner: Vec<u16>,
    nodes: Vec<Arc<Node>>,
}

pub struct Reach {
    cluster: bool,
    topology: ArcSwap<Topology>,
    /// how many times a node became unreachable (a change tells "some node
    /// was out since")
    outages: AtomicU64,
    /// woken whenever a node becomes reachable again
    pub back: tokio::sync::Notify,
    clock: Instant,
}

impl Reach {
    /// A standalone server at `addr`.
    pub fn single(addr: String) -> Reach {
        Reach::new(
            false,
            Topology {
                owner: Vec::new(),
                nodes: vec![Node::new(addr)],
            },
        )
    }

    /// A cluster whose slot map is not known yet (until [`Reach::set_slots`]).
    pub fn cluster() -> Reach {
        Reach::new(
            true,
            Topology {
                owner: Vec::new(),
                nodes: Vec::new(),
            },
        )
    }

    fn new(cluster: bool, t: Topology) -> Reach {
        Reach {
            cluster,
            topology: ArcSwap::from_pointee(t),
            outages: AtomicU64::new(0),
            back: tokio::sync::Notify::new(),
            clock: Instant::now(),
        }
    }

    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// ms since this replica started (the clock of [`Reach::back_at`]).
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Runs `f` on the node a call on `slot` goes to: the standalone server
    /// whatever the slot; on a cluster the slot's master, if known. (No
    /// reference count is touched: this runs on every Redis call.)
    fn with_node<R>(&self, slot: Option<u16>, f: impl FnOnce(&Arc<Node>) -> R) -> Option<R> {
        let t = self.topology.load();
        let n = if self.cluster {
            let i = *t.owner.get(usize::from(slot?))?;
            t.nodes.get(usize::from(i))?
        } else {
            t.nodes.first()?
        };
        Some(f(n))
    }

    /// The node a call on `slot` goes to, see [`Reach::down`].
    #[cfg(test)]
    fn node(&self, slot: Option<u16>) -> Option<Arc<Node>> {
        self.with_node(slot, Arc::clone)
    }

    /// The node of `slot` if it is known to be unreachable.
    pub fn down(&self, slot: Option<u16>) -> Option<Arc<Node>> {
        self.with_node(slot, |n| n.is_down().then(|| n.clone()))
            .flatten()
    }

    /// Whether the node serving hash slot `slot` is known to be unreachable.
    pub fn is_slot_down(&self, slot: u16) -> bool {
        self.with_node(Some(slot), |n| n.is_down()) == Some(true)
    }

    /// Whether the node serving hash tag `tag` is known to be unreachable.
    pub fn is_tag_down(&self, tag: &str) -> bool {
        self.is_slot_down(tag_slot(tag))
    }

    /// When the node serving `tag` last became reachable again (ms on
    /// [`Reach::now_ms`]); 0 when it never was out.
    pub fn back_at(&self, tag: &str) -> u64 {
        self.with_node(Some(tag_slot(tag)), |n| n.back_at.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// Whether the node serving `tag` came back (or took over the slots of an
    /// unreachable node) less than [`SETTLE_MS`] ago.
    pub fn is_settling(&self, tag: &str) -> bool {
        let back = self.back_at(tag);
        back > 0 && self.now_ms().saturating_sub(back) < SETTLE_MS
    }

    /// True while any node is known to be unreachable.
    pub fn any_down(&self) -> bool {
        self.topology.load().nodes.iter().any(|n| n.is_down())
    }

    pub fn outages(&self) -> u64 {
        self.outages.load(Ordering::Relaxed)
    }

    /// Every node with whether it is unreachable, by address.
    pub fn nodes(&self) -> Vec<(String, bool)> {
        let mut v: Vec<(String, bool)> = self
            .topology
            .load()
            .nodes
            .iter()
            .map(|n| (n.addr.clone(), n.is_down()))
            .collect();
        v.sort();
        v
    }

    /// Addresses of the nodes (masters of a cluster) as last known.
    pub fn addrs(&self) -> Vec<String> {
        self.topology
            .load()
            .nodes
            .iter()
            .map(|n| n.addr.clone())
            .collect()
    }

    /// What a call on `slot` found: the node answered or not.
    pub fn report(&self, slot: Option<u16>, reachable: bool, why: &dyn std::fmt::Display) {
        self.with_node(slot, |n| self.set(n, reachable, why));
    }

    /// What a probe of the node at `addr` found.
    pub fn report_node(&self, addr: &str, reachable: bool, why: &dyn std::fmt::Display) {
        let t = self.topology.load();
        if let Some(n) = t.nodes.iter().find(|n| n.addr == addr) {
            self.set(n, reachable, why);
        }
    }

    fn set(&self, n: &Node, reachable: bool, why: &dyn std::fmt::Display) {
        // read first: every call reports, and the flag changes rarely
        if n.is_down() != reachable {
            return;
        }
        let was_down = n.down.swap(!reachable, Ordering::Relaxed);
        if was_down != reachable {
            return;
        }
        let what = if self.cluster { "Redis node" } else { "Redis" };
        if reachable {
            n.back_at.store(self.now_ms().max(1), Ordering::Relaxed);
            tracing::info!(node = %n.addr, "state backend: {what} is reachable again");
            self.back.notify_waiters();
        } else {
            self.outages.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(node = %n.addr, error = %why, "state backend: {what} is unreachable");
        }
    }

    /// Whether the slot map `ranges` gives a slot another master than the
    /// current map does (a replica promoted, a slot migrated): calls on that
    /// slot must not keep going where they went.
    pub fn moves(&self, ranges: &[(u16, u16, String)]) -> bool {
        if !self.cluster {
            return false;
        }
        let t = self.topology.load();
        ranges.iter().any(|(first, last, addr)| {
            (*first..=(*last).min(SLOTS - 1)).any(|s| {
                t.owner
                    .get(usize::from(s))
                    .and_then(|&o| t.nodes.get(usize::from(o)))
                    .is_some_and(|n| n.addr != *addr)
            })
        })
    }

    /// The cluster's slot map: (first slot, last slot, master `host:port`).
    /// Nodes keep their state across maps; a node that serves no slot any more
    /// (a master replaced by its replica) is forgotten.
    pub fn set_slots(&self, ranges: &[(u16, u16, String)]) {
        if !self.cluster {
            return;
        }
        let old = self.topology.load();
        let mut nodes: Vec<Arc<Node>> = Vec::new();
        let mut owner = vec![NOBODY; usize::from(SLOTS)];
        // the slots of an unreachable master that another one serves now: that
        // one counts as back (its replica was promoted)
        let mut took_over: Vec<u16> = Vec::new();
        for (first, last, addr) in ranges {
            let i = match nodes.iter().position(|n| &n.addr == addr) {
                Some(i) => i,
                None => {
                    let n = old
                        .nodes
                        .iter()
                        .find(|n| &n.addr == addr)
                        .cloned()
                        .unwrap_or_else(|| Node::new(addr.clone()));
                    nodes.push(n);
                    nodes.len() - 1
                }
            };
            let Ok(i) = u16::try_from(i) else { continue };
            for s in *first..=(*last).min(SLOTS - 1) {
                if let Some(o) = owner.get_mut(usize::from(s)) {
                    *o = i;
                }
                let was = old
                    .owner
                    .get(usize::from(s))
                    .and_then(|&o| old.nodes.get(usize::from(o)));
                if was.is_some_and(|w| w.is_down() && w.addr != *addr) && !took_over.contains(&i) {
                    took_over.push(i);
                }
            }
        }
        let same = old.nodes.len() == nodes.len()
            && old.owner == owner
            && old.nodes.iter().zip(&nodes).all(|(a, b)| Arc::ptr_eq(a, b));
        if same {
            return;
        }
        let gone: Vec<&str> = old
            .nodes
            .iter()
            .filter(|o| !nodes.iter().any(|n| Arc::ptr_eq(n, o)))
            .map(|o| o.addr.as_str())
            .collect();
        tracing::info!(
            masters = ?nodes.iter().map(|n| n.addr.as_str()).collect::<Vec<_>>(),
            gone = ?gone,
            "state backend: Redis Cluster slot map changed"
        );
        let now = self.now_ms().max(1);
        for &i in &took_over {
            if let Some(n) = nodes.get(usize::from(i)) {
                n.back_at.store(now, Ordering::Relaxed);
            }
        }
        self.topology.store(Arc::new(Topology { owner, nodes }));
        if !took_over.is_empty() {
            // the settlements set aside for those slots can go now
            self.back.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_as_redis_computes_them() {
        // CLUSTER KEYSLOT of each (Redis 7)
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"gw:{t:acme}:tenant"), key_slot(b"{t:acme}"));
        assert_eq!(key_slot(b"{t:acme}"), tag_slot("t:acme"));
        assert_eq!(key_slot(b"{}x"), key_slot(b"{}x"));
        assert_ne!(key_slot(b"{}x"), key_slot(b"x"));
        assert_eq!(
            key_slot(b"{user1000}.following"),
            key_slot(b"{user1000}.followers")
        );
    }

    #[test]
    fn the_slot_of_a_command_is_its_first_tagged_key() {
        assert_eq!(
            cmd_slot(redis::cmd("HGETALL").arg("gw:{k:ab}")),
            Some(tag_slot("k:ab"))
        );
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha
            .arg("0123")
            .arg(2)
            .arg("gw:{t:x}:qlease")
            .arg("gw:{t:x}:qkeys");
        assert_eq!(cmd_slot(&evalsha), Some(tag_slot("t:x")));
        assert_eq!(
            cmd_slot(redis::cmd("PUBLISH").arg("gw:changes").arg("m")),
            None
        );
        assert_eq!(cmd_slot(redis::cmd("SCRIPT").arg("LOAD").arg("{1}")), None);
        assert_eq!(cmd_slot(&redis::cmd("PING")), None);
    }

    #[test]
    fn a_first_map_moves_nothing() {
        let r = Reach::cluster();
        assert!(!r.moves(&[(0, 16383, "a:1".into())]));
        assert!(!Reach::single("h:1".into()).moves(&[(0, 16383, "a:1".into())]));
    }

    #[test]
    fn a_standalone_server_is_one_node() {
        let r = Reach::single("h:1".into());
        assert!(!r.any_down());
        r.report(None, false, &"refused");
        assert!(r.down(Some(5)).is_some() && r.is_tag_down("t:a") && r.any_down());
        assert_eq!(r.outages(), 1);
        r.report(Some(9), true, &"");
        assert!(!r.any_down());
        assert!(r.back_at("t:a") > 0);
        assert!(r.is_settling("t:a"));
    }

    #[test]
    fn a_cluster_node_out_leaves_the_other_slots_alone() {
        let r = Reach::cluster();
        // no map yet: nothing is attributed
        r.report(Some(1), false, &"x");
        assert!(!r.any_down());
        r.set_slots(&[
            (0, 5460, "a:1".into()),
            (5461, 10922, "b:1".into()),
            (10923, 16383, "c:1".into()),
        ]);
        let (on_a, on_c) = (Some(100), Some(16000));
        r.report(on_a, false, &"timeout");
        assert!(r.down(on_a).is_some() && r.down(on_c).is_none());
        assert_eq!(
            r.nodes(),
            [
                ("a:1".into(), true),
                ("b:1".into(), false),
                ("c:1".into(), false)
            ]
        );
        // the same map again keeps the state
        r.set_slots(&[
            (0, 5460, "a:1".into()),
            (5461, 10922, "b:1".into()),
            (10923, 16383, "c:1".into()),
        ]);
        assert!(r.down(on_a).is_some());
        assert!(!r.is_settling("x"));
        // a's replica took over: a is forgotten, its slots are served again,
        // by a node that settles what was served meanwhile
        let promoted = [
            (0, 5460, "a2:1".to_string()),
            (5461, 10922, "b:1".into()),
            (10923, 16383, "c:1".into()),
        ];
        assert!(r.moves(&promoted));
        assert!(!r.moves(&[(5461, 10922, "b:1".into())]));
        r.set_slots(&promoted);
        assert!(!r.moves(&promoted));
        assert!(r.down(on_a).is_none() && !r.any_down());
        let tag_on = |want: u16| {
            (0..)
                .map(|i| format!("t:{i}"))
                .find(|t| {
                    r.node(Some(tag_slot(t)))
                        .is_some_and(|n| r.node(Some(want)).is_some_and(|m| Arc::ptr_eq(&n, &m)))
                })
                .unwrap_or_default()
        };
        assert!(r.is_settling(&tag_on(100)));
        assert!(!r.is_settling(&tag_on(16000)));
        assert_eq!(r.nodes().len(), 3);
        // a probe of a node not in the map changes nothing
        r.report_node("a:1", false, &"refused");
        assert!(!r.any_down());
        r.report_node("c:1", false, &"refused");
        assert!(r.down(on_c).is_some());
        assert_eq!(r.outages(), 2);
    }
}
