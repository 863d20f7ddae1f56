//! The mock's Vertex AI side: the token endpoint (JWT assertions signed with the
//! test service account accepted, wrong ones refused, its switches), the access
//! token required on the Vertex paths, Gemini and Anthropic models there.

use gateway_tests::client::{HttpResponse, TestClient};
use gateway_tests::mock_upstream::{
    gcp_test_private_key_id, gcp_test_private_key_pem, gemini_body, messages_usage, MockUpstream,
    GCP_CLOUD_PLATFORM_SCOPE, GCP_TEST_CLIENT_EMAIL, GCP_TEST_PROJECT, JWT_BEARER_GRANT,
    VERTEX_ANTHROPIC_VERSION,
};
use http::Method;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The claims the gateway sends, for `mock`'s token endpoint.
fn claims(mock: &MockUpstream) -> Value {
    let iat = now();
    json!({"iss": GCP_TEST_CLIENT_EMAIL, "scope": GCP_CLOUD_PLATFORM_SCOPE,
        "aud": mock.token_url(), "iat": iat, "exp": iat + 3600})
}

/// `claims` signed with the test service account's key (RS256, its `kid`).
fn assertion(claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(gcp_test_private_key_pem().as_bytes()).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(gcp_test_private_key_id());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

async fn token_request(mock: &MockUpstream, grant_type: &str, assertion: &str) -> HttpResponse {
    token_post(mock.token_url(), grant_type.into(), assertion.into()).await
}

/// A token request to `url` (owned arguments, to be spawned).
async fn token_post(url: String, grant_type: String, assertion: String) -> HttpResponse {
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", &grant_type)
        .append_pair("assertion", &assertion)
        .finish();
    let form_type = [("content-type", "application/x-www-form-urlencoded")];
    TestClient::new()
        .request(Method::POST, &url, &form_type, form)
        .await
}

/// A fresh access token from `mock`.
async fn access_token(mock: &MockUpstream) -> String {
    let r = token_request(mock, JWT_BEARER_GRANT, &assertion(&claims(mock))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["access_token"].as_str().unwrap().to_string()
}

fn model_url(mock: &MockUpstream, publisher: &str, model_and_method: &str) -> String {
    format!(
        "{}/projects/{GCP_TEST_PROJECT}/locations/us-central1/publishers/{publisher}/models/{model_and_method}",
        mock.vertex_base_url()
    )
}

async fn post(url: &str, token: &str, body: &Value) -> HttpResponse {
    let auth = format!("Bearer {token}");
    TestClient::new()
        .post_json_with(url, body, &[("authorization", auth.as_str())])
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_issues_tokens_for_the_test_service_account() {
    let mock = MockUpstream::start_default();
    let r = token_request(&mock, JWT_BEARER_GRANT, &assertion(&claims(&mock))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"access_token": "ya29.mock-1", "expires_in": 3600, "token_type": "Bearer"})
    );
    mock.set_token_expires_in(30);
    let v = token_request(&mock, JWT_BEARER_GRANT, &assertion(&claims(&mock)))
        .await
        .json();
    assert_eq!(
        (&v["access_token"], &v["expires_in"]),
        (&json!("ya29.mock-2"), &json!(30))
    );
    assert_eq!(mock.token_requests(), 2);
    assert_eq!(mock.issued_tokens(), ["ya29.mock-1", "ya29.mock-2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_assertions_are_refused_as_invalid_grant() {
    let mock = MockUpstream::start_default();
    let good = assertion(&claims(&mock));
    // one character of the signature changed
    let mut tampered = good.clone().into_bytes();
    let last = tampered.len() - 5;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let with = |key: &str, v: Value| {
        let mut c = claims(&mock);
        c[key] = v;
        assertion(&c)
    };
    let iat = now();
    let cases = [
        ("signature", tampered),
        ("audience", with("aud", json!("http://127.0.0.1:1/token"))),
        (
            "issuer",
            with("iss", json!("someone@else.iam.gserviceaccount.com")),
        ),
        (
            "scope",
            with(
                "scope",
                json!("https://www.googleapis.com/auth/userinfo.email"),
            ),
        ),
        ("lifetime", with("exp", json!(iat + 7200))),
        ("expired", {
            let mut c = claims(&mock);
            c["iat"] = json!(iat - 4000);
            c["exp"] = json!(iat - 600);
            assertion(&c)
        }),
        ("not a JWT", "abc.def".to_string()),
    ];
    for (what, a) in cases {
        let r = token_request(&mock, JWT_BEARER_GRANT, &a).await;
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        let v = r.json();
        assert_eq!(v["error"], "invalid_grant", "{what}: {v}");
        assert!(!v["error_description"].as_str().unwrap().is_empty());
    }
    // a kid that is not the service account's
    let key = EncodingKey::from_rsa_pem(gcp_test_private_key_pem().as_bytes()).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("another-key".into());
    let a = jsonwebtoken::encode(&header, &claims(&mock), &key).unwrap();
    assert_eq!(token_request(&mock, JWT_BEARER_GRANT, &a).await.status, 400);
    let r = token_request(&mock, "client_credentials", &good).await;
    assert_eq!(r.json()["error"], "unsupported_grant_type");
    assert!(mock.issued_tokens().is_empty());
    // the same good assertion passes: the refusals were the changes'
    assert_eq!(
        token_request(&mock, JWT_BEARER_GRANT, &good).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_failure_and_delay_switches() {
    let mock = MockUpstream::start_default();
    let a = assertion(&claims(&mock));
    mock.fail_token_with(500);
    let r = token_request(&mock, JWT_BEARER_GRANT, &a).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["error"], "internal_failure");
    mock.fail_token_with(0);
    assert_eq!(token_request(&mock, JWT_BEARER_GRANT, &a).await.status, 200);
    // the shared switches leave /token alone
    mock.fail_with(503);
    assert_eq!(token_request(&mock, JWT_BEARER_GRANT, &a).await.status, 200);
    mock.set_normal();
    // held answers: counted on arrival (5 callers pile up), answered after the delay
    mock.delay_token(400);
    let started = Instant::now();
    let pending: Vec<_> = (0..5)
        .map(|_| {
            tokio::spawn(token_post(
                mock.token_url(),
                JWT_BEARER_GRANT.into(),
                a.clone(),
            ))
        })
        .collect();
    while mock.token_requests() < 3 + 5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(pending.iter().all(|p| !p.is_finished()));
    for p in pending {
        assert_eq!(p.await.unwrap().status, 200);
    }
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vertex_paths_need_an_issued_unexpired_token_and_count_its_uses() {
    let mock = MockUpstream::start_default();
    let url = model_url(&mock, "google", "gemini-2.5-flash:generateContent");
    let body = gemini_body("12345678");
    let r = TestClient::new().post_json(&url, &body).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["status"], "UNAUTHENTICATED");
    assert_eq!(post(&url, "ya29.made-up", &body).await.status, 401);

    let token = access_token(&mock).await;
    let r = post(&url, &token, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["modelVersion"], "gemini-2.5-flash");
    assert_eq!(v["usageMetadata"]["promptTokenCount"], 2);
    let stream_url = model_url(
        &mock,
        "google",
        "gemini-2.5-flash:streamGenerateContent?alt=sse",
    );
    let auth = format!("Bearer {token}");
    let s = TestClient::new()
        .post_sse(&stream_url, &body, &[("authorization", auth.as_str())])
        .await;
    assert_eq!(s.json_events().len(), 8);
    assert_eq!(mock.token_uses(&token), 2);
    // failures still count the use, in Google's shape
    mock.fail_with(500);
    let r = post(&url, &token, &body).await;
    assert_eq!(r.json()["error"]["status"], "INTERNAL");
    assert_eq!(mock.token_uses(&token), 3);
    mock.set_normal();
    // expired tokens are refused
    mock.expire_tokens();
    let r = post(&url, &token, &body).await;
    assert_eq!(r.status, 401);
    assert!(r.text().contains("expired"), "{}", r.text());
    mock.set_token_expires_in(0);
    let short = access_token(&mock).await;
    assert_eq!(post(&url, &short, &body).await.status, 401);
    assert_eq!(mock.token_uses(&short), 0);
}

fn raw_predict_body() -> Value {
    json!({"anthropic_version": VERTEX_ANTHROPIC_VERSION, "max_tokens": 100,
        "messages": [{"role": "user", "content": "hello, twelve"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_models_take_the_messages_body_without_model() {
    let mock = MockUpstream::start_default();
    let token = access_token(&mock).await;
    let url = model_url(&mock, "anthropic", "claude-sonnet-4%405:rawPredict");
    let body = raw_predict_body();
    let r = post(&url, &token, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["model"], "claude-sonnet-4@5");
    assert_eq!(
        v["usage"]["input_tokens"],
        messages_usage(&body, 8).input_tokens
    );
    assert_eq!(v["usage"]["output_tokens"], 8);
    // streamed when the body asks
    let mut streamed = raw_predict_body();
    streamed["stream"] = json!(true);
    let auth = format!("Bearer {token}");
    let s = TestClient::new()
        .post_sse(
            &model_url(&mock, "anthropic", "claude-sonnet-4%405:streamRawPredict"),
            &streamed,
            &[("authorization", auth.as_str())],
        )
        .await;
    assert_eq!(
        s.events.first().unwrap().event.as_deref(),
        Some("message_start")
    );
    assert_eq!(
        s.events.last().unwrap().event.as_deref(),
        Some("message_stop")
    );
    assert_eq!(s.events.len(), 8 + 6);

    // refused bodies, in Anthropic's shape
    let mut with_model = raw_predict_body();
    with_model["model"] = json!("claude");
    let mut old_version = raw_predict_body();
    old_version["anthropic_version"] = json!("2023-06-01");
    let mut no_max = raw_predict_body();
    no_max.as_object_mut().unwrap().remove("max_tokens");
    for (body, says) in [
        (with_model, "model"),
        (old_version, "anthropic_version"),
        (no_max, "max_tokens"),
    ] {
        let r = post(&url, &token, &body).await;
        assert_eq!(r.status, 400, "{}", r.text());
        let v = r.json();
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().starts_with(says),
            "{v}"
        );
    }
    let r = post(&model_url(&mock, "meta", "llama:rawPredict"), &token, &body).await;
    assert_eq!(r.status, 404);
}
