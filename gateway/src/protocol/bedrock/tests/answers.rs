//! Whole Converse answers as OpenAI chat completions, read on the way.

use super::super::super::testing::usage;
use super::super::super::Read;
use super::super::{answer_to_chat, finish_reason};
use super::{json, read};
use serde_json::Value;

fn to_chat(answer: &str, r: &mut Read) -> Value {
    serde_json::from_slice(&answer_to_chat(answer.as_bytes(), r)).unwrap()
}

const TEXT: &str = r#"{"output":{"message":{"role":"assistant","content":[{"text":"Hello \"you\""}]}},
  "stopReason":"end_turn","usage":{"inputTokens":10,"outputTokens":5,"totalTokens":15},"metrics":{"latencyMs":42}}"#;

#[test]
fn a_text_answer_as_a_chat_completion() {
    let mut r = read();
    let got = to_chat(TEXT, &mut r);
    let id = got["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-"), "{got}");
    assert_eq!(
        r.chat_id.as_deref(),
        Some(id),
        "the id read is the client's"
    );
    let want = json(
        r#"{"object":"chat.completion","model":"anthropic.claude-x",
            "choices":[{"index":0,"message":{"role":"assistant","content":"Hello \"you\""},
                        "finish_reason":"stop","logprobs":null}],
            "usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,
                     "prompt_tokens_details":{"cached_tokens":0}}}"#,
    );
    for k in ["object", "model", "choices", "usage"] {
        assert_eq!(got[k], want[k], "{k}: {got}");
    }
    assert_eq!(r.finish_reason.as_deref(), Some("stop"));
    assert_eq!(r.output_bytes, r#"Hello \"you\""#.len());
}

#[test]
fn the_model_is_unknown_when_the_caller_set_none() {
    let got = to_chat(TEXT, &mut Read::default());
    assert_eq!(got["model"], "unknown");
}

#[test]
fn text_blocks_are_joined() {
    let got = to_chat(
        r#"{"output":{"message":{"role":"assistant","content":[{"text":"a\n"},{"text":"b"}]}},"stopReason":"end_turn"}"#,
        &mut read(),
    );
    assert_eq!(got["choices"][0]["message"]["content"], "a\nb");
}

#[test]
fn tool_use_blocks_as_tool_calls() {
    let mut r = read();
    let got = to_chat(
        r#"{"output":{"message":{"role":"assistant","content":[{"text":"let me look"},
             {"toolUse":{"toolUseId":"tooluse_1","name":"lookup","input":{"city":"Paris"}}}]}},
            "stopReason":"tool_use","usage":{"inputTokens":1,"outputTokens":2,"totalTokens":3}}"#,
        &mut r,
    );
    let m = &got["choices"][0]["message"];
    assert_eq!(m["content"], "let me look");
    assert_eq!(
        m["tool_calls"],
        json(
            r#"[{"id":"tooluse_1","type":"function","function":{"name":"lookup","arguments":"{\"city\":\"Paris\"}"}}]"#
        )
    );
    assert_eq!(got["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
}

#[test]
fn reasoning_content_as_reasoning_content() {
    let got = to_chat(
        r#"{"output":{"message":{"role":"assistant","content":[
             {"reasoningContent":{"reasoningText":{"text":"hmm","signature":"sig"}}},{"text":"42"}]}},
            "stopReason":"end_turn"}"#,
        &mut read(),
    );
    assert_eq!(got["choices"][0]["message"]["reasoning_content"], "hmm");
    assert_eq!(got["choices"][0]["message"]["content"], "42");
}

#[test]
fn usage_counts_cache_reads_and_writes_in_the_prompt() {
    let mut r = read();
    let got = to_chat(
        r#"{"output":{"message":{"role":"assistant","content":[{"text":"x"}]}},"stopReason":"end_turn",
            "usage":{"inputTokens":10,"outputTokens":5,"totalTokens":135,"cacheReadInputTokens":100,"cacheWriteInputTokens":20}}"#,
        &mut r,
    );
    assert_eq!(
        got["usage"],
        json(
            r#"{"prompt_tokens":130,"completion_tokens":5,"total_tokens":135,"prompt_tokens_details":{"cached_tokens":100}}"#
        )
    );
    assert_eq!(r.usage, Some(usage(130, 100, 20, 5, 135)));
}

#[test]
fn stop_reasons_in_openai_words() {
    for (stop, finish) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("malformed_model_output", "stop"),
    ] {
        assert_eq!(finish_reason(stop), finish, "{stop}");
    }
}

#[test]
fn a_guardrail_answer_finishes_as_content_filter() {
    let got = to_chat(
        r#"{"output":{"message":{"role":"assistant","content":[{"text":"Sorry."}]}},"stopReason":"guardrail_intervened"}"#,
        &mut read(),
    );
    assert_eq!(got["choices"][0]["finish_reason"], "content_filter");
}

#[test]
fn a_body_of_another_shape_passes_as_it_is() {
    let body = r#"{"message":"not an answer"}"#;
    let mut r = read();
    assert_eq!(
        &answer_to_chat(body.as_bytes(), &mut r)[..],
        body.as_bytes()
    );
    assert!(r.usage.is_none() && r.chat_id.is_none());
}
