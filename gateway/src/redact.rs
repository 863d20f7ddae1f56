//! Upstream error bodies go to the client with their status and error type, but
//! some quote the gateway's own account: OpenAI's 401 names the (masked) api key,
//! its 429 the organisation. What belongs to the gateway's credentials and
//! account is replaced by `[redacted]` (`server.redact_upstream_errors`); to do
//! that an error body is read whole, at most [`MAX_ERROR_BODY`] bytes within a
//! time limit.

use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue};
use http_body::Body;
use http_body_util::BodyExt;
use std::borrow::Cow;
use std::sync::LazyLock;
use std::time::Duration;

pub const REDACTED: &[u8] = b"[redacted]";

/// Secret-looking ids of an LLM account, whole or masked: api keys (`sk-...`,
/// `sk-proj-****abcd`, `sk-ant-...`), organisation, project and user ids (with a
/// digit, so words like `user-provided` stay), Google OAuth access tokens
/// (`ya29.` and dot-separated runs: a Vertex AI provider's token changes every
/// hour, so it is matched by its form, not by its value).
static ACCOUNT_IDS: LazyLock<Option<regex::bytes::Regex>> = LazyLock::new(|| {
    regex::bytes::Regex::new(
        r"(?-u)\b(?:(?:sk|rk|pk|sess)-[A-Za-z0-9_*\-]{6,}|(?:org|proj|user|acct)[-_][A-Za-z0-9]*[0-9][A-Za-z0-9]*|ya29\.[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*)",
    )
    .ok()
});

/// Shorter api tokens are placeholders, not redacted.
const MIN_SECRET_LEN: usize = 8;

/// One provider's redaction: the shared patterns plus its own api tokens.
#[derive(Default)]
pub struct Redactor {
    tokens: Vec<Box<[u8]>>,
}

impl Redactor {
    pub fn new<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Redactor {
        Redactor {
            tokens: tokens
                .into_iter()
                // placeholders some servers take (`-`, `none`, `EMPTY`) are no
                // secret, and replacing them would mangle the body
                .filter(|t| t.len() >= MIN_SECRET_LEN)
                .map(|t| Box::from(t.as_bytes()))
                .collect(),
        }
    }

    /// `body` with the account's secrets and ids replaced; the same bytes when
    /// there are none.
    pub fn redact<'a>(&self, body: &'a [u8]) -> Cow<'a, [u8]> {
        let mut out = Cow::Borrowed(body);
        for t in &self.tokens {
            if memchr::memmem::find(&out, t).is_some() {
                let replaced = replace_all(&out, t);
                out = Cow::Owned(replaced);
            }
        }
        if let Some(re) = ACCOUNT_IDS.as_ref() {
            if re.is_match(&out) {
                out = Cow::Owned(re.replace_all(&out, REDACTED).into_owned());
            }
        }
        out
    }
}

fn replace_all(hay: &[u8], needle: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut rest = hay;
    while let Some(i) = memchr::memmem::find(rest, needle) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(REDACTED);
        rest = &rest[i + needle.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// Error bodies larger than this are not passed on (real ones are a few hundred
/// bytes); the client gets the gateway's own error with the upstream's status.
pub const MAX_ERROR_BODY: usize = 64 * 1024;

/// The body to send instead of `body`, with `head` fixed to match it.
pub async fn redacted<B>(
    head: &mut http::response::Parts,
    body: &mut B,
    redactor: &Redactor,
    wait: Duration,
) -> Bytes
where
    B: Body<Data = Bytes> + Unpin,
{
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

async fn read<B: Body<Data = Bytes> + Unpin>(body: &mut B) -> Result<Bytes, &'static str> {
    let mut all = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| "cut off")?.into_data() else {
            continue;
        };
        if all.len() + data.len() > MAX_ERROR_BODY {
            return Err("too large");
        }
        all.extend_from_slice(&data);
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
    use http_body_util::Full;

    fn redact(r: &Redactor, s: &str) -> String {
        String::from_utf8(r.redact(s.as_bytes()).into_owned()).unwrap()
    }

    #[test]
    fn account_details_are_redacted_and_the_rest_kept() {
        let r = Redactor::new(["upstream-token-1234567"]);
        let openai_401 = r#"{"error":{"message":"Incorrect API key provided: sk-proj-********************abcd. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        let out = redact(&r, openai_401);
        assert!(
            !out.contains("abcd") && out.contains("Incorrect API key provided: [redacted]."),
            "{out}"
        );
        assert!(out.contains(r#""code":"invalid_api_key""#), "{out}");
        let openai_429 = r#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-AbCdEf123456 on tokens per min (TPM)","type":"tokens","code":"rate_limit_exceeded"}}"#;
        let out = redact(&r, openai_429);
        assert!(
            out.contains("in organization [redacted] on tokens"),
            "{out}"
        );
        let echo = r#"{"detail":"bad token upstream-token-1234567"}"#;
        assert_eq!(redact(&r, echo), r#"{"detail":"bad token [redacted]"}"#);
        let google_401 = r#"{"error":{"code":401,"message":"Invalid credentials: Bearer ya29.a0AfB_byC-x1.Yz9. Retry.","status":"UNAUTHENTICATED"}}"#;
        let out = redact(&r, google_401);
        assert!(
            out.contains("Invalid credentials: Bearer [redacted]. Retry."),
            "{out}"
        );
        let plain = r#"{"error":{"message":"The model `gpt-9` does not exist (user-provided value)","type":"invalid_request_error"}}"#;
        assert!(matches!(r.redact(plain.as_bytes()), Cow::Borrowed(_)));
    }

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
        let mut body = Full::new(Bytes::from_static(b"{\"error\":\"bad key tok-1234567\"}"));
        let out = redacted(&mut head, &mut body, &r, wait).await;
        assert_eq!(&out[..], b"{\"error\":\"bad key [redacted]\"}");
        assert_eq!(
            head.headers["content-length"],
            out.len().to_string().as_str()
        );

        let mut head = parts(500, &[]);
        let big = Bytes::from(vec![b'x'; MAX_ERROR_BODY + 1]);
        let mut body = Full::new(big);
        let out = redacted(&mut head, &mut body, &r, wait).await;
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"]["code"], "upstream_error");
        assert!(v["error"]["message"].as_str().unwrap().contains("500"));

        let mut head = parts(429, &[("content-encoding", "gzip")]);
        let mut body = Full::new(Bytes::from_static(b"\x1f\x8b"));
        let out = redacted(&mut head, &mut body, &r, wait).await;
        assert!(head.headers.get("content-encoding").is_none());
        assert!(std::str::from_utf8(&out).unwrap().contains("compressed"));
    }
}
