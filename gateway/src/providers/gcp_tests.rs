//! Tests of the service-account token source against a tiny local token endpoint.

use super::*;
use crate::upstream::ClientCache;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

const ACCOUNT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/gcp-test-service-account.json"
));
const PUBLIC_KEY: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/gcp-test-service-account.pub.pem"
));
const EMAIL: &str = "gateway-test@gw-test-project.iam.gserviceaccount.com";
const KID: &str = "0123456789abcdef0123456789abcdef01234567";

/// What the endpoint answers to its n-th request (from 1): status and body.
type Answer = dyn Fn(usize) -> (u16, String) + Send + Sync;

/// A token endpoint on 127.0.0.1 counting its requests and keeping their bodies.
struct Endpoint {
    url: Uri,
    hits: Arc<AtomicUsize>,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl Endpoint {
    async fn start(
        delay: Duration,
        answer: impl Fn(usize) -> (u16, String) + Send + Sync + 'static,
    ) -> Endpoint {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url: Uri = format!("http://{}/token", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let answer: Arc<Answer> = Arc::new(answer);
        let (h, b) = (hits.clone(), bodies.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (h, b, answer) = (h.clone(), b.clone(), answer.clone());
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (h, b, answer) = (h.clone(), b.clone(), answer.clone());
                    async move {
                        let n = h.fetch_add(1, Ordering::SeqCst) + 1;
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        b.lock()
                            .unwrap()
                            .push(String::from_utf8(body.to_vec()).unwrap());
                        tokio::time::sleep(delay).await;
                        let (status, text) = answer(n);
                        let resp = http::Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(text)))
                            .unwrap();
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), svc));
            }
        });
        Endpoint { url, hits, bodies }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// `{"access_token": "tok-<n>", "expires_in": <secs>}` for every request.
fn tokens(expires_in: u64) -> impl Fn(usize) -> (u16, String) + Send + Sync + 'static {
    move |n| {
        let body = format!(
            r#"{{"access_token":"tok-{n}","expires_in":{expires_in},"token_type":"Bearer"}}"#
        );
        (200, body)
    }
}

fn settings(url: &Uri) -> GcpSettings {
    GcpSettings {
        token_url: url.clone(),
        scopes: vec!["https://www.googleapis.com/auth/cloud-platform".into()],
        max_ttl: None,
        expire_early: Duration::from_secs(60),
        timeout: Duration::from_secs(5),
    }
}

fn source(settings: GcpSettings) -> TokenSource {
    let account = ServiceAccount::parse(ACCOUNT).unwrap();
    TokenSource::new(
        account,
        settings,
        ClientCache::default().get(Duration::from_secs(2)),
    )
}

/// The lines of the fixture's PEM body (what must never show).
fn key_lines() -> Vec<String> {
    let v: Value = serde_json::from_str(ACCOUNT).unwrap();
    let pem = v["private_key"].as_str().unwrap();
    let lines: Vec<String> = pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(str::to_owned)
        .collect();
    assert!(lines.len() > 10);
    lines
}

fn assert_no_key(text: &str) {
    for line in key_lines() {
        assert!(!text.contains(&line), "key material in: {text}");
    }
}

#[tokio::test]
async fn the_assertion_is_signed_by_the_account_key_with_the_right_claims() {
    let ep = Endpoint::start(Duration::ZERO, tokens(3600)).await;
    let src = source(settings(&ep.url));
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let value = src.header().await.unwrap();
    assert_eq!(value, "Bearer tok-1");
    assert!(value.is_sensitive());

    let body = ep.bodies.lock().unwrap()[0].clone();
    let form: std::collections::HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(
        form["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    let jwt = &form["assertion"];
    let head = jsonwebtoken::decode_header(jwt).unwrap();
    assert_eq!(head.alg, Algorithm::RS256);
    assert_eq!(head.typ.as_deref(), Some("JWT"));
    assert_eq!(head.kid.as_deref(), Some(KID));

    let key = jsonwebtoken::DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
    validation.set_audience(&[ep.url.to_string()]);
    validation.set_issuer(&[EMAIL]);
    let claims = jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["iss"], EMAIL);
    assert_eq!(claims["aud"], ep.url.to_string());
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/cloud-platform"
    );
    let iat = claims["iat"].as_u64().unwrap();
    assert!(
        iat >= before && iat <= before + 5,
        "iat {iat}, now {before}"
    );
    assert_eq!(claims["exp"].as_u64().unwrap(), iat + 3600);
}

#[tokio::test]
async fn scopes_are_joined_by_spaces() {
    let ep = Endpoint::start(Duration::ZERO, tokens(3600)).await;
    let mut s = settings(&ep.url);
    s.scopes = vec!["a".into(), "b".into()];
    source(s).header().await.unwrap();
    let body = ep.bodies.lock().unwrap()[0].clone();
    let jwt = form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "assertion")
        .unwrap()
        .1
        .into_owned();
    let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
    validation.insecure_disable_signature_validation();
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Value>(
        &jwt,
        &jsonwebtoken::DecodingKey::from_secret(b""),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["scope"], "a b");
}

#[tokio::test]
async fn fifty_concurrent_first_calls_make_one_token_request() {
    let ep = Endpoint::start(Duration::from_millis(200), tokens(3600)).await;
    let src = Arc::new(source(settings(&ep.url)));
    let calls = (0..50).map(|_| {
        let src = src.clone();
        tokio::spawn(async move { src.header().await })
    });
    let results = futures_util::future::join_all(calls).await;
    for r in results {
        assert_eq!(r.unwrap().unwrap(), "Bearer tok-1");
    }
    assert_eq!(ep.hits(), 1);
}

#[tokio::test]
async fn a_token_within_expire_early_of_its_expiry_is_replaced_on_the_next_call() {
    let ep = Endpoint::start(Duration::ZERO, tokens(30)).await;
    let src = source(settings(&ep.url)); // expire_early 60 s
                                         // the call that fetched it uses it, however short-lived
    assert_eq!(src.header().await.unwrap(), "Bearer tok-1");
    assert_eq!(src.header().await.unwrap(), "Bearer tok-2");
    assert_eq!(ep.hits(), 2);
}

#[tokio::test]
async fn a_token_far_from_expiry_is_reused() {
    let ep = Endpoint::start(Duration::ZERO, tokens(3600)).await;
    let src = source(settings(&ep.url));
    assert_eq!(src.header().await.unwrap(), "Bearer tok-1");
    assert_eq!(src.header().await.unwrap(), "Bearer tok-1");
    assert_eq!(ep.hits(), 1);
}

#[tokio::test]
async fn max_ttl_bounds_a_tokens_use() {
    let ep = Endpoint::start(Duration::ZERO, tokens(3600)).await;
    let mut s = settings(&ep.url);
    s.max_ttl = Some(Duration::from_secs(1));
    s.expire_early = Duration::ZERO;
    let src = source(s);
    assert_eq!(src.header().await.unwrap(), "Bearer tok-1");
    assert_eq!(src.header().await.unwrap(), "Bearer tok-1");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(src.header().await.unwrap(), "Bearer tok-2");
    assert_eq!(ep.hits(), 2);
}

#[tokio::test]
async fn a_failed_refresh_is_not_cached_and_the_next_call_retries() {
    let ep = Endpoint::start(Duration::ZERO, |n| match n {
        1 => (500, r#"{"error":"internal_failure"}"#.to_string()),
        n => tokens(3600)(n),
    })
    .await;
    let src = source(settings(&ep.url));
    let err = src.header().await.unwrap_err();
    assert_eq!(
        err.message(),
        "token endpoint answered 500 (internal_failure)"
    );
    assert_eq!(src.header().await.unwrap(), "Bearer tok-2");
    assert_eq!(ep.hits(), 2);
}

#[tokio::test]
async fn waiters_of_a_failed_refresh_share_its_error() {
    let ep = Endpoint::start(Duration::from_millis(200), |_| (500, String::new())).await;
    let src = Arc::new(source(settings(&ep.url)));
    let calls = (0..20).map(|_| {
        let src = src.clone();
        tokio::spawn(async move { src.header().await })
    });
    for r in futures_util::future::join_all(calls).await {
        assert_eq!(
            r.unwrap().unwrap_err().message(),
            "token endpoint answered 500"
        );
    }
    assert_eq!(ep.hits(), 1);
}

#[tokio::test]
async fn an_unexpired_token_serves_while_its_replacement_cannot_be_had() {
    let ep = Endpoint::start(Duration::ZERO, |n| match n {
        1 => tokens(30)(n),
        _ => (503, String::new()),
    })
    .await;
    let src = source(settings(&ep.url)); // expire_early 60: due at once, valid 30 s
    assert_eq!(src.header().await.unwrap(), "Bearer tok-1");
    assert_eq!(src.header().await.unwrap(), "Bearer tok-1");
    assert_eq!(ep.hits(), 2);
}

#[tokio::test]
async fn auth_errors_say_what_failed_without_secrets() {
    // an OAuth error answer: its code, not its description
    let ep = Endpoint::start(Duration::ZERO, |_| {
        let body = r#"{"error":"invalid_grant","error_description":"echo eyJhbGciOi"}"#;
        (400, body.to_string())
    })
    .await;
    let err = source(settings(&ep.url)).header().await.unwrap_err();
    assert_eq!(err.message(), "token endpoint answered 400 (invalid_grant)");
    let sent = ep.bodies.lock().unwrap()[0].clone();
    let jwt = sent.split("assertion=").nth(1).unwrap();
    assert!(!format!("{err} {err:?}").contains(jwt));

    // not JSON, or no access_token
    let ep = Endpoint::start(Duration::ZERO, |n| match n {
        1 => (200, "<html>".to_string()),
        _ => (200, r#"{"token_type":"Bearer"}"#.to_string()),
    })
    .await;
    let src = source(settings(&ep.url));
    for _ in 0..2 {
        let err = src.header().await.unwrap_err();
        assert_eq!(
            err.message(),
            "token answer is not JSON with an access_token"
        );
    }

    // an answer over 64 KiB
    let ep = Endpoint::start(Duration::ZERO, |_| (200, "x".repeat(70_000))).await;
    let err = source(settings(&ep.url)).header().await.unwrap_err();
    assert!(
        err.message()
            .starts_with("token answer unreadable or over 64 KiB"),
        "{err}"
    );

    // nobody listening
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url: Uri = format!("http://{}/token", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    drop(listener);
    let err = source(settings(&url)).header().await.unwrap_err();
    assert!(
        err.message().starts_with("token endpoint unreachable: "),
        "{err}"
    );
    assert!(err.message().len() <= MESSAGE_MAX);
    assert_no_key(&format!("{err} {err:?}"));
}

#[tokio::test]
async fn a_silent_endpoint_times_out() {
    let ep = Endpoint::start(Duration::from_secs(5), tokens(3600)).await;
    let mut s = settings(&ep.url);
    s.timeout = Duration::from_millis(200);
    let err = source(s).header().await.unwrap_err();
    assert_eq!(err.message(), "token endpoint did not answer within 200 ms");
}

fn account_with(change: impl FnOnce(&mut Map<String, Value>)) -> String {
    let mut v: Value = serde_json::from_str(ACCOUNT).unwrap();
    change(v.as_object_mut().unwrap());
    v.to_string()
}

#[test]
fn a_service_account_parses_and_its_debug_shows_no_key() {
    let sa = ServiceAccount::parse(ACCOUNT).unwrap();
    assert_eq!(sa.project_id(), Some("gw-test-project"));
    assert_eq!(sa.client_email(), EMAIL);
    assert_eq!(sa.token_url(), "https://oauth2.googleapis.com/token");
    let debug = format!("{sa:?}");
    assert!(debug.contains(EMAIL));
    assert_no_key(&debug);
    let no_uri = account_with(|m| {
        m.remove("token_uri");
        m.remove("project_id");
    });
    let sa = ServiceAccount::parse(&no_uri).unwrap();
    assert_eq!(sa.token_url(), DEFAULT_TOKEN_URL);
    assert_eq!(sa.project_id(), None);
}

#[test]
fn parse_errors_name_the_field_and_quote_no_value() {
    let cases: Vec<(String, &str)> = vec![
        (
            account_with(|m| drop(m.remove("client_email"))),
            "service account JSON has no `client_email`",
        ),
        (
            account_with(|m| drop(m.remove("private_key"))),
            "service account JSON has no `private_key`",
        ),
        (
            account_with(|m| drop(m.insert("type".into(), "authorized_user".into()))),
            "service account `type` is not service_account",
        ),
        (
            account_with(|m| drop(m.insert("client_email".into(), 5.into()))),
            "service account `client_email` is not a string",
        ),
        (
            account_with(|m| drop(m.insert("token_uri".into(), "not a url".into()))),
            "service account `token_uri` is not an http(s) URL",
        ),
        (
            // a key with one line dropped: PEM still, RSA no longer
            account_with(|m| {
                let pem = m["private_key"].as_str().unwrap();
                let mut lines: Vec<&str> = pem.lines().collect();
                lines.remove(5);
                let broken = lines.join("\n");
                m.insert("private_key".into(), broken.into());
            }),
            "service account `private_key` is not a PEM RSA private key",
        ),
        (
            account_with(|m| {
                let pem = m["private_key"].as_str().unwrap().replace("BEGIN", "BEGUN");
                m.insert("private_key".into(), pem.into());
            }),
            "service account `private_key` is not a PEM RSA private key",
        ),
        (
            ACCOUNT[..ACCOUNT.len() / 2].to_string(),
            "service account JSON is not valid JSON",
        ),
        ("[1]".to_string(), "service account JSON is not an object"),
    ];
    for (json, expected) in cases {
        let err = ServiceAccount::parse(&json).unwrap_err();
        assert!(
            err.starts_with(expected),
            "{err:?} should start with {expected:?}"
        );
        assert_no_key(&format!("{err} {err:?}"));
    }
    // every problem at once
    let err = ServiceAccount::parse(&account_with(|m| {
        m.remove("client_email");
        m.insert("token_uri".into(), "ftp://x".into());
    }))
    .unwrap_err();
    assert_eq!(
        err,
        "service account JSON has no `client_email`; service account `token_uri` is not an http(s) URL"
    );
}
