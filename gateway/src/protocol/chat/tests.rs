//! The OpenAI chat the translations write, to the byte: the field order of a
//! `chat.completion` and of its chunks is OpenAI's, whichever dialect the
//! answer came from.

use super::super::write::{openai_usage, TextOut};
use super::super::Read;
use super::answer::{CallOut, ChoiceOut, Completion, MessageOut};
use super::chunks::{Chunks, Delta, ToolDelta};
use bytes::BytesMut;
use serde_json::value::RawValue;
use shared::usage::Usage;

/// `s` with the number after `"created":` made 0 (it is the time of writing).
fn created_zero(s: &[u8]) -> String {
    let s = std::str::from_utf8(s).unwrap();
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find("\"created\":") {
        let (head, tail) = rest.split_at(at + "\"created\":".len());
        out.push_str(head);
        out.push('0');
        rest = tail.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

fn usage() -> Usage {
    Usage {
        prompt_tokens: 10,
        completion_tokens: 5,
        total_tokens: 15,
        cached_tokens: 4,
        ..Usage::default()
    }
}

#[test]
fn a_completion_is_written_in_openais_field_order() {
    let choices = [ChoiceOut::new(
        0,
        MessageOut::assistant(
            Some(TextOut::Str("It is \"sunny\".")),
            Some(TextOut::Str("hmm")),
            vec![CallOut::function("call_1", "lookup", r#"{"city":"Paris"}"#)],
        ),
        Some("tool_calls"),
    )];
    let out = Completion::new("chatcmpl-1", "m-1", &choices, Some(openai_usage(&usage())));
    assert_eq!(
        created_zero(&out.to_bytes(b"upstream")),
        concat!(
            r#"{"id":"chatcmpl-1","object":"chat.completion","created":0,"model":"m-1","#,
            r#""choices":[{"index":0,"message":{"role":"assistant","content":"It is \"sunny\".","#,
            r#""reasoning_content":"hmm","tool_calls":[{"id":"call_1","type":"function","#,
            r#""function":{"name":"lookup","arguments":"{\"city\":\"Paris\"}"}}]},"#,
            r#""finish_reason":"tool_calls","logprobs":null}],"#,
            r#""usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"#,
            r#""prompt_tokens_details":{"cached_tokens":4}}}"#
        )
    );
}

#[test]
fn a_message_without_calls_or_reasoning_leaves_them_out() {
    let choices = [ChoiceOut::new(
        0,
        MessageOut::assistant(None, None, Vec::new()),
        None,
    )];
    let out = Completion::new("c", "m", &choices, None);
    assert_eq!(
        created_zero(&out.to_bytes(b"")),
        concat!(
            r#"{"id":"c","object":"chat.completion","created":0,"model":"m","#,
            r#""choices":[{"index":0,"message":{"role":"assistant","content":null},"#,
            r#""finish_reason":null,"logprobs":null}]}"#
        )
    );
}

#[test]
fn chunks_carry_the_streams_id_and_end_with_usage_and_done() {
    let mut chunks = Chunks::new(true);
    chunks.name("chatcmpl-1", "m-1");
    let mut out = BytesMut::new();
    let role = Delta {
        role: Some("assistant"),
        content: Some(TextOut::Str("")),
        ..Delta::default()
    };
    chunks.write(&mut out, &role, None);
    let start = [ToolDelta::start(
        0,
        Some("call_1".into()),
        Some("lookup"),
        TextOut::Str(""),
    )];
    let start = Delta {
        tool_calls: &start,
        ..Delta::default()
    };
    chunks.write_choice(&mut out, 1, &start, None);
    let args = RawValue::from_string(r#""{\"city\":1}""#.to_string()).unwrap();
    let more = [ToolDelta::arguments(0, &args)];
    let more = Delta {
        tool_calls: &more,
        ..Delta::default()
    };
    chunks.write_choice(&mut out, 1, &more, None);
    // nothing to say: no chunk
    chunks.write(&mut out, &Delta::default(), None);
    chunks.write(&mut out, &Delta::default(), Some("stop"));
    let read = Read {
        usage: Some(usage()),
        ..Read::default()
    };
    chunks.finish(&read, &mut out);
    // once
    chunks.finish(&read, &mut out);
    let head = r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":0,"model":"m-1","choices":[{"index":"#;
    let want = [
        format!(r#"{head}0,"delta":{{"role":"assistant","content":""}},"finish_reason":null}}]}}"#),
        format!(
            r#"{head}1,"delta":{{"tool_calls":[{{"index":0,"id":"call_1","type":"function","function":{{"name":"lookup","arguments":""}}}}]}},"finish_reason":null}}]}}"#
        ),
        format!(
            r#"{head}1,"delta":{{"tool_calls":[{{"index":0,"function":{{"arguments":"{{\"city\":1}}"}}}}]}},"finish_reason":null}}]}}"#
        ),
        format!(r#"{head}0,"delta":{{}},"finish_reason":"stop"}}]}}"#),
        concat!(
            r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":0,"model":"m-1","choices":[],"#,
            r#""usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4}}}"#
        )
        .to_string(),
        "data: [DONE]".to_string(),
    ];
    assert_eq!(created_zero(&out), want.join("\n\n") + "\n\n");
}
