//! The mock Bedrock's SigV4 verifier: it recomputes the signature of each request
//! from what arrived and compares it with the one in `Authorization`. Written here
//! with `hmac` and `sha2`, apart from the gateway's signer (the `aws-sigv4` crate),
//! so that each checks the other.
//!
//! The canonical request is AWS's for services other than S3:
//! 1. the method;
//! 2. the URI path as received (already percent-encoded once), normalised as RFC
//!    3986 has it (empty and `.` segments dropped, a `..` dropping the one before,
//!    an empty path `/`), then each byte but the unreserved ones (`A-Z a-z 0-9 - _
//!    . ~`) and `/` encoded again, so a `%3A` in the path becomes `%253A`;
//! 3. the query: pairs decoded, encoded again the same way, sorted by name then
//!    value, joined `name=value` with `&`;
//! 4. one `name:value\n` line per signed header (the `SignedHeaders` of
//!    `Authorization`, each present in the request), values trimmed of spaces and
//!    runs of spaces folded, several values joined with `,`; then an empty line;
//! 5. the signed header names joined with `;`;
//! 6. the hex SHA-256 of the body as received.
//!
//! The string to sign is `AWS4-HMAC-SHA256\n<x-amz-date>\n<date>/<region>/bedrock/
//! aws4_request\n<hex SHA-256 of the canonical request>`; the key is derived
//! `HMAC("AWS4" + secret, date)`, then the region, `bedrock` and `aws4_request`.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The algorithm of every `Authorization` the verifier accepts.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The signing name of Bedrock (the runtime API included).
pub const SERVICE: &str = "bedrock";
/// How far `x-amz-date` may be from the mock's clock.
const MAX_SKEW_SECS: i64 = 300;

/// The credentials and region the mock verifies against.
#[derive(Debug, Clone)]
pub struct SigV4Config {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// When set, `x-amz-security-token` must carry it (and be signed); when not,
    /// the header must be absent.
    pub session_token: Option<String>,
    pub region: String,
}

/// Why a request is refused: the `x-amzn-ErrorType` and the message of the 403.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub error_type: &'static str,
    pub message: String,
}

/// The message of a signature that does not match, as AWS words it.
pub const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the \
    signature you provided. Check your AWS Secret Access Key and signing method. Consult the \
    service documentation for details.";

fn refuse(error_type: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        error_type,
        message: message.into(),
    }
}

fn mismatch() -> Refusal {
    refuse("InvalidSignatureException", SIGNATURE_MISMATCH)
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 Credential=.., SignedHeaders=..,
/// Signature=..` header.
#[derive(Debug)]
struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    terminator: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Option<Authorization<'_>> {
    let rest = value.strip_prefix(ALGORITHM)?.strip_prefix(' ')?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for item in rest.split(',') {
        let (k, v) = item.trim().split_once('=')?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => return None,
        }
    }
    let mut scope = credential?.split('/');
    let auth = Authorization {
        access_key_id: scope.next()?,
        date: scope.next()?,
        region: scope.next()?,
        service: scope.next()?,
        terminator: scope.next()?,
        signed_headers: signed?.split(';').collect(),
        signature: signature?,
    };
    scope.next().is_none().then_some(auth)
}

/// `x-amz-date` (`YYYYMMDDTHHMMSSZ`) as a time.
fn parse_amz_date(s: &str) -> Option<jiff::Timestamp> {
    let dt = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", s).ok()?;
    Some(dt.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp())
}

/// The access key id an `Authorization` header names, if it parses.
pub fn access_key_id(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    parse_authorization(value).map(|a| a.access_key_id)
}

/// Checks the signature of a request (method, path and query as received, its
/// headers and body) at time `now`.
pub fn verify(
    cfg: &SigV4Config,
    parts: &http::request::Parts,
    body: &[u8],
    now: jiff::Timestamp,
) -> Result<(), Refusal> {
    let Some(value) = parts.headers.get("authorization") else {
        return Err(refuse(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    let auth = value
        .to_str()
        .ok()
        .and_then(parse_authorization)
        .ok_or_else(|| {
            refuse(
                "IncompleteSignatureException",
                "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' \
                 parameters after the AWS4-HMAC-SHA256 algorithm.",
            )
        })?;
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let token = header("x-amz-security-token");
    if auth.access_key_id != cfg.access_key_id || token != cfg.session_token.as_deref() {
        return Err(refuse(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    let signed = |name: &str| auth.signed_headers.contains(&name);
    if !signed("host")
        || !signed("x-amz-date")
        || (token.is_some() && !signed("x-amz-security-token"))
    {
        return Err(refuse(
            "InvalidSignatureException",
            "The host, x-amz-date and x-amz-security-token headers must be signed.",
        ));
    }
    let amz_date = header("x-amz-date").unwrap_or("");
    let Some(when) = parse_amz_date(amz_date) else {
        return Err(refuse(
            "IncompleteSignatureException",
            "x-amz-date is not a date",
        ));
    };
    if (now.as_second() - when.as_second()).abs() > MAX_SKEW_SECS {
        return Err(refuse(
            "InvalidSignatureException",
            format!("Signature expired: {amz_date} is more than 5 minutes from the mock's clock"),
        ));
    }
    if auth.service != SERVICE || auth.terminator != "aws4_request" {
        return Err(refuse(
            "InvalidSignatureException",
            "Credential should be scoped to correct service: 'bedrock'.",
        ));
    }
    if auth.region != cfg.region {
        return Err(refuse(
            "InvalidSignatureException",
            "Credential should be scoped to a valid region.",
        ));
    }
    if !amz_date.starts_with(auth.date) || auth.date.len() != 8 {
        return Err(refuse(
            "InvalidSignatureException",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP.",
        ));
    }
    let mut lines = Vec::with_capacity(auth.signed_headers.len());
    for name in &auth.signed_headers {
        let values: Option<Vec<String>> = parts
            .headers
            .get_all(*name)
            .iter()
            .map(|v| v.to_str().ok().map(trim_all))
            .collect();
        match values {
            Some(v) if !v.is_empty() => lines.push((name.to_string(), v.join(","))),
            _ => return Err(mismatch()),
        }
    }
    let canonical = canonical_request(&CanonicalInput {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &lines,
        payload_hash: &hex(&Sha256::digest(body)),
    });
    let scope = Scope {
        date: auth.date,
        region: auth.region,
        service: SERVICE,
    };
    let expected = signature(&cfg.secret_access_key, &scope, amz_date, &canonical);
    if expected == auth.signature {
        Ok(())
    } else {
        Err(mismatch())
    }
}

/// What the canonical request is made of (headers: the signed ones, lowercase
/// names in the order of `SignedHeaders`, values already trimmed).
pub struct CanonicalInput<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(String, String)],
    pub payload_hash: &'a str,
}

/// The credential scope but for its terminator.
pub struct Scope<'a> {
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

/// Each byte but the unreserved ones (and `/` when `keep_slash`) as `%XX`.
fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (uri_encode(&k, false), uri_encode(&v, false)))
        .collect();
    pairs.sort();
    let pairs: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join("&")
}

/// Spaces trimmed at both ends and runs of spaces folded into one.
fn trim_all(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for word in v.split(' ').filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// The path without empty and dot segments (RFC 3986, 5.2.4), absolute, a final
/// `/` kept.
fn normalize_path(path: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            s => kept.push(s),
        }
    }
    let mut out = format!("/{}", kept.join("/"));
    let trailing = ["/", "/.", "/.."].iter().any(|end| path.ends_with(end));
    if trailing && !out.ends_with('/') {
        out.push('/');
    }
    out
}

/// The canonical request (see the module doc).
pub fn canonical_request(c: &CanonicalInput) -> String {
    let path = uri_encode(&normalize_path(c.path), true);
    let query = canonical_query(c.query);
    let mut out = format!("{}\n{path}\n{query}\n", c.method);
    for (name, value) in c.headers {
        out.push_str(&format!("{name}:{value}\n"));
    }
    let names: Vec<&str> = c.headers.iter().map(|(n, _)| n.as_str()).collect();
    out.push_str(&format!("\n{}\n{}", names.join(";"), c.payload_hash));
    out
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return Vec::new(); // (HMAC takes keys of any length)
    };
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hex signature of `canonical` with `secret` in `scope` at `amz_date`.
pub fn signature(secret: &str, scope: &Scope, amz_date: &str, canonical: &str) -> String {
    let credential_scope = format!(
        "{}/{}/{}/aws4_request",
        scope.date, scope.region, scope.service
    );
    let to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{credential_scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), scope.date);
    let k_region = hmac(&k_date, scope.region);
    let k_service = hmac(&k_region, scope.service);
    let k_signing = hmac(&k_service, "aws4_request");
    hex(&hmac(&k_signing, &to_sign))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `get-vanilla` of AWS's SigV4 test suite.
    #[test]
    fn aws_test_suite_get_vanilla() {
        let headers = [
            ("host".to_string(), "example.amazonaws.com".to_string()),
            ("x-amz-date".to_string(), "20150830T123600Z".to_string()),
        ];
        let canonical = canonical_request(&CanonicalInput {
            method: "GET",
            path: "/",
            query: "",
            headers: &headers,
            payload_hash: &hex(&Sha256::digest(b"")),
        });
        assert_eq!(
            hex(&Sha256::digest(canonical.as_bytes())),
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
        let scope = Scope {
            date: "20150830",
            region: "us-east-1",
            service: "service",
        };
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        assert_eq!(
            signature(secret, &scope, "20150830T123600Z", &canonical),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn the_path_is_encoded_again_and_the_query_sorted() {
        let canonical = canonical_request(&CanonicalInput {
            method: "POST",
            path: "/model/anthropic.claude-v2%3A1/converse",
            query: "b=2&a=x y&a=1",
            headers: &[],
            payload_hash: "h",
        });
        let lines: Vec<&str> = canonical.lines().collect();
        assert_eq!(lines[1], "/model/anthropic.claude-v2%253A1/converse");
        assert_eq!(lines[2], "a=1&a=x%20y&b=2");
        assert_eq!(trim_all("  a   b c "), "a b c");
        assert_eq!(normalize_path(""), "/");
        assert_eq!(
            normalize_path("//model//x/./y/../converse"),
            "/model/x/converse"
        );
        assert_eq!(normalize_path("/a/b/.."), "/a/");
    }

    #[test]
    fn authorization_parses_and_names_its_key() {
        let v = "AWS4-HMAC-SHA256 Credential=AKID/20240102/us-east-1/bedrock/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature=abc";
        let a = parse_authorization(v).unwrap();
        assert_eq!(
            (a.access_key_id, a.date, a.region, a.service, a.signature),
            ("AKID", "20240102", "us-east-1", "bedrock", "abc")
        );
        assert_eq!(a.signed_headers, ["host", "x-amz-date"]);
        assert!(parse_authorization("AWS4-HMAC-SHA256 Credential=AKID").is_none());
        assert!(parse_authorization("Bearer x").is_none());
        assert_eq!(
            parse_amz_date("20240102T030405Z").unwrap().as_second(),
            1_704_164_645
        );
    }
}
