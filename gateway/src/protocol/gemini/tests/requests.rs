//! OpenAI chat requests as generateContent requests: one row per field.

use super::super::chat_to_gemini;
use super::{json, opts};
use serde_json::value::RawValue;
use serde_json::Value;

pub(super) fn to_gemini(body: &str) -> (Value, Vec<String>) {
    let t = chat_to_gemini(body.as_bytes(), &opts(&[])).unwrap_or_else(|r| panic!("{r}: {body}"));
    (serde_json::from_slice(&t.body).unwrap(), t.warnings)
}

pub(super) const U: &str = r#"{"role":"user","content":"hi"}"#;

/// (what, request, JSON pointer into the translated request, value there)
type Row = (&'static str, &'static str, &'static str, &'static str);

fn check(rows: &[Row]) {
    for (what, body, pointer, want) in rows {
        let body = body.replace("USER", U).replace("CALL", CALL);
        let (got, _) = to_gemini(&body);
        assert_eq!(got.pointer(pointer), Some(&json(want)), "{what}: {got}");
    }
}

#[test]
fn messages_become_system_instruction_and_alternating_contents() {
    check(&[
        (
            "user text",
            r#"{"model":"gpt-4o","messages":[USER]}"#,
            "",
            r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#,
        ),
        (
            "system message",
            r#"{"messages":[{"role":"system","content":"be brief"},USER]}"#,
            "/systemInstruction",
            r#"{"parts":[{"text":"be brief"}]}"#,
        ),
        (
            "developer message, text parts",
            r#"{"messages":[{"role":"developer","content":[{"type":"text","text":"be kind"}]},USER]}"#,
            "/systemInstruction/parts/0/text",
            r#""be kind""#,
        ),
        (
            "two system messages, one instruction",
            r#"{"messages":[{"role":"system","content":"a"},{"role":"system","content":"b"},USER]}"#,
            "/systemInstruction/parts",
            r#"[{"text":"a"},{"text":"b"}]"#,
        ),
        (
            "escaped text as it came",
            r#"{"messages":[{"role":"user","content":"say \"hi\"\n\u00e9"}]}"#,
            "/contents/0/parts/0/text",
            r#""say \"hi\"\né""#,
        ),
        (
            "assistant turn: role model",
            r#"{"messages":[USER,{"role":"assistant","content":"hello"},{"role":"user","content":"again"}]}"#,
            "/contents",
            r#"[{"role":"user","parts":[{"text":"hi"}]},{"role":"model","parts":[{"text":"hello"}]},{"role":"user","parts":[{"text":"again"}]}]"#,
        ),
        (
            "consecutive user messages: one turn",
            r#"{"messages":[USER,{"role":"user","content":[{"type":"text","text":"more"}]}]}"#,
            "/contents",
            r#"[{"role":"user","parts":[{"text":"hi"},{"text":"more"}]}]"#,
        ),
        (
            "an empty message is no turn",
            r#"{"messages":[USER,{"role":"assistant","content":""},{"role":"user","content":"b"}]}"#,
            "/contents",
            r#"[{"role":"user","parts":[{"text":"hi"},{"text":"b"}]}]"#,
        ),
    ]);
}

#[test]
fn model_and_stream_are_not_in_the_body() {
    let (got, warnings) = to_gemini(
        r#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(
        got,
        json(r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#)
    );
    assert_eq!(warnings, Vec::<String>::new());
}

#[test]
fn an_empty_system_message_gives_no_instruction() {
    let (got, _) = to_gemini(
        r#"{"messages":[{"role":"system","content":""},{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(got.get("systemInstruction"), None, "{got}");
}

#[test]
fn generation_config_fields() {
    check(&[
        (
            "max_tokens",
            r#"{"max_tokens":50,"messages":[USER]}"#,
            "/generationConfig/maxOutputTokens",
            "50",
        ),
        (
            "max_completion_tokens over max_tokens",
            r#"{"max_tokens":50,"max_completion_tokens":70,"messages":[USER]}"#,
            "/generationConfig/maxOutputTokens",
            "70",
        ),
        (
            "max_completion_tokens over a later max_tokens",
            r#"{"max_completion_tokens":70,"max_tokens":50,"messages":[USER]}"#,
            "/generationConfig/maxOutputTokens",
            "70",
        ),
        (
            "temperature",
            r#"{"temperature":1.5,"messages":[USER]}"#,
            "/generationConfig/temperature",
            "1.5",
        ),
        (
            "top_p",
            r#"{"top_p":0.9,"messages":[USER]}"#,
            "/generationConfig/topP",
            "0.9",
        ),
        (
            "stop string",
            r#"{"stop":"END","messages":[USER]}"#,
            "/generationConfig/stopSequences",
            r#"["END"]"#,
        ),
        (
            "stop list",
            r#"{"stop":["A","B"],"messages":[USER]}"#,
            "/generationConfig/stopSequences",
            r#"["A","B"]"#,
        ),
        (
            "n",
            r#"{"n":2,"messages":[USER]}"#,
            "/generationConfig/candidateCount",
            "2",
        ),
        (
            "presence_penalty",
            r#"{"presence_penalty":0.5,"messages":[USER]}"#,
            "/generationConfig/presencePenalty",
            "0.5",
        ),
        (
            "frequency_penalty",
            r#"{"frequency_penalty":-0.5,"messages":[USER]}"#,
            "/generationConfig/frequencyPenalty",
            "-0.5",
        ),
        (
            "seed",
            r#"{"seed":42,"messages":[USER]}"#,
            "/generationConfig/seed",
            "42",
        ),
        (
            "response_format json_object",
            r#"{"response_format":{"type":"json_object"},"messages":[USER]}"#,
            "/generationConfig",
            r#"{"responseMimeType":"application/json"}"#,
        ),
        (
            "response_format json_schema",
            r#"{"response_format":{"type":"json_schema","json_schema":{"name":"x","strict":true,"schema":{"type":"object","additionalProperties":false}}},"messages":[USER]}"#,
            "/generationConfig",
            r#"{"responseMimeType":"application/json","responseJsonSchema":{"type":"object","additionalProperties":false}}"#,
        ),
        (
            "reasoning_effort low",
            r#"{"reasoning_effort":"low","messages":[USER]}"#,
            "/generationConfig/thinkingConfig",
            r#"{"thinkingBudget":1024}"#,
        ),
        (
            "reasoning_effort medium",
            r#"{"reasoning_effort":"medium","messages":[USER]}"#,
            "/generationConfig/thinkingConfig/thinkingBudget",
            "8192",
        ),
        (
            "reasoning_effort high",
            r#"{"reasoning_effort":"high","messages":[USER]}"#,
            "/generationConfig/thinkingConfig/thinkingBudget",
            "24576",
        ),
        (
            "reasoning_effort none: thinking off",
            r#"{"reasoning_effort":"none","messages":[USER]}"#,
            "/generationConfig/thinkingConfig/thinkingBudget",
            "0",
        ),
    ]);
}

#[test]
fn no_generation_config_when_nothing_asks_for_one() {
    let (got, _) = to_gemini(
        r#"{"response_format":{"type":"text"},"messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(got.get("generationConfig"), None, "{got}");
}

#[test]
fn tools_and_tool_choice() {
    check(&[
        (
            "function tools: one tool of declarations, the schema as given",
            r#"{"tools":[{"type":"function","function":{"name":"f","description":"d","parameters":{"type":"object","properties":{"a":{"type":"integer"}},"additionalProperties":false}}},{"type":"function","function":{"name":"g"}}],"messages":[USER]}"#,
            "/tools",
            r#"[{"functionDeclarations":[{"name":"f","description":"d","parametersJsonSchema":{"type":"object","properties":{"a":{"type":"integer"}},"additionalProperties":false}},{"name":"g"}]}]"#,
        ),
        (
            "tool_choice auto",
            r#"{"tool_choice":"auto","messages":[USER]}"#,
            "/toolConfig",
            r#"{"functionCallingConfig":{"mode":"AUTO"}}"#,
        ),
        (
            "tool_choice none",
            r#"{"tool_choice":"none","messages":[USER]}"#,
            "/toolConfig/functionCallingConfig/mode",
            r#""NONE""#,
        ),
        (
            "tool_choice required",
            r#"{"tool_choice":"required","messages":[USER]}"#,
            "/toolConfig/functionCallingConfig/mode",
            r#""ANY""#,
        ),
        (
            "tool_choice a function",
            r#"{"tool_choice":{"type":"function","function":{"name":"f"}},"messages":[USER]}"#,
            "/toolConfig",
            r#"{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["f"]}}"#,
        ),
        (
            "tool_choice allowed_tools, required",
            r#"{"tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"required","tools":[{"type":"function","function":{"name":"f"}},{"type":"function","function":{"name":"g"}}]}},"messages":[USER]}"#,
            "/toolConfig",
            r#"{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["f","g"]}}"#,
        ),
    ]);
}

const CALL: &str = r#"{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"lookup","arguments":"{\"city\":\"Paris\"}"}}]}"#;

#[test]
fn tool_calls_and_results() {
    check(&[
        (
            "assistant tool_calls: functionCall parts, args parsed, the signature Gemini documents for calls without one",
            r#"{"messages":[USER,CALL]}"#,
            "/contents/1",
            r#"{"role":"model","parts":[{"functionCall":{"name":"lookup","args":{"city":"Paris"}},"thoughtSignature":"skip_thought_signature_validator"}]}"#,
        ),
        (
            "empty arguments: no args",
            r#"{"messages":[USER,{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"now","arguments":""}}]}]}"#,
            "/contents/1/parts/0/functionCall/args",
            "{}",
        ),
        (
            "text and calls in one turn",
            r#"{"messages":[USER,{"role":"assistant","content":"let me look","tool_calls":[{"id":"c","type":"function","function":{"name":"now","arguments":"{}"}}]}]}"#,
            "/contents/1/parts/0",
            r#"{"text":"let me look"}"#,
        ),
        (
            "tool message: functionResponse named from the call, a JSON object result as it is",
            r#"{"messages":[USER,CALL,{"role":"tool","tool_call_id":"call_1","content":"{\"temp\":21}"}]}"#,
            "/contents/2",
            r#"{"role":"user","parts":[{"functionResponse":{"name":"lookup","response":{"temp":21}}}]}"#,
        ),
        (
            "tool message: other text as output",
            r#"{"messages":[USER,CALL,{"role":"tool","tool_call_id":"call_1","content":"21 degrees"}]}"#,
            "/contents/2/parts/0/functionResponse/response",
            r#"{"output":"21 degrees"}"#,
        ),
        (
            "tool message: text parts joined",
            r#"{"messages":[USER,CALL,{"role":"tool","tool_call_id":"call_1","content":[{"type":"text","text":"21 "},{"type":"text","text":"degrees"}]}]}"#,
            "/contents/2/parts/0/functionResponse/response",
            r#"{"output":"21 degrees"}"#,
        ),
    ]);
}

#[test]
fn parallel_calls_answered_in_one_turn_with_the_next_user_message() {
    let (got, _) = to_gemini(
        r#"{"messages":[{"role":"user","content":"hi"},
        {"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}},{"id":"b","type":"function","function":{"name":"g","arguments":"{}"}}]},
        {"role":"tool","tool_call_id":"b","content":"B"},{"role":"tool","tool_call_id":"a","content":"A"},
        {"role":"user","content":"thanks"}]}"#,
    );
    assert_eq!(
        got["contents"][2],
        json(
            r#"{"role":"user","parts":[{"functionResponse":{"name":"g","response":{"output":"B"}}},{"functionResponse":{"name":"f","response":{"output":"A"}}},{"text":"thanks"}]}"#
        )
    );
    assert_eq!(got["contents"].as_array().unwrap().len(), 3, "{got}");
}

#[test]
fn a_reused_call_id_names_the_latest_call() {
    let (got, _) = to_gemini(
        r#"{"messages":[{"role":"user","content":"hi"},
        {"role":"assistant","tool_calls":[{"id":"call_0","type":"function","function":{"name":"f","arguments":"{}"}}]},
        {"role":"tool","tool_call_id":"call_0","content":"1"},
        {"role":"assistant","tool_calls":[{"id":"call_0","type":"function","function":{"name":"g","arguments":"{}"}}]},
        {"role":"tool","tool_call_id":"call_0","content":"2"}]}"#,
    );
    assert_eq!(
        got["contents"][4]["parts"][0]["functionResponse"]["name"],
        "g"
    );
    assert_eq!(
        got["contents"][2]["parts"][0]["functionResponse"]["name"],
        "f"
    );
}

#[test]
fn images_audio_and_files() {
    check(&[
        (
            "data: URL inline",
            r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0K"}}]}]}"#,
            "/contents/0/parts/0",
            r#"{"inlineData":{"mimeType":"image/png","data":"iVBORw0K"}}"#,
        ),
        (
            "https: URL by reference, its type from the extension",
            r#"{"messages":[{"role":"user","content":[{"type":"text","text":"what is it"},{"type":"image_url","image_url":{"url":"https://example.com/cat.PNG?size=2"}}]}]}"#,
            "/contents/0/parts/1",
            r#"{"fileData":{"mimeType":"image/png","fileUri":"https://example.com/cat.PNG?size=2"}}"#,
        ),
        (
            "gs: URL without an extension: image/jpeg",
            r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"gs://bucket/cat"}}]}]}"#,
            "/contents/0/parts/0/fileData",
            r#"{"mimeType":"image/jpeg","fileUri":"gs://bucket/cat"}"#,
        ),
        (
            "input_audio inline",
            r#"{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"UklGRg==","format":"wav"}}]}]}"#,
            "/contents/0/parts/0",
            r#"{"inlineData":{"mimeType":"audio/wav","data":"UklGRg=="}}"#,
        ),
        (
            "file data inline",
            r#"{"messages":[{"role":"user","content":[{"type":"file","file":{"file_data":"data:application/pdf;base64,JVBERi0="}}]}]}"#,
            "/contents/0/parts/0",
            r#"{"inlineData":{"mimeType":"application/pdf","data":"JVBERi0="}}"#,
        ),
    ]);
}

#[test]
fn provider_options_set_over_top_level_fields() {
    let options: Vec<(String, Box<RawValue>)> = [
        (
            "safetySettings",
            r#"[{"category":"HARM_CATEGORY_HARASSMENT","threshold":"BLOCK_NONE"}]"#,
        ),
        ("generationConfig", r#"{"topK":3}"#),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), RawValue::from_string(v.to_string()).unwrap()))
    .collect();
    let t = chat_to_gemini(
        br#"{"temperature":0.2,"messages":[{"role":"user","content":"hi"}]}"#,
        &opts(&options),
    )
    .unwrap();
    let got: Value = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(got["generationConfig"], json(r#"{"topK":3}"#));
    assert_eq!(got["safetySettings"][0]["threshold"], "BLOCK_NONE");
    assert_eq!(got["contents"][0]["parts"][0]["text"], "hi");
}
