//! The Vertex AI side of the mock: Gemini models and Anthropic models under a
//! project and location, behind OAuth 2.0 access tokens that its own token
//! endpoint issues for the test service account (`tests/fixtures`).
//!
//! # Endpoints (under `/v1`, the base URL [`super::MockUpstream::vertex_base_url`])
//!
//! | method and path | answer |
//! |---|---|
//! | `POST /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent` | as Gemini's ([`super::gemini`]) |
//! | `POST .../publishers/google/models/{m}:streamGenerateContent?alt=sse` | as Gemini's stream |
//! | `POST .../publishers/anthropic/models/{m}:rawPredict` | Anthropic's Messages API ([`super::anthropic`]), the model `{m}` |
//! | `POST .../publishers/anthropic/models/{m}:streamRawPredict` | the same (streamed when the body has `"stream": true`) |
//! | `POST /token` | the OAuth 2.0 token endpoint ([`super::MockUpstream::token_url`]) |
//!
//! `{m}` is percent-decoded; any project and location are accepted (the recorded
//! path shows them). Every Vertex path needs `Authorization: Bearer <token>` with
//! a token this mock issued and that has not expired, else 401 in Google's error
//! shape (`UNAUTHENTICATED`); each request is then counted for its token
//! ([`super::MockUpstream::token_uses`]), before `fail_with` and the other shared
//! switches apply (their errors in Google's shape, on both publishers).
//!
//! A `rawPredict` body must have no `model` (400 "model: Extra inputs are not
//! permitted") and `anthropic_version: "vertex-2023-10-16"` ([`VERTEX_ANTHROPIC_VERSION`];
//! else 400 "anthropic_version: ..."), both in Anthropic's error shape, then
//! passes the Messages checks; the answer, usage and stream are the Anthropic
//! side's, with `model` set to `{m}` (`error_stream_after` and
//! `set_tool_use_on_auto` apply).
//!
//! # Token endpoint
//!
//! `POST /token`, a form `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&
//! assertion=<JWT>` (else 400 `unsupported_grant_type`). The assertion must be
//! RS256-signed by the test service account (checked against
//! `tests/fixtures/gcp-test-service-account.pub.pem`; a `kid`, when present, must
//! be its `private_key_id`), with `iss` = [`GCP_TEST_CLIENT_EMAIL`], `aud` = this
//! mock's `http://127.0.0.1:<port>/token`, a `scope` containing
//! [`GCP_CLOUD_PLATFORM_SCOPE`], `iat` not in the future (60 s of leeway), `exp`
//! in the future and `exp - iat <= 3600`; else 400 `{"error":"invalid_grant",
//! "error_description":..}`. The answer is `{"access_token":"ya29.mock-<k>",
//! "expires_in":<E>,"token_type":"Bearer"}`, `<k>` counting issued tokens from 1,
//! `<E>` 3600 or what `set_token_expires_in` set; the token expires `E` seconds
//! after it was issued. Switches: `fail_token_with(status)` (answers `status`
//! with `{"error":"internal_failure",..}`; 0 = normal), `delay_token(ms)` (holds
//! each answer), `token_requests()` counts every request to `/token` on arrival.
//! The shared switches (`fail_with`, `delay_headers`, `reject_token`) do not apply
//! here.

use super::body::MockBody;
use super::{anthropic, gemini, json_response, lock, MockState};
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// `anthropic_version` a `rawPredict` body must carry.
pub const VERTEX_ANTHROPIC_VERSION: &str = "vertex-2023-10-16";
/// `client_email` of the test service account.
pub const GCP_TEST_CLIENT_EMAIL: &str = "gateway-test@gw-test-project.iam.gserviceaccount.com";
/// `project_id` of the test service account.
pub const GCP_TEST_PROJECT: &str = "gw-test-project";
/// The scope an assertion must ask for.
pub const GCP_CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// `expires_in` of issued tokens unless `set_token_expires_in` changed it.
pub const DEFAULT_TOKEN_EXPIRES_IN: u64 = 3600;
/// The OAuth grant type of the JWT bearer flow.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

const SERVICE_ACCOUNT_JSON: &str = include_str!("../../fixtures/gcp-test-service-account.json");
const PUBLIC_KEY_PEM: &str = include_str!("../../fixtures/gcp-test-service-account.pub.pem");

/// The path of the test service account's key file (`tests/fixtures`).
pub fn gcp_test_service_account_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/gcp-test-service-account.json")
}

fn service_account_field(name: &str) -> String {
    serde_json::from_str::<Value>(SERVICE_ACCOUNT_JSON)
        .ok()
        .and_then(|v| v.get(name)?.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The test service account's private key (PEM), to sign assertions in a test.
pub fn gcp_test_private_key_pem() -> String {
    service_account_field("private_key")
}

/// The test service account's `private_key_id` (the `kid` of its assertions).
pub fn gcp_test_private_key_id() -> String {
    service_account_field("private_key_id")
}

static DECODING_KEY: LazyLock<Option<DecodingKey>> =
    LazyLock::new(|| DecodingKey::from_rsa_pem(PUBLIC_KEY_PEM.as_bytes()).ok());

/// An access token the mock issued.
#[derive(Debug, Clone)]
pub(super) struct IssuedToken {
    token: String,
    expires_at: Instant,
    uses: u64,
}

/// The uses counted for `token` so far.
pub(super) fn uses_of(st: &MockState, token: &str) -> u64 {
    lock(&st.cloud.tokens)
        .iter()
        .find(|t| t.token == token)
        .map_or(0, |t| t.uses)
}

/// Every token issued, oldest first.
pub(super) fn issued(st: &MockState) -> Vec<String> {
    lock(&st.cloud.tokens)
        .iter()
        .map(|t| t.token.clone())
        .collect()
}

/// Makes every token issued so far expired.
pub(super) fn expire_all(st: &MockState) {
    let now = Instant::now();
    for t in lock(&st.cloud.tokens).iter_mut() {
        t.expires_at = now;
    }
}

/// The bearer token of a request.
pub(super) fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// Checks the access token of a Vertex request and counts the request for it; the
/// 401 to answer otherwise.
pub(super) fn authenticate(
    st: &MockState,
    parts: &http::request::Parts,
    n: u64,
) -> Option<Response<MockBody>> {
    let unauthenticated = |message: &str| Some(gemini::error(StatusCode::UNAUTHORIZED, message, n));
    let Some(token) = bearer(&parts.headers) else {
        return unauthenticated(
            "Request is missing required authentication credential. Expected OAuth 2 access \
             token, login cookie or other valid authentication credential.",
        );
    };
    let mut tokens = lock(&st.cloud.tokens);
    let Some(issued) = tokens.iter_mut().find(|t| t.token == token) else {
        return unauthenticated(
            "Request had invalid authentication credentials. Expected OAuth 2 access token, \
             login cookie or other valid authentication credential.",
        );
    };
    if issued.expires_at <= Instant::now() {
        return unauthenticated("mock: the access token has expired");
    }
    issued.uses += 1;
    None
}

/// Answers a request under `/v1/projects/` (after [`authenticate`] and the shared
/// switches).
pub(super) fn route(
    st: &MockState,
    parts: &http::request::Parts,
    json: Option<Value>,
    n: u64,
) -> Response<MockBody> {
    let not_found = || {
        let message = format!(
            "mock: no such endpoint {} {}",
            parts.method,
            parts.uri.path()
        );
        gemini::error(StatusCode::NOT_FOUND, &message, n)
    };
    let segments: Vec<&str> = parts.uri.path().split('/').collect();
    // "", "v1", "projects", p, "locations", l, "publishers", pub, "models", "{m}:{method}"
    let [_, "v1", "projects", p, "locations", l, "publishers", publisher, "models", last] =
        segments[..]
    else {
        return not_found();
    };
    if p.is_empty() || l.is_empty() || parts.method != Method::POST {
        return not_found();
    }
    let Some((model, method)) = gemini::model_and_method(last) else {
        return not_found();
    };
    match (publisher, method) {
        ("google", "generateContent") => gemini::generate(st, json, &model, false, n),
        ("google", "streamGenerateContent") if gemini::alt_sse(parts) => {
            gemini::generate(st, json, &model, true, n)
        }
        ("google", "streamGenerateContent") => gemini::error(
            StatusCode::BAD_REQUEST,
            "mock: streamGenerateContent needs alt=sse",
            n,
        ),
        ("anthropic", "rawPredict" | "streamRawPredict") => raw_predict(st, json, &model, n),
        _ => not_found(),
    }
}

/// An Anthropic model's Messages request on Vertex AI.
fn raw_predict(st: &MockState, json: Option<Value>, model: &str, n: u64) -> Response<MockBody> {
    let bad = |message: &str| anthropic::error(StatusCode::BAD_REQUEST, message, n);
    let Some(mut body) = json.filter(Value::is_object) else {
        return bad("mock: body is not a JSON object");
    };
    if body.get("model").is_some() {
        return bad("model: Extra inputs are not permitted");
    }
    if body.get("anthropic_version").and_then(Value::as_str) != Some(VERTEX_ANTHROPIC_VERSION) {
        return bad("anthropic_version: Input should be 'vertex-2023-10-16'");
    }
    body["model"] = json!(model);
    anthropic::create(st, &body, n)
}

// ------------------------------------------------------------------ token endpoint

/// The claims of a JWT-bearer assertion.
#[derive(Debug, Deserialize)]
struct Claims {
    scope: String,
    iat: u64,
    exp: u64,
}

fn token_error(status: StatusCode, error: &str, description: &str, n: u64) -> Response<MockBody> {
    let body = json!({"error": error, "error_description": description});
    json_response(status, body.to_string(), n)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The reason `assertion` is refused, in Google's words where it has them.
fn check_assertion(assertion: &str, audience: &str) -> Result<(), String> {
    let key = DECODING_KEY
        .as_ref()
        .ok_or("mock: the fixture's public key does not parse")?;
    let header = jsonwebtoken::decode_header(assertion).map_err(|e| format!("Invalid JWT: {e}"))?;
    if header.alg != Algorithm::RS256 {
        return Err("Invalid JWT: the algorithm must be RS256".into());
    }
    if header
        .kid
        .as_ref()
        .is_some_and(|kid| *kid != gcp_test_private_key_id())
    {
        return Err("Invalid JWT Signature.".into());
    }
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[audience]);
    v.set_issuer(&[GCP_TEST_CLIENT_EMAIL]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v.leeway = 0;
    let claims = jsonwebtoken::decode::<Claims>(assertion, key, &v)
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::InvalidSignature => "Invalid JWT Signature.".to_string(),
                K::InvalidAudience => "Invalid JWT: Failed audience check.".to_string(),
                K::InvalidIssuer => "Invalid JWT: the issuer is not the service account".into(),
                K::ExpiredSignature => {
                    "Invalid JWT: Token must be a short-lived token (60 minutes) \
                    and in a reasonable timeframe. Check your iat and exp values in the JWT claim."
                        .to_string()
                }
                other => format!("Invalid JWT: {other:?}"),
            }
        })?
        .claims;
    if !claims
        .scope
        .split(' ')
        .any(|s| s == GCP_CLOUD_PLATFORM_SCOPE)
    {
        return Err(format!(
            "Invalid JWT: the scope must include {GCP_CLOUD_PLATFORM_SCOPE}"
        ));
    }
    let short_lived = claims.exp > claims.iat && claims.exp - claims.iat <= 3600;
    if !short_lived || claims.iat > now_secs() + 60 {
        return Err(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a \
                    reasonable timeframe. Check your iat and exp values in the JWT claim."
                .into(),
        );
    }
    Ok(())
}

/// `POST /token` (see the module doc).
pub(super) async fn token(
    st: &MockState,
    parts: &http::request::Parts,
    raw: &Bytes,
    n: u64,
) -> Response<MockBody> {
    let c = &st.cloud;
    c.token_requests.fetch_add(1, Ordering::SeqCst);
    let delay = c.token_delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let fail = c.token_fail.load(Ordering::Relaxed);
    if fail != 0 {
        let status = StatusCode::from_u16(fail).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return token_error(
            status,
            "internal_failure",
            "mock: the token endpoint fails",
            n,
        );
    }
    if parts.method != Method::POST {
        return token_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "mock: POST /token only",
            n,
        );
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(raw)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if get("grant_type") != Some(JWT_BEARER_GRANT) {
        let bad = StatusCode::BAD_REQUEST;
        return token_error(bad, "unsupported_grant_type", "Invalid grant_type", n);
    }
    let audience = match st.local_addr.get() {
        Some(addr) => format!("http://{addr}/token"),
        None => String::new(),
    };
    if let Err(why) = check_assertion(get("assertion").unwrap_or(""), &audience) {
        return token_error(StatusCode::BAD_REQUEST, "invalid_grant", &why, n);
    }
    let expires_in = c.token_expires_in.load(Ordering::Relaxed);
    let mut tokens = lock(&c.tokens);
    let token = format!("ya29.mock-{}", tokens.len() + 1);
    tokens.push(IssuedToken {
        token: token.clone(),
        expires_at: Instant::now() + Duration::from_secs(expires_in),
        uses: 0,
    });
    let body = json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"});
    json_response(StatusCode::OK, body.to_string(), n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_constants_are_the_fixtures() {
        assert_eq!(service_account_field("client_email"), GCP_TEST_CLIENT_EMAIL);
        assert_eq!(service_account_field("project_id"), GCP_TEST_PROJECT);
        assert!(gcp_test_private_key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(DECODING_KEY.is_some());
        assert!(gcp_test_service_account_file().is_file());
    }
}
