//! An OpenAI chat/completions request made a Gemini `generateContent` request
//! (the model and streaming are the URL's, not the body's).
//!
//! | OpenAI | Gemini |
//! |---|---|
//! | `system`/`developer` messages | `systemInstruction` text parts |
//! | `user`/`assistant` messages | `contents` turns of roles `user`/`model`, consecutive turns of one role merged |
//! | text parts | `text` parts (as written) |
//! | `image_url` (`data:` URL / `https:`, `http:`, `gs:` URL), `input_audio`, `file` (`file_data`) | `inlineData` (base64 and its type) / `fileData` (the URI, its type from the extension, `image/jpeg` when it names none) |
//! | assistant `tool_calls` | `functionCall` parts (`arguments` parsed into `args`; `thoughtSignature` Gemini's value for calls made without one) |
//! | `tool` messages | `functionResponse` parts (the function's name from the earlier call of that id; a JSON object result as it is, other text as `{"output": text}`) |
//! | `tools` (functions) | one `functionDeclarations` tool (`parameters` as `parametersJsonSchema`) |
//! | `tool_choice` `auto`/`none`/`required`/a function/`allowed_tools` | `toolConfig.functionCallingConfig` mode `AUTO`/`NONE`/`ANY`/`ANY` with `allowedFunctionNames` |
//! | `max_completion_tokens` / `max_tokens` | `generationConfig.maxOutputTokens` (none when absent: the model's limit) |
//! | `temperature`, `top_p`, `stop`, `n`, `presence_penalty`, `frequency_penalty`, `seed` | `generationConfig` `temperature`, `topP`, `stopSequences`, `candidateCount`, `presencePenalty`, `frequencyPenalty`, `seed` |
//! | `response_format` `json_object` / `json_schema` | `responseMimeType: application/json` / and `responseJsonSchema` |
//! | `reasoning_effort` | `thinkingConfig.thinkingBudget` ([`thinking_budget`]) |
//!
//! Dropped with a warning: `logit_bias`, `logprobs`, `top_logprobs`, `user`,
//! `parallel_tool_calls: false`, `metadata`, `store`, `service_tier`,
//! `modalities`, `audio`, `prediction`, `web_search_options`, a message's
//! `name`, an image's `detail`, a tool's `strict` and every field OpenAI's API
//! does not have; refused: tools other than functions, content parts other
//! than text, image, audio and file data, file ids.

mod contents;
mod wire;

use super::super::chat::request::{functions, ChatTool, Common, ResponseFormat, ToolChoice};
use super::super::fields::{bad, parse, string, translated, Fields, OneOrMany, Warnings};
use super::super::{Refused, RequestOpts, Translated};
use serde_json::value::RawValue;
use std::borrow::Cow;
use wire::*;

/// The thinking budget (tokens) for an OpenAI `reasoning_effort`, as Google's
/// own OpenAI-compatible endpoint maps it: `none` turns thinking off (0),
/// `minimal` and `low` 1024, `medium` 8192, `high` and `xhigh` 24576 (the
/// most every thinking model takes).
fn thinking_budget(effort: &str) -> Option<u64> {
    Some(match effort {
        "none" => 0,
        "minimal" | "low" => 1024,
        "medium" => 8192,
        "high" | "xhigh" => 24576,
        _ => return None,
    })
}

/// OpenAI chat request -> generateContent body (no `model`, no `stream`: both
/// go in the URL).
pub fn chat_to_gemini(body: &[u8], opts: &RequestOpts) -> Result<Translated, Refused> {
    let fields = crate::json::from_bytes::<Fields<'_>>(body).map_err(|e| bad("(body)", &e))?;
    let mut w = Warnings::default();
    let mut out = Out {
        contents: Vec::new(),
        system_instruction: None,
        tools: None,
        tool_config: None,
        generation_config: GenerationConfig::default(),
    };
    let g = &mut out.generation_config;
    let mut common = Common::default();
    for (k, v) in &fields.0 {
        if v.get() == "null" || common.read(k, v)? {
            continue;
        }
        match k.as_ref() {
            "stream" => {}
            "temperature" => g.temperature = Some(number(k, v)?),
            "top_p" => g.top_p = Some(number(k, v)?),
            "presence_penalty" => g.presence_penalty = Some(number(k, v)?),
            "frequency_penalty" => g.frequency_penalty = Some(number(k, v)?),
            "seed" => g.seed = Some(parse(k, v)?),
            "stop" => g.stop_sequences = Some(parse::<OneOrMany<'_>>(k, v)?.into_vec()),
            "n" => g.candidate_count = Some(parse(k, v)?),
            "response_format" => response_format(parse(k, v)?, g, &mut w),
            "reasoning_effort" => {
                let effort = string(k, v)?;
                let budget = thinking_budget(&effort).ok_or_else(|| {
                    Refused::new(k.as_ref(), "one of none, minimal, low, medium, high, xhigh")
                })?;
                g.thinking_config = Some(ThinkingConfig {
                    thinking_budget: budget,
                });
            }
            "tools" => out.tools = Some([tools(parse(k, v)?, &mut w)?]),
            "parallel_tool_calls" => {
                if !parse::<bool>(k, v)? {
                    w.said("parallel_tool_calls", || {
                        "parallel_tool_calls: dropped (Gemini has no switch for parallel calls)"
                            .into()
                    });
                }
            }
            other => w.dropped(other.to_string(), || other.to_string()),
        }
    }
    out.generation_config.max_output_tokens = common.max_tokens();
    if let Some(tc) = common.tool_choice {
        out.tool_config = Some(choice(tc, &mut w)?);
    }
    contents::turns(common.messages()?, &mut out, &mut w)?;
    if out.contents.is_empty() {
        return Err(Refused::new(
            "messages",
            "Gemini needs a user or assistant message with content",
        ));
    }
    translated(&out, opts.options, w)
}

/// A field's raw value, when it is a JSON number.
fn number<'a>(field: &str, v: &'a RawValue) -> Result<&'a RawValue, Refused> {
    parse::<f64>(field, v).map(|_| v)
}

fn tools<'a>(tools: Vec<ChatTool<'a>>, w: &mut Warnings) -> Result<Tools<'a>, Refused> {
    let declarations = functions(tools, "Gemini", w)?
        .into_iter()
        .map(|f| Declaration {
            name: f.name,
            description: f.description,
            parameters_json_schema: f.parameters,
        })
        .collect();
    Ok(Tools {
        function_declarations: declarations,
    })
}

fn choice<'a>(raw: &'a RawValue, w: &mut Warnings) -> Result<ToolConfig<'a>, Refused> {
    let (mode, names) = if raw.get().starts_with('"') {
        match ToolChoice::read(raw)? {
            ToolChoice::Auto => ("AUTO", Vec::new()),
            ToolChoice::None => ("NONE", Vec::new()),
            ToolChoice::Required => ("ANY", Vec::new()),
            ToolChoice::Function(name) => ("ANY", vec![name]),
        }
    } else {
        // (an object: a function, or OpenAI's `allowed_tools`, which only
        // Gemini of the dialects here can serve)
        let c: ObjectChoice<'_> = parse("tool_choice", raw)?;
        match (c.kind.as_ref(), c.function, c.allowed_tools) {
            ("function", Some(f), _) => ("ANY", vec![f.name]),
            ("allowed_tools", _, Some(a)) => {
                let names = a.tools.into_iter().map(|t| t.function.name).collect();
                match a.mode.as_ref() {
                    "required" => ("ANY", names),
                    "auto" => {
                        w.said("allowed_tools", || {
                            "tool_choice.allowed_tools: the list dropped (Gemini restricts the functions only when a call is required)".into()
                        });
                        ("AUTO", Vec::new())
                    }
                    _ => {
                        return Err(Refused::new(
                            "tool_choice.allowed_tools.mode",
                            "one of auto, required",
                        ))
                    }
                }
            }
            _ => return Err(Refused::new(
                "tool_choice",
                "a function ({\"type\":\"function\",\"function\":{\"name\":..}}) or allowed_tools",
            )),
        }
    };
    Ok(ToolConfig {
        function_calling_config: CallingConfig {
            mode,
            allowed_function_names: names,
        },
    })
}

fn response_format<'a>(f: ResponseFormat<'a>, g: &mut GenerationConfig<'a>, w: &mut Warnings) {
    match (f.kind.as_ref(), f.json_schema.and_then(|s| s.schema)) {
        ("text", _) => {}
        ("json_object", _) => g.response_mime_type = Some("application/json"),
        ("json_schema", Some(schema)) => {
            g.response_mime_type = Some("application/json");
            g.response_json_schema = Some(schema);
        }
        _ => w.said("response_format", || {
            format!(
                "response_format: {:?} dropped (Gemini takes text, json_object and json_schema with a schema)",
                f.kind
            )
        }),
    }
}

/// A data URL's media type and base64 data (`data:<type>[;params];base64,<data>`).
fn data_url(url: Cow<'_, str>) -> Result<Blob<'_>, &'static str> {
    let split = |s: &str| -> Option<(usize, usize)> {
        let rest = s.strip_prefix("data:")?;
        let comma = rest.find(',')?;
        let head = rest[..comma].strip_suffix(";base64")?;
        let media = head.split(';').next().unwrap_or_default();
        (!media.is_empty()).then_some((media.len(), comma + 1))
    };
    const BAD: &str = "a data: URL must name a media type and hold base64 data";
    let (media_len, data_start) = split(&url).ok_or(BAD)?;
    let (media, data) = (5..5 + media_len, 5 + data_start..);
    Ok(match url {
        Cow::Borrowed(s) => Blob {
            mime_type: Cow::Borrowed(&s[media]),
            data: Cow::Borrowed(&s[data]),
        },
        Cow::Owned(s) => Blob {
            mime_type: Cow::Owned(s[media].to_string()),
            data: Cow::Owned(s[data].to_string()),
        },
    })
}
