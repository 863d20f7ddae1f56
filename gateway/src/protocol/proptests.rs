//! Properties of the protocol translators: an OpenAI chat request made an
//! Anthropic Messages request and back is the request it was (and a Messages
//! request made chat and back likewise); whole answers round-trip the same
//! way, usage included; and every pair of the seam takes any JSON of the
//! right outline (and any bytes) without a panic: a request is translated or
//! refused with a 400, an answer or an error body is translated.

use super::anthropic::{
    chat_answer_to_messages, chat_to_messages, messages_answer_to_chat, messages_to_chat,
};
use super::*;
use crate::request_body::ClientBody;
use proptest::prelude::*;
use serde_json::{json, Value};

fn opts() -> RequestOpts<'static> {
    RequestOpts {
        model: "m",
        default_max_tokens: 4096,
        options: &[],
    }
}

/// Text as clients send it: quotes, escapes, newlines, non-ASCII.
fn text() -> impl Strategy<Value = String> {
    "[a-z \"\\\\\n{}é😀]{1,12}"
}

/// A tool call: id, function name, arguments (a JSON object).
fn call() -> impl Strategy<Value = (String, String, Value)> {
    (
        "[a-zA-Z0-9]{4,10}",
        "[a-z_]{1,8}",
        prop::collection::btree_map(
            "[a-z]{1,5}",
            prop_oneof![
                text().prop_map(Value::from),
                any::<i32>().prop_map(Value::from)
            ],
            0..3,
        ),
    )
        .prop_map(|(id, name, args)| {
            (
                format!("call_{id}"),
                name,
                Value::Object(args.into_iter().collect()),
            )
        })
}

/// An OpenAI chat conversation: a system message, then user and assistant
/// turns; an assistant turn is text or tool calls, each answered by a tool
/// message.
fn chat_request() -> impl Strategy<Value = Value> {
    let turn = prop_oneof![
        text().prop_map(|t| (t, Vec::new())),
        prop::collection::vec(call(), 1..3).prop_map(|c| (String::new(), c)),
    ];
    (
        prop::option::of(text()),
        prop::collection::vec((text(), turn), 1..4),
        1u32..10_000,
        prop::option::of(0u8..=100),
        prop::collection::vec("[a-z_]{1,8}", 0..3),
        any::<bool>(),
    )
        .prop_map(|(system, turns, max_tokens, temperature, tools, stream)| {
            let mut messages = Vec::new();
            if let Some(s) = system {
                messages.push(json!({"role": "system", "content": s}));
            }
            for (i, (user, (said, calls))) in turns.into_iter().enumerate() {
                messages.push(json!({"role": "user", "content": user}));
                if calls.is_empty() {
                    messages.push(json!({"role": "assistant", "content": said}));
                    continue;
                }
                let tool_calls: Vec<Value> = calls
                    .iter()
                    .enumerate()
                    .map(|(k, (id, name, args))| json!({"id": format!("{id}{i}{k}"), "type": "function",
                        "function": {"name": name, "arguments": args.to_string()}}))
                    .collect();
                messages.push(json!({"role": "assistant", "tool_calls": tool_calls}));
                for (k, (id, _, args)) in calls.iter().enumerate() {
                    messages.push(json!({"role": "tool", "tool_call_id": format!("{id}{i}{k}"), "content": args.to_string()}));
                }
            }
            // (the model is the upstream's; `max_tokens` is always set, as
            // Anthropic requires: the translation adds a default otherwise)
            // (and a chat stream asks for its usage, as the way back adds)
            let mut r = json!({"model": "m", "messages": messages, "stream": stream, "max_tokens": max_tokens});
            if stream {
                r["stream_options"] = json!({"include_usage": true});
            }
            if let Some(t) = temperature {
                r["temperature"] = json!(f64::from(t) / 100.0);
            }
            let mut seen = std::collections::BTreeSet::new();
            let tools: Vec<Value> = tools
                .into_iter()
                .filter(|t| seen.insert(t.clone()))
                .map(|t| json!({"type": "function", "function": {"name": t, "description": "d",
                    "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}}))
                .collect();
            if !tools.is_empty() {
                r["tools"] = json!(tools);
            }
            r
        })
}

fn translate(f: fn(&[u8], &RequestOpts) -> Result<Translated, Refused>, v: &Value) -> Value {
    let t = f(v.to_string().as_bytes(), &opts()).unwrap_or_else(|r| panic!("{r}: {v}"));
    serde_json::from_slice(&t.body).unwrap()
}

/// An Anthropic answer: text and tool calls, a stop reason, usage with
/// prompt-cache figures.
fn messages_answer() -> impl Strategy<Value = Value> {
    (
        prop::option::of(text()),
        prop::collection::vec(call(), 0..3),
        prop::sample::select(vec!["end_turn", "max_tokens", "tool_use"]),
        (0u64..1_000_000, 0u64..1_000_000, 0u64..1_000_000, 0u64..1_000_000),
    )
        .prop_map(|(said, calls, stop, (input, output, read, written))| {
            let mut content: Vec<Value> = said.into_iter().map(|t| json!({"type": "text", "text": t})).collect();
            for (id, name, input) in calls {
                content.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
            }
            json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
                   "content": content, "stop_reason": stop, "stop_sequence": null,
                   "usage": {"input_tokens": input, "output_tokens": output,
                             "cache_read_input_tokens": read, "cache_creation_input_tokens": written}})
        })
}

/// Any JSON value, its strings and keys drawn from what the APIs use.
fn any_json() -> impl Strategy<Value = Value> {
    let word = prop::sample::select(vec![
        "text",
        "type",
        "content",
        "role",
        "user",
        "assistant",
        "system",
        "tool",
        "image_url",
        "url",
        "tool_use",
        "tool_result",
        "function",
        "arguments",
        "name",
        "id",
        "input",
        "parts",
        "thinking",
        "data:image/png;base64,AAAA",
        "{",
        "",
        "é",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        word.clone().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 5, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((word.clone(), inner), 0..5).prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

/// An object with some of `keys`, each any JSON (`messages`-like keys an
/// array of message-like objects).
fn outline(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let message = (
        prop::sample::select(vec![
            "user",
            "assistant",
            "system",
            "developer",
            "tool",
            "model",
            "x",
        ]),
        prop::collection::vec(
            (
                prop::sample::select(vec![
                    "content",
                    "tool_calls",
                    "tool_call_id",
                    "name",
                    "parts",
                    "reasoning_content",
                ]),
                any_json(),
            ),
            0..4,
        ),
    )
        .prop_map(|(role, kv)| {
            let mut m: serde_json::Map<String, Value> =
                kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            m.insert("role".into(), json!(role));
            Value::Object(m)
        });
    (
        prop::collection::vec((prop::sample::select(keys.to_vec()), any_json()), 0..8),
        prop::collection::vec(message, 0..4),
        any::<bool>(),
    )
        .prop_map(|(kv, messages, with_messages)| {
            let mut m: serde_json::Map<String, Value> =
                kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            if with_messages {
                m.insert("messages".into(), Value::Array(messages));
            }
            Value::Object(m)
        })
}

const REQUEST_KEYS: &[&str] = &[
    "model",
    "messages",
    "system",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "stop_sequences",
    "stream",
    "stream_options",
    "tools",
    "tool_choice",
    "response_format",
    "n",
    "input",
    "prompt",
    "thinking",
    "reasoning_effort",
    "metadata",
    "user",
    "seed",
    "dimensions",
    "encoding_format",
];

const ANSWER_KEYS: &[&str] = &[
    "id",
    "model",
    "choices",
    "content",
    "candidates",
    "usage",
    "usageMetadata",
    "output",
    "stopReason",
    "stop_reason",
    "message",
    "error",
    "data",
    "embedding",
    "embeddings",
    "type",
    "metrics",
];

/// The seam serves a plain request of its client API (its errors are
/// translated then).
fn served(seam: Seam) -> bool {
    let raw = Bytes::from_static(
        br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"input":"hi","max_tokens":5}"#,
    );
    ClientBody::parse(&raw).is_ok_and(|c| seam.request(&c, &raw, &opts(), false).is_ok())
}

fn seams() -> Vec<Seam> {
    let inbound = [
        Inbound::OpenAi(Endpoint::ChatCompletions),
        Inbound::OpenAi(Endpoint::Embeddings),
        Inbound::OpenAi(Endpoint::Responses),
        Inbound::Anthropic(Endpoint::Messages),
        Inbound::Anthropic(Endpoint::CountTokens),
    ];
    let dialects = [
        Dialect::OpenAi,
        Dialect::Azure,
        Dialect::Anthropic,
        Dialect::Gemini,
        Dialect::VertexAnthropic,
        Dialect::Bedrock,
    ];
    inbound
        .iter()
        .flat_map(|&i| {
            dialects.iter().map(move |&d| Seam {
                inbound: i,
                dialect: d,
            })
        })
        .collect()
}

proptest! {
    #![proptest_config(crate::prop::cases(128))]

    /// An OpenAI chat request made a Messages request and back is the
    /// request it was; that Messages request made chat and back is itself.
    #[test]
    fn chat_and_messages_requests_round_trip(r in chat_request()) {
        let m = translate(chat_to_messages, &r);
        let back = translate(messages_to_chat, &m);
        prop_assert_eq!(&back, &r, "\nmessages: {}", m);
        prop_assert_eq!(translate(chat_to_messages, &back), m);
    }

    /// An Anthropic answer made a chat answer and back is the answer it was
    /// (prompt-cache writes aside, which chat has no field for), with the
    /// same usage read; that chat answer made Messages and back is itself.
    #[test]
    fn answers_round_trip(a in messages_answer()) {
        let mut r1 = Read::default();
        let chat: Value = serde_json::from_slice(&messages_answer_to_chat(a.to_string().as_bytes(), &mut r1)).unwrap();
        let mut r2 = Read::default();
        let back: Value = serde_json::from_slice(&chat_answer_to_messages(chat.to_string().as_bytes(), &mut r2)).unwrap();
        // OpenAI's usage has no field for prompt-cache writes: they come back
        // as plain input tokens
        let mut want = a.clone();
        let written = want["usage"]["cache_creation_input_tokens"].take();
        want["usage"]["cache_creation_input_tokens"] = json!(0);
        want["usage"]["input_tokens"] = json!(a["usage"]["input_tokens"].as_u64().unwrap() + written.as_u64().unwrap());
        prop_assert_eq!(&back, &want, "\nchat: {}", chat);
        let (u1, u2) = (r1.usage.unwrap(), r2.usage.unwrap());
        prop_assert_eq!(
            (u1.prompt_tokens, u1.completion_tokens, u1.total_tokens, u1.cached_tokens),
            (u2.prompt_tokens, u2.completion_tokens, u2.total_tokens, u2.cached_tokens)
        );
        let again: Value = serde_json::from_slice(&messages_answer_to_chat(back.to_string().as_bytes(), &mut Read::default())).unwrap();
        let created = |v: &Value| { let mut v = v.clone(); v["created"] = json!(0); v };
        prop_assert_eq!(created(&again), created(&chat));
    }

    /// A request of any content in the outline of a chat, Messages or
    /// embeddings request, through every pair of the seam: translated into
    /// JSON, or refused with a 400; never a panic.
    #[test]
    fn any_request_is_translated_or_refused(body in outline(REQUEST_KEYS), add_usage: bool) {
        let raw = Bytes::from(body.to_string());
        let Ok(client) = ClientBody::parse(&raw) else { return Ok(()); };
        for seam in seams() {
            match seam.request(&client, &raw, &opts(), add_usage) {
                Ok(up) => {
                    let parsed = serde_json::from_slice::<Value>(&up.body);
                    prop_assert!(parsed.is_ok(), "{:?}: {}", seam, String::from_utf8_lossy(&up.body));
                }
                Err(e) => prop_assert_eq!(e.status, http::StatusCode::BAD_REQUEST, "{:?}: {}", seam, e.message),
            }
        }
    }

    /// An answer or an error body of any content in the outline of any API's
    /// answers (or not JSON at all), through every pair: the client gets JSON
    /// (an answer of a shape the translation does not know: the body as it
    /// came, as documented).
    #[test]
    fn any_answer_and_error_become_json(
        body in prop_oneof![
            3 => outline(ANSWER_KEYS).prop_map(|v| v.to_string().into_bytes()),
            1 => prop::collection::vec(any::<u8>(), 0..64),
        ],
        status in prop::sample::select(vec![400u16, 401, 403, 404, 429, 500, 503]),
        error_type in prop::option::of(prop::sample::select(vec!["ThrottlingException", "ValidationException", "x"])),
    ) {
        for seam in seams() {
            if let Some(out) = seam.translate_answer(&mut Read::default(), &body) {
                let json = serde_json::from_slice::<Value>(&out).is_ok();
                prop_assert!(json || out == body, "{:?}: {}", seam, String::from_utf8_lossy(&out));
            }
            // (an error between two APIs is always the client's JSON; within
            // one API it may pass as it came)
            let out = seam.error(Bytes::from(body.clone()), status, error_type);
            let json = serde_json::from_slice::<Value>(&out).is_ok();
            let strict = !seam.same_api() && served(seam);
            prop_assert!(json || (!strict && out == body), "{:?}: {}", seam, String::from_utf8_lossy(&out));
        }
    }
}
