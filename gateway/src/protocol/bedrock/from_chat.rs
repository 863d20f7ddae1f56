//! An OpenAI chat/completions request made a Converse request (the model and
//! whether it streams are in the URL, not the body).
//!
//! | OpenAI | Converse |
//! |---|---|
//! | `system`/`developer` messages | `system` text blocks |
//! | `user`/`assistant` messages, text and `image_url` parts | turns of `text`/`image` blocks (consecutive turns of one role merged; a `data:` URL becomes `image.source.bytes`) |
//! | assistant `tool_calls` | `toolUse` blocks (`arguments` parsed into `input`) |
//! | `tool` messages | `toolResult` blocks in a user turn |
//! | `max_completion_tokens` / `max_tokens` | `inferenceConfig.maxTokens` (absent: the model's default) |
//! | `temperature` (0-1), `top_p`, `stop` | `inferenceConfig.temperature`, `topP`, `stopSequences` |
//! | `tools`, `tool_choice` `auto`/`required`/a function | `toolConfig.tools[].toolSpec` (`parameters` as `inputSchema.json`), `toolChoice` `auto`/`any`/`tool` (`none`: the tools are dropped, or when the conversation holds tool calls, which Converse takes only with tools, the choice) |
//!
//! Dropped with a warning (no counterpart in Converse): `parallel_tool_calls:
//! false`, `response_format` other than text, `reasoning_effort`, `user`,
//! `tools[].function.strict`, `image_url.detail`, a message's `name`, and any
//! other field (`seed`, `logprobs`, `presence_penalty`...). Refused: `n` > 1,
//! images by URL (Bedrock takes bytes), image types other than png, jpeg,
//! gif and webp, tool types other than function, `arguments` that are not a
//! JSON object.

use super::super::anthropic::from_chat::wire::{
    ChatTool, NamedChoice, Part, ResponseFormat, Source, ToolCall,
};
use super::super::anthropic::from_chat::{image_source, Schema};
use super::super::fields::{
    bad, parse, parse_at, string_at, with_options, Fields, OneOrMany, Warnings,
};
use super::super::{Refused, RequestOpts, Translated};
use super::wire::*;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// OpenAI chat/completions request -> Converse request.
pub fn chat_to_converse(body: &[u8], opts: &RequestOpts) -> Result<Translated, Refused> {
    let fields = serde_json::from_slice::<Fields<'_>>(body).map_err(|e| bad("(body)", &e))?;
    let mut w = Warnings::default();
    let mut out = Out {
        messages: Vec::new(),
        system: Vec::new(),
        inference_config: InferenceConfig::default(),
        tool_config: None,
    };
    let mut max_tokens = None;
    let mut max_completion_tokens = None;
    let mut messages = None;
    let mut tools = None;
    let mut tool_choice = None;
    for (k, v) in &fields.0 {
        if v.get() == "null" {
            continue;
        }
        let c = &mut out.inference_config;
        match k.as_ref() {
            // (the model and streaming are in the URL; the usage chunk is the
            // stream translation's)
            "model" | "stream" | "stream_options" => {}
            "messages" => messages = Some(*v),
            "max_tokens" => max_tokens = Some(parse::<u64>(k, v)?),
            "max_completion_tokens" => max_completion_tokens = Some(parse::<u64>(k, v)?),
            "temperature" => {
                let t: f64 = parse(k, v)?;
                if !(0.0..=1.0).contains(&t) {
                    return Err(Refused::new(
                        "temperature",
                        "Bedrock's Converse takes 0 to 1",
                    ));
                }
                c.temperature = Some(v);
            }
            "top_p" => {
                parse::<f64>(k, v)?;
                c.top_p = Some(v);
            }
            "stop" => c.stop_sequences = Some(parse::<OneOrMany<'_>>(k, v)?.into_vec()),
            "n" => {
                if parse::<u64>(k, v)? != 1 {
                    return Err(Refused::new("n", "Bedrock gives one choice per request"));
                }
            }
            "tools" => tools = Some(tool_specs(parse(k, v)?, &mut w)?),
            "tool_choice" => tool_choice = Some(*v),
            "parallel_tool_calls" => {
                if !parse::<bool>(k, v)? {
                    w.dropped("parallel_tool_calls", || "parallel_tool_calls".into());
                }
            }
            "response_format" => {
                if parse::<ResponseFormat<'_>>(k, v)?.kind != "text" {
                    w.dropped("response_format", || "response_format".into());
                }
            }
            other => w.dropped(other.to_string(), || other.to_string()),
        }
    }
    let messages = messages.ok_or_else(|| Refused::new("messages", "required"))?;
    turns(
        parse::<Vec<Fields<'_>>>("messages", messages)?,
        &mut out,
        &mut w,
    )?;
    out.inference_config.max_tokens = max_completion_tokens.or(max_tokens);
    let tool_choice = tool_choice.map(choice).transpose()?;
    // (Converse refuses toolUse and toolResult blocks without a toolConfig)
    let holds_tool_blocks = out
        .messages
        .iter()
        .flat_map(|t| &t.content)
        .any(|b| matches!(b, Block::ToolUse(_) | Block::ToolResult(_)));
    match (tools, tool_choice) {
        (Some(_), Some(None)) if !holds_tool_blocks => w.said("tool_choice", || {
            "tool_choice: \"none\": the tools were dropped (Converse has no choice of none)".into()
        }),
        (Some(tools), Some(None)) if !tools.is_empty() => {
            w.said("tool_choice", || {
                "tool_choice: \"none\" dropped (Converse has no choice of none, and needs the tools of a conversation that holds tool calls)".into()
            });
            out.tool_config = Some(ToolConfig {
                tools,
                tool_choice: None,
            })
        }
        (Some(tools), choice) if !tools.is_empty() => {
            out.tool_config = Some(ToolConfig {
                tools,
                tool_choice: choice.flatten(),
            })
        }
        _ => {}
    }
    let body = serde_json::to_vec(&out).map_err(|e| bad("(body)", &e))?;
    Ok(Translated {
        body: with_options(body, opts.options).into(),
        warnings: w.into_strings(),
    })
}

/// The messages as `system` blocks and alternating turns.
fn turns<'a>(
    messages: Vec<Fields<'a>>,
    out: &mut Out<'a>,
    w: &mut Warnings,
) -> Result<(), Refused> {
    for (i, m) in messages.into_iter().enumerate() {
        let at = |f: &str| format!("messages[{i}].{f}");
        let mut role = None;
        let mut content = None;
        let mut calls = None;
        let mut call_id = None;
        for (k, v) in m.0 {
            if v.get() == "null" {
                continue;
            }
            match k.as_ref() {
                "role" => role = Some(string_at(v, || at("role"))?),
                "content" => content = Some(v),
                "tool_calls" => {
                    calls = Some(parse_at::<Vec<ToolCall<'_>>>(v, || at("tool_calls"))?)
                }
                "tool_call_id" => call_id = Some(string_at(v, || at("tool_call_id"))?),
                "refusal" if v.get() == "\"\"" => {}
                other => w.dropped(format!("messages.{other}"), || at(other)),
            }
        }
        let role = role.ok_or_else(|| Refused::new(at("role"), "required"))?;
        let mut blocks = Vec::new();
        match role.as_ref() {
            "system" | "developer" => {
                if !out.messages.is_empty() {
                    w.said("system", || {
                        format!("messages[{i}]: a system message after the conversation began was moved to `system`")
                    });
                }
                if let Some(c) = content {
                    blocks_of(&|| at("content"), c, &mut blocks, w)?;
                }
                for (j, b) in blocks.into_iter().enumerate() {
                    match b {
                        Block::Text(text) => out.system.push(SystemText { text }),
                        _ => {
                            return Err(Refused::new(
                                format!("messages[{i}].content[{j}]"),
                                "a system message takes only text",
                            ))
                        }
                    }
                }
                continue;
            }
            "user" | "assistant" => {
                if let Some(c) = content {
                    blocks_of(&|| at("content"), c, &mut blocks, w)?;
                }
                for (j, c) in calls.into_iter().flatten().enumerate() {
                    let path = || format!("messages[{i}].tool_calls[{j}].function.arguments");
                    blocks.push(Block::ToolUse(ToolUse {
                        input: tool_input(c.function.arguments.as_deref(), path)?,
                        tool_use_id: c.id,
                        name: c.function.name,
                    }));
                }
            }
            "tool" => {
                let id = call_id.ok_or_else(|| Refused::new(at("tool_call_id"), "required"))?;
                let mut inner = Vec::new();
                if let Some(c) = content {
                    blocks_of(&|| at("content"), c, &mut inner, w)?;
                }
                blocks.push(Block::ToolResult(ToolResult {
                    tool_use_id: id,
                    content: inner,
                }));
            }
            _ => {
                return Err(Refused::new(
                    at("role"),
                    "one of system, developer, user, assistant, tool",
                ))
            }
        }
        let role = if role == "assistant" {
            "assistant"
        } else {
            "user"
        };
        if blocks.is_empty() {
            w.said("empty", || format!("messages[{i}]: dropped (no content)"));
            continue;
        }
        match out.messages.last_mut() {
            // Converse takes alternating turns: consecutive ones of one role
            // are one turn (tool results with the user message after them)
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => out.messages.push(Turn {
                role,
                content: blocks,
            }),
        }
    }
    Ok(())
}

/// Blocks of one message's `content`: a string, or an array of parts.
fn blocks_of<'a>(
    path: &dyn Fn() -> String,
    content: &'a RawValue,
    out: &mut Vec<Block<'a>>,
    w: &mut Warnings,
) -> Result<(), Refused> {
    if content.get().starts_with('"') {
        // a raw JSON string: passed along as it came (Converse refuses an
        // empty text block)
        if content.get() != "\"\"" {
            out.push(Block::Text(content));
        }
        return Ok(());
    }
    for (j, p) in parse_at::<Vec<Part<'a>>>(content, path)?
        .into_iter()
        .enumerate()
    {
        match (p.kind.as_ref(), p.text, p.image_url) {
            ("text", Some(text), _) if text.get().starts_with('"') => {
                if text.get() != "\"\"" {
                    out.push(Block::Text(text));
                }
            }
            ("image_url", _, Some(img)) => {
                if img.detail.is_some() {
                    w.dropped("detail", || format!("{}[{j}].image_url.detail", path()));
                }
                let image = image(img.url)
                    .map_err(|r| Refused::new(format!("{}[{j}].image_url.url", path()), r))?;
                out.push(Block::Image(image));
            }
            ("text" | "image_url", _, _) => {
                return Err(Refused::new(
                    format!("{}[{j}]", path()),
                    "a text part needs `text`, an image part `image_url`",
                ))
            }
            _ => {
                return Err(Refused::new(
                    format!("{}[{j}].type", path()),
                    "Bedrock's Converse takes text and image parts only",
                ))
            }
        }
    }
    Ok(())
}

/// A `data:` URL as a Converse image (Bedrock takes no image URLs).
fn image(url: Cow<'_, str>) -> Result<Image<'_>, &'static str> {
    if !url.starts_with("data:") {
        return Err("Bedrock takes images inline only: a data: URL (base64)");
    }
    let Source::Base64 { media_type, data } = image_source(url)? else {
        return Err("a data: URL must be base64");
    };
    let format = match media_type.as_ref() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => return Err("Bedrock takes png, jpeg, gif and webp images"),
    };
    Ok(Image {
        format,
        source: ImageSource { bytes: data },
    })
}

/// A tool call's JSON `arguments` string as a `toolUse` input (an object;
/// empty: `{}`).
fn tool_input(
    arguments: Option<&str>,
    path: impl Fn() -> String,
) -> Result<Box<RawValue>, Refused> {
    let args = arguments.unwrap_or("").trim();
    let input = match args.is_empty() {
        true => RawValue::from_string("{}".into()),
        false => RawValue::from_string(args.to_string()),
    }
    .map_err(|_| Refused::new(path(), "is not JSON"))?;
    if !input.get().starts_with('{') {
        return Err(Refused::new(path(), "must be a JSON object"));
    }
    Ok(input)
}

fn tool_specs<'a>(tools: Vec<ChatTool<'a>>, w: &mut Warnings) -> Result<Vec<ToolOut<'a>>, Refused> {
    tools
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            if t.kind != "function" {
                return Err(Refused::new(
                    format!("tools[{i}].type"),
                    "Bedrock's Converse takes function tools only",
                ));
            }
            let f = t
                .function
                .ok_or_else(|| Refused::new(format!("tools[{i}].function"), "required"))?;
            if f.strict.is_some() {
                w.dropped("strict", || format!("tools[{i}].function.strict"));
            }
            Ok(ToolOut {
                tool_spec: ToolSpec {
                    name: f.name,
                    description: f.description,
                    input_schema: InputSchema {
                        json: f.parameters.unwrap_or(Schema::Empty),
                    },
                },
            })
        })
        .collect()
}

/// `tool_choice` as Converse's (None: `none`, which Converse does not have).
fn choice(raw: &RawValue) -> Result<Option<ToolChoice<'_>>, Refused> {
    if raw.get().starts_with('"') {
        let s: Cow<'_, str> = parse("tool_choice", raw)?;
        return match s.as_ref() {
            "auto" => Ok(Some(ToolChoice::Auto(Empty {}))),
            "required" => Ok(Some(ToolChoice::Any(Empty {}))),
            "none" => Ok(None),
            _ => Err(Refused::new("tool_choice", "one of auto, none, required")),
        };
    }
    let c: NamedChoice<'_> = parse("tool_choice", raw)?;
    Ok(Some(ToolChoice::Tool(Named {
        name: c.function.name,
    })))
}
