//! Requests, both ways: one row per field.

use super::super::{chat_to_messages, messages_to_chat, Refused};
use super::{json, opts, DEFAULT_MAX};
use serde_json::value::RawValue;
use serde_json::Value;

fn to_messages(body: &str) -> (Value, Vec<String>) {
    let t = chat_to_messages(body.as_bytes(), &opts(&[])).unwrap_or_else(|r| panic!("{r}: {body}"));
    (serde_json::from_slice(&t.body).unwrap(), t.warnings)
}

fn to_chat(body: &str) -> (Value, Vec<String>) {
    let t = messages_to_chat(body.as_bytes(), &opts(&[])).unwrap_or_else(|r| panic!("{r}: {body}"));
    (serde_json::from_slice(&t.body).unwrap(), t.warnings)
}

/// (what, request, JSON pointer into the translated request, value there)
type Row = (&'static str, &'static str, &'static str, &'static str);

const U: &str = r#"{"role":"user","content":"hi"}"#;

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

#[test]
fn fields_without_counterpart_are_dropped_with_a_warning_naming_them() {
    let cases: &[(&str, &str, &str)] = &[
        // (direction, request, the warning names)
        (
            "to_messages",
            r#"{"logit_bias":{"1":2},"messages":[USER]}"#,
            "logit_bias",
        ),
        (
            "to_messages",
            r#"{"response_format":{"type":"json_object"},"messages":[USER]}"#,
            "response_format",
        ),
        (
            "to_messages",
            r#"{"reasoning_effort":"high","max_tokens":100,"messages":[USER]}"#,
            "reasoning_effort",
        ),
        (
            "to_messages",
            r#"{"reasoning_effort":"low","temperature":0.3,"messages":[USER]}"#,
            "temperature",
        ),
        (
            "to_messages",
            r#"{"messages":[{"role":"user","name":"bob","content":"x"}]}"#,
            "messages[0].name",
        ),
        (
            "to_messages",
            r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png","detail":"high"}}]}]}"#,
            "messages[0].content[0].image_url.detail",
        ),
        (
            "to_messages",
            r#"{"messages":[USER,{"role":"assistant","content":"x","reasoning_content":"because"}]}"#,
            "messages[1].reasoning_content",
        ),
        (
            "to_messages",
            r#"{"tools":[{"type":"function","function":{"name":"f","strict":true}}],"messages":[USER]}"#,
            "tools[0].function.strict",
        ),
        (
            "to_chat",
            r#"{"system":[{"type":"text","text":"a","cache_control":{"type":"ephemeral"}}],"max_tokens":9,"messages":[USER]}"#,
            "system[0].cache_control",
        ),
        (
            "to_chat",
            r#"{"max_tokens":9,"messages":[{"role":"user","content":[{"type":"text","text":"a","cache_control":{"type":"ephemeral"}}]}]}"#,
            "messages[0].content[0].cache_control",
        ),
        (
            "to_chat",
            r#"{"top_k":5,"max_tokens":9,"messages":[USER]}"#,
            "top_k",
        ),
        (
            "to_chat",
            r#"{"max_tokens":9,"messages":[USER,{"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"s"}]}]}"#,
            "messages[1].content[0] (a thinking block)",
        ),
        (
            "to_chat",
            r#"{"max_tokens":9,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","is_error":true,"content":"boom"}]}]}"#,
            "messages[0].content[0].is_error",
        ),
        (
            "to_chat",
            r#"{"metadata":{"user_id":"u","other":1},"max_tokens":9,"messages":[USER]}"#,
            "metadata.other",
        ),
        (
            "to_chat",
            r#"{"thinking":{"type":"adaptive"},"max_tokens":9,"messages":[USER]}"#,
            "thinking",
        ),
    ];
    for (dir, body, names) in cases {
        let body = body.replace("USER", U);
        let warnings = if *dir == "to_chat" {
            to_chat(&body).1
        } else {
            to_messages(&body).1
        };
        assert!(
            warnings.iter().any(|w| w.starts_with(names)),
            "{body}: {warnings:?} should name {names}"
        );
    }
    // the dropped field is not sent
    let (got, _) = to_messages(&format!(
        r#"{{"logit_bias":{{"1":2}},"seed":1,"messages":[{U}]}}"#
    ));
    assert!(
        got.get("logit_bias").is_none() && got.get("seed").is_none(),
        "{got}"
    );
}

#[test]
fn warnings_of_one_kind_are_one_warning() {
    let parts = r#"{"type":"text","text":"a","cache_control":{"type":"ephemeral"}}"#;
    let body = format!(
        r#"{{"max_tokens":9,"messages":[{{"role":"user","content":[{}]}}]}}"#,
        vec![parts; 50].join(",")
    );
    let (_, warnings) = to_chat(&body);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("49 more"), "{warnings:?}");
    // unknown fields: bounded however many the client sends
    let fields: String = (0..100).map(|i| format!(r#""x{i}":1,"#)).collect();
    let (_, warnings) = to_messages(&format!(r#"{{{fields}"messages":[{U}]}}"#));
    assert!(warnings.len() <= 17, "{}", warnings.len());
    // and so are the names and values quoted
    let key = "k".repeat(100_000);
    let (_, warnings) = to_messages(&format!(r#"{{"{key}":1,"messages":[{U}]}}"#));
    assert!(warnings[0].len() < 300, "{}", warnings[0].len());
    let value = "v".repeat(100_000);
    let body = format!(r#"{{"max_tokens":"{value}","messages":[{U}]}}"#);
    let refused = chat_to_messages(body.as_bytes(), &super::opts(&[]))
        .err()
        .unwrap();
    assert!(refused.reason.len() < 300, "{}", refused.reason.len());
}

#[test]
fn requests_that_cannot_be_served_are_refused_naming_the_field() {
    let cases: &[(&str, &str, &str)] = &[
        ("to_messages", r#"{"n":2,"messages":[USER]}"#, "n"),
        (
            "to_messages",
            r#"{"temperature":1.5,"messages":[USER]}"#,
            "temperature",
        ),
        (
            "to_messages",
            r#"{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}"#,
            "messages[0].content[0].type",
        ),
        (
            "to_messages",
            r#"{"messages":[USER,{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{oops"}}]}]}"#,
            "messages[1].tool_calls[0].function.arguments",
        ),
        (
            "to_messages",
            r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,raw"}}]}]}"#,
            "messages[0].content[0].image_url.url",
        ),
        (
            "to_messages",
            r#"{"reasoning_effort":"extreme","messages":[USER]}"#,
            "reasoning_effort",
        ),
        (
            "to_messages",
            r#"{"tools":[{"type":"custom","custom":{}}],"messages":[USER]}"#,
            "tools[0].type",
        ),
        ("to_messages", r#"{"model":"m"}"#, "messages"),
        (
            "to_messages",
            r#"{"messages":[{"role":"robot","content":"x"}]}"#,
            "messages[0].role",
        ),
        (
            "to_messages",
            r#"{"max_tokens":"many","messages":[USER]}"#,
            "max_tokens",
        ),
        (
            "to_chat",
            r#"{"max_tokens":9,"messages":[{"role":"user","content":[{"type":"document","source":{}}]}]}"#,
            "messages[0].content[0].type",
        ),
        (
            "to_chat",
            r#"{"tools":[{"type":"web_search_20250305","name":"web_search"}],"max_tokens":9,"messages":[USER]}"#,
            "tools[0].type",
        ),
        (
            "to_chat",
            r#"{"tool_choice":{"type":"tool"},"max_tokens":9,"messages":[USER]}"#,
            "tool_choice.name",
        ),
        (
            "to_chat",
            r#"{"max_tokens":9,"messages":[{"role":"system","content":"x"}]}"#,
            "messages[0].role",
        ),
        ("to_chat", r#"{"max_tokens":9}"#, "messages"),
    ];
    for (dir, body, field) in cases {
        let body = body.replace("USER", U);
        let r: Result<_, Refused> = if *dir == "to_chat" {
            messages_to_chat(body.as_bytes(), &super::opts(&[]))
        } else {
            chat_to_messages(body.as_bytes(), &super::opts(&[]))
        };
        let refused = r
            .err()
            .unwrap_or_else(|| panic!("{body} should be refused"));
        assert_eq!(refused.field, *field, "{body}: {refused}");
        assert!(!refused.reason.is_empty());
    }
}

#[test]
fn provider_options_are_set_over_the_translated_fields() {
    let options = vec![
        (
            "max_tokens".to_string(),
            RawValue::from_string("77".into()).unwrap(),
        ),
        (
            "top_k".to_string(),
            RawValue::from_string("3".into()).unwrap(),
        ),
    ];
    let body = format!(r#"{{"max_tokens":5,"messages":[{U}]}}"#);
    let t = chat_to_messages(body.as_bytes(), &super::opts(&options)).unwrap();
    let got: Value = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(
        (got["max_tokens"].clone(), got["top_k"].clone()),
        (json("77"), json("3"))
    );
    assert_eq!(
        std::str::from_utf8(&t.body)
            .unwrap()
            .matches("max_tokens")
            .count(),
        1
    );
    let t = messages_to_chat(body.as_bytes(), &super::opts(&options)).unwrap();
    let got: Value = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(got["max_tokens"], 77);
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!(
        r#"{{"messages":[{{"role":"user","content":{}"x"{}}}]}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    assert!(chat_to_messages(deep.as_bytes(), &super::opts(&[])).is_err());
    assert!(messages_to_chat(deep.as_bytes(), &super::opts(&[])).is_err());
}
