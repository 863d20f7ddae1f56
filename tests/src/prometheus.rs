//! A real Prometheus for the dashboard test: Debian's `prometheus` on a free
//! loopback port with its own tempdir (config and TSDB), scraping the given
//! targets' `/metrics` every second; instant queries through its HTTP API
//! (`/api/v1/query`), the targets' health (`/api/v1/targets`), and
//! `promtool check metrics` on a page of the text format.
//!
//! The binaries are `$GATEWAY_TEST_PROMETHEUS` and `$GATEWAY_TEST_PROMTOOL`,
//! else `prometheus` and `promtool` on `PATH` (both in the Debian package
//! `prometheus`, which `./scripts/test.sh` installs). A missing one fails the
//! test with what to install; the process is killed on drop.

use crate::client::TestClient;
use crate::harness::{self, free_port};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HOW_TO_FIX: &str = "install the Debian package `prometheus` \
     (apt-get install --no-install-recommends prometheus, or ./scripts/test.sh --setup-only)";

/// How long Prometheus may take to answer `/-/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Ports tried when the one picked turns out to be taken.
const START_ATTEMPTS: usize = 3;

/// Path of the `prometheus` server.
pub fn prometheus_bin() -> PathBuf {
    harness::find_tool("GATEWAY_TEST_PROMETHEUS", "prometheus", &[], HOW_TO_FIX)
}

/// Path of `promtool`.
pub fn promtool_bin() -> PathBuf {
    harness::find_tool("GATEWAY_TEST_PROMTOOL", "promtool", &[], HOW_TO_FIX)
}

/// `promtool check metrics` on `text` (a `/metrics` page): what it reports,
/// a line each (lint problems as `<metric> <problem>`; a page it cannot parse
/// as its error); empty when it finds nothing.
pub fn check_metrics(text: &str) -> Vec<String> {
    let mut child = Command::new(promtool_bin())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run promtool: {e}; {HOW_TO_FIX}"));
    let mut stdin = child.stdin.take().expect("promtool stdin");
    let page = text.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(page.as_bytes()));
    let out = child.wait_with_output().expect("promtool output");
    writer
        .join()
        .expect("promtool stdin writer")
        .expect("write to promtool");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<String> = report
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if !out.status.success() && lines.is_empty() {
        lines.push(format!("promtool check metrics: {}", out.status));
    }
    lines
}

/// A running Prometheus.
pub struct Prometheus {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (`host:port`, `/metrics`) every
    /// `interval` (job `gateway`), and waits until it is ready.
    pub async fn start(targets: &[String], interval: Duration) -> Prometheus {
        let bin = prometheus_bin();
        let every = format!("{}ms", interval.as_millis());
        let list: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        let config = format!(
            "global:\n  scrape_interval: {every}\n  scrape_timeout: {every}\n  evaluation_interval: {every}\n\
             scrape_configs:\n  - job_name: gateway\n    metrics_path: /metrics\n    static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        );
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::tempdir().expect("tempdir");
            std::fs::write(dir.path().join("prometheus.yml"), &config)
                .expect("write prometheus.yml");
            let port = free_port();
            let child = spawn(&bin, dir.path(), port);
            let mut p = Prometheus { child, port, dir };
            match p.wait_ready().await {
                Ok(()) => return p,
                // (killed on drop)
                Err(e) => last = e,
            }
        }
        panic!("prometheus did not start: {last}")
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What Prometheus logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let url = format!("{}/-/ready", self.url());
        let deadline = Instant::now() + READY_TIMEOUT;
        let c = TestClient::new();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited ({status}):\n{}", self.log()));
            }
            if let Ok(r) = c
                .try_request(http::Method::GET, &url, &[], bytes::Bytes::new())
                .await
            {
                if r.status == 200 {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not ready after {READY_TIMEOUT:?}:\n{}",
                    self.log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `GET /api/v1/<path>`: the `data` of a successful answer, else an error
    /// with Prometheus's message.
    async fn api(&self, path: &str) -> Result<Value, String> {
        let url = format!("{}/api/v1/{path}", self.url());
        let r = TestClient::new()
            .try_request(http::Method::GET, &url, &[], bytes::Bytes::new())
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let v: Value = serde_json::from_slice(&r.body)
            .map_err(|e| format!("GET {url}: {} not JSON ({e}): {}", r.status, r.text()))?;
        if v["status"] == "success" {
            Ok(v["data"].clone())
        } else {
            Err(format!("{} {}: {}", r.status, v["errorType"], v["error"]))
        }
    }

    /// The active targets (`/api/v1/targets`).
    pub async fn targets(&self) -> Vec<Value> {
        match self.api("targets?state=active").await {
            Ok(d) => d["activeTargets"].as_array().cloned().unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    /// Waits until `n` targets are up (each scraped successfully at least
    /// once); panics with the targets' state after `timeout`.
    pub async fn wait_targets_up(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let targets = self.targets().await;
            let up = targets.iter().filter(|t| t["health"] == "up").count();
            if up >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{up} of {n} targets up after {timeout:?}: {targets:#?}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until every active target has been scraped (the scrape began)
    /// after `since`: what the targets counted up to then is in Prometheus.
    pub async fn wait_scraped_since(&self, since: std::time::SystemTime, timeout: Duration) {
        let since = jiff::Timestamp::try_from(since).expect("a time after 1970");
        let deadline = Instant::now() + timeout;
        loop {
            let targets = self.targets().await;
            let all = !targets.is_empty()
                && targets.iter().all(|t| {
                    t["lastScrape"]
                        .as_str()
                        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
                        .is_some_and(|last| last > since)
                });
            if all {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "targets not all scraped since {since} after {timeout:?}: {targets:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// An instant query (`/api/v1/query`, now): its result, each element one
    /// series (a scalar or string result is one element); an error with
    /// Prometheus's message when the expression is refused.
    pub async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let q: String = form_urlencoded::byte_serialize(expr.as_bytes()).collect();
        let data = self.api(&format!("query?query={q}")).await?;
        Ok(match data["resultType"].as_str() {
            Some("scalar" | "string") => vec![data["result"].clone()],
            _ => data["result"].as_array().cloned().unwrap_or_default(),
        })
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(bin: &Path, dir: &Path, port: u16) -> Child {
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("prometheus.log");
    let err = log.try_clone().expect("dup");
    Command::new(bin)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}; {HOW_TO_FIX}", bin.display()))
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.kill();
    }
}
