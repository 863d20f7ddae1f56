//! The access-log line as JSON, written straight into the writer's buffer:
//! byte for byte what `serde_json` writes for [`AccessLogLine`] (same keys,
//! same order, same omissions, same escapes; a property test holds them
//! equal), at a fraction of its cost: the keys are written as constants, and a
//! string is copied whole unless it has a byte to escape.

use shared::ai_log::{AccessLogLine, AiLog, Attempt};

/// A member's key as written: `"name":` (the names here are plain ASCII:
/// nothing to escape).
macro_rules! k {
    ($name:literal) => {
        concat!("\"", $name, "\":")
    };
}

/// Appends `line` as one JSON object (no newline).
pub fn write(out: &mut Vec<u8>, line: &AccessLogLine) {
    let mut w = Obj::open(out);
    w.str(k!("start_time"), &line.start_time);
    w.str(k!("authority"), &line.authority);
    w.str(k!("method"), &line.method);
    w.str(k!("path"), &line.path);
    w.str(k!("protocol"), &line.protocol);
    w.str(k!("request_id"), &line.request_id);
    w.num(k!("response_code"), line.response_code.into());
    w.num(k!("duration"), line.duration);
    w.num(k!("bytes_received"), line.bytes_received);
    w.num(k!("bytes_sent"), line.bytes_sent);
    w.str(
        k!("downstream_remote_address"),
        &line.downstream_remote_address,
    );
    w.opt_str(k!("upstream_host"), &line.upstream_host);
    w.opt_num(k!("upstream_service_time"), line.upstream_service_time);
    w.opt_str(k!("user_agent"), &line.user_agent);
    w.opt_str(k!("x_forwarded_for"), &line.x_forwarded_for);
    w.opt_str(k!("route_name"), &line.route_name);
    if !line.response_flags.is_empty() {
        w.str(k!("response_flags"), &line.response_flags);
    }
    w.key(k!("ai_log"));
    ai_log(w.out, &line.ai_log);
    w.close();
}

fn ai_log(out: &mut Vec<u8>, a: &AiLog) {
    let mut w = Obj::open(out);
    w.opt_str(k!("model"), &a.model);
    w.opt_str(k!("request_model"), &a.request_model);
    w.num(k!("input_token"), a.input_token);
    w.num(k!("output_token"), a.output_token);
    w.num(k!("total_token"), a.total_token);
    w.num(k!("cached_tokens"), a.cached_tokens);
    w.num(k!("cache_creation_tokens"), a.cache_creation_tokens);
    w.num(k!("reasoning_tokens"), a.reasoning_tokens);
    w.bool(k!("usage_estimated"), a.usage_estimated);
    w.opt_num(k!("llm_first_token_duration"), a.llm_first_token_duration);
    w.num(k!("llm_service_duration"), a.llm_service_duration);
    w.str(k!("response_type"), &a.response_type);
    w.str(k!("request_type"), &a.request_type);
    w.opt_str(k!("chat_id"), &a.chat_id);
    w.opt_str(k!("tenant"), &a.tenant);
    w.opt_str(k!("consumer"), &a.consumer);
    w.opt_str(k!("key_id"), &a.key_id);
    w.opt_str(k!("route"), &a.route);
    w.opt_str(k!("provider"), &a.provider);
    w.opt_str(k!("upstream"), &a.upstream);
    w.key(k!("attempts"));
    w.out.push(b'[');
    for (i, at) in a.attempts.iter().enumerate() {
        if i > 0 {
            w.out.push(b',');
        }
        attempt(w.out, at);
    }
    w.out.push(b']');
    if a.panic_mode {
        w.bool(k!("panic_mode"), true);
    }
    w.num(k!("status"), a.status.into());
    w.opt_str(k!("cost"), &a.cost);
    w.opt_str(k!("cost_currency"), &a.cost_currency);
    w.opt_str(k!("cost_model"), &a.cost_model);
    if a.cost_unpriced {
        w.bool(k!("cost_unpriced"), true);
    }
    if a.cost_estimated {
        w.bool(k!("cost_estimated"), true);
    }
    w.opt_str(k!("quota_status"), &a.quota_status);
    w.opt_str(k!("quota"), &a.quota);
    w.opt_str(k!("error"), &a.error);
    w.opt_str(k!("warning"), &a.warning);
    // (the route's attributes, flattened into the record: rare, and of any shape)
    for (k, v) in &a.attributes {
        w.sep();
        string(w.out, k);
        w.out.push(b':');
        // (writing a Value into a Vec cannot fail)
        let _ = serde_json::to_writer(&mut *w.out, v);
    }
    w.close();
}

fn attempt(out: &mut Vec<u8>, a: &Attempt) {
    let mut w = Obj::open(out);
    w.str(k!("provider"), &a.provider);
    w.opt_num(k!("token_index"), a.token_index.map(u64::from));
    w.opt_num(k!("status"), a.status.map(u64::from));
    w.opt_str(k!("reason"), &a.reason);
    w.num(k!("duration_ms"), a.duration_ms);
    w.close();
}

/// An object being written: a comma before every member but the first.
struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    fn open(out: &'a mut Vec<u8>) -> Obj<'a> {
        out.push(b'{');
        Obj { out, first: true }
    }

    fn close(self) {
        self.out.push(b'}');
    }

    fn sep(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
    }

    /// `k`: the key with its quotes and colon (`k!`)
    fn key(&mut self, k: &str) {
        self.sep();
        self.out.extend_from_slice(k.as_bytes());
    }

    fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        string(self.out, v);
    }

    fn opt_str(&mut self, k: &str, v: &Option<String>) {
        if let Some(v) = v {
            self.str(k, v);
        }
    }

    fn num(&mut self, k: &str, v: u64) {
        self.key(k);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }

    fn opt_num(&mut self, k: &str, v: Option<u64>) {
        if let Some(v) = v {
            self.num(k, v);
        }
    }

    fn bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
    }
}

/// A JSON string, escaped as `serde_json` escapes: `"` and `\`, the control
/// characters (`\b` `\f` `\n` `\r` `\t`, the others as `\u00xx`); every other
/// byte as it is.
fn string(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    // (one pass without an early exit, which the compiler vectorises: most
    // values have nothing to escape and are copied whole)
    if b.iter().fold(false, |any, &c| any | needs_escape(c)) {
        let mut start = 0;
        for (i, &c) in b.iter().enumerate() {
            if needs_escape(c) {
                out.extend_from_slice(&b[start..i]);
                escape(out, c);
                start = i + 1;
            }
        }
        out.extend_from_slice(&b[start..]);
    } else {
        out.extend_from_slice(b);
    }
    out.push(b'"');
}

fn needs_escape(c: u8) -> bool {
    c < 0x20 || c == b'"' || c == b'\\'
}

fn escape(out: &mut Vec<u8>, c: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match c {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        _ => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(c >> 4)],
            HEX[usize::from(c & 0xf)],
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Map, Value};

    fn text() -> impl Strategy<Value = String> {
        "[a-z0-9 \"\\\\/\\x00-\\x1f\u{7f}é€😀\u{2028}]{0,24}"
    }

    fn attempt() -> impl Strategy<Value = Attempt> {
        (
            text(),
            any::<Option<u32>>(),
            any::<Option<u16>>(),
            proptest::option::of(text()),
            any::<u64>(),
        )
            .prop_map(
                |(provider, token_index, status, reason, duration_ms)| Attempt {
                    provider,
                    token_index,
                    status,
                    reason,
                    duration_ms,
                },
            )
    }

    fn attributes() -> impl Strategy<Value = Map<String, Value>> {
        let value = prop_oneof![
            text().prop_map(Value::String),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| json!(f)),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
            (text(), any::<u8>()).prop_map(|(s, n)| json!({"k": s, "n": [n, null]})),
        ];
        prop::collection::btree_map(text(), value, 0..4).prop_map(|m| m.into_iter().collect())
    }

    prop_compose! {
        fn ai_log()(
            strs in prop::collection::vec(proptest::option::of(text()), 16),
            nums in prop::collection::vec(any::<u64>(), 8),
            flags in prop::collection::vec(any::<bool>(), 4),
            first_token in any::<Option<u64>>(),
            texts in (text(), text()),
            attempts in prop::collection::vec(attempt(), 0..3),
            status in any::<u16>(),
            attributes in attributes(),
        ) -> AiLog {
            let s = |i: usize| strs[i].clone();
            AiLog {
                model: s(0), request_model: s(1),
                input_token: nums[0], output_token: nums[1], total_token: nums[2],
                cached_tokens: nums[3], cache_creation_tokens: nums[4], reasoning_tokens: nums[5],
                usage_estimated: flags[0], llm_first_token_duration: first_token,
                llm_service_duration: nums[6], response_type: texts.0, request_type: texts.1,
                chat_id: s(2), tenant: s(3), consumer: s(4), key_id: s(5), route: s(6),
                provider: s(7), upstream: s(8), attempts, panic_mode: flags[1], status,
                cost: s(9), cost_currency: s(10), cost_model: s(11),
                cost_unpriced: flags[2], cost_estimated: flags[3],
                quota_status: s(12), quota: s(13), error: s(14), warning: s(15),
                attributes,
            }
        }
    }

    prop_compose! {
        fn line()(
            texts in prop::collection::vec(text(), 8),
            opts in prop::collection::vec(proptest::option::of(text()), 4),
            nums in (any::<u16>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<Option<u64>>()),
            ai_log in ai_log(),
        ) -> AccessLogLine {
            AccessLogLine {
                start_time: texts[0].clone(), authority: texts[1].clone(), method: texts[2].clone(),
                path: texts[3].clone(), protocol: texts[4].clone(), request_id: texts[5].clone(),
                response_code: nums.0, duration: nums.1, bytes_received: nums.2, bytes_sent: nums.3,
                downstream_remote_address: texts[6].clone(), upstream_host: opts[0].clone(),
                upstream_service_time: nums.4, user_agent: opts[1].clone(),
                x_forwarded_for: opts[2].clone(), route_name: opts[3].clone(),
                response_flags: texts[7].clone(), ai_log,
            }
        }
    }

    proptest! {
        /// Every line is written exactly as serde_json writes it.
        #[test]
        fn writes_what_serde_json_writes(l in line()) {
            let mut ours = Vec::new();
            write(&mut ours, &l);
            let theirs = serde_json::to_vec(&l).unwrap();
            prop_assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
        }
    }

    #[test]
    fn a_default_line_and_every_escape() {
        let l = AccessLogLine {
            path: "/a\"b\\c\u{8}\u{c}\n\r\t\u{1}\u{1f}\u{7f}é".into(),
            ..AccessLogLine::default()
        };
        let mut ours = Vec::new();
        write(&mut ours, &l);
        assert_eq!(ours, serde_json::to_vec(&l).unwrap());
    }
}
