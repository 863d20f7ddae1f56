//! What Converse has no counterpart for: dropped with a warning naming the
//! field, or refused (a 400) naming it.

use super::super::super::RequestOpts;
use super::super::{chat_to_converse, Refused};
use super::converse;

fn refused(body: &str) -> Refused {
    let opts = RequestOpts {
        model: "m",
        default_max_tokens: 1,
        options: &[],
    };
    match chat_to_converse(body.as_bytes(), &opts) {
        Ok(t) => panic!("translated: {}", String::from_utf8_lossy(&t.body)),
        Err(r) => r,
    }
}

const U: &str = r#"{"role":"user","content":"hi"}"#;

#[test]
fn fields_without_counterpart_are_dropped_with_a_warning_naming_them() {
    let cases: &[(&str, &str)] = &[
        // (request, the warning names)
        (r#"{"logit_bias":{"1":2},"messages":[USER]}"#, "logit_bias"),
        (r#"{"seed":7,"messages":[USER]}"#, "seed"),
        (r#"{"user":"u-1","messages":[USER]}"#, "user"),
        (
            r#"{"reasoning_effort":"high","messages":[USER]}"#,
            "reasoning_effort",
        ),
        (
            r#"{"response_format":{"type":"json_object"},"messages":[USER]}"#,
            "response_format",
        ),
        (
            r#"{"parallel_tool_calls":false,"messages":[USER]}"#,
            "parallel_tool_calls",
        ),
        (
            r#"{"tools":[{"type":"function","function":{"name":"f","strict":true}}],"messages":[USER]}"#,
            "tools[0].function.strict",
        ),
        (
            r#"{"messages":[{"role":"user","name":"bob","content":"x"}]}"#,
            "messages[0].name",
        ),
        (
            r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AA","detail":"high"}}]}]}"#,
            "messages[0].content[0].image_url.detail",
        ),
        (
            r#"{"messages":[USER,{"role":"assistant","content":"x","reasoning_content":"why"}]}"#,
            "messages[1].reasoning_content",
        ),
    ];
    for (body, names) in cases {
        let (_, w) = converse(&body.replace("USER", U));
        assert!(w.iter().any(|w| w.starts_with(names)), "{names}: {w:?}");
    }
}

#[test]
fn what_matches_the_default_is_no_warning() {
    let (_, w) = converse(&format!(
        r#"{{"parallel_tool_calls":true,"response_format":{{"type":"text"}},"n":1,"messages":[{U}]}}"#
    ));
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn more_than_one_choice_is_refused() {
    let r = refused(&format!(r#"{{"n":2,"messages":[{U}]}}"#));
    assert_eq!(r.field, "n");
}

#[test]
fn an_image_by_url_is_refused() {
    let r = refused(
        r#"{"messages":[{"role":"user","content":[{"type":"text","text":"x"},{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}]}"#,
    );
    assert_eq!(r.field, "messages[0].content[1].image_url.url");
    assert!(r.reason.contains("data: URL"), "{r}");
}

#[test]
fn an_image_type_bedrock_does_not_take_is_refused() {
    let r = refused(
        r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/bmp;base64,AA"}}]}]}"#,
    );
    assert_eq!(r.field, "messages[0].content[0].image_url.url");
}

#[test]
fn tool_arguments_that_are_not_json_are_refused() {
    let r = refused(&format!(
        r#"{{"messages":[{U},{{"role":"assistant","tool_calls":[{{"id":"c","type":"function","function":{{"name":"f","arguments":"{{oops"}}}}]}}]}}"#
    ));
    assert_eq!(r.field, "messages[1].tool_calls[0].function.arguments");
}

#[test]
fn tool_arguments_that_are_not_an_object_are_refused() {
    let r = refused(&format!(
        r#"{{"messages":[{U},{{"role":"assistant","tool_calls":[{{"id":"c","type":"function","function":{{"name":"f","arguments":"[1]"}}}}]}}]}}"#
    ));
    assert_eq!(r.field, "messages[1].tool_calls[0].function.arguments");
    assert!(r.reason.contains("object"), "{r}");
}

#[test]
fn a_temperature_above_one_is_refused() {
    let r = refused(&format!(r#"{{"temperature":1.5,"messages":[{U}]}}"#));
    assert_eq!(r.field, "temperature");
}

#[test]
fn a_tool_that_is_not_a_function_is_refused() {
    let r = refused(&format!(
        r#"{{"tools":[{{"type":"custom","custom":{{"name":"x"}}}}],"messages":[{U}]}}"#
    ));
    assert_eq!(r.field, "tools[0].type");
}

#[test]
fn a_part_type_converse_does_not_take_is_refused() {
    let r = refused(
        r#"{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AA","format":"wav"}}]}]}"#,
    );
    assert_eq!(r.field, "messages[0].content[0].type");
}

#[test]
fn an_image_in_a_system_message_is_refused() {
    let r = refused(&format!(
        r#"{{"messages":[{{"role":"system","content":[{{"type":"image_url","image_url":{{"url":"data:image/png;base64,AA"}}}}]}},{U}]}}"#
    ));
    assert_eq!(r.field, "messages[0].content[0]");
}

#[test]
fn an_unknown_role_is_refused() {
    let r = refused(r#"{"messages":[{"role":"robot","content":"x"}]}"#);
    assert_eq!(r.field, "messages[0].role");
}

#[test]
fn a_tool_message_without_its_call_id_is_refused() {
    let r = refused(&format!(
        r#"{{"messages":[{U},{{"role":"tool","content":"1"}}]}}"#
    ));
    assert_eq!(r.field, "messages[1].tool_call_id");
}

#[test]
fn a_request_without_messages_is_refused() {
    let r = refused(r#"{"model":"m"}"#);
    assert_eq!(r.field, "messages");
}

#[test]
fn a_value_of_the_wrong_shape_is_refused_naming_the_field() {
    let r = refused(&format!(r#"{{"max_tokens":"many","messages":[{U}]}}"#));
    assert_eq!(r.field, "max_tokens");
}
