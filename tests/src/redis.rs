//! Real `redis-server` processes for the tests, on loopback only.
//!
//! * [`RedisServer`]: one standalone server on a free port with its own tempdir
//!   (no persistence: `--save "" --appendonly no`). [`RedisServer::restart`]
//!   brings it back on the same port with empty data, so loaded Lua scripts are
//!   gone, exactly as after a real restart.
//! * [`RedisCluster`]: three masters (`--cluster-enabled yes`) joined with
//!   `redis-cli --cluster create ... --cluster-replicas 0`, covering all 16384
//!   slots; [`RedisCluster::start_with_replicas`] adds one replica per master
//!   and a short `cluster-node-timeout`, so a killed master's replica takes over
//!   within a few seconds ([`RedisCluster::wait_promoted`]). [`key_slot`] is the
//!   hash slot of a key, [`ClusterNode`] a line of `CLUSTER NODES`.
//! * `cli` methods run `redis-cli` against a server and return its trimmed
//!   stdout. `redis-cli` exits 0 on an error *reply* (it prints `ERR ...` on
//!   stdout), so only connection-level failures make `cli` panic; use `try_cli`
//!   to observe those without panicking.
//!
//! Everything here is blocking (`std::process`); from an async test prefer a
//! multi-thread runtime or `spawn_blocking`. Processes are killed on drop.
//! `$REDIS_SERVER_BIN` / `$REDIS_CLI_BIN` override the binaries (default:
//! `redis-server` / `redis-cli` on `PATH`).

use crate::harness::free_ports;
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long a (re)started server may take to answer `PING`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a new cluster may take to report `cluster_state:ok` on every node.
pub const CLUSTER_TIMEOUT: Duration = Duration::from_secs(20);

/// How long [`RedisServer::restart`] keeps retrying when the old port cannot be
/// bound yet.
pub const RESTART_BIND_TIMEOUT: Duration = Duration::from_secs(10);

/// Upper bound for one `redis-cli` invocation.
const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// Upper bound for one readiness probe (`PING`, `INFO`, `CLUSTER INFO`): a port
/// held by something that accepts but never answers must not stall the wait.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Fresh-port attempts when a picked port turns out to be taken.
const START_ATTEMPTS: usize = 5;

/// Number of masters of a [`RedisCluster`].
const CLUSTER_NODES: usize = 3;

/// `cluster-node-timeout` of a [`RedisCluster`] without replicas.
const NODE_TIMEOUT_MS: u64 = 2000;

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
    /// the slot ranges it serves (inclusive)
    pub slots: Vec<(u16, u16)>,
}

impl ClusterNode {
    pub fn serves(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(a, b)| a <= slot && slot <= b)
    }
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
            Some(ClusterNode {
                id: f.first()?.to_string(),
                port,
                is_master: flags.split(',').any(|x| x == "master") && !failed,
                failed,
                slots,
            })
        })
        .collect()
}

fn server_bin() -> OsString {
    std::env::var_os("REDIS_SERVER_BIN").unwrap_or_else(|| "redis-server".into())
}

fn cli_bin() -> OsString {
    std::env::var_os("REDIS_CLI_BIN").unwrap_or_else(|| "redis-cli".into())
}

/// Runs `cmd` (stdin closed, stdout/stderr captured), killing it after
/// `timeout`.
fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {what}: {e}"))?;
    // read both pipes on threads so a chatty child cannot block on a full pipe
    let readers = [
        child.stdout.take().map(|mut r| {
            thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = r.read_to_end(&mut buf);
                buf
            })
        }),
        child.stderr.take().map(|mut r| {
            thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = r.read_to_end(&mut buf);
                buf
            })
        }),
    ];
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what} did not finish within {timeout:?}"));
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("waiting for {what}: {e}"));
            }
        }
    };
    let [out, err] = readers.map(|r| r.map(|h| h.join().unwrap_or_default()).unwrap_or_default());
    Ok(Output {
        status,
        stdout: out,
        stderr: err,
    })
}

/// `redis-cli [-c] -p PORT ARGS...`; trimmed stdout, or an error with stderr
/// when redis-cli fails (cannot connect, bad arguments, timeout).
fn redis_cli(port: u16, follow_redirects: bool, args: &[&str]) -> Result<String, String> {
    redis_cli_timeout(port, follow_redirects, args, CLI_TIMEOUT)
}

fn redis_cli_timeout(
    port: u16,
    follow_redirects: bool,
    args: &[&str],
    timeout: Duration,
) -> Result<String, String> {
    let mut cmd = Command::new(cli_bin());
    if follow_redirects {
        cmd.arg("-c");
    }
    cmd.arg("-h")
        .arg("127.0.0.1")
        .arg("-p")
        .arg(port.to_string())
        .args(args);
    let out = run_with_timeout(&mut cmd, timeout)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "redis-cli{} -p {port} {args:?} failed ({}):\nstderr: {}\nstdout: {}",
            if follow_redirects { " -c" } else { "" },
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    }
}

/// Why a start attempt failed.
enum StartError {
    /// The port (or cluster bus port) was taken: worth retrying.
    PortBusy(String),
    /// Anything else: give up with this message.
    Fatal(String),
}

/// One redis-server process (standalone or cluster node) and its files.
struct Node {
    port: u16,
    /// `--cluster-port` for cluster nodes (picked free like `port`, so the
    /// default `port + 10000` never has to be free or below 65536).
    bus_port: Option<u16>,
    /// `--cluster-node-timeout` (cluster nodes)
    node_timeout_ms: u64,
    /// `--cluster-require-full-coverage` (cluster nodes)
    full_coverage: bool,
    dir: PathBuf,
    child: Option<Child>,
    /// Length of the log file when the current process was spawned.
    log_offset: usize,
}

impl Node {
    fn new(port: u16, bus_port: Option<u16>, dir: &Path) -> Node {
        Node {
            port,
            bus_port,
            node_timeout_ms: NODE_TIMEOUT_MS,
            full_coverage: true,
            dir: dir.to_path_buf(),
            child: None,
            log_offset: 0,
        }
    }

    /// Starts a node on fresh free ports, retrying on other ports while the
    /// picked ones turn out to be taken (parallel tests, other processes).
    fn start_fresh(dir: &Path, cluster: Option<&ClusterOptions>) -> Node {
        let mut last_err = String::new();
        for _ in 0..START_ATTEMPTS {
            let ports = free_ports(if cluster.is_some() { 2 } else { 1 });
            let mut node = Node::new(ports[0], ports.get(1).copied(), dir);
            if let Some(o) = cluster {
                node.node_timeout_ms = o.node_timeout_ms;
                node.full_coverage = o.full_coverage;
            }
            match node.start_once() {
                Ok(()) => return node,
                Err(StartError::PortBusy(e)) => last_err = e,
                Err(StartError::Fatal(e)) => panic!("{e}"),
            }
        }
        panic!("redis-server could not bind a free port in {START_ATTEMPTS} attempts; last error:\n{last_err}");
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(format!("redis-{}.log", self.port))
    }

    fn cluster_config_path(&self) -> PathBuf {
        self.dir.join(format!("nodes-{}.conf", self.port))
    }

    /// Everything the server(s) on this port wrote so far (stdout + stderr).
    fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// What the current (or last) process wrote.
    fn current_log(&self) -> String {
        let all = self.log();
        all.get(self.log_offset..).unwrap_or(&all).to_string()
    }

    fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "--port".into(),
            self.port.to_string().into(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            self.dir.clone().into(),
            "--protected-mode".into(),
            "no".into(),
        ];
        if let Some(bus) = self.bus_port {
            args.extend([
                "--cluster-enabled".into(),
                "yes".into(),
                "--cluster-config-file".into(),
                self.cluster_config_path().into(),
                "--cluster-node-timeout".into(),
                self.node_timeout_ms.to_string().into(),
                "--cluster-require-full-coverage".into(),
                if self.full_coverage { "yes" } else { "no" }.into(),
                "--cluster-port".into(),
                bus.to_string().into(),
            ]);
        }
        args
    }

    /// Spawns the server and waits until it answers `PING`; kills it again on
    /// failure.
    fn start_once(&mut self) -> Result<(), StartError> {
        self.stop();
        let log_path = self.log_path();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| StartError::Fatal(format!("open {}: {e}", log_path.display())))?;
        self.log_offset = log
            .metadata()
            .map_or(0, |m| usize::try_from(m.len()).unwrap_or(0));
        let log_err = log
            .try_clone()
            .map_err(|e| StartError::Fatal(format!("clone log file handle: {e}")))?;
        let bin = server_bin();
        let child = Command::new(&bin)
            .args(self.args())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .map_err(|e| {
                StartError::Fatal(format!("spawn {bin:?} (is redis-server installed?): {e}"))
            })?;
        self.child = Some(child);
        let r = self.wait_ready();
        if r.is_err() {
            self.stop();
        }
        r
    }

    fn wait_ready(&mut self) -> Result<(), StartError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let port = self.port;
        loop {
            let Some(child) = self.child.as_mut() else {
                return Err(StartError::Fatal("redis-server is not running".into()));
            };
            let pid = child.id();
            if let Ok(Some(status)) = child.try_wait() {
                let log = self.current_log();
                let msg = format!(
                    "redis-server on 127.0.0.1:{port} exited ({status}) before answering PING; \
                     args: {:?}\nlog:\n{log}",
                    self.args()
                );
                let lower = log.to_ascii_lowercase();
                return Err(
                    if lower.contains("address already in use")
                        || lower.contains("failed listening")
                    {
                        StartError::PortBusy(msg)
                    } else {
                        StartError::Fatal(msg)
                    },
                );
            }
            if matches!(
                redis_cli_timeout(port, false, &["ping"], PROBE_TIMEOUT).as_deref(),
                Ok("PONG")
            ) {
                // make sure it is our process answering and not another server
                // that grabbed the port first
                let info = redis_cli_timeout(port, false, &["info", "server"], PROBE_TIMEOUT)
                    .unwrap_or_default();
                let answering = info
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("process_id:"))
                    .and_then(|v| v.trim().parse::<u32>().ok());
                if answering == Some(pid) {
                    return Ok(());
                }
                if answering.is_some() {
                    return Err(StartError::PortBusy(format!(
                        "127.0.0.1:{port} is answered by another redis-server (pid {answering:?}, ours {pid})"
                    )));
                }
            }
            if Instant::now() > deadline {
                return Err(StartError::Fatal(format!(
                    "redis-server on 127.0.0.1:{port} did not answer PING (redis-cli -p {port} ping) \
                     within {READY_TIMEOUT:?}; args: {:?}\nlog:\n{}",
                    self.args(),
                    self.current_log()
                )));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Restarts on the same ports, retrying while they cannot be bound yet.
    fn restart_same_port(&mut self) {
        self.stop();
        // nothing is persisted (`--save ""`, no AOF), but make sure an old dump
        // can never bring data back
        for f in ["dump.rdb", "appendonly.aof"] {
            let _ = fs::remove_file(self.dir.join(f));
        }
        let _ = fs::remove_dir_all(self.dir.join("appendonlydir"));
        let deadline = Instant::now() + RESTART_BIND_TIMEOUT;
        loop {
            match self.start_once() {
                Ok(()) => return,
                Err(StartError::PortBusy(e)) => {
                    if Instant::now() > deadline {
                        panic!(
                            "restart: 127.0.0.1:{} still not bindable after {RESTART_BIND_TIMEOUT:?}:\n{e}",
                            self.port
                        );
                    }
                    thread::sleep(Duration::from_millis(100));
                }
                Err(StartError::Fatal(e)) => panic!("restart: {e}"),
            }
        }
    }

    fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills the process (SIGKILL) and reaps it; no-op when not running.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A standalone `redis-server` on `127.0.0.1` with its own tempdir; killed on
/// drop.
pub struct RedisServer {
    // dropped before `tmp`: the process dies before its directory goes
    node: Node,
    tmp: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers
    /// `PING`; panics with the server's log otherwise.
    pub fn start() -> RedisServer {
        let tmp = match tempfile::Builder::new().prefix("redis-test-").tempdir() {
            Ok(t) => t,
            Err(e) => panic!("tempdir for redis-server: {e}"),
        };
        let node = Node::start_fresh(tmp.path(), None);
        RedisServer { node, tmp }
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.node.port)
    }

    pub fn port(&self) -> u16 {
        self.node.port
    }

    /// The server's tempdir (`--dir`, log file).
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// pid of the running process, if any.
    pub fn pid(&self) -> Option<u32> {
        self.node.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        self.node.is_running()
    }

    /// Everything the server wrote to stdout/stderr, across restarts.
    pub fn log(&self) -> String {
        self.node.log()
    }

    /// Kills the server (SIGKILL: no shutdown save) and waits for it.
    /// Idempotent.
    pub fn stop(&mut self) {
        self.node.stop();
    }

    /// Stops the server (if running) and starts a new one on the same port with
    /// empty data: keys and loaded Lua scripts are gone. Retries the bind for up
    /// to [`RESTART_BIND_TIMEOUT`]; panics with the log if it does not come up.
    pub fn restart(&mut self) {
        self.node.restart_same_port();
    }

    /// `redis-cli -p PORT ARGS...`: trimmed stdout (an error reply comes back
    /// as text such as `ERR ...`). Panics with stderr if redis-cli fails.
    pub fn cli(&self, args: &[&str]) -> String {
        match self.try_cli(args) {
            Ok(s) => s,
            Err(e) => panic!("{e}\nserver log:\n{}", self.node.current_log()),
        }
    }

    /// As [`RedisServer::cli`], but returns redis-cli's failure (e.g. connection
    /// refused while stopped) instead of panicking.
    pub fn try_cli(&self, args: &[&str]) -> Result<String, String> {
        redis_cli(self.node.port, false, args)
    }

    /// Quota reservations held in Redis: every `*qlease*` sorted set (one member
    /// per reservation not settled yet) as (key, ZCARD).
    pub fn quota_leases(&self) -> Vec<(String, u64)> {
        let keys = self.cli(&["KEYS", "*qlease*"]);
        keys.lines()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| {
                let n = self.cli(&["ZCARD", k]);
                let n = n
                    .parse()
                    .unwrap_or_else(|_| panic!("ZCARD {k} answered {n:?}"));
                (k.to_string(), n)
            })
            .collect()
    }
}

/// How a [`RedisCluster`] is made.
#[derive(Debug, Clone)]
struct ClusterOptions {
    /// replicas per master
    replicas: usize,
    node_timeout_ms: u64,
    full_coverage: bool,
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
            if n.child.is_none() {
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

    /// Kills (SIGKILL) the node on `port`. Idempotent.
    pub fn kill_port(&mut self, port: u16) {
        match self.nodes.iter_mut().find(|n| n.port == port) {
            Some(n) => n.stop(),
            None => panic!("no node of the cluster listens on {port}"),
        }
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
            .find(|n| n.child.is_some())
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

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis several gateway replicas share in one test: a standalone server or a
/// 3-node cluster, kept alive for the test.
pub enum SharedRedis {
    Standalone(RedisServer),
    Cluster(RedisCluster),
}

impl SharedRedis {
    /// Starts a standalone server off the async runtime's worker.
    pub async fn standalone() -> SharedRedis {
        let r = tokio::task::spawn_blocking(RedisServer::start)
            .await
            .expect("redis start task");
        SharedRedis::Standalone(r)
    }

    /// Starts a 3-node cluster off the async runtime's worker.
    pub async fn cluster() -> SharedRedis {
        let c = tokio::task::spawn_blocking(RedisCluster::start)
            .await
            .expect("redis cluster start task");
        SharedRedis::Cluster(c)
    }

    /// `state.redis` of a gateway config: where it is, `key_prefix` and the
    /// per-call `timeout_ms`.
    pub fn yaml(&self, key_prefix: &str, timeout_ms: u64) -> String {
        match self {
            SharedRedis::Standalone(r) => format!(
                r#"{{ url: "{}", key_prefix: "{key_prefix}", timeout_ms: {timeout_ms} }}"#,
                r.url()
            ),
            SharedRedis::Cluster(c) => {
                let nodes: Vec<String> = c.nodes().iter().map(|n| format!("\"{n}\"")).collect();
                format!(
                    r#"{{ cluster_nodes: [{}], key_prefix: "{key_prefix}", timeout_ms: {timeout_ms} }}"#,
                    nodes.join(", ")
                )
            }
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            SharedRedis::Standalone(_) => "standalone",
            SharedRedis::Cluster(_) => "cluster",
        }
    }

    /// `redis-cli ARGS...` (blocking; needs the multi-thread runtime).
    pub fn cli(&self, args: &[&str]) -> String {
        tokio::task::block_in_place(|| match self {
            SharedRedis::Standalone(r) => r.cli(args),
            SharedRedis::Cluster(c) => c.cli(args),
        })
    }
}

/// [`RedisServer::start`] off the async runtime's worker.
pub async fn start_redis() -> RedisServer {
    tokio::task::spawn_blocking(RedisServer::start)
        .await
        .expect("redis start task")
}

/// [`RedisServer::stop`] off the async runtime's worker.
pub async fn stop_redis(mut redis: RedisServer) -> RedisServer {
    tokio::task::spawn_blocking(move || {
        redis.stop();
        redis
    })
    .await
    .expect("redis stop task")
}

/// [`RedisServer::restart`] (same port, empty data) off the async runtime's worker.
pub async fn restart_redis(mut redis: RedisServer) -> RedisServer {
    tokio::task::spawn_blocking(move || {
        redis.restart();
        redis
    })
    .await
    .expect("redis restart task")
}
