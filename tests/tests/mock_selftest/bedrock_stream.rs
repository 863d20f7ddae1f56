//! The mock's ConverseStream frames read by the real decoder
//! (`aws-smithy-eventstream`): whole, split at every offset, sent in tiny writes,
//! cut, and ending in an exception.

use crate::bedrock::{converse_url, tools_body, Signer};
use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use bytes::{Bytes, BytesMut};
use gateway_tests::mock_upstream::{
    converse_body, MockUpstream, BEDROCK_LATENCY_MS, MOCK_TOOL_INPUT,
};
use http_body_util::BodyExt;
use serde_json::{json, Value};

const MODEL: &str = "anthropic.claude-3-5-sonnet-20240620-v1%3A0";

/// One eventstream message as the real decoder read it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Frame {
    pub headers: Vec<(String, String)>,
    pub payload: Value,
}

impl Frame {
    pub(crate) fn header(&self, name: &str) -> &str {
        let found = self.headers.iter().find(|(n, _)| n == name);
        found.map_or("", |(_, v)| v.as_str())
    }
}

/// Every message of `pieces`, fed to `aws-smithy-eventstream`'s decoder one piece
/// at a time; panics on a CRC or framing error, or bytes left over.
pub(crate) fn decode(pieces: &[&[u8]]) -> Vec<Frame> {
    let mut decoder = MessageFrameDecoder::new();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        while let DecodedFrame::Complete(m) = decoder.decode_frame(&mut buf).unwrap() {
            let headers = m
                .headers()
                .iter()
                .map(|h| {
                    let v = h.value().as_string().unwrap().as_str().to_string();
                    (h.name().as_str().to_string(), v)
                })
                .collect();
            let payload = serde_json::from_slice(m.payload()).unwrap();
            out.push(Frame { headers, payload });
        }
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    out
}

/// The body of a signed ConverseStream request, as the pieces it arrived in.
pub(crate) async fn stream_pieces(mock: &MockUpstream, body: &Value) -> (u16, Vec<Bytes>, bool) {
    let url = converse_url(mock, MODEL, "converse-stream");
    let raw = body.to_string();
    let mut req = http::Request::post(&url);
    for (k, v) in Signer::default().headers(&url, raw.as_bytes()) {
        req = req.header(k, v);
    }
    let req = req
        .body(http_body_util::Full::new(Bytes::from(raw)))
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let resp = client.request(req).await.unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "application/vnd.amazon.eventstream"
    );
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut pieces = Vec::new();
    let mut clean = true;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => pieces.extend(f.into_data().ok()),
            Err(_) => {
                clean = false;
                break;
            }
        }
    }
    (status, pieces, clean)
}

pub(crate) fn event_types(frames: &[Frame]) -> Vec<&str> {
    frames.iter().map(|f| f.header(":event-type")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_frames_decode_with_the_real_decoder_whole_and_split_anywhere() {
    let mock = MockUpstream::start_default();
    let body = converse_body("12345678");
    let (status, pieces, clean) = stream_pieces(&mock, &body).await;
    assert_eq!((status, clean), (200, true));
    let bytes = pieces.concat();
    let frames = decode(&[&bytes]);
    let mut expected = vec!["messageStart"];
    expected.extend(["contentBlockDelta"; 8]);
    expected.extend(["contentBlockStop", "messageStop", "metadata"]);
    assert_eq!(event_types(&frames), expected);
    for f in &frames {
        assert_eq!(f.header(":message-type"), "event");
        assert_eq!(f.header(":content-type"), "application/json");
    }
    assert_eq!(frames[0].payload["role"], "assistant");
    assert_eq!(frames[1].payload["delta"]["text"], "word ");
    assert_eq!(frames[1].payload["contentBlockIndex"], 0);
    assert_eq!(frames[10].payload["stopReason"], "end_turn");
    assert_eq!(
        frames[11].payload["usage"],
        json!({"inputTokens": 2, "outputTokens": 8, "totalTokens": 10})
    );
    assert_eq!(
        frames[11].payload["metrics"]["latencyMs"],
        BEDROCK_LATENCY_MS
    );
    // cut in two at every offset, it decodes the same
    for at in 0..=bytes.len() {
        assert_eq!(
            decode(&[&bytes[..at], &bytes[at..]]),
            frames,
            "split at {at}"
        );
    }
    // a tool call
    let (_, pieces, _) = stream_pieces(&mock, &tools_body()).await;
    let frames = decode(&[&pieces.concat()]);
    assert_eq!(
        event_types(&frames),
        [
            "messageStart",
            "contentBlockStart",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ]
    );
    let start = &frames[1].payload["start"]["toolUse"];
    assert_eq!(start["name"], "get_weather");
    assert_eq!(start["toolUseId"], "tooluse_mock2");
    let input: String = frames[2..5]
        .iter()
        .map(|f| {
            f.payload["delta"]["toolUse"]["input"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(input, MOCK_TOOL_INPUT);
    assert_eq!(frames[6].payload["stopReason"], "tool_use");
    assert_eq!(frames[7].payload["usage"]["outputTokens"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_writes_cut_and_exception_switches() {
    let mock = MockUpstream::start_default();
    let body = converse_body("12345678");
    let (_, whole, _) = stream_pieces(&mock, &body).await;
    let whole = whole.concat();
    let frames = decode(&[&whole]);

    mock.bedrock_tiny_writes(true);
    let (_, pieces, clean) = stream_pieces(&mock, &body).await;
    assert!(clean);
    assert!(
        pieces.iter().all(|p| p.len() <= 7),
        "pieces of 1 to 7 bytes"
    );
    assert!(pieces.len() >= whole.len() / 7, "{} pieces", pieces.len());
    let refs: Vec<&[u8]> = pieces.iter().map(|p| p.as_ref()).collect();
    assert_eq!(decode(&refs), frames);
    mock.bedrock_tiny_writes(false);

    mock.bedrock_exception_after(3);
    let (status, pieces, clean) = stream_pieces(&mock, &body).await;
    assert_eq!((status, clean), (200, true));
    let got = decode(&[&pieces.concat()]);
    assert_eq!(got.len(), 4);
    assert_eq!(got[..3], frames[..3]);
    assert_eq!(got[3].header(":message-type"), "exception");
    assert_eq!(
        got[3].header(":exception-type"),
        "modelStreamErrorException"
    );
    assert_eq!(got[3].payload["originalStatusCode"], 500);
    mock.set_normal();

    mock.cut_stream_after(2);
    let (_, pieces, clean) = stream_pieces(&mock, &body).await;
    assert!(!clean, "the body ends in an error");
    assert_eq!(decode(&[&pieces.concat()]), frames[..2]);
}
