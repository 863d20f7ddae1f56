//! Sends encoded OTLP export requests to the collector: gRPC (HTTP/2, `h2c` or TLS)
//! to the `Export` methods, or HTTP/protobuf to `/v1/traces` and `/v1/logs`.

use crate::config::validate::OtlpRt;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use shared::config::OtlpProtocol;
use std::time::Duration;

#[derive(Clone, Copy)]
pub enum Signal {
    Traces,
    Logs,
}

pub struct Sender {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    traces: Uri,
    logs: Uri,
    headers: HeaderMap,
    grpc: bool,
    timeout: Duration,
}

impl Sender {
    pub fn new(cfg: &OtlpRt) -> Result<Sender, String> {
        let grpc = cfg.protocol == OtlpProtocol::Grpc;
        let (traces, logs) = match grpc {
            true => (
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            ),
            false => ("/v1/traces", "/v1/logs"),
        };
        let uri = |path: &str| {
            format!("{}{path}", cfg.endpoint)
                .parse::<Uri>()
                .map_err(|e| format!("telemetry.otlp.endpoint: {e}"))
        };
        let mut headers = HeaderMap::new();
        for (k, v) in &cfg.headers {
            // validated with the config
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                headers.insert(k, v);
            }
        }
        let content_type = if grpc {
            "application/grpc"
        } else {
            "application/x-protobuf"
        };
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(content_type),
        );
        if grpc {
            headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
        }
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        http.set_connect_timeout(Some(cfg.timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http();
        let https = match grpc {
            true => https.enable_http2().wrap_connector(http),
            false => https.enable_http1().wrap_connector(http),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .http2_only(grpc)
            .build(https);
        Ok(Sender {
            client,
            traces: uri(traces)?,
            logs: uri(logs)?,
            headers,
            grpc,
            timeout: cfg.timeout,
        })
    }

    /// Sends one export request; Err says why the collector did not take it.
    pub async fn send(&self, signal: Signal, body: Bytes) -> Result<(), String> {
        let uri = match signal {
            Signal::Traces => self.traces.clone(),
            Signal::Logs => self.logs.clone(),
        };
        let mut req = Request::post(uri)
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        *req.headers_mut() = self.headers.clone();
        let call = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| crate::upstream::error_chain(&e))?;
            let status = resp.status();
            let grpc_status = |h: &HeaderMap| {
                h.get("grpc-status")
                    .map(|v| (v.clone(), h.get("grpc-message").cloned()))
            };
            let in_headers = grpc_status(resp.headers());
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            if !status.is_success() {
                return Err(format!("the collector answered HTTP {status}"));
            }
            if !self.grpc {
                return Ok(());
            }
            let trailers = body.trailers().and_then(grpc_status);
            match in_headers.or(trailers) {
                Some((code, _)) if code == "0" => Ok(()),
                Some((code, message)) => Err(format!(
                    "the collector answered gRPC status {}: {}",
                    String::from_utf8_lossy(code.as_bytes()),
                    message
                        .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
                        .unwrap_or_default()
                )),
                None => Err("the collector's answer has no grpc-status".to_string()),
            }
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no answer from the collector within {} ms",
                self.timeout.as_millis()
            )),
        }
    }
}
