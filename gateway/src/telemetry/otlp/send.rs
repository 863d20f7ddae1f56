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

    /// Sends one export request. Ok: how many of its items the collector
    /// rejected (its `partial_success`); Err says why it took none.
    pub async fn send(&self, signal: Signal, body: Bytes) -> Result<u64, SendError> {
        let uri = match signal {
            Signal::Traces => self.traces.clone(),
            Signal::Logs => self.logs.clone(),
        };
        let mut req = Request::post(uri)
            .body(Full::new(body))
            .map_err(|e| SendError::fatal(e.to_string()))?;
        *req.headers_mut() = self.headers.clone();
        let call = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| SendError::retry(crate::error::error_chain(&e)))?;
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
                .map_err(|e| SendError::retry(e.to_string()))?;
            if !status.is_success() {
                // OTLP/HTTP: these may succeed later, the others will not
                let retryable = matches!(status.as_u16(), 429 | 502 | 503 | 504);
                let message = format!("the collector answered HTTP {status}");
                return Err(SendError { message, retryable });
            }
            let trailers = body.trailers().and_then(grpc_status);
            let bytes = body.to_bytes();
            if !self.grpc {
                return Ok(rejected(&bytes));
            }
            match in_headers.or(trailers) {
                Some((code, _)) if code == "0" => Ok(rejected(bytes.get(5..).unwrap_or(&[]))),
                Some((code, message)) => Err(SendError {
                    // OTLP/gRPC's retryable codes: CANCELLED, DEADLINE_EXCEEDED,
                    // RESOURCE_EXHAUSTED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS
                    retryable: matches!(
                        code.as_bytes(),
                        b"1" | b"4" | b"8" | b"10" | b"11" | b"14" | b"15"
                    ),
                    message: format!(
                        "the collector answered gRPC status {}: {}",
                        String::from_utf8_lossy(code.as_bytes()),
                        message
                            .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
                            .unwrap_or_default()
                    ),
                }),
                None => Err(SendError::fatal(
                    "the collector's answer has no grpc-status".to_string(),
                )),
            }
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(SendError::retry(format!(
                "no answer from the collector within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }
}

/// Why an export request failed, and whether sending it again may work (the
/// collector is unreachable, restarting or overloaded) or not (it refused it).
#[derive(Debug)]
pub struct SendError {
    pub message: String,
    pub retryable: bool,
}

impl SendError {
    fn retry(message: String) -> SendError {
        SendError {
            message,
            retryable: true,
        }
    }

    fn fatal(message: String) -> SendError {
        SendError {
            message,
            retryable: false,
        }
    }
}

/// `partial_success.rejected_spans` / `rejected_log_records` (field 1 of field 1)
/// of an export response; 0 when absent or unreadable.
fn rejected(mut body: &[u8]) -> u64 {
    use prost::encoding::{decode_key, decode_varint, WireType};
    /// Skips one field's value; false when the body is cut.
    fn skip(buf: &mut &[u8], wire: WireType) -> bool {
        let n = match wire {
            WireType::Varint => return decode_varint(buf).is_ok(),
            WireType::SixtyFourBit => 8,
            WireType::ThirtyTwoBit => 4,
            WireType::LengthDelimited => match decode_varint(buf) {
                Ok(n) => usize::try_from(n).unwrap_or(usize::MAX),
                Err(_) => return false,
            },
            _ => return false,
        };
        match buf.get(n..) {
            Some(rest) => {
                *buf = rest;
                true
            }
            None => false,
        }
    }
    while !body.is_empty() {
        let Ok((tag, wire)) = decode_key(&mut body) else {
            return 0;
        };
        if tag == 1 && wire == WireType::LengthDelimited {
            let Ok(len) = decode_varint(&mut body) else {
                return 0;
            };
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            let Some(mut partial) = body.get(..len) else {
                return 0;
            };
            while !partial.is_empty() {
                let Ok((tag, wire)) = decode_key(&mut partial) else {
                    return 0;
                };
                if tag == 1 && wire == WireType::Varint {
                    return decode_varint(&mut partial).unwrap_or(0);
                }
                if !skip(&mut partial, wire) {
                    return 0;
                }
            }
            return 0;
        }
        if !skip(&mut body, wire) {
            return 0;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::otlp::wire::Pb;

    #[test]
    fn reads_the_rejected_count() {
        let mut pb = Pb::default();
        pb.msg(1, |pb| {
            pb.string(2, "too big");
            pb.varint(1, 7);
        });
        assert_eq!(rejected(&pb.buf), 7);
        assert_eq!(rejected(&[]), 0);
        assert_eq!(rejected(&[0x0a, 0x05, 0x08]), 0, "a cut body reads as 0");
    }
}
