//! The mock's Bedrock side: its SigV4 verifier against requests signed by the
//! real signer (`aws-sigv4`: accepted, and refused once a byte changes), Converse
//! answers and usage, tool use both ways (ConverseStream in `bedrock_stream.rs`,
//! errors and request checks in `bedrock_checks.rs`).

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use gateway_tests::client::{HttpResponse, TestClient};
use gateway_tests::mock_upstream::{
    converse_body, converse_usage, tool_result_text, ConverseAnswer, MockUpstream,
    AWS_TEST_ACCESS_KEY_ID, AWS_TEST_REGION, AWS_TEST_SECRET_ACCESS_KEY, BEDROCK_LATENCY_MS,
    BEDROCK_TOOL_USE_TOKENS, MOCK_TOOL_INPUT,
};
use http::Method;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime};

/// How a test signs: the credentials, region and time.
pub(crate) struct Signer {
    pub access_key_id: &'static str,
    pub secret: &'static str,
    pub session_token: Option<&'static str>,
    pub region: &'static str,
    pub time: SystemTime,
}

impl Default for Signer {
    fn default() -> Self {
        Signer {
            access_key_id: AWS_TEST_ACCESS_KEY_ID,
            secret: AWS_TEST_SECRET_ACCESS_KEY,
            session_token: None,
            region: AWS_TEST_REGION,
            time: SystemTime::now(),
        }
    }
}

impl Signer {
    /// The headers of a POST of `body` to `url` signed by `aws-sigv4` (service
    /// `bedrock`), `content-type: application/json` among them.
    pub(crate) fn headers(&self, url: &str, body: &[u8]) -> Vec<(String, String)> {
        let identity = Credentials::new(
            self.access_key_id,
            self.secret,
            self.session_token.map(str::to_string),
            None,
            "mock-selftest",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(self.region)
            .name("bedrock")
            .time(self.time)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let content_type = [("content-type", "application/json")];
        let signable = SignableRequest::new(
            "POST",
            url,
            content_type.iter().copied(),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut headers: Vec<(String, String)> = content_type
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        headers.extend(
            instructions
                .headers()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        headers
    }
}

pub(crate) fn converse_url(mock: &MockUpstream, model: &str, op: &str) -> String {
    format!("{}/model/{model}/{op}", mock.bedrock_base_url())
}

pub(crate) async fn send(url: &str, headers: &[(String, String)], body: &[u8]) -> HttpResponse {
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    TestClient::new()
        .request(Method::POST, url, &h, Bytes::copy_from_slice(body))
        .await
}

/// A Converse request to `mock`'s `op` of `model`, signed right.
pub(crate) async fn converse(
    mock: &MockUpstream,
    model: &str,
    op: &str,
    body: &Value,
) -> HttpResponse {
    let url = converse_url(mock, model, op);
    let raw = body.to_string();
    send(
        &url,
        &Signer::default().headers(&url, raw.as_bytes()),
        raw.as_bytes(),
    )
    .await
}

pub(crate) fn assert_refused(r: &HttpResponse, error_type: &str) {
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some(error_type),
        "{}",
        r.text()
    );
    assert!(r.json()["message"].is_string());
}

const MODEL: &str = "anthropic.claude-3-5-sonnet-20240620-v1%3A0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_signed_by_aws_sigv4_passes_and_one_changed_byte_is_refused() {
    let mock = MockUpstream::start_default();
    let url = converse_url(&mock, MODEL, "converse");
    let body = converse_body("hello bedrock").to_string();
    let headers = Signer::default().headers(&url, body.as_bytes());
    let r = send(&url, &headers, body.as_bytes()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(mock.sigv4_refusals(), 0);

    // one byte of the body changed
    let tampered_body = body.replace("hello", "hellO");
    let r = send(&url, &headers, tampered_body.as_bytes()).await;
    assert_refused(&r, "InvalidSignatureException");
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .starts_with("The request signature we calculated does not match"));
    // one character of the signature changed
    let tampered: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            let v = if k == "authorization" {
                let flipped = if v.ends_with('0') { '1' } else { '0' };
                format!("{}{flipped}", &v[..v.len() - 1])
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect();
    assert_refused(
        &send(&url, &tampered, body.as_bytes()).await,
        "InvalidSignatureException",
    );
    // the same request signed for another path
    let other = converse_url(&mock, "amazon.nova-pro-v1%3A0", "converse");
    assert_refused(
        &send(&other, &headers, body.as_bytes()).await,
        "InvalidSignatureException",
    );
    assert_eq!(mock.sigv4_refusals(), 3);
    // and the original still passes
    assert_eq!(send(&url, &headers, body.as_bytes()).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_tokens_regions_and_dates_are_checked() {
    let mock = MockUpstream::start_default();
    let url = converse_url(&mock, MODEL, "converse");
    let body = converse_body("x").to_string();
    let b = body.as_bytes();
    let signed = |s: Signer| s.headers(&url, b);
    let r = send(
        &url,
        &[("content-type".into(), "application/json".into())],
        b,
    )
    .await;
    assert_refused(&r, "MissingAuthenticationTokenException");
    let other_key = Signer {
        access_key_id: "AKIAOTHERKEY00000000",
        ..Default::default()
    };
    assert_refused(
        &send(&url, &signed(other_key), b).await,
        "UnrecognizedClientException",
    );
    let other_secret = Signer {
        secret: "not-the-secret",
        ..Default::default()
    };
    assert_refused(
        &send(&url, &signed(other_secret), b).await,
        "InvalidSignatureException",
    );
    let other_region = Signer {
        region: "eu-west-3",
        ..Default::default()
    };
    assert_refused(
        &send(&url, &signed(other_region), b).await,
        "InvalidSignatureException",
    );
    let stale = Signer {
        time: SystemTime::now() - Duration::from_secs(600),
        ..Default::default()
    };
    assert_refused(
        &send(&url, &signed(stale), b).await,
        "InvalidSignatureException",
    );
    // a region set on the mock
    mock.set_aws_region("eu-west-3");
    let r = send(
        &url,
        &signed(Signer {
            region: "eu-west-3",
            ..Default::default()
        }),
        b,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    mock.set_aws_region(AWS_TEST_REGION);

    // a session token: required once set, and refused when not
    let token = gateway_tests::mock_upstream::AWS_TEST_SESSION_TOKEN;
    let with_token = || Signer {
        session_token: Some(token),
        ..Default::default()
    };
    assert_refused(
        &send(&url, &signed(with_token()), b).await,
        "UnrecognizedClientException",
    );
    mock.set_aws_session_token(Some(token));
    assert_refused(
        &send(&url, &signed(Signer::default()), b).await,
        "UnrecognizedClientException",
    );
    let headers = signed(with_token());
    assert!(headers
        .iter()
        .any(|(k, v)| k == "x-amz-security-token" && v == token));
    assert_eq!(send(&url, &headers, b).await.status, 200);
    assert_eq!(mock.sigv4_refusals(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converse_shape_usage_and_model_ids() {
    let mock = MockUpstream::start_default();
    // 4 + 24 bytes of text: P = 7
    let body = json!({
        "system": [{"text": "be x"}],
        "messages": [{"role": "user", "content": [{"text": "hello bedrock, 24 bytes."}]}],
        "inferenceConfig": {"maxTokens": 100},
    });
    let r = converse(&mock, MODEL, "converse", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-amzn-requestid"), Some("req_mock1"));
    let v = r.json();
    assert_eq!(
        v["output"]["message"],
        json!({"role": "assistant", "content": [{"text": "word ".repeat(8)}]})
    );
    assert_eq!(v["stopReason"], "end_turn");
    assert_eq!(
        v["usage"],
        json!({"inputTokens": 7, "outputTokens": 8, "totalTokens": 15})
    );
    assert_eq!(v["metrics"]["latencyMs"], BEDROCK_LATENCY_MS);
    assert_eq!(converse_usage(&body, 8).prompt_total(), 7);
    // an inference profile ARN, its ':' and '/' percent-encoded
    let arn = "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.meta.llama3-3-70b-instruct-v1%3A0";
    assert_eq!(converse(&mock, arn, "converse", &body).await.status, 200);
    assert_eq!(
        mock.bedrock_models(),
        [
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3-3-70b-instruct-v1:0"
        ]
    );

    // a cachePoint after the system text: its 40 bytes (10 tokens) the cached prefix
    let body = json!({
        "system": [{"text": "a".repeat(40)}, {"cachePoint": {"type": "default"}}],
        "messages": [{"role": "user", "content": [{"text": "b".repeat(40)}]}],
    });
    let v = converse(&mock, MODEL, "converse", &body).await.json();
    assert_eq!(
        v["usage"],
        json!({"inputTokens": 10, "outputTokens": 8, "totalTokens": 28,
            "cacheReadInputTokens": 5, "cacheWriteInputTokens": 5})
    );
    // the switch: half the prompt cached when no cachePoint says otherwise
    mock.bedrock_cache_figures(true);
    let body = converse_body(&"c".repeat(40));
    let v = converse(&mock, MODEL, "converse", &body).await.json();
    assert_eq!(
        v["usage"],
        json!({"inputTokens": 5, "outputTokens": 8, "totalTokens": 18,
            "cacheReadInputTokens": 2, "cacheWriteInputTokens": 3})
    );
    assert_eq!(
        ConverseAnswer::plan(&body, 8, true)
            .usage
            .cache_write_input_tokens,
        3
    );
    mock.bedrock_cache_figures(false);
    // maxTokens cuts the answer
    let mut body = converse_body("x");
    body["inferenceConfig"] = json!({"maxTokens": 2});
    let v = converse(&mock, MODEL, "converse", &body).await.json();
    assert_eq!(v["stopReason"], "max_tokens");
    assert_eq!(v["usage"]["outputTokens"], 2);
}

pub(crate) fn tools_body() -> Value {
    json!({
        "messages": [{"role": "user", "content": [{"text": "weather in Paris?"}]}],
        "toolConfig": {"tools": [
            {"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}},
            {"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object"}}}},
        ]},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_use_round_trip() {
    let mock = MockUpstream::start_default();
    let v = converse(&mock, MODEL, "converse", &tools_body())
        .await
        .json();
    assert_eq!(v["stopReason"], "tool_use");
    let tool_use = &v["output"]["message"]["content"][0]["toolUse"];
    assert_eq!(tool_use["name"], "get_weather");
    assert_eq!(tool_use["toolUseId"], "tooluse_mock1");
    assert_eq!(
        tool_use["input"],
        serde_json::from_str::<Value>(MOCK_TOOL_INPUT).unwrap()
    );
    assert_eq!(v["usage"]["outputTokens"], BEDROCK_TOOL_USE_TOKENS);
    let mut body = tools_body();
    body["toolConfig"]["toolChoice"] = json!({"tool": {"name": "get_time"}});
    let v = converse(&mock, MODEL, "converse", &body).await.json();
    assert_eq!(
        v["output"]["message"]["content"][0]["toolUse"]["name"],
        "get_time"
    );

    // the result: a text naming the call, the result's text counted
    let mut body = tools_body();
    body["messages"].as_array_mut().unwrap().extend([
        json!({"role": "assistant", "content": [{"toolUse":
            {"toolUseId": "tooluse_mock1", "name": "get_weather", "input": {}}}]}),
        json!({"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_mock1",
            "content": [{"json": {"sky": "sunny"}}, {"text": "21C"}], "status": "success"}}]}),
    ]);
    let v = converse(&mock, MODEL, "converse", &body).await.json();
    assert_eq!(v["stopReason"], "end_turn");
    let text = format!("{}{}", tool_result_text("tooluse_mock1"), "word ".repeat(8));
    assert_eq!(v["output"]["message"]["content"][0]["text"], text);
    assert_eq!(v["usage"]["outputTokens"], 9);
    // "weather in Paris?" (17) + "sunny" (5) + "21C" (3) = 25 bytes
    assert_eq!(v["usage"]["inputTokens"], 7);
}
