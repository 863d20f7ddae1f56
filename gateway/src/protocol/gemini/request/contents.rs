//! The messages of an OpenAI chat request as Gemini's `systemInstruction` and
//! `contents`: turns of roles `user` and `model`, each a list of parts.

use super::super::super::chat::request::{Message, Role};
use super::super::super::fields::{parse_at, string_at, Fields, Warnings};
use super::super::super::Refused;
use super::data_url;
use super::wire::*;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;

/// Gemini's documented `thoughtSignature` for a function call replayed
/// without the signature the model gave it (OpenAI clients keep none).
const NO_SIGNATURE: &str = "skip_thought_signature_validator";

/// The messages as `systemInstruction` parts and turns (`out.contents`).
pub(super) fn turns<'a>(
    messages: Vec<Fields<'a>>,
    out: &mut Out<'a>,
    w: &mut Warnings,
) -> Result<(), Refused> {
    // the function name of each tool call id of the assistant messages so far
    // (a later call of the same id overrides an earlier one)
    let mut calls: HashMap<Cow<'a, str>, Cow<'a, str>> = HashMap::new();
    for (i, m) in messages.into_iter().enumerate() {
        let Message {
            role,
            content,
            tool_calls,
        } = Message::read(i, m, w)?;
        let at = |f: &str| format!("messages[{i}].{f}");
        let mut parts = Vec::new();
        let role = match role {
            Role::System => {
                if !out.contents.is_empty() {
                    w.said("system", || {
                        format!("messages[{i}]: a system message after the conversation began was moved to systemInstruction")
                    });
                }
                if let Some(c) = content {
                    parts_of(&|| at("content"), c, &mut parts, w)?;
                }
                if let Some(j) = parts.iter().position(|p| !matches!(p, PartOut::Text(_))) {
                    return Err(Refused::new(
                        format!("messages[{i}].content[{j}]"),
                        "a system message takes only text",
                    ));
                }
                match &mut out.system_instruction {
                    Some(s) => s.parts.extend(parts),
                    None if parts.is_empty() => {}
                    None => out.system_instruction = Some(System { parts }),
                }
                continue;
            }
            Role::User => {
                if let Some(c) = content {
                    parts_of(&|| at("content"), c, &mut parts, w)?;
                }
                "user"
            }
            Role::Assistant => {
                if let Some(c) = content {
                    parts_of(&|| at("content"), c, &mut parts, w)?;
                }
                for (j, c) in tool_calls.into_iter().enumerate() {
                    let path = || format!("messages[{i}].tool_calls[{j}].function.arguments");
                    parts.push(PartOut::Call(CallPart {
                        function_call: FunctionCall {
                            args: c.function.input(path)?,
                            name: c.function.name.clone(),
                        },
                        thought_signature: NO_SIGNATURE,
                    }));
                    calls.insert(c.id, c.function.name);
                }
                "model"
            }
            Role::Tool { call_id: id } => {
                let name = calls.get(&id).cloned().ok_or_else(|| {
                    Refused::new(
                        at("tool_call_id"),
                        "names no tool call of an earlier assistant message",
                    )
                })?;
                let response = match content {
                    Some(c) => result(&|| at("content"), c)?,
                    None => Response::Output {
                        output: Cow::Borrowed(""),
                    },
                };
                parts.push(PartOut::Response(ResponsePart {
                    function_response: FunctionResponse { name, response },
                }));
                "user"
            }
        };
        if parts.is_empty() {
            w.said("empty", || format!("messages[{i}]: dropped (no content)"));
            continue;
        }
        match out.contents.last_mut() {
            // Gemini's turns alternate: consecutive ones of a role are one turn
            Some(last) if last.role == role => last.parts.extend(parts),
            _ => out.contents.push(Content { role, parts }),
        }
    }
    Ok(())
}

/// Parts of one message's `content`: a string, or an array of parts.
fn parts_of<'a>(
    path: &dyn Fn() -> String,
    content: &'a RawValue,
    out: &mut Vec<PartOut<'a>>,
    w: &mut Warnings,
) -> Result<(), Refused> {
    if content.get().starts_with('"') {
        // a raw JSON string: passed along as it came
        if content.get() != "\"\"" {
            out.push(PartOut::Text(TextPart { text: content }));
        }
        return Ok(());
    }
    for (j, p) in parse_at::<Vec<Part<'a>>>(content, path)?
        .into_iter()
        .enumerate()
    {
        let at = |f: &str| format!("{}[{j}]{f}", path());
        let part =
            match (p.kind.as_ref(), p.text, p.image_url, p.input_audio, p.file) {
                ("text", Some(text), ..) if text.get().starts_with('"') => {
                    if text.get() == "\"\"" {
                        continue;
                    }
                    PartOut::Text(TextPart { text })
                }
                ("image_url", _, Some(img), ..) => {
                    if img.detail.is_some() {
                        w.dropped("detail", || at(".image_url.detail"));
                    }
                    image(img.url).map_err(|r| Refused::new(at(".image_url.url"), r))?
                }
                ("input_audio", _, _, Some(a), _) => {
                    if a.format.is_empty()
                        || a.format.len() > 16
                        || !a.format.bytes().all(|b| b.is_ascii_alphanumeric())
                    {
                        return Err(Refused::new(
                            at(".input_audio.format"),
                            "a format name such as wav or mp3",
                        ));
                    }
                    PartOut::Inline(InlinePart {
                        inline_data: Blob {
                            mime_type: Cow::Owned(format!("audio/{}", a.format)),
                            data: a.data,
                        },
                    })
                }
                ("file", _, _, _, Some(f)) => {
                    if f.file_id.is_some() {
                        return Err(Refused::new(
                            at(".file.file_id"),
                            "an OpenAI file id means nothing to Gemini: send file_data",
                        ));
                    }
                    if f.filename.is_some() {
                        w.dropped("filename", || at(".file.filename"));
                    }
                    let data = f
                        .file_data
                        .ok_or_else(|| Refused::new(at(".file.file_data"), "required"))?;
                    PartOut::Inline(InlinePart {
                        inline_data: data_url(data)
                            .map_err(|r| Refused::new(at(".file.file_data"), r))?,
                    })
                }
                ("text" | "image_url" | "input_audio" | "file", ..) => return Err(Refused::new(
                    at(""),
                    "a part needs the field its type names (text, image_url, input_audio, file)",
                )),
                _ => {
                    return Err(Refused::new(
                        at(".type"),
                        "Gemini takes text, image_url, input_audio and file parts",
                    ))
                }
            };
        out.push(part);
    }
    Ok(())
}

/// An image URL as a part: a `data:` URL inline, an `https:`, `http:` or
/// `gs:` URL by reference (its type guessed from the extension).
fn image(url: Cow<'_, str>) -> Result<PartOut<'_>, &'static str> {
    if url.starts_with("data:") {
        return Ok(PartOut::Inline(InlinePart {
            inline_data: data_url(url)?,
        }));
    }
    if !["https://", "http://", "gs://"]
        .iter()
        .any(|s| url.starts_with(s))
    {
        return Err("a data:, https:, http: or gs: URL");
    }
    Ok(PartOut::File(FilePart {
        file_data: FileRef {
            mime_type: image_type(&url),
            file_uri: url,
        },
    }))
}

/// The media type an image URL's extension names (`image/jpeg` for none).
fn image_type(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let ext = path.rsplit_once('.').map_or("", |(_, e)| e);
    match ext.to_ascii_lowercase().as_str() {
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        _ => "image/jpeg",
    }
}

/// A tool message's content as a function's `response`: the JSON object its
/// text is, or the text as `{"output": text}`.
fn result<'a>(path: &dyn Fn() -> String, content: &'a RawValue) -> Result<Response<'a>, Refused> {
    let text: Cow<'a, str> = if content.get().starts_with('"') {
        string_at(content, path)?
    } else {
        let mut text = String::new();
        for (j, p) in parse_at::<Vec<Part<'a>>>(content, path)?
            .into_iter()
            .enumerate()
        {
            match (p.kind.as_ref(), p.text) {
                ("text", Some(t)) => {
                    text.push_str(&string_at(t, || format!("{}[{j}].text", path()))?)
                }
                _ => {
                    return Err(Refused::new(
                        format!("{}[{j}].type", path()),
                        "a tool result takes only text parts",
                    ))
                }
            }
        }
        Cow::Owned(text)
    };
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        if let Ok(object) = RawValue::from_string(trimmed.to_string()) {
            return Ok(Response::Object(object));
        }
    }
    Ok(Response::Output { output: text })
}
