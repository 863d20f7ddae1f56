//! A chat request's messages as turns of content blocks, for the dialects
//! whose turns are lists of blocks much as OpenAI's messages are (Anthropic's
//! Messages API, Bedrock's Converse): system and developer messages as system
//! texts; user and assistant messages as turns of text, image and tool-use
//! blocks; tool messages as tool-result blocks in user turns; consecutive
//! turns of one role as one. What differs is the blocks' shape: [`Block`].

use super::super::fields::{parse_at, Fields, Warnings};
use super::super::Refused;
use super::request::{Message, Role};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// A content block of the target dialect.
pub(crate) trait Block<'a>: Sized {
    /// who takes these blocks (named where a part is refused: `"Anthropic"`)
    const UPSTREAM: &'static str;
    /// a text (a raw JSON string, as the client wrote it)
    fn text(text: &'a RawValue) -> Self;
    /// an image, by its URL; refused with the reason
    fn image(url: Cow<'a, str>) -> Result<Self, &'static str>;
    /// an assistant's tool call, its arguments parsed into `input`
    fn tool_use(id: Cow<'a, str>, name: Cow<'a, str>, input: Box<RawValue>) -> Self;
    /// a tool's result, `content` its blocks
    fn tool_result(id: Cow<'a, str>, content: Vec<Self>) -> Self;
    /// its text, when it is a text block
    fn as_text(&self) -> Option<&'a RawValue>;
}

/// A turn: `{"role": .., "content": [blocks]}`.
#[derive(Serialize)]
pub(crate) struct Turn<B> {
    pub role: &'static str,
    pub content: Vec<B>,
}

/// The messages made system texts and turns.
pub(crate) struct Turns<'a, B> {
    pub system: Vec<&'a RawValue>,
    pub turns: Vec<Turn<B>>,
}

/// The `messages` (each read by [`Message::read`]) as system texts and turns
/// of alternating roles (`user`, `assistant`); a message with no content
/// dropped with a warning.
pub(crate) fn turns<'a, B: Block<'a>>(
    messages: Vec<Fields<'a>>,
    w: &mut Warnings,
) -> Result<Turns<'a, B>, Refused> {
    let mut out = Turns {
        system: Vec::new(),
        turns: Vec::new(),
    };
    for (i, m) in messages.into_iter().enumerate() {
        let m = Message::read(i, m, w)?;
        let content = || format!("messages[{i}].content");
        let mut blocks: Vec<B> = Vec::new();
        let role = match m.role {
            Role::System => {
                if !out.turns.is_empty() {
                    w.said("system", || {
                        format!("messages[{i}]: a system message after the conversation began was moved to `system`")
                    });
                }
                if let Some(c) = m.content {
                    blocks_of(&content, c, &mut blocks, w)?;
                }
                for (j, b) in blocks.iter().enumerate() {
                    let text = b.as_text().ok_or_else(|| {
                        Refused::new(
                            format!("messages[{i}].content[{j}]"),
                            "a system message takes only text",
                        )
                    })?;
                    out.system.push(text);
                }
                continue;
            }
            Role::User | Role::Assistant => {
                if let Some(c) = m.content {
                    blocks_of(&content, c, &mut blocks, w)?;
                }
                for (j, c) in m.tool_calls.into_iter().enumerate() {
                    let input = c
                        .function
                        .input(|| format!("messages[{i}].tool_calls[{j}].function.arguments"))?;
                    blocks.push(B::tool_use(c.id, c.function.name, input));
                }
                match m.role {
                    Role::Assistant => "assistant",
                    _ => "user",
                }
            }
            Role::Tool { call_id } => {
                let mut inner = Vec::new();
                if let Some(c) = m.content {
                    blocks_of(&content, c, &mut inner, w)?;
                }
                blocks.push(B::tool_result(call_id, inner));
                "user"
            }
        };
        if blocks.is_empty() {
            w.said("empty", || format!("messages[{i}]: dropped (no content)"));
            continue;
        }
        match out.turns.last_mut() {
            // the turns alternate: consecutive ones of one role are one turn
            // (tool results with the user message after them)
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => out.turns.push(Turn {
                role,
                content: blocks,
            }),
        }
    }
    Ok(out)
}

/// Blocks of one message's `content` (at `path`): a string, or an array of
/// text and image parts; empty texts left out, an image's `detail` dropped
/// with a warning.
fn blocks_of<'a, B: Block<'a>>(
    path: &dyn Fn() -> String,
    content: &'a RawValue,
    out: &mut Vec<B>,
    w: &mut Warnings,
) -> Result<(), Refused> {
    if content.get().starts_with('"') {
        // a raw JSON string: passed along as it came (an empty text block is
        // refused upstream)
        if content.get() != "\"\"" {
            out.push(B::text(content));
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
                    out.push(B::text(text));
                }
            }
            ("image_url", _, Some(img)) => {
                if img.detail.is_some() {
                    w.dropped("detail", || format!("{}[{j}].image_url.detail", path()));
                }
                out.push(
                    B::image(img.url)
                        .map_err(|r| Refused::new(format!("{}[{j}].image_url.url", path()), r))?,
                );
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
                    format!("{} takes text and image parts only", B::UPSTREAM),
                ))
            }
        }
    }
    Ok(())
}

/// One part of a message's `content` array (of the kinds these dialects take).
#[derive(Deserialize)]
struct Part<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    /// (a raw JSON string: text passes along without being unescaped)
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    image_url: Option<ImageUrl<'a>>,
}

#[derive(Deserialize)]
struct ImageUrl<'a> {
    #[serde(borrow)]
    url: Cow<'a, str>,
    #[serde(borrow, default)]
    detail: Option<Cow<'a, str>>,
}
