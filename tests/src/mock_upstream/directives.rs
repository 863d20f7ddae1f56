//! Per-request directives: request headers that change how the mock answers that
//! one request, so a load driver can mix normal answers, stalls, upstream-cut
//! streams and errors in one run (the run-time switches of the parent module
//! change every request at once). The gateway passes these headers on.
//!
//! | header | effect on this request |
//! |---|---|
//! | `x-mock-delay-ms: MS` | sleep `MS` before the response head (added to `delay_headers`) |
//! | `x-mock-status: S` | answer `S` (400-599) with the dialect's error body, as `fail_with` |
//! | `x-mock-cut-after: K` | a stream sends its first `K` events, then the connection is aborted, as `cut_stream_after` |
//! | `x-mock-chunk-delay-ms: MS` | sleep `MS` between stream events, as `set_chunk_delay` |
//!
//! Values that do not parse, and statuses outside 400-599, are ignored; delays
//! are capped at [`MAX_DIRECTIVE_DELAY_MS`].

use super::body::MockBody;
use http::HeaderMap;

/// Longest delay a directive can ask for, ms.
pub const MAX_DIRECTIVE_DELAY_MS: u64 = 60_000;

/// The directives of one request (all optional).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Directives {
    pub delay_ms: u64,
    pub status: Option<u16>,
    pub cut_after: Option<usize>,
    pub chunk_delay_ms: Option<u64>,
}

fn number<T: std::str::FromStr>(headers: &HeaderMap, name: &str) -> Option<T> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

impl Directives {
    pub(super) fn of(headers: &HeaderMap) -> Directives {
        Directives {
            delay_ms: number::<u64>(headers, "x-mock-delay-ms")
                .unwrap_or(0)
                .min(MAX_DIRECTIVE_DELAY_MS),
            status: number::<u16>(headers, "x-mock-status").filter(|s| (400..600).contains(s)),
            cut_after: number(headers, "x-mock-cut-after"),
            chunk_delay_ms: number::<u64>(headers, "x-mock-chunk-delay-ms")
                .map(|ms| ms.min(MAX_DIRECTIVE_DELAY_MS)),
        }
    }

    /// Applies the stream directives to an answer's body (a JSON body is left
    /// as it is).
    pub(super) fn apply(&self, body: &mut MockBody) {
        if let Some(ms) = self.chunk_delay_ms {
            body.space_frames(ms);
        }
        if let Some(k) = self.cut_after {
            body.cut_after(k);
        }
    }
}
