//! A real OTLP collector for the telemetry tests: `rotel` (a Rust collector shipped
//! on PyPI, installed into `.venv` by `./scripts/test.sh`), listening for OTLP
//! over gRPC and HTTP on free loopback ports and printing what it receives
//! (`--debug-log traces,logs --debug-log-verbosity detailed`) to a file this module
//! parses into [`Span`]s and [`LogRecord`]s.
//!
//! The binary is `$GATEWAY_TEST_ROTEL`, else the one in `<repo>/.venv`.

use crate::harness::{free_ports, workspace_dir};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HOW_TO_FIX: &str = "run ./scripts/test.sh --setup-only (installs rotel into .venv)";

/// Path of the `rotel-agent` binary.
pub fn rotel_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("GATEWAY_TEST_ROTEL").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "GATEWAY_TEST_ROTEL={} does not exist; {HOW_TO_FIX}",
            p.display()
        );
        return p;
    }
    let lib = workspace_dir().join(".venv").join("lib");
    let found = fs::read_dir(&lib).ok().and_then(|dirs| {
        dirs.flatten()
            .map(|d| d.path().join("site-packages/rotel/rotel-agent"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| panic!("no rotel-agent under {}; {HOW_TO_FIX}", lib.display()))
}

/// One span as the collector printed it.
#[derive(Debug, Clone, Default)]
pub struct Span {
    pub trace_id: String,
    /// empty for a root span
    pub parent_id: String,
    pub span_id: String,
    pub name: String,
    /// `SPAN_KIND_SERVER`, `SPAN_KIND_CLIENT`, ...
    pub kind: String,
    pub status_code: String,
    pub start_ns: u64,
    pub end_ns: u64,
    /// values as printed: `Str(x)` is `x`, `Int(3)` is `3`, others kept whole
    pub attrs: BTreeMap<String, String>,
    pub events: Vec<String>,
}

impl Span {
    pub fn attr(&self, k: &str) -> Option<&str> {
        self.attrs.get(k).map(String::as_str)
    }
}

/// One log record as the collector printed it.
#[derive(Debug, Clone, Default)]
pub struct LogRecord {
    pub severity: String,
    pub body: String,
    pub trace_id: String,
    pub span_id: String,
    pub attrs: BTreeMap<String, String>,
}

impl LogRecord {
    pub fn attr(&self, k: &str) -> Option<&str> {
        self.attrs.get(k).map(String::as_str)
    }
}

pub struct Collector {
    child: Option<Child>,
    grpc: u16,
    http: u16,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Collector {
    /// Starts a collector on free ports and waits until both accept connections.
    pub async fn start() -> Collector {
        let ports = free_ports(2);
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = Collector {
            child: None,
            grpc: ports[0],
            http: ports[1],
            out: dir.path().join("collector.out"),
            _dir: dir,
        };
        c.spawn().await;
        c
    }

    async fn spawn(&mut self) {
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.out)
            .expect("collector output file");
        let err = out.try_clone().expect("dup");
        let child = Command::new(rotel_bin())
            .args([
                "start",
                "--otlp-grpc-endpoint",
                &format!("127.0.0.1:{}", self.grpc),
                "--otlp-http-endpoint",
                &format!("127.0.0.1:{}", self.http),
                "--exporter",
                "blackhole",
                "--debug-log",
                "traces",
                "--debug-log",
                "logs",
                "--debug-log",
                "metrics",
                "--debug-log-verbosity",
                "detailed",
            ])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start rotel-agent");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        for port in [self.grpc, self.http] {
            while tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                assert!(
                    Instant::now() < deadline,
                    "rotel did not listen on {port}:\n{}",
                    self.output()
                );
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    }

    /// `http://127.0.0.1:PORT` of the OTLP/gRPC receiver.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc)
    }

    /// `http://127.0.0.1:PORT` of the OTLP/HTTP receiver (base URL).
    pub fn http_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.http)
    }

    /// Stops the collector (its ports refuse connections until [`Self::restart`]).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    /// Everything the collector printed so far, colour codes removed.
    pub fn output(&self) -> String {
        strip_ansi(&fs::read_to_string(&self.out).unwrap_or_default())
    }

    pub fn spans(&self) -> Vec<Span> {
        parse_spans(&self.output())
    }

    pub fn logs(&self) -> Vec<LogRecord> {
        parse_logs(&self.output())
    }

    /// Waits until `pred` holds for the spans received (at most `timeout`).
    pub async fn wait_spans(&self, timeout: Duration, pred: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.spans();
            if pred(&s) || Instant::now() > deadline {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `pred` holds for the log records received (at most `timeout`).
    pub async fn wait_logs(
        &self,
        timeout: Duration,
        pred: impl Fn(&[LogRecord]) -> bool,
    ) -> Vec<LogRecord> {
        let deadline = Instant::now() + timeout;
        loop {
            let l = self.logs();
            if pred(&l) || Instant::now() > deadline {
                return l;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The `Sum` (a histogram's) or `Value` (a counter's) of the last data
    /// point printed after the attribute line `-> {attr}` within metric `name`
    /// (cumulative metrics: the latest total).
    pub fn metric_sum(&self, name: &str, attr: &str) -> Option<f64> {
        let out = self.output();
        let (mut in_metric, mut in_point, mut last) = (false, false, None);
        for line in out.lines() {
            let t = line.trim();
            if let Some(n) = t.strip_prefix("-> Name: ") {
                in_metric = n == name;
                in_point = false;
            } else if in_metric && t == format!("-> {attr}") {
                in_point = true;
            } else if in_point {
                if let Some(v) = t
                    .strip_prefix("Sum: ")
                    .or_else(|| t.strip_prefix("Value: "))
                {
                    last = v.parse().ok();
                    in_point = false;
                }
            }
        }
        last
    }

    pub fn out_path(&self) -> &Path {
        &self.out
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop();
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `-> key: Str(value)` as (key, value).
fn attr_line(line: &str) -> Option<(String, String)> {
    let rest = line.trim_start().strip_prefix("-> ")?;
    let (k, v) = rest.split_once(": ")?;
    let v = v.trim_end();
    let v = ["Str(", "Int(", "Bool(", "Double("]
        .iter()
        .find_map(|p| v.strip_prefix(p).and_then(|x| x.strip_suffix(')')))
        .unwrap_or(v);
    Some((k.to_string(), v.to_string()))
}

/// `    Name           : value` as (Name, value).
fn field(line: &str) -> Option<(&str, &str)> {
    let (k, v) = line.split_once(':')?;
    Some((k.trim(), v.trim()))
}

fn parse_spans(text: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut cur: Option<Span> = None;
    let mut in_events = false;
    let mut in_resource = false;
    for line in text.lines() {
        if line.starts_with("Span #") {
            spans.extend(cur.take());
            cur = Some(Span::default());
            in_events = false;
            in_resource = false;
            continue;
        }
        if line.starts_with("ResourceSpans #")
            || line.starts_with("ResourceLog")
            || line.starts_with("ResourceMetrics")
        {
            spans.extend(cur.take());
            in_resource = true;
            continue;
        }
        if in_resource {
            continue;
        }
        let Some(s) = cur.as_mut() else { continue };
        if line.starts_with("Events:") {
            in_events = true;
            continue;
        }
        if line.starts_with("Links:") {
            in_events = false;
            continue;
        }
        if let Some((k, v)) = attr_line(line) {
            if in_events {
                if k == "Name" {
                    s.events.push(v);
                }
            } else {
                s.attrs.insert(k, v);
            }
            continue;
        }
        if let Some((k, v)) = field(line) {
            match k {
                "Trace ID" => s.trace_id = v.to_string(),
                "Parent ID" => s.parent_id = v.to_string(),
                "ID" => s.span_id = v.to_string(),
                "Name" => s.name = v.to_string(),
                "Kind" => s.kind = v.to_string(),
                "Status code" => s.status_code = v.to_string(),
                "Start time" => s.start_ns = v.parse().unwrap_or(0),
                "End time" => s.end_ns = v.parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    spans.extend(cur);
    spans
}

fn parse_logs(text: &str) -> Vec<LogRecord> {
    let mut logs = Vec::new();
    let mut cur: Option<LogRecord> = None;
    for line in text.lines() {
        if line.starts_with("LogRecord #") {
            logs.extend(cur.take());
            cur = Some(LogRecord::default());
            continue;
        }
        if line.starts_with("ResourceSpans #")
            || line.starts_with("ResourceLog")
            || line.starts_with("ResourceMetrics")
            || line.starts_with("Span #")
        {
            logs.extend(cur.take());
            continue;
        }
        let Some(l) = cur.as_mut() else { continue };
        if let Some((k, v)) = attr_line(line) {
            l.attrs.insert(k, v);
            continue;
        }
        if let Some((k, v)) = field(line) {
            match k {
                "SeverityText" => l.severity = v.to_string(),
                "Body" => {
                    l.body = v
                        .strip_prefix("Str(")
                        .and_then(|x| x.strip_suffix(')'))
                        .unwrap_or(v)
                        .to_string()
                }
                "Trace ID" => l.trace_id = v.to_string(),
                "Span ID" => l.span_id = v.to_string(),
                _ => {}
            }
        }
    }
    logs.extend(cur);
    logs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spans_and_logs() {
        let text = "ResourceSpans #0\nResource attributes:\n     -> service.name: Str(ai-gateway)\nScopeSpans #0\nSpan #0\n    Trace ID       : 4bf9\n    Parent ID      : 00f0\n    ID             : 20cf\n    Name           : POST /v1/chat/completions\n    Kind           : SPAN_KIND_SERVER\nStart time: 10\nEnd time: 20\n    Status code    : STATUS_CODE_UNSET\nAttributes:\n     -> gen_ai.request.model: Str(m)\n     -> http.response.status_code: Int(200)\nEvents:\nSpanEvent #0\n     -> Name: gen_ai.first_token\nResourceLog #0\nLogRecord #0\nSeverityText: INFO\nBody: Str(POST / 200)\nAttributes:\n     -> ai_log.model: Str(m)\n    Trace ID       : 4bf9\n    Span ID        : 20cf\nFlags: 1\n";
        let s = parse_spans(text);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].parent_id, "00f0");
        assert_eq!(s[0].attr("http.response.status_code"), Some("200"));
        assert_eq!(s[0].events, vec!["gen_ai.first_token"]);
        assert_eq!(s[0].end_ns, 20);
        let l = parse_logs(text);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].attr("ai_log.model"), Some("m"));
        assert_eq!(
            (l[0].trace_id.as_str(), l[0].span_id.as_str()),
            ("4bf9", "20cf")
        );
        assert_eq!(l[0].body, "POST / 200");
    }
}
