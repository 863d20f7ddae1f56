//! Listener protocols: HTTPS with `server.tls` (rustls, certificate from rcgen),
//! HTTP/2 over TLS via ALPN, and h2c (HTTP/2 prior knowledge over plain TCP).

use gateway_tests::client::{chat_body, chat_stream_body, TestClient};
use gateway_tests::config::single_provider;
use gateway_tests::harness::Gateway;
use gateway_tests::mock_upstream::{chat_usage, MockUpstream};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;

struct TlsSetup {
    _dir: tempfile::TempDir,
    cert_path: String,
    key_path: String,
    cert_der: rustls::pki_types::CertificateDer<'static>,
}

fn make_cert() -> TlsSetup {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("tls.crt");
    let key_path = dir.path().join("tls.key");
    std::fs::write(&cert_path, ck.cert.pem()).unwrap();
    std::fs::write(&key_path, ck.key_pair.serialize_pem()).unwrap();
    TlsSetup {
        cert_der: ck.cert.der().clone(),
        cert_path: cert_path.display().to_string(),
        key_path: key_path.display().to_string(),
        _dir: dir,
    }
}

fn tls_config() -> String {
    single_provider("{{mock}}")
        .with_server(|s| s.tls("{{cert}}", "{{key}}"))
        .yaml()
}

fn https_client(tls: &TlsSetup, h2: bool) -> TestClient<HttpsConnector<HttpConnector>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(tls.cert_der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(cfg)
        .https_only();
    let connector = if h2 {
        builder.enable_http2().build()
    } else {
        builder.enable_http1().build()
    };
    let mut cb = Client::builder(TokioExecutor::new());
    if h2 {
        cb.http2_only(true);
    }
    TestClient::from_client(cb.build(connector))
}

async fn start_tls(mock: &MockUpstream, tls: &TlsSetup) -> Gateway {
    let config = tls_config();
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&config).unwrap();
    assert_eq!(
        v["server"]["tls"]["cert"].as_str(),
        Some("{{cert}}"),
        "{config}"
    );
    Gateway::builder(&config)
        .var("mock", mock.base_url())
        .var("cert", &tls.cert_path)
        .var("key", &tls.key_path)
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_https() {
    let mock = MockUpstream::start_default();
    let tls = make_cert();
    let gw = start_tls(&mock, &tls).await;
    let c = https_client(&tls, false);
    let body = chat_body("gpt-4o", "over TLS");
    let r = c
        .post_json(&format!("{}/v1/chat/completions", gw.https_url()), &body)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["usage"]["prompt_tokens"],
        chat_usage(&body, 8).prompt_tokens
    );
    let s = c
        .post_sse(
            &format!("{}/v1/chat/completions", gw.https_url()),
            &chat_stream_body("gpt-4o", "stream over TLS"),
            &[],
        )
        .await;
    assert!(s.done, "{}", s.raw);
    assert_eq!(s.events.len(), 10);

    // plain HTTP on the TLS port does not get an answer
    let plain = TestClient::new()
        .try_request(
            http::Method::GET,
            &format!("{}/v1/models", gw.url()),
            &[],
            bytes::Bytes::new(),
        )
        .await;
    assert!(
        plain.as_ref().map_or(true, |r| r.status != 200),
        "plain HTTP answered 200 on the TLS listener"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_negotiates_h2_via_alpn() {
    let mock = MockUpstream::start_default();
    let tls = make_cert();
    let gw = start_tls(&mock, &tls).await;
    let c = https_client(&tls, true);
    let r = c
        .post_json(
            &format!("{}/v1/chat/completions", gw.https_url()),
            &chat_body("gpt-4o", "h2 over TLS"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.version, http::Version::HTTP_2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_prior_knowledge() {
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(&single_provider(&mock.base_url()).yaml()).await;
    let c = TestClient::h2c();
    let body = chat_body("gpt-4o", "over h2c");
    let r = c
        .post_json(&format!("{}/v1/chat/completions", gw.url()), &body)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.version, http::Version::HTTP_2);
    assert_eq!(
        r.json()["usage"]["total_tokens"],
        chat_usage(&body, 8).total_tokens
    );
    assert!(r.header("x-request-id").is_some());

    let s = c
        .post_sse(
            &format!("{}/v1/chat/completions", gw.url()),
            &chat_stream_body("gpt-4o", "stream over h2c"),
            &[],
        )
        .await;
    assert_eq!(s.status, 200);
    assert!(s.done && s.clean_end, "{}", s.raw);
    assert_eq!(s.events.len(), 10);
    assert_eq!(s.content(), "word ".repeat(8));

    // many concurrent streams on one h2 connection
    let mut tasks = Vec::new();
    for i in 0..10 {
        let c = c.clone();
        let url = format!("{}/v1/chat/completions", gw.url());
        tasks.push(tokio::spawn(async move {
            c.post_json(&url, &chat_body("gpt-4o", &format!("c{i}")))
                .await
                .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
}
