//! The gateway's standing against its targets in one run: issue 25's
//! acceptance (full-featured and plain against nginx, Redis round trips per
//! request) and the earlier targets. Benchmark goals, not tests.

use std::fmt::{Result, Write as _};

use super::ab::HEALTH_VS_QUOTAS;
use super::fmt::{fmt_int, fmt_ratio, or_na, ratio, signed_us, us, verdict};
use super::{display_name, num, Data, MODES, QUOTA_TARGETS};

/// Full-featured row: requests/s @C (JSON) at least this share of nginx's.
pub const FULL_VS_NGINX: f64 = 0.6;
/// Plain gateway: requests/s @C (JSON and streams) at least this share of nginx's.
pub const PLAIN_VS_NGINX: f64 = 0.75;
/// Rows with a quota: Redis round trips per request @C at most this.
pub const MAX_ROUND_TRIPS: f64 = 1.0;

pub fn write(md: &mut String, d: &Data) -> Result {
    let c = d.input.connections;
    writeln!(
        md,
        "\n## Targets\n\nIssue 25 (same run, @{c} connections):\n"
    )?;
    let full = d.row("gateway-full", "json");
    let nginx = d.row("nginx", "json");
    let r = ratio(full.rps[0], nginx.rps[0]);
    writeln!(
        md,
        "- full-featured, json: rps @{c} ≥ {FULL_VS_NGINX:.2}x nginx: {} ({})",
        verdict(r.map(|r| r >= FULL_VS_NGINX)),
        fmt_ratio(r)
    )?;
    for m in MODES {
        let r = ratio(d.row("gateway", m).rps[0], d.row("nginx", m).rps[0]);
        writeln!(
            md,
            "- gateway (plain), {m}: rps @{c} ≥ {PLAIN_VS_NGINX:.2}x nginx: {} ({})",
            verdict(r.map(|r| r >= PLAIN_VS_NGINX)),
            fmt_ratio(r)
        )?;
    }
    for t in QUOTA_TARGETS {
        for m in MODES {
            let Some(run) = d.redis_run(t, m, c) else {
                continue;
            };
            let rt = run.per_request(run.round_trips());
            writeln!(
                md,
                "- {}, {m}: Redis round trips per request @{c} ≤ {MAX_ROUND_TRIPS:.1}: {} ({}: {} script calls, {} other client commands per request)",
                display_name(t),
                verdict(rt.map(|v| v <= MAX_ROUND_TRIPS)),
                or_na(rt.map(|v| format!("{v:.4}"))),
                or_na(run.per_request(run.script_calls).map(|v| format!("{v:.4}"))),
                or_na(run.per_request(run.client_other).map(|v| format!("{v:.5}"))),
            )?;
        }
    }
    let p99 = |t: &str| {
        MODES
            .iter()
            .map(|m| format!("{m} {}", us(d.row(t, m).added_p99)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    writeln!(
        md,
        "- added p99 @1 no worse than before the change (compare with the baseline run): \
         gateway + auth + quota {}; full-featured {}",
        p99("gateway-quota"),
        p99("gateway-full"),
    )?;

    writeln!(md, "\nEarlier targets:\n")?;
    for m in MODES {
        let g = d.row("gateway", m);
        let n = d.row("nginx", m);
        let lat_ok = match (g.added_p50, n.added_p50) {
            (Some(g), Some(n)) => Some(g <= n),
            _ => None,
        };
        writeln!(
            md,
            "- {m}: gateway added p50 @1 ≤ nginx's: {} ({} vs {})",
            verdict(lat_ok),
            us(g.added_p50),
            us(n.added_p50)
        )?;
        let ga = d.row("gateway-auth", m);
        let r = ratio(ga.rps[0], g.rps[0]);
        writeln!(
            md,
            "- {m}: gateway + auth: rps @{c} ≥ 0.95x gateway (plain): {} ({})",
            verdict(r.map(|r| r >= 0.95)),
            fmt_ratio(r)
        )?;
        // Added p99 minus added p99: the direct baseline cancels out.
        let gq = d.row("gateway-quota", m);
        let over_auth = gq.added_p99.zip(ga.added_p99).map(|(q, a)| q - a);
        let over_nginx = gq.added_p99.zip(n.added_p99).map(|(q, n)| q - n);
        writeln!(
            md,
            "- {m}: gateway + auth + quota: added p99 @1 ≤ gateway + auth's + 300 µs: {} ({} over gateway + auth: {} vs {}; {} over nginx's {})",
            verdict(over_auth.map(|d| d <= 300.0)),
            signed_us(over_auth),
            us(gq.added_p99),
            us(ga.added_p99),
            signed_us(over_nginx),
            us(n.added_p99),
        )?;
        let x = d.ab.get(m).cloned().unwrap_or_default();
        let gh = d.row("gateway-health", m);
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
            "- {m}: health row / quota row throughput (rps @{c} ≥ {HEALTH_VS_QUOTAS:.2}x): {} (table rows: {}, {} vs {} requests/s{medians})",
            verdict(x.judged_ratio().map(|r| r >= HEALTH_VS_QUOTAS)),
            fmt_ratio(x.table_ratio()),
            or_na(gh.rps[0].map(fmt_int)),
            or_na(gq.rps[0].map(fmt_int)),
        )?;
    }
    let g = d.row("gateway", "stream");
    writeln!(
        md,
        "- stream: added TTFT p99 @1 ≤ 200 µs: {} ({})",
        verdict(g.added_ttft_p99.map(|v| v <= 200.0)),
        us(g.added_ttft_p99)
    )?;
    let grss = num(d.meta("gateway"), "/rss_kib");
    writeln!(
        md,
        "- idle RSS ≤ 20 MiB: {} ({})",
        verdict(grss.map(|k| k <= 20.0 * 1024.0)),
        or_na(grss.map(|k| format!("{:.1} MiB", k / 1024.0)))
    )
}
