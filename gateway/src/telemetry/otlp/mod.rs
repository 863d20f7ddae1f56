//! OTLP export of the per-request record: spans and a log record per request, sent
//! by a thread of its own (with its own small runtime) from a bounded queue. The
//! request path only queues; a full queue drops the record and counts it, and a
//! collector that is down costs failed exports, never traffic.

mod encode;
mod export;
mod metrics;
mod send;
mod wire;

use crate::config::validate::{ClientSampling, OtlpRt};
use crate::telemetry::attempt::AttemptRec;
use crate::telemetry::trace_context::TraceCtx;
use shared::ai_log::AccessLogLine;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

/// One finished request, as the exporter needs it.
pub struct Record {
    /// the access-log line (shared with the access log when both are on)
    pub line: Arc<AccessLogLine>,
    pub trace: TraceCtx,
    /// export the request's spans (traces on and the trace sampled)
    pub spans: bool,
    /// export its log record
    pub log: bool,
    /// the trace id means something outside the gateway (the client sent it, or
    /// the upstream got it): the log record carries it
    pub linked: bool,
    pub start: SystemTime,
    /// the same instant on the monotonic clock the attempts are timed by
    pub started: Instant,
    /// from the start: the end of the answer, and its first byte
    pub end: Duration,
    pub first_token: Option<Duration>,
    /// `gen_ai.operation.name`
    pub operation: &'static str,
    /// the upstream attempts (their CLIENT spans), in the order of
    /// `line.ai_log.attempts`; empty when the spans are not exported
    pub attempts: Vec<AttemptRec>,
    /// the route's attributes marked `apply_to_span`
    pub span_attrs: serde_json::Map<String, serde_json::Value>,
    pub finish_reason: Option<String>,
}

/// Records travel by value: nearly every message is one, and a box would cost
/// an allocation here and a free on the exporter's thread per request.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Record(Record),
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// Export counters, for `/metrics`.
#[derive(Default)]
pub struct Stats {
    pub spans_exported: AtomicU64,
    pub logs_exported: AtomicU64,
    pub spans_failed: AtomicU64,
    pub logs_failed: AtomicU64,
    /// records dropped because the queue was full
    pub dropped: AtomicU64,
    /// client-sampled traces not sampled (`honor_client_sampling`)
    pub client_sampling_refused: AtomicU64,
}

pub struct Otlp {
    /// request metrics over OTLP (`metrics: true` at start). Declared first so it
    /// is dropped (its last push made) while the exporter thread still runs.
    metrics: Option<metrics::OtelMetrics>,
    tx: mpsc::Sender<Msg>,
    pub stats: Arc<Stats>,
    capacity: usize,
    /// the settings the exporter was started with (a reload cannot change them)
    pub started: OtlpRt,
    /// client-sampled traces followed this second
    client_sampled: PerSecond,
}

impl Otlp {
    /// Starts the exporter thread for `cfg`. Fails on a config the exporters refuse.
    pub fn start(cfg: &OtlpRt) -> Result<Arc<Otlp>, String> {
        let (tx, rx) = mpsc::channel(cfg.queue_size);
        let stats = Arc::new(Stats::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let (cfg2, stats2) = (cfg.clone(), stats.clone());
        std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || export::thread(cfg2, rx, stats2, ready_tx))
            .map_err(|e| format!("cannot start the OTLP exporter thread: {e}"))?;
        match ready_rx.recv() {
            Ok(Ok(started)) => Ok(Arc::new(Otlp {
                tx,
                stats,
                capacity: cfg.queue_size,
                started: cfg.clone(),
                client_sampled: PerSecond::default(),
                metrics: started
                    .metrics
                    .map(|m| metrics::OtelMetrics::new(m, started.runtime, started.resource)),
            })),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the OTLP exporter thread ended at start".to_string()),
        }
    }

    /// Whether a trace the client marked sampled, which `sampling_ratio` would
    /// not sample, is sampled under `policy`.
    pub fn honor_client_sampling(&self, policy: ClientSampling) -> bool {
        let yes = match policy {
            ClientSampling::Always => true,
            ClientSampling::Never => false,
            ClientSampling::PerSecond(n) => self.client_sampled.take(n, unix_second()),
        };
        if !yes {
            self.stats
                .client_sampling_refused
                .fetch_add(1, Ordering::Relaxed);
        }
        yes
    }

    /// Queues a record; never waits.
    pub fn send(&self, r: Record) {
        if self.tx.try_send(Msg::Record(r)).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a finished request in the OTLP metrics (when they are on).
    pub fn record_metrics(
        &self,
        ai: &shared::ai_log::AiLog,
        operation: &'static str,
        labels: &crate::telemetry::labels::ModelLabels,
    ) {
        if let Some(m) = &self.metrics {
            m.record(ai, operation, labels);
        }
    }

    pub fn has_metrics(&self) -> bool {
        self.metrics.is_some()
    }

    /// Records waiting to be exported.
    pub fn queued(&self) -> usize {
        self.capacity.saturating_sub(self.tx.capacity())
    }

    /// Exports everything queued so far; waits at most `timeout`. Blocks the calling
    /// thread (call it off the runtime's workers). False if it did not finish.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
        let mut msg = Msg::Flush(done_tx);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
                Err(mpsc::error::TrySendError::Full(m)) => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    msg = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let done = done_rx.recv_timeout(left).is_ok();
        if let Some(m) = &self.metrics {
            // (one push, itself bounded by the exporter's timeout_ms)
            if Instant::now() < deadline {
                m.flush();
            } else {
                tracing::warn!("OTLP metrics not pushed: the flush ran out of time");
            }
        }
        done
    }
}

/// At most `limit` takes a second: `second << 32 | taken`, in one atomic.
#[derive(Default)]
struct PerSecond(AtomicU64);

impl PerSecond {
    /// One of the `limit` of second `now`, if one is left.
    fn take(&self, limit: u32, now: u64) -> bool {
        let now = now & u64::from(u32::MAX);
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            let (second, n) = (cur >> 32, cur & u64::from(u32::MAX));
            let next = match second == now {
                _ if limit == 0 => return false,
                true if n >= u64::from(limit) => return false,
                true => cur + 1,
                false => (now << 32) | 1,
            };
            match self
                .0
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }
}

fn unix_second() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::PerSecond;

    #[test]
    fn at_most_the_limit_each_second() {
        let p = PerSecond::default();
        let taken = |now| (0..10).filter(|_| p.take(3, now)).count();
        assert_eq!(taken(1_000), 3);
        assert_eq!(taken(1_000), 0);
        assert_eq!(taken(1_001), 3);
        assert!(!PerSecond::default().take(0, 5));
    }
}
