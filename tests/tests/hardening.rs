//! Hardening: every value a client controls is bounded, and what the gateway
//! knows about itself stays with it. One scenario per defect of the security
//! audit: model names as metric labels, duplicate JSON keys, route details in 404
//! answers, upstream error bodies quoting the gateway's account, client-forced
//! trace sampling, client addresses behind proxies, path tricks, deployment names.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gateway_tests::client::{chat_body, TestClient};
use gateway_tests::harness::Gateway;
use serde_json::json;
use std::sync::Arc;

/// One open route to the built-in mock (which answers with the model it was
/// asked for, as many OpenAI-compatible servers do), metrics and access log on.
const MOCK_OPEN: &str = r#"
server:
  listen: "{{listen}}"
  admin_listen: "{{admin}}"
providers:
  - { id: mock, type: mock, models: [mock-gpt] }
routes:
  - name: open
    match: { path_prefix: /v1, models: ["mock-*", "*"] }
    upstreams: [ { provider: mock } ]
telemetry:
  access_log: { enabled: true, path: "{{access_log}}" }
"#;

async fn metrics_text(c: &TestClient, gw: &Gateway) -> String {
    let r = c.get(&format!("{}/metrics", gw.admin_url())).await;
    assert_eq!(r.status, 200);
    r.text()
}

/// 1. Model names come from the client: as metric labels they would make a
///    series per name. Ten thousand made-up names (which the upstream echoes
///    back) leave `/metrics` small and the process's memory flat; the names are
///    counted under `other` or the route glob they matched; a 100 KB name is
///    refused before it goes anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_model_names_never_become_metric_series() {
    let gw = Gateway::start(MOCK_OPEN).await;
    let c = Arc::new(TestClient::new());
    let url = format!("{}/v1/chat/completions", gw.url());
    for _ in 0..20 {
        let r = c.post_json(&url, &chat_body("mock-gpt", "warm up")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let before = metrics_text(&c, &gw).await;
    let rss_before = gw.rss_bytes();

    const N: usize = 10_000;
    const TASKS: usize = 32;
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let (c, url) = (c.clone(), url.clone());
        tasks.spawn(async move {
            for i in (t..N).step_by(TASKS) {
                let model = format!("made-up-model-{i}-{}", "x".repeat(200));
                let r = c.post_json(&url, &chat_body(&model, "hi")).await;
                assert_eq!(r.status, 200, "{}", r.text());
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let huge = "m".repeat(100 * 1024);
    let refused = c.post_json(&url, &chat_body(&huge, "hi")).await;

    let after = metrics_text(&c, &gw).await;
    let rss_after = gw.rss_bytes();
    eprintln!(
        "/metrics {} -> {} bytes; RSS {} -> {} KiB",
        before.len(),
        after.len(),
        rss_before / 1024,
        rss_after / 1024
    );
    assert!(after.len() < 1_000_000, "/metrics is {} bytes", after.len());
    assert!(
        !after.contains("made-up-model"),
        "a client name became a label"
    );
    // the names the config knows keep their own series; the rest are one glob's
    assert!(
        after.contains(r#"gen_ai_request_model="mock-gpt""#),
        "{after}"
    );
    assert!(after.contains(r#"gen_ai_request_model="*""#), "{after}");
    assert!(after.contains(r#"ai_model="*""#), "{after}");
    assert!(
        rss_after < rss_before + 20 * 1024 * 1024,
        "RSS grew from {rss_before} to {rss_after}"
    );
    refused.assert_openai_error(400, "invalid_model");
    assert!(
        refused.body.len() < 1024,
        "the name is not echoed: {} bytes",
        refused.body.len()
    );
    // the access log keeps the real names, each one cut to its bounded length
    let lines = gw
        .wait_for_log_lines(N + 21, std::time::Duration::from_secs(10))
        .await;
    assert!(lines.iter().any(|l| l
        .ai_log
        .request_model
        .as_deref()
        .is_some_and(|m| m.starts_with("made-up-model-"))));
}

/// 7. The gateway authorises one copy of a duplicated field while an upstream
///    that keeps the first copy would serve another: such bodies are refused,
///    and nothing reaches the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_json_keys_the_gateway_reads_are_refused() {
    let gw = Gateway::start(MOCK_OPEN).await;
    let c = TestClient::new();
    let url = format!("{}/v1/chat/completions", gw.url());
    for body in [
        r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"model":"gpt-4o"}"#,
        r#"{"model":"mock-gpt","messages":[],"max_tokens":1,"max_tokens":100000}"#,
        r#"{"model":"mock-gpt","messages":[],"stream":false,"stream":true}"#,
    ] {
        let r = c.post_raw(&url, body.to_string(), &[]).await;
        let e = &r.assert_openai_error(400, "duplicate_key")["error"];
        assert!(
            e["message"].as_str().unwrap().contains("more than one"),
            "{e}"
        );
    }
    let ok = json!({"model": "mock-gpt", "messages": [], "user": "u"});
    assert_eq!(c.post_json(&url, &ok).await.status, 200);
}
