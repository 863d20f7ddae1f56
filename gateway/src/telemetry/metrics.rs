//! Request metrics for `/metrics` (Prometheus text), from each request's `ai_log`
//! record: Higress's `route_upstream_model_consumer_metric_*` counters (labels
//! `ai_route`, `ai_cluster`, `ai_model`, `ai_consumer`, so its dashboards work),
//! the OpenTelemetry GenAI client histograms (token usage by type, operation
//! duration, time to first chunk), requests by route and status, fallbacks, and
//! what requests cost (`gateway_cost_total`, with the requests priced from no
//! price or from estimated usage counted apart).
//! Labels come from config (routes, providers, tenants and consumers; models
//! only as the config names them, see `labels.rs`): no request ids, keys or
//! client values.

use crate::telemetry::labels::ModelLabels;
use dashmap::DashMap;
use prometheus::{
    Counter, CounterVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts,
    Registry, TextEncoder,
};
use shared::ai_log::AiLog;
use std::sync::Arc;

/// Most label combinations whose series handles are kept ready (beyond it, the
/// series are still counted, through the slower labelled lookup).
const MAX_CACHED: usize = 10_000;

const HIGRESS: [&str; 4] = ["ai_route", "ai_cluster", "ai_model", "ai_consumer"];
const GEN_AI: [&str; 3] = [
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
];

fn labels_stream(ai: &AiLog) -> bool {
    ai.response_type == "stream"
}

/// The OpenTelemetry GenAI semantic conventions' advised buckets.
pub(crate) const TOKEN_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];
pub(crate) const SECONDS_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

pub struct Metrics {
    registry: Registry,
    input_token: IntCounterVec,
    output_token: IntCounterVec,
    service_duration: IntCounterVec,
    first_token_duration: IntCounterVec,
    duration_count: IntCounterVec,
    token_usage: HistogramVec,
    operation_duration: HistogramVec,
    first_chunk: HistogramVec,
    requests: IntCounterVec,
    fallbacks: IntCounterVec,
    cost: CounterVec,
    unpriced: IntCounterVec,
    estimated: IntCounterVec,
    /// the handles of one request's series, by a hash of their labels (the
    /// labels are kept to tell a collision)
    ready: DashMap<u64, Arc<(Labels, Series)>>,
}

/// A request's model labels (see `labels.rs`).
#[derive(Clone, Copy)]
struct Names<'a> {
    model: &'a str,
    request: &'a str,
    /// the priced model's label, for a request that has a cost
    priced: Option<&'a str>,
}

/// The labels of one request's series.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Labels {
    operation: String,
    route: String,
    status: u16,
    provider: Option<String>,
    model: String,
    request_model: String,
    tenant: Option<String>,
    consumer: Option<String>,
    stream: bool,
    priced: Option<String>,
}

const NONE: &str = "none";

/// The labels of `gateway_cost_total` (the last two: of the unpriced and
/// estimated counts).
const COST: [&str; 4] = ["tenant", "consumer", "model", "provider"];

impl Labels {
    fn of(ai: &AiLog, operation: &str, models: Names<'_>) -> Labels {
        Labels {
            operation: operation.to_string(),
            route: ai.route.as_deref().unwrap_or(NONE).to_string(),
            status: ai.status,
            provider: ai.provider.clone(),
            model: models.model.to_string(),
            request_model: models.request.to_string(),
            tenant: ai.tenant.clone(),
            consumer: ai.consumer.clone(),
            stream: labels_stream(ai),
            priced: models.priced.map(str::to_string),
        }
    }

    /// Higress's `ai_consumer`: `tenant/consumer`, or `none`.
    fn higress_consumer(&self) -> String {
        match (&self.tenant, &self.consumer) {
            (Some(t), Some(c)) => format!("{t}/{c}"),
            _ => NONE.to_string(),
        }
    }

    /// A hash of what `of` would build, without building it.
    fn hash(ai: &AiLog, operation: &str, models: Names<'_>) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for part in [
            operation,
            ai.route.as_deref().unwrap_or(NONE),
            ai.provider.as_deref().unwrap_or("\0"),
            models.model,
            models.request,
            ai.tenant.as_deref().unwrap_or("\0"),
            ai.consumer.as_deref().unwrap_or("\0"),
            models.priced.unwrap_or("\0"),
        ] {
            h.update(part.as_bytes());
            h.update(&[0xff]);
        }
        h.update(&ai.status.to_le_bytes());
        h.update(&[u8::from(labels_stream(ai))]);
        h.digest()
    }

    fn matches(&self, ai: &AiLog, operation: &str, models: Names<'_>) -> bool {
        self.tenant == ai.tenant
            && self.consumer == ai.consumer
            && self.priced.as_deref() == models.priced
            && self.operation == operation
            && self.route == ai.route.as_deref().unwrap_or(NONE)
            && self.status == ai.status
            && self.provider.as_deref() == ai.provider.as_deref()
            && self.model == models.model
            && self.request_model == models.request
            && self.stream == labels_stream(ai)
    }
}

/// Resolved series handles: counting is then a few atomic adds.
struct Series {
    requests: IntCounter,
    fallbacks: IntCounter,
    llm: Option<LlmSeries>,
}

struct LlmSeries {
    input: IntCounter,
    output: IntCounter,
    service: IntCounter,
    first_token: IntCounter,
    count: IntCounter,
    usage_in: Histogram,
    usage_out: Histogram,
    /// prompt tokens read from / written to a prompt cache (observed when any)
    usage_cache_read: Histogram,
    usage_cache_creation: Histogram,
    duration: Histogram,
    first_chunk: Histogram,
    /// for requests that have a cost
    cost: Option<CostSeries>,
}

/// `gateway_cost_total` of one (tenant, consumer, model, provider), and the
/// unpriced and estimated counts of its (model, provider), all made (at 0)
/// with the first request of that label set: a count then starts from a
/// sample of 0 in Prometheus, so `increase()` sees its first event.
struct CostSeries {
    total: Counter,
    unpriced: IntCounter,
    estimated: IntCounter,
}

/// The cost of a record in nano-units (`ai_log.cost` is its exact decimal text).
pub(crate) fn cost_nanos(ai: &AiLog) -> Option<u64> {
    let text = ai.cost.as_deref()?;
    shared::money::Decimal::parse(text).ok()?.to_nanos()
}

impl Metrics {
    /// The metric set; None only if the names were refused (a bug, logged).
    pub fn new() -> Option<Metrics> {
        match Self::build() {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::error!(error = %e, "request metrics could not be set up");
                None
            }
        }
    }

    fn build() -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<IntCounterVec> {
                let c = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let hist = |name: &str,
                    help: &str,
                    labels: &[&str],
                    buckets: &[f64]|
         -> prometheus::Result<HistogramVec> {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                labels,
            )?;
            registry.register(Box::new(h.clone()))?;
            Ok(h)
        };
        let p = "route_upstream_model_consumer_metric_";
        let token_labels = [GEN_AI[0], GEN_AI[1], GEN_AI[2], "gen_ai_token_type"];
        Ok(Metrics {
            input_token: counter(
                &format!("{p}input_token"),
                "Prompt tokens (Higress ai-statistics).",
                &HIGRESS,
            )?,
            output_token: counter(
                &format!("{p}output_token"),
                "Completion tokens (Higress ai-statistics).",
                &HIGRESS,
            )?,
            service_duration: counter(
                &format!("{p}llm_service_duration"),
                "Total ms from request to the end of the answer (Higress ai-statistics).",
                &HIGRESS,
            )?,
            first_token_duration: counter(
                &format!("{p}llm_first_token_duration"),
                "Total ms to the first answer byte of streamed answers (Higress ai-statistics).",
                &HIGRESS,
            )?,
            duration_count: counter(
                &format!("{p}llm_duration_count"),
                "Answered LLM requests (Higress ai-statistics).",
                &HIGRESS,
            )?,
            token_usage: hist(
                "gen_ai_client_token_usage",
                "Tokens per request by gen_ai_token_type input/output, and cache_read/cache_creation (the prompt tokens read from and written to a prompt cache) when there are any (OpenTelemetry GenAI).",
                &token_labels,
                &TOKEN_BUCKETS,
            )?,
            operation_duration: hist(
                "gen_ai_client_operation_duration_seconds",
                "Request duration in seconds (OpenTelemetry GenAI).",
                &GEN_AI,
                &SECONDS_BUCKETS,
            )?,
            first_chunk: hist(
                "gen_ai_client_operation_time_to_first_chunk_seconds",
                "Seconds to the first chunk of streamed answers (OpenTelemetry GenAI).",
                &GEN_AI,
                &SECONDS_BUCKETS,
            )?,
            requests: counter(
                "gateway_requests_total",
                "Requests by route and HTTP status answered.",
                &["route", "status"],
            )?,
            fallbacks: counter(
                "gateway_fallbacks_total",
                "Upstream attempts after a request's first, by route.",
                &["route"],
            )?,
            cost: {
                let c = CounterVec::new(
                    Opts::new(
                        "gateway_cost_total",
                        "What the requests upstreams answered cost, in units of pricing.currency (tenant and consumer none when anonymous; unpriced models count 0).",
                    ),
                    &COST,
                )?;
                registry.register(Box::new(c.clone()))?;
                c
            },
            unpriced: counter(
                "gateway_cost_unpriced_requests_total",
                "Requests answered by an upstream for a model without a price (costed 0).",
                &COST[2..],
            )?,
            estimated: counter(
                "gateway_cost_estimated_requests_total",
                "Requests costed from the gateway's estimate of their usage (the upstream reported none, or the stream was cut).",
                &COST[2..],
            )?,
            ready: DashMap::new(),
            registry,
        })
    }

    /// Counts one finished request.
    pub fn record(&self, ai: &AiLog, operation: &str, labels: &ModelLabels) {
        // (the model labels looked up once)
        let priced = ai.cost_model.as_deref().filter(|_| ai.cost.is_some());
        let models = Names {
            model: labels.model(ai.model.as_deref()),
            request: labels.request(),
            priced: priced.map(|m| labels.priced(m, ai.request_model.as_deref())),
        };
        let key = Labels::hash(ai, operation, models);
        let cached = self
            .ready
            .get(&key)
            .map(|e| e.clone())
            .filter(|e| e.0.matches(ai, operation, models));
        let entry = match cached {
            Some(e) => e,
            None => {
                let labels = Labels::of(ai, operation, models);
                let e = Arc::new((labels.clone(), self.resolve(&labels)));
                if self.ready.len() < MAX_CACHED {
                    self.ready.insert(key, e.clone());
                }
                e
            }
        };
        let series = &entry.1;
        series.requests.inc();
        if ai.attempts.len() > 1 {
            series.fallbacks.inc_by(ai.attempts.len() as u64 - 1);
        }
        let Some(llm) = &series.llm else {
            return;
        };
        llm.input.inc_by(ai.input_token);
        llm.output.inc_by(ai.output_token);
        llm.service.inc_by(ai.llm_service_duration);
        llm.count.inc();
        llm.usage_in.observe(ai.input_token as f64);
        llm.usage_out.observe(ai.output_token as f64);
        if ai.cached_tokens > 0 {
            llm.usage_cache_read.observe(ai.cached_tokens as f64);
        }
        if ai.cache_creation_tokens > 0 {
            llm.usage_cache_creation
                .observe(ai.cache_creation_tokens as f64);
        }
        if let (Some(c), Some(nanos)) = (&llm.cost, cost_nanos(ai)) {
            c.total
                .inc_by(nanos as f64 / shared::money::NANOS_PER_UNIT as f64);
            if ai.cost_unpriced {
                c.unpriced.inc();
            }
            if ai.cost_estimated {
                c.estimated.inc();
            }
        }
        llm.duration
            .observe(ai.llm_service_duration as f64 / 1000.0);
        if let Some(ttft) = ai.llm_first_token_duration.filter(|_| labels_stream(ai)) {
            llm.first_token.inc_by(ttft);
            llm.first_chunk.observe(ttft as f64 / 1000.0);
        }
    }

    fn resolve(&self, l: &Labels) -> Series {
        let status = l.status.to_string();
        Series {
            requests: self
                .requests
                .with_label_values(&[l.route.as_str(), &status]),
            fallbacks: self.fallbacks.with_label_values(&[l.route.as_str()]),
            llm: l.provider.as_deref().map(|provider| {
                let consumer = l.higress_consumer();
                let h = [l.route.as_str(), provider, &l.model, &consumer];
                let g = [l.operation.as_str(), provider, &l.request_model];
                let usage = |kind: &str| {
                    self.token_usage
                        .with_label_values(&[g[0], g[1], g[2], kind])
                };
                LlmSeries {
                    input: self.input_token.with_label_values(&h),
                    output: self.output_token.with_label_values(&h),
                    service: self.service_duration.with_label_values(&h),
                    first_token: self.first_token_duration.with_label_values(&h),
                    count: self.duration_count.with_label_values(&h),
                    usage_in: usage("input"),
                    usage_out: usage("output"),
                    usage_cache_read: usage("cache_read"),
                    usage_cache_creation: usage("cache_creation"),
                    duration: self.operation_duration.with_label_values(&g),
                    first_chunk: self.first_chunk.with_label_values(&g),
                    cost: l.priced.as_deref().map(|model| {
                        let who = |v: &Option<String>| v.clone().unwrap_or_else(|| NONE.into());
                        let (tenant, consumer) = (who(&l.tenant), who(&l.consumer));
                        CostSeries {
                            total: self
                                .cost
                                .with_label_values(&[&tenant, &consumer, model, provider]),
                            unpriced: self.unpriced.with_label_values(&[model, provider]),
                            estimated: self.estimated.with_label_values(&[model, provider]),
                        }
                    }),
                }
            }),
        }
    }

    /// The Prometheus text of every metric here.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_higress_and_gen_ai_series() {
        let m = Metrics::new().unwrap();
        let mut ai = AiLog {
            route: Some("chat".into()),
            provider: Some("openai".into()),
            model: Some("gpt-4o-2024".into()),
            request_model: Some("gpt-4o".into()),
            tenant: Some("acme".into()),
            consumer: Some("web".into()),
            input_token: 12,
            output_token: 30,
            llm_service_duration: 250,
            llm_first_token_duration: Some(40),
            response_type: "stream".into(),
            status: 200,
            ..AiLog::default()
        };
        ai.attempts = vec![Default::default(), Default::default()];
        let known = Arc::new(crate::telemetry::labels::KnownModels::new([
            "gpt-4o",
            "gpt-4o-2024",
        ]));
        let labels = |name: &str| ModelLabels {
            request: crate::telemetry::labels::Label::of(name, &known, || None),
            upstream: known.get(name).cloned(),
            known: Some(known.clone()),
        };
        m.record(&ai, "chat", &labels("gpt-4o"));
        m.record(&ai, "chat", &labels("gpt-4o"));
        // names the config does not know are counted, under `other`
        ai.request_model = Some("client-made-up-name".into());
        ai.model = Some("echoed-client-made-up-name".into());
        m.record(&ai, "chat", &labels("client-made-up-name"));
        let text = m.render();
        let want = [
            "route_upstream_model_consumer_metric_input_token{ai_cluster=\"openai\",ai_consumer=\"acme/web\",ai_model=\"gpt-4o-2024\",ai_route=\"chat\"} 24",
            "route_upstream_model_consumer_metric_output_token{ai_cluster=\"openai\",ai_consumer=\"acme/web\",ai_model=\"gpt-4o-2024\",ai_route=\"chat\"} 60",
            "route_upstream_model_consumer_metric_llm_first_token_duration{ai_cluster=\"openai\",ai_consumer=\"acme/web\",ai_model=\"gpt-4o-2024\",ai_route=\"chat\"} 80",
            "route_upstream_model_consumer_metric_llm_duration_count{ai_cluster=\"openai\",ai_consumer=\"acme/web\",ai_model=\"gpt-4o-2024\",ai_route=\"chat\"} 2",
            "gen_ai_client_token_usage_sum{gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"openai\",gen_ai_request_model=\"gpt-4o\",gen_ai_token_type=\"output\"} 60",
            "gen_ai_client_operation_duration_seconds_count{gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"openai\",gen_ai_request_model=\"gpt-4o\"} 2",
            "gateway_requests_total{route=\"chat\",status=\"200\"} 3",
            "gateway_fallbacks_total{route=\"chat\"} 3",
            "route_upstream_model_consumer_metric_llm_duration_count{ai_cluster=\"openai\",ai_consumer=\"acme/web\",ai_model=\"other\",ai_route=\"chat\"} 1",
            "gen_ai_client_operation_duration_seconds_count{gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"openai\",gen_ai_request_model=\"other\"} 1",
        ];
        for w in want {
            assert!(text.contains(w), "missing {w} in\n{text}");
        }
        assert!(!text.contains("made-up"), "{text}");
    }
    #[test]
    fn prompt_cache_tokens_by_token_type() {
        let m = Metrics::new().unwrap();
        let ai = |cached, created| AiLog {
            route: Some("claude".into()),
            provider: Some("anthropic".into()),
            request_model: Some("c".into()),
            input_token: 100,
            output_token: 10,
            cached_tokens: cached,
            cache_creation_tokens: created,
            status: 200,
            ..AiLog::default()
        };
        m.record(&ai(60, 30), "chat", &ModelLabels::default());
        m.record(&ai(0, 0), "chat", &ModelLabels::default());
        let text = m.render();
        let series = |kind: &str| {
            format!("gen_ai_client_token_usage_sum{{gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"anthropic\",gen_ai_request_model=\"unknown\",gen_ai_token_type=\"{kind}\"}}")
        };
        for (kind, sum) in [("input", 200), ("cache_read", 60), ("cache_creation", 30)] {
            let want = format!("{} {sum}", series(kind));
            assert!(text.contains(&want), "missing {want} in\n{text}");
        }
        // observed only for requests that used the cache
        let count = series("cache_read").replace("_sum", "_count");
        assert!(text.contains(&format!("{count} 1")), "{text}");
    }

    #[test]
    fn cost_by_tenant_consumer_model_and_provider() {
        let m = Metrics::new().unwrap();
        let known = Arc::new(crate::telemetry::labels::KnownModels::new(["mock-small"]));
        let labels = ModelLabels {
            request: crate::telemetry::labels::Label::of("gpt-4o", &known, || None),
            upstream: None,
            known: Some(known.clone()),
        };
        let ai = |cost: &str, model: &str| AiLog {
            route: Some("chat".into()),
            provider: Some("up1".into()),
            request_model: Some("gpt-4o".into()),
            tenant: Some("acme".into()),
            consumer: Some("web".into()),
            status: 200,
            cost: Some(cost.into()),
            cost_currency: Some("USD".into()),
            cost_model: Some(model.into()),
            ..AiLog::default()
        };
        m.record(&ai("0.000125", "mock-small"), "chat", &labels);
        m.record(&ai("1.50", "mock-small"), "chat", &labels);
        let mut unpriced = ai("0.00", "made-up-by-a-regex-mapping");
        unpriced.cost_unpriced = true;
        unpriced.cost_estimated = true;
        m.record(&unpriced, "chat", &labels);
        // no cost (the gateway answered itself): not counted
        let mut local = ai("0", "mock-small");
        local.cost = None;
        m.record(&local, "chat", &labels);
        let text = m.render();
        for want in [
            "gateway_cost_total{consumer=\"web\",model=\"mock-small\",provider=\"up1\",tenant=\"acme\"} 1.500125",
            "gateway_cost_total{consumer=\"web\",model=\"other\",provider=\"up1\",tenant=\"acme\"} 0",
            "gateway_cost_unpriced_requests_total{model=\"other\",provider=\"up1\"} 1",
            "gateway_cost_estimated_requests_total{model=\"other\",provider=\"up1\"} 1",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
        // at 0 from the first request of a (model, provider) on, so that
        // Prometheus's increase() counts the first unpriced or estimated one
        for zero in [
            "gateway_cost_unpriced_requests_total{model=\"mock-small\",provider=\"up1\"} 0",
            "gateway_cost_estimated_requests_total{model=\"mock-small\",provider=\"up1\"} 0",
        ] {
            assert!(text.contains(zero), "missing {zero} in\n{text}");
        }
        assert!(!text.contains("made-up"), "{text}");
    }
}

#[cfg(test)]
mod timing {
    /// Not a performance claim (those live in benches/): shows the cost of one
    /// record when run by hand with `--ignored --nocapture` in release.
    #[test]
    #[ignore]
    fn time_record() {
        let m = super::Metrics::new().unwrap();
        let ai = shared::ai_log::AiLog {
            route: Some("chat".into()),
            provider: Some("openai".into()),
            model: Some("gpt-4o-2024".into()),
            request_model: Some("gpt-4o".into()),
            tenant: Some("acme".into()),
            consumer: Some("web".into()),
            response_type: "stream".into(),
            status: 200,
            ..Default::default()
        };
        let labels = Default::default();
        let t = std::time::Instant::now();
        for _ in 0..200_000 {
            m.record(&ai, "chat", &labels);
        }
        eprintln!("record: {:?} per call", t.elapsed() / 200_000);
    }
}
