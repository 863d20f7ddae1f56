//! `routes[].ai_log.attributes`: values taken from the request and the answer
//! and added to the request's `ai_log` record (`apply_to_log`) and span
//! (`apply_to_span`). Sources: a fixed value, a request or response header, a
//! path into the request body, the JSON answer, or each event of a streamed
//! answer (`rule`: keep the `first`, `replace` by each, or `append` them).
//! Stream events are read from the metered copy as they pass; nothing waits for
//! them. Values are cut at `telemetry.value_length_limit`. A header that carries
//! credentials is recorded as a fingerprint, never as its value.
//!
//! With `telemetry.log_payloads: true`, routes that do not define them get the
//! built-in `question` (the last message of the request) and `answer` (the
//! answer's text, streamed or not).

use super::path::{to_text, Path};
use crate::config::validate::Problems;
use crate::text::cut;
use http::{HeaderMap, HeaderName};
use serde_json::{Map, Value};
use shared::config::{AiLogConfig, AttributeRule, ValueSource};
use std::sync::Arc;

/// Headers recorded as a fingerprint whatever the config says (with the
/// configured consumer-key headers).
const ALWAYS_SECRET: [&str; 6] = [
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "cookie",
    "set-cookie",
];

#[derive(Debug)]
struct Attribute {
    key: String,
    source: ValueSource,
    fixed: String,
    header: Option<HeaderName>,
    path: Option<Path>,
    rule: AttributeRule,
    default: Option<String>,
    log: bool,
    span: bool,
}

/// A route's compiled attributes.
#[derive(Debug)]
pub struct Attributes {
    list: Vec<Attribute>,
    request_body: bool,
    /// some attribute reads the JSON answer / the stream's events
    pub response_body: bool,
    pub stream: bool,
}

impl Attributes {
    /// None when the route records nothing beyond the built-ins.
    pub fn compile(
        cfg: Option<&AiLogConfig>,
        log_payloads: bool,
        key: &str,
        p: &mut Problems,
    ) -> Option<Arc<Attributes>> {
        let mut list = Vec::new();
        let configured = cfg.map_or(&[][..], |c| &c.attributes[..]);
        for (i, a) in configured.iter().enumerate() {
            let k = format!("{key}.ai_log.attributes[{i}]");
            if a.key.is_empty() || a.key.len() > 128 {
                p.error(format!("{k}.key"), "must be 1 to 128 characters");
                continue;
            }
            if crate::telemetry::BUILT_IN.contains(&a.key.as_str()) {
                p.error(
                    format!("{k}.key"),
                    "the name of a built-in ai_log field; pick another name",
                );
                continue;
            }
            let (mut header, mut path) = (None, None);
            match a.value_source {
                ValueSource::FixedValue => {}
                ValueSource::RequestHeader | ValueSource::ResponseHeader => {
                    match HeaderName::from_bytes(a.value.trim().as_bytes()) {
                        Ok(h) => header = Some(h),
                        Err(_) => {
                            p.error(format!("{k}.value"), "not a valid header name");
                            continue;
                        }
                    }
                }
                _ => match Path::parse(&a.value) {
                    Ok(pa) => path = Some(pa),
                    Err(e) => {
                        p.error(format!("{k}.value"), e);
                        continue;
                    }
                },
            }
            let rule = match (a.value_source, a.rule) {
                (ValueSource::ResponseStreamingBody, None) => {
                    p.error(
                        format!("{k}.rule"),
                        "required for response_streaming_body: first, replace or append",
                    );
                    continue;
                }
                (_, r) => r.unwrap_or(AttributeRule::First),
            };
            if !a.apply_to_log && !a.apply_to_span {
                p.warn(
                    k,
                    "neither apply_to_log nor apply_to_span is set: the value goes nowhere",
                );
            }
            list.push(Attribute {
                key: a.key.clone(),
                source: a.value_source,
                fixed: a.value.clone(),
                header,
                path,
                rule,
                default: a.default_value.clone(),
                log: a.apply_to_log,
                span: a.apply_to_span,
            });
        }
        if log_payloads {
            for (name, source, path, rule) in [
                (
                    "question",
                    ValueSource::RequestBody,
                    "messages.@reverse.0.content",
                    AttributeRule::First,
                ),
                (
                    "question",
                    ValueSource::RequestBody,
                    "prompt",
                    AttributeRule::First,
                ),
                (
                    "question",
                    ValueSource::RequestBody,
                    "input",
                    AttributeRule::First,
                ),
                (
                    "answer",
                    ValueSource::ResponseBody,
                    "choices.0.message.content",
                    AttributeRule::First,
                ),
                (
                    "answer",
                    ValueSource::ResponseBody,
                    "choices.0.text",
                    AttributeRule::First,
                ),
                (
                    "answer",
                    ValueSource::ResponseStreamingBody,
                    "choices.0.delta.content",
                    AttributeRule::Append,
                ),
                (
                    "answer",
                    ValueSource::ResponseStreamingBody,
                    "choices.0.text",
                    AttributeRule::Append,
                ),
            ] {
                if configured.iter().any(|a| a.key == name) {
                    continue;
                }
                list.push(Attribute {
                    key: name.to_string(),
                    source,
                    fixed: String::new(),
                    header: None,
                    path: Path::parse(path).ok(),
                    rule,
                    default: None,
                    log: true,
                    span: false,
                });
            }
        }
        if list.is_empty() {
            return None;
        }
        let has = |f: &dyn Fn(ValueSource) -> bool| list.iter().any(|a| f(a.source));
        Some(Arc::new(Attributes {
            request_body: has(&|s| s == ValueSource::RequestBody),
            response_body: has(&|s| s == ValueSource::ResponseBody),
            stream: has(&|s| s == ValueSource::ResponseStreamingBody),
            list,
        }))
    }
}

/// The values of one request, filled in as it goes.
#[derive(Debug)]
pub struct Collected {
    attrs: Arc<Attributes>,
    values: Vec<Option<String>>,
    limit: usize,
}

impl Collected {
    pub fn new(attrs: Arc<Attributes>, limit: usize) -> Collected {
        let values = vec![None; attrs.list.len()];
        Collected {
            attrs,
            values,
            limit,
        }
    }

    pub fn wants_response_body(&self) -> bool {
        self.attrs.response_body
    }

    pub fn wants_stream(&self) -> bool {
        self.attrs.stream
    }

    /// Fixed values, request headers and the request body.
    pub fn request(&mut self, headers: &HeaderMap, body: &[u8], secret: &[HeaderName]) {
        let json = if self.attrs.request_body {
            serde_json::from_slice::<Value>(body).ok()
        } else {
            None
        };
        let attrs = self.attrs.clone();
        for (i, a) in attrs.list.iter().enumerate() {
            let v = match a.source {
                ValueSource::FixedValue => Some(a.fixed.clone()),
                ValueSource::RequestHeader => header_value(headers, a.header.as_ref(), secret),
                ValueSource::RequestBody => json
                    .as_ref()
                    .and_then(|j| a.path.as_ref()?.get(j))
                    .and_then(|v| to_text(&v)),
                _ => continue,
            };
            self.set(i, v, AttributeRule::First);
        }
    }

    /// The upstream's response headers.
    pub fn response_headers(&mut self, headers: &HeaderMap, secret: &[HeaderName]) {
        let attrs = self.attrs.clone();
        for (i, a) in attrs.list.iter().enumerate() {
            if a.source == ValueSource::ResponseHeader {
                let v = header_value(headers, a.header.as_ref(), secret);
                self.set(i, v, AttributeRule::First);
            }
        }
    }

    /// One event of a streamed answer (its `data:`, JSON).
    pub fn stream_event(&mut self, data: &[u8]) {
        let Ok(json) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        self.take_json(&json, ValueSource::ResponseStreamingBody);
    }

    /// A whole JSON answer.
    pub fn response_body(&mut self, body: &[u8]) {
        if let Ok(json) = serde_json::from_slice::<Value>(body) {
            self.take_json(&json, ValueSource::ResponseBody);
        }
    }

    fn take_json(&mut self, json: &Value, source: ValueSource) {
        let attrs = self.attrs.clone();
        for (i, a) in attrs.list.iter().enumerate() {
            if a.source == source {
                let v = a
                    .path
                    .as_ref()
                    .and_then(|p| p.get(json))
                    .and_then(|v| to_text(&v));
                self.set(i, v, a.rule);
            }
        }
    }

    fn set(&mut self, i: usize, v: Option<String>, rule: AttributeRule) {
        let Some(v) = v.filter(|v| !v.is_empty()) else {
            return;
        };
        let Some(slot) = self.values.get_mut(i) else {
            return;
        };
        match (slot.as_mut(), rule) {
            (Some(_), AttributeRule::First) => {}
            (Some(cur), AttributeRule::Append) => {
                if cur.len() < self.limit {
                    cur.push_str(&v);
                    cut(cur, self.limit);
                }
            }
            _ => {
                let mut v = v;
                cut(&mut v, self.limit);
                *slot = Some(v);
            }
        }
    }

    /// The values for `ai_log` (first value per key wins; defaults fill in).
    pub fn for_log(&self) -> Map<String, Value> {
        self.pick(|a| a.log)
    }

    /// The values for the request's span.
    pub fn for_span(&self) -> Map<String, Value> {
        self.pick(|a| a.span)
    }

    fn pick(&self, which: impl Fn(&Attribute) -> bool) -> Map<String, Value> {
        let mut out = Map::new();
        let chosen = || {
            self.attrs
                .list
                .iter()
                .zip(&self.values)
                .filter(|(a, _)| which(a))
        };
        for (a, v) in chosen() {
            if let Some(v) = v {
                if !out.contains_key(&a.key) {
                    out.insert(a.key.clone(), Value::String(v.clone()));
                }
            }
        }
        for (a, _) in chosen() {
            if let Some(d) = &a.default {
                if !out.contains_key(&a.key) {
                    let mut d = d.clone();
                    cut(&mut d, self.limit);
                    out.insert(a.key.clone(), Value::String(d));
                }
            }
        }
        out
    }
}

fn header_value(h: &HeaderMap, name: Option<&HeaderName>, secret: &[HeaderName]) -> Option<String> {
    let name = name?;
    let v = h.get(name)?;
    let is_secret = ALWAYS_SECRET.contains(&name.as_str()) || secret.contains(name);
    if is_secret {
        return Some(fingerprint(v.as_bytes()));
    }
    Some(crate::headers::text(v))
}

/// A secret header's value as it is recorded: `redacted:sha256:<12 hex digits>`
/// (enough to tell two apart, nothing to recover).
pub fn fingerprint(v: &[u8]) -> String {
    format!("redacted:sha256:{}", crate::keys::sha256_hex(v, 6))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_text;

    fn attrs(yaml: &str, log_payloads: bool) -> Arc<Attributes> {
        let raw = parse_text("t", &format!(
            "providers: [{{id: m, type: mock}}]\nroutes:\n  - name: r\n    upstreams: [{{provider: m}}]\n    ai_log:\n      attributes:\n{yaml}"
        ))
        .unwrap();
        let mut p = crate::config::validate::test_problems();
        let a = Attributes::compile(raw.routes[0].ai_log.as_ref(), log_payloads, "r", &mut p);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        a.unwrap()
    }

    #[test]
    fn sources_rules_defaults_and_limits() {
        let a = attrs(
            r#"        - { key: team, value_source: fixed_value, value: blue, apply_to_log: true }
        - { key: q, value_source: request_body, value: messages.@reverse.0.content, apply_to_log: true }
        - { key: n, value_source: request_body, value: "messages.#", apply_to_log: true }
        - { key: ua, value_source: request_header, value: user-agent, apply_to_log: true }
        - { key: auth, value_source: request_header, value: Authorization, apply_to_log: true }
        - { key: trace, value_source: response_header, value: x-upstream, apply_to_log: true, apply_to_span: true }
        - { key: ans, value_source: response_streaming_body, value: choices.0.delta.content, rule: append, apply_to_log: true }
        - { key: first, value_source: response_streaming_body, value: choices.0.delta.content, rule: first, apply_to_log: true }
        - { key: last, value_source: response_streaming_body, value: choices.0.delta.content, rule: replace, apply_to_log: true }
        - { key: missing, value_source: request_body, value: nope, default_value: "-", apply_to_log: true }
"#,
            false,
        );
        let mut c = Collected::new(a, 10);
        let mut h = HeaderMap::new();
        h.insert("user-agent", "curl/8".parse().unwrap());
        h.insert("authorization", "Bearer sk-secret".parse().unwrap());
        c.request(
            &h,
            br#"{"messages":[{"role":"user","content":"hello"},{"role":"user","content":"a long question"}]}"#,
            &[],
        );
        let mut rh = HeaderMap::new();
        rh.insert("x-upstream", "u1".parse().unwrap());
        c.response_headers(&rh, &[]);
        for piece in ["Hel", "lo ", "wor", "ld!", "!!"] {
            c.stream_event(
                format!(r#"{{"choices":[{{"delta":{{"content":"{piece}"}}}}]}}"#).as_bytes(),
            );
        }
        c.stream_event(b"not json");
        let log = c.for_log();
        assert_eq!(log["team"], "blue");
        assert_eq!(log["q"], "a long que", "cut at 10 bytes");
        assert_eq!(log["n"], "2");
        assert_eq!(log["ua"], "curl/8");
        let auth = log["auth"].as_str().unwrap();
        assert!(
            auth.starts_with("redacted") && !auth.contains("secret"),
            "{auth}"
        );
        assert!(fingerprint(b"Bearer sk-secret").starts_with("redacted:sha256:"));
        assert_eq!(log["ans"], "Hello worl");
        assert_eq!(log["first"], "Hel");
        assert_eq!(log["last"], "!!");
        assert_eq!(log["missing"], "-");
        let span = c.for_span();
        assert_eq!(span.len(), 1);
        assert_eq!(span["trace"], "u1");
    }

    #[test]
    fn built_in_question_and_answer_only_with_log_payloads() {
        let a = attrs(
            "        - { key: team, value_source: fixed_value, value: x, apply_to_log: true }\n",
            true,
        );
        let mut c = Collected::new(a.clone(), 4000);
        c.request(
            &HeaderMap::new(),
            br#"{"messages":[{"role":"user","content":"why?"}]}"#,
            &[],
        );
        c.response_body(br#"{"choices":[{"message":{"content":"because"}}]}"#);
        let log = c.for_log();
        assert_eq!(
            (log["question"].as_str(), log["answer"].as_str()),
            (Some("why?"), Some("because"))
        );
        let raw = parse_text(
            "t",
            "providers: [{id: m, type: mock}]\nroutes: [{name: r, upstreams: [{provider: m}]}]\n",
        )
        .unwrap();
        let mut p = crate::config::validate::test_problems();
        assert!(Attributes::compile(raw.routes[0].ai_log.as_ref(), false, "r", &mut p).is_none());
    }

    #[test]
    fn bad_attributes_are_named() {
        let raw = parse_text("t", "providers: [{id: m, type: mock}]\nroutes:\n  - name: r\n    upstreams: [{provider: m}]\n    ai_log:\n      attributes:\n        - { key: model, value_source: fixed_value, value: x, apply_to_log: true }\n        - { key: a, value_source: request_body, value: \"x..y\", apply_to_log: true }\n        - { key: b, value_source: response_streaming_body, value: x, apply_to_log: true }\n        - { key: c, value_source: request_header, value: \"bad header\", apply_to_log: true }\n").unwrap();
        let mut p = crate::config::validate::test_problems();
        let _ = Attributes::compile(raw.routes[0].ai_log.as_ref(), false, "r", &mut p);
        let all = p.messages().join("\n");
        assert_eq!(p.errors.len(), 4, "{all}");
        assert!(
            all.contains("built-in")
                && all.contains("empty step")
                && all.contains("required")
                && all.contains("header name")
        );
    }
}
