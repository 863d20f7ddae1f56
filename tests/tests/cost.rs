//! What requests cost: the price of the model asked of the upstream applied to
//! the usage the mock reports (cached, cache-write and reasoning tokens at
//! their own prices), in the access log of OpenAI and Anthropic requests; the
//! built-in table; an unpriced model served and flagged; `gateway_cost_total`;
//! prices reloaded while a request is in flight; a budget reserving the
//! request's worst case.

use gateway_tests::client::{chat_body, chat_stream_body, TestClient};
use gateway_tests::config::{
    single_provider, Config, Consumer, Price, Pricing, Provider, Route, Server, Tenant,
};
use gateway_tests::harness::{admin, fresh_request_id, Gateway};
use gateway_tests::metrics::{wait_metric, Scrape};
use gateway_tests::mock_upstream::{chat_usage, messages_usage, MockOptions, MockUpstream};
use serde_json::json;
use shared::ai_log::AccessLogLine;
use std::time::Duration;

const LOG_WAIT: Duration = Duration::from_secs(10);

/// 11 bytes: the mock counts 3 prompt tokens, 1 of them cached, and answers 8
/// completion tokens, 2 of them reasoning.
const HELLO: &str = "hello there";

/// `single_provider` (every model but gpt-4* asked of the upstream as
/// `mock-small`) with `pricing`.
fn priced(mock: &MockUpstream, pricing: Pricing) -> String {
    single_provider(&mock.base_url()).pricing(pricing).yaml()
}

/// mock-small at 2.50 per million prompt tokens, 1.25 cached, 10 completion,
/// 12 reasoning.
fn mock_small_prices() -> Pricing {
    Pricing::only().price(
        Price::new("mock-small", "2.50", "10")
            .cached_input("1.25")
            .reasoning("12"),
    )
}

/// Sends a chat request for `model`, answered 200; its access-log line.
async fn chat(gw: &Gateway, model: &str, headers: &[(&str, &str)]) -> AccessLogLine {
    let (r, line) = gw
        .chat_logged(&TestClient::new(), &chat_body(model, HELLO), headers)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_request_costs_its_usage_at_the_upstream_model_price() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(&priced(&mock, mock_small_prices())).await;
    let ai = chat(&gw, "any-model", &[]).await.ai_log;
    let u = chat_usage(&chat_body("any-model", HELLO), 8);
    assert_eq!(
        (
            u.prompt_tokens,
            u.cached_tokens,
            u.completion_tokens,
            u.reasoning_tokens
        ),
        (3, 1, 8, 2)
    );
    assert_eq!((ai.input_token, ai.cached_tokens), (3, 1));
    assert_eq!((ai.output_token, ai.reasoning_tokens), (8, 2));
    // 2 x 2.50 + 1 x 1.25 + 6 x 10 + 2 x 12 = 90.25 per million tokens
    assert_eq!(ai.cost.as_deref(), Some("0.00009025"));
    assert_eq!(ai.cost_currency.as_deref(), Some("USD"));
    assert_eq!(ai.cost_model.as_deref(), Some("mock-small"));
    assert!(!ai.cost_unpriced && !ai.cost_estimated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anthropic_request_prices_cache_reads_and_writes() {
    let mock = MockUpstream::start_default();
    let config = Config::new()
        .provider(
            Provider::new("claude", "anthropic")
                .base_url(&mock.base_url())
                .token("sk-ant"),
        )
        .route(Route::new("r", "/v1").upstream("claude"))
        .pricing(
            Pricing::only().price(
                Price::new("claude-test*", "3", "15")
                    .cached_input("0.30")
                    .cache_write("3.75"),
            ),
        )
        .access_log()
        .yaml();
    let gw = Gateway::start(&config).await;
    // a cached system prefix of 800 bytes (200 tokens), 40 bytes of question
    let body = json!({
        "model": "claude-test",
        "max_tokens": 512,
        "system": [
            {"type": "text", "text": "a".repeat(400)},
            {"type": "text", "text": "b".repeat(400), "cache_control": {"type": "ephemeral"}}
        ],
        "messages": [{"role": "user", "content": "c".repeat(40)}]
    });
    let u = messages_usage(&body, 8);
    assert_eq!(
        (
            u.input_tokens,
            u.cache_read_input_tokens,
            u.cache_creation_input_tokens,
            u.output_tokens
        ),
        (10, 100, 100, 8)
    );
    let headers = [("anthropic-version", "2023-06-01")];
    let (r, line) = gw
        .send_logged(&TestClient::new(), "/v1/messages", &body, &headers)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let ai = line.ai_log;
    assert_eq!(ai.input_token, 210, "prompt = input + cache reads + writes");
    // 10 x 3 + 100 x 0.30 + 100 x 3.75 + 8 x 15 = 555 per million tokens
    assert_eq!(ai.cost.as_deref(), Some("0.000555"));
    assert_eq!(ai.cost_model.as_deref(), Some("claude-test"));
    assert_eq!(ai.provider.as_deref(), Some("claude"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_in_table_prices_widely_used_models_by_default() {
    let mock = MockUpstream::start_default();
    let config = single_provider(&mock.base_url())
        .with_provider("up1", |p| p.map("*", "gpt-4o-mini"))
        .yaml();
    let gw = Gateway::start(&config).await;
    let ai = chat(&gw, "small", &[]).await.ai_log;
    assert_eq!(ai.cost_model.as_deref(), Some("gpt-4o-mini"));
    // the table's gpt-4o-mini: 2 x 0.15 + 1 x 0.075 (cached) + 8 x 0.60
    assert_eq!(ai.cost.as_deref(), Some("0.000005175"));
    assert!(!ai.cost_unpriced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpriced_model_is_served_and_flagged_never_free_silently() {
    let mock = MockUpstream::start_default();
    let pricing = Pricing::only().price(Price::new("mock-large", "1", "1"));
    let gw = Gateway::start(&priced(&mock, pricing)).await;
    let unpriced = [("model", "mock-small"), ("provider", "up1")];
    let ai = chat(&gw, "any-model", &[]).await.ai_log;
    assert_eq!(ai.cost.as_deref(), Some("0.00"));
    assert!(ai.cost_unpriced, "{ai:?}");
    assert_eq!(ai.cost_model.as_deref(), Some("mock-small"));
    let n = |s: &Scrape| s.value("gateway_cost_unpriced_requests_total", &unpriced);
    assert_eq!(n(&Scrape::of(&gw).await), Ok(1.0));
    chat(&gw, "any-model", &[]).await;
    let two = |v: f64| v == 2.0;
    let name = "gateway_cost_unpriced_requests_total";
    wait_metric(&gw, name, &unpriced, two, "2", LOG_WAIT).await;
    // a priced model is not counted as unpriced
    let line = chat(&gw, "gpt-4o", &[]).await;
    assert!(!line.ai_log.cost_unpriced);
    let scrape = Scrape::of(&gw).await;
    assert_eq!(n(&scrape), Ok(2.0));
    // (its count is there, at 0, from its first request on)
    let large = [("model", "mock-large"), ("provider", "up1")];
    assert_eq!(scrape.value(name, &large), Ok(0.0), "{}", scrape.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_cost_total_sums_the_cost_by_tenant_consumer_model_and_provider() {
    let mock = MockUpstream::start_default();
    let config = single_provider(&mock.base_url())
        .with_route("chat", |r| r.keyed())
        .tenant(Tenant::new("acme").consumer(Consumer::new("bob").key("sk-gw-cost-bob")))
        .pricing(mock_small_prices())
        .yaml();
    let gw = Gateway::start(&config).await;
    let auth = [("authorization", "Bearer sk-gw-cost-bob")];
    for _ in 0..3 {
        let ai = chat(&gw, "any-model", &auth).await.ai_log;
        assert_eq!(ai.cost.as_deref(), Some("0.00009025"));
    }
    let labels = [
        ("tenant", "acme"),
        ("consumer", "bob"),
        ("model", "mock-small"),
        ("provider", "up1"),
    ];
    let want = 3.0 * 0.000_090_25;
    let close = |v: f64| (v - want).abs() < 1e-12;
    let got = wait_metric(
        &gw,
        "gateway_cost_total",
        &labels,
        close,
        "3 x 0.00009025",
        LOG_WAIT,
    )
    .await;
    assert!(close(got), "{got}");
}

/// `single_provider` polling nothing (reloaded by the admin call only), every
/// model asked of the upstream as mock-small at `input` and `output`.
fn reloadable(mock: &MockUpstream, input: &str, output: &str) -> String {
    single_provider(&mock.base_url())
        .with_server(|s: Server| s.config_poll_ms(0))
        .pricing(Pricing::only().price(Price::new("mock-small", input, output)))
        .yaml()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloaded_prices_apply_to_new_requests_and_not_to_one_in_flight() {
    // a stream of 8 chunks 200 ms apart spans the reload
    let mock = MockUpstream::start(MockOptions {
        chunk_delay_ms: 200,
        ..Default::default()
    });
    let gw = Gateway::start(&reloadable(&mock, "1", "2")).await;
    let c = TestClient::new();
    let slow_id = fresh_request_id();
    let body = chat_stream_body("any-model", HELLO);
    let url = format!("{}/v1/chat/completions", gw.url());
    let mut stream = c
        .open_sse(&url, &body, &[("x-request-id", slow_id.as_str())])
        .await;
    assert_eq!(stream.status, 200);
    let first = stream.next_event().await.expect("the stream's first event");

    gw.write_config(&reloadable(&mock, "10", "20"));
    let r = admin(&c, &gw, http::Method::POST, "/admin/config/reload", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // started after the reload: the new prices (3 x 10 + 8 x 20 = 190 per million)
    let after = chat(&gw, "any-model", &[]).await;
    assert_eq!(after.ai_log.cost.as_deref(), Some("0.00019"));

    let s = stream.collect_with(vec![first]).await;
    assert!(s.done && s.clean_end, "{}", s.raw);
    let slow = gw.wait_for_log_line(&slow_id, LOG_WAIT).await;
    // it settled after the reload ...
    let order: Vec<String> = gw
        .access_log_lines()
        .into_iter()
        .map(|l| l.request_id)
        .collect();
    let at = |id: &str| order.iter().position(|r| r == id).unwrap();
    assert!(at(&after.request_id) < at(&slow_id), "{order:?}");
    // ... at the prices it started with: 3 x 1 + 8 x 2 = 19 per million
    assert_eq!((slow.ai_log.input_token, slow.ai_log.output_token), (3, 8));
    assert_eq!(slow.ai_log.cost.as_deref(), Some("0.000019"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_reserves_the_worst_case_of_the_route_models() {
    let mock = MockUpstream::start_default();
    // 1 per million prompt tokens, 1000 per million completion tokens: a
    // request asking for up to 1000 tokens may cost 1.00 and a bit
    let config = single_provider(&mock.base_url())
        .pricing(Pricing::only().price(Price::new("mock-small", "1", "1000")))
        .set(
            "routes.0.quotas",
            json!([{"name": "budget", "by": "route", "strategy": "cost",
                    "limit": "0.50", "window": "1h"}]),
        )
        .yaml();
    let gw = Gateway::start(&config).await;
    let c = TestClient::new();
    let url = format!("{}/v1/chat/completions", gw.url());
    let mut body = chat_body("any-model", HELLO);
    body["max_tokens"] = json!(1000);
    let r = c.post_json(&url, &body).await;
    assert_eq!(r.status, 429, "worst case 1.000003 > 0.50: {}", r.text());
    assert!(mock.requests().is_empty(), "refused before it was sent");
    // 100 tokens at most: 0.100003, within the budget
    body["max_tokens"] = json!(100);
    let r = c.post_json(&url, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // an unpriced model reserves nothing (it costs 0)
    let unpriced = Config::new()
        .provider(Provider::openai("up1", &mock.base_url()).map("*", "no-price"))
        .route(Route::new("chat", "/v1").upstream("up1"))
        .pricing(Pricing::only().price(Price::new("mock-small", "1", "1000")))
        .set(
            "routes.0.quotas",
            json!([{"name": "budget", "by": "route", "strategy": "cost",
                    "limit": "0.000000001", "window": "1h"}]),
        )
        .yaml();
    let gw = Gateway::start(&unpriced).await;
    body["max_tokens"] = json!(100_000);
    let r = c
        .post_json(&format!("{}/v1/chat/completions", gw.url()), &body)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_what_an_upstream_answered_is_charged_whatever_its_status() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(&priced(&mock, mock_small_prices())).await;
    let c = TestClient::new();
    // answered by the gateway itself: no cost at all
    let (r, line) = gw
        .send_logged(&c, "/v1/chat/completions", &json!({"messages": []}), &[])
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let ai = line.ai_log;
    assert_eq!(
        (ai.cost, ai.cost_currency, ai.cost_model),
        (None, None, None)
    );
    // an upstream's error answer is charged (here for no usage)
    mock.fail_with(500);
    let (r, line) = gw
        .chat_logged(&c, &chat_body("any-model", HELLO), &[])
        .await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(line.ai_log.cost.as_deref(), Some("0.00"));
    assert_eq!(line.ai_log.cost_model.as_deref(), Some("mock-small"));
    assert!(!line.ai_log.cost_unpriced);
}
