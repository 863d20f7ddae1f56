//! Upstream error bodies go to the client with their status and error type, but
//! some quote the gateway's own account: OpenAI's 401 names the (masked) api key,
//! its 429 the organisation. What belongs to the gateway's credentials and
//! account is replaced by `[redacted]` (`server.redact_upstream_errors`).

use std::borrow::Cow;
use std::sync::LazyLock;

pub const REDACTED: &[u8] = b"[redacted]";

/// Secret-looking ids of an LLM account, whole or masked: api keys (`sk-...`,
/// `sk-proj-****abcd`, `sk-ant-...`), organisation, project and user ids (with a
/// digit, so words like `user-provided` stay).
static ACCOUNT_IDS: LazyLock<Option<regex::bytes::Regex>> = LazyLock::new(|| {
    regex::bytes::Regex::new(
        r"(?-u)\b(?:(?:sk|rk|pk|sess)-[A-Za-z0-9_*\-]{6,}|(?:org|proj|user|acct)[-_][A-Za-z0-9]*[0-9][A-Za-z0-9]*)",
    )
    .ok()
});

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
                .filter(|t| !t.is_empty())
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let plain = r#"{"error":{"message":"The model `gpt-9` does not exist (user-provided value)","type":"invalid_request_error"}}"#;
        assert!(matches!(r.redact(plain.as_bytes()), Cow::Borrowed(_)));
    }
}
