//! The Markdown of the load report: the rig, the throughput and latency
//! table, the Redis table, the telemetry counters of the full-featured row,
//! the quotas / health A/B, absolute latencies, targets and the run's
//! settings.

use std::collections::BTreeMap;
use std::fmt::{Result, Write as _};

use super::fmt::{cpu_per_req, fmt_int, fmt_ratio, list_counts, or_na, pct, ratio, us, us1};
use super::monitor::parse_monitor;
use super::{display_name, num, targets, Data, MODES, QUOTA_TARGETS, REDIS_TARGETS, TARGETS};

fn info<'a>(d: &'a Data, key: &str) -> Option<&'a str> {
    d.input
        .info
        .iter()
        .find_map(|i| i.strip_prefix(key)?.strip_prefix('='))
}

pub fn write(d: &Data) -> std::result::Result<String, std::fmt::Error> {
    let mut md = String::new();
    writeln!(
        md,
        "# Load benchmark: direct, nginx and the gateway from plain to full-featured\n"
    )?;
    writeln!(
        md,
        "Rig: {}; {}. Load average: {}.\n",
        info(d, "machine").unwrap_or("machine n/a"),
        info(d, "pinning").unwrap_or("pinning n/a"),
        info(d, "load average").unwrap_or("n/a"),
    )?;
    disturbed(&mut md, d)?;
    throughput(&mut md, d)?;
    redis_table(&mut md, d)?;
    by_command(&mut md, d)?;
    telemetry(&mut md, d)?;
    ab_table(&mut md, d)?;
    absolute(&mut md, d)?;
    targets::write(&mut md, d)?;
    if !d.input.info.is_empty() {
        writeln!(md, "\nRun:\n")?;
        for i in &d.input.info {
            match i.split_once('=') {
                Some((k, v)) => writeln!(md, "- {k}: {v}")?,
                None => writeln!(md, "- {i}")?,
            }
        }
    }
    let mut first_errors = Vec::new();
    for (name, v) in d.runs.iter().chain(&d.ab_runs) {
        if let Some(e) = v.get("first_error").and_then(|e| e.as_str()) {
            first_errors.push(format!("- {name}: {e}"));
        }
    }
    if !first_errors.is_empty() {
        writeln!(md, "\nFirst error seen per run:\n")?;
        for e in first_errors {
            writeln!(md, "{e}")?;
        }
    }
    Ok(md)
}

/// Other CPU (processes outside the benchmark, % of one core) above which a
/// run counts as disturbed in the report.
const DISTURBED_PCT: f64 = 10.0;

/// Which runs processes outside the benchmark disturbed, and which ran twice.
fn disturbed(md: &mut String, d: &Data) -> Result {
    let busy: Vec<String> = d
        .runs
        .iter()
        .filter_map(|(name, v)| {
            let o = num(Some(v), "/foreign_cpu_pct").filter(|o| *o > DISTURBED_PCT)?;
            Some(format!("{name} {o:.0}%"))
        })
        .collect();
    writeln!(
        md,
        "Runs disturbed by processes outside the benchmark (other CPU above {DISTURBED_PCT:.0}% of a \
         core; their figures, the tails first, are not to be trusted): {} of {}{}{}.",
        busy.len(),
        d.runs.len(),
        if busy.is_empty() { "" } else { ": " },
        busy.join(", ")
    )?;
    if !d.retried.is_empty() {
        let list: Vec<String> = d
            .retried
            .iter()
            .map(|(name, o)| format!("{name} ({})", pct(*o)))
            .collect();
        writeln!(
            md,
            "Run a second time, the first attempt disturbed (its other CPU in brackets; the table has \
             the second): {}.",
            list.join(", ")
        )?;
    }
    writeln!(md)
}

fn throughput(md: &mut String, d: &Data) -> Result {
    let levels = d.levels();
    let c = d.input.connections;
    let mut head = String::from("| scenario |");
    let mut rule = String::from("|---|");
    for l in &levels {
        write!(head, " rps @{l} | vs nginx |")?;
        rule.push_str("---:|---:|");
    }
    for l in &levels {
        write!(head, " CPU/req @{l} |")?;
        rule.push_str("---:|");
    }
    write!(head, " of it kernel @{c} |")?;
    rule.push_str("---:|");
    write!(
        head,
        " SUT CPU @{c} | added p50 @1 | added p99 @1 | added TTFT p99 @1 | idle RSS | errors |"
    )?;
    rule.push_str("---:|---:|---:|---:|---:|---:|");
    writeln!(md, "{head}\n{rule}")?;
    for m in MODES {
        let nginx = d.row("nginx", m);
        for t in TARGETS {
            let r = d.row(t, m);
            let is_direct = t == "direct";
            let dash = |s: String| if is_direct { "—".to_string() } else { s };
            let mut line = format!("| {} → mock, {m} |", display_name(t));
            for i in 0..levels.len() {
                let rps = r.rps.get(i).copied().flatten();
                let n = nginx.rps.get(i).copied().flatten();
                write!(
                    line,
                    " {} | {} |",
                    or_na(rps.map(fmt_int)),
                    fmt_ratio(ratio(rps, n))
                )?;
            }
            for i in 0..levels.len() {
                let rps = r.rps.get(i).copied().flatten();
                let cpu = r.cpu_pct.get(i).copied().flatten();
                write!(line, " {} |", us1(cpu_per_req(cpu, rps)))?;
            }
            write!(line, " {} |", us1(cpu_per_req(r.sys_pct[0], r.rps[0])))?;
            let rss = num(d.meta(t), "/rss_kib").map(|k| format!("{:.1} MiB", k / 1024.0));
            write!(
                line,
                " {} | {} | {} | {} | {} | {} |",
                pct(r.cpu_pct[0]),
                dash(us(r.added_p50)),
                dash(us(r.added_p99)),
                if m == "stream" && !is_direct {
                    us(r.added_ttft_p99)
                } else {
                    "—".into()
                },
                dash(or_na(rss)),
                or_na(r.errors.map(fmt_int)),
            )?;
            writeln!(md, "{line}")?;
        }
    }
    writeln!(
        md,
        "\nrps: completed requests per second; vs nginx: the same mode and connections. \
         CPU/req: the system under test's CPU time per request over the measured window \
         (/proc/<pid>/stat utime + stime; the gateway's every thread, OTLP exporter included; \
         nginx: master + worker; direct: the mock); of it kernel: its stime part (system calls, \
         and on loopback the receiving side's TCP work the sender runs). Added latency: the percentile at 1 \
         connection minus direct's."
    )
}

fn redis_table(md: &mut String, d: &Data) -> Result {
    if d.redis.is_empty() {
        return Ok(());
    }
    writeln!(
        md,
        "\n## Redis per request\n\nFrom Redis's own statistics, `INFO all` before and after each run \
         (warm-up included; the after snapshot once the gateway's quota settle queue was empty), \
         per request the gateway answered between them (`gateway_requests_total`). Round trips: \
         the commands clients sent, script calls (`EVALSHA`, `EVAL`) plus other commands; all \
         commands: `INFO commandstats` also counts those the scripts run inside Redis. Redis CPU: \
         `used_cpu_sys` + `used_cpu_user`; busy: that CPU over the run's time, % of one core. \
         Gateway's count: its quota store's calls to Redis (`gateway_redis_calls_total`), a \
         cross-check of the round trips from the gateway's side. Mock and collector CPU: the \
         mock upstream's and the OTLP collector's CPU time (`/proc/<pid>/stat`) between the \
         same snapshots, per request: with loadgen and Redis they share the load core, whose \
         one core bounds the rows with Redis and the collector.\n"
    )?;
    writeln!(
        md,
        "| scenario | conns | requests | round trips/req | script calls/req | other client cmds/req | all commands/req | run in scripts/req | Redis CPU/req | Redis busy | gateway's count/req | mock CPU/req | collector CPU/req |"
    )?;
    writeln!(
        md,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )?;
    for t in REDIS_TARGETS {
        for m in MODES {
            for c in d.redis_levels() {
                let Some(r) = d.redis_run(t, m, c) else {
                    continue;
                };
                let per = |v: f64, digits: usize| {
                    or_na(r.per_request(v).map(|x| format!("{x:.digits$}")))
                };
                writeln!(
                    md,
                    "| {}, {m} | {c} | {}{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    display_name(t),
                    fmt_int(r.requests),
                    if r.requests_from_gateway {
                        ""
                    } else {
                        " (loadgen)"
                    },
                    per(r.round_trips(), 4),
                    per(r.script_calls, 4),
                    per(r.client_other, 5),
                    per(r.total(), 2),
                    per(r.in_scripts, 2),
                    us1(r.cpu_us_per_request()),
                    pct(r.busy_pct()),
                    or_na(
                        r.quota_calls
                            .and_then(|q| r.per_request(q))
                            .map(|x| format!("{x:.4}"))
                    ),
                    us1(r.mock_us_per_request()),
                    if r.collector_cpu_s.is_some() {
                        us1(r.collector_us_per_request())
                    } else {
                        "—".to_string()
                    },
                )?;
            }
        }
    }
    if d.script_names.is_empty() {
        writeln!(
            md,
            "\nNo Lua scripts were found (`lua/`): every command but script calls counts as sent by a client."
        )?;
    } else {
        writeln!(
            md,
            "\nCommands counted as run inside scripts (those the gateway's `lua/*.lua` run): {}. \
             The gateway also sends some of them on its own (the auth cache refresh, the health \
             mirror), a few a second in the background, which this split counts inside scripts.",
            d.script_names
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )?;
    }
    Ok(())
}

/// Per command over all of a row's runs, and the MONITOR cross-check.
fn by_command(md: &mut String, d: &Data) -> Result {
    for t in REDIS_TARGETS {
        let mut sum: BTreeMap<&str, f64> = BTreeMap::new();
        let mut requests = 0.0;
        for m in MODES {
            for c in d.redis_levels() {
                if let Some(r) = d.redis_run(t, m, c) {
                    requests += r.requests;
                    for (name, n) in &r.by_command {
                        *sum.entry(name).or_default() += n;
                    }
                }
            }
        }
        if sum.is_empty() {
            continue;
        }
        let mut by: Vec<(String, f64)> = sum.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        by.sort_by(|x, y| y.1.total_cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
        writeln!(
            md,
            "\n{} by command, all its runs ({} requests): {}.",
            display_name(t),
            fmt_int(requests),
            list_counts(&by)
        )?;
        let sample = d.raw(&format!("{t}.monitor.txt"));
        let n = num(d.meta(t), "/rt_sample_requests").filter(|n| *n > 0.0);
        if let (Some(text), Some(n), true) = (sample, n, QUOTA_TARGETS.contains(&t)) {
            let m = parse_monitor(&text);
            writeln!(
                md,
                "MONITOR cross-check ({} requests at 1 connection after the runs, {:.1} s): {:.3} \
                 client commands per request ({}), {:.2} run inside scripts per request.",
                fmt_int(n),
                m.span_s,
                m.client_commands() / n,
                list_counts(&m.clients),
                m.in_scripts / n,
            )?;
        }
    }
    Ok(())
}

fn telemetry(md: &mut String, d: &Data) -> Result {
    let Some(text) = d.raw("gateway-full.metrics-after.txt") else {
        return Ok(());
    };
    let get = |name: &str| crate::stats::prom_sum(&text, name);
    writeln!(
        md,
        "\nFull-featured row, its gateway's counters after all its runs: requests {}, OTLP spans \
         exported {} (failed {}), log records exported {} (failed {}), records dropped {}.",
        or_na(get("gateway_requests_total").map(fmt_int)),
        or_na(get("gateway_otlp_spans_exported_total").map(fmt_int)),
        or_na(get("gateway_otlp_spans_failed_total").map(fmt_int)),
        or_na(get("gateway_otlp_logs_exported_total").map(fmt_int)),
        or_na(get("gateway_otlp_logs_failed_total").map(fmt_int)),
        or_na(get("gateway_otlp_dropped_total").map(fmt_int)),
    )
}

fn ab_table(md: &mut String, d: &Data) -> Result {
    if d.input.ab_rounds <= 1 {
        return Ok(());
    }
    let c = d.input.connections;
    writeln!(
        md,
        "\nQuota vs health, {} alternating rounds (requests/s @{c}; quota, health, quota, \
         health, ...; Redis flushed before each; round 1 is the table's rows, later rounds \
         only their throughput runs, each on a freshly started gateway; in brackets the CPU \
         that processes outside the benchmark used during the run, % of one core: a round \
         with more than a few % was disturbed):\n",
        d.input.ab_rounds
    )?;
    writeln!(
        md,
        "| mode | gateway + auth + quota, by round | ... + health, by round | median quota | median health | health / quota (ratio of medians) |"
    )?;
    writeln!(md, "|---|---|---|---:|---:|---:|")?;
    let rps = |v: Option<f64>| or_na(v.map(fmt_int));
    for m in MODES {
        let x = d.ab.get(m).cloned().unwrap_or_default();
        let (q, h) = x.medians();
        let by_round = |health: bool| {
            x.rounds
                .iter()
                .zip(&x.other_cpu)
                .map(|(r, o)| {
                    let (r, o) = if health { (r.1, o.1) } else { (r.0, o.0) };
                    format!("{} ({})", rps(r), pct(o))
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
    Ok(())
}

fn absolute(md: &mut String, d: &Data) -> Result {
    let levels = d.levels();
    writeln!(
        md,
        "\nAbsolute latencies @1 connection (not subtracted), and CPU used by processes \
         outside the benchmark during each run (noise; % of one core):\n"
    )?;
    let mut head = String::from("| scenario | p50 | p99 | TTFT p99 |");
    let mut rule = String::from("|---|---:|---:|---:|");
    for l in levels.iter().chain([&1]) {
        write!(head, " other CPU @{l} |")?;
        rule.push_str("---:|");
    }
    writeln!(md, "{head}\n{rule}")?;
    for m in MODES {
        for t in TARGETS {
            let r = d.row(t, m);
            let mut line = format!(
                "| {} → mock, {m} | {} | {} | {} |",
                display_name(t),
                us(r.p50),
                us(r.p99),
                if m == "stream" {
                    us(r.ttft_p99)
                } else {
                    "—".into()
                },
            );
            for i in 0..levels.len() {
                write!(line, " {} |", pct(r.foreign.get(i).copied().flatten()))?;
            }
            write!(line, " {} |", pct(r.foreign[2]))?;
            writeln!(md, "{line}")?;
        }
    }
    Ok(())
}
