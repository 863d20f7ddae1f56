//! Small helpers for `benches/run-load.sh`:
//!
//! * `free-port` prints a free TCP port on 127.0.0.1;
//! * `wait-http --url URL` polls a GET until it answers 200 (or times out);
//! * `get --url URL` prints the body of one GET (the gateway's `/metrics`);
//! * `rss --pid PID...` prints the summed VmRSS in KiB;
//! * `report --raw-dir DIR ...` turns the loadgen JSON files into the
//!   markdown table (stdout) and a combined raw JSON file; for the
//!   `gateway-auth`, `gateway-quota` and `gateway-health` targets it also
//!   reports the Redis commands per request from `<target>.meta.json` and the
//!   INFO snapshots, and with `--ab-rounds N` the median requests/s of the
//!   alternating quotas / health rounds (`ab<r>.<target>-<mode>-c<N>.json`).

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
    /// Print the body of `GET URL` (fails unless it answers 200).
    Get {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 5.0)]
        timeout_s: f64,
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
    /// Rounds of the quotas / health A/B (BENCH_AB_ROUNDS): round 1 is the
    /// table's rows, rounds 2..=N the `ab<r>.gateway-{quota,health}-<mode>-c<N>.json`
    /// throughput runs.
    #[arg(long, default_value_t = 1)]
    ab_rounds: u32,
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
        Cmd::Get { url, timeout_s } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let uri: Uri = url.parse().context("parsing --url")?;
            let (status, body) = rt.block_on(async {
                tokio::time::timeout(Duration::from_secs_f64(timeout_s), get(&uri))
                    .await
                    .with_context(|| format!("GET {url} timed out"))?
            })?;
            if status != 200 {
                bail!("GET {url}: status {status}");
            }
            print!("{}", String::from_utf8_lossy(&body));
            Ok(())
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
    Ok(get(uri).await?.0)
}

async fn get(uri: &Uri) -> Result<(u16, Bytes)> {
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
    let body = resp.into_body().collect().await?.to_bytes();
    driver.abort();
    Ok((status, body))
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

const TARGETS: [&str; 6] = [
    "direct",
    "nginx",
    "gateway",
    "gateway-auth",
    "gateway-quota",
    "gateway-health",
];
const MODES: [&str; 2] = ["json", "stream"];

/// How a target is named in the tables.
fn display_name(target: &str) -> &str {
    match target {
        "gateway-auth" => "gateway + auth",
        "gateway-quota" => "gateway + auth + quotas",
        "gateway-health" => "gateway + auth + quotas + health",
        t => t,
    }
}

/// Requests the gateway saw in one loadgen run, warm-up and failures included
/// (requests still in flight when the window closed are not counted).
fn requests_made(run: &Value) -> Option<f64> {
    let fields = ["requests", "errors", "warmup_requests", "warmup_errors"];
    let mut total = 0.0;
    for f in fields {
        total += run.get(f)?.as_f64()?;
    }
    Some(total)
}

/// Redis commands the gateway sent during the measured runs of one Redis
/// target (gateway + auth, gateway + auth + quotas, ... + health), per request
/// made in them.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RedisUse {
    commands: f64,
    requests: f64,
    window_s: Option<f64>,
}

impl RedisUse {
    fn per_request(&self) -> Option<f64> {
        (self.requests > 0.0).then(|| self.commands / self.requests)
    }

    /// ", N commands/s over W s", or nothing when unknown.
    fn rate(&self) -> String {
        self.per_second()
            .zip(self.window_s)
            .map(|(ps, w)| format!(", {ps:.1} commands/s over {w:.1} s"))
            .unwrap_or_default()
    }

    fn per_second(&self) -> Option<f64> {
        self.window_s
            .filter(|w| *w > 0.0)
            .map(|w| self.commands / w)
    }
}

/// `cmdstat_<name>:calls=<n>,...` lines of an `INFO commandstats` (or
/// `INFO all`) reply, as name → calls.
fn parse_cmdstats(info: &str) -> BTreeMap<String, f64> {
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_string(), calls))
        })
        .collect()
}

/// Calls per command between two INFO snapshots, busiest first, leaving out
/// the harness's own INFO.
fn cmdstats_delta(before: &str, after: &str) -> Vec<(String, f64)> {
    let b = parse_cmdstats(before);
    let mut out: Vec<(String, f64)> = parse_cmdstats(after)
        .into_iter()
        .filter(|(name, _)| name != "info")
        .map(|(name, calls)| {
            let d = calls - b.get(&name).copied().unwrap_or(0.0);
            (name, d)
        })
        .filter(|(_, d)| *d > 0.0)
        .collect();
    out.sort_by(|x, y| y.1.total_cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
    out
}

fn redis_use(
    target: &str,
    meta: Option<&Value>,
    runs: &BTreeMap<String, Value>,
) -> Option<RedisUse> {
    let commands = num(meta, "/redis_commands")?;
    let prefix = format!("{target}-");
    let mut requests = 0.0;
    let mut any = false;
    for (name, run) in runs {
        if name.starts_with(&prefix) {
            if let Some(n) = requests_made(run) {
                requests += n;
                any = true;
            }
        }
    }
    any.then_some(RedisUse {
        commands,
        requests,
        window_s: num(meta, "/redis_window_s"),
    })
}

/// Per-command calls between the INFO snapshots the harness took around one
/// Redis target's runs (`<target>.redis-before.txt` / `-after.txt`).
fn target_cmdstats(raw_dir: &Path, target: &str) -> Vec<(String, f64)> {
    match (
        std::fs::read_to_string(raw_dir.join(format!("{target}.redis-before.txt"))),
        std::fs::read_to_string(raw_dir.join(format!("{target}.redis-after.txt"))),
    ) {
        (Ok(b), Ok(af)) => cmdstats_delta(&b, &af),
        _ => Vec::new(),
    }
}

/// What [`parse_monitor`] calls an `EVALSHA` on a provider's health hash
/// (`{h:<provider>}`: the mirror refresh every `cache_ttl_ms`, a probe's
/// report): background, not one of a request's round trips.
const HEALTH_EVALSHA: &str = "evalsha(health)";

/// A `MONITOR` capture: the commands clients sent (name → count, busiest
/// first; `EVALSHA` on a health key counted apart as [`HEALTH_EVALSHA`]) and
/// how many commands the Lua scripts ran inside Redis (`[0 lua]`).
#[derive(Debug, Clone, Default, PartialEq)]
struct Monitor {
    clients: Vec<(String, f64)>,
    in_scripts: f64,
    /// seconds from the first command to the last
    span_s: f64,
}

/// Parses `<time> [<db> <client addr>|lua] "<COMMAND>" ...` lines.
fn parse_monitor(text: &str) -> Monitor {
    let mut clients: BTreeMap<String, f64> = BTreeMap::new();
    let mut in_scripts = 0.0;
    let (mut first, mut last) = (f64::INFINITY, f64::NEG_INFINITY);
    for line in text.lines() {
        let Some((time, rest)) = line.split_once(" [") else {
            continue;
        };
        if let Ok(t) = time.parse::<f64>() {
            first = first.min(t);
            last = last.max(t);
        }
        let Some((source, cmd)) = rest.split_once("] \"") else {
            continue;
        };
        let Some((name, _)) = cmd.split_once('"') else {
            continue;
        };
        if source.split_whitespace().nth(1) == Some("lua") {
            in_scripts += 1.0;
        } else {
            let mut name = name.to_ascii_lowercase();
            if name == "evalsha" && cmd.contains("{h:") {
                name = HEALTH_EVALSHA.to_string();
            }
            *clients.entry(name).or_default() += 1.0;
        }
    }
    let mut clients: Vec<(String, f64)> = clients.into_iter().collect();
    clients.sort_by(|x, y| y.1.total_cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
    Monitor {
        clients,
        in_scripts,
        span_s: if last > first { last - first } else { 0.0 },
    }
}

/// Round trips to Redis per request with quotas: the EVALSHA calls (reserve
/// and settle are one script call each) against everything else. INFO cannot
/// tell scripts apart, so its EVALSHA count also holds the health scripts'
/// background calls (a mirror refresh per provider per `cache_ttl_ms`, a
/// report per active probe); the MONITOR sample counts those apart.
#[derive(Debug, Clone, PartialEq)]
struct QuotaTrips {
    evalsha: f64,
    /// every other command INFO counted, those the scripts ran included
    other: f64,
    /// requests the gateway admitted through its quotas (`/metrics`)
    admitted: Option<f64>,
    limited: Option<f64>,
    /// the MONITOR sample taken after the runs, and its requests
    sample: Option<(Monitor, f64)>,
}

impl QuotaTrips {
    fn of(by_command: &[(String, f64)], meta: Option<&Value>, monitor: Option<&str>) -> QuotaTrips {
        let evalsha: f64 = by_command
            .iter()
            .filter(|(n, _)| n == "evalsha")
            .map(|(_, c)| c)
            .sum();
        let all: f64 = by_command.iter().map(|(_, c)| c).sum();
        let sample = match (monitor, num(meta, "/rt_sample_requests")) {
            (Some(m), Some(n)) if n > 0.0 => Some((parse_monitor(m), n)),
            _ => None,
        };
        QuotaTrips {
            evalsha,
            other: all - evalsha,
            admitted: num(meta, "/quota_admitted"),
            limited: num(meta, "/quota_limited"),
            sample,
        }
    }

    /// Commands clients sent per request in the MONITOR sample: all, and
    /// those other than the quota EVALSHA (health EVALSHA is background).
    fn sampled_round_trips(&self) -> Option<(f64, f64)> {
        let (m, n) = self.sample.as_ref()?;
        let all: f64 = m.clients.iter().map(|(_, c)| c).sum();
        let evalsha: f64 = m
            .clients
            .iter()
            .filter(|(name, _)| name == "evalsha")
            .map(|(_, c)| c)
            .sum();
        Some((all / n, (all - evalsha) / n))
    }

    /// EVALSHA per admitted request (exact: every admission is one reserve
    /// and one settle), else per request loadgen made.
    fn evalsha_per_request(&self, r: Option<&RedisUse>) -> Option<f64> {
        match self.admitted {
            Some(a) if a > 0.0 => Some(self.evalsha / a),
            _ => r
                .filter(|r| r.requests > 0.0)
                .map(|r| self.evalsha / r.requests),
        }
    }

    /// Target: at most 2 round trips per request (reserve + settle): EVALSHA
    /// per request ≤ 2 (to 3 decimals) over the runs, and no other command
    /// per request in the MONITOR sample (what is there is time-based: the
    /// state monitor's PINGs, auth cache refreshes, the health mirror refresh
    /// and probes; ≤ 0.05 per request).
    fn within_two(&self, r: Option<&RedisUse>) -> Option<bool> {
        let evalsha_ok = (self.evalsha_per_request(r)? * 1000.0).round() <= 2000.0;
        let others_ok = self.sampled_round_trips().is_none_or(|(_, o)| o <= 0.05);
        Some(evalsha_ok && others_ok)
    }
}

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

/// A latency difference with its sign: `+12 µs`, `-3 µs`.
fn signed_us(v: Option<f64>) -> String {
    or_na(v.map(|x| {
        let s = fmt_int(x);
        if s.starts_with('-') {
            format!("{s} µs")
        } else {
            format!("+{s} µs")
        }
    }))
}

fn fmt_ratio(r: Option<f64>) -> String {
    or_na(r.map(|r| format!("{r:.2}x")))
}

/// `name count, name count, ...`
fn list_counts(by: &[(String, f64)]) -> String {
    by.iter()
        .map(|(name, n)| format!("{name} {}", fmt_int(*n)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The Redis figures of one row with quotas: gateway + auth + quotas, and the
/// same with upstream health.
struct QuotaRedis {
    target: &'static str,
    use_: Option<RedisUse>,
    by_command: Vec<(String, f64)>,
    trips: QuotaTrips,
    /// the row's meta was written (it ran, maybe without numbers)
    ran: bool,
}

impl QuotaRedis {
    fn load(
        raw_dir: &Path,
        target: &'static str,
        metas: &BTreeMap<String, Value>,
        runs: &BTreeMap<String, Value>,
    ) -> QuotaRedis {
        let by_command = target_cmdstats(raw_dir, target);
        let monitor = std::fs::read_to_string(raw_dir.join(format!("{target}.monitor.txt"))).ok();
        let trips = QuotaTrips::of(&by_command, metas.get(target), monitor.as_deref());
        QuotaRedis {
            target,
            use_: redis_use(target, metas.get(target), runs),
            by_command,
            trips,
            ran: metas.contains_key(target),
        }
    }

    fn within_two(&self) -> Option<bool> {
        self.use_
            .as_ref()
            .and_then(|r| self.trips.within_two(Some(r)))
    }

    fn evalsha_per_request(&self) -> Option<f64> {
        self.use_
            .as_ref()
            .and_then(|r| self.trips.evalsha_per_request(Some(r)))
    }

    /// The paragraph under the table. `what`: "with quotas" or the like;
    /// `expected`: what the MONITOR sample should show.
    fn write(&self, md: &mut String, what: &str, expected: &str) -> std::fmt::Result {
        let name = display_name(self.target);
        let Some(r) = self.use_ else {
            if self.ran {
                writeln!(md, "\nRedis commands per request {what} ({name}): n/a")?;
            }
            return Ok(());
        };
        let t = &self.trips;
        writeln!(
            md,
            "\nRedis commands per request {what} ({name}, all four runs, warm-up included; stats \
             reset with CONFIG RESETSTAT before the row): {} ({} commands / {} requests{}; INFO \
             also counts the commands the scripts run inside Redis, which are no round trips)",
            or_na(r.per_request().map(|v| format!("{v:.5}"))),
            fmt_int(r.commands),
            fmt_int(r.requests),
            r.rate(),
        )?;
        writeln!(
            md,
            "EVALSHA (reserve + settle, and the background health calls: a mirror refresh per \
             provider per cache_ttl_ms, a report per active probe) per request: {} ({} calls / {}); \
             other commands per request: {} ({}, the scripts' own included).",
            or_na(t.evalsha_per_request(Some(&r)).map(|v| format!("{v:.4}"))),
            fmt_int(t.evalsha),
            match (t.admitted, t.limited) {
                (Some(ad), l) if ad > 0.0 => format!(
                    "{} requests admitted by the quotas, {} limited",
                    fmt_int(ad),
                    or_na(l.map(fmt_int))
                ),
                _ => format!("{} requests", fmt_int(r.requests)),
            },
            or_na(r.per_request().map(|_| format!("{:.5}", t.other / r.requests))),
            fmt_int(t.other),
        )?;
        if let (Some((m, n)), Some((all, other))) = (&t.sample, t.sampled_round_trips()) {
            writeln!(
                md,
                "Round trips per request (commands sent by clients, from MONITOR over {} requests \
                 at 1 connection after the runs, {:.1} s; {expected}): {all:.3}, of which {other:.3} \
                 not quota EVALSHA ({}); the scripts ran {:.2} commands per request inside Redis.",
                fmt_int(*n),
                m.span_s,
                if m.clients.is_empty() {
                    "none".to_string()
                } else {
                    list_counts(&m.clients)
                },
                m.in_scripts / n,
            )?;
        }
        if !self.by_command.is_empty() {
            writeln!(
                md,
                "By command (INFO commandstats): {}.",
                list_counts(&self.by_command)
            )?;
        }
        Ok(())
    }

    /// "- <row>: Redis round trips per request ≤ 2 (...): met (...)"
    fn target_line(&self, md: &mut String, why: &str) -> std::fmt::Result {
        writeln!(
            md,
            "- {}: Redis round trips per request ≤ 2 ({why}): {} ({} EVALSHA per request over the runs; {})",
            display_name(self.target),
            verdict(self.within_two()),
            or_na(self.evalsha_per_request().map(|v| format!("{v:.4}"))),
            match self.trips.sampled_round_trips() {
                Some((all, other)) => format!(
                    "{all:.3} client commands per request in the MONITOR sample, {other:.3} of them not quota EVALSHA"
                ),
                None => "no MONITOR sample".to_string(),
            },
        )
    }

    fn to_json(&self) -> Option<Value> {
        let r = self.use_?;
        let t = &self.trips;
        Some(json!({
            "target": self.target,
            "commands": r.commands,
            "requests": r.requests,
            "window_s": r.window_s,
            "commands_per_request": r.per_request(),
            "commands_per_s": r.per_second(),
            "evalsha": t.evalsha,
            "other_commands": t.other,
            "quota_admitted": t.admitted,
            "quota_limited": t.limited,
            "evalsha_per_request": t.evalsha_per_request(Some(&r)),
            "monitor_sample": t.sample.as_ref().map(|(m, n)| json!({
                "requests": n,
                "client_commands": m.clients.iter().cloned().collect::<BTreeMap<_, _>>(),
                "commands_in_scripts": m.in_scripts,
                "round_trips_per_request": t.sampled_round_trips().map(|(all, _)| all),
                "not_quota_evalsha_per_request": t.sampled_round_trips().map(|(_, o)| o),
            })),
            "by_command": self.by_command.iter().cloned().collect::<BTreeMap<_, _>>(),
        }))
    }
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "n/a",
    }
}

/// Median (mean of the two middle values for an even count); None if empty.
fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => v.get(n / 2).copied(),
        _ => Some((v.get(n / 2 - 1)? + v.get(n / 2)?) / 2.0),
    }
}

/// Target: the health row keeps ≥ 0.95x the quotas row's requests/s.
const HEALTH_VS_QUOTAS: f64 = 0.95;

/// Requests/s @C of the quotas and the health row in one mode, per round of
/// the A/B (round 1 = the table's rows), alternating quotas, health, ...
#[derive(Debug, Clone, Default, PartialEq)]
struct HealthAb {
    /// (quotas, health) per round
    rounds: Vec<(Option<f64>, Option<f64>)>,
    /// CPU of processes outside the benchmark during those runs, % of one
    /// core, (quotas, health) per round: a disturbed round shows here
    other_cpu: Vec<(Option<f64>, Option<f64>)>,
}

impl HealthAb {
    fn quotas(&self) -> Vec<f64> {
        self.rounds.iter().filter_map(|r| r.0).collect()
    }

    fn health(&self) -> Vec<f64> {
        self.rounds.iter().filter_map(|r| r.1).collect()
    }

    /// Round 1: the table's two rows.
    fn table_ratio(&self) -> Option<f64> {
        let (q, h) = self.rounds.first().copied()?;
        ratio(h, q)
    }

    fn medians(&self) -> (Option<f64>, Option<f64>) {
        (median(&self.quotas()), median(&self.health()))
    }

    fn ratio_of_medians(&self) -> Option<f64> {
        let (q, h) = self.medians();
        ratio(h, q)
    }

    /// The ratio the target is judged on: of the medians with more than one
    /// round, else the table's.
    fn judged_ratio(&self) -> Option<f64> {
        if self.rounds.len() > 1 {
            self.ratio_of_medians()
        } else {
            self.table_ratio()
        }
    }

    fn to_json(&self) -> Value {
        let (q, h) = self.medians();
        json!({
            "quotas_rps": self.rounds.iter().map(|r| r.0).collect::<Vec<_>>(),
            "health_rps": self.rounds.iter().map(|r| r.1).collect::<Vec<_>>(),
            "ratio_table_rows": self.table_ratio(),
            "quotas_median_rps": q,
            "health_median_rps": h,
            "ratio_of_medians": self.ratio_of_medians(),
            "quotas_other_cpu_pct": self.other_cpu.iter().map(|r| r.0).collect::<Vec<_>>(),
            "health_other_cpu_pct": self.other_cpu.iter().map(|r| r.1).collect::<Vec<_>>(),
            "target": HEALTH_VS_QUOTAS,
            "met": self.judged_ratio().map(|r| r >= HEALTH_VS_QUOTAS),
        })
    }
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
    writeln!(
        md,
        "# Load benchmark: direct vs nginx vs gateway (plain, with auth, with auth + quotas, with health)\n"
    )?;
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
                "| {} → mock, {m} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                display_name(t),
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

    let redis = redis_use("gateway-auth", metas.get("gateway-auth"), &runs);
    let by_command = target_cmdstats(&a.raw_dir, "gateway-auth");
    let quota = QuotaRedis::load(&a.raw_dir, "gateway-quota", &metas, &runs);
    let health = QuotaRedis::load(&a.raw_dir, "gateway-health", &metas, &runs);
    if let Some(r) = redis {
        writeln!(
            md,
            "\nRedis commands per authenticated request (gateway + auth, all four runs, \
             warm-up included): {} ({} commands / {} requests{}; expected ≈ 0: one lookup \
             per key per cache_ttl_ms, the state monitor's 2 PINGs/s, the pub/sub \
             liveness PING and the health mirror refresh)",
            or_na(r.per_request().map(|v| format!("{v:.5}"))),
            fmt_int(r.commands),
            fmt_int(r.requests),
            r.rate(),
        )?;
        if !by_command.is_empty() {
            writeln!(md, "By command: {}.", list_counts(&by_command))?;
        }
    } else if metas.contains_key("gateway-auth") {
        writeln!(
            md,
            "\nRedis commands per authenticated request (gateway + auth): n/a"
        )?;
    }
    quota.write(
        &mut md,
        "with quotas",
        "expected 2: one EVALSHA to reserve and one to settle, both quotas on the consumer's hash tag",
    )?;
    health.write(
        &mut md,
        "with quotas and upstream health",
        "expected 2 as without health: health adds no round trip on the request path, its \
         background calls (evalsha(health) on the provider's {h:mock} hash, the probe lease's set) \
         are among the others",
    )?;

    // The quotas / health A/B: round 1 is the table's rows, rounds 2..=N the
    // extra throughput runs of BENCH_AB_ROUNDS.
    let mut ab_runs = BTreeMap::new();
    let mut ab: BTreeMap<&str, HealthAb> = BTreeMap::new();
    for m in MODES {
        let row = |t: &str| rows.get(&(t, m)).copied().unwrap_or_default();
        let (rq, rh) = (row("gateway-quota"), row("gateway-health"));
        let mut x = HealthAb {
            rounds: vec![(rq.rps, rh.rps)],
            other_cpu: vec![(rq.foreign_hi, rh.foreign_hi)],
        };
        for round in 2..=a.ab_rounds {
            let (mut rps, mut other) = ((None, None), (None, None));
            for (t, r, o) in [
                ("gateway-quota", &mut rps.0, &mut other.0),
                ("gateway-health", &mut rps.1, &mut other.1),
            ] {
                let name = format!("ab{round}.{t}-{m}-c{c}");
                if let Some(v) = load(&a.raw_dir.join(format!("{name}.json"))) {
                    *r = num(Some(&v), "/rps");
                    *o = num(Some(&v), "/foreign_cpu_pct");
                    ab_runs.insert(name, v);
                }
            }
            x.rounds.push(rps);
            x.other_cpu.push(other);
        }
        ab.insert(m, x);
    }
    if a.ab_rounds > 1 {
        writeln!(
            md,
            "\nQuotas vs health, {} alternating rounds (requests/s @{c}; quotas, health, quotas, \
             health, ...; Redis flushed before each; round 1 is the table's rows, later rounds \
             only their throughput runs, each on a freshly started gateway; in brackets the CPU \
             that processes outside the benchmark used during the run, % of one core: a round \
             with more than a few % was disturbed):\n",
            a.ab_rounds
        )?;
        writeln!(
            md,
            "| mode | gateway + auth + quotas, by round | ... + health, by round | median quotas | median health | health / quotas (ratio of medians) |"
        )?;
        writeln!(md, "|---|---|---|---:|---:|---:|")?;
        let rps = |v: Option<f64>| or_na(v.map(fmt_int));
        for m in MODES {
            let x = ab.get(m).cloned().unwrap_or_default();
            let (q, h) = x.medians();
            let by_round = |health: bool| {
                x.rounds
                    .iter()
                    .zip(&x.other_cpu)
                    .map(|(r, o)| {
                        let (r, o) = if health { (r.1, o.1) } else { (r.0, o.0) };
                        format!("{} ({})", rps(r), or_na(o.map(|p| format!("{p:.0}%"))))
                    })
                    .collect::<Vec<_>>()
                    .join(" / ")
            };
            writeln!(
                md,
                "| {m} | {} | {} | {} | {} | {} |",
                by_round(false),
                by_round(true),
                rps(q),
                rps(h),
                fmt_ratio(x.ratio_of_medians()),
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
                "| {} → mock, {m} | {} | {} | {} | {} | {} |",
                display_name(t),
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
        let ga = rows.get(&("gateway-auth", m)).copied().unwrap_or_default();
        let r = ratio(ga.rps, g.rps);
        writeln!(
            md,
            "- {m}: gateway + auth: rps @{c} ≥ 0.95x gateway (passthrough): {} ({})",
            verdict(r.map(|r| r >= 0.95)),
            fmt_ratio(r)
        )?;
        // Added p99 minus added p99: the direct baseline cancels out.
        let gq = rows.get(&("gateway-quota", m)).copied().unwrap_or_default();
        let over_auth = gq.added_p99.zip(ga.added_p99).map(|(q, a)| q - a);
        let over_nginx = gq.added_p99.zip(n.added_p99).map(|(q, n)| q - n);
        writeln!(
            md,
            "- {m}: gateway + auth + quotas: added p99 @1 ≤ gateway + auth's + 300 µs: {} ({} over gateway + auth: {} vs {}; {} over nginx's {})",
            verdict(over_auth.map(|d| d <= 300.0)),
            signed_us(over_auth),
            us(gq.added_p99),
            us(ga.added_p99),
            signed_us(over_nginx),
            us(n.added_p99),
        )?;
        let x = ab.get(m).cloned().unwrap_or_default();
        let gh = rows
            .get(&("gateway-health", m))
            .copied()
            .unwrap_or_default();
        let medians = if x.rounds.len() > 1 {
            let (q, h) = x.medians();
            format!(
                "; ratio of the medians of {} alternating rounds, the one judged: {} ({} vs {} requests/s)",
                x.rounds.len(),
                fmt_ratio(x.ratio_of_medians()),
                or_na(h.map(fmt_int)),
                or_na(q.map(fmt_int)),
            )
        } else {
            String::new()
        };
        writeln!(
            md,
            "- {m}: health row / quotas row throughput (gateway + auth + quotas + health rps @{c} ≥ {HEALTH_VS_QUOTAS:.2}x gateway + auth + quotas): {} (table rows: {}, {} vs {} requests/s{medians})",
            verdict(x.judged_ratio().map(|r| r >= HEALTH_VS_QUOTAS)),
            fmt_ratio(x.table_ratio()),
            or_na(gh.rps.map(fmt_int)),
            or_na(gq.rps.map(fmt_int)),
        )?;
    }
    quota.target_line(&mut md, "reserve + settle")?;
    health.target_line(
        &mut md,
        "as with quotas alone: health adds none on the request path",
    )?;
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
    for (name, v) in runs.iter().chain(&ab_runs) {
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
        let redis = redis.map(|r| {
            json!({
                "target": "gateway-auth",
                "commands": r.commands,
                "requests": r.requests,
                "window_s": r.window_s,
                "commands_per_request": r.per_request(),
                "commands_per_s": r.per_second(),
                "by_command": by_command.iter().cloned().collect::<BTreeMap<_, _>>(),
            })
        });
        let health_vs_quotas = json!({
            "rounds": a.ab_rounds,
            "json": ab.get("json").map(HealthAb::to_json),
            "stream": ab.get("stream").map(HealthAb::to_json),
        });
        let combined = json!({
            "info": info,
            "meta": metas,
            "runs": runs,
            "ab_runs": ab_runs,
            "redis": redis,
            "redis_quotas": quota.to_json(),
            "redis_health": health.to_json(),
            "health_vs_quotas": health_vs_quotas,
        });
        std::fs::write(out, serde_json::to_vec_pretty(&combined)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_commands_per_request() {
        let meta = json!({ "redis_commands": 30, "redis_window_s": 15.0 });
        let mut runs = BTreeMap::new();
        let run = |r: u64, e: u64, wr: u64, we: u64| json!({ "requests": r, "errors": e, "warmup_requests": wr, "warmup_errors": we });
        runs.insert("gateway-auth-json-c32".into(), run(900, 0, 100, 0));
        runs.insert("gateway-auth-stream-c1".into(), run(1900, 50, 40, 10));
        runs.insert("gateway-json-c32".into(), run(1_000_000, 0, 0, 0));
        runs.insert("gateway-quota-json-c32".into(), run(5000, 0, 0, 0));
        let r = redis_use("gateway-auth", Some(&meta), &runs).unwrap();
        assert_eq!(r.requests, 3000.0);
        assert_eq!(r.per_request(), Some(0.01));
        assert_eq!(r.per_second(), Some(2.0));
        assert_eq!(redis_use("gateway-auth", None, &runs), None);
        assert_eq!(
            redis_use("gateway-auth", Some(&meta), &BTreeMap::new()),
            None
        );
        let q = redis_use("gateway-quota", Some(&meta), &runs).unwrap();
        assert_eq!(q.requests, 5000.0);
        assert_eq!(display_name("gateway-auth"), "gateway + auth");
        assert_eq!(display_name("gateway-quota"), "gateway + auth + quotas");
        assert_eq!(
            display_name("gateway-health"),
            "gateway + auth + quotas + health"
        );
    }

    #[test]
    fn redis_commandstats_delta() {
        let before = "# Commandstats\r\ncmdstat_ping:calls=10,usec=5,usec_per_call=0.50\r\n\
                      cmdstat_info:calls=3,usec=1\r\ntotal_commands_processed:13\r\n";
        let after = "cmdstat_ping:calls=14,usec=7\ncmdstat_get:calls=32,usec=9\n\
                     cmdstat_info:calls=4,usec=1\ncmdstat_hget:calls=32,usec=3\n\
                     cmdstat_config|resetstat:calls=1,usec=35\n";
        assert_eq!(
            cmdstats_delta(before, after),
            vec![
                ("get".to_string(), 32.0),
                ("hget".to_string(), 32.0),
                ("ping".to_string(), 4.0),
                ("config|resetstat".to_string(), 1.0),
            ]
        );
        assert_eq!(display_name("nginx"), "nginx");
    }

    #[test]
    fn quota_round_trips() {
        let by = vec![
            ("evalsha".to_string(), 20_000.0),
            ("ping".to_string(), 30.0),
            ("hgetall".to_string(), 2.0),
        ];
        let use_ = RedisUse {
            commands: 20_032.0,
            requests: 9_990.0,
            window_s: None,
        };
        let t = QuotaTrips::of(
            &by,
            Some(&json!({ "quota_admitted": 10_000, "quota_limited": 0 })),
            None,
        );
        assert_eq!(t.evalsha, 20_000.0);
        assert_eq!(t.other, 32.0);
        // per admission when the gateway's counter is known ...
        assert_eq!(t.evalsha_per_request(Some(&use_)), Some(2.0));
        assert_eq!(t.within_two(Some(&use_)), Some(true));
        // ... else per request loadgen counted
        let t = QuotaTrips::of(&by, None, None);
        assert_eq!(t.evalsha_per_request(Some(&use_)), Some(20_000.0 / 9_990.0));
        assert_eq!(t.within_two(Some(&use_)), Some(false));
        assert_eq!(t.within_two(None), None);
        // the MONITOR sample: 2 requests, 4 EVALSHA and a PING from clients
        let mon = "OK\n1795610148.948897 [0 127.0.0.1:50300] \"evalsha\" \"ab\" \"3\"\n\
                   1795610148.948964 [0 lua] \"TIME\"\n1795610148.948983 [0 lua] \"HGETALL\" \"k\"\n\
                   1795610148.95 [0 127.0.0.1:50300] \"evalsha\" \"cd\"\n\
                   1795610148.96 [0 127.0.0.1:50302] \"PING\"\n\
                   1795610148.97 [0 127.0.0.1:50300] \"evalsha\" \"ab\"\n\
                   1795610148.98 [0 127.0.0.1:50300] \"evalsha\" \"cd\"\n";
        let m = parse_monitor(mon);
        assert_eq!(
            m.clients,
            vec![("evalsha".to_string(), 4.0), ("ping".to_string(), 1.0)]
        );
        assert_eq!(m.in_scripts, 2.0);
        assert!((m.span_s - 0.031103).abs() < 1e-6, "{}", m.span_s);
        let meta = json!({ "quota_admitted": 10_000, "rt_sample_requests": 2 });
        let t = QuotaTrips::of(&by, Some(&meta), Some(mon));
        assert_eq!(t.sampled_round_trips(), Some((2.5, 0.5)));
        assert_eq!(t.within_two(Some(&use_)), Some(false));
        let meta = json!({ "quota_admitted": 10_000, "rt_sample_requests": 20 });
        let t = QuotaTrips::of(&by, Some(&meta), Some(mon));
        assert_eq!(t.within_two(Some(&use_)), Some(true));
        // an EVALSHA on a health hash is background, not a quota round trip
        let mon_h = format!(
            "{mon}1795610149.1 [0 127.0.0.1:50304] \"evalsha\" \"ef\" \"1\" \"{{h:mock}}:health\" \"ch\"\n\
             1795610149.2 [0 lua] \"HGETALL\" \"{{h:mock}}:health\"\n"
        );
        let m = parse_monitor(&mon_h);
        assert_eq!(
            m.clients,
            vec![
                ("evalsha".to_string(), 4.0),
                (HEALTH_EVALSHA.to_string(), 1.0),
                ("ping".to_string(), 1.0)
            ]
        );
        assert_eq!(m.in_scripts, 3.0);
        let meta = json!({ "quota_admitted": 10_000, "rt_sample_requests": 2 });
        let t = QuotaTrips::of(&by, Some(&meta), Some(&mon_h));
        assert_eq!(t.sampled_round_trips(), Some((3.0, 1.0)));
        assert_eq!(signed_us(Some(42.4)), "+42 µs");
        assert_eq!(signed_us(Some(-1200.0)), "-1,200 µs");
        assert_eq!(signed_us(None), "n/a");
    }

    #[test]
    fn health_vs_quotas_medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        // one round: the table's rows are judged
        let one = HealthAb {
            rounds: vec![(Some(10_000.0), Some(9_400.0))],
            ..HealthAb::default()
        };
        assert_eq!(one.table_ratio(), Some(0.94));
        assert_eq!(one.judged_ratio(), Some(0.94));
        // three rounds, one missing health run: medians of what is there
        let three = HealthAb {
            rounds: vec![
                (Some(10_000.0), Some(9_400.0)),
                (Some(12_000.0), None),
                (Some(11_000.0), Some(10_800.0)),
            ],
            other_cpu: vec![
                (Some(1.0), Some(2.0)),
                (None, None),
                (Some(3.0), Some(140.0)),
            ],
        };
        assert_eq!(three.medians(), (Some(11_000.0), Some(10_100.0)));
        let r = three.judged_ratio().unwrap();
        assert!((r - 10_100.0 / 11_000.0).abs() < 1e-12, "{r}");
        assert_eq!(three.table_ratio(), Some(0.94));
        let j = three.to_json();
        assert_eq!(j["health_rps"], json!([9400.0, null, 10800.0]));
        assert_eq!(j["met"], json!(false));
        assert_eq!(j["health_other_cpu_pct"], json!([2.0, null, 140.0]));
        assert_eq!(HealthAb::default().judged_ratio(), None);
    }

    #[test]
    fn formats_thousands() {
        assert_eq!(fmt_int(0.0), "0");
        assert_eq!(fmt_int(999.4), "999");
        assert_eq!(fmt_int(12345.0), "12,345");
        assert_eq!(fmt_int(-1234567.0), "-1,234,567");
    }
}
