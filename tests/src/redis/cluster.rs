//! Redis Cluster for the tests: [`RedisCluster`] (three masters, with or
//! without a replica each), [`key_slot`] (the hash slot of a key) and
//! [`ClusterNode`] (a line of `CLUSTER NODES`). Its nodes are the parent
//! module's `Node`s with cluster options.

use super::{
    cli_bin, redis_cli, redis_cli_timeout, run_with_timeout, Node, CLUSTER_TIMEOUT, PROBE_TIMEOUT,
};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

/// Number of masters of a [`RedisCluster`].
pub(super) const CLUSTER_NODES: usize = 3;

/// `cluster-node-timeout` of a [`RedisCluster`] without replicas.
pub(super) const NODE_TIMEOUT_MS: u64 = 2000;

/// `cluster-node-timeout` of a cluster with replicas: a killed master is
/// flagged FAIL after about this long, and its replica is promoted some
/// 0.5-1.5 s later.
pub const FAILOVER_NODE_TIMEOUT_MS: u64 = 1000;

/// The hash slot Redis Cluster keeps `key` in (CRC16/XMODEM of its hash tag, or
/// of the whole key when it has none, modulo 16384), as `CLUSTER KEYSLOT` says.
pub fn key_slot(key: &str) -> u16 {
    let b = key.as_bytes();
    let tagged = b.iter().position(|&c| c == b'{').and_then(|open| {
        let rest = &b[open + 1..];
        let close = rest.iter().position(|&c| c == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    let mut crc: u16 = 0;
    for &byte in tagged.unwrap_or(b) {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    pub id: String,
    pub port: u16,
    /// `master` (and not failed)
    pub is_master: bool,
    /// flagged `fail` or `fail?`
    pub failed: bool,
    /// the id of its master, for a replica
    pub master_id: Option<String>,
    /// the slot ranges it serves (inclusive)
    pub slots: Vec<(u16, u16)>,
}

impl ClusterNode {
    pub fn serves(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(a, b)| a <= slot && slot <= b)
    }

    /// The first of `candidates` whose hash tag `tag(candidate)` lives on
    /// this node (panics after 100,000).
    pub fn first_here(
        &self,
        candidates: impl Iterator<Item = String>,
        tag: impl Fn(&str) -> String,
    ) -> String {
        candidates
            .take(100_000)
            .find(|c| self.serves(key_slot(&format!("{{{}}}", tag(c)))))
            .unwrap_or_else(|| panic!("no candidate hashes to 127.0.0.1:{}", self.port))
    }

    /// A consumer key (`sk-<prefix>-...`) whose record `{k:<sha256>}` lives
    /// on this node, for a gateway that stores keys without a pepper
    /// (`GATEWAY_KEY_PEPPER` empty).
    pub fn key_here(&self, prefix: &str) -> String {
        self.first_here(
            (0..).map(|j| format!("sk-{prefix}-{j:05}-0123456789abcdef")),
            |k| format!("k:{}", sha256_hex(k)),
        )
    }

    /// A tenant id (`<prefix>-<n>`) whose windows `{t:<id>}` live on this node.
    pub fn tenant_here(&self, prefix: &str) -> String {
        self.first_here((0..).map(|i| format!("{prefix}-{i}")), |t| format!("t:{t}"))
    }
}

/// The SHA-256 of `s` in hex: a key's record is `{k:<this>}` when the gateway
/// has no pepper.
pub fn sha256_hex(s: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Parses `CLUSTER NODES` output (slots being migrated, `[...]`, are skipped).
pub fn parse_cluster_nodes(text: &str) -> Vec<ClusterNode> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let port = f
                .get(1)?
                .split('@')
                .next()?
                .rsplit(':')
                .next()?
                .parse()
                .ok()?;
            let flags = f.get(2)?;
            let slots = f
                .get(8..)
                .unwrap_or_default()
                .iter()
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|n| (n, n)),
                })
                .collect();
            let failed = flags.split(',').any(|x| x == "fail" || x == "fail?");
            let master_id = f.get(3).filter(|m| **m != "-").map(|m| m.to_string());
            Some(ClusterNode {
                id: f.first()?.to_string(),
                port,
                is_master: flags.split(',').any(|x| x == "master") && !failed,
                failed,
                master_id,
                slots,
            })
        })
        .collect()
}

/// How a [`RedisCluster`] is made.
#[derive(Debug, Clone)]
pub(super) struct ClusterOptions {
    /// replicas per master
    replicas: usize,
    pub(super) node_timeout_ms: u64,
    pub(super) full_coverage: bool,
}

/// A 3-master `redis-server` cluster on `127.0.0.1` (all 16384 slots assigned),
/// with or without a replica per master; every node is killed on drop.
pub struct RedisCluster {
    nodes: Vec<Node>,
    options: ClusterOptions,
    tmp: tempfile::TempDir,
}

impl RedisCluster {
    /// Starts three cluster-enabled servers, joins them with
    /// `redis-cli --cluster create`, and waits until every node reports
    /// `cluster_state:ok`, knows all three nodes and sees all slots assigned
    /// (within [`CLUSTER_TIMEOUT`]); panics with the logs otherwise.
    pub fn start() -> RedisCluster {
        RedisCluster::start_with(ClusterOptions {
            replicas: 0,
            node_timeout_ms: NODE_TIMEOUT_MS,
            full_coverage: true,
        })
    }

    /// Three masters and one replica each (six nodes), with
    /// `cluster-node-timeout` [`FAILOVER_NODE_TIMEOUT_MS`] so a killed master's
    /// replica is promoted within a few seconds, and
    /// `cluster-require-full-coverage no` so the other masters keep serving
    /// their slots meanwhile. Waits until every replica is in sync with its
    /// master.
    pub fn start_with_replicas() -> RedisCluster {
        RedisCluster::start_with(ClusterOptions {
            replicas: 1,
            node_timeout_ms: FAILOVER_NODE_TIMEOUT_MS,
            full_coverage: false,
        })
    }

    fn start_with(options: ClusterOptions) -> RedisCluster {
        let tmp = match tempfile::Builder::new()
            .prefix("redis-cluster-test-")
            .tempdir()
        {
            Ok(t) => t,
            Err(e) => panic!("tempdir for redis cluster: {e}"),
        };
        let nodes = (0..CLUSTER_NODES * (1 + options.replicas))
            .map(|_| Node::start_fresh(tmp.path(), Some(&options)))
            .collect();
        let cluster = RedisCluster {
            nodes,
            options,
            tmp,
        };
        cluster.create();
        cluster.wait_ok();
        cluster
    }

    fn create(&self) {
        let mut cmd = Command::new(cli_bin());
        cmd.arg("--cluster").arg("create");
        for n in &self.nodes {
            cmd.arg(format!("127.0.0.1:{}", n.port));
        }
        cmd.args([
            "--cluster-replicas",
            &self.options.replicas.to_string(),
            "--cluster-yes",
        ]);
        let out = match run_with_timeout(&mut cmd, CLUSTER_TIMEOUT) {
            Ok(o) => o,
            Err(e) => panic!("redis-cli --cluster create: {e}\n{}", self.logs()),
        };
        if !out.status.success() {
            panic!(
                "redis-cli --cluster create failed ({}):\nstdout:\n{}\nstderr:\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.logs()
            );
        }
    }

    fn wait_ok(&self) {
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        let known = self.nodes.len().to_string();
        loop {
            let infos: Vec<(u16, String)> = self
                .nodes
                .iter()
                .map(|n| {
                    let info =
                        redis_cli_timeout(n.port, false, &["cluster", "info"], PROBE_TIMEOUT)
                            .unwrap_or_else(|e| e);
                    (n.port, info)
                })
                .collect();
            let field = |info: &str, name: &str| {
                info.lines()
                    .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
                    .map(|v| v.trim().to_string())
            };
            let ok = infos.iter().all(|(_, info)| {
                field(info, "cluster_state").as_deref() == Some("ok")
                    && field(info, "cluster_known_nodes") == Some(known.clone())
                    && field(info, "cluster_slots_assigned").as_deref() == Some("16384")
            });
            // a replica that is not in sync yet could not take over
            let synced = self.nodes.iter().all(|n| {
                let repl =
                    redis_cli_timeout(n.port, false, &["info", "replication"], PROBE_TIMEOUT)
                        .unwrap_or_default();
                match field(&repl, "role").as_deref() {
                    Some("master") => true,
                    Some("slave") => field(&repl, "master_link_status").as_deref() == Some("up"),
                    _ => false,
                }
            });
            if ok && synced {
                return;
            }
            if Instant::now() > deadline {
                let infos: String = infos
                    .iter()
                    .map(|(p, i)| format!("--- CLUSTER INFO of 127.0.0.1:{p}:\n{i}\n"))
                    .collect();
                panic!(
                    "redis cluster not ok (and in sync: {synced}) within {CLUSTER_TIMEOUT:?}:\n{infos}{}",
                    self.logs()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `CLUSTER NODES` as a node that is running sees it.
    pub fn cluster_nodes(&self) -> Vec<ClusterNode> {
        for n in &self.nodes {
            if !n.answers() {
                continue;
            }
            if let Ok(text) = redis_cli_timeout(n.port, false, &["cluster", "nodes"], PROBE_TIMEOUT)
            {
                let nodes = parse_cluster_nodes(&text);
                if !nodes.is_empty() {
                    return nodes;
                }
            }
        }
        panic!("no running node answers CLUSTER NODES\n{}", self.logs());
    }

    /// Ports of the masters, with the slot ranges each serves.
    pub fn masters(&self) -> Vec<ClusterNode> {
        let mut m: Vec<ClusterNode> = self
            .cluster_nodes()
            .into_iter()
            .filter(|n| n.is_master && !n.slots.is_empty())
            .collect();
        m.sort_by_key(|n| n.slots.first().copied());
        m
    }

    /// The port of the master serving `slot` now.
    pub fn master_of(&self, slot: u16) -> u16 {
        match self.masters().iter().find(|n| n.serves(slot)) {
            Some(n) => n.port,
            None => panic!("no master serves slot {slot}: {:?}", self.cluster_nodes()),
        }
    }

    fn node_mut(&mut self, port: u16) -> &mut Node {
        match self.nodes.iter_mut().find(|n| n.port == port) {
            Some(n) => n,
            None => panic!("no node of the cluster listens on {port}"),
        }
    }

    /// Kills (SIGKILL) the node on `port`. Idempotent.
    pub fn kill_port(&mut self, port: u16) {
        self.node_mut(port).stop();
    }

    /// Starts the killed node on `port` again, without data but with its
    /// cluster config: it rejoins the cluster under its old id, and a node
    /// whose slots were taken over comes back as a replica of the new master.
    pub fn restart_port(&mut self, port: u16) {
        self.node_mut(port).restart_same_port();
    }

    /// Stops the node on `port` with SIGSTOP: its connections stay open and
    /// nothing is answered, until [`RedisCluster::thaw_port`].
    pub fn freeze_port(&mut self, port: u16) {
        self.node_mut(port).freeze(true);
    }

    /// Resumes a node frozen by [`RedisCluster::freeze_port`] (SIGCONT).
    pub fn thaw_port(&mut self, port: u16) {
        self.node_mut(port).freeze(false);
    }

    /// A replica of the master on `port`, as `CLUSTER NODES` says.
    pub fn replica_of(&self, port: u16) -> Option<u16> {
        let nodes = self.cluster_nodes();
        let id = nodes.iter().find(|n| n.port == port)?.id.clone();
        nodes
            .iter()
            .find(|n| n.master_id.as_deref() == Some(id.as_str()) && !n.failed)
            .map(|n| n.port)
    }

    /// Closes the master on `port`'s connections to its replicas (`CLIENT KILL
    /// TYPE replica`): what it acknowledges from then on reaches no replica
    /// until one connects again. Answers how many links it closed.
    pub fn cut_replica_links(&self, port: u16) -> u64 {
        match redis_cli(port, false, &["client", "kill", "type", "replica"]) {
            Ok(n) => n.trim().parse().unwrap_or(0),
            Err(e) => panic!("CLIENT KILL TYPE replica on 127.0.0.1:{port}: {e}"),
        }
    }

    /// `CLUSTER FAILOVER` sent to the replica on `port`: the graceful
    /// hand-over an operator starts (its master stops taking writes until the
    /// replica has caught up, then the replica takes the slots). Returns once
    /// the replica accepted it; [`RedisCluster::wait_promoted`] waits for the
    /// outcome.
    pub fn failover_to(&self, port: u16) {
        match redis_cli(port, false, &["cluster", "failover"]) {
            Ok(r) if r == "OK" => {}
            r => panic!("CLUSTER FAILOVER on 127.0.0.1:{port}: {r:?}"),
        }
    }

    /// Waits (up to `within`) until the node on `port` says it is a replica
    /// of the master on `master` and its link to it is up (in sync).
    pub fn wait_replica(&self, port: u16, master: u16, within: Duration) -> Instant {
        let deadline = Instant::now() + within;
        loop {
            let master_id = self
                .cluster_nodes()
                .into_iter()
                .find(|n| n.port == master)
                .map(|n| n.id);
            let own = redis_cli_timeout(port, false, &["cluster", "nodes"], PROBE_TIMEOUT)
                .map(|t| parse_cluster_nodes(&t))
                .unwrap_or_default();
            let follows = own
                .iter()
                .find(|n| n.port == port)
                .is_some_and(|n| n.master_id.is_some() && n.master_id == master_id);
            let link = redis_cli_timeout(port, false, &["info", "replication"], PROBE_TIMEOUT)
                .unwrap_or_default()
                .lines()
                .any(|l| l.trim() == "master_link_status:up");
            if follows && link {
                return Instant::now();
            }
            if Instant::now() > deadline {
                panic!(
                    "127.0.0.1:{port} is not an in-sync replica of 127.0.0.1:{master} within {within:?}: {own:?}\n{}",
                    self.logs()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// A count of `INFO <section>` on the node on `port`: field `field` of
    /// entry `entry` (`stat_on(port, "commandstats", "cmdstat_evalsha", "calls")`,
    /// `stat_on(port, "errorstats", "errorstat_NOSCRIPT", "count")`); 0 when absent.
    pub fn stat_on(&self, port: u16, section: &str, entry: &str, field: &str) -> u64 {
        let info = redis_cli_timeout(port, false, &["info", section], PROBE_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"));
        let prefix = format!("{entry}:");
        info.lines()
            .find_map(|l| l.trim().strip_prefix(prefix.as_str()))
            .and_then(|rest| {
                rest.split(',')
                    .find_map(|kv| kv.strip_prefix(field)?.strip_prefix('='))
            })
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Waits (up to `within`) until a node other than `old_port` is master of
    /// `slot` (as `CLUSTER NODES` of a running node says); answers when this
    /// was first seen (polled every 20 ms).
    pub fn wait_promoted(&self, slot: u16, old_port: u16, within: Duration) -> Instant {
        let deadline = Instant::now() + within;
        loop {
            if self
                .masters()
                .iter()
                .any(|n| n.port != old_port && n.serves(slot))
            {
                return Instant::now();
            }
            if Instant::now() > deadline {
                panic!(
                    "slot {slot} not taken over from 127.0.0.1:{old_port} within {within:?}: {:?}\n{}",
                    self.cluster_nodes(),
                    self.logs()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// All node logs, labelled (for panic messages).
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- log of 127.0.0.1:{}:\n{}\n", n.port, n.log()))
            .collect()
    }

    /// `redis://127.0.0.1:PORT` of every node (no db suffix: cluster mode has
    /// only db 0).
    pub fn nodes(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// The cluster's tempdir (node configs and logs).
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// `redis-cli -c -p PORT ARGS...` against the first running node (cluster
    /// mode: follows `MOVED`/`ASK`): trimmed stdout; panics with stderr if
    /// redis-cli fails.
    pub fn cli(&self, args: &[&str]) -> String {
        match self.try_cli(args) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    /// As [`RedisCluster::cli`], returning redis-cli's failure instead of
    /// panicking.
    pub fn try_cli(&self, args: &[&str]) -> Result<String, String> {
        let port = self
            .nodes
            .iter()
            .find(|n| n.answers())
            .map_or(self.nodes[0].port, |n| n.port);
        redis_cli(port, true, args)
    }

    /// `redis-cli -p PORT_OF_NODE_i ARGS...` against one node, without
    /// following redirects. Panics if redis-cli fails.
    pub fn node_cli(&self, i: usize, args: &[&str]) -> String {
        let Some(n) = self.nodes.get(i) else {
            panic!("node_cli({i}): the cluster has {} nodes", self.nodes.len());
        };
        match redis_cli(n.port, false, args) {
            Ok(s) => s,
            Err(e) => panic!("{e}\nnode log:\n{}", n.current_log()),
        }
    }

    /// Kills node `i` (the cluster then goes to `cluster_state:fail`
    /// after the node timeout, since there are no replicas). Idempotent.
    pub fn stop_node(&mut self, i: usize) {
        if let Some(n) = self.nodes.get_mut(i) {
            n.stop();
        }
    }

    /// Kills every node and waits for them. Idempotent.
    pub fn stop_all(&mut self) {
        for n in &mut self.nodes {
            n.stop();
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}
