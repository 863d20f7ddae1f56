//! Anthropic Messages clients reach Gemini by composing the Messages <-> chat
//! translation with chat <-> Gemini: what one side writes, the other reads.

use super::super::{chat_to_gemini, GeminiToChat};
use super::streams::STREAM;
use super::{json, opts, read};
use crate::protocol::anthropic::{messages_to_chat, ChatToMessages};
use bytes::BytesMut;
use serde_json::Value;

#[test]
fn a_messages_tool_round_trip_reaches_gemini() {
    let messages = br#"{"model":"claude-x","max_tokens":100,"system":"be brief","stream":true,
      "messages":[{"role":"user","content":"weather?"},
        {"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"lookup","input":{"city":"Paris"}}]},
        {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"{\"temp\":21}"}]}],
      "tools":[{"name":"lookup","input_schema":{"type":"object"}}],"tool_choice":{"type":"any"}}"#;
    let chat = messages_to_chat(messages, &opts(&[])).unwrap();
    let t = chat_to_gemini(&chat.body, &opts(&[])).unwrap();
    let got: Value = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(
        got["systemInstruction"],
        json(r#"{"parts":[{"text":"be brief"}]}"#)
    );
    assert_eq!(
        got["contents"][1]["parts"][0]["functionCall"],
        json(r#"{"name":"lookup","args":{"city":"Paris"}}"#)
    );
    assert_eq!(
        got["contents"][2]["parts"][0]["functionResponse"],
        json(r#"{"name":"lookup","response":{"temp":21}}"#)
    );
    assert_eq!(got["toolConfig"]["functionCallingConfig"]["mode"], "ANY");
    assert_eq!(got["generationConfig"]["maxOutputTokens"], 100);
    assert_eq!(t.warnings, Vec::<String>::new());
}

#[test]
fn a_gemini_stream_reaches_a_messages_client() {
    let mut gemini = GeminiToChat::new(true);
    let mut chat = BytesMut::new();
    let mut r = read();
    for e in STREAM {
        gemini.event(e.as_bytes(), &mut r, &mut chat);
    }
    gemini.end(&mut r, &mut chat);
    let mut messages = ChatToMessages::new();
    let mut out = BytesMut::new();
    let mut r = read();
    for e in std::str::from_utf8(&chat).unwrap().split_terminator("\n\n") {
        let data = e.strip_prefix("data: ").unwrap();
        messages.event(data.as_bytes(), &mut r, &mut out);
    }
    let text = std::str::from_utf8(&out).unwrap();
    let last_delta = text
        .split_terminator("\n\n")
        .filter_map(|e| e.split_once("data: ").map(|(_, d)| json(d)))
        .filter(|d| d["type"] == "message_delta")
        .last()
        .unwrap();
    assert_eq!(last_delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(last_delta["usage"]["output_tokens"], 27);
    assert!(
        text.contains(r#""partial_json":"{\"city\":\"Paris\"}""#),
        "{text}"
    );
    assert!(
        text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
        "{text}"
    );
    assert_eq!(r.usage.unwrap().prompt_tokens, 10);
}
