//! An upstream's error answer on its way to the client: read whole (at most
//! [`MAX_ERROR_BODY`] bytes, within a time limit) so what belongs to the
//! gateway's account can be redacted; its status and error type stay.

use crate::providers::redact::Redactor;
use crate::stream::UpstreamBody;
use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue};
use std::time::Duration;

/// Error bodies larger than this are not passed on (real ones are a few hundred
/// bytes); the client gets the gateway's own error with the upstream's status.
pub const MAX_ERROR_BODY: usize = 64 * 1024;

/// The body to send instead of `body`, with `head` fixed to match it.
pub async fn redacted(
    head: &mut http::response::Parts,
    body: &mut UpstreamBody,
    redactor: &Redactor,
    wait: Duration,
) -> Bytes {
    // a compressed body cannot be searched: replaced like an unreadable one
    let encoded = head
        .headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    let read = match encoded {
        true => Err("compressed"),
        false => tokio::time::timeout(wait, read(body))
            .await
            .unwrap_or(Err("not received in time")),
    };
    let text = match read {
        Ok(b) => match redactor.redact(&b) {
            std::borrow::Cow::Borrowed(_) => b,
            std::borrow::Cow::Owned(v) => Bytes::from(v),
        },
        Err(why) => {
            head.headers.remove(header::CONTENT_ENCODING);
            head.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            replacement(head.status, why)
        }
    };
    head.headers.remove(header::TRANSFER_ENCODING);
    head.headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(text.len()));
    text
}

async fn read(body: &mut UpstreamBody) -> Result<Bytes, &'static str> {
    let mut all = BytesMut::new();
    while let Some(frame) = body.next_data().await {
        let b = frame.map_err(|_| "cut off")?;
        if all.len() + b.len() > MAX_ERROR_BODY {
            return Err("too large");
        }
        all.extend_from_slice(&b);
    }
    Ok(all.freeze())
}

/// The gateway's error in place of an upstream error body it could not check.
fn replacement(status: http::StatusCode, why: &str) -> Bytes {
    let e = shared::error::ErrorBody::new(
        format!(
            "the upstream answered {} with an error body that was not passed on ({why})",
            status.as_u16()
        ),
        "upstream_error",
        "upstream_error",
    );
    serde_json::to_vec(&e).map(Bytes::from).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    fn parts(status: u16, headers: &[(&str, &str)]) -> http::response::Parts {
        let mut b = http::Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[tokio::test]
    async fn bodies_are_redacted_and_bounded() {
        let r = Redactor::new(["tok-1234567"]);
        let wait = Duration::from_secs(1);
        let mut head = parts(401, &[("content-length", "40")]);
        let mut body = UpstreamBody::Frames(VecDeque::from([
            Bytes::from_static(b"{\"error\":\"bad key tok-"),
            Bytes::from_static(b"1234567\"}"),
        ]));
        let out = redacted(&mut head, &mut body, &r, wait).await;
        assert_eq!(&out[..], b"{\"error\":\"bad key [redacted]\"}");
        assert_eq!(
            head.headers["content-length"],
            out.len().to_string().as_str()
        );

        let mut head = parts(500, &[]);
        let big = Bytes::from(vec![b'x'; MAX_ERROR_BODY + 1]);
        let mut body = UpstreamBody::Frames(VecDeque::from([big]));
        let out = redacted(&mut head, &mut body, &r, wait).await;
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"]["code"], "upstream_error");
        assert!(v["error"]["message"].as_str().unwrap().contains("500"));

        let mut head = parts(429, &[("content-encoding", "gzip")]);
        let mut body = UpstreamBody::Frames(VecDeque::from([Bytes::from_static(b"\x1f\x8b")]));
        let out = redacted(&mut head, &mut body, &r, wait).await;
        assert!(head.headers.get("content-encoding").is_none());
        assert!(std::str::from_utf8(&out).unwrap().contains("compressed"));
    }
}
