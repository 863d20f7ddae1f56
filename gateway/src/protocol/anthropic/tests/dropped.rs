//! Requests, both ways: what has no counterpart (dropped with a warning, or
//! refused naming the field), provider options, nesting.

use super::super::{chat_to_messages, messages_to_chat, Refused};
use super::json;
use super::requests::{to_chat, to_messages, U};
use serde_json::value::RawValue;
use serde_json::Value;

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
