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

use super::super::chat::request::{
    base64_url, functions, one_choice, unit_temperature, ChatTool, Common, ResponseFormat,
    ToolChoice as ChoiceIn,
};
use super::super::chat::turns::{self, turns};
use super::super::fields::{bad, parse, translated, Fields, OneOrMany, Warnings};
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
    let mut common = Common::default();
    let mut tools = None;
    for (k, v) in &fields.0 {
        if v.get() == "null" || common.read(k, v)? {
            continue;
        }
        let c = &mut out.inference_config;
        match k.as_ref() {
            // (streaming is in the URL)
            "stream" => {}
            "temperature" => c.temperature = Some(unit_temperature(v, "Bedrock's Converse")?),
            "top_p" => {
                parse::<f64>(k, v)?;
                c.top_p = Some(v);
            }
            "stop" => c.stop_sequences = Some(parse::<OneOrMany<'_>>(k, v)?.into_vec()),
            "n" => one_choice(v, "Bedrock")?,
            "tools" => tools = Some(tool_specs(parse(k, v)?, &mut w)?),
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
    let t = turns::<Block>(common.messages()?, &mut w)?;
    out.system = (t.system.into_iter())
        .map(|text| SystemText { text })
        .collect();
    out.messages = t.turns;
    out.inference_config.max_tokens = common.max_tokens();
    let tool_choice = common.tool_choice.map(choice).transpose()?;
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
    translated(&out, opts.options, w)
}

/// A `data:` URL as a Converse image (Bedrock takes no image URLs).
fn image(url: Cow<'_, str>) -> Result<Image<'_>, &'static str> {
    if !url.starts_with("data:") {
        return Err("Bedrock takes images inline only: a data: URL (base64)");
    }
    let (media_type, data) = base64_url(url)?;
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

impl<'a> turns::Block<'a> for Block<'a> {
    const UPSTREAM: &'static str = "Bedrock's Converse";
    fn text(text: &'a RawValue) -> Self {
        Block::Text(text)
    }
    fn image(url: Cow<'a, str>) -> Result<Self, &'static str> {
        image(url).map(Block::Image)
    }
    fn tool_use(tool_use_id: Cow<'a, str>, name: Cow<'a, str>, input: Box<RawValue>) -> Self {
        Block::ToolUse(ToolUse {
            tool_use_id,
            name,
            input,
        })
    }
    fn tool_result(tool_use_id: Cow<'a, str>, content: Vec<Self>) -> Self {
        Block::ToolResult(ToolResult {
            tool_use_id,
            content,
        })
    }
    fn as_text(&self) -> Option<&'a RawValue> {
        match self {
            Block::Text(text) => Some(text),
            _ => None,
        }
    }
}

fn tool_specs<'a>(tools: Vec<ChatTool<'a>>, w: &mut Warnings) -> Result<Vec<ToolOut<'a>>, Refused> {
    let tools = functions(tools, "Bedrock's Converse", w)?;
    Ok(tools
        .into_iter()
        .map(|f| ToolOut {
            tool_spec: ToolSpec {
                input_schema: InputSchema { json: f.schema() },
                name: f.name,
                description: f.description,
            },
        })
        .collect())
}

/// `tool_choice` as Converse's (None: `none`, which Converse does not have).
fn choice(raw: &RawValue) -> Result<Option<ToolChoice<'_>>, Refused> {
    Ok(match ChoiceIn::read(raw)? {
        ChoiceIn::Auto => Some(ToolChoice::Auto(Empty {})),
        ChoiceIn::Required => Some(ToolChoice::Any(Empty {})),
        ChoiceIn::None => None,
        ChoiceIn::Function(name) => Some(ToolChoice::Tool(Named { name })),
    })
}
