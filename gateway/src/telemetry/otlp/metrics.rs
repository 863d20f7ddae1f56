//! Request metrics over OTLP (`telemetry.otlp.metrics: true`): the GenAI client
//! histograms, the request and fallback counters and the cost counters (as on
//! `/metrics`), recorded from the same
//! `ai_log` record as `/metrics` and pushed by the SDK's periodic reader, whose
//! exports run on the exporter thread's runtime.

use crate::telemetry::labels::ModelLabels;
use crate::telemetry::metrics::{cost_nanos, SECONDS_BUCKETS, TOKEN_BUCKETS};
use opentelemetry::metrics::{Counter, Histogram, MeterProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use shared::ai_log::AiLog;
use std::time::Duration;

/// How often the metrics are pushed.
const INTERVAL: Duration = Duration::from_secs(10);

pub struct OtelMetrics {
    provider: SdkMeterProvider,
    token_usage: Histogram<u64>,
    duration: Histogram<f64>,
    first_chunk: Histogram<f64>,
    requests: Counter<u64>,
    fallbacks: Counter<u64>,
    cost: Counter<f64>,
    unpriced: Counter<u64>,
    estimated: Counter<u64>,
}

impl OtelMetrics {
    pub(super) fn new(
        exporter: opentelemetry_otlp::MetricExporter,
        runtime: tokio::runtime::Handle,
        resource: opentelemetry_sdk::Resource,
    ) -> OtelMetrics {
        let reader = PeriodicReader::builder(OnRuntime {
            inner: exporter,
            runtime,
        })
        .with_interval(INTERVAL)
        .build();
        let provider = SdkMeterProvider::builder()
            .with_reader(reader)
            .with_resource(resource)
            .build();
        let meter = provider.meter("ai-gateway");
        OtelMetrics {
            token_usage: meter
                .u64_histogram("gen_ai.client.token.usage")
                .with_unit("{token}")
                .with_description("Tokens used per request, by gen_ai.token.type.")
                .with_boundaries(TOKEN_BUCKETS.to_vec())
                .build(),
            duration: meter
                .f64_histogram("gen_ai.client.operation.duration")
                .with_unit("s")
                .with_description("Time from the request to the end of the answer.")
                .with_boundaries(SECONDS_BUCKETS.to_vec())
                .build(),
            first_chunk: meter
                .f64_histogram("gen_ai.client.operation.time_to_first_chunk")
                .with_unit("s")
                .with_description("Time from the request to the first streamed chunk.")
                .with_boundaries(SECONDS_BUCKETS.to_vec())
                .build(),
            requests: meter
                .u64_counter("gateway.requests")
                .with_unit("{request}")
                .with_description("Requests by route and status.")
                .build(),
            fallbacks: meter
                .u64_counter("gateway.fallbacks")
                .with_unit("{attempt}")
                .with_description("Upstream attempts after the first, by route.")
                .build(),
            cost: meter
                .f64_counter("gateway.cost")
                .with_description(
                    "What the requests upstreams answered cost, in units of pricing.currency.",
                )
                .build(),
            unpriced: meter
                .u64_counter("gateway.cost.unpriced_requests")
                .with_unit("{request}")
                .with_description("Requests answered for a model without a price (costed 0).")
                .build(),
            estimated: meter
                .u64_counter("gateway.cost.estimated_requests")
                .with_unit("{request}")
                .with_description("Requests costed from the gateway's estimate of their usage.")
                .build(),
            provider,
        }
    }

    pub fn record(&self, ai: &AiLog, operation: &'static str, labels: &ModelLabels) {
        let route = KeyValue::new("gateway.route", ai.route.clone().unwrap_or_default());
        self.requests.add(
            1,
            &[
                route.clone(),
                KeyValue::new("http.response.status_code", i64::from(ai.status)),
            ],
        );
        if ai.attempts.len() > 1 {
            self.fallbacks
                .add(ai.attempts.len() as u64 - 1, std::slice::from_ref(&route));
        }
        let Some(provider) = &ai.provider else {
            return;
        };
        self.record_cost(ai, provider, labels);
        let mut attrs = vec![
            KeyValue::new("gen_ai.operation.name", operation),
            KeyValue::new("gen_ai.provider.name", provider.clone()),
            KeyValue::new("gen_ai.request.model", labels.request().to_string()),
        ];
        if ai.model.is_some() {
            attrs.push(KeyValue::new(
                "gen_ai.response.model",
                labels.model(ai.model.as_deref()).to_string(),
            ));
        }
        if ai.status >= 400 {
            attrs.push(KeyValue::new("error.type", ai.status.to_string()));
        }
        self.duration
            .record(ai.llm_service_duration as f64 / 1000.0, &attrs);
        if let Some(t) = ai
            .llm_first_token_duration
            .filter(|_| ai.response_type == "stream")
        {
            self.first_chunk.record(t as f64 / 1000.0, &attrs);
        }
        if ai.status < 400 {
            let cache = [
                ("cache_read", ai.cached_tokens),
                ("cache_creation", ai.cache_creation_tokens),
            ];
            let all = [("input", ai.input_token), ("output", ai.output_token)];
            // (cache figures only where a prompt cache was used)
            for (kind, n) in all.into_iter().chain(cache.into_iter().filter(|c| c.1 > 0)) {
                attrs.push(KeyValue::new("gen_ai.token.type", kind));
                self.token_usage.record(n, &attrs);
                attrs.pop();
            }
        }
    }

    /// `gateway.cost` by tenant, consumer, model and provider (labels as on
    /// `/metrics`), and the unpriced and estimated counts by model and provider.
    fn record_cost(&self, ai: &AiLog, provider: &str, labels: &ModelLabels) {
        let (Some(nanos), Some(model)) = (cost_nanos(ai), ai.cost_model.as_deref()) else {
            return;
        };
        let model = labels
            .priced(model, ai.request_model.as_deref())
            .to_string();
        let mut attrs = vec![
            KeyValue::new("gateway.cost_model", model),
            KeyValue::new("gen_ai.provider.name", provider.to_string()),
        ];
        if ai.cost_unpriced {
            self.unpriced.add(1, &attrs);
        }
        if ai.cost_estimated {
            self.estimated.add(1, &attrs);
        }
        let who = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
        attrs.push(KeyValue::new("gateway.tenant", who(&ai.tenant)));
        attrs.push(KeyValue::new("gateway.consumer", who(&ai.consumer)));
        self.cost
            .add(nanos as f64 / shared::money::NANOS_PER_UNIT as f64, &attrs);
    }

    /// Pushes what was recorded so far (blocks; off the runtime's workers).
    pub fn flush(&self) {
        if let Err(e) = self.provider.force_flush() {
            tracing::warn!(error = %e, "OTLP metrics could not be pushed");
        }
    }
}

/// Runs the OTLP exporter's calls on the exporter thread's runtime: the periodic
/// reader calls from a thread of its own, where a gRPC or HTTP client has no
/// runtime to run on.
#[derive(Debug)]
struct OnRuntime {
    inner: opentelemetry_otlp::MetricExporter,
    runtime: tokio::runtime::Handle,
}

impl PushMetricExporter for OnRuntime {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        self.runtime.block_on(self.inner.export(metrics))
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}
