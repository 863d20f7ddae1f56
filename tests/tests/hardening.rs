//! Hardening: every value a client controls is bounded, and what the gateway
//! knows about itself stays with it. One scenario per defect of the security
//! audit: model names as metric labels, duplicate JSON keys, route details in 404
//! answers, upstream error bodies quoting the gateway's account, client-forced
//! trace sampling, client addresses behind proxies, path tricks, deployment names.

use gateway_tests::client::{chat_body, raw_tcp_exchange, TestClient};
use gateway_tests::config::{Config, Provider, Quota, Route, Server};
use gateway_tests::harness::Gateway;
use gateway_tests::metrics::Scrape;
use gateway_tests::mock_upstream::MockUpstream;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// One open route to the built-in mock (which answers with the model it was
/// asked for, as many OpenAI-compatible servers do), metrics and access log on.
fn mock_open() -> String {
    Config::new()
        .provider(Provider::mock("mock").model("mock-gpt"))
        .route(
            Route::new("open", "/v1")
                .model("mock-*")
                .model("*")
                .upstream("mock"),
        )
        .access_log()
        .yaml()
}

/// 1. Model names come from the client: as metric labels they would make a
///    series per name. Ten thousand made-up names (which the upstream echoes
///    back) leave `/metrics` small and the process's memory flat; the names are
///    counted under `other` or the route glob they matched; a 100 KB name is
///    refused before it goes anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_model_names_never_become_metric_series() {
    let gw = Gateway::start(&mock_open()).await;
    let c = Arc::new(TestClient::new());
    let url = format!("{}/v1/chat/completions", gw.url());
    for _ in 0..20 {
        let r = c.post_json(&url, &chat_body("mock-gpt", "warm up")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let before = Scrape::of(&gw).await.text().to_string();
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

    let after = Scrape::of(&gw).await.text().to_string();
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
    let gw = Gateway::start(&mock_open()).await;
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

/// Routes with hosts, path rules, header predicates and model globs, in front
/// of the mock upstream; `verbose` sets `server.verbose_errors`.
async fn routes_gateway(mock: &MockUpstream, verbose: bool) -> Gateway {
    let server = if verbose {
        Server::new().verbose_errors(true)
    } else {
        Server::new()
    };
    let config = Config::new()
        .server(server)
        .provider(
            Provider::openai("secret-openai", &mock.base_url())
                .token("sk-live-gateway-own-token-0123456789"),
        )
        .provider(
            Provider::new("azure-prod", "azure-openai")
                .base_url(&mock.root_url())
                .token("azure-key-0123456789abcdef"),
        )
        .route(
            Route::new("internal-finance", "/v1")
                .host("finance.internal.example")
                .model("finance-*")
                .upstream("secret-openai"),
        )
        .route(
            Route::new("azure", "/azure")
                .model("az-*")
                .model("..")
                .model(".")
                .upstream("azure-prod"),
        )
        .route(
            Route::new("team-blue", "/v1")
                .header("x-team", &["blue"])
                .model("gpt-*")
                .upstream("secret-openai"),
        )
        .access_log();
    Gateway::start(&config.yaml()).await
}

/// 8a. A 404 tells an unauthenticated client what it asked for, not how the
///     gateway is set up (hosts, path rules, model globs, route names); that
///     detail goes to the log, and to the answer only with `verbose_errors`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_answers_name_the_request_only() {
    let mock = MockUpstream::start_default();
    let c = TestClient::new();
    for verbose in [false, true] {
        let gw = routes_gateway(&mock, verbose).await;
        // (team-blue's host, path and header hold; its model globs do not)
        let r = c
            .post_json_with(
                &format!("{}/v1/chat/completions", gw.url()),
                &chat_body("llama-3", "hi"),
                &[("x-team", "blue")],
            )
            .await;
        let msg = r.assert_openai_error(404, "no_route")["error"]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            msg.contains("/v1/chat/completions") && msg.contains("llama-3"),
            "{msg}"
        );
        let leaks = [
            "finance",
            "internal",
            "az-*",
            "gpt-*",
            "team-blue",
            "/azure",
        ];
        if verbose {
            assert!(
                msg.contains("finance.internal.example") && msg.contains("/azure"),
                "{msg}"
            );
        } else {
            for secret in leaks {
                assert!(!msg.contains(secret), "{secret:?} in {msg}");
            }
        }
    }
    // a request no route can take by host, path and headers is answered before
    // its body is read: path and host only
    let gw = routes_gateway(&mock, false).await;
    let r = c
        .post_json(
            &format!("{}/v1/chat/completions", gw.url()),
            &chat_body("llama-3", "hi"),
        )
        .await;
    let msg = r.assert_openai_error(404, "no_route")["error"]["message"].to_string();
    assert!(
        msg.contains("/v1/chat/completions") && !msg.contains("team-blue"),
        "{msg}"
    );
    assert_eq!(mock.hits(), 0);
}

/// 8b. Upstream error bodies keep their status and error type but lose what
///     belongs to the gateway's own account: OpenAI's 401 quotes the masked
///     api key, its 429 the organisation; a body quoting the token whole too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_errors_do_not_pass_on_the_gateways_account() {
    let mock = MockUpstream::start_default();
    let gw = routes_gateway(&mock, false).await;
    let c = TestClient::new();
    let url = format!("{}/v1/chat/completions", gw.url());
    let cases = [
        (
            401,
            r#"{"error":{"message":"Incorrect API key provided: sk-live-********************6789. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
            "sk-live-",
        ),
        (
            429,
            r#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-Z7yTqL1mNcXe3PaB on tokens per min (TPM): Limit 30000, Used 29990.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#,
            "org-Z7y",
        ),
        (
            403,
            r#"{"error":{"message":"token sk-live-gateway-own-token-0123456789 is not allowed","type":"permission_error"}}"#,
            "gateway-own-token",
        ),
    ];
    for (status, body, secret) in cases {
        mock.fail_with_body(status, body);
        let r = c
            .post_json_with(&url, &chat_body("gpt-4o", "hi"), &[("x-team", "blue")])
            .await;
        assert_eq!(r.status, status, "{}", r.text());
        let v = r.json();
        assert!(
            !r.text().contains(secret),
            "{secret:?} passed on: {}",
            r.text()
        );
        assert!(r.text().contains("[redacted]"), "{}", r.text());
        let want: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["type"], want["error"]["type"], "{v}");
        assert_eq!(v["error"]["code"], want["error"]["code"], "{v}");
    }
}

/// 11. Endpoints are exact paths under a route's prefix: dot segments are
///     refused (also percent-encoded), a path with something between the
///     prefix and the endpoint is not an endpoint, and an Azure deployment
///     name of `.` or `..` does not climb out of `/deployments/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_and_deployment_names_cannot_be_bent() {
    let mock = MockUpstream::start_default();
    let gw = routes_gateway(&mock, false).await;
    let blue = [("x-team", "blue")];
    for path in [
        "/v1/x/../../chat/completions",
        "/v1/x/%2e%2E/chat/completions",
        "/v1/./chat/completions",
    ] {
        let body = r#"{"model":"gpt-4o","messages":[]}"#;
        let raw = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nX-Team: blue\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let out = raw_tcp_exchange(gw.listen_addr(), raw.as_bytes(), Duration::from_secs(3)).await;
        assert!(out.starts_with("HTTP/1.1 400"), "{path}: {out}");
        assert!(out.contains("invalid_path"), "{path}: {out}");
    }
    let c = TestClient::new();
    let r = c
        .post_json_with(
            &format!("{}/v1/anything/chat/completions", gw.url()),
            &chat_body("gpt-4o", "hi"),
            &blue,
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    for model in ["..", "."] {
        let r = c
            .post_json(
                &format!("{}/azure/v1/chat/completions", gw.url()),
                &chat_body(model, "hi"),
            )
            .await;
        r.assert_openai_error(400, "invalid_model");
    }
    assert_eq!(mock.hits(), 0, "nothing malformed reached the upstream");
    let r = c
        .post_json(
            &format!("{}/azure/v1/chat/completions", gw.url()),
            &chat_body("az-gpt-4o", "hi"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        mock.last_request().unwrap().path(),
        "/openai/deployments/az-gpt-4o/chat/completions"
    );
}

/// An open route to the mock with a per-client-address quota of two requests a
/// minute; `{{proxy}}` may add `server.trusted_proxies` / `proxy_protocol`.
/// An open route to the built-in mock, 2 requests a minute per client address;
/// `server` says which proxies are trusted.
async fn per_ip(server: Server) -> Gateway {
    let config = Config::new()
        .server(server)
        .provider(Provider::mock("mock"))
        .route(
            Route::new("open", "/v1")
                .upstream("mock")
                .quota(Quota::new("per-ip", "ip", "requests", 2, "1m")),
        )
        .access_log();
    Gateway::start(&config.yaml()).await
}

async fn from(c: &TestClient, gw: &Gateway, xff: &str) -> u16 {
    c.post_json_with(
        &format!("{}/v1/chat/completions", gw.url()),
        &chat_body("mock-gpt", "hi"),
        &[("x-forwarded-for", xff)],
    )
    .await
    .status
}

/// 10. Behind an ingress every client arrives from the ingress's address: with
///     `trusted_proxies`, the client is the right-most hop that is not a
///     trusted proxy, so `by: ip` counts clients apart and a forged left-hand
///     hop changes nothing; from an untrusted peer the header is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_addresses_behind_trusted_proxies() {
    let c = TestClient::new();
    let gw = per_ip(Server::new().trusted_proxies(&["127.0.0.0/8"])).await;
    assert_eq!(from(&c, &gw, "203.0.113.1").await, 200);
    assert_eq!(from(&c, &gw, "6.6.6.6, 203.0.113.1").await, 200);
    assert_eq!(
        from(&c, &gw, "7.7.7.7, 203.0.113.1").await,
        429,
        "a forged hop is not a new client"
    );
    assert_eq!(
        from(&c, &gw, "203.0.113.2").await,
        200,
        "another client has its own window"
    );
    let lines = gw.wait_for_log_lines(4, Duration::from_secs(5)).await;
    assert_eq!(lines[0].downstream_remote_address, "203.0.113.1:0");
    assert_eq!(lines[3].downstream_remote_address, "203.0.113.2:0");

    // the same requests to a gateway that trusts no proxy: one client, the peer
    let direct = per_ip(Server::new()).await;
    assert_eq!(from(&c, &direct, "203.0.113.1").await, 200);
    assert_eq!(from(&c, &direct, "203.0.113.2").await, 200);
    assert_eq!(
        from(&c, &direct, "203.0.113.3").await,
        429,
        "X-Forwarded-For from an untrusted peer is ignored"
    );
}

/// 10b. With `proxy_protocol`, a connection's PROXY header names the client
///      (believed because the peer is a trusted proxy); a connection without
///      one is closed unanswered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_names_the_client() {
    let gw = per_ip(
        Server::new()
            .trusted_proxies(&["127.0.0.1"])
            .proxy_protocol(true),
    )
    .await;
    let body = r#"{"model":"mock-gpt","messages":[]}"#;
    let request = |proxy: &str| {
        format!(
            "{proxy}POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let out = raw_tcp_exchange(
        gw.listen_addr(),
        request("PROXY TCP4 198.51.100.9 10.0.0.1 40000 8080\r\n").as_bytes(),
        Duration::from_secs(3),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let line = &gw.wait_for_log_lines(1, Duration::from_secs(5)).await[0];
    assert_eq!(line.downstream_remote_address, "198.51.100.9:40000");
    let out = raw_tcp_exchange(
        gw.listen_addr(),
        request("").as_bytes(),
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(out, "", "no PROXY header: closed");
}
