//! Streams, both ways, event by event.

use super::super::super::testing::{deltas, usage};
use super::super::{ChatToMessages, MessagesToChat};
use super::{chat_events, json, named_events, read, run};
use crate::protocol::Read;
use serde_json::Value;
use shared::wire::anthropic::StreamEvent;

const ANTHROPIC_STREAM: &[&str] = &[
    r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":1,"cache_read_input_tokens":100,"cache_creation_input_tokens":20}}}"#,
    r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
    r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
    r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"sig"}}"#,
    r#"{"type":"content_block_stop","index":0}"#,
    r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
    r#"{"type":"ping"}"#,
    r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hel\"lo"}}"#,
    r#"{"type":"content_block_stop","index":1}"#,
    r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_1","name":"lookup","input":{}}}"#,
    r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"city\":"}}"#,
    r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}}"#,
    r#"{"type":"content_block_stop","index":2}"#,
    r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":42}}"#,
    r#"{"type":"message_stop"}"#,
];

fn to_chat(stream: &[&str], include_usage: bool, end: bool) -> (Vec<Value>, Read) {
    let mut r = read();
    let out = run(&mut MessagesToChat::new(include_usage), stream, &mut r, end);
    (chat_events(&out), r)
}

#[test]
fn anthropic_stream_as_openai_chunks() {
    let (chunks, r) = to_chat(ANTHROPIC_STREAM, true, true);
    let deltas = deltas(&chunks);
    let rows: &[(&str, usize, &str)] = &[
        (
            "message_start: the role",
            0,
            r#"{"role":"assistant","content":""}"#,
        ),
        ("thinking_delta", 1, r#"{"reasoning_content":"hmm"}"#),
        ("text_delta", 2, r#"{"content":"Hel\"lo"}"#),
        (
            "tool_use start",
            3,
            r#"{"tool_calls":[{"index":0,"id":"toolu_1","type":"function","function":{"name":"lookup","arguments":""}}]}"#,
        ),
        (
            "input_json_delta",
            4,
            r#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}"#,
        ),
        (
            "input_json_delta",
            5,
            r#"{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}"#,
        ),
        ("message_delta", 6, "{}"),
    ];
    for (what, i, want) in rows {
        assert_eq!(deltas.get(*i), Some(&json(want)), "{what}: {chunks:?}");
    }
    assert_eq!(
        deltas.len(),
        7,
        "ping, signature and block stops make no chunk: {chunks:?}"
    );
    assert_eq!(chunks[6]["choices"][0]["finish_reason"], "tool_calls");
    for c in &chunks[..8] {
        assert_eq!(
            (&c["id"], &c["object"], &c["model"]),
            (
                &json(r#""msg_1""#),
                &json(r#""chat.completion.chunk""#),
                &json(r#""claude-x""#)
            )
        );
    }
    // the usage chunk, then [DONE]
    assert_eq!(chunks[7]["choices"], json("[]"));
    assert_eq!(
        chunks[7]["usage"],
        json(
            r#"{"prompt_tokens":130,"completion_tokens":42,"total_tokens":172,"prompt_tokens_details":{"cached_tokens":100}}"#
        )
    );
    assert_eq!(chunks[8], "[DONE]");
    assert_eq!(chunks.len(), 9);
    assert!(r.done);
    assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(r.usage, Some(usage(130, 100, 20, 42, 172)));
}

#[test]
fn the_usage_chunk_only_when_asked() {
    let (chunks, r) = to_chat(ANTHROPIC_STREAM, false, true);
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "{chunks:?}"
    );
    assert_eq!(chunks.last(), Some(&json(r#""[DONE]""#)));
    assert_eq!(r.usage.unwrap().completion_tokens, 42, "read all the same");
}

#[test]
fn a_cut_anthropic_stream_is_left_cut() {
    // cut mid-answer: no [DONE] invented
    let (chunks, r) = to_chat(&ANTHROPIC_STREAM[..9], true, true);
    assert!(
        chunks
            .iter()
            .all(|c| c != "[DONE]" && c.get("usage").is_none()),
        "{chunks:?}"
    );
    assert!(!r.done);
    // complete but for message_stop: what is owed is written at the end
    let (chunks, r) = to_chat(&ANTHROPIC_STREAM[..14], true, true);
    assert_eq!(chunks.last(), Some(&json(r#""[DONE]""#)));
    assert_eq!(chunks[chunks.len() - 2]["usage"]["completion_tokens"], 42);
    assert!(!r.done, "the end marker was not seen");
    // and not twice
    let (chunks, _) = to_chat(ANTHROPIC_STREAM, true, true);
    assert_eq!(chunks.iter().filter(|c| *c == "[DONE]").count(), 1);
}

#[test]
fn an_anthropic_error_event_becomes_an_openai_error_event() {
    let (chunks, _) = to_chat(
        &[r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#],
        true,
        true,
    );
    assert_eq!(
        chunks,
        vec![json(
            r#"{"error":{"message":"Overloaded","type":"overloaded_error","code":null}}"#
        )]
    );
}

const OPENAI_STREAM: &[&str] = &[
    r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-x","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-x","choices":[{"index":0,"delta":{"reasoning_content":"hmm"},"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-x","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-x","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-x","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"lookup","arguments":""}}]},"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-x","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":\"Paris\"}"}}]},"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-x","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_2","type":"function","function":{"name":"time","arguments":"{}"}}]},"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-x","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
    r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-x","choices":[],"usage":{"prompt_tokens":130,"completion_tokens":42,"total_tokens":172,"prompt_tokens_details":{"cached_tokens":100}}}"#,
    "[DONE]",
];

fn to_messages(stream: &[&str], end: bool) -> (Vec<(String, Value)>, Read) {
    let mut r = read();
    let out = run(&mut ChatToMessages::new(), stream, &mut r, end);
    let evs = named_events(&out)
        .into_iter()
        .map(|(name, data)| {
            let name = name.expect("Anthropic events are named");
            let typed: StreamEvent = serde_json::from_value(data.clone())
                .unwrap_or_else(|e| panic!("not an Anthropic event ({e}): {data}"));
            assert_eq!(typed.name(), name, "the name is the data's type");
            (name, data)
        })
        .collect();
    (evs, r)
}

#[test]
fn openai_stream_as_anthropic_events() {
    let (evs, r) = to_messages(OPENAI_STREAM, true);
    let want = [
        r#"{"type":"message_start","message":{"id":"chatcmpl-1","type":"message","role":"assistant","model":"gpt-x","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
        r#"{"type":"content_block_stop","index":0}"#,
        r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hel"}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"lo"}}"#,
        r#"{"type":"content_block_stop","index":1}"#,
        r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"call_1","name":"lookup","input":{}}}"#,
        r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"city\":\"Paris\"}"}}"#,
        r#"{"type":"content_block_stop","index":2}"#,
        r#"{"type":"content_block_start","index":3,"content_block":{"type":"tool_use","id":"call_2","name":"time","input":{}}}"#,
        r#"{"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#,
        r#"{"type":"content_block_stop","index":3}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":30,"output_tokens":42,"cache_read_input_tokens":100,"cache_creation_input_tokens":0}}"#,
        r#"{"type":"message_stop"}"#,
    ];
    let got: Vec<&Value> = evs.iter().map(|(_, d)| d).collect();
    for (i, w) in want.iter().enumerate() {
        assert_eq!(got.get(i), Some(&&json(w)), "event {i}: {got:?}");
    }
    assert_eq!(got.len(), want.len());
    assert!(r.done);
    assert_eq!(r.usage.unwrap().prompt_tokens, 130);
    assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(r.chat_id.as_deref(), Some("chatcmpl-1"));
}

#[test]
fn a_cut_openai_stream_is_left_cut() {
    // cut mid-answer: no message_stop invented
    let (evs, r) = to_messages(&OPENAI_STREAM[..4], true);
    assert!(
        evs.iter()
            .all(|(n, _)| n != "message_delta" && n != "message_stop"),
        "{evs:?}"
    );
    assert!(!r.done);
    // finished but without [DONE]: the message_delta and message_stop owed
    let (evs, _) = to_messages(&OPENAI_STREAM[..9], true);
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);
    assert_eq!(evs[evs.len() - 2].1["usage"]["output_tokens"], 42);
    // and not twice
    let (evs, _) = to_messages(OPENAI_STREAM, true);
    assert_eq!(evs.iter().filter(|(n, _)| n == "message_stop").count(), 1);
}

#[test]
fn an_openai_error_event_becomes_an_anthropic_error_event() {
    let (evs, _) = to_messages(
        &[r#"{"error":{"message":"boom","type":"server_error"}}"#],
        true,
    );
    assert_eq!(
        evs,
        vec![(
            "error".to_string(),
            json(r#"{"type":"error","error":{"type":"api_error","message":"boom"}}"#)
        )]
    );
}

#[test]
fn tool_calls_numbered_alike_but_with_other_ids_are_separate_blocks() {
    let chunk = |id: &str, name: &str, args: &str| {
        format!(
            r#"{{"id":"c","model":"m","choices":[{{"index":0,"delta":{{"tool_calls":[{{"index":0,"id":"{id}","function":{{"name":"{name}","arguments":"{args}"}}}}]}},"finish_reason":null}}]}}"#
        )
    };
    let (a, b) = (chunk("call_a", "f", "{}"), chunk("call_b", "g", "{}"));
    // an id repeated on a continuing delta stays one block
    let (a2, fin) = (
        chunk("call_a", "", ""),
        r#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#.to_string(),
    );
    let stream = [a.as_str(), a2.as_str(), b.as_str(), fin.as_str(), "[DONE]"];
    let (evs, _) = to_messages(&stream, true);
    let starts: Vec<(u64, &str)> = evs
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, d)| {
            (
                d["index"].as_u64().unwrap(),
                d["content_block"]["id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(starts, [(0, "call_a"), (1, "call_b")]);
}
