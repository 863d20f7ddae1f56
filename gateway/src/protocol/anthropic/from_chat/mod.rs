//! An OpenAI chat/completions request made an Anthropic Messages request.
//!
//! | OpenAI | Anthropic |
//! |---|---|
//! | `system`/`developer` messages | `system` text blocks |
//! | `user`/`assistant` messages, text and `image_url` parts | turns of `text`/`image` blocks (a `data:` URL becomes a base64 source) |
//! | assistant `tool_calls` | `tool_use` blocks (`arguments` parsed into `input`) |
//! | `tool` messages | `tool_result` blocks, consecutive ones in one user turn |
//! | `max_completion_tokens` / `max_tokens` | `max_tokens` (the configured default when absent) |
//! | `temperature` (0-1), `top_p`, `stop`, `stream` | the same, `stop` as `stop_sequences` |
//! | `tools`, `tool_choice` (`auto`/`none`/`required`/a function), `parallel_tool_calls: false` | `tools` (`parameters` as `input_schema`), `tool_choice` (`auto`/`none`/`any`/`tool`, `disable_parallel_tool_use`) |
//! | `response_format` `json_schema` | `output_config.format` (`json_object` has no counterpart: dropped) |
//! | `reasoning_effort` | `thinking.budget_tokens` ([`thinking_budget`]; without a client limit, `max_tokens` is the default plus the budget; with one below the budget, thinking is dropped with a warning) |
//! | `user` | `metadata.user_id` |

use super::super::fields::{
    bad, parse, parse_at, string, string_at, with_options, Fields, OneOrMany, Warnings,
};
use super::{Refused, RequestOpts, Translated};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use wire::*;

pub(crate) mod wire;

/// The extended thinking budget (tokens) for an OpenAI `reasoning_effort`:
/// `none` turns thinking off; `minimal` 1024 (Anthropic's least), `low` 2048,
/// `medium` 8192, `high` 16384, `xhigh` 32768.
pub(super) fn thinking_budget(effort: &str) -> Option<Option<u64>> {
    Some(match effort {
        "none" => None,
        "minimal" => Some(1024),
        "low" => Some(2048),
        "medium" => Some(8192),
        "high" => Some(16384),
        "xhigh" => Some(32768),
        _ => return None,
    })
}

/// OpenAI chat/completions request -> Anthropic Messages request.
pub fn chat_to_messages(body: &[u8], opts: &RequestOpts) -> Result<Translated, Refused> {
    let fields = serde_json::from_slice::<Fields<'_>>(body).map_err(|e| bad("(body)", &e))?;
    let mut w = Warnings::default();
    let mut out = Out {
        model: opts.model,
        max_tokens: u64::from(opts.default_max_tokens),
        system: Vec::new(),
        messages: Vec::new(),
        temperature: None,
        top_p: None,
        stop_sequences: None,
        stream: None,
        tools: None,
        tool_choice: None,
        thinking: None,
        metadata: None,
        output_config: None,
    };
    let mut max_tokens = None;
    let mut max_completion_tokens = None;
    let mut messages = None;
    let mut tool_choice = None;
    let mut no_parallel = false;
    let mut effort = None;
    for (k, v) in &fields.0 {
        if v.get() == "null" {
            continue;
        }
        match k.as_ref() {
            "model" | "stream_options" => {}
            "messages" => messages = Some(*v),
            "max_tokens" => max_tokens = Some(parse::<u64>(k, v)?),
            "max_completion_tokens" => max_completion_tokens = Some(parse::<u64>(k, v)?),
            "temperature" => {
                let t: f64 = parse(k, v)?;
                if !(0.0..=1.0).contains(&t) {
                    return Err(Refused::new("temperature", "Anthropic takes 0 to 1"));
                }
                out.temperature = Some(v);
            }
            "top_p" => out.top_p = Some(v),
            "stop" => out.stop_sequences = Some(parse::<OneOrMany<'_>>(k, v)?.into_vec()),
            "stream" => out.stream = Some(parse(k, v)?),
            "n" => {
                if parse::<u64>(k, v)? != 1 {
                    return Err(Refused::new("n", "Anthropic gives one choice per request"));
                }
            }
            "tools" => out.tools = Some(tools(parse(k, v)?, &mut w)?),
            "tool_choice" => tool_choice = Some(*v),
            "parallel_tool_calls" => no_parallel = !parse::<bool>(k, v)?,
            "response_format" => out.output_config = output_config(parse(k, v)?, &mut w),
            "reasoning_effort" => effort = Some(string(k, v)?),
            "user" => {
                out.metadata = Some(Metadata {
                    user_id: string(k, v)?,
                })
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
    let client_max = max_completion_tokens.or(max_tokens);
    if let Some(m) = client_max {
        out.max_tokens = m;
    }
    if let Some(effort) = effort {
        let budget = thinking_budget(&effort).ok_or_else(|| {
            Refused::new(
                "reasoning_effort",
                "one of none, minimal, low, medium, high, xhigh",
            )
        })?;
        if let (Some(b), None) = (budget, client_max) {
            // no limit asked: the thinking budget on top of the default answer
            out.max_tokens = out.max_tokens.saturating_add(b);
        }
        match budget {
            Some(b) if b < out.max_tokens => {
                out.thinking = Some(Thinking {
                    kind: "enabled",
                    budget_tokens: b,
                });
                if out.temperature.take().is_some() {
                    w.said("temperature", || {
                        "temperature: dropped (Anthropic takes none with extended thinking)".into()
                    });
                }
            }
            Some(b) => w.said("reasoning_effort", || {
                format!(
                    "reasoning_effort: dropped (its thinking budget, {b} tokens, must be below max_tokens, {})",
                    out.max_tokens
                )
            }),
            None => {}
        }
    }
    if let Some(tc) = tool_choice {
        out.tool_choice = Some(choice(tc, no_parallel)?);
    } else if no_parallel && out.tools.is_some() {
        out.tool_choice = Some(ToolChoice {
            kind: "auto",
            name: None,
            disable_parallel_tool_use: Some(true),
        });
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
                    let mut parts = Vec::new();
                    blocks_of(&|| at("content"), c, &mut parts, w)?;
                    for (j, b) in parts.into_iter().enumerate() {
                        match b {
                            Block::Text { text } => out.system.push(Text { kind: "text", text }),
                            _ => {
                                return Err(Refused::new(
                                    format!("messages[{i}].content[{j}]"),
                                    "a system message takes only text",
                                ))
                            }
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
                    blocks.push(tool_use(c, || format!("messages[{i}].tool_calls[{j}]"))?);
                }
            }
            "tool" => {
                let id = call_id.ok_or_else(|| Refused::new(at("tool_call_id"), "required"))?;
                let mut inner = Vec::new();
                if let Some(c) = content {
                    blocks_of(&|| at("content"), c, &mut inner, w)?;
                }
                blocks.push(Block::ToolResult {
                    tool_use_id: id,
                    content: inner,
                });
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
            // consecutive turns of one role are one turn (tool results first,
            // as the tool messages come before the next user message)
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
        // a raw JSON string: passed along as it came
        if content.get() != "\"\"" {
            out.push(Block::Text { text: content });
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
                    out.push(Block::Text { text });
                }
            }
            ("image_url", _, Some(img)) => {
                if img.detail.is_some() {
                    w.dropped("detail", || format!("{}[{j}].image_url.detail", path()));
                }
                out.push(Block::Image {
                    source: image_source(img.url)
                        .map_err(|r| Refused::new(format!("{}[{j}].image_url.url", path()), r))?,
                });
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
                    "Anthropic takes text and image parts only",
                ))
            }
        }
    }
    Ok(())
}

/// An image URL as Anthropic's source: `data:<type>;base64,<data>` inline,
/// any other URL by reference.
pub(crate) fn image_source(url: Cow<'_, str>) -> Result<Source<'_>, &'static str> {
    if !url.starts_with("data:") {
        return Ok(Source::Url { url });
    }
    let split = |s: &str| -> Option<(usize, usize)> {
        let comma = s.find(',')?;
        let head = &s[5..comma];
        let media = head.strip_suffix(";base64")?;
        Some((5 + media.len(), comma + 1))
    };
    let (media_end, data_start) = split(&url).ok_or("a data: URL must be base64")?;
    Ok(match url {
        Cow::Borrowed(s) => Source::Base64 {
            media_type: Cow::Borrowed(&s[5..media_end]),
            data: Cow::Borrowed(&s[data_start..]),
        },
        Cow::Owned(s) => Source::Base64 {
            media_type: Cow::Owned(s[5..media_end].to_string()),
            data: Cow::Owned(s[data_start..].to_string()),
        },
    })
}

/// An assistant's tool call as a `tool_use` block: its JSON `arguments`
/// string parsed into `input`.
fn tool_use<'a>(c: ToolCall<'a>, path: impl Fn() -> String) -> Result<Block<'a>, Refused> {
    let args = c.function.arguments.as_deref().unwrap_or("").trim();
    let input = if args.is_empty() {
        RawValue::from_string("{}".into())
    } else {
        RawValue::from_string(args.to_string())
    }
    .map_err(|_| Refused::new(path() + ".function.arguments", "is not JSON"))?;
    if !input.get().starts_with('{') {
        return Err(Refused::new(
            path() + ".function.arguments",
            "must be a JSON object",
        ));
    }
    Ok(Block::ToolUse {
        id: c.id,
        name: c.function.name,
        input,
    })
}

fn tools<'a>(tools: Vec<ChatTool<'a>>, w: &mut Warnings) -> Result<Vec<Tool<'a>>, Refused> {
    tools
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            if t.kind != "function" {
                return Err(Refused::new(
                    format!("tools[{i}].type"),
                    "Anthropic takes function tools only",
                ));
            }
            let f = t
                .function
                .ok_or_else(|| Refused::new(format!("tools[{i}].function"), "required"))?;
            if f.strict.is_some() {
                w.dropped("strict", || format!("tools[{i}].function.strict"));
            }
            Ok(Tool {
                name: f.name,
                description: f.description,
                input_schema: f.parameters.unwrap_or(Schema::Empty),
            })
        })
        .collect()
}

fn choice(raw: &RawValue, no_parallel: bool) -> Result<ToolChoice<'_>, Refused> {
    let (kind, name) = if raw.get().starts_with('"') {
        let s: Cow<'_, str> = parse("tool_choice", raw)?;
        let kind = match s.as_ref() {
            "auto" => "auto",
            "none" => "none",
            "required" => "any",
            _ => return Err(Refused::new("tool_choice", "one of auto, none, required")),
        };
        (kind, None)
    } else {
        let c: NamedChoice<'_> = parse("tool_choice", raw)?;
        ("tool", Some(c.function.name))
    };
    Ok(ToolChoice {
        kind,
        name,
        disable_parallel_tool_use: (no_parallel && kind != "none").then_some(true),
    })
}

fn output_config<'a>(f: ResponseFormat<'a>, w: &mut Warnings) -> Option<OutputConfig<'a>> {
    match (f.kind.as_ref(), f.json_schema.and_then(|s| s.schema)) {
        ("json_schema", Some(schema)) => Some(OutputConfig {
            format: Format {
                kind: "json_schema",
                schema,
            },
        }),
        ("text", _) => None,
        _ => {
            w.said("response_format", || {
                format!(
                    "response_format: {:?} dropped (Anthropic honours only json_schema with a schema)",
                    f.kind
                )
            });
            None
        }
    }
}

/// A tool's schema: the client's, or `{"type":"object"}` when it gave none.
pub(crate) enum Schema<'a> {
    Given(&'a RawValue),
    Empty,
}

impl Serialize for Schema<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Schema::Given(v) => v.serialize(s),
            Schema::Empty => ObjectSchema { kind: "object" }.serialize(s),
        }
    }
}

#[derive(Serialize)]
struct ObjectSchema {
    #[serde(rename = "type")]
    kind: &'static str,
}

impl<'de: 'a, 'a> Deserialize<'de> for Schema<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'a RawValue>::deserialize(d).map(Schema::Given)
    }
}
