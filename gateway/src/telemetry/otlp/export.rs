//! The exporter thread: gathers queued records into batches, encodes their
//! spans and log records and sends the two export requests side by side; builds
//! the OTLP metrics exporter (opentelemetry-otlp) when `metrics` is on.

use super::encode::{self, Encoder};
use super::send::{Sender, Signal};
use super::{Msg, Stats};
use crate::config::validate::OtlpRt;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use shared::config::OtlpProtocol;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A batch is sent when it is full or this long after its first record arrived.
const LINGER: Duration = Duration::from_millis(200);
/// While a batch gathers, records are taken from the queue and encoded this often.
const TICK: Duration = Duration::from_millis(10);
/// Drops and failed exports are logged at most once per this interval.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// The OTLP metrics exporter for `cfg`: gRPC (tonic) or HTTP/protobuf to
/// `{endpoint}/v1/metrics`, with the configured headers and timeout.
fn metric_exporter(cfg: &OtlpRt) -> Result<opentelemetry_otlp::MetricExporter, String> {
    use opentelemetry_otlp::MetricExporter;
    match cfg.protocol {
        OtlpProtocol::Grpc => {
            let mut b = MetricExporter::builder()
                .with_tonic()
                .with_endpoint(cfg.endpoint.clone())
                .with_timeout(cfg.timeout)
                .with_metadata(metadata(cfg));
            if cfg.endpoint.starts_with("https://") {
                b = b.with_tls_config(
                    opentelemetry_otlp::tonic_types::transport::ClientTlsConfig::new()
                        .with_webpki_roots(),
                );
            }
            b.build()
        }
        OtlpProtocol::Http => MetricExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("{}/v1/metrics", cfg.endpoint))
            .with_timeout(cfg.timeout)
            .with_headers(cfg.headers.iter().cloned().collect())
            .with_http_client(http_client(cfg.timeout))
            .build(),
    }
    .map_err(|e| format!("telemetry.otlp: cannot set up the metrics exporter: {e}"))
}

/// What the thread hands back once its exporters are built: its runtime, for the
/// metrics reader's exports, and the metrics exporter when `metrics` is on.
pub(super) struct Started {
    pub runtime: tokio::runtime::Handle,
    pub metrics: Option<opentelemetry_otlp::MetricExporter>,
    pub resource: Resource,
}

/// Runs the exporter: its own single-threaded runtime, so exports never compete
/// with requests for the runtime's workers and can still run after it stopped.
pub(super) fn thread(
    cfg: OtlpRt,
    rx: mpsc::Receiver<Msg>,
    stats: Arc<Stats>,
    ready: std::sync::mpsc::SyncSender<Result<Started, String>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot start the OTLP runtime: {e}")));
            return;
        }
    };
    let runtime = rt.handle().clone();
    rt.block_on(async move {
        let resource = Resource::builder()
            .with_service_name(cfg.service_name.clone())
            .with_attributes([opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            )])
            .build();
        let metrics = match cfg.metrics {
            true => metric_exporter(&cfg).map(Some),
            false => Ok(None),
        };
        let ex = match (Exporters::build(&cfg), metrics) {
            (Ok(ex), Ok(metrics)) => {
                let _ = ready.send(Ok(Started {
                    runtime,
                    metrics,
                    resource,
                }));
                ex
            }
            (Err(e), _) | (_, Err(e)) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        run(&cfg, rx, stats, ex).await;
    });
}

async fn run(cfg: &OtlpRt, mut rx: mpsc::Receiver<Msg>, stats: Arc<Stats>, mut ex: Exporters) {
    let mut msgs = Vec::with_capacity(cfg.batch_size);
    let mut acks = Vec::new();
    let mut report = Report::default();
    loop {
        // Waits for the first record of a batch, then takes what came in every
        // TICK until the batch is full or LINGER old: never woken by each record
        // (a wake-up per request would cost more than its export), and each one
        // encoded within a tick of its arrival, while it is still in cache.
        if rx.recv_many(&mut msgs, cfg.batch_size).await == 0 {
            break; // every sender is gone and the queue is empty
        }
        let deadline = Instant::now() + LINGER;
        let mut n = 0;
        loop {
            let observed = encode::now();
            for m in msgs.drain(..) {
                match m {
                    Msg::Record(r) => {
                        ex.encoder.add(&r, observed);
                        n += 1;
                    }
                    Msg::Flush(done) => acks.push(done),
                }
            }
            ex.send_ready(&stats).await; // requests that reached MAX_REQUEST_BYTES
            let now = Instant::now();
            if n >= cfg.batch_size || !acks.is_empty() || now >= deadline {
                break;
            }
            tokio::time::sleep(TICK.min(deadline - now)).await;
            let open = loop {
                if n + msgs.len() >= cfg.batch_size {
                    break true;
                }
                match rx.try_recv() {
                    Ok(m) => msgs.push(m),
                    Err(e) => break e == mpsc::error::TryRecvError::Empty,
                }
            };
            if !open && msgs.is_empty() {
                break;
            }
        }
        ex.encoder.finish();
        ex.send_ready(&stats).await;
        if !acks.is_empty() {
            ex.settle().await;
            for done in acks.drain(..) {
                let _ = done.send(());
            }
        }
        report.maybe_log(&stats);
    }
    ex.settle().await;
}

/// Logs drops and failures once per interval, with the counts since the last time.
#[derive(Default)]
struct Report {
    last: Option<std::time::Instant>,
    seen: [u64; 3],
}

impl Report {
    fn maybe_log(&mut self, stats: &Stats) {
        let now = std::time::Instant::now();
        if self.last.is_some_and(|t| now - t < REPORT_EVERY) {
            return;
        }
        let counts = [
            stats.dropped.load(Ordering::Relaxed),
            stats.spans_failed.load(Ordering::Relaxed),
            stats.logs_failed.load(Ordering::Relaxed),
        ];
        if counts != self.seen {
            tracing::warn!(
                dropped = counts[0] - self.seen[0],
                spans_failed = counts[1] - self.seen[1],
                logs_failed = counts[2] - self.seen[2],
                "OTLP export is losing records (queue full or collector unreachable)"
            );
            self.seen = counts;
            self.last = Some(now);
        }
    }
}

/// Export requests in flight at once: the next batch is encoded while the
/// collector works on the last ones.
const IN_FLIGHT: usize = 4;
/// A request that failed for a reason that may pass (collector unreachable,
/// restarting, overloaded) is sent again after 250 ms, 500 ms, 1 s and 2 s, holding
/// its in-flight slot meanwhile: a longer outage fills the queue, which then drops.
const RETRY_DELAYS_MS: [u64; 4] = [250, 500, 1000, 2000];
/// An export request is closed once it is this large (gRPC's default limit on a
/// received message is 4 MiB).
const MAX_REQUEST_BYTES: usize = 2 * 1024 * 1024;

struct Exporters {
    sender: Arc<Sender>,
    encoder: Encoder,
    sending: tokio::task::JoinSet<()>,
    last_error: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

impl Exporters {
    fn build(cfg: &OtlpRt) -> Result<Exporters, String> {
        let grpc = cfg.protocol == OtlpProtocol::Grpc;
        Ok(Exporters {
            sender: Arc::new(Sender::new(cfg)?),
            encoder: Encoder::new(&cfg.service_name, grpc, MAX_REQUEST_BYTES),
            sending: tokio::task::JoinSet::new(),
            last_error: Arc::new(std::sync::Mutex::new(None)),
        })
    }

    /// Starts sending the requests the encoder closed, waiting only while
    /// IN_FLIGHT requests are out.
    async fn send_ready(&mut self, stats: &Arc<Stats>) {
        let ready = std::mem::take(&mut self.encoder.ready);
        for (signal, body, n) in ready {
            while self.sending.len() >= IN_FLIGHT {
                self.sending.join_next().await;
            }
            let (sender, stats, last_error) =
                (self.sender.clone(), stats.clone(), self.last_error.clone());
            self.sending.spawn(async move {
                let (ok, failed, what) = match signal {
                    Signal::Traces => (&stats.spans_exported, &stats.spans_failed, "spans"),
                    Signal::Logs => (&stats.logs_exported, &stats.logs_failed, "logs"),
                };
                let mut retries = RETRY_DELAYS_MS.iter();
                let sent = loop {
                    match sender.send(signal, body.clone()).await {
                        Err(e) if e.retryable => match retries.next() {
                            Some(ms) => tokio::time::sleep(Duration::from_millis(*ms)).await,
                            None => break Err(e),
                        },
                        r => break r,
                    }
                };
                match sent {
                    Ok(0) => ok.fetch_add(n, Ordering::Relaxed),
                    Ok(refused) => {
                        let refused = refused.min(n);
                        log_error(
                            &last_error,
                            what,
                            &format!("the collector rejected {refused} of {n}"),
                        );
                        failed.fetch_add(refused, Ordering::Relaxed);
                        ok.fetch_add(n - refused, Ordering::Relaxed)
                    }
                    Err(e) => {
                        log_error(&last_error, what, &e.message);
                        failed.fetch_add(n, Ordering::Relaxed)
                    }
                };
            });
        }
    }

    /// Waits until every request started has been answered (or failed).
    async fn settle(&mut self) {
        while self.sending.join_next().await.is_some() {}
    }
}

/// The collector's error, once per interval (the counts go to `Report`).
fn log_error(last: &std::sync::Mutex<Option<std::time::Instant>>, what: &str, e: &str) {
    let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
    let now = std::time::Instant::now();
    if last.is_none_or(|t| now - t >= REPORT_EVERY) {
        *last = Some(now);
        tracing::warn!(error = %e, "OTLP export of {what} failed");
    }
}

/// gRPC metadata from `telemetry.otlp.headers` (validated with the config).
fn metadata(cfg: &OtlpRt) -> opentelemetry_otlp::tonic_types::metadata::MetadataMap {
    let h = cfg
        .headers
        .iter()
        .filter_map(|(k, v)| {
            let name = http::HeaderName::from_bytes(k.as_bytes()).ok()?;
            Some((name, http::HeaderValue::from_str(v).ok()?))
        })
        .collect();
    opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(h)
}

/// HTTP/1.1 client for OTLP/HTTP, plain or TLS (webpki roots), TCP_NODELAY.
fn http_client(
    timeout: Duration,
) -> opentelemetry_http::hyper::HyperClient<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
> {
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    http.set_connect_timeout(Some(timeout));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    opentelemetry_http::hyper::HyperClient::new(https, timeout, None)
}
