//! The soak's report: `soak-<stamp>.md` with the verdict per series, the
//! plots (`soak-<stamp>-<series>.svg`, next to it), the requests and admin
//! actions by outcome, what the gateways logged, every sample and the settings.

use super::logs::ReplicaLog;
use super::sampler::{FdKinds, LeaseMembers, ReplicaSample, Sample};
use super::svg::{Chart, Line};
use super::traffic::MIX;
use super::verdict::{Verdict, FLAT_LIMIT_PCT, LEVEL_WINDOW_S};
use super::{churn, fleet, Outcome, Settings};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write;

/// What the report is made of.
pub struct Inputs<'a> {
    pub settings: &'a Settings,
    pub samples: &'a [Sample],
    pub requests: &'a BTreeMap<(String, String), u64>,
    pub actions: &'a BTreeMap<(String, String), u64>,
    pub logs: &'a [ReplicaLog],
    /// Redis's keys by kind once the traffic stopped: (kind, keys, bytes)
    pub key_kinds: &'a [(String, u64, u64)],
    /// the quota lease zsets' members once the traffic stopped
    pub leases: &'a [LeaseMembers],
}

/// Named lines of (seconds, value) points.
type Lines = Vec<(String, Vec<(f64, f64)>)>;

/// One plotted quantity: a line per replica, or one for Redis.
struct Series {
    file: &'static str,
    title: &'static str,
    unit: &'static str,
    /// part of the acceptance (RSS and FDs)
    judged: bool,
    lines: Lines,
}

fn per_replica(
    samples: &[Sample],
    replicas: usize,
    f: impl Fn(&ReplicaSample) -> Option<f64>,
) -> Lines {
    (0..replicas)
        .map(|i| {
            let points = samples
                .iter()
                .filter(|s| s.under_load)
                .filter_map(|s| Some((s.t_s, f(s.replicas.get(i)?)?)))
                .collect();
            (format!("replica {}", i + 1), points)
        })
        .collect()
}

fn fleet_line(samples: &[Sample], f: impl Fn(&Sample) -> Option<f64>) -> Lines {
    let points = samples
        .iter()
        .filter(|s| s.under_load)
        .filter_map(|s| Some((s.t_s, f(s)?)))
        .collect();
    vec![("redis".to_string(), points)]
}

const MIB: f64 = 1024.0 * 1024.0;

/// What grows by design under this traffic, and where it stops.
const BOUNDED: &str = "### Bounded growth\n\n\
What fills up under this traffic and where it stops, for reading the series:\n\n\
- **Client connections** (FDs, tasks): at most one per client and replica, closed when a client cuts a stream or gives up, \
opened again by its next request there.\n\
- **Upstream connections** (FDs, tasks): the gateway's pool to the mock keeps an idle connection 90 s; as many as were \
in flight at once meanwhile (streams and stalls the client or the upstream cut close theirs).\n\
- **Redis connections** (FDs): one for the calls and one for the pub/sub subscription per replica; after calls fail \
together (Redis slow to answer on a busy machine: `gateway_quota_bypassed_total` counts the requests admitted meanwhile), \
one caller takes the next connection for all of them.\n\
- **Auth cache** (entries): every key seen, known or not, for `cache_ttl_ms` (1 s); a few left when the churn consumer is deleted.\n\
- **Quota lease zsets** (Redis memory and lease members): the reservations in flight, and `S` tombstones kept 10 minutes \
(`TOMBSTONE_MS`): one per usage-ledger flush (every 250 ms per replica, for each tenant, consumer, model and provider group \
with traffic in it) and one per request admitted while Redis did not answer. They rise for the first 10 minutes of \
traffic and then hold, at about 10 min x 4 flushes/s x groups x replicas.\n\
- **Quota windows** (Redis keys): one hash per quota and subject, gone when its window has passed; the route's \
`by: header` quota holds one per `x-soak-user` value seen in the last minute (at most `--users`).\n\
- **Key records** (Redis keys): every key the churn made stays (revoked or expired) until the consumer is deleted, every 10 cycles.\n\n";

/// The FD kinds of every replica as lines of their own.
fn fd_kind_lines(samples: &[Sample], replicas: usize) -> Lines {
    type Count = fn(&FdKinds) -> u64;
    let kinds: [(&str, Count); 4] = [
        ("clients", |k| k.clients),
        ("upstream", |k| k.upstream),
        ("Redis", |k| k.redis),
        ("other", |k| k.other),
    ];
    let mut out = Vec::new();
    for (name, get) in kinds {
        for (i, (_, points)) in per_replica(samples, replicas, |r| {
            r.fd_kinds.as_ref().map(|k| get(k) as f64)
        })
        .into_iter()
        .enumerate()
        {
            out.push((format!("r{} {name}", i + 1), points));
        }
    }
    out
}

fn series(samples: &[Sample], replicas: usize) -> Vec<Series> {
    vec![
        Series {
            file: "rss",
            title: "Gateway resident memory (VmRSS)",
            unit: "MiB",
            judged: true,
            lines: per_replica(samples, replicas, |r| r.rss_kib.map(|k| k as f64 / 1024.0)),
        },
        Series {
            file: "rss-anon",
            title: "Gateway anonymous memory (RssAnon: heap, stacks)",
            unit: "MiB",
            judged: false,
            lines: per_replica(samples, replicas, |r| r.anon_kib.map(|k| k as f64 / 1024.0)),
        },
        Series {
            file: "fds",
            title: "Gateway open file descriptors",
            unit: "FDs",
            judged: true,
            lines: per_replica(samples, replicas, |r| r.fds.map(|n| n as f64)),
        },
        Series {
            file: "fds-by-kind",
            title: "Gateway FDs by kind: clients, upstream, Redis, other",
            unit: "FDs",
            judged: false,
            lines: fd_kind_lines(samples, replicas),
        },
        Series {
            file: "tasks",
            title: "Gateway tokio tasks alive (gateway_tokio_alive_tasks)",
            unit: "tasks",
            judged: false,
            lines: per_replica(samples, replicas, |r| r.tasks),
        },
        Series {
            file: "auth-cache",
            title: "Gateway auth cache entries (gateway_auth_cache_entries)",
            unit: "entries",
            judged: false,
            lines: per_replica(samples, replicas, |r| r.auth_cache),
        },
        Series {
            file: "redis-memory",
            title: "Redis used_memory (INFO memory)",
            unit: "MiB",
            judged: false,
            lines: fleet_line(samples, |s| s.redis_used.map(|b| b as f64 / MIB)),
        },
        Series {
            file: "redis-keys",
            title: "Redis keys (DBSIZE)",
            unit: "keys",
            judged: false,
            lines: fleet_line(samples, |s| s.redis_keys.map(|n| n as f64)),
        },
        Series {
            file: "redis-leases",
            title: "Quota lease zset members (reservations held and tombstones)",
            unit: "members",
            judged: false,
            lines: fleet_line(samples, |s| s.lease_members.map(|n| n as f64)),
        },
    ]
}

fn num(v: f64) -> String {
    if !v.is_finite() {
        "n/a".into()
    } else if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "n/a".into(), |v| v.to_string())
}

/// One line of progress for stderr.
pub fn progress_line(s: &Sample) -> String {
    let mut line = format!("t={:>5.0}s requests={}", s.t_s, s.requests);
    for (i, r) in s.replicas.iter().enumerate() {
        let _ = write!(
            line,
            " | r{}: rss {} KiB, fds {}, tasks {}",
            i + 1,
            opt(r.rss_kib),
            opt(r.fds),
            opt(r.tasks)
        );
    }
    let _ = write!(
        line,
        " | redis {} B, {} keys",
        opt(s.redis_used),
        opt(s.redis_keys)
    );
    line
}

/// Writes the report and its plots; what it found.
pub fn write(inp: &Inputs) -> Result<Outcome> {
    let s = inp.settings;
    let warmup_s = s.warmup.as_secs_f64();
    let end_s = s.duration.as_secs_f64();
    std::fs::create_dir_all(&s.out_dir)
        .with_context(|| format!("creating {}", s.out_dir.display()))?;
    let base = format!("soak-{}", s.stamp);
    let all = series(inp.samples, inp.logs.len());
    let mut passed = true;
    let mut summary = Vec::new();
    let mut verdicts = String::new();
    let mut plots = String::new();
    for ser in &all {
        let mut lines = Vec::new();
        for (name, points) in &ser.lines {
            let v = Verdict::of(points, warmup_s);
            if let Some(v) = &v {
                let _ = writeln!(
                    verdicts,
                    "| {} ({}) | {} | {} | {} | {} | {} | {:+.1}% | {:+.1}%/h | {} |",
                    ser.title,
                    name,
                    ser.unit,
                    num(v.baseline),
                    num(v.peak_level),
                    num(v.peak_sample),
                    num(v.end),
                    v.growth_pct,
                    v.trend_pct_per_h,
                    if v.flat { "flat" } else { "**not flat**" }
                );
                let line = format!(
                    "{} {name}: level {} at the end of the warm-up, highest after {} ({:+.1}%), {}",
                    ser.file,
                    num(v.baseline),
                    num(v.peak_level),
                    v.growth_pct,
                    if v.flat { "flat" } else { "NOT FLAT" }
                );
                if ser.judged {
                    passed &= v.flat;
                    summary.push(line);
                } else if !v.flat {
                    summary.push(format!("{line} (not judged)"));
                }
            } else if ser.judged {
                passed = false;
                summary.push(format!("{} {name}: too few samples to judge", ser.file));
            }
            lines.push(Line {
                name: name.clone(),
                points: points.clone(),
                limit: v.as_ref().map(Verdict::limit),
            });
        }
        let file = format!("{base}-{}.svg", ser.file);
        let chart = Chart {
            title: ser.title.to_string(),
            y_label: ser.unit.to_string(),
            lines,
            warmup_s,
            end_s,
        };
        std::fs::write(s.out_dir.join(&file), chart.render())
            .with_context(|| format!("writing {file}"))?;
        let _ = writeln!(plots, "![{}]({file})\n", ser.title);
    }
    for (i, log) in inp.logs.iter().enumerate() {
        if !log.panics.is_empty() {
            passed = false;
            summary.push(format!("replica {}: {} panics", i + 1, log.panics.len()));
        }
        if !log.running {
            passed = false;
            summary.push(format!("replica {}: not running at the end", i + 1));
        }
    }
    let md = markdown(inp, &verdicts, &plots, passed);
    let path = s.out_dir.join(format!("{base}.md"));
    std::fs::write(&path, md).with_context(|| format!("writing {}", path.display()))?;
    Ok(Outcome {
        report: path,
        passed,
        summary,
    })
}

fn markdown(inp: &Inputs, verdicts: &str, plots: &str, passed: bool) -> String {
    let s = inp.settings;
    let minutes = s.duration.as_secs_f64() / 60.0;
    let total: u64 = inp.requests.values().sum();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Soak: {} gateway replicas, {} minutes of mixed traffic ({})\n",
        s.replicas,
        num(minutes),
        s.stamp
    );
    let _ = writeln!(
        md,
        "Made by `bash benches/run-soak.sh` (benches/README.md, *Soak*). {} requests, {} per second (target {}) from {} clients, \
         replicas in turn; config reloads every {} s, a key cycle every {} s. A series' **level** at a time is the median of \
         its samples of the {} s up to it; a series is **flat** when its highest level after the warm-up ({} s) is at most \
         {}% above its level at the end of the warm-up.\n",
        total,
        num(total as f64 / s.duration.as_secs_f64()),
        num(s.rps),
        s.clients,
        s.reload_every.as_secs(),
        s.keys_every.as_secs(),
        LEVEL_WINDOW_S,
        s.warmup.as_secs(),
        FLAT_LIMIT_PCT
    );
    let _ = writeln!(
        md,
        "**RSS and FDs of every replica flat within {FLAT_LIMIT_PCT}% after the warm-up, no panic, every replica running: {}**\n",
        if passed { "yes" } else { "no" }
    );
    md.push_str("## Verdict per series\n\n");
    md.push_str("| series | unit | level at the end of warm-up | highest level after | highest sample after | level at the end | highest level vs end of warm-up | trend after warm-up | verdict |\n|---|---|---:|---:|---:|---:|---:|---:|---|\n");
    md.push_str(verdicts);
    md.push_str("\nThe trend is the least-squares slope of the samples after the warm-up, in % of the end-of-warm-up level per hour.\n\n");
    md.push_str(BOUNDED);
    md.push_str("## Plots\n\n");
    md.push_str(plots);
    requests_section(&mut md, inp.requests);
    actions_section(&mut md, inp.actions);
    logs_section(&mut md, inp.logs);
    keys_section(&mut md, inp.key_kinds, inp.leases);
    samples_section(&mut md, inp.samples);
    settings_section(&mut md, s);
    md
}

fn requests_section(md: &mut String, requests: &BTreeMap<(String, String), u64>) {
    md.push_str("## Requests by kind and outcome\n\n| kind | share | what it does | outcome | requests |\n|---|---:|---|---|---:|\n");
    for (kind, weight, what) in MIX {
        let mut first = true;
        for ((k, outcome), n) in requests.iter().filter(|((k, _), _)| k == kind.name()) {
            let (share, desc) = if first {
                (format!("{weight}%"), what)
            } else {
                (String::new(), "")
            };
            first = false;
            let _ = writeln!(md, "| {k} | {share} | {desc} | {outcome} | {n} |");
        }
    }
    let mut by_outcome: BTreeMap<&str, u64> = BTreeMap::new();
    for ((_, outcome), n) in requests {
        *by_outcome.entry(outcome.as_str()).or_insert(0) += n;
    }
    md.push_str("\nAll kinds together:\n\n| outcome | requests |\n|---|---:|\n");
    for (outcome, n) in by_outcome {
        let _ = writeln!(md, "| {outcome} | {n} |");
    }
    md.push('\n');
}

fn actions_section(md: &mut String, actions: &BTreeMap<(String, String), u64>) {
    let _ = writeln!(
        md,
        "## Admin actions\n\nConfig reloads swap each replica between config A and B (the tight consumer's limit {} or {} requests per 10 s, \
         the provider's model and first-byte timeout {} or {} ms). Key cycles on `{}/{}` through the replicas in turn: create a key, rotate the \
         previous one ({} s grace), revoke the oldest the pool still uses; every {} cycles the consumer is deleted (with its keys) and made again.\n",
        fleet::TIGHT_LIMIT[0],
        fleet::TIGHT_LIMIT[1],
        fleet::FIRST_BYTE_MS[0],
        fleet::FIRST_BYTE_MS[1],
        fleet::CHURN_TENANT,
        fleet::CHURN_CONSUMER,
        churn::ROTATE_GRACE_S,
        churn::CYCLES_PER_CONSUMER
    );
    md.push_str("| action | answer | count |\n|---|---|---:|\n");
    for ((action, outcome), n) in actions {
        let _ = writeln!(md, "| {action} | {outcome} | {n} |");
    }
    md.push('\n');
}

fn logs_section(md: &mut String, logs: &[ReplicaLog]) {
    md.push_str("## Gateway logs\n\n| replica | running at the end | panics | ERROR lines | WARN lines |\n|---|---|---:|---:|---:|\n");
    for (i, l) in logs.iter().enumerate() {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            i + 1,
            if l.running { "yes" } else { "**no**" },
            l.panics.len(),
            l.errors,
            l.warnings
        );
    }
    for (i, l) in logs.iter().enumerate() {
        if l.top.is_empty() && l.panics.is_empty() {
            continue;
        }
        let _ = writeln!(md, "\nReplica {}, most frequent (digits as `#`):\n", i + 1);
        for p in &l.panics {
            let _ = writeln!(md, "- PANIC `{p}`");
        }
        for (level, message, n) in &l.top {
            let _ = writeln!(md, "- {n} × {level} `{}`", message.replace('`', "'"));
        }
    }
    md.push('\n');
}

fn keys_section(md: &mut String, kinds: &[(String, u64, u64)], leases: &[LeaseMembers]) {
    md.push_str("## Redis keys once the traffic stopped, by kind\n\nDigests as `<hex>`, numbers as `#`; memory from `MEMORY USAGE`.\n\n| kind | keys | memory (KiB) |\n|---|---:|---:|\n");
    for (kind, n, bytes) in kinds {
        let _ = writeln!(md, "| `{kind}` | {n} | {:.1} |", *bytes as f64 / 1024.0);
    }
    md.push_str("\nThe quota lease zsets' members (a reservation is one member until it is settled; \
        `E`: a lease that ended unsettled, its reservation given back; `S`: usage charged without a reservation; \
        each tombstone stays 10 minutes):\n\n| lease zset | reservations held | of which past their lease | `E` tombstones | `S` tombstones |\n|---|---:|---:|---:|---:|\n");
    for l in leases {
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} | {} |",
            l.key, l.held, l.late, l.ended, l.charged
        );
    }
    md.push('\n');
}

fn samples_section(md: &mut String, samples: &[Sample]) {
    let replicas = samples.first().map_or(0, |s| s.replicas.len());
    md.push_str("## Samples\n\n| t (s) | requests |");
    let mut rule = String::from("|---:|---:|");
    for i in 1..=replicas {
        let _ = write!(
            md,
            " r{i} RSS (anon) KiB | r{i} FDs (clients/upstream/Redis/other) | r{i} tasks | r{i} auth cache |"
        );
        rule.push_str("---:|---:|---:|---:|");
    }
    md.push_str(" quota bypassed (all replicas) | Redis used_memory (B) | Redis keys | lease members | load avg |\n");
    rule.push_str("---:|---:|---:|---:|---:|\n");
    md.push_str(&rule);
    for smp in samples {
        let t = if smp.under_load {
            format!("{:.0}", smp.t_s)
        } else {
            format!("{:.0} (load stopped)", smp.t_s)
        };
        let _ = write!(md, "| {t} | {} |", smp.requests);
        for r in &smp.replicas {
            let kinds = r.fd_kinds.map_or_else(String::new, |k| {
                format!(" ({}/{}/{}/{})", k.clients, k.upstream, k.redis, k.other)
            });
            let anon = r.anon_kib.map_or_else(String::new, |k| format!(" ({k})"));
            let _ = write!(
                md,
                " {}{anon} | {}{kinds} | {} | {} |",
                opt(r.rss_kib),
                opt(r.fds),
                opt(r.tasks),
                opt(r.auth_cache)
            );
        }
        let bypassed: Option<f64> = smp.replicas.iter().map(|r| r.bypassed).sum();
        let _ = writeln!(
            md,
            " {} | {} | {} | {} | {} |",
            opt(bypassed),
            opt(smp.redis_used),
            opt(smp.redis_keys),
            opt(smp.lease_members),
            smp.load1
                .map_or_else(|| "n/a".into(), |l| format!("{l:.2}"))
        );
    }
    md.push('\n');
}

fn settings_section(md: &mut String, s: &Settings) {
    md.push_str("## Settings\n\n");
    let _ = writeln!(
        md,
        "- duration {} s, warm-up {} s, a sample every {} s (the last one {} s after the traffic stopped)",
        s.duration.as_secs(),
        s.warmup.as_secs(),
        s.sample_every.as_secs(),
        s.sample_every.as_secs()
    );
    let _ = writeln!(
        md,
        "- {} clients (hyper-util pooled HTTP/1.1 client each), {} requests/s in all, seed {}; {} distinct `{}` values (the route's `by: header` request quota counts each apart)",
        s.clients,
        num(s.rps),
        s.seed,
        s.users,
        fleet::USER_HEADER
    );
    let _ = writeln!(
        md,
        "- gateways: release build, `state.backend: redis` (one redis-server, `--save \"\" --appendonly no`), `cache_ttl_ms: 1000`, route auth, \
         quotas on the tenant (tokens), the consumers (tokens, requests) and the route (requests by header), access log on; \
         mock upstream in the driver's process, {} chunks per stream",
        fleet::STREAM_CHUNKS
    );
    for line in &s.info {
        let _ = writeln!(md, "- {line}");
    }
}
