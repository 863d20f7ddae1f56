//! Real `redis-server` processes for the tests, on loopback only.
//!
//! * [`RedisServer`]: one standalone server on a free port with its own tempdir
//!   (no persistence: `--save "" --appendonly no`). [`RedisServer::restart`]
//!   brings it back on the same port with empty data, so loaded Lua scripts are
//!   gone, exactly as after a real restart. [`RedisServer::start_persistent`]
//!   keeps an append-only file, which [`RedisServer::start_again`] reloads
//!   after a [`RedisServer::shutdown`] (SIGTERM) or a [`RedisServer::stop`].
//! * [`RedisCluster`]: three masters (`--cluster-enabled yes`) joined with
//!   `redis-cli --cluster create ... --cluster-replicas 0`, covering all 16384
//!   slots; [`RedisCluster::start_with_replicas`] adds one replica per master
//!   and a short `cluster-node-timeout`, so a killed master's replica takes over
//!   within a few seconds ([`RedisCluster::wait_promoted`]). [`key_slot`] is the
//!   hash slot of a key, [`ClusterNode`] a line of `CLUSTER NODES`.
//! * [`lease`]: the quota lease zsets (held reservations, tombstones);
//!   [`reply`]: `redis-cli --no-raw` output parsed; [`scripts`]: the quota
//!   and ledger scripts run with `EVAL`.
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

mod cluster;
pub mod lease;
pub mod reply;
pub mod scripts;
pub use cluster::{
    key_slot, parse_cluster_nodes, sha256_hex, ClusterNode, RedisCluster, FAILOVER_NODE_TIMEOUT_MS,
};
use cluster::{ClusterOptions, NODE_TIMEOUT_MS};

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
    /// an append-only file fsynced every second (`--appendonly yes`), kept
    /// across [`RedisServer::restart_with_data`]
    persistent: bool,
    dir: PathBuf,
    child: Option<Child>,
    /// Stopped with SIGSTOP (answers nothing until [`Node::thaw`]).
    frozen: bool,
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
            persistent: false,
            dir: dir.to_path_buf(),
            child: None,
            frozen: false,
            log_offset: 0,
        }
    }

    /// Starts a node on fresh free ports, retrying on other ports while the
    /// picked ones turn out to be taken (parallel tests, other processes).
    fn start_fresh(dir: &Path, cluster: Option<&ClusterOptions>) -> Node {
        Node::start_fresh_with(dir, cluster, false)
    }

    fn start_fresh_with(dir: &Path, cluster: Option<&ClusterOptions>, persistent: bool) -> Node {
        let mut last_err = String::new();
        for _ in 0..START_ATTEMPTS {
            let ports = free_ports(if cluster.is_some() { 2 } else { 1 });
            let mut node = Node::new(ports[0], ports.get(1).copied(), dir);
            node.persistent = persistent;
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
            if self.persistent { "yes" } else { "no" }.into(),
            "--appendfsync".into(),
            "everysec".into(),
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
                // a replica that needs a full copy (a node back empty, an old
                // primary rejoining) gets it now, not after the default 5 s
                // wait for more replicas to share the transfer
                "--repl-diskless-sync-delay".into(),
                "0".into(),
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

    /// Restarts on the same ports with empty data, retrying while they cannot
    /// be bound yet.
    fn restart_same_port(&mut self) {
        self.stop();
        // make sure no dump or append-only file (a persistent node's) can bring
        // data back
        for f in ["dump.rdb", "appendonly.aof"] {
            let _ = fs::remove_file(self.dir.join(f));
        }
        let _ = fs::remove_dir_all(self.dir.join("appendonlydir"));
        self.start_same_port();
    }

    /// Starts on the same ports with whatever its files hold, retrying while
    /// they cannot be bound yet.
    fn start_same_port(&mut self) {
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
        self.frozen = false;
    }

    /// Running and not frozen: it can answer.
    fn answers(&self) -> bool {
        self.child.is_some() && !self.frozen
    }

    /// Sends `SIGSTOP` (`freeze: true`) or `SIGCONT` with the `kill` command
    /// (no libc): a stopped server keeps its sockets and data but answers
    /// nothing, as a process stuck on a hung disk or a paused VM does.
    fn freeze(&mut self, freeze: bool) {
        let Some(pid) = self.child.as_ref().map(Child::id) else {
            panic!("127.0.0.1:{} is not running", self.port);
        };
        let sig = if freeze { "-STOP" } else { "-CONT" };
        match Command::new("kill").args([sig, &pid.to_string()]).status() {
            Ok(st) if st.success() => self.frozen = freeze,
            r => panic!("kill {sig} {pid}: {r:?}"),
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

    /// As [`RedisServer::start`], with an append-only file fsynced every
    /// second (`--appendonly yes --appendfsync everysec`, as the shipped
    /// deployments run Redis): [`RedisServer::start_again`] reloads it.
    pub fn start_persistent() -> RedisServer {
        let tmp = match tempfile::Builder::new().prefix("redis-test-").tempdir() {
            Ok(t) => t,
            Err(e) => panic!("tempdir for redis-server: {e}"),
        };
        let node = Node::start_fresh_with(tmp.path(), None, true);
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

    /// Stops the server as Kubernetes does, with SIGTERM (Redis flushes and
    /// fsyncs its append-only file, or saves, then exits), and waits up to
    /// [`READY_TIMEOUT`] for it to exit; then SIGKILL. Idempotent.
    pub fn shutdown(&mut self) {
        let Some(mut child) = self.node.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + READY_TIMEOUT;
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the server again on the same port with the data its files hold
    /// (a persistent server's append-only file; nothing otherwise), after
    /// [`RedisServer::shutdown`] or [`RedisServer::stop`].
    pub fn start_again(&mut self) {
        self.node.start_same_port();
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

    /// `state:` of a gateway config on this Redis (`backend: redis`, where it
    /// is, `key_prefix` and the per-call `timeout_ms`).
    pub fn state(&self, key_prefix: &str, timeout_ms: u64) -> crate::config::State {
        let state = match self {
            SharedRedis::Standalone(r) => crate::config::State::redis(&r.url()),
            SharedRedis::Cluster(c) => crate::config::State::redis_cluster(&c.nodes()),
        };
        state
            .redis_key("key_prefix", key_prefix)
            .redis_key("timeout_ms", timeout_ms)
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
