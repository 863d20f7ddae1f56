//! Closed-loop HTTP/1.1 load generator for the load harness.
//!
//! Opens `--connections` independent keep-alive connections (one hyper
//! `client::conn::http1` per connection, no pool); each connection sends
//! requests back to back. Requests that start after the warm-up and finish
//! before the end of the measured window are recorded. The result is printed
//! as one JSON object on stdout; a one-line summary goes to stderr.
//!
//! Latency is the time from sending the request to receiving the complete
//! body. For `--stream`, TTFT is the time to the first body frame containing
//! `data:`.
//!
//! Runs on a single-threaded tokio runtime (the harness pins it to one core).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Parser;
use gateway_benches::{cpu_ticks, cpu_times, machine_busy_ticks, percentiles_us, Percentiles};
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpStream;

const DEFAULT_BODY: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32}"#;

/// How long past the end of the window an in-flight request may take before
/// it is abandoned (it is not recorded either way).
const GRACE: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Parser, Debug)]
#[command(about = "Closed-loop HTTP/1.1 load generator (JSON report on stdout)")]
struct Args {
    /// Target URL, e.g. http://127.0.0.1:8080/v1/chat/completions
    #[arg(long)]
    url: String,
    /// Number of independent keep-alive connections.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Measured duration in seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration_s: f64,
    /// Warm-up in seconds; requests started during it are not recorded.
    #[arg(long, default_value_t = 2.0)]
    warmup_s: f64,
    /// File holding the JSON request body (default: a small chat completion).
    #[arg(long)]
    body_file: Option<PathBuf>,
    /// Ask for an SSE stream (`"stream": true` is set in the body) and
    /// measure time to first token.
    #[arg(long)]
    stream: bool,
    /// Extra request header `Name: value` (repeatable).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Stop after this many requests in total (warm-up included).
    #[arg(long)]
    requests: Option<u64>,
    /// Process of the system under test whose CPU time is sampled over the
    /// measured window (repeatable; reported as the sum, in percent of one
    /// core).
    #[arg(long = "cpu-pid")]
    cpu_pids: Vec<u32>,
    /// Other process of the benchmark (e.g. the mock upstream) whose CPU
    /// time is not counted as foreign load (repeatable).
    #[arg(long = "aux-pid")]
    aux_pids: Vec<u32>,
    /// Clock ticks per second for /proc/PID/stat (`getconf CLK_TCK`).
    #[arg(long, default_value_t = 100)]
    clk_tck: u64,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 10.0)]
    request_timeout_s: f64,
    /// Free-form label copied into the report.
    #[arg(long)]
    label: Option<String>,
}

struct Target {
    addr: SocketAddr,
    host: HeaderValue,
    path: Uri,
    body: Bytes,
    headers: Vec<(HeaderName, HeaderValue)>,
    stream: bool,
}

struct Window {
    measure_from: Instant,
    end: Instant,
    request_timeout: Duration,
    max_requests: Option<u64>,
    issued: AtomicU64,
}

#[derive(Default)]
struct ConnStats {
    latencies_us: Vec<u64>,
    ttft_us: Vec<u64>,
    requests: u64,
    errors: u64,
    warmup_requests: u64,
    warmup_errors: u64,
    status_errors: u64,
    reconnects: u64,
    bytes: u64,
    first_error: Option<String>,
}

impl ConnStats {
    fn error(&mut self, in_window: bool, msg: String) {
        if in_window {
            self.errors += 1;
        } else {
            self.warmup_errors += 1;
        }
        if self.first_error.is_none() {
            self.first_error = Some(msg);
        }
    }
}

/// CPU ticks at one instant.
struct CpuSample {
    sut: Option<u64>,
    /// the kernel's part of `sut`
    sut_sys: Option<u64>,
    ours: Option<u64>,
    machine: Option<u64>,
}

impl CpuSample {
    fn take(sut: &[u32], ours: &[u32]) -> CpuSample {
        let (sut, sut_sys) = cpu_times(sut).unzip();
        CpuSample {
            sut,
            sut_sys,
            ours: cpu_ticks(ours),
            machine: machine_busy_ticks(),
        }
    }
}

struct Outcome {
    latency: Duration,
    ttft: Option<Duration>,
    bytes: u64,
    ok: bool,
    status: u16,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building tokio runtime")?;
    let report = rt.block_on(run(args))?;
    println!("{report}");
    Ok(())
}

fn build_target(args: &Args) -> Result<Target> {
    let uri: Uri = args.url.parse().context("parsing --url")?;
    if uri.scheme_str() != Some("http") {
        bail!("only http:// URLs are supported: {}", args.url);
    }
    let authority = uri.authority().context("--url has no host")?.clone();
    let port = authority.port_u16().unwrap_or(80);
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(authority.host(), port))
        .with_context(|| format!("resolving {authority}"))?
        .next()
        .with_context(|| format!("{authority} resolved to nothing"))?;
    let path: Uri = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .parse()
        .context("parsing path")?;
    let raw = match &args.body_file {
        Some(p) => std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        None => DEFAULT_BODY.as_bytes().to_vec(),
    };
    let body = if args.stream {
        let mut v: serde_json::Value =
            serde_json::from_slice(&raw).context("request body is not JSON")?;
        let obj = v
            .as_object_mut()
            .context("request body is not a JSON object")?;
        obj.insert("stream".into(), serde_json::Value::Bool(true));
        Bytes::from(serde_json::to_vec(&v)?)
    } else {
        Bytes::from(raw)
    };
    let mut headers = Vec::new();
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .with_context(|| format!("--header {h:?} is not `Name: value`"))?;
        headers.push((
            HeaderName::from_bytes(name.trim().as_bytes())
                .with_context(|| format!("bad header name in {h:?}"))?,
            HeaderValue::from_str(value.trim())
                .with_context(|| format!("bad header value in {h:?}"))?,
        ));
    }
    Ok(Target {
        addr,
        host: HeaderValue::from_str(authority.as_str())?,
        path,
        body,
        headers,
        stream: args.stream,
    })
}

async fn run(args: Args) -> Result<serde_json::Value> {
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    if !(args.duration_s > 0.0 && args.warmup_s >= 0.0 && args.request_timeout_s > 0.0) {
        bail!("durations must be positive");
    }
    let target = Arc::new(build_target(&args)?);
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup_s);
    let window = Arc::new(Window {
        measure_from,
        end: measure_from + Duration::from_secs_f64(args.duration_s),
        request_timeout: Duration::from_secs_f64(args.request_timeout_s),
        max_requests: args.requests,
        issued: AtomicU64::new(0),
    });

    // CPU over the measured window: the system under test, the other
    // processes of the benchmark (mock, this loadgen) and the whole machine,
    // so that CPU used by anything else (noise) can be reported.
    let cpu_task = {
        let sut = args.cpu_pids.clone();
        let mut ours = args.aux_pids.clone();
        ours.push(std::process::id());
        ours.retain(|p| !sut.contains(p));
        let w = window.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(w.measure_from.into()).await;
            let t0 = Instant::now();
            let before = CpuSample::take(&sut, &ours);
            tokio::time::sleep_until(w.end.into()).await;
            let after = CpuSample::take(&sut, &ours);
            (before, after, t0.elapsed())
        })
    };

    let mut tasks = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let t = target.clone();
        let w = window.clone();
        tasks.push(tokio::spawn(async move {
            let mut stats = ConnStats::default();
            connection_loop(&t, &w, &mut stats).await;
            stats
        }));
    }
    let mut all = ConnStats::default();
    let mut task_failures = 0u64;
    for t in tasks {
        match t.await {
            Ok(s) => {
                all.latencies_us.extend(s.latencies_us);
                all.ttft_us.extend(s.ttft_us);
                all.requests += s.requests;
                all.errors += s.errors;
                all.warmup_requests += s.warmup_requests;
                all.warmup_errors += s.warmup_errors;
                all.status_errors += s.status_errors;
                all.reconnects += s.reconnects;
                all.bytes += s.bytes;
                if all.first_error.is_none() {
                    all.first_error = s.first_error;
                }
            }
            Err(_) => task_failures += 1,
        }
    }
    let finished = Instant::now();
    // With --requests the run may stop before the window ends.
    let measured = finished
        .min(window.end)
        .saturating_duration_since(window.measure_from)
        .as_secs_f64();
    let (cpu_pct, sys_cpu_pct, foreign_cpu_pct) = match cpu_task.await {
        Ok((before, after, wall)) => {
            let pct = |ticks: u64| {
                ticks as f64 / args.clk_tck.max(1) as f64 / wall.as_secs_f64().max(1e-9) * 100.0
            };
            let delta = |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?));
            let sut = delta(before.sut, after.sut);
            let ours = delta(before.ours, after.ours);
            let machine = delta(before.machine, after.machine);
            let foreign = match (machine, ours) {
                (Some(m), Some(o)) => Some(pct(m.saturating_sub(o + sut.unwrap_or(0)))),
                _ => None,
            };
            let sys = delta(before.sut_sys, after.sut_sys);
            let measured = |t: Option<u64>| t.filter(|_| !args.cpu_pids.is_empty()).map(pct);
            (measured(sut), measured(sys), foreign)
        }
        Err(_) => (None, None, None),
    };

    let lat = percentiles_us(&mut all.latencies_us);
    let ttft = if args.stream {
        Some(percentiles_us(&mut all.ttft_us))
    } else {
        None
    };
    let rps = if measured > 0.0 {
        all.requests as f64 / measured
    } else {
        0.0
    };
    eprintln!(
        "loadgen {} c={} stream={} requests={} errors={} rps={:.0} p50={}us p99={}us{}",
        args.url,
        args.connections,
        args.stream,
        all.requests,
        all.errors,
        rps,
        lat.p50,
        lat.p99,
        ttft.as_ref()
            .map(|t| format!(" ttft_p50={}us ttft_p99={}us", t.p50, t.p99))
            .unwrap_or_default(),
    );
    Ok(json!({
        "label": args.label,
        "url": args.url,
        "connections": args.connections,
        "stream": args.stream,
        "warmup_s": args.warmup_s,
        "duration_s": args.duration_s,
        "measured_s": measured,
        "requests": all.requests,
        "errors": all.errors,
        "status_errors": all.status_errors,
        "warmup_requests": all.warmup_requests,
        "warmup_errors": all.warmup_errors,
        "reconnects": all.reconnects,
        "task_failures": task_failures,
        "first_error": all.first_error,
        "bytes": all.bytes,
        "rps": rps,
        "latency_us": lat.to_json(),
        "ttft_us": ttft.as_ref().map(Percentiles::to_json),
        "sut_cpu_pct": cpu_pct,
        "sut_sys_cpu_pct": sys_cpu_pct,
        "foreign_cpu_pct": foreign_cpu_pct,
        "sut_cpu_pids": args.cpu_pids,
    }))
}

/// Deadline for a request started now: its own timeout, but never much past
/// the end of the window.
fn request_deadline(w: &Window, now: Instant) -> Instant {
    (now + w.request_timeout).min(w.end + GRACE)
}

fn take_ticket(w: &Window) -> bool {
    match w.max_requests {
        None => true,
        Some(max) => w.issued.fetch_add(1, Ordering::Relaxed) < max,
    }
}

async fn connection_loop(t: &Target, w: &Window, stats: &mut ConnStats) {
    let mut first = true;
    'connect: while Instant::now() < w.end {
        if !first {
            stats.reconnects += 1;
        }
        first = false;
        let now = Instant::now();
        let in_window = now >= w.measure_from;
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(t.addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                stats.error(in_window, format!("connect: {e}"));
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            Err(_) => {
                stats.error(in_window, "connect: timed out".into());
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) = match http1::handshake(TokioIo::new(stream)).await {
            Ok(x) => x,
            Err(e) => {
                stats.error(in_window, format!("handshake: {e}"));
                continue;
            }
        };
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let _abort = AbortOnDrop(driver);

        loop {
            let now = Instant::now();
            if now >= w.end {
                break 'connect;
            }
            if !take_ticket(w) {
                break 'connect;
            }
            if sender.ready().await.is_err() {
                continue 'connect;
            }
            let mut req = Request::new(Full::new(t.body.clone()));
            *req.method_mut() = Method::POST;
            *req.uri_mut() = t.path.clone();
            let h = req.headers_mut();
            h.insert(HOST, t.host.clone());
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            for (k, v) in &t.headers {
                h.insert(k.clone(), v.clone());
            }
            let started = Instant::now();
            let in_window = started >= w.measure_from;
            let deadline = request_deadline(w, started);
            let res = tokio::time::timeout_at(
                deadline.into(),
                one_request(&mut sender, req, t.stream, started),
            )
            .await;
            let done = Instant::now();
            match res {
                Ok(Ok(o)) => {
                    if done > w.end {
                        // Finished after the window: not recorded.
                        break 'connect;
                    }
                    if !in_window {
                        if o.ok {
                            stats.warmup_requests += 1;
                        } else {
                            stats.error(false, format!("status {}", o.status));
                        }
                        continue;
                    }
                    if o.ok {
                        stats.requests += 1;
                        stats.bytes += o.bytes;
                        stats.latencies_us.push(o.latency.as_micros() as u64);
                        if let Some(tt) = o.ttft {
                            stats.ttft_us.push(tt.as_micros() as u64);
                        }
                    } else {
                        stats.status_errors += 1;
                        stats.error(true, format!("status {}", o.status));
                    }
                }
                Ok(Err(e)) => {
                    if done <= w.end {
                        stats.error(in_window, format!("request: {e:#}"));
                    }
                    continue 'connect;
                }
                Err(_) => {
                    if done <= w.end {
                        stats.error(in_window, "request: timed out".into());
                    }
                    continue 'connect;
                }
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn one_request(
    sender: &mut http1::SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
    stream: bool,
    started: Instant,
) -> Result<Outcome> {
    let resp = sender.send_request(req).await.context("send")?;
    let status = resp.status();
    let mut body = resp.into_body();
    let mut ttft = None;
    let mut bytes = 0u64;
    let mut saw_data = false;
    while let Some(frame) = body.frame().await {
        let frame = frame.context("body")?;
        if let Some(data) = frame.data_ref() {
            bytes += data.len() as u64;
            if stream && !saw_data && memmem(data, b"data:") {
                saw_data = true;
                ttft = Some(started.elapsed());
            }
        }
    }
    let latency = started.elapsed();
    // A stream that never carried an SSE event is a failure too.
    let ok = status.is_success() && (!stream || saw_data);
    Ok(Outcome {
        latency,
        ttft,
        bytes,
        ok,
        status: status.as_u16(),
    })
}

fn memmem(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
