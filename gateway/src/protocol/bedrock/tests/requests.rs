//! OpenAI chat requests made Converse requests: one test per mapped field.

use super::{converse, converse_with, json};
use serde_json::value::RawValue;

const U: &str = r#"{"role":"user","content":"hi"}"#;

/// `{"messages":[U]}` with `fields` before the messages.
fn with(fields: &str) -> String {
    format!(r#"{{{fields}"messages":[{U}]}}"#)
}

#[test]
fn model_and_stream_are_not_in_the_body() {
    let (got, w) = converse(&with(
        r#""model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"#,
    ));
    assert_eq!(
        got,
        json(r#"{"messages":[{"role":"user","content":[{"text":"hi"}]}]}"#)
    );
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn system_message_becomes_a_system_text_block() {
    let (got, _) = converse(&format!(
        r#"{{"messages":[{{"role":"system","content":"be brief"}},{U}]}}"#
    ));
    assert_eq!(got["system"], json(r#"[{"text":"be brief"}]"#));
    assert_eq!(got["messages"].as_array().unwrap().len(), 1, "{got}");
}

#[test]
fn developer_message_parts_become_system_text_blocks() {
    let (got, _) = converse(&format!(
        r#"{{"messages":[{{"role":"developer","content":[{{"type":"text","text":"a"}},{{"type":"text","text":"b"}}]}},{U}]}}"#
    ));
    assert_eq!(got["system"], json(r#"[{"text":"a"},{"text":"b"}]"#));
}

#[test]
fn a_late_system_message_is_moved_to_system_with_a_warning() {
    let (got, w) = converse(&format!(
        r#"{{"messages":[{U},{{"role":"system","content":"late"}}]}}"#
    ));
    assert_eq!(got["system"], json(r#"[{"text":"late"}]"#));
    assert!(w.iter().any(|w| w.contains("messages[1]")), "{w:?}");
}

#[test]
fn text_passes_as_it_came_escapes_included() {
    let (got, _) = converse(r#"{"messages":[{"role":"user","content":"say \"hi\"\n\u00e9"}]}"#);
    assert_eq!(got["messages"][0]["content"][0]["text"], "say \"hi\"\né");
}

#[test]
fn turns_alternate_user_and_assistant() {
    let (got, _) = converse(&format!(
        r#"{{"messages":[{U},{{"role":"assistant","content":"hello"}},{{"role":"user","content":"again"}}]}}"#
    ));
    assert_eq!(
        got["messages"],
        json(
            r#"[{"role":"user","content":[{"text":"hi"}]},
                {"role":"assistant","content":[{"text":"hello"}]},
                {"role":"user","content":[{"text":"again"}]}]"#
        )
    );
}

#[test]
fn consecutive_turns_of_one_role_are_merged() {
    let (got, _) = converse(&format!(
        r#"{{"messages":[{U},{{"role":"user","content":[{{"type":"text","text":"more"}}]}}]}}"#
    ));
    assert_eq!(
        got["messages"],
        json(r#"[{"role":"user","content":[{"text":"hi"},{"text":"more"}]}]"#)
    );
}

#[test]
fn assistant_tool_calls_become_tool_use_blocks() {
    let (got, _) = converse(&format!(
        r#"{{"messages":[{U},{{"role":"assistant","content":"","tool_calls":[{{"id":"call_1","type":"function","function":{{"name":"f","arguments":"{{\"a\":1}}"}}}}]}}]}}"#
    ));
    assert_eq!(
        got["messages"][1],
        json(
            r#"{"role":"assistant","content":[{"toolUse":{"toolUseId":"call_1","name":"f","input":{"a":1}}}]}"#
        ),
        "an empty text is no block"
    );
}

#[test]
fn empty_tool_arguments_are_an_empty_input() {
    let (got, _) = converse(&format!(
        r#"{{"messages":[{U},{{"role":"assistant","tool_calls":[{{"id":"c","type":"function","function":{{"name":"f","arguments":""}}}}]}}]}}"#
    ));
    assert_eq!(
        got["messages"][1]["content"][0]["toolUse"]["input"],
        json("{}")
    );
}

#[test]
fn tool_messages_become_tool_results_in_a_user_turn() {
    let (got, _) = converse(&format!(
        r#"{{"messages":[{U},
            {{"role":"assistant","tool_calls":[{{"id":"c1","type":"function","function":{{"name":"f","arguments":"{{}}"}}}},{{"id":"c2","type":"function","function":{{"name":"f","arguments":"{{}}"}}}}]}},
            {{"role":"tool","tool_call_id":"c1","content":"1"}},
            {{"role":"tool","tool_call_id":"c2","content":[{{"type":"text","text":"2"}}]}},
            {{"role":"user","content":"and?"}}]}}"#
    ));
    assert_eq!(
        got["messages"][2],
        json(
            r#"{"role":"user","content":[
                {"toolResult":{"toolUseId":"c1","content":[{"text":"1"}]}},
                {"toolResult":{"toolUseId":"c2","content":[{"text":"2"}]}},
                {"text":"and?"}]}"#
        )
    );
    assert_eq!(got["messages"].as_array().unwrap().len(), 3, "{got}");
}

#[test]
fn a_data_url_image_becomes_image_bytes() {
    let (got, _) = converse(
        r#"{"messages":[{"role":"user","content":[{"type":"text","text":"what"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0K"}}]}]}"#,
    );
    assert_eq!(
        got["messages"][0]["content"][1],
        json(r#"{"image":{"format":"png","source":{"bytes":"iVBORw0K"}}}"#)
    );
}

#[test]
fn image_media_types_become_formats() {
    for (media, format) in [
        ("image/jpeg", "jpeg"),
        ("image/jpg", "jpeg"),
        ("image/gif", "gif"),
        ("image/webp", "webp"),
    ] {
        let (got, _) = converse(&format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"image_url","image_url":{{"url":"data:{media};base64,AAAA"}}}}]}}]}}"#
        ));
        assert_eq!(
            got["messages"][0]["content"][0]["image"]["format"], format,
            "{media}"
        );
    }
}

#[test]
fn max_tokens_becomes_max_tokens_of_the_inference_config() {
    let (got, _) = converse(&with(r#""max_tokens":50,"#));
    assert_eq!(got["inferenceConfig"], json(r#"{"maxTokens":50}"#));
}

#[test]
fn max_completion_tokens_wins_over_max_tokens() {
    let (got, _) = converse(&with(r#""max_tokens":50,"max_completion_tokens":70,"#));
    assert_eq!(got["inferenceConfig"]["maxTokens"], 70);
}

#[test]
fn without_max_tokens_the_model_default_applies() {
    let (got, _) = converse(&with(""));
    assert!(got.get("inferenceConfig").is_none(), "{got}");
}

#[test]
fn temperature_and_top_p_become_inference_config() {
    let (got, _) = converse(&with(r#""temperature":0.5,"top_p":0.9,"#));
    assert_eq!(
        got["inferenceConfig"],
        json(r#"{"temperature":0.5,"topP":0.9}"#)
    );
}

#[test]
fn a_stop_string_becomes_stop_sequences() {
    let (got, _) = converse(&with(r#""stop":"END","#));
    assert_eq!(got["inferenceConfig"]["stopSequences"], json(r#"["END"]"#));
}

#[test]
fn a_stop_array_becomes_stop_sequences() {
    let (got, _) = converse(&with(r#""stop":["A","B"],"#));
    assert_eq!(
        got["inferenceConfig"]["stopSequences"],
        json(r#"["A","B"]"#)
    );
}

#[test]
fn tools_become_tool_specs() {
    let (got, _) = converse(&with(
        r#""tools":[{"type":"function","function":{"name":"f","description":"d","parameters":{"type":"object","properties":{"a":{"type":"integer"}}}}}],"#,
    ));
    assert_eq!(
        got["toolConfig"],
        json(
            r#"{"tools":[{"toolSpec":{"name":"f","description":"d","inputSchema":{"json":{"type":"object","properties":{"a":{"type":"integer"}}}}}}]}"#
        )
    );
}

#[test]
fn a_tool_without_parameters_takes_an_object_schema() {
    let (got, _) = converse(&with(
        r#""tools":[{"type":"function","function":{"name":"f"}}],"#,
    ));
    assert_eq!(
        got["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"],
        json(r#"{"json":{"type":"object"}}"#)
    );
}

const TOOL: &str = r#""tools":[{"type":"function","function":{"name":"f"}}],"#;

#[test]
fn tool_choice_auto_becomes_auto() {
    let (got, _) = converse(&with(&format!(r#"{TOOL}"tool_choice":"auto","#)));
    assert_eq!(got["toolConfig"]["toolChoice"], json(r#"{"auto":{}}"#));
}

#[test]
fn tool_choice_required_becomes_any() {
    let (got, _) = converse(&with(&format!(r#"{TOOL}"tool_choice":"required","#)));
    assert_eq!(got["toolConfig"]["toolChoice"], json(r#"{"any":{}}"#));
}

#[test]
fn tool_choice_of_a_function_becomes_tool() {
    let (got, _) = converse(&with(&format!(
        r#"{TOOL}"tool_choice":{{"type":"function","function":{{"name":"f"}}}},"#
    )));
    assert_eq!(
        got["toolConfig"]["toolChoice"],
        json(r#"{"tool":{"name":"f"}}"#)
    );
}

#[test]
fn tool_choice_none_drops_the_tools_with_a_warning() {
    let (got, w) = converse(&with(&format!(r#"{TOOL}"tool_choice":"none","#)));
    assert!(got.get("toolConfig").is_none(), "{got}");
    assert!(w.iter().any(|w| w.starts_with("tool_choice")), "{w:?}");
}

#[test]
fn tool_choice_none_keeps_the_tools_of_a_conversation_with_tool_calls() {
    let (got, w) = converse(&format!(
        r#"{{{TOOL}"tool_choice":"none","messages":[{U},
            {{"role":"assistant","tool_calls":[{{"id":"c1","type":"function","function":{{"name":"f","arguments":"{{}}"}}}}]}},
            {{"role":"tool","tool_call_id":"c1","content":"1"}}]}}"#
    ));
    assert_eq!(
        got["toolConfig"],
        json(r#"{"tools":[{"toolSpec":{"name":"f","inputSchema":{"json":{"type":"object"}}}}]}"#),
        "Converse takes tool blocks only with a toolConfig"
    );
    assert!(w.iter().any(|w| w.starts_with("tool_choice")), "{w:?}");
}

#[test]
fn provider_options_are_set_over_the_top_level_fields() {
    let options = vec![
        (
            "additionalModelRequestFields".to_string(),
            RawValue::from_string(r#"{"top_k":5}"#.into()).unwrap(),
        ),
        (
            "inferenceConfig".to_string(),
            RawValue::from_string(r#"{"maxTokens":10}"#.into()).unwrap(),
        ),
    ];
    let (got, _) = converse_with(&with(r#""max_tokens":50,"temperature":0.1,"#), &options);
    assert_eq!(got["additionalModelRequestFields"], json(r#"{"top_k":5}"#));
    assert_eq!(
        got["inferenceConfig"],
        json(r#"{"maxTokens":10}"#),
        "replaced whole"
    );
}
