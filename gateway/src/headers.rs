//! Which headers cross the gateway, in each direction. Towards the upstream: never
//! the client's credentials, cookies, hop-by-hop headers (including those named in
//! `Connection`), `accept-encoding` (the meter reads the answer) or a value that is not
//! UTF-8 (passed on as it came, an upstream would read it its own way). Towards the client:
//! no hop-by-hop headers (HTTP/2 forbids them) and nothing about the gateway's own
//! upstream account (organization, project, cookies).

use http::{HeaderMap, HeaderName};

/// Hop-by-hop headers, never forwarded in either direction.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
];

/// Client request headers the gateway sets or must not pass on.
const CLIENT_ONLY: &[&str] = &[
    "host",
    "content-length",
    "accept-encoding",
    "expect",
    "cookie",
    "authorization",
    "x-api-key",
    "api-key",
    // Google's api key header and AWS's signature headers (the gateway signs
    // with its own credentials; a client's would be passed on, or signed)
    "x-goog-api-key",
    "x-amz-security-token",
    "x-amz-date",
    "x-amz-content-sha256",
    "openai-organization",
    "openai-project",
    "x-request-id",
];

/// The request id the gateway takes from the client (or makes), sends upstream
/// and answers with (a constant: a name given as text is parsed at every lookup).
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Upstream response headers that describe the gateway's account, not the client's.
const UPSTREAM_ONLY: &[&str] = &[
    "set-cookie",
    "openai-organization",
    "openai-project",
    "x-request-id",
];

/// Header names listed in `Connection` (hop-by-hop by declaration).
fn connection_listed(h: &HeaderMap) -> Vec<String> {
    h.get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Copies the client's headers that may go upstream into `out`. `secret` names the
/// configured key headers and the consumer header. `traced`: the gateway sets the
/// trace context of the upstream call itself, so the client's (W3C and B3) stays out.
pub fn copy_to_upstream(
    client: &HeaderMap,
    out: &mut HeaderMap,
    secret: &[HeaderName],
    traced: bool,
) {
    let listed = connection_listed(client);
    // room for these and what the gateway adds (content type, request id,
    // consumer, api token, trace context): the map is sized once
    out.reserve(client.len() + 6);
    for (name, value) in client {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n)
            || CLIENT_ONLY.contains(&n)
            || secret.contains(name)
            || listed.iter().any(|l| l == n)
            || (traced && is_trace_header(n))
            || std::str::from_utf8(value.as_bytes()).is_err()
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
}

/// Removes from an upstream response what must not reach the client. (The
/// answer's few names are looked at once, instead of a lookup per name that
/// may be there; they are removed in the lists' order, which the order of the
/// names left depends on.)
pub fn clean_response(h: &mut HeaderMap) {
    let listed = connection_listed(h);
    let rank = |n: &str| {
        let at = |list: &[&str]| list.iter().position(|l| *l == n);
        listed
            .iter()
            .position(|l| l == n)
            .or_else(|| at(HOP_BY_HOP).map(|i| listed.len() + i))
            .or_else(|| at(UPSTREAM_ONLY).map(|i| listed.len() + HOP_BY_HOP.len() + i))
    };
    let mut gone: Vec<(usize, HeaderName)> = h
        .keys()
        .filter_map(|k| rank(k.as_str()).map(|r| (r, k.clone())))
        .collect();
    gone.sort_unstable_by_key(|(r, _)| *r);
    for (_, name) in gone {
        h.remove(name);
    }
}

/// A trace context header (lowercase name): W3C `traceparent`/`tracestate`, B3
/// single or multi (`x-b3-*`).
pub fn is_trace_header(name: &str) -> bool {
    matches!(name, "traceparent" | "tracestate" | "b3") || name.starts_with("x-b3-")
}

/// A header's value as text, invalid UTF-8 replaced (visible ASCII, the
/// common case, copied as it is).
pub fn text(v: &http::HeaderValue) -> String {
    match v.to_str() {
        Ok(s) => s.to_string(),
        Err(_) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_reads_as_text_with_invalid_bytes_replaced() {
        let v = http::HeaderValue::from_bytes(b"caf\xc3\xa9 ok").unwrap();
        assert_eq!(text(&v), "café ok");
        let v = http::HeaderValue::from_bytes(b"bad \xff").unwrap();
        assert_eq!(text(&v), "bad \u{fffd}");
        assert_eq!(text(&http::HeaderValue::from_static("plain")), "plain");
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn request_side() {
        let client = map(&[
            ("authorization", "Bearer sk-client"),
            ("x-my-key", "k"),
            ("x-gateway-consumer", "spoofed"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "1"),
            ("cookie", "c=1"),
            ("accept-encoding", "gzip"),
            ("x-goog-api-key", "client-google-key"),
            ("x-amz-security-token", "client-session"),
            ("x-amz-date", "20250101T000000Z"),
            ("traceparent", "00-abc-def-01"),
            ("content-type", "application/json"),
        ]);
        let secret = [
            HeaderName::from_static("x-my-key"),
            HeaderName::from_static("x-gateway-consumer"),
        ];
        let mut out = HeaderMap::new();
        copy_to_upstream(&client, &mut out, &secret, false);
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["traceparent", "content-type"]);
    }

    #[test]
    fn traced_requests_leave_the_client_trace_context_out() {
        let client = map(&[
            ("traceparent", "00-abc-def-01"),
            ("tracestate", "k=v"),
            ("b3", "1"),
            ("x-b3-traceid", "a"),
            ("x-b3-sampled", "1"),
            ("x-b3", "not one of them"),
            ("content-type", "application/json"),
        ]);
        let mut out = HeaderMap::new();
        copy_to_upstream(&client, &mut out, &[], true);
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["x-b3", "content-type"]);
    }

    #[test]
    fn response_side() {
        let mut h = map(&[
            ("connection", "close, x-private"),
            ("x-private", "1"),
            ("te", "gzip"),
            ("set-cookie", "s=1"),
            ("openai-organization", "org-secret"),
            ("x-ratelimit-remaining-requests", "10"),
            ("content-type", "text/event-stream"),
        ]);
        clean_response(&mut h);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            vec!["x-ratelimit-remaining-requests", "content-type"]
        );
    }
}
