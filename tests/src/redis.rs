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

use std::ffi::OsString;
use std::io::Read;
use std::path::Path;
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
mod node;
use node::Node;
pub mod lease;
pub mod reply;
pub mod scripts;
pub use cluster::{
    key_slot, parse_cluster_nodes, sha256_hex, ClusterNode, RedisCluster, FAILOVER_NODE_TIMEOUT_MS,
};

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
