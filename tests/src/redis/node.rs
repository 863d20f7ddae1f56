//! One redis-server process (standalone or cluster node): its start on a free
//! port (retried when the port is taken), its files and log, stop, freeze and thaw.

use super::cluster::{ClusterOptions, NODE_TIMEOUT_MS};
use super::{
    redis_cli_timeout, server_bin, PROBE_TIMEOUT, READY_TIMEOUT, RESTART_BIND_TIMEOUT,
    START_ATTEMPTS,
};
use crate::harness::free_ports;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Why a start attempt failed.
pub(super) enum StartError {
    /// The port (or cluster bus port) was taken: worth retrying.
    PortBusy(String),
    /// Anything else: give up with this message.
    Fatal(String),
}

/// One redis-server process (standalone or cluster node) and its files.
pub(super) struct Node {
    pub(super) port: u16,
    /// `--cluster-port` for cluster nodes (picked free like `port`, so the
    /// default `port + 10000` never has to be free or below 65536).
    pub(super) bus_port: Option<u16>,
    /// `--cluster-node-timeout` (cluster nodes)
    pub(super) node_timeout_ms: u64,
    /// `--cluster-require-full-coverage` (cluster nodes)
    pub(super) full_coverage: bool,
    /// an append-only file fsynced every second (`--appendonly yes`), kept
    /// across [`RedisServer::restart_with_data`]
    pub(super) persistent: bool,
    pub(super) dir: PathBuf,
    pub(super) child: Option<Child>,
    /// Stopped with SIGSTOP (answers nothing until [`Node::thaw`]).
    pub(super) frozen: bool,
    /// Length of the log file when the current process was spawned.
    pub(super) log_offset: usize,
}

impl Node {
    pub(super) fn new(port: u16, bus_port: Option<u16>, dir: &Path) -> Node {
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
    pub(super) fn start_fresh(dir: &Path, cluster: Option<&ClusterOptions>) -> Node {
        Node::start_fresh_with(dir, cluster, false)
    }

    pub(super) fn start_fresh_with(
        dir: &Path,
        cluster: Option<&ClusterOptions>,
        persistent: bool,
    ) -> Node {
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

    pub(super) fn log_path(&self) -> PathBuf {
        self.dir.join(format!("redis-{}.log", self.port))
    }

    pub(super) fn cluster_config_path(&self) -> PathBuf {
        self.dir.join(format!("nodes-{}.conf", self.port))
    }

    /// Everything the server(s) on this port wrote so far (stdout + stderr).
    pub(super) fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// What the current (or last) process wrote.
    pub(super) fn current_log(&self) -> String {
        let all = self.log();
        all.get(self.log_offset..).unwrap_or(&all).to_string()
    }

    pub(super) fn args(&self) -> Vec<OsString> {
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
    pub(super) fn start_once(&mut self) -> Result<(), StartError> {
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

    pub(super) fn wait_ready(&mut self) -> Result<(), StartError> {
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
    pub(super) fn restart_same_port(&mut self) {
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
    pub(super) fn start_same_port(&mut self) {
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

    pub(super) fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills the process (SIGKILL) and reaps it; no-op when not running.
    pub(super) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.frozen = false;
    }

    /// Running and not frozen: it can answer.
    pub(super) fn answers(&self) -> bool {
        self.child.is_some() && !self.frozen
    }

    /// Sends `SIGSTOP` (`freeze: true`) or `SIGCONT` with the `kill` command
    /// (no libc): a stopped server keeps its sockets and data but answers
    /// nothing, as a process stuck on a hung disk or a paused VM does.
    pub(super) fn freeze(&mut self, freeze: bool) {
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
