//! Basic proxying through an openai-compatible provider: upstream URL and auth,
//! model mapping, options, pass-through of unknown fields, key stripping, token
//! rotation, x-request-id, the non-chat endpoints, admin health, GATEWAY_CONFIG.

use gateway_tests::client::{chat_body, TestClient};
use gateway_tests::config::{single_provider, Config, Provider, Route};
use gateway_tests::harness::Gateway;
use gateway_tests::mock_upstream::{
    chat_usage, completions_usage, embeddings_usage, responses_usage, MockUpstream,
};
use serde_json::json;
use std::collections::HashSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_is_proxied_with_mapping_options_and_upstream_auth() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(&single_provider(&mock.base_url()).yaml()).await;
    let body = json!({
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hello to the integration test"}
        ],
        "temperature": 0.7,
        "custom_field": {"nested": [1, 2, 3], "s": "x"},
        "user": "u-42"
    });
    let r = TestClient::new()
        .post_json_with(
            &format!("{}/v1/chat/completions", gw.url()),
            &body,
            &[
                ("authorization", "Bearer client-key-abc"),
                ("x-api-key", "client-key-def"),
                ("api-key", "client-key-ghi"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "body: {}", r.text());
    let v = r.json();
    assert!(
        v["id"].as_str().unwrap_or("").starts_with("chatcmpl-mock"),
        "{v}"
    );
    let expected = chat_usage(&body, 8);
    assert_eq!(v["usage"]["prompt_tokens"], expected.prompt_tokens, "{v}");
    assert_eq!(v["usage"]["completion_tokens"], 8, "{v}");
    assert_eq!(v["usage"]["total_tokens"], expected.total_tokens, "{v}");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "word ".repeat(8),
        "{v}"
    );

    assert_eq!(mock.hits(), 1);
    let up = mock.last_request().unwrap();
    assert_eq!(up.method, "POST");
    assert_eq!(up.path_and_query, "/v1/chat/completions");
    assert_eq!(up.body["model"], "mock-large", "gpt-4* maps to mock-large");
    assert_eq!(
        up.body["temperature"].as_f64(),
        Some(0.0),
        "provider options override the client's fields: {}",
        up.body
    );
    assert_eq!(
        up.body["custom_field"], body["custom_field"],
        "unknown fields pass through"
    );
    assert_eq!(up.body["user"], "u-42");
    assert_eq!(up.body["messages"], body["messages"]);
    assert_eq!(
        up.header("authorization"),
        Some("Bearer sk-upstream-secret-1"),
        "headers: {:?}",
        up.headers
    );
    assert_eq!(
        up.header("x-api-key"),
        None,
        "client x-api-key forwarded: {:?}",
        up.headers
    );
    assert_eq!(
        up.header("api-key"),
        None,
        "client api-key forwarded: {:?}",
        up.headers
    );
    for (name, value) in &up.headers {
        assert!(
            !value.contains("client-key-"),
            "a client key reached the upstream in header {name}: {value}"
        );
    }
    let rid = r.header("x-request-id").unwrap_or("");
    assert!(!rid.is_empty(), "x-request-id missing: {:?}", r.headers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_request_id_generated_or_kept() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(&single_provider(&mock.base_url()).yaml()).await;
    let c = TestClient::new();
    let url = format!("{}/v1/chat/completions", gw.url());

    let a = c.post_json(&url, &chat_body("gpt-4o", "one")).await;
    let b = c.post_json(&url, &chat_body("gpt-4o", "two")).await;
    assert_eq!(a.status, 200);
    let ida = a.header_all("x-request-id");
    let idb = b.header_all("x-request-id");
    assert_eq!(ida.len(), 1, "exactly one x-request-id: {ida:?}");
    assert_eq!(idb.len(), 1, "exactly one x-request-id: {idb:?}");
    assert!(!ida[0].is_empty());
    assert_ne!(ida[0], idb[0], "request ids must differ between requests");

    let kept = c
        .post_json_with(
            &url,
            &chat_body("gpt-4o", "three"),
            &[("x-request-id", "client-trace-id-0042")],
        )
        .await;
    assert_eq!(kept.status, 200);
    assert_eq!(
        kept.header_all("x-request-id"),
        vec!["client-trace-id-0042".to_string()]
    );

    // Errors carry it too.
    let err = c
        .post_raw(
            &url,
            "{not json",
            &[("x-request-id", "client-trace-id-0043")],
        )
        .await;
    assert_eq!(err.status, 400);
    assert_eq!(err.header("x-request-id"), Some("client-trace-id-0043"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_mapping_first_match_wins() {
    let mock = MockUpstream::start_default();
    let config = Config::new()
        .provider(
            Provider::openai("up1", &mock.base_url())
                .token("sk-upstream-secret-1")
                .map("gpt-4o-mini", "exact-mini")
                .map("gpt-4*", "mock-large")
                .map("~^claude-(.*)$", "anthropic-$1")
                .map("*", "mock-small"),
        )
        .route(Route::new("chat", "/v1").upstream("up1"))
        .yaml();
    let gw = Gateway::start(&config).await;
    let c = TestClient::new();
    let url = format!("{}/v1/chat/completions", gw.url());
    for (asked, expected) in [
        ("gpt-4o-mini", "exact-mini"),
        ("gpt-4o", "mock-large"),
        ("gpt-4-turbo", "mock-large"),
        ("claude-3-5-sonnet", "anthropic-3-5-sonnet"),
        ("llama-3-70b", "mock-small"),
    ] {
        let r = c.post_json(&url, &chat_body(asked, "hi")).await;
        assert_eq!(r.status, 200, "{asked}: {}", r.text());
        let up = mock.last_request().unwrap();
        assert_eq!(
            up.body["model"], expected,
            "{asked} should map to {expected}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_rotate_round_robin() {
    let mock = MockUpstream::start_default();
    let config = Config::new()
        .provider(Provider::openai("up1", &mock.base_url()).tokens(&[
            "tok-rot-a",
            "tok-rot-b",
            "tok-rot-c",
        ]))
        .route(Route::new("chat", "/v1").upstream("up1"))
        .yaml();
    let gw = Gateway::start(&config).await;
    let c = TestClient::new();
    let url = format!("{}/v1/chat/completions", gw.url());
    for i in 0..6 {
        let r = c.post_json(&url, &chat_body("m", &format!("n{i}"))).await;
        assert_eq!(r.status, 200);
    }
    let auths: Vec<String> = mock
        .requests()
        .iter()
        .map(|r| r.header("authorization").unwrap_or("").to_string())
        .collect();
    assert_eq!(auths.len(), 6);
    let first3: HashSet<&str> = auths[..3].iter().map(String::as_str).collect();
    let all: HashSet<&str> = ["Bearer tok-rot-a", "Bearer tok-rot-b", "Bearer tok-rot-c"]
        .into_iter()
        .collect();
    assert_eq!(first3, all, "three requests use three tokens: {auths:?}");
    assert_eq!(
        auths[..3],
        auths[3..],
        "rotation repeats in order: {auths:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_completions_responses_and_models() {
    let mock = MockUpstream::start_default();
    let config = Config::new()
        .provider(
            Provider::openai("up1", &mock.base_url())
                .token("sk-upstream-secret-1")
                .model("mock-small")
                .model("mock-large"),
        )
        .route(Route::new("all", "/v1").upstream("up1"))
        .yaml();
    let gw = Gateway::start(&config).await;
    let c = TestClient::new();

    let emb = json!({"model": "text-embedding-3-small", "input": ["first input text", "second"]});
    let r = c
        .post_json(&format!("{}/v1/embeddings", gw.url()), &emb)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["data"].as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(
        v["usage"]["prompt_tokens"],
        embeddings_usage(&emb).prompt_tokens
    );
    let up = mock.last_request().unwrap();
    assert_eq!(up.path_and_query, "/v1/embeddings");
    assert_eq!(up.body["input"], emb["input"]);

    let cmp = json!({"model": "davinci", "prompt": "Once upon a time", "max_tokens": 5});
    let r = c
        .post_json(&format!("{}/v1/completions", gw.url()), &cmp)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let u = completions_usage(&cmp, 8);
    assert_eq!(v["usage"]["prompt_tokens"], u.prompt_tokens, "{v}");
    assert_eq!(v["usage"]["total_tokens"], u.total_tokens, "{v}");
    assert_eq!(
        mock.last_request().unwrap().path_and_query,
        "/v1/completions"
    );

    let resp = json!({"model": "gpt-4o", "input": "Tell me a joke about proxies"});
    let r = c
        .post_json(&format!("{}/v1/responses", gw.url()), &resp)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let u = responses_usage(&resp, 8);
    assert_eq!(v["object"], "response", "{v}");
    assert_eq!(v["usage"]["input_tokens"], u.prompt_tokens, "{v}");
    assert_eq!(v["usage"]["output_tokens"], 8, "{v}");
    assert_eq!(mock.last_request().unwrap().path_and_query, "/v1/responses");

    let r = c.get(&format!("{}/v1/models", gw.url())).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "list", "{v}");
    let ids: HashSet<String> = v["data"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .filter_map(|m| m["id"].as_str().map(str::to_string))
        .collect();
    assert!(
        ids.contains("mock-small") && ids.contains("mock-large"),
        "models: {v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_health_endpoints() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(&single_provider(&mock.base_url()).yaml()).await;
    let c = TestClient::new();
    assert_eq!(
        c.get(&format!("{}/healthz", gw.admin_url())).await.status,
        200
    );
    assert_eq!(
        c.get(&format!("{}/readyz", gw.admin_url())).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_from_gateway_config_env_var() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::builder(&single_provider(&mock.base_url()).yaml())
        .config_via_env()
        .start()
        .await;
    let r = TestClient::new()
        .post_json(
            &format!("{}/v1/chat/completions", gw.url()),
            &chat_body("gpt-4o", "via env"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(mock.last_request().unwrap().body["model"], "mock-large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_interpolation_in_config() {
    let mock = MockUpstream::start_default();
    let config = Config::new()
        .provider(Provider::openai("up1", &mock.base_url()).token("${GW_TEST_UPSTREAM_TOKEN}"))
        .route(Route::new("chat", "/v1").upstream("up1"))
        .yaml();
    let gw = Gateway::builder(&config)
        .env("GW_TEST_UPSTREAM_TOKEN", "tok-from-env-77")
        .start()
        .await;
    let r = TestClient::new()
        .post_json(
            &format!("{}/v1/chat/completions", gw.url()),
            &chat_body("m", "x"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        mock.last_request().unwrap().header("authorization"),
        Some("Bearer tok-from-env-77")
    );
}
