//! What a Gemini upstream cannot serve (refused, naming the field) and what
//! it has no counterpart of (dropped, named in a warning).

use super::super::{chat_to_gemini, embeddings_to_gemini};
use super::opts;
use super::requests::{to_gemini, U};

/// (request, the field the refusal names)
type Row = (&'static str, &'static str);

#[test]
fn refusals_name_the_field() {
    let rows: &[Row] = &[
        (r#"{"model":"m"}"#, "messages"),
        (r#"[1]"#, "(body)"),
        (
            r#"{"messages":[{"role":"system","content":"only this"}]}"#,
            "messages",
        ),
        (
            r#"{"messages":[{"role":"bot","content":"x"}]}"#,
            "messages[0].role",
        ),
        (r#"{"messages":[{"content":"x"}]}"#, "messages[0].role"),
        (r#"{"temperature":"hot","messages":[USER]}"#, "temperature"),
        (r#"{"max_tokens":-1,"messages":[USER]}"#, "max_tokens"),
        (
            r#"{"reasoning_effort":"huge","messages":[USER]}"#,
            "reasoning_effort",
        ),
        (
            r#"{"tool_choice":"sometimes","messages":[USER]}"#,
            "tool_choice",
        ),
        (
            r#"{"tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"maybe","tools":[]}},"messages":[USER]}"#,
            "tool_choice.allowed_tools.mode",
        ),
        (
            r#"{"tools":[{"type":"web_search"}],"messages":[USER]}"#,
            "tools[0].type",
        ),
        (
            r#"{"tools":[{"type":"function"}],"messages":[USER]}"#,
            "tools[0].function",
        ),
        (
            r#"{"messages":[USER,{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{not json"}}]}]}"#,
            "messages[1].tool_calls[0].function.arguments",
        ),
        (
            r#"{"messages":[USER,{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}"#,
            "messages[1].tool_calls[0].function.arguments",
        ),
        (
            r#"{"messages":[USER,{"role":"tool","tool_call_id":"call_9","content":"x"}]}"#,
            "messages[1].tool_call_id",
        ),
        (
            r#"{"messages":[USER,{"role":"tool","content":"x"}]}"#,
            "messages[1].tool_call_id",
        ),
        (
            r#"{"messages":[{"role":"user","content":[{"type":"video","video":{}}]}]}"#,
            "messages[0].content[0].type",
        ),
        (
            r#"{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#,
            "messages[0].content[0]",
        ),
        (
            r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://host/a.png"}}]}]}"#,
            "messages[0].content[0].image_url.url",
        ),
        (
            r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,rawbytes"}}]}]}"#,
            "messages[0].content[0].image_url.url",
        ),
        (
            r#"{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"x","format":"../wav"}}]}]}"#,
            "messages[0].content[0].input_audio.format",
        ),
        (
            r#"{"messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-1"}}]}]}"#,
            "messages[0].content[0].file.file_id",
        ),
        (
            r#"{"messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]},USER]}"#,
            "messages[0].content[0]",
        ),
    ];
    for (body, field) in rows {
        let body = body.replace("USER", U);
        let r = chat_to_gemini(body.as_bytes(), &opts(&[]))
            .err()
            .unwrap_or_else(|| panic!("not refused: {body}"));
        assert_eq!(&r.field, field, "{body}: {r}");
        assert!(!r.reason.is_empty());
    }
}

#[test]
fn token_array_embeddings_are_refused_naming_input() {
    for body in [
        r#"{"model":"m","input":[1,2,3]}"#,
        r#"{"model":"m","input":[[1,2],[3]]}"#,
        r#"{"model":"m","input":[]}"#,
        r#"{"model":"m"}"#,
    ] {
        let r = embeddings_to_gemini(body.as_bytes(), &opts(&[]))
            .err()
            .unwrap_or_else(|| panic!("not refused: {body}"));
        assert_eq!(r.field, "input", "{body}: {r}");
    }
    let r = embeddings_to_gemini(br#"{"input":["a",2]}"#, &opts(&[])).unwrap_err();
    assert_eq!(r.field, "input[1]");
}

#[test]
fn fields_without_counterpart_are_dropped_and_named() {
    let rows: &[(&str, &str)] = &[
        (
            r#"{"logit_bias":{"50256":-100},"messages":[USER]}"#,
            "logit_bias",
        ),
        (r#"{"user":"u-1","messages":[USER]}"#, "user"),
        (r#"{"logprobs":true,"messages":[USER]}"#, "logprobs"),
        (r#"{"top_logprobs":2,"messages":[USER]}"#, "top_logprobs"),
        (
            r#"{"service_tier":"flex","messages":[USER]}"#,
            "service_tier",
        ),
        (
            r#"{"parallel_tool_calls":false,"messages":[USER]}"#,
            "parallel_tool_calls",
        ),
        (
            r#"{"messages":[{"role":"user","name":"ann","content":"hi"}]}"#,
            "messages[0].name",
        ),
        (
            r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AA==","detail":"low"}}]}]}"#,
            "messages[0].content[0].image_url.detail",
        ),
        (
            r#"{"tools":[{"type":"function","function":{"name":"f","strict":true}}],"messages":[USER]}"#,
            "tools[0].function.strict",
        ),
        (
            r#"{"response_format":{"type":"json_schema","json_schema":{"name":"x"}},"messages":[USER]}"#,
            "response_format",
        ),
        (
            r#"{"tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"auto","tools":[]}},"messages":[USER]}"#,
            "tool_choice.allowed_tools",
        ),
        (
            r#"{"messages":[USER,{"role":"system","content":"late"}]}"#,
            "messages[1]",
        ),
    ];
    for (body, named) in rows {
        let body = body.replace("USER", U);
        let (_, warnings) = to_gemini(&body);
        assert!(
            warnings.iter().any(|w| w.starts_with(named)),
            "{named} not named: {warnings:?}"
        );
    }
    let (_, warnings) = to_gemini(&format!(
        r#"{{"parallel_tool_calls":true,"messages":[{U}]}}"#
    ));
    assert_eq!(
        warnings,
        Vec::<String>::new(),
        "parallel calls are Gemini's way"
    );
}

#[test]
fn warnings_are_bounded() {
    let fields: String = (0..100).map(|i| format!(r#""x{i}":1,"#)).collect();
    let (_, warnings) = to_gemini(&format!(r#"{{{fields}"messages":[{U}]}}"#));
    assert!(warnings.len() <= 17, "{}", warnings.len());
    assert!(warnings.last().unwrap().contains("more fields dropped"));
}
