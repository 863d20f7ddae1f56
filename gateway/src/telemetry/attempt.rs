//! One upstream attempt as the records show it: an entry of `ai_log.attempts`
//! and, for traced requests, a CLIENT span.

use std::sync::Arc;
use std::time::Instant;

/// One upstream attempt, as `ai_log.attempts` records it.
pub struct AttemptRec {
    pub provider: Arc<str>,
    /// `gen_ai.provider.name` and `host:port` of the provider, for its span
    pub system: &'static str,
    pub host: Arc<str>,
    /// the attempt's CLIENT span (0 when the request is not traced)
    pub span_id: u64,
    pub started: Instant,
    /// when it failed (or got its response headers); `duration_ms` is
    /// `ended - started`
    pub ended: Option<Instant>,
    /// the model asked of the upstream (None while its quotas are reserved, and
    /// for an attempt they refused)
    pub model: Option<String>,
    pub token: Option<u32>,
    pub status: Option<u16>,
    /// the `fallback.on` name of why it failed; None for the one that answered
    pub reason: Option<&'static str>,
}
