//! Trace context of a request: continued from the client's W3C `traceparent` /
//! `tracestate` or B3 (single `b3` or multi `X-B3-*`) headers, else started here;
//! the parent-based sampling decision; the headers that carry it upstream.

use http::{HeaderMap, HeaderName, HeaderValue};

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
const B3: HeaderName = HeaderName::from_static("b3");
const B3_TRACE: HeaderName = HeaderName::from_static("x-b3-traceid");
const B3_SPAN: HeaderName = HeaderName::from_static("x-b3-spanid");
const B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
const B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");

/// The ids of one request's trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceCtx {
    pub trace_id: u128,
    /// the request's own (SERVER) span
    pub span_id: u64,
    /// the client's span, when the trace was continued
    pub parent: Option<u64>,
    pub sampled: bool,
    /// the client's `tracestate`, passed on unchanged
    pub tracestate: Option<HeaderValue>,
    /// the client spoke B3: the upstream gets a `b3` header too
    pub b3: bool,
}

impl TraceCtx {
    /// The context for a request with these headers: the client's trace when it sent
    /// a valid one (its sampled flag decides), else a new trace sampled at `ratio`.
    pub fn from_headers(h: &HeaderMap, ratio: f64) -> TraceCtx {
        let span_id = new_span_id();
        // most requests carry no trace header: one pass over the names, no lookups
        let any = h
            .keys()
            .any(|k| crate::headers::is_trace_header(k.as_str()));
        if let Some(continued) = any.then(|| Self::continued(h, span_id, ratio)).flatten() {
            return continued;
        }
        let trace_id = new_trace_id();
        // a B3 caller may say "do not sample" without a trace to continue
        let b3_deny = any && b3_says_no(h);
        TraceCtx {
            trace_id,
            span_id,
            parent: None,
            sampled: !b3_deny && by_ratio(trace_id, ratio),
            tracestate: None,
            b3: b3_deny,
        }
    }

    /// The client's trace, W3C first, then B3 single, then B3 multi.
    fn continued(h: &HeaderMap, span_id: u64, ratio: f64) -> Option<TraceCtx> {
        if let Some((trace_id, parent, sampled)) = h.get(TRACEPARENT).and_then(parse_traceparent) {
            return Some(TraceCtx {
                trace_id,
                span_id,
                parent: Some(parent),
                sampled,
                tracestate: tracestate(h),
                b3: false,
            });
        }
        let (trace_id, parent, sampled) = b3_single(h).or_else(|| b3_multi(h))?;
        Some(TraceCtx {
            trace_id,
            span_id,
            parent: Some(parent),
            // B3 may defer the decision to us
            sampled: sampled.unwrap_or_else(|| by_ratio(trace_id, ratio)),
            tracestate: None,
            b3: true,
        })
    }

    /// Sets the context of the upstream call whose (CLIENT) span is `span_id`. `h`
    /// holds none of the client's trace headers (`headers::copy_to_upstream`
    /// leaves them out of traced requests).
    pub fn inject(&self, span_id: u64, h: &mut HeaderMap) {
        // 00-{trace id}-{span id}-{flags}, written without the formatting machinery
        let mut tp = *b"00-00000000000000000000000000000000-0000000000000000-00";
        hex(&mut tp[3..35], self.trace_id);
        hex(&mut tp[36..52], u128::from(span_id));
        tp[54] = if self.sampled { b'1' } else { b'0' };
        if let Ok(v) = HeaderValue::from_bytes(&tp) {
            h.insert(TRACEPARENT, v);
        }
        if let Some(ts) = &self.tracestate {
            h.insert(TRACESTATE, ts.clone());
        }
        if self.b3 {
            // the traceparent's ids and flag: {trace id}-{span id}-{1|0}
            let mut b3 = [0u8; 51];
            b3[..50].copy_from_slice(&tp[3..53]);
            b3[50] = tp[54];
            if let Ok(v) = HeaderValue::from_bytes(&b3) {
                h.insert(B3, v);
            }
        }
    }
}

/// `v` as lowercase hex filling `out` (its low `out.len()` digits).
fn hex(out: &mut [u8], mut v: u128) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in out.iter_mut().rev() {
        *b = DIGITS[(v & 0xf) as usize];
        v >>= 4;
    }
}

/// A new non-zero span id.
pub fn new_span_id() -> u64 {
    loop {
        let id = fastrand::u64(..);
        if id != 0 {
            return id;
        }
    }
}

fn new_trace_id() -> u128 {
    loop {
        let id = fastrand::u128(..);
        if id != 0 {
            return id;
        }
    }
}

/// The OpenTelemetry TraceIdRatioBased rule: the lower 64 bits of the trace id
/// against the ratio, so every replica decides the same for a trace.
fn by_ratio(trace_id: u128, ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio <= 0.0 {
        return false;
    }
    let bound = (ratio * (1u64 << 63) as f64) as u64;
    ((trace_id as u64) >> 1) < bound
}

/// Every `tracestate` line joined (W3C allows several), dropped when over 512 bytes.
fn tracestate(h: &HeaderMap) -> Option<HeaderValue> {
    let mut all = h.get_all(TRACESTATE).iter();
    let first = all.next()?;
    let rest: Vec<&HeaderValue> = all.collect();
    if rest.is_empty() {
        return Some(first.clone()).filter(|v| v.len() <= 512);
    }
    let mut joined = first.as_bytes().to_vec();
    for v in rest {
        joined.push(b',');
        joined.extend_from_slice(v.as_bytes());
    }
    HeaderValue::from_bytes(&joined)
        .ok()
        .filter(|v| v.len() <= 512)
}

/// A lone `b3: 0`, or `X-B3-Sampled: 0` without ids.
fn b3_says_no(h: &HeaderMap) -> bool {
    let no = |v: &HeaderValue| matches!(v.as_bytes(), b"0" | b"false");
    h.get(B3).is_some_and(no) || h.get(B3_SAMPLED).is_some_and(no)
}

/// `n` lowercase hex digits: what W3C Trace Context allows in `traceparent`.
fn lower_hex(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `00-<32 hex trace>-<16 hex span>-<2 hex flags>` (later versions may add fields),
/// lowercase hex only; anything else starts a new trace.
fn parse_traceparent(v: &HeaderValue) -> Option<(u128, u64, bool)> {
    let s = v.to_str().ok()?.trim();
    let mut it = s.split('-');
    let version = it.next()?;
    let (trace, span, flags) = (it.next()?, it.next()?, it.next()?);
    if !lower_hex(version, 2) || version == "ff" || (version == "00" && it.next().is_some()) {
        return None;
    }
    if !lower_hex(trace, 32) || !lower_hex(span, 16) || !lower_hex(flags, 2) {
        return None;
    }
    let trace_id = hex128(trace)?;
    let span_id = hex64(span)?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some((trace_id, span_id, flags & 1 == 1))
}

/// `b3: {trace}-{span}[-{sampled}[-{parent}]]`, trace of 16 or 32 hex digits; a
/// lone `0`/`1`/`d` carries no trace to continue.
fn b3_single(h: &HeaderMap) -> Option<(u128, u64, Option<bool>)> {
    let s = h.get(B3)?.to_str().ok()?.trim();
    let mut it = s.split('-');
    let trace_id = hex128(it.next()?)?;
    let span_id = hex64(it.next()?)?;
    let sampled = match it.next() {
        None => None,
        Some("1") | Some("d") => Some(true),
        Some("0") => Some(false),
        Some(_) => return None,
    };
    Some((trace_id, span_id, sampled))
}

fn b3_multi(h: &HeaderMap) -> Option<(u128, u64, Option<bool>)> {
    let trace_id = hex128(h.get(B3_TRACE)?.to_str().ok()?.trim())?;
    let span_id = hex64(h.get(B3_SPAN)?.to_str().ok()?.trim())?;
    let debug = h.get(B3_FLAGS).is_some_and(|v| v.as_bytes() == b"1");
    let sampled = match h.get(B3_SAMPLED).map(|v| v.as_bytes()) {
        _ if debug => Some(true),
        Some(b"1") | Some(b"true") => Some(true),
        Some(b"0") | Some(b"false") => Some(false),
        _ => None,
    };
    Some((trace_id, span_id, sampled))
}

/// 32 hex digits (16 for B3's short ids), not all zero; B3 is read leniently
/// (either case).
fn hex128(s: &str) -> Option<u128> {
    if (s.len() != 32 && s.len() != 16) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(s, 16).ok().filter(|v| *v != 0)
}

fn hex64(s: &str) -> Option<u64> {
    if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok().filter(|v| *v != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn continues_w3c_and_passes_tracestate() {
        let h = headers(&[
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("tracestate", "vendor=abc"),
        ]);
        let t = TraceCtx::from_headers(&h, 0.0);
        assert_eq!(t.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(t.parent, Some(0x00f067aa0ba902b7));
        assert!(t.sampled, "the parent's decision wins over the ratio");
        let mut up = HeaderMap::new();
        t.inject(0xabc, &mut up);
        assert_eq!(
            up["traceparent"],
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000abc-01"
        );
        assert_eq!(up["tracestate"], "vendor=abc");
        assert!(up.get("b3").is_none());
    }

    #[test]
    fn bad_traceparent_starts_a_new_trace() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-64fe8b2a57d3eff7-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "FF-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-+1",
            "+0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "garbage",
        ] {
            let t = TraceCtx::from_headers(&headers(&[("traceparent", bad)]), 1.0);
            assert_eq!(t.parent, None, "{bad}");
            assert!(t.sampled);
        }
    }

    #[test]
    fn continues_b3_single_and_multi() {
        let t = TraceCtx::from_headers(
            &headers(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0")]),
            1.0,
        );
        assert_eq!(t.trace_id, 0x80f198ee56343ba864fe8b2a57d3eff7);
        assert_eq!(t.parent, Some(0xe457b5a2e4d86bd1));
        assert!(!t.sampled);
        let mut up = HeaderMap::new();
        t.inject(1, &mut up);
        assert_eq!(
            up["b3"],
            "80f198ee56343ba864fe8b2a57d3eff7-0000000000000001-0"
        );
        let t = TraceCtx::from_headers(
            &headers(&[
                ("x-b3-traceid", "64fe8b2a57d3eff7"),
                ("x-b3-spanid", "e457b5a2e4d86bd1"),
                ("x-b3-sampled", "1"),
            ]),
            0.0,
        );
        assert_eq!(t.trace_id, 0x64fe8b2a57d3eff7);
        assert!(t.sampled && t.b3);
    }

    #[test]
    fn b3_no_is_kept_and_tracestate_lines_join() {
        let t = TraceCtx::from_headers(&headers(&[("b3", "0")]), 1.0);
        assert!(!t.sampled && t.parent.is_none());
        let mut up = HeaderMap::new();
        t.inject(5, &mut up);
        assert!(up["b3"].to_str().unwrap().ends_with("-0"));
        let mut h = headers(&[(
            "traceparent",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future",
        )]);
        h.append("tracestate", HeaderValue::from_static("a=1"));
        h.append("tracestate", HeaderValue::from_static("b=2"));
        let t = TraceCtx::from_headers(&h, 1.0);
        assert_eq!(
            t.parent,
            Some(0x00f067aa0ba902b7),
            "a later version is read"
        );
        assert_eq!(t.tracestate.unwrap(), "a=1,b=2");
    }

    #[test]
    fn ratio_samples_about_its_share() {
        let n = 20_000;
        let kept = (0..n)
            .filter(|_| TraceCtx::from_headers(&HeaderMap::new(), 0.25).sampled)
            .count();
        assert!((4_000..6_000).contains(&kept), "{kept}");
        assert!(!TraceCtx::from_headers(&HeaderMap::new(), 0.0).sampled);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn with(name: &'static str, v: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(v) {
            h.insert(name, v);
        }
        h
    }

    proptest! {
        #![proptest_config(crate::prop::cases(256))]

        /// A valid `traceparent` is continued: its trace id, its span as the
        /// parent and its sampled flag, whatever the ratio; the upstream gets
        /// the same trace with the gateway's span, which reads back the same.
        #[test]
        fn a_valid_traceparent_is_continued_and_passed_on(
            trace in 1u128.., span in 1u64.., flags: u8, ratio in 0.0f64..=1.0, client_span in 1u64..,
        ) {
            let tp = format!("00-{trace:032x}-{span:016x}-{flags:02x}");
            let t = TraceCtx::from_headers(&with("traceparent", tp.as_bytes()), ratio);
            prop_assert_eq!(t.trace_id, trace);
            prop_assert_eq!(t.parent, Some(span));
            prop_assert_eq!(t.sampled, flags & 1 == 1);
            prop_assert!(!t.b3);
            let mut up = HeaderMap::new();
            t.inject(client_span, &mut up);
            let again = TraceCtx::from_headers(&up, 1.0 - ratio);
            prop_assert_eq!(again.trace_id, trace);
            prop_assert_eq!(again.parent, Some(client_span));
            prop_assert_eq!(again.sampled, t.sampled);
        }

        /// B3 single and multi headers are continued likewise, in either case
        /// of hex, 64- or 128-bit trace ids; the upstream gets `b3` back.
        #[test]
        fn b3_is_continued_and_passed_on(
            trace in 1u128.., short: bool, span in 1u64.., sampled in proptest::option::of(any::<bool>()),
            upper: bool, multi: bool,
        ) {
            let trace = if short { trace % (1 << 64) } else { trace };
            prop_assume!(trace != 0);
            let case = |s: String| if upper { s.to_uppercase() } else { s };
            let t_hex = case(if short { format!("{trace:016x}") } else { format!("{trace:032x}") });
            let s_hex = case(format!("{span:016x}"));
            let h = if multi {
                let mut h = with("x-b3-traceid", t_hex.as_bytes());
                h.insert("x-b3-spanid", HeaderValue::from_str(&s_hex).unwrap());
                if let Some(s) = sampled {
                    h.insert("x-b3-sampled", HeaderValue::from_static(if s { "1" } else { "0" }));
                }
                h
            } else {
                let flag = sampled.map_or(String::new(), |s| format!("-{}", u8::from(s)));
                with("b3", format!("{t_hex}-{s_hex}{flag}").as_bytes())
            };
            let t = TraceCtx::from_headers(&h, 1.0);
            prop_assert_eq!(t.trace_id, trace);
            prop_assert_eq!(t.parent, Some(span));
            prop_assert_eq!(t.sampled, sampled.unwrap_or(true));
            prop_assert!(t.b3);
            let mut up = HeaderMap::new();
            t.inject(7, &mut up);
            let back = TraceCtx::from_headers(&with("b3", up["b3"].as_bytes()), 0.0);
            prop_assert_eq!((back.trace_id, back.parent, back.sampled), (trace, Some(7), t.sampled));
        }

        /// Any bytes in any trace header: no panic, and a continued trace
        /// never has a zero id (W3C and B3 both forbid them).
        #[test]
        fn any_header_bytes_are_safe(
            name in prop::sample::select(vec!["traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "x-b3-flags"]),
            v in prop::collection::vec(prop_oneof![
                8 => prop::sample::select(b"0123456789abcdefABCDEF-".to_vec()),
                1 => any::<u8>(),
            ], 0..80),
            ratio in -1.0f64..2.0,
        ) {
            let t = TraceCtx::from_headers(&with(name, &v), ratio);
            prop_assert!(t.trace_id != 0 && t.span_id != 0);
            prop_assert!(t.parent != Some(0));
            let mut up = HeaderMap::new();
            t.inject(t.span_id, &mut up);
            let tp = up["traceparent"].to_str().unwrap();
            prop_assert!(parse_traceparent(&up["traceparent"]).is_some(), "{}", tp);
        }

        /// A header whose trace or span id is all zeros (W3C `traceparent`,
        /// B3 single or multi, 64- or 128-bit trace ids) starts a new trace:
        /// both forbid zero ids.
        #[test]
        fn a_zero_id_starts_a_new_trace(
            trace in 1u128.., span in 1u64.., zero_trace: bool, form in 0u8..3, short: bool,
        ) {
            let (trace, span) = if zero_trace { (0, span) } else { (trace, 0) };
            let t_hex = if short && form > 0 { format!("{:016x}", trace % (1 << 64)) } else { format!("{trace:032x}") };
            let s_hex = format!("{span:016x}");
            let h = match form {
                0 => with("traceparent", format!("00-{t_hex}-{s_hex}-01").as_bytes()),
                1 => with("b3", format!("{t_hex}-{s_hex}-1").as_bytes()),
                _ => {
                    let mut h = with("x-b3-traceid", t_hex.as_bytes());
                    h.insert("x-b3-spanid", HeaderValue::from_str(&s_hex).unwrap());
                    h
                }
            };
            let t = TraceCtx::from_headers(&h, 1.0);
            prop_assert_eq!(t.parent, None, "{:?}", h);
            prop_assert!(t.trace_id != 0 && t.span_id != 0);
        }

        /// A `traceparent` that is not exactly the W3C form (a character
        /// changed to one outside lowercase hex, a field one digit short or
        /// long) starts a new trace.
        #[test]
        fn a_malformed_traceparent_starts_a_new_trace(
            trace in 1u128.., span in 1u64.., at in 0usize..55, to in "[G-Zg-z_+ ]", grow: bool,
        ) {
            let good = format!("00-{trace:032x}-{span:016x}-01");
            let mut bad = good.clone();
            if at == 2 || at == 35 || at == 52 {
                // a separator: one more or one fewer digit in the field before it
                if grow { bad.insert(at, 'a') } else { bad.remove(at - 1); }
            } else {
                bad.replace_range(at..at + 1, &to);
            }
            let t = TraceCtx::from_headers(&with("traceparent", bad.as_bytes()), 1.0);
            prop_assert_eq!(t.parent, None, "{}", bad);
        }
    }
}
