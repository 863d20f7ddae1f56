//! `GET /admin/stats?window=`: this replica's figures over the last `window`
//! (10 s to 1 h, default 1 h) in 10-second buckets, and their totals:
//! requests, 5xx errors, tokens, spend, time to first token and latency
//! percentiles (read off fixed-bound histograms).

use super::usage::{bad_query, unknown_parameter};
use crate::app::App;
use crate::error::GatewayError;
use crate::telemetry::series::{quantile, Bucket, BUCKETS, BUCKET_S, SLOTS};
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};
use shared::money::format_nanos;

/// Reads `?window=` as `<n>s`, `<n>m`, `<n>h` or seconds: 10 s to 1 h.
pub fn parse(query: Option<&str>) -> Result<u64, GatewayError> {
    let mut window = BUCKET_S * BUCKETS as u64;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "window" if !v.is_empty() => {
                let (n, unit) = match v.char_indices().last() {
                    Some((i, 's')) => (&v[..i], 1),
                    Some((i, 'm')) => (&v[..i], 60),
                    Some((i, 'h')) => (&v[..i], 3_600),
                    _ => (v.as_ref(), 1),
                };
                window = n
                    .parse::<u64>()
                    .ok()
                    .and_then(|n| n.checked_mul(unit))
                    .filter(|w| (BUCKET_S..=BUCKET_S * BUCKETS as u64).contains(w))
                    .ok_or_else(|| bad_query("window is 10s to 1h (e.g. 15m)"))?;
            }
            "window" => {}
            other => return Err(unknown_parameter(other, "window")),
        }
    }
    Ok(window)
}

fn percentiles(h: &[u32; SLOTS]) -> Value {
    json!({"p50": quantile(h, 0.5), "p90": quantile(h, 0.9), "p99": quantile(h, 0.99)})
}

pub fn get(app: &App, query: Option<&str>) -> Result<Response<Full<Bytes>>, GatewayError> {
    let window = parse(query)?;
    let buckets = app.views.series.window(window);
    let mut total = Bucket::default();
    let series: Vec<Value> = buckets
        .iter()
        .map(|b| {
            total.merge(b);
            json!({
                "t": b.start,
                "requests": b.requests,
                "errors": b.errors,
                "input_tokens": b.input_tokens,
                "output_tokens": b.output_tokens,
                "cost": format_nanos(b.cost),
                "ttft_p50_ms": quantile(&b.ttft, 0.5),
                "ttft_p95_ms": quantile(&b.ttft, 0.95),
                "latency_p50_ms": quantile(&b.latency, 0.5),
                "latency_p95_ms": quantile(&b.latency, 0.95),
            })
        })
        .collect();
    let secs = window as f64;
    let rate = |n: u64| (n as f64 / secs * 1000.0).round() / 1000.0;
    let body = json!({
        "replica": "this",
        "bucket_s": BUCKET_S,
        "window_s": window,
        "currency": app.config().pricing.currency(),
        "totals": {
            "requests": total.requests,
            "errors": total.errors,
            "error_rate": match total.requests {
                0 => 0.0,
                n => (total.errors as f64 / n as f64 * 10_000.0).round() / 10_000.0,
            },
            "requests_per_s": rate(total.requests),
            "tokens_per_s": rate(total.input_tokens.saturating_add(total.output_tokens)),
            "input_tokens": total.input_tokens,
            "output_tokens": total.output_tokens,
            "cost": format_nanos(total.cost),
            "ttft_ms": percentiles(&total.ttft),
            "latency_ms": percentiles(&total.latency),
        },
        "series": series,
    });
    Ok(super::json(StatusCode::OK, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_read_and_bounded() {
        assert_eq!(parse(None).unwrap(), 3_600);
        assert_eq!(parse(Some("window=15m")).unwrap(), 900);
        assert_eq!(parse(Some("window=1h")).unwrap(), 3_600);
        assert_eq!(parse(Some("window=30")).unwrap(), 30);
        for bad in ["window=2h", "window=5s", "window=x", "window=-1m", "w=1"] {
            assert!(parse(Some(bad)).is_err(), "{bad}");
        }
    }
}
