//! Requests shaped like Claude Code's (`?beta=true`, `Authorization: Bearer`
//! with a consumer key, `anthropic-beta`, system blocks with `cache_control`,
//! tools, streaming) end to end through two replicas sharing Redis, to an
//! Anthropic upstream, with the consumer's token quota enforced fleet-wide.

use gateway_tests::client::TestClient;
use gateway_tests::config::{Config, Consumer, Provider, Quota, Route, Tenant};
use gateway_tests::harness::Gateway;
use gateway_tests::mock_upstream::{messages_usage, MockUpstream};
use gateway_tests::redis::SharedRedis;
use serde_json::{json, Value};
use std::time::Duration;

const KEY: &str = "sk-gw-claude-code-dev";
const BETA: &str = "claude-code-20250219,interleaved-thinking-2025-05-14";
/// The mock's content chunks per answer (its output tokens).
const CHUNKS: usize = 8;

fn claude_code_request() -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "stream": true,
        "system": [
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
            {"type": "text", "text": "Instructions for this repository. ".repeat(20),
             "cache_control": {"type": "ephemeral"}}
        ],
        "tools": [{
            "name": "Read",
            "description": "Reads a file from the local filesystem.",
            "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}},
                             "required": ["file_path"]}
        }],
        "metadata": {"user_id": "user_abc_account_def_session_ghi"},
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Where is the request path?", "cache_control": {"type": "ephemeral"}}
        ]}]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claude_code_requests_across_two_replicas_within_the_consumers_quota() {
    let redis = SharedRedis::standalone().await;
    let mock = MockUpstream::start_default();
    let body = claude_code_request();
    let u = messages_usage(&body, CHUNKS);
    let cost = u.input_tokens
        + u.cache_read_input_tokens
        + u.cache_creation_input_tokens
        + u.output_tokens;
    // room for a few requests, not for ten
    let limit = 4 * cost;
    let yaml = Config::new()
        .state(redis.state("cc", 2000).on_redis_error("fail_closed"))
        .provider(
            Provider::new("anthropic", "anthropic")
                .base_url(&mock.base_url())
                .token("sk-ant-upstream"),
        )
        .route(Route::new("claude", "/v1").keyed().upstream("anthropic"))
        .tenant(
            Tenant::new("acme").consumer(Consumer::new("dev").key(KEY).quota(Quota::new(
                "dev-tokens",
                "consumer",
                "total_tokens",
                limit,
                "1h",
            ))),
        )
        .access_log()
        .yaml();
    let gws = [Gateway::start(&yaml).await, Gateway::start(&yaml).await];
    let client = TestClient::new();
    let headers = [
        ("authorization", &*format!("Bearer {KEY}")),
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", BETA),
        ("user-agent", "claude-cli/2.0.0 (external, cli)"),
    ];
    let mut allowed = 0;
    let mut refused = None;
    // requests (and so access-log lines) per replica
    let mut sent = [0, 0];
    for n in 0..10 {
        sent[n % 2] += 1;
        let gw = &gws[n % 2];
        let url = format!("{}/v1/messages?beta=true", gw.url());
        let r = client.post_sse(&url, &body, &headers).await;
        if r.status == 429 {
            refused = Some((n % 2, r));
            break;
        }
        assert_eq!(r.status, 200, "request {n}: {}", r.raw);
        let events = r.json_events();
        assert_eq!(
            events.first().map(|e| e["type"].clone()),
            Some(json!("message_start"))
        );
        assert_eq!(
            events.last().map(|e| e["type"].clone()),
            Some(json!("message_stop"))
        );
        allowed += 1;
    }
    let (on, r) = refused.expect("the consumer's quota never refused within 10 requests");
    assert!(
        allowed >= 2,
        "only {allowed} requests fit in {limit} tokens (cost {cost})"
    );
    let v: Value = serde_json::from_str(&r.raw).expect("a JSON error body");
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");
    assert!(r.header("retry-after").is_some(), "429 without retry-after");
    // the other replica refuses too: one limit for the fleet
    let other = &gws[1 - on];
    let url = format!("{}/v1/messages?beta=true", other.url());
    let r = client.post_sse(&url, &body, &headers).await;
    sent[1 - on] += 1;
    assert_eq!(
        r.status, 429,
        "the other replica admitted past the fleet's limit"
    );

    // what was settled stays within the limit, summed over both replicas
    let mut settled = 0;
    for (gw, n) in gws.iter().zip(sent) {
        let lines = gw.wait_for_log_lines(n, Duration::from_secs(10)).await;
        for l in lines.iter().filter(|l| l.response_code == 200) {
            assert_eq!(l.ai_log.consumer.as_deref(), Some("dev"));
            assert!(!l.ai_log.usage_estimated, "{l:?}");
            assert_eq!(l.ai_log.cached_tokens, u.cache_read_input_tokens);
            settled += l.ai_log.total_token;
        }
    }
    assert_eq!(settled, allowed as u64 * cost);
    assert!(
        settled <= limit,
        "{settled} tokens settled past the limit {limit}"
    );

    // upstream: the provider's key and the client's beta flags, never the consumer's key
    let reqs = mock.requests();
    assert_eq!(reqs.len(), allowed, "refused requests reached the upstream");
    for r in &reqs {
        assert_eq!(r.path(), "/v1/messages");
        assert_eq!(r.header("x-api-key"), Some("sk-ant-upstream"));
        assert_eq!(r.header("anthropic-beta"), Some(BETA));
        assert_eq!(r.header("authorization"), None);
        assert_eq!(r.body["system"][1]["cache_control"]["type"], "ephemeral");
    }
}
