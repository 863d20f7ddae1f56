//! The built-in `mock` provider: answers chat, completions, embeddings, responses
//! and Anthropic's messages and count_tokens in-process (JSON or SSE, each in its
//! own API's shape) with a canned text and real usage figures, so the gateway can
//! be tried and load-tested with no other service. Usage: prompt tokens are the
//! prompt text's bytes / 4 rounded up (at least 1), one completion token per word.

use crate::endpoint::Endpoint;
use crate::request_body::ClientBody;
use crate::upstream::UpstreamBody;
use bytes::Bytes;
use serde_json::{json, Value};
use shared::usage::estimate_tokens;
use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

const ANSWER: &str = "This is a reply from the gateway's built-in mock provider.";
const EMBEDDING_DIM: usize = 8;

/// The mock's answer to one request (`include_usage`: the upstream request asked for
/// the usage chunk, whether the client or the gateway added it).
pub fn answer(
    endpoint: Endpoint,
    body: &ClientBody<'_>,
    model: &str,
    include_usage: bool,
) -> http::Response<UpstreamBody> {
    let prompt_tokens = estimate_tokens(body.prompt_bytes()).max(1);
    let words: Vec<&str> = ANSWER.split_inclusive(' ').collect();
    let completion_tokens = words.len() as u64;
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0}
    });
    let id = uuid::Uuid::new_v4().simple().to_string();
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match endpoint {
        Endpoint::ChatCompletions | Endpoint::Completions if body.stream => {
            let chat = endpoint == Endpoint::ChatCompletions;
            let id = format!("{}-mock-{id}", if chat { "chatcmpl" } else { "cmpl" });
            let object = if chat {
                "chat.completion.chunk"
            } else {
                "text_completion"
            };
            let choice = |text: Option<&str>, finish: Option<&str>| {
                if chat {
                    let delta = match text {
                        Some(t) => json!({"content": t}),
                        None if finish.is_none() => json!({"role": "assistant", "content": ""}),
                        None => json!({}),
                    };
                    json!({"index": 0, "delta": delta, "finish_reason": finish})
                } else {
                    json!({"index": 0, "text": text.unwrap_or(""), "finish_reason": finish})
                }
            };
            let chunk = |choices: Value, usage: Option<&Value>| {
                let mut c = json!({"id": id, "object": object, "created": created, "model": model, "choices": choices});
                if let Some(u) = usage {
                    c["usage"] = u.clone();
                }
                sse(&c)
            };
            let mut frames = VecDeque::with_capacity(words.len() + 4);
            if chat {
                frames.push_back(chunk(json!([choice(None, None)]), None));
            }
            for w in &words {
                frames.push_back(chunk(json!([choice(Some(w), None)]), None));
            }
            frames.push_back(chunk(json!([choice(None, Some("stop"))]), None));
            if include_usage {
                frames.push_back(chunk(json!([]), Some(&usage)));
            }
            frames.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
            response("text/event-stream", frames)
        }
        Endpoint::ChatCompletions => json_response(&json!({
            "id": format!("chatcmpl-mock-{id}"),
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
            "usage": usage
        })),
        Endpoint::Completions => json_response(&json!({
            "id": format!("cmpl-mock-{id}"),
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "text": ANSWER, "finish_reason": "stop"}],
            "usage": usage
        })),
        Endpoint::Embeddings => embeddings(body, model),
        Endpoint::Responses => responses(body.stream, &id, created, model, prompt_tokens, &words),
        Endpoint::Models => json_response(&json!({"object": "list", "data": [
            {"id": model, "object": "model", "created": created, "owned_by": "mock"}
        ]})),
        Endpoint::Messages => messages(body.stream, &id, model, prompt_tokens, &words),
        Endpoint::CountTokens => json_response(&json!({"input_tokens": prompt_tokens})),
    }
}

/// An Anthropic Messages answer (JSON, or the stream of its events).
fn messages(
    stream: bool,
    id: &str,
    model: &str,
    prompt_tokens: u64,
    words: &[&str],
) -> http::Response<UpstreamBody> {
    let id = format!("msg_mock{id}");
    let usage = |output: usize| {
        json!({"input_tokens": prompt_tokens, "output_tokens": output,
               "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0})
    };
    if !stream {
        return json_response(&json!({
            "id": id, "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": ANSWER}],
            "stop_reason": "end_turn", "stop_sequence": null, "usage": usage(words.len())
        }));
    }
    let mut frames = VecDeque::with_capacity(words.len() + 6);
    let start = json!({"id": id, "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage(1)});
    frames.push_back(sse_event(
        "message_start",
        &json!({"type": "message_start", "message": start}),
    ));
    frames.push_back(sse_event(
        "content_block_start",
        &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    ));
    for w in words {
        frames.push_back(sse_event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}),
        ));
    }
    frames.push_back(sse_event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    frames.push_back(sse_event(
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                "usage": {"output_tokens": words.len()}}),
    ));
    frames.push_back(sse_event("message_stop", &json!({"type": "message_stop"})));
    response("text/event-stream", frames)
}

fn embeddings(body: &ClientBody<'_>, model: &str) -> http::Response<UpstreamBody> {
    let inputs: Vec<String> = match body
        .get("input")
        .and_then(|v| serde_json::from_str::<Value>(v.get()).ok())
    {
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(a)) => a
            .into_iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    let tokens: u64 = inputs.iter().map(|s| estimate_tokens(s.len()).max(1)).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, s)| json!({"object": "embedding", "index": i, "embedding": vector(s)}))
        .collect();
    json_response(&json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}
    }))
}

/// A deterministic unit vector derived from the text (FNV-1a seeded per dimension).
fn vector(s: &str) -> Vec<f32> {
    let raw: Vec<f32> = (0..EMBEDDING_DIM as u64)
        .map(|d| {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ d;
            for b in s.bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            (h % 2000) as f32 / 1000.0 - 1.0
        })
        .collect();
    let norm = raw
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    raw.into_iter().map(|x| x / norm).collect()
}

fn responses(
    stream: bool,
    id: &str,
    created: u64,
    model: &str,
    prompt_tokens: u64,
    words: &[&str],
) -> http::Response<UpstreamBody> {
    let usage = json!({
        "input_tokens": prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": words.len(),
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt_tokens + words.len() as u64
    });
    let resp_id = format!("resp_mock{id}");
    let message = json!({
        "type": "message", "id": format!("msg_mock{id}"), "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": ANSWER, "annotations": []}]
    });
    let full = json!({
        "id": resp_id, "object": "response", "created_at": created, "status": "completed",
        "model": model, "output": [message], "usage": usage
    });
    if !stream {
        return json_response(&full);
    }
    let mut frames = VecDeque::new();
    let mut created_ev = full.clone();
    created_ev["status"] = json!("in_progress");
    created_ev["output"] = json!([]);
    created_ev["usage"] = Value::Null;
    frames.push_back(sse_event(
        "response.created",
        &json!({"type": "response.created", "response": created_ev}),
    ));
    for w in words {
        frames.push_back(sse_event(
            "response.output_text.delta",
            &json!({"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": w}),
        ));
    }
    frames.push_back(sse_event(
        "response.completed",
        &json!({"type": "response.completed", "response": full}),
    ));
    response("text/event-stream", frames)
}

fn sse(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

fn sse_event(name: &str, v: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {v}\n\n"))
}

fn json_response(v: &Value) -> http::Response<UpstreamBody> {
    response(
        "application/json",
        VecDeque::from([Bytes::from(v.to_string())]),
    )
}

fn response(content_type: &'static str, frames: VecDeque<Bytes>) -> http::Response<UpstreamBody> {
    let mut resp = http::Response::new(UpstreamBody::Frames(frames));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Dialect, Inbound, Seam};

    const SEAM: Seam = Seam {
        inbound: Inbound::OpenAi(Endpoint::ChatCompletions),
        dialect: Dialect::OpenAi,
    };
    use crate::meter::Meter;

    fn drain(resp: http::Response<UpstreamBody>, meter: &mut Meter) -> String {
        let UpstreamBody::Frames(frames) = resp.into_body() else {
            unreachable!()
        };
        let mut out = String::new();
        for f in frames {
            if let Some(b) = meter.on_frame(f) {
                out.push_str(std::str::from_utf8(&b).unwrap());
            }
        }
        meter.finish();
        out
    }

    #[test]
    fn chat_json_has_real_usage() {
        let body = ClientBody::parse(
            br#"{"model":"m","messages":[{"role":"user","content":"12345678"}]}"#,
        )
        .unwrap();
        let mut m = Meter::new(SEAM, false, false, false);
        let out = drain(answer(Endpoint::ChatCompletions, &body, "m", false), &mut m);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], ANSWER);
        let u = m.read.usage.unwrap();
        assert_eq!(u.prompt_tokens, 2);
        assert_eq!(u.completion_tokens, ANSWER.split(' ').count() as u64);
    }

    #[test]
    fn chat_stream_with_usage_chunk() {
        let body = ClientBody::parse(
            br#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
        let mut m = Meter::new(SEAM, true, true, false);
        let out = drain(answer(Endpoint::ChatCompletions, &body, "m", true), &mut m);
        assert!(out.ends_with("data: [DONE]\n\n"));
        assert!(!out.contains("\"usage\""), "usage chunk must be stripped");
        assert_eq!(
            m.read.usage.unwrap().completion_tokens,
            ANSWER.split(' ').count() as u64
        );
        assert_eq!(m.read.output_bytes, ANSWER.len());
        assert_eq!(m.read.finish_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn embeddings_one_vector_per_input() {
        let body = ClientBody::parse(br#"{"model":"e","input":["a","bb"]}"#).unwrap();
        let mut m = Meter::new(SEAM, false, false, false);
        let out = drain(answer(Endpoint::Embeddings, &body, "e", false), &mut m);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["data"].as_array().unwrap().len(), 2);
        assert_eq!(
            v["data"][1]["embedding"].as_array().unwrap().len(),
            EMBEDDING_DIM
        );
        assert_eq!(m.read.usage.unwrap().prompt_tokens, 2);
    }

    #[test]
    fn responses_stream_completes_with_usage() {
        let body = ClientBody::parse(br#"{"model":"m","stream":true,"input":"hello"}"#).unwrap();
        let mut m = Meter::new(SEAM, true, false, false);
        drain(answer(Endpoint::Responses, &body, "m", false), &mut m);
        assert!(m.read.done);
        assert_eq!(m.read.usage.unwrap().prompt_tokens, 2);
    }
}
