//! Requests, both ways: one row per field.

use super::super::{chat_to_messages, messages_to_chat};
use super::{json, opts, DEFAULT_MAX};
use serde_json::Value;

pub(super) fn to_messages(body: &str) -> (Value, Vec<String>) {
    let t = chat_to_messages(body.as_bytes(), &opts(&[])).unwrap_or_else(|r| panic!("{r}: {body}"));
    (serde_json::from_slice(&t.body).unwrap(), t.warnings)
}

pub(super) fn to_chat(body: &str) -> (Value, Vec<String>) {
    let t = messages_to_chat(body.as_bytes(), &opts(&[])).unwrap_or_else(|r| panic!("{r}: {body}"));
    (serde_json::from_slice(&t.body).unwrap(), t.warnings)
}

/// (what, request, JSON pointer into the translated request, value there)
type Row = (&'static str, &'static str, &'static str, &'static str);

pub(super) const U: &str = r#"{"role":"user","content":"hi"}"#;

#[test]
fn openai_chat_to_anthropic_messages() {
    let rows: &[Row] = &[
        (
            "model from the model map",
            r#"{"model":"gpt-4o","messages":[USER]}"#,
            "/model",
            r#""upstream-model""#,
        ),
        (
            "system message",
            r#"{"messages":[{"role":"system","content":"be brief"},USER]}"#,
            "/system",
            r#"[{"type":"text","text":"be brief"}]"#,
        ),
        (
            "developer message",
            r#"{"messages":[{"role":"developer","content":[{"type":"text","text":"be kind"}]},USER]}"#,
            "/system/0/text",
            r#""be kind""#,
        ),
        (
            "user text",
            r#"{"messages":[USER]}"#,
            "/messages",
            r#"[{"role":"user","content":[{"type":"text","text":"hi"}]}]"#,
        ),
        (
            "escaped text as it came",
            r#"{"messages":[{"role":"user","content":"say \"hi\"\n\u00e9"}]}"#,
            "/messages/0/content/0/text",
            r#""say \"hi\"\né""#,
        ),
        (
            "multi-turn",
            r#"{"messages":[USER,{"role":"assistant","content":"hello"},{"role":"user","content":"again"}]}"#,
            "/messages/1",
            r#"{"role":"assistant","content":[{"type":"text","text":"hello"}]}"#,
        ),
        (
            "max_tokens",
            r#"{"max_tokens":50,"messages":[USER]}"#,
            "/max_tokens",
            "50",
        ),
        (
            "max_completion_tokens over max_tokens",
            r#"{"max_tokens":50,"max_completion_tokens":70,"messages":[USER]}"#,
            "/max_tokens",
            "70",
        ),
        (
            "temperature",
            r#"{"temperature":0.5,"messages":[USER]}"#,
            "/temperature",
            "0.5",
        ),
        (
            "top_p",
            r#"{"top_p":0.9,"messages":[USER]}"#,
            "/top_p",
            "0.9",
        ),
        (
            "stop string",
            r#"{"stop":"END","messages":[USER]}"#,
            "/stop_sequences",
            r#"["END"]"#,
        ),
        (
            "stop array",
            r#"{"stop":["A","B"],"messages":[USER]}"#,
            "/stop_sequences",
            r#"["A","B"]"#,
        ),
        (
            "stream",
            r#"{"stream":true,"stream_options":{"include_usage":true},"messages":[USER]}"#,
            "/stream",
            "true",
        ),
        (
            "tools",
            r#"{"tools":[{"type":"function","function":{"name":"f","description":"d","parameters":{"type":"object","properties":{"a":{"type":"integer"}}}}}],"messages":[USER]}"#,
            "/tools",
            r#"[{"name":"f","description":"d","input_schema":{"type":"object","properties":{"a":{"type":"integer"}}}}]"#,
        ),
        (
            "tool without parameters",
            r#"{"tools":[{"type":"function","function":{"name":"f"}}],"messages":[USER]}"#,
            "/tools/0/input_schema",
            r#"{"type":"object"}"#,
        ),
        (
            "tool_choice auto",
            r#"{"tool_choice":"auto","messages":[USER]}"#,
            "/tool_choice",
            r#"{"type":"auto"}"#,
        ),
        (
            "tool_choice none",
            r#"{"tool_choice":"none","messages":[USER]}"#,
            "/tool_choice",
            r#"{"type":"none"}"#,
        ),
        (
            "tool_choice required",
            r#"{"tool_choice":"required","messages":[USER]}"#,
            "/tool_choice",
            r#"{"type":"any"}"#,
        ),
        (
            "tool_choice function",
            r#"{"tool_choice":{"type":"function","function":{"name":"f"}},"messages":[USER]}"#,
            "/tool_choice",
            r#"{"type":"tool","name":"f"}"#,
        ),
        (
            "parallel_tool_calls false",
            r#"{"tool_choice":"auto","parallel_tool_calls":false,"messages":[USER]}"#,
            "/tool_choice/disable_parallel_tool_use",
            "true",
        ),
        (
            "assistant tool_calls",
            r#"{"messages":[USER,{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]}]}"#,
            "/messages/1",
            r#"{"role":"assistant","content":[{"type":"tool_use","id":"call_1","name":"f","input":{"a":1}}]}"#,
        ),
        (
            "tool results in one user turn",
            r#"{"messages":[USER,{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":""}},{"id":"c2","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"1"},{"role":"tool","tool_call_id":"c2","content":[{"type":"text","text":"2"}]}]}"#,
            "/messages/2",
            r#"{"role":"user","content":[{"type":"tool_result","tool_use_id":"c1","content":[{"type":"text","text":"1"}]},{"type":"tool_result","tool_use_id":"c2","content":[{"type":"text","text":"2"}]}]}"#,
        ),
        (
            "image URL",
            r#"{"messages":[{"role":"user","content":[{"type":"text","text":"what"},{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}]}"#,
            "/messages/0/content/1",
            r#"{"type":"image","source":{"type":"url","url":"https://example.com/a.png"}}"#,
        ),
        (
            "image base64",
            r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0K"}}]}]}"#,
            "/messages/0/content/0/source",
            r#"{"type":"base64","media_type":"image/png","data":"iVBORw0K"}"#,
        ),
        (
            "response_format json_schema",
            r#"{"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"}}},"messages":[USER]}"#,
            "/output_config",
            r#"{"format":{"type":"json_schema","schema":{"type":"object"}}}"#,
        ),
        (
            "reasoning_effort",
            r#"{"reasoning_effort":"medium","max_completion_tokens":20000,"messages":[USER]}"#,
            "/thinking",
            r#"{"type":"enabled","budget_tokens":8192}"#,
        ),
        (
            "user",
            r#"{"user":"u-42","messages":[USER]}"#,
            "/metadata",
            r#"{"user_id":"u-42"}"#,
        ),
    ];
    for (what, body, pointer, want) in rows {
        let body = body.replace("USER", U);
        let (got, _) = to_messages(&body);
        assert_eq!(got.pointer(pointer), Some(&json(want)), "{what}: {got}");
    }
}

#[test]
fn max_tokens_defaults_when_absent() {
    let (got, _) = to_messages(&format!(r#"{{"messages":[{U}]}}"#));
    assert_eq!(got["max_tokens"], DEFAULT_MAX);
    // with thinking: the budget on top of the default
    let (got, w) = to_messages(&format!(
        r#"{{"reasoning_effort":"high","messages":[{U}]}}"#
    ));
    assert_eq!(got["max_tokens"], DEFAULT_MAX + 16384, "{w:?}");
    assert_eq!(got["thinking"]["budget_tokens"], 16384);
}

/// (what, Anthropic request, pointer into the OpenAI request, value there)
#[test]
fn anthropic_messages_to_openai_chat() {
    let rows: &[Row] = &[
        (
            "model from the model map",
            r#"{"model":"claude","max_tokens":9,"messages":[USER]}"#,
            "/model",
            r#""upstream-model""#,
        ),
        (
            "system string",
            r#"{"system":"be brief","max_tokens":9,"messages":[USER]}"#,
            "/messages/0",
            r#"{"role":"system","content":"be brief"}"#,
        ),
        (
            "system blocks",
            r#"{"system":[{"type":"text","text":"a","cache_control":{"type":"ephemeral"}},{"type":"text","text":"b"}],"max_tokens":9,"messages":[USER]}"#,
            "/messages/0/content",
            r#""a\n\nb""#,
        ),
        (
            "user text",
            r#"{"max_tokens":9,"messages":[USER]}"#,
            "/messages/0",
            r#"{"role":"user","content":"hi"}"#,
        ),
        (
            "escaped text as it came",
            r#"{"max_tokens":9,"messages":[{"role":"user","content":[{"type":"text","text":"say \"hi\"\n"}]}]}"#,
            "/messages/0/content",
            r#""say \"hi\"\n""#,
        ),
        (
            "assistant text blocks joined",
            r#"{"max_tokens":9,"messages":[USER,{"role":"assistant","content":[{"type":"text","text":"a\""},{"type":"text","text":"b"}]}]}"#,
            "/messages/1/content",
            r#""a\"b""#,
        ),
        (
            "text blocks",
            r#"{"max_tokens":9,"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}"#,
            "/messages/0/content",
            r#"[{"type":"text","text":"a"},{"type":"text","text":"b"}]"#,
        ),
        (
            "multi-turn",
            r#"{"max_tokens":9,"messages":[USER,{"role":"assistant","content":[{"type":"text","text":"hello"}]},USER]}"#,
            "/messages/1",
            r#"{"role":"assistant","content":"hello"}"#,
        ),
        (
            "max_tokens",
            r#"{"max_tokens":9,"messages":[USER]}"#,
            "/max_tokens",
            "9",
        ),
        (
            "temperature",
            r#"{"temperature":0.2,"max_tokens":9,"messages":[USER]}"#,
            "/temperature",
            "0.2",
        ),
        (
            "top_p",
            r#"{"top_p":0.8,"max_tokens":9,"messages":[USER]}"#,
            "/top_p",
            "0.8",
        ),
        (
            "stop_sequences",
            r#"{"stop_sequences":["X"],"max_tokens":9,"messages":[USER]}"#,
            "/stop",
            r#"["X"]"#,
        ),
        (
            "stream",
            r#"{"stream":true,"max_tokens":9,"messages":[USER]}"#,
            "/stream",
            "true",
        ),
        (
            "stream asks for usage",
            r#"{"stream":true,"max_tokens":9,"messages":[USER]}"#,
            "/stream_options",
            r#"{"include_usage":true}"#,
        ),
        (
            "tools",
            r#"{"tools":[{"name":"f","description":"d","input_schema":{"type":"object"},"cache_control":{"type":"ephemeral"}}],"max_tokens":9,"messages":[USER]}"#,
            "/tools",
            r#"[{"type":"function","function":{"name":"f","description":"d","parameters":{"type":"object"}}}]"#,
        ),
        (
            "tool_choice auto",
            r#"{"tool_choice":{"type":"auto"},"max_tokens":9,"messages":[USER]}"#,
            "/tool_choice",
            r#""auto""#,
        ),
        (
            "tool_choice any",
            r#"{"tool_choice":{"type":"any"},"max_tokens":9,"messages":[USER]}"#,
            "/tool_choice",
            r#""required""#,
        ),
        (
            "tool_choice none",
            r#"{"tool_choice":{"type":"none"},"max_tokens":9,"messages":[USER]}"#,
            "/tool_choice",
            r#""none""#,
        ),
        (
            "tool_choice tool",
            r#"{"tool_choice":{"type":"tool","name":"f"},"max_tokens":9,"messages":[USER]}"#,
            "/tool_choice",
            r#"{"type":"function","function":{"name":"f"}}"#,
        ),
        (
            "disable_parallel_tool_use",
            r#"{"tool_choice":{"type":"auto","disable_parallel_tool_use":true},"max_tokens":9,"messages":[USER]}"#,
            "/parallel_tool_calls",
            "false",
        ),
        (
            "tool_use",
            r#"{"max_tokens":9,"messages":[USER,{"role":"assistant","content":[{"type":"text","text":"let me"},{"type":"tool_use","id":"toolu_1","name":"f","input":{"a":1}}]}]}"#,
            "/messages/1",
            r#"{"role":"assistant","content":"let me","tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]}"#,
        ),
        (
            "tool_result",
            r#"{"max_tokens":9,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"42"},{"type":"text","text":"go on"}]}]}"#,
            "/messages",
            r#"[{"role":"tool","content":"42","tool_call_id":"toolu_1"},{"role":"user","content":"go on"}]"#,
        ),
        (
            "tool_result blocks",
            r#"{"max_tokens":9,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}]}"#,
            "/messages/0/content",
            r#""a\nb""#,
        ),
        (
            "image base64",
            r#"{"max_tokens":9,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBO"}},{"type":"text","text":"what"}]}]}"#,
            "/messages/0/content/0",
            r#"{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBO"}}"#,
        ),
        (
            "image URL",
            r#"{"max_tokens":9,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"https://example.com/a.png"}}]}]}"#,
            "/messages/0/content/0/image_url/url",
            r#""https://example.com/a.png""#,
        ),
        (
            "thinking",
            r#"{"thinking":{"type":"enabled","budget_tokens":10000},"max_tokens":20000,"messages":[USER]}"#,
            "/reasoning_effort",
            r#""medium""#,
        ),
        (
            "thinking blocks of earlier turns",
            r#"{"max_tokens":9,"messages":[USER,{"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"sig"},{"type":"text","text":"ok"}]}]}"#,
            "/messages/1",
            r#"{"role":"assistant","content":"ok"}"#,
        ),
        (
            "metadata.user_id",
            r#"{"metadata":{"user_id":"u-7"},"max_tokens":9,"messages":[USER]}"#,
            "/user",
            r#""u-7""#,
        ),
        (
            "output_config.format",
            r#"{"output_config":{"format":{"type":"json_schema","schema":{"type":"object"}}},"max_tokens":9,"messages":[USER]}"#,
            "/response_format",
            r#"{"type":"json_schema","json_schema":{"name":"output","schema":{"type":"object"},"strict":true}}"#,
        ),
    ];
    for (what, body, pointer, want) in rows {
        let body = body.replace("USER", U);
        let (got, _) = to_chat(&body);
        assert_eq!(got.pointer(pointer), Some(&json(want)), "{what}: {got}");
    }
}
