//! Starting real gateway processes for the tests.
//!
//! * [`gateway_bin`]: `$GATEWAY_BIN` if set, else `cargo build -p gateway --bin
//!   gateway` (once per test binary, same profile and target dir as the running
//!   test, honouring `$CARGO`) and the binary it produced.
//! * [`free_port`] / [`free_addr`] / [`closed_port_url`]: loopback ports.
//! * [`Gateway`]: a gateway process on its own ports and tempdir. The test's YAML
//!   may use these placeholders (write them quoted, `listen: "{{listen}}"`, since
//!   an unquoted `{{x}}` is a YAML flow mapping):
//!   - `{{listen}}` — `127.0.0.1:PORT` of the data plane,
//!   - `{{admin}}` — `127.0.0.1:PORT` of the admin listener,
//!   - `{{access_log}}` — path of the access-log file,
//!   - `{{dir}}` — the gateway's tempdir,
//!   - `{{NAME}}` for every `.var(NAME, value)` given to the builder.
//! * [`Gateway::chat_logged`]: send a chat and wait for its access-log line.
//! * [`run_check_config`]: `gateway --check-config PATH`.

use crate::client::{HttpResponse, TestClient};
use shared::ai_log::AccessLogLine;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

mod binary;
mod ports;

use binary::gateway_bin_async;
pub use binary::{
    find_tool, gateway_bin, run_check_config, run_check_config_named, run_gateway, target_dir,
    workspace_dir,
};
pub use ports::{closed_port_url, free_addr, free_port, free_ports};

/// The admin token the tests put in their configs.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// How long [`Gateway::start`] waits for `/readyz`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// How long [`Gateway::chat_logged`] waits for the access-log line (lines are
/// written asynchronously).
pub const LOG_WAIT: Duration = Duration::from_secs(5);

/// A request id no other request of this test process carries:
/// `t-<pid>-<n>`.
pub fn fresh_request_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("t-{}-{n}", std::process::id())
}

/// Replaces `{{name}}` placeholders.
fn template(yaml: &str, vars: &[(String, String)]) -> String {
    let mut out = yaml.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    out
}

/// Writes `contents` to `path` atomically (temp file + rename).
pub fn write_atomic(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp-write");
    if let Err(e) = fs::write(&tmp, contents) {
        panic!("write {}: {e}", tmp.display());
    }
    if let Err(e) = fs::rename(&tmp, path) {
        panic!("rename {} -> {}: {e}", tmp.display(), path.display());
    }
}

/// `n` replicas of `yaml` started together, each digesting keys the same way
/// (`GATEWAY_KEY_PEPPER` empty, whatever the environment of the test run
/// says).
pub async fn start_replicas(yaml: &str, n: usize) -> Vec<Gateway> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let b = Gateway::builder(yaml).env("GATEWAY_KEY_PEPPER", "");
            tokio::spawn(b.start())
        })
        .collect();
    let mut gws = Vec::with_capacity(n);
    for t in tasks {
        gws.push(t.await.expect("a gateway replica started"));
    }
    gws
}

/// Builder for a gateway process.
pub struct GatewayBuilder {
    yaml: String,
    vars: Vec<(String, String)>,
    env: Vec<(String, String)>,
    config_via_env: bool,
    file_name: String,
    ready_timeout: Duration,
}

impl GatewayBuilder {
    /// Adds a `{{name}}` placeholder.
    pub fn var(mut self, name: &str, value: impl Into<String>) -> Self {
        self.vars.push((name.to_string(), value.into()));
        self
    }

    /// Sets an environment variable of the gateway process.
    pub fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.push((name.to_string(), value.into()));
        self
    }

    /// Shifts the clock the gateway's calendar windows and ledger days are
    /// computed from by `ms` (the debug-only test hook
    /// [`crate::calendar::CLOCK_SHIFT_VAR`]; see [`crate::calendar::Boundary`]).
    pub fn clock_shift_ms(self, ms: i64) -> Self {
        self.env(crate::calendar::CLOCK_SHIFT_VAR, ms.to_string())
    }

    /// Passes the config as `GATEWAY_CONFIG=PATH` instead of `--config PATH`.
    pub fn config_via_env(mut self) -> Self {
        self.config_via_env = true;
        self
    }

    /// File name of the config inside the tempdir (default `gateway.yaml`).
    pub fn file_name(mut self, name: &str) -> Self {
        self.file_name = name.to_string();
        self
    }

    pub fn ready_timeout(mut self, t: Duration) -> Self {
        self.ready_timeout = t;
        self
    }

    /// Starts the gateway and waits until its `/readyz` answers 200; panics with
    /// the gateway's stderr otherwise.
    pub async fn start(self) -> Gateway {
        match self.try_start().await {
            Ok(g) => g,
            Err(e) => panic!("{e}"),
        }
    }

    pub async fn try_start(self) -> Result<Gateway, String> {
        let bin = gateway_bin_async().await?;
        let mut last_err = String::new();
        // A port picked as free may be taken by a parallel test before the gateway
        // binds it: retry with fresh ports when the process dies early.
        for _ in 0..3 {
            match self.spawn_once(&bin).await {
                Ok(g) => return Ok(g),
                Err((e, retry)) => {
                    last_err = e;
                    if !retry {
                        break;
                    }
                }
            }
        }
        Err(last_err)
    }

    async fn spawn_once(&self, bin: &Path) -> Result<Gateway, (String, bool)> {
        let dir = tempfile::Builder::new()
            .prefix("gw-test-")
            .tempdir()
            .map_err(|e| (format!("tempdir: {e}"), false))?;
        let ports = free_ports(2);
        let listen = format!("127.0.0.1:{}", ports[0]);
        let admin = format!("127.0.0.1:{}", ports[1]);
        let access_log = dir.path().join("access.log");
        let config_path = dir.path().join(&self.file_name);
        let stdout_path = dir.path().join("stdout.log");
        let stderr_path = dir.path().join("stderr.log");
        let mut vars = vec![
            ("listen".to_string(), listen.clone()),
            ("admin".to_string(), admin.clone()),
            ("access_log".to_string(), access_log.display().to_string()),
            ("dir".to_string(), dir.path().display().to_string()),
        ];
        vars.extend(self.vars.iter().cloned());
        write_atomic(&config_path, &template(&self.yaml, &vars));
        let stdout =
            fs::File::create(&stdout_path).map_err(|e| (format!("stdout file: {e}"), false))?;
        let stderr =
            fs::File::create(&stderr_path).map_err(|e| (format!("stderr file: {e}"), false))?;
        let mut cmd = Command::new(bin);
        cmd.env_remove("GATEWAY_CONFIG");
        if self.config_via_env {
            cmd.env("GATEWAY_CONFIG", &config_path);
        } else {
            cmd.arg("--config").arg(&config_path);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr));
        let child = cmd
            .spawn()
            .map_err(|e| (format!("spawn {}: {e}", bin.display()), false))?;
        let mut gw = Gateway {
            child,
            dir,
            listen,
            admin,
            config_path,
            access_log,
            stdout_path,
            stderr_path,
            vars,
        };
        let client = TestClient::new();
        let ready_url = format!("{}/readyz", gw.admin_url());
        let deadline = Instant::now() + self.ready_timeout;
        loop {
            if let Ok(Some(status)) = gw.child.try_wait() {
                let err = gw.stderr();
                let lower = err.to_ascii_lowercase();
                let retry = lower.contains("in use") || lower.contains("cannot listen");
                return Err((
                    format!(
                        "gateway exited ({status}) before it was ready; config:\n{}\nstderr:\n{err}",
                        gw.config_text()
                    ),
                    retry,
                ));
            }
            let ready = tokio::time::timeout(
                Duration::from_millis(500),
                client.try_request(http::Method::GET, &ready_url, &[], bytes::Bytes::new()),
            )
            .await;
            if let Ok(Ok(r)) = ready {
                if r.status == 200 {
                    return Ok(gw);
                }
            }
            if Instant::now() > deadline {
                return Err((
                    format!(
                        "gateway not ready (GET {ready_url} != 200) within {:?}; stderr:\n{}",
                        self.ready_timeout,
                        gw.stderr()
                    ),
                    false,
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// A running gateway process; killed on drop.
pub struct Gateway {
    child: Child,
    dir: tempfile::TempDir,
    listen: String,
    admin: String,
    config_path: PathBuf,
    access_log: PathBuf,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    vars: Vec<(String, String)>,
}

impl Gateway {
    /// A builder for a gateway running `config_yaml` (see the module doc for the
    /// placeholders).
    pub fn builder(config_yaml: &str) -> GatewayBuilder {
        GatewayBuilder {
            yaml: config_yaml.to_string(),
            vars: Vec::new(),
            env: Vec::new(),
            config_via_env: false,
            file_name: "gateway.yaml".into(),
            ready_timeout: READY_TIMEOUT,
        }
    }

    /// Starts a gateway running `config_yaml`; panics if it does not get ready.
    pub async fn start(config_yaml: &str) -> Gateway {
        Self::builder(config_yaml).start().await
    }

    /// `127.0.0.1:PORT` of the data plane.
    pub fn listen_addr(&self) -> &str {
        &self.listen
    }

    /// `127.0.0.1:PORT` of the admin listener.
    pub fn admin_addr(&self) -> &str {
        &self.admin
    }

    /// `http://127.0.0.1:PORT` of the data plane.
    pub fn url(&self) -> String {
        format!("http://{}", self.listen)
    }

    /// `https://127.0.0.1:PORT` of the data plane (when `server.tls` is set).
    pub fn https_url(&self) -> String {
        format!("https://{}", self.listen)
    }

    /// `http://127.0.0.1:PORT` of the admin listener.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn access_log_path(&self) -> &Path {
        &self.access_log
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Is the process still running?
    /// The process's resident memory in bytes (`VmRSS` of /proc), 0 if unreadable.
    pub fn rss_bytes(&self) -> u64 {
        fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
                line.split_whitespace().nth(1)?.parse::<u64>().ok()
            })
            .map_or(0, |kib| kib * 1024)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn config_text(&self) -> String {
        fs::read_to_string(&self.config_path).unwrap_or_default()
    }

    /// Rewrites the config file (same placeholders and values as at start),
    /// atomically.
    pub fn write_config(&self, config_yaml: &str) {
        write_atomic(&self.config_path, &template(config_yaml, &self.vars));
    }

    /// What the gateway wrote to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// What the gateway wrote to stdout so far.
    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// Full text of the access-log file (empty if it does not exist yet).
    pub fn access_log_text(&self) -> String {
        fs::read_to_string(&self.access_log).unwrap_or_default()
    }

    /// Every complete (newline-terminated) access-log line, parsed; panics with the
    /// offending line when one does not parse as an `AccessLogLine`.
    pub fn access_log_lines(&self) -> Vec<AccessLogLine> {
        self.access_log_parsed("does not parse as AccessLogLine")
    }

    /// The complete access-log lines as raw JSON values.
    pub fn access_log_json(&self) -> Vec<serde_json::Value> {
        self.access_log_parsed("is not JSON")
    }

    /// Every complete access-log line as a `T`; panics with the line and
    /// `what` when one is not.
    fn access_log_parsed<T: serde::de::DeserializeOwned>(&self, what: &str) -> Vec<T> {
        let text = self.access_log_text();
        let complete = match text.rfind('\n') {
            Some(i) => &text[..=i],
            None => "",
        };
        complete
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| match serde_json::from_str(l) {
                Ok(v) => v,
                Err(e) => panic!("access-log line {what} ({e}):\n{l}"),
            })
            .collect()
    }

    /// Waits until the access log has at least `n` lines and returns them; panics
    /// with the log and stderr after `timeout`.
    pub async fn wait_for_log_lines(&self, n: usize, timeout: Duration) -> Vec<AccessLogLine> {
        let deadline = Instant::now() + timeout;
        loop {
            let lines = self.access_log_lines();
            if lines.len() >= n {
                return lines;
            }
            if Instant::now() > deadline {
                panic!(
                    "expected at least {n} access-log lines within {timeout:?}, got {}:\n{}\nstderr:\n{}",
                    lines.len(),
                    self.access_log_text(),
                    self.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The access-log line whose `request_id` is `id`, waiting up to `timeout`.
    pub async fn wait_for_log_line(&self, request_id: &str, timeout: Duration) -> AccessLogLine {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self
                .access_log_lines()
                .into_iter()
                .find(|l| l.request_id == request_id)
            {
                return l;
            }
            if Instant::now() > deadline {
                panic!(
                    "no access-log line with request_id {request_id:?} within {timeout:?}:\n{}\nstderr:\n{}",
                    self.access_log_text(),
                    self.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The access-log lines of every request id of `ids`, by id, waiting up to
    /// `timeout` for the last of them; panics naming the missing ones.
    pub async fn wait_for_log_lines_of(
        &self,
        ids: &[String],
        timeout: Duration,
    ) -> HashMap<String, AccessLogLine> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut by_id: HashMap<String, AccessLogLine> = self
                .access_log_lines()
                .into_iter()
                .map(|l| (l.request_id.clone(), l))
                .collect();
            if ids.iter().all(|r| by_id.contains_key(r)) {
                by_id.retain(|k, _| ids.contains(k));
                return by_id;
            }
            if Instant::now() > deadline {
                let missing: Vec<&String> =
                    ids.iter().filter(|r| !by_id.contains_key(*r)).collect();
                panic!(
                    "no access-log line for {missing:?} within {timeout:?}:\n{}\nstderr:\n{}",
                    self.access_log_text(),
                    self.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends the chat request `body` to `/v1/chat/completions` with a fresh
    /// `x-request-id` (besides `headers`), checks that the answer carries that
    /// id, waits up to [`LOG_WAIT`] for the request's access-log line, and
    /// returns the answer and the line.
    pub async fn chat_logged(
        &self,
        c: &TestClient,
        body: &serde_json::Value,
        headers: &[(&str, &str)],
    ) -> (HttpResponse, AccessLogLine) {
        self.send_logged(c, "/v1/chat/completions", body, headers)
            .await
    }

    /// As [`Gateway::chat_logged`] for a POST of `body` to `path` of the data
    /// plane.
    pub async fn send_logged(
        &self,
        c: &TestClient,
        path: &str,
        body: &serde_json::Value,
        headers: &[(&str, &str)],
    ) -> (HttpResponse, AccessLogLine) {
        let rid = fresh_request_id();
        let mut h: Vec<(&str, &str)> = vec![("x-request-id", rid.as_str())];
        h.extend_from_slice(headers);
        let r = c
            .post_json_with(&format!("{}{path}", self.url()), body, &h)
            .await;
        assert_eq!(
            r.header("x-request-id"),
            Some(rid.as_str()),
            "the answer carries the request's id: {:?}",
            r.headers
        );
        let line = self.wait_for_log_line(&rid, LOG_WAIT).await;
        (r, line)
    }

    /// Waits until stderr contains `needle` (case-insensitive); returns stderr.
    pub async fn wait_for_stderr(&self, needle: &str, timeout: Duration) -> Option<String> {
        let needle = needle.to_ascii_lowercase();
        let deadline = Instant::now() + timeout;
        loop {
            let err = self.stderr();
            if err.to_ascii_lowercase().contains(&needle) {
                return Some(err);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGTERM (no libc: the `kill` command).
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Sends SIGINT (what Ctrl-C sends).
    pub fn sigint(&self) {
        self.signal("INT");
    }

    /// Sends signal `name` (`TERM`, `INT`, ...) with the `kill` command.
    pub fn signal(&self, name: &str) {
        let pid = self.pid().to_string();
        let st = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{name} {pid}: {st}");
    }

    /// Waits up to `timeout` for the process to exit; its exit status, or `None`
    /// if it still runs.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Kills the process now.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}
/// `GET /admin/health` of `gw`: the provider's own row (`token_index: null`).
pub async fn health_row(c: &TestClient, gw: &Gateway, provider: &str) -> serde_json::Value {
    let r = admin(c, gw, http::Method::GET, "/admin/health", None).await;
    assert_eq!(r.status, 200, "GET /admin/health: {}", r.text());
    let rows = r.json();
    rows.as_array()
        .and_then(|l| {
            l.iter()
                .find(|e| e["provider"] == provider && e["token_index"].is_null())
        })
        .cloned()
        .unwrap_or_else(|| panic!("no row of {provider} in GET /admin/health: {rows}"))
}

/// A call to `gw`'s admin API with the admin token, an optional JSON body.
pub async fn admin(
    c: &TestClient,
    gw: &Gateway,
    method: http::Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> HttpResponse {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let body = body.map(serde_json::Value::to_string).unwrap_or_default();
    c.request(
        method,
        &format!("{}{path}", gw.admin_url()),
        &[
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ],
        body,
    )
    .await
}
