//! The mock's Bedrock side, continued: its errors (the shared switches in
//! Bedrock's shape), the request checks, unknown operations, and the signature
//! checked before anything else.

use crate::bedrock::{assert_refused, converse, converse_url, send, Signer};
use gateway_tests::client::HttpResponse;
use gateway_tests::mock_upstream::{
    bedrock_error_type, converse_body, MockUpstream, AWS_TEST_ACCESS_KEY_ID,
};
use serde_json::{json, Value};

const MODEL: &str = "meta.llama3-3-70b-instruct-v1%3A0";

fn assert_bedrock_error(r: &HttpResponse, status: u16, error_type: &str) -> Value {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some(error_type),
        "{}",
        r.text()
    );
    let v = r.json();
    assert!(!v["message"].as_str().unwrap().is_empty(), "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_switches_answer_in_bedrocks_shape() {
    let mock = MockUpstream::start_default();
    let body = converse_body("x");
    for (status, kind) in [
        (400, "ValidationException"),
        (403, "AccessDeniedException"),
        (404, "ResourceNotFoundException"),
        (429, "ThrottlingException"),
        (500, "InternalServerException"),
        (503, "ServiceUnavailableException"),
    ] {
        assert_eq!(bedrock_error_type(status), kind);
        mock.fail_with(status);
        let r = converse(&mock, MODEL, "converse", &body).await;
        assert_bedrock_error(&r, status, kind);
    }
    let given = r#"{"message":"given"}"#;
    mock.fail_with_body(429, given);
    let r = converse(&mock, MODEL, "converse", &body).await;
    assert_eq!((r.status, r.text()), (429, given.to_string()));
    assert_eq!(r.header("x-amzn-errortype"), Some("ThrottlingException"));
    // the signature is checked first
    let url = converse_url(&mock, MODEL, "converse");
    let raw = body.to_string();
    let headers = Signer::default().headers(&url, raw.as_bytes());
    let r = send(&url, &headers, b"{}").await;
    assert_refused(&r, "InvalidSignatureException");
    mock.set_normal();
    // a rejected access key id
    mock.reject_token(AWS_TEST_ACCESS_KEY_ID, 403);
    let r = converse(&mock, MODEL, "converse", &body).await;
    assert_bedrock_error(&r, 403, "AccessDeniedException");
    mock.accept_all_tokens();
    assert_eq!(converse(&mock, MODEL, "converse", &body).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_checked_like_the_api() {
    let mock = MockUpstream::start_default();
    let user = json!({"role": "user", "content": [{"text": "x"}]});
    let assistant = json!({"role": "assistant", "content": [{"text": "x"}]});
    for (body, says) in [
        (json!({"messages": []}), "messages"),
        (
            json!({"modelId": "m", "messages": [user]}),
            "extraneous key [modelId]",
        ),
        (
            json!({"messages": [user], "stream": true}),
            "extraneous key [stream]",
        ),
        (
            json!({"messages": [{"role": "system", "content": [{"text": "x"}]}]}),
            "role",
        ),
        (
            json!({"messages": [assistant, user]}),
            "must start with a user message",
        ),
        (
            json!({"messages": [{"role": "user", "content": []}]}),
            "content",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}]}),
            "content",
        ),
        (json!([1, 2]), "object"),
    ] {
        let r = converse(&mock, MODEL, "converse", &body).await;
        let v = assert_bedrock_error(&r, 400, "ValidationException");
        assert!(v["message"].as_str().unwrap().contains(says), "{says}: {v}");
    }
    // unknown operations, and a model id with an unencoded '/'
    for path in [
        format!("model/{MODEL}/invoke"),
        "model/arn:aws:bedrock:us-east-1:1:inference-profile/us.x/converse".to_string(),
        "model//converse".to_string(),
    ] {
        let url = format!("{}/{path}", mock.bedrock_base_url());
        let raw = converse_body("x").to_string();
        let r = send(
            &url,
            &Signer::default().headers(&url, raw.as_bytes()),
            raw.as_bytes(),
        )
        .await;
        assert_bedrock_error(&r, 404, "UnknownOperationException");
    }
}
