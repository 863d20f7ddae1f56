//! Small helpers for `benches/run-load.sh`:
//!
//! * `free-port` prints a free TCP port on 127.0.0.1;
//! * `wait-http --url URL` polls a GET until it answers 200 (or times out);
//! * `rss --pid PID...` prints the summed VmRSS in KiB;
//! * `report --raw-dir DIR ...` turns the loadgen JSON files into the
//!   markdown table (stdout) and a combined raw JSON file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use gateway_benches::rss_kib;
use http::header::HOST;
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

#[derive(Parser)]
#[command(about = "Helpers for the load harness")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print a free TCP port on 127.0.0.1.
    FreePort,
    /// Poll `GET URL` until it returns 200.
    WaitHttp {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 30.0)]
        timeout_s: f64,
        /// Fail early if this process exits.
        #[arg(long)]
        pid: Option<u32>,
        /// Any HTTP response counts as ready (not only 200).
        #[arg(long)]
        any_status: bool,
    },
    /// Print the summed VmRSS (KiB) of the given processes.
    Rss {
        #[arg(long = "pid", required = true)]
        pids: Vec<u32>,
    },
    /// Build the results table from the raw loadgen files.
    Report(ReportArgs),
}

#[derive(Parser)]
struct ReportArgs {
    /// Directory with `<target>-<mode>-c<N>.json` and `<target>.meta.json`.
    #[arg(long)]
    raw_dir: PathBuf,
    /// Connections of the throughput runs.
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// Where to write the combined raw JSON.
    #[arg(long)]
    out_json: Option<PathBuf>,
    /// `key=value` lines for the "Run" section (repeatable, in order).
    #[arg(long = "info")]
    info: Vec<String>,
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::FreePort => {
            let l = std::net::TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
            println!("{}", l.local_addr()?.port());
            Ok(())
        }
        Cmd::WaitHttp {
            url,
            timeout_s,
            pid,
            any_status,
        } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(wait_http(
                &url,
                Duration::from_secs_f64(timeout_s),
                pid,
                any_status,
            ))
        }
        Cmd::Rss { pids } => {
            let mut total = 0;
            for p in pids {
                total += rss_kib(p).with_context(|| format!("no VmRSS for pid {p}"))?;
            }
            println!("{total}");
            Ok(())
        }
        Cmd::Report(a) => report(&a),
    }
}

async fn get_status(uri: &Uri) -> Result<u16> {
    let authority = uri.authority().context("URL has no host")?;
    let addr = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    );
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(conn);
    let req = Request::get(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .header(HOST, authority.as_str())
        .body(Empty::<Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    driver.abort();
    Ok(status)
}

async fn wait_http(url: &str, timeout: Duration, pid: Option<u32>, any_status: bool) -> Result<()> {
    let uri: Uri = url.parse().context("parsing --url")?;
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no attempt");
    while Instant::now() < deadline {
        if let Some(p) = pid {
            if !Path::new(&format!("/proc/{p}")).exists() {
                bail!("process {p} exited while waiting for {url}");
            }
        }
        match tokio::time::timeout(Duration::from_secs(2), get_status(&uri)).await {
            Ok(Ok(200)) => return Ok(()),
            Ok(Ok(_)) if any_status => return Ok(()),
            Ok(Ok(s)) => last = format!("status {s}"),
            Ok(Err(e)) => last = format!("{e:#}"),
            Err(_) => last = "timed out".into(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{url} not ready after {timeout:?}: {last}")
}

// ---------------------------------------------------------------- report

const TARGETS: [&str; 3] = ["direct", "nginx", "gateway"];
const MODES: [&str; 2] = ["json", "stream"];

fn load(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn num(v: Option<&Value>, ptr: &str) -> Option<f64> {
    v?.pointer(ptr)?.as_f64()
}

fn fmt_int(v: f64) -> String {
    let n = v.round() as i64;
    let s = n.unsigned_abs().to_string();
    let digits: Vec<char> = s.chars().collect();
    let out = digits
        .rchunks(3)
        .rev()
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(",");
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn or_na(v: Option<String>) -> String {
    v.unwrap_or_else(|| "n/a".into())
}

fn us(v: Option<f64>) -> String {
    or_na(v.map(|x| format!("{} µs", fmt_int(x))))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// CPU time per request in µs from a CPU share (% of one core) and a rate.
fn cpu_per_req(cpu_pct: Option<f64>, rps: Option<f64>) -> Option<f64> {
    match (cpu_pct, rps) {
        (Some(c), Some(r)) if r > 0.0 => Some(c / 100.0 * 1e6 / r),
        _ => None,
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    or_na(r.map(|r| format!("{r:.2}x")))
}

/// Numbers of one (target, mode) row.
#[derive(Default, Clone, Copy)]
struct Row {
    rps: Option<f64>,
    cpu_pct: Option<f64>,
    errors: Option<f64>,
    p50: Option<f64>,
    p99: Option<f64>,
    ttft_p99: Option<f64>,
    added_p50: Option<f64>,
    added_p99: Option<f64>,
    added_ttft_p99: Option<f64>,
    foreign_hi: Option<f64>,
    foreign_lo: Option<f64>,
}

fn report(a: &ReportArgs) -> Result<()> {
    let c = a.connections;
    let mut runs = BTreeMap::new();
    let mut metas = BTreeMap::new();
    let mut rows: BTreeMap<(&str, &str), Row> = BTreeMap::new();
    for t in TARGETS {
        if let Some(m) = load(&a.raw_dir.join(format!("{t}.meta.json"))) {
            metas.insert(t.to_string(), m);
        }
        for m in MODES {
            let hi = load(&a.raw_dir.join(format!("{t}-{m}-c{c}.json")));
            let lo = load(&a.raw_dir.join(format!("{t}-{m}-c1.json")));
            let errors = match (num(hi.as_ref(), "/errors"), num(lo.as_ref(), "/errors")) {
                (None, None) => None,
                (x, y) => Some(x.unwrap_or(0.0) + y.unwrap_or(0.0)),
            };
            let row = Row {
                rps: num(hi.as_ref(), "/rps"),
                cpu_pct: num(hi.as_ref(), "/sut_cpu_pct"),
                errors,
                p50: num(lo.as_ref(), "/latency_us/p50"),
                p99: num(lo.as_ref(), "/latency_us/p99"),
                ttft_p99: num(lo.as_ref(), "/ttft_us/p99"),
                foreign_hi: num(hi.as_ref(), "/foreign_cpu_pct"),
                foreign_lo: num(lo.as_ref(), "/foreign_cpu_pct"),
                ..Row::default()
            };
            rows.insert((t, m), row);
            if let Some(v) = hi {
                runs.insert(format!("{t}-{m}-c{c}"), v);
            }
            if let Some(v) = lo {
                runs.insert(format!("{t}-{m}-c1"), v);
            }
        }
    }
    // Added latency = scenario minus direct (same mode).
    for m in MODES {
        let direct = rows.get(&("direct", m)).copied().unwrap_or_default();
        for t in TARGETS {
            if let Some(r) = rows.get_mut(&(t, m)) {
                let sub = |x: Option<f64>, y: Option<f64>| Some(x? - y?);
                r.added_p50 = sub(r.p50, direct.p50);
                r.added_p99 = sub(r.p99, direct.p99);
                r.added_ttft_p99 = sub(r.ttft_p99, direct.ttft_p99);
            }
        }
    }

    let rss = |t: &str| -> Option<f64> { num(metas.get(t), "/rss_kib") };
    let mut md = String::new();
    writeln!(md, "# Load benchmark: direct vs nginx vs gateway\n")?;
    writeln!(
        md,
        "| scenario | rps @{c} | rps vs nginx | SUT CPU @{c} | CPU/req @{c} | added p50 @1 | added p99 @1 | added p50 vs nginx | added TTFT p99 @1 | idle RSS | errors |"
    )?;
    writeln!(
        md,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )?;
    for m in MODES {
        let nginx = rows.get(&("nginx", m)).copied().unwrap_or_default();
        for t in TARGETS {
            let r = rows.get(&(t, m)).copied().unwrap_or_default();
            let is_direct = t == "direct";
            let added = |v: Option<f64>| if is_direct { "—".to_string() } else { us(v) };
            writeln!(
                md,
                "| {t} → mock, {m} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                or_na(r.rps.map(fmt_int)),
                fmt_ratio(ratio(r.rps, nginx.rps)),
                or_na(r.cpu_pct.map(|p| format!("{p:.0}%"))),
                or_na(cpu_per_req(r.cpu_pct, r.rps).map(|v| format!("{v:.1} µs"))),
                added(r.added_p50),
                added(r.added_p99),
                if is_direct {
                    "—".into()
                } else {
                    fmt_ratio(ratio(r.added_p50, nginx.added_p50))
                },
                if m == "stream" && !is_direct {
                    us(r.added_ttft_p99)
                } else {
                    "—".into()
                },
                if is_direct {
                    "—".into()
                } else {
                    or_na(rss(t).map(|k| format!("{:.1} MiB", k / 1024.0)))
                },
                or_na(r.errors.map(fmt_int)),
            )?;
        }
    }

    writeln!(
        md,
        "\nAbsolute latencies @1 connection (not subtracted), and CPU used by processes \
         outside the benchmark during each run (noise; % of one core):\n"
    )?;
    writeln!(
        md,
        "| scenario | p50 | p99 | TTFT p99 | other CPU @{c} | other CPU @1 |"
    )?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|")?;
    let pct = |v: Option<f64>| or_na(v.map(|p| format!("{p:.0}%")));
    for m in MODES {
        for t in TARGETS {
            let r = rows.get(&(t, m)).copied().unwrap_or_default();
            writeln!(
                md,
                "| {t} → mock, {m} | {} | {} | {} | {} | {} |",
                us(r.p50),
                us(r.p99),
                if m == "stream" {
                    us(r.ttft_p99)
                } else {
                    "—".into()
                },
                pct(r.foreign_hi),
                pct(r.foreign_lo),
            )?;
        }
    }

    // Targets for the gateway (benchmark goals, not pass/fail tests).
    writeln!(md, "\nGateway against its targets:\n")?;
    let verdict = |ok: Option<bool>| match ok {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "n/a",
    };
    for m in MODES {
        let g = rows.get(&("gateway", m)).copied().unwrap_or_default();
        let n = rows.get(&("nginx", m)).copied().unwrap_or_default();
        let r = ratio(g.rps, n.rps);
        writeln!(
            md,
            "- {m}: rps @{c} ≥ 1.0x nginx: {} ({})",
            verdict(r.map(|r| r >= 1.0)),
            fmt_ratio(r)
        )?;
        let lat_ok = match (g.added_p50, n.added_p50) {
            (Some(g), Some(n)) => Some(g <= n),
            _ => None,
        };
        writeln!(
            md,
            "- {m}: added p50 @1 ≤ nginx's: {} ({} vs {})",
            verdict(lat_ok),
            us(g.added_p50),
            us(n.added_p50)
        )?;
    }
    let g = rows
        .get(&("gateway", "stream"))
        .copied()
        .unwrap_or_default();
    writeln!(
        md,
        "- stream: added TTFT p99 @1 ≤ 200 µs: {} ({})",
        verdict(g.added_ttft_p99.map(|v| v <= 200.0)),
        us(g.added_ttft_p99)
    )?;
    let grss = rss("gateway");
    writeln!(
        md,
        "- idle RSS ≤ 20 MiB: {} ({})",
        verdict(grss.map(|k| k <= 20.0 * 1024.0)),
        or_na(grss.map(|k| format!("{:.1} MiB", k / 1024.0)))
    )?;

    if !a.info.is_empty() {
        writeln!(md, "\nRun:\n")?;
        for i in &a.info {
            match i.split_once('=') {
                Some((k, v)) => writeln!(md, "- {k}: {v}")?,
                None => writeln!(md, "- {i}")?,
            }
        }
    }
    let mut first_errors = Vec::new();
    for (name, v) in &runs {
        if let Some(e) = v.get("first_error").and_then(Value::as_str) {
            first_errors.push(format!("- {name}: {e}"));
        }
    }
    if !first_errors.is_empty() {
        writeln!(md, "\nFirst error seen per run:\n")?;
        for e in first_errors {
            writeln!(md, "{e}")?;
        }
    }
    print!("{md}");

    if let Some(out) = &a.out_json {
        let info: BTreeMap<String, String> = a
            .info
            .iter()
            .map(|i| match i.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (i.clone(), String::new()),
            })
            .collect();
        let combined = json!({ "info": info, "meta": metas, "runs": runs });
        std::fs::write(out, serde_json::to_vec_pretty(&combined)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_thousands() {
        assert_eq!(fmt_int(0.0), "0");
        assert_eq!(fmt_int(999.4), "999");
        assert_eq!(fmt_int(12345.0), "12,345");
        assert_eq!(fmt_int(-1234567.0), "-1,234,567");
    }
}
