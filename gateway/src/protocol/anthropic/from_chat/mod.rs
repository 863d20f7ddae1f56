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

use super::super::chat::request::{
    base64_url, functions, one_choice, unit_temperature, ChatTool, Common, ResponseFormat,
    ToolChoice as ChoiceIn,
};
use super::super::chat::turns::turns;
use super::super::fields::{bad, parse, string, translated, Fields, OneOrMany, Warnings};
use super::{Refused, RequestOpts, Translated};
use serde_json::value::RawValue;
use std::borrow::Cow;
use wire::*;

mod wire;

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
    let mut common = Common::default();
    let mut no_parallel = false;
    let mut effort = None;
    for (k, v) in &fields.0 {
        if v.get() == "null" || common.read(k, v)? {
            continue;
        }
        match k.as_ref() {
            "temperature" => out.temperature = Some(unit_temperature(v, "Anthropic")?),
            "top_p" => out.top_p = Some(v),
            "stop" => out.stop_sequences = Some(parse::<OneOrMany<'_>>(k, v)?.into_vec()),
            "stream" => out.stream = Some(parse(k, v)?),
            "n" => one_choice(v, "Anthropic")?,
            "tools" => out.tools = Some(tools(parse(k, v)?, &mut w)?),
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
    let t = turns::<Block>(common.messages()?, &mut w)?;
    out.system = (t.system.into_iter())
        .map(|text| Text { kind: "text", text })
        .collect();
    out.messages = t.turns;
    let client_max = common.max_tokens();
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
    if let Some(tc) = common.tool_choice {
        out.tool_choice = Some(choice(tc, no_parallel)?);
    } else if no_parallel && out.tools.is_some() {
        out.tool_choice = Some(ToolChoice {
            kind: "auto",
            name: None,
            disable_parallel_tool_use: Some(true),
        });
    }
    translated(&out, opts.options, w)
}

/// An image URL as Anthropic's source: `data:<type>;base64,<data>` inline,
/// any other URL by reference.
fn image_source(url: Cow<'_, str>) -> Result<Source<'_>, &'static str> {
    if !url.starts_with("data:") {
        return Ok(Source::Url { url });
    }
    let (media_type, data) = base64_url(url)?;
    Ok(Source::Base64 { media_type, data })
}

impl<'a> super::super::chat::turns::Block<'a> for Block<'a> {
    const UPSTREAM: &'static str = "Anthropic";
    fn text(text: &'a RawValue) -> Self {
        Block::Text { text }
    }
    fn image(url: Cow<'a, str>) -> Result<Self, &'static str> {
        image_source(url).map(|source| Block::Image { source })
    }
    fn tool_use(id: Cow<'a, str>, name: Cow<'a, str>, input: Box<RawValue>) -> Self {
        Block::ToolUse { id, name, input }
    }
    fn tool_result(tool_use_id: Cow<'a, str>, content: Vec<Self>) -> Self {
        Block::ToolResult {
            tool_use_id,
            content,
        }
    }
    fn as_text(&self) -> Option<&'a RawValue> {
        match self {
            Block::Text { text } => Some(text),
            _ => None,
        }
    }
}

fn tools<'a>(tools: Vec<ChatTool<'a>>, w: &mut Warnings) -> Result<Vec<Tool<'a>>, Refused> {
    let tools = functions(tools, "Anthropic", w)?;
    Ok(tools
        .into_iter()
        .map(|f| Tool {
            input_schema: f.schema(),
            name: f.name,
            description: f.description,
        })
        .collect())
}

fn choice(raw: &RawValue, no_parallel: bool) -> Result<ToolChoice<'_>, Refused> {
    let (kind, name) = match ChoiceIn::read(raw)? {
        ChoiceIn::Auto => ("auto", None),
        ChoiceIn::None => ("none", None),
        ChoiceIn::Required => ("any", None),
        ChoiceIn::Function(name) => ("tool", Some(name)),
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
