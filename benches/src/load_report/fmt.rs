//! Number formatting for the load report.

/// `12,345` (rounded to a whole number; the chaos report's digit groups).
pub fn fmt_int(v: f64) -> String {
    let n = v.round() as i64;
    let out = gateway_tests::chaos::judge::fmt(n.unsigned_abs());
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

pub fn or_na(v: Option<String>) -> String {
    v.unwrap_or_else(|| "n/a".into())
}

/// `1,234 µs`
pub fn us(v: Option<f64>) -> String {
    or_na(v.map(|x| format!("{} µs", fmt_int(x))))
}

/// `12.3 µs`
pub fn us1(v: Option<f64>) -> String {
    or_na(v.map(|x| format!("{x:.1} µs")))
}

/// `a / b`, when both are known and b > 0.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// CPU time per request in µs from a CPU share (% of one core) and a rate.
pub fn cpu_per_req(cpu_pct: Option<f64>, rps: Option<f64>) -> Option<f64> {
    match (cpu_pct, rps) {
        (Some(c), Some(r)) if r > 0.0 => Some(c / 100.0 * 1e6 / r),
        _ => None,
    }
}

/// A latency difference with its sign: `+12 µs`, `-3 µs`.
pub fn signed_us(v: Option<f64>) -> String {
    or_na(v.map(|x| {
        let s = fmt_int(x);
        if s.starts_with('-') {
            format!("{s} µs")
        } else {
            format!("+{s} µs")
        }
    }))
}

/// `0.55x`
pub fn fmt_ratio(r: Option<f64>) -> String {
    or_na(r.map(|r| format!("{r:.2}x")))
}

/// `42%`
pub fn pct(v: Option<f64>) -> String {
    or_na(v.map(|p| format!("{p:.0}%")))
}

/// `name count, name count, ...`
pub fn list_counts(by: &[(String, f64)]) -> String {
    by.iter()
        .map(|(name, n)| format!("{name} {}", fmt_int(*n)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "n/a",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(fmt_int(0.0), "0");
        assert_eq!(fmt_int(999.4), "999");
        assert_eq!(fmt_int(12345.0), "12,345");
        assert_eq!(fmt_int(-1234567.0), "-1,234,567");
        assert_eq!(signed_us(Some(42.4)), "+42 µs");
        assert_eq!(signed_us(Some(-1200.0)), "-1,200 µs");
        assert_eq!(signed_us(None), "n/a");
        assert_eq!(cpu_per_req(Some(50.0), Some(10_000.0)), Some(50.0));
        assert_eq!(cpu_per_req(Some(50.0), Some(0.0)), None);
        assert_eq!(fmt_ratio(ratio(Some(3.0), Some(4.0))), "0.75x");
        assert_eq!(ratio(Some(3.0), None), None);
    }
}
