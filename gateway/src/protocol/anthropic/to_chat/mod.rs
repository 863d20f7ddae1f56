//! An Anthropic Messages request made an OpenAI chat/completions request (for
//! OpenAI-compatible upstreams).
//!
//! | Anthropic | OpenAI |
//! |---|---|
//! | `system` (a string, or text blocks joined by a blank line) | a first `system` message |
//! | turns of `text`/`image` blocks (base64 or URL source) | `user`/`assistant` messages (`image_url` parts, base64 as a `data:` URL) |
//! | `tool_use` blocks | assistant `tool_calls` (`input` as the `arguments` string) |
//! | `tool_result` blocks | `tool` messages before the rest of their turn |
//! | `max_tokens`, `temperature`, `top_p`, `stop_sequences` | `max_tokens`, `temperature`, `top_p`, `stop` |
//! | `stream` | `stream` with `stream_options.include_usage` (usage arrives) |
//! | `tools` (custom), `tool_choice` (`auto`/`any`/`tool`/`none`, `disable_parallel_tool_use`) | function `tools`, `tool_choice` (`auto`/`required`/a function/`none`), `parallel_tool_calls: false` |
//! | `thinking` `enabled` | `reasoning_effort` ([`effort`]) |
//! | `output_config.format` `json_schema` | `response_format` `json_schema` |
//! | `metadata.user_id` | `user` |
//!
//! Dropped with a warning: `cache_control`, `top_k`, thinking blocks of
//! earlier turns (their signatures mean nothing upstream), `is_error` of tool
//! results, images inside tool results; refused: documents, server tools.

use super::super::fields::text as raw_string;
use super::super::fields::{bad, parse, parse_at, string, translated, Fields, Warnings};
use super::super::write::TextOut;
use super::{Refused, RequestOpts, Translated};
use serde_json::value::RawValue;
use std::borrow::Cow;
use wire::*;

mod wire;

/// The OpenAI `reasoning_effort` for an extended thinking budget: below 4096
/// tokens `low`, below 16384 `medium`, else `high`.
pub(super) fn effort(budget_tokens: u64) -> &'static str {
    match budget_tokens {
        0..4096 => "low",
        4096..16384 => "medium",
        _ => "high",
    }
}

/// Anthropic Messages request -> OpenAI chat/completions request (a stream
/// asks `stream_options.include_usage: true`, so usage arrives).
pub fn messages_to_chat(body: &[u8], opts: &RequestOpts) -> Result<Translated, Refused> {
    let fields = serde_json::from_slice::<Fields<'_>>(body).map_err(|e| bad("(body)", &e))?;
    let mut w = Warnings::default();
    let mut out = Out {
        model: opts.model,
        messages: Vec::new(),
        max_tokens: None,
        temperature: None,
        top_p: None,
        stop: None,
        stream: None,
        stream_options: None,
        tools: None,
        tool_choice: None,
        parallel_tool_calls: None,
        reasoning_effort: None,
        response_format: None,
        user: None,
    };
    let mut system = None;
    let mut messages = None;
    for (k, v) in &fields.0 {
        if v.get() == "null" {
            continue;
        }
        match k.as_ref() {
            "model" => {}
            "messages" => messages = Some(*v),
            "system" => system = Some(*v),
            "max_tokens" => out.max_tokens = Some(parse(k, v)?),
            "temperature" => out.temperature = Some(*v),
            "top_p" => out.top_p = Some(*v),
            "stop_sequences" => out.stop = Some(parse(k, v)?),
            "stream" => {
                let s: bool = parse(k, v)?;
                out.stream = Some(s);
                out.stream_options = s.then_some(StreamOptions {
                    include_usage: true,
                });
            }
            "metadata" => {
                for (mk, mv) in parse::<Fields<'_>>(k, v)?.0 {
                    match mk.as_ref() {
                        "user_id" if mv.get() != "null" => {
                            out.user = Some(string("metadata.user_id", mv)?)
                        }
                        "user_id" => {}
                        other => {
                            w.dropped(format!("metadata.{other}"), || format!("metadata.{other}"))
                        }
                    }
                }
            }
            "tools" => out.tools = Some(tools(parse(k, v)?, &mut w)?),
            "tool_choice" => {
                let c: Choice<'_> = parse(k, v)?;
                if c.disable_parallel_tool_use == Some(true) {
                    out.parallel_tool_calls = Some(false);
                }
                out.tool_choice = Some(match c.kind.as_ref() {
                    "auto" => ChoiceOut::Mode("auto"),
                    "any" => ChoiceOut::Mode("required"),
                    "none" => ChoiceOut::Mode("none"),
                    "tool" => ChoiceOut::Function {
                        kind: "function",
                        function: Named {
                            name: c
                                .name
                                .ok_or_else(|| Refused::new("tool_choice.name", "required"))?,
                        },
                    },
                    _ => {
                        return Err(Refused::new(
                            "tool_choice.type",
                            "one of auto, any, tool, none",
                        ))
                    }
                });
            }
            "thinking" => {
                let t: ThinkingIn<'_> = parse(k, v)?;
                match (t.kind.as_ref(), t.budget_tokens) {
                    ("enabled", Some(b)) => out.reasoning_effort = Some(effort(b)),
                    ("disabled", _) => {}
                    _ => w.dropped("thinking", || format!("thinking ({:?})", t.kind)),
                }
            }
            "output_config" => {
                for (ok, ov) in parse::<Fields<'_>>(k, v)?.0 {
                    if ok == "format" && ov.get() != "null" {
                        let f: FormatIn<'_> = parse("output_config.format", ov)?;
                        match (f.kind.as_ref(), f.schema) {
                            ("json_schema", Some(schema)) => {
                                out.response_format = Some(ResponseFormat {
                                    kind: "json_schema",
                                    json_schema: JsonSchema {
                                        name: "output",
                                        schema,
                                        strict: true,
                                    },
                                })
                            }
                            _ => {
                                return Err(Refused::new(
                                    "output_config.format",
                                    "only json_schema with a schema",
                                ))
                            }
                        }
                    } else {
                        w.dropped(format!("output_config.{ok}"), || {
                            format!("output_config.{ok}")
                        });
                    }
                }
            }
            other => w.dropped(other.to_string(), || other.to_string()),
        }
    }
    if let Some(s) = system {
        let m = system_message(s, &mut w)?;
        if m.content
            .as_ref()
            .is_some_and(|c| !matches!(c, Content::Text(t) if t.is_empty()))
        {
            out.messages.push(m);
        }
    }
    let messages = messages.ok_or_else(|| Refused::new("messages", "required"))?;
    for (i, m) in parse::<Vec<MessageIn<'_>>>("messages", messages)?
        .into_iter()
        .enumerate()
    {
        turn(i, m, &mut out.messages, &mut w)?;
    }
    translated(&out, opts.options, w)
}

fn system_message<'a>(s: &'a RawValue, w: &mut Warnings) -> Result<Msg<'a>, Refused> {
    let text = if s.get().starts_with('"') {
        TextOut::Raw(s)
    } else {
        let blocks: Vec<BlockIn<'a>> = parse("system", s)?;
        let mut texts = Vec::with_capacity(blocks.len());
        for (j, b) in blocks.into_iter().enumerate() {
            if b.cache_control.is_some() {
                w.dropped("cache_control", || format!("system[{j}].cache_control"));
            }
            match (b.kind.as_ref(), raw_string(b.text)) {
                ("text", Some(t)) => texts.push(t),
                _ => {
                    return Err(Refused::new(
                        format!("system[{j}].type"),
                        "system takes text blocks only",
                    ))
                }
            }
        }
        TextOut::join(&texts, "\n\n").unwrap_or(TextOut::Str(""))
    };
    Ok(Msg {
        role: "system",
        content: Some(Content::Text(text)),
        tool_calls: None,
        tool_call_id: None,
    })
}

/// One Anthropic turn as OpenAI messages: a user turn's tool results become
/// `tool` messages ahead of the rest of it.
fn turn<'a>(
    i: usize,
    m: MessageIn<'a>,
    out: &mut Vec<Msg<'a>>,
    w: &mut Warnings,
) -> Result<(), Refused> {
    let assistant = match m.role.as_ref() {
        "user" => false,
        "assistant" => true,
        _ => {
            return Err(Refused::new(
                format!("messages[{i}].role"),
                "one of user, assistant",
            ))
        }
    };
    let role = if assistant { "assistant" } else { "user" };
    if m.content.get().starts_with('"') {
        out.push(Msg::text(role, TextOut::Raw(m.content)));
        return Ok(());
    }
    let blocks: Vec<BlockIn<'a>> = parse_at(m.content, || format!("messages[{i}].content"))?;
    let mut parts = Vec::new();
    // an assistant's text blocks, joined in one content string
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for (j, b) in blocks.into_iter().enumerate() {
        let at = |f: &str| format!("messages[{i}].content[{j}]{f}");
        if b.cache_control.is_some() {
            w.dropped("cache_control", || at(".cache_control"));
        }
        match b.kind.as_ref() {
            "text" => {
                let t = raw_string(b.text).ok_or_else(|| Refused::new(at(".text"), "required"))?;
                if assistant {
                    texts.push(t);
                } else {
                    parts.push(Part::Text {
                        text: TextOut::Raw(t),
                    });
                }
            }
            "image" if assistant => {
                return Err(Refused::new(
                    at(".type"),
                    "an assistant turn takes no images upstream",
                ))
            }
            "image" => parts.push(Part::ImageUrl {
                image_url: image_url(b.source, || at(".source"))?,
            }),
            "tool_use" if assistant => calls.push(Call {
                id: b.id.ok_or_else(|| Refused::new(at(".id"), "required"))?,
                kind: "function",
                function: Function {
                    name: b
                        .name
                        .ok_or_else(|| Refused::new(at(".name"), "required"))?,
                    arguments: b
                        .input
                        .map_or_else(|| "{}".to_string(), |v| v.get().to_string()),
                },
            }),
            "tool_result" if !assistant => {
                if b.is_error == Some(true) {
                    w.dropped("is_error", || at(".is_error"));
                }
                let id = b
                    .tool_use_id
                    .ok_or_else(|| Refused::new(at(".tool_use_id"), "required"))?;
                let content = result_text(b.content, &at, w)?;
                out.push(Msg {
                    role: "tool",
                    content: Some(Content::Text(content)),
                    tool_calls: None,
                    tool_call_id: Some(id),
                });
            }
            "thinking" | "redacted_thinking" => {
                w.dropped("thinking_block", || at(" (a thinking block)"))
            }
            _ => {
                return Err(Refused::new(
                    at(".type"),
                    if assistant {
                        "an OpenAI-compatible upstream takes text, image and tool_use blocks from the assistant"
                    } else {
                        "an OpenAI-compatible upstream takes text, image and tool_result blocks from the user"
                    },
                ))
            }
        }
    }
    if parts.is_empty() && texts.is_empty() && calls.is_empty() {
        return Ok(());
    }
    let content = if assistant {
        TextOut::join(&texts, "").map(Content::Text)
    } else if let [Part::Text { .. }] = parts.as_slice() {
        parts.pop().map(|p| match p {
            Part::Text { text } => Content::Text(text),
            image => Content::Parts(vec![image]),
        })
    } else {
        Some(Content::Parts(parts))
    };
    out.push(Msg {
        role,
        content,
        tool_calls: (!calls.is_empty()).then_some(calls),
        tool_call_id: None,
    });
    Ok(())
}

/// A tool result's content as text (OpenAI tool messages carry text only).
fn result_text<'a>(
    content: Option<&'a RawValue>,
    at: &dyn Fn(&str) -> String,
    w: &mut Warnings,
) -> Result<TextOut<'a>, Refused> {
    let Some(c) = content.filter(|c| c.get() != "null") else {
        return Ok(TextOut::Str(""));
    };
    if c.get().starts_with('"') {
        return Ok(TextOut::Raw(c));
    }
    let mut texts = Vec::new();
    for (k, b) in parse_at::<Vec<BlockIn<'a>>>(c, || at(".content"))?
        .into_iter()
        .enumerate()
    {
        match (b.kind.as_ref(), raw_string(b.text)) {
            ("text", Some(t)) => texts.push(t),
            _ => w.dropped("tool_result_block", || {
                at(&format!(".content[{k}] (only text reaches a tool message)"))
            }),
        }
    }
    Ok(TextOut::join(&texts, "\n").unwrap_or(TextOut::Str("")))
}

fn image_url<'a>(
    source: Option<&'a RawValue>,
    at: impl Fn() -> String,
) -> Result<ImageUrl<'a>, Refused> {
    let s = source.ok_or_else(|| Refused::new(at(), "required"))?;
    let s: SourceIn<'a> = parse_at(s, &at)?;
    let url = match (s.kind.as_ref(), s.url, s.media_type, s.data) {
        ("url", Some(url), _, _) => url,
        ("base64", _, Some(media), Some(data)) => Cow::Owned(format!("data:{media};base64,{data}")),
        _ => {
            return Err(Refused::new(
                at() + ".type",
                "a url source with `url`, or a base64 source with `media_type` and `data`",
            ))
        }
    };
    Ok(ImageUrl { url })
}

fn tools<'a>(tools: Vec<ToolIn<'a>>, w: &mut Warnings) -> Result<Vec<ToolOut<'a>>, Refused> {
    tools
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            if t.kind.as_deref().is_some_and(|k| k != "custom") {
                return Err(Refused::new(
                    format!("tools[{i}].type"),
                    "an OpenAI-compatible upstream runs no Anthropic server tools",
                ));
            }
            if t.cache_control.is_some() {
                w.dropped("cache_control", || format!("tools[{i}].cache_control"));
            }
            Ok(ToolOut {
                kind: "function",
                function: FunctionDef {
                    name: t.name,
                    description: t.description,
                    parameters: t.input_schema,
                },
            })
        })
        .collect()
}
