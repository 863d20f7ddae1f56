//! Provider adapters: Azure OpenAI URL shape and `api-key` auth; routing by model
//! to providers of different types in one gateway.

use gateway_tests::client::{chat_body, chat_stream_body, TestClient};
use gateway_tests::config::{Config, Provider, Route};
use gateway_tests::harness::Gateway;
use gateway_tests::mock_upstream::{chat_usage, embeddings_usage, MockUpstream};
use serde_json::json;
use std::time::Duration;

/// One Azure OpenAI provider at `root_url` (api version 2024-10-21), mapping
/// `gpt-4o` and the rest to two deployments, one route on `/v1`.
fn azure_config(root_url: &str) -> String {
    Config::new()
        .provider(
            Provider::new("az", "azure-openai")
                .base_url(root_url)
                .api_version("2024-10-21")
                .token("azure-key-0123456789")
                .map("gpt-4o", "my-gpt4o-deployment")
                .map("*", "default-deployment"),
        )
        .route(Route::new("azure", "/v1").upstream("az"))
        .access_log()
        .yaml()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_openai_chat_url_and_api_key() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(&azure_config(&mock.root_url())).await;
    let body = chat_body("gpt-4o", "Hello Azure");
    let r = TestClient::new()
        .post_json_with(
            &format!("{}/v1/chat/completions", gw.url()),
            &body,
            &[
                ("authorization", "Bearer client-key-xyz"),
                ("api-key", "client-api-key-xyz"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        v["usage"]["prompt_tokens"],
        chat_usage(&body, 8).prompt_tokens
    );
    let up = mock.last_request().unwrap();
    assert_eq!(
        up.path_and_query,
        "/openai/deployments/my-gpt4o-deployment/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(up.header("api-key"), Some("azure-key-0123456789"));
    assert_eq!(
        up.header("authorization"),
        None,
        "Azure takes api-key, no Authorization: {:?}",
        up.headers
    );
    assert_eq!(up.body["messages"], body["messages"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_openai_embeddings_and_stream() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(&azure_config(&mock.root_url())).await;
    let c = TestClient::new();
    let emb = json!({"model": "text-embedding-3-large", "input": "embed this sentence"});
    let r = c
        .post_json(&format!("{}/v1/embeddings", gw.url()), &emb)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["usage"]["prompt_tokens"],
        embeddings_usage(&emb).prompt_tokens
    );
    let up = mock.last_request().unwrap();
    assert_eq!(
        up.path_and_query,
        "/openai/deployments/default-deployment/embeddings?api-version=2024-10-21"
    );
    assert_eq!(up.header("api-key"), Some("azure-key-0123456789"));

    let s = c
        .post_sse(
            &format!("{}/v1/chat/completions", gw.url()),
            &chat_stream_body("gpt-4o", "stream via azure"),
            &[("x-request-id", "azure-stream-1")],
        )
        .await;
    assert_eq!(s.status, 200, "{}", s.raw);
    assert!(s.done, "{}", s.raw);
    assert_eq!(s.content(), "word ".repeat(8));
    assert!(s.usage_chunks().is_empty(), "{}", s.raw);
    let line = gw
        .wait_for_log_line("azure-stream-1", Duration::from_secs(5))
        .await;
    assert_eq!(line.ai_log.output_token, 8, "{line:?}");
    assert_eq!(line.ai_log.provider.as_deref(), Some("az"));
    assert_eq!(
        line.ai_log.model.as_deref(),
        Some("my-gpt4o-deployment"),
        "{line:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_model_to_different_provider_types() {
    let oai = MockUpstream::start_default();
    let az = MockUpstream::start_default();
    let config = Config::new()
        .provider(Provider::openai("oai", &oai.base_url()).token("sk-oai-token"))
        .provider(
            Provider::new("az", "azure-openai")
                .base_url(&az.root_url())
                .api_version("2024-10-21")
                .token("az-token")
                .map("~^azure-(.*)$", "dep-$1"),
        )
        .route(
            Route::new("azure-models", "/v1")
                .model("azure-*")
                .upstream("az"),
        )
        .route(Route::new("default", "/v1").upstream("oai"))
        .access_log()
        .yaml();
    let gw = Gateway::start(&config).await;
    let c = TestClient::new();
    let url = format!("{}/v1/chat/completions", gw.url());
    let r = c
        .post_json_with(
            &url,
            &chat_body("azure-gpt4", "a"),
            &[("x-request-id", "route-az")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = c
        .post_json_with(
            &url,
            &chat_body("gpt-4o", "b"),
            &[("x-request-id", "route-oai")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(az.hits(), 1);
    assert_eq!(oai.hits(), 1);
    assert_eq!(
        az.last_request().unwrap().path_and_query,
        "/openai/deployments/dep-gpt4/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(oai.last_request().unwrap().body["model"], "gpt-4o");
    assert_eq!(
        oai.last_request().unwrap().header("authorization"),
        Some("Bearer sk-oai-token")
    );
    let l = gw
        .wait_for_log_line("route-az", Duration::from_secs(5))
        .await;
    assert_eq!(l.ai_log.route.as_deref(), Some("azure-models"));
    assert_eq!(l.ai_log.provider.as_deref(), Some("az"));
    let l = gw
        .wait_for_log_line("route-oai", Duration::from_secs(5))
        .await;
    assert_eq!(l.ai_log.route.as_deref(), Some("default"));
    assert_eq!(l.ai_log.provider.as_deref(), Some("oai"));
}
