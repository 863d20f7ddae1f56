//! Hot reload: file polling, bad files keep the old config, the admin reload
//! endpoint (auth, version, 400 with problems), in-flight streams survive.

use gateway_tests::client::{chat_body, chat_stream_body, TestClient};
use gateway_tests::config::{Config, Provider, Route, Server, Timeouts};
use gateway_tests::config_problems::{
    assert_every_problem_without_values, BROKEN_YAML, BROKEN_YAML_PROBLEMS, SECRET,
};
use gateway_tests::harness::{Gateway, ADMIN_TOKEN};
use gateway_tests::mock_upstream::{MockOptions, MockUpstream};
use std::time::{Duration, Instant};

/// Every request mapped to upstream model `mapped`; the file polled every
/// `poll_ms` (0: never).
fn builder(mapped: &str, poll_ms: u64) -> Config {
    Config::new()
        .server(
            Server::new()
                .admin_token(ADMIN_TOKEN)
                .config_poll_ms(poll_ms),
        )
        .provider(
            Provider::openai("up1", "{{mock}}")
                .token("sk-upstream-secret-1")
                .map("*", mapped)
                .timeouts(Timeouts::all(500, 2000, 3000, 20_000)),
        )
        .route(Route::new("chat", "/v1").upstream("up1"))
        .access_log()
}

fn config(mapped: &str, poll_ms: u64) -> String {
    builder(mapped, poll_ms).yaml()
}

/// How often the file is polled when `config_poll_ms` is not set.
const DEFAULT_POLL: Duration = Duration::from_millis(1000);

/// Sends a chat request and returns the model the upstream received.
async fn upstream_model(gw: &Gateway, mock: &MockUpstream) -> String {
    let r = TestClient::new()
        .post_json(
            &format!("{}/v1/chat/completions", gw.url()),
            &chat_body("gpt-4o", "which model?"),
        )
        .await;
    assert_eq!(r.status, 200, "{}\nstderr:\n{}", r.text(), gw.stderr());
    mock.last_request().unwrap().body["model"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

async fn admin_reload(gw: &Gateway, token: Option<&str>) -> gateway_tests::client::HttpResponse {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    TestClient::new()
        .request(
            http::Method::POST,
            &format!("{}/admin/config/reload", gw.admin_url()),
            &headers,
            bytes::Bytes::new(),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewritten_file_is_picked_up() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::builder(&config("model-v1", 200))
        .var("mock", mock.base_url())
        .start()
        .await;
    assert_eq!(upstream_model(&gw, &mock).await, "model-v1");

    gw.write_config(&config("model-v2", 200));
    let t = Instant::now();
    loop {
        let m = upstream_model(&gw, &mock).await;
        if m == "model-v2" {
            break;
        }
        assert_eq!(m, "model-v1", "only the old or the new config may answer");
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "new config not picked up within 3 s (config_poll_ms 200); stderr:\n{}",
            gw.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_file_keeps_old_config_and_is_reported() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::builder(&config("model-v1", 200))
        .var("mock", mock.base_url())
        .start()
        .await;
    assert_eq!(upstream_model(&gw, &mock).await, "model-v1");

    let bad = builder("model-v2", 200)
        .set("server.bogus_reload_key_xyz", 1)
        .yaml_unchecked();
    assert_ne!(bad, config("model-v2", 200));
    gw.write_config(&bad);
    let reported = gw
        .wait_for_stderr("bogus_reload_key_xyz", Duration::from_secs(3))
        .await;
    assert!(
        reported.is_some(),
        "the bad file's problem (unknown key bogus_reload_key_xyz) should be on stderr; stderr:\n{}",
        gw.stderr()
    );
    for _ in 0..3 {
        assert_eq!(
            upstream_model(&gw, &mock).await,
            "model-v1",
            "the old config stays in force"
        );
    }

    // Not valid YAML at all: still served.
    gw.write_config("server: [unclosed\n  - :\n");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(upstream_model(&gw, &mock).await, "model-v1");

    // A good file afterwards is taken.
    gw.write_config(&config("model-v3", 200));
    let t = Instant::now();
    while upstream_model(&gw, &mock).await != "model-v3" {
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "stderr:\n{}",
            gw.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reload_endpoint() {
    let mock = MockUpstream::start_default();
    // config_poll_ms 0: the file is never polled, only the admin call reloads
    let gw = Gateway::builder(&config("model-v1", 0))
        .var("mock", mock.base_url())
        .start()
        .await;
    assert_eq!(upstream_model(&gw, &mock).await, "model-v1");

    let r = admin_reload(&gw, None).await;
    assert_eq!(r.status, 401, "no token: {}", r.text());
    let r = admin_reload(&gw, Some("wrong-token")).await;
    assert_eq!(r.status, 401, "wrong token: {}", r.text());

    let r = admin_reload(&gw, Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v1 = r.json()["version"]
        .as_u64()
        .unwrap_or_else(|| panic!("no numeric version: {}", r.text()));

    gw.write_config(&config("model-v2", 0));
    // twice the default poll: a gateway that polled at its default (or at
    // any period up to it) would have taken the new file by now
    tokio::time::sleep(DEFAULT_POLL * 2 + Duration::from_millis(200)).await;
    assert_eq!(
        upstream_model(&gw, &mock).await,
        "model-v1",
        "config_poll_ms 0 means no polling"
    );
    let r = admin_reload(&gw, Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v2 = r.json()["version"].as_u64().unwrap();
    assert!(v2 > v1, "version must grow: {v1} -> {v2}");
    assert_eq!(upstream_model(&gw, &mock).await, "model-v2");

    // A bad file: 400 listing the problem, old config kept.
    let bad = builder("model-v3", 0)
        .with_provider("up1", |p| p.tokens(&[]))
        .set(
            "providers.0.api_tokns_typo",
            ["sk-upstream-secret-1"].as_slice(),
        )
        .yaml_unchecked();
    gw.write_config(&bad);
    let r = admin_reload(&gw, Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let v = r.json();
    let msg = v["error"]["message"].as_str().unwrap_or("");
    assert!(!msg.is_empty(), "{v}");
    assert!(
        r.text().contains("api_tokns_typo"),
        "the answer names the bad key: {v}"
    );
    assert_eq!(upstream_model(&gw, &mock).await, "model-v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reload_lists_every_problem_of_a_broken_file_without_the_secret() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::builder(&config("model-v1", 0))
        .var("mock", mock.base_url())
        .start()
        .await;
    gw.write_config(BROKEN_YAML);
    let r = admin_reload(&gw, Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(!r.text().contains(SECRET), "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["code"], "invalid_config", "{v}");
    let problems: Vec<&str> = v["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("no problems list: {v}"))
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    assert_eq!(problems.len(), BROKEN_YAML_PROBLEMS.len(), "{v}");
    assert_every_problem_without_values(&problems.join("\n"), &BROKEN_YAML_PROBLEMS);
    assert_every_problem_without_values(
        v["error"]["message"].as_str().unwrap_or(""),
        &BROKEN_YAML_PROBLEMS,
    );
    // the refusal is logged too, as plainly
    assert_every_problem_without_values(&gw.stderr(), &BROKEN_YAML_PROBLEMS);
    assert_eq!(upstream_model(&gw, &mock).await, "model-v1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_stream_survives_reload() {
    let mock = MockUpstream::start(MockOptions {
        stream_chunks: 8,
        chunk_delay_ms: 150,
        ..Default::default()
    });
    let gw = Gateway::builder(&config("model-v1", 100))
        .var("mock", mock.base_url())
        .start()
        .await;
    let c = TestClient::new();
    let mut stream = c
        .open_sse(
            &format!("{}/v1/chat/completions", gw.url()),
            &chat_stream_body("gpt-4o", "slow stream across a reload"),
            &[],
        )
        .await;
    assert_eq!(stream.status, 200);
    let first = stream.next_event().await.expect("first event");

    gw.write_config(&config("model-v2", 100));
    let r = admin_reload(&gw, Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.text());

    let s = stream.collect_with(vec![first]).await;
    assert!(
        s.done,
        "the in-flight stream must finish normally: {}",
        s.raw
    );
    assert!(s.clean_end, "{:?}", s.error);
    assert_eq!(s.events.len(), 10, "{}", s.raw);
    assert_eq!(s.content(), "word ".repeat(8));
    assert!(
        s.total >= Duration::from_millis(1000),
        "the stream really spanned the reload"
    );

    // new requests use the new config
    mock.set_chunk_delay(0);
    assert_eq!(upstream_model(&gw, &mock).await, "model-v2");
}
