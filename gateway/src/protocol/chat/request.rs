//! What reading an OpenAI chat request takes, whichever dialect it is made
//! into: one message's fields ([`Message::read`]), a tool call's arguments as
//! the JSON object they hold, the function tools ([`functions`]) and the tool
//! choice ([`ToolChoice`]), `response_format`, and an image's base64 `data:`
//! URL. The shapes borrow from the client's body.

use super::super::fields::{parse, parse_at, string, string_at, Fields, Warnings};
use super::super::Refused;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// The top-level fields of a chat request every translation reads alike:
/// `messages`, the answer's limit (`max_completion_tokens`, over the older
/// `max_tokens`), `tool_choice` (kept raw: its reading is the dialect's), and
/// `model` and `stream_options`, which the request's URL and the stream
/// translation see to.
#[derive(Default)]
pub(crate) struct Common<'a> {
    messages: Option<&'a RawValue>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    pub tool_choice: Option<&'a RawValue>,
}

impl<'a> Common<'a> {
    /// Reads field `k` (not null) when it is one of these: whether it was.
    pub fn read(&mut self, k: &str, v: &'a RawValue) -> Result<bool, Refused> {
        match k {
            "model" | "stream_options" => {}
            "messages" => self.messages = Some(v),
            "max_tokens" => self.max_tokens = Some(parse(k, v)?),
            "max_completion_tokens" => self.max_completion_tokens = Some(parse(k, v)?),
            "tool_choice" => self.tool_choice = Some(v),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The most tokens the client lets the answer have, when it said.
    pub fn max_tokens(&self) -> Option<u64> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// The messages (required), each one's fields.
    pub fn messages(&self) -> Result<Vec<Fields<'a>>, Refused> {
        let messages = self
            .messages
            .ok_or_else(|| Refused::new("messages", "required"))?;
        parse("messages", messages)
    }
}

/// `temperature` for an upstream (`"Anthropic"`) that takes 0 to 1 only.
pub(crate) fn unit_temperature<'a>(
    v: &'a RawValue,
    upstream: &str,
) -> Result<&'a RawValue, Refused> {
    let t: f64 = parse("temperature", v)?;
    if !(0.0..=1.0).contains(&t) {
        return Err(Refused::new(
            "temperature",
            format!("{upstream} takes 0 to 1"),
        ));
    }
    Ok(v)
}

/// `n` for an upstream (`"Anthropic"`) that gives one choice per request.
pub(crate) fn one_choice(v: &RawValue, upstream: &str) -> Result<(), Refused> {
    if parse::<u64>("n", v)? != 1 {
        return Err(Refused::new(
            "n",
            format!("{upstream} gives one choice per request"),
        ));
    }
    Ok(())
}

/// One message of a chat request's `messages`, read.
pub(crate) struct Message<'a> {
    pub role: Role<'a>,
    /// a string, or an array of parts (as the client wrote it)
    pub content: Option<&'a RawValue>,
    pub tool_calls: Vec<ToolCall<'a>>,
}

/// A message's `role` (`developer` is `system`), a tool message with the id of
/// the call it answers.
pub(crate) enum Role<'a> {
    System,
    User,
    Assistant,
    Tool { call_id: Cow<'a, str> },
}

impl<'a> Message<'a> {
    /// Message `i`, of fields `m`: its `role`, `content`, `tool_calls` and
    /// `tool_call_id` (null ones absent); an empty `refusal` passed over, any
    /// other field dropped with a warning. Refused: no role, a role OpenAI's
    /// API does not have, a tool message without `tool_call_id`.
    pub fn read(i: usize, m: Fields<'a>, w: &mut Warnings) -> Result<Self, Refused> {
        let at = |f: &str| format!("messages[{i}].{f}");
        let mut role = None;
        let mut content = None;
        let mut tool_calls = None;
        let mut call_id = None;
        for (k, v) in m.0 {
            if v.get() == "null" {
                continue;
            }
            match k.as_ref() {
                "role" => role = Some(string_at(v, || at("role"))?),
                "content" => content = Some(v),
                "tool_calls" => {
                    tool_calls = Some(parse_at::<Vec<ToolCall<'_>>>(v, || at("tool_calls"))?)
                }
                "tool_call_id" => call_id = Some(string_at(v, || at("tool_call_id"))?),
                "refusal" if v.get() == "\"\"" => {}
                other => w.dropped(format!("messages.{other}"), || at(other)),
            }
        }
        let role = role.ok_or_else(|| Refused::new(at("role"), "required"))?;
        let role = match role.as_ref() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" => Role::Tool {
                call_id: call_id.ok_or_else(|| Refused::new(at("tool_call_id"), "required"))?,
            },
            _ => {
                return Err(Refused::new(
                    at("role"),
                    "one of system, developer, user, assistant, tool",
                ))
            }
        };
        Ok(Message {
            role,
            content,
            tool_calls: tool_calls.unwrap_or_default(),
        })
    }
}

/// An assistant message's tool call.
#[derive(Deserialize)]
pub(crate) struct ToolCall<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(borrow)]
    pub function: Call<'a>,
}

#[derive(Deserialize)]
pub(crate) struct Call<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(borrow, default)]
    pub arguments: Option<Cow<'a, str>>,
}

impl Call<'_> {
    /// Its `arguments` (JSON text) as the JSON object they hold (`{}` when
    /// empty); refused, naming `path`, when they are not one.
    pub fn input(&self, path: impl Fn() -> String) -> Result<Box<RawValue>, Refused> {
        let args = self.arguments.as_deref().unwrap_or("").trim();
        let args = if args.is_empty() { "{}" } else { args };
        let input = RawValue::from_string(args.to_string())
            .map_err(|_| Refused::new(path(), "is not JSON"))?;
        if !input.get().starts_with('{') {
            return Err(Refused::new(path(), "must be a JSON object"));
        }
        Ok(input)
    }
}

/// An entry of `tools`.
#[derive(Deserialize)]
pub(crate) struct ChatTool<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Cow<'a, str>,
    #[serde(borrow, default)]
    pub function: Option<Function<'a>>,
}

/// A function tool.
#[derive(Deserialize)]
pub(crate) struct Function<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(borrow, default)]
    pub description: Option<Cow<'a, str>>,
    /// its JSON Schema, as the client wrote it
    #[serde(borrow, default)]
    pub parameters: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub strict: Option<&'a RawValue>,
}

impl<'a> Function<'a> {
    /// Its parameters' schema, `{"type":"object"}` when it has none (for an
    /// upstream that requires one).
    pub fn schema(&self) -> Schema<'a> {
        self.parameters.map_or(Schema::Empty, Schema::Given)
    }
}

/// The function tools of `tools`, each one's `strict` dropped with a warning
/// (no upstream here has it); a tool of another type is refused, naming
/// `upstream` (`"Anthropic"`) as the one that takes none.
pub(crate) fn functions<'a>(
    tools: Vec<ChatTool<'a>>,
    upstream: &str,
    w: &mut Warnings,
) -> Result<Vec<Function<'a>>, Refused> {
    tools
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            if t.kind != "function" {
                return Err(Refused::new(
                    format!("tools[{i}].type"),
                    format!("{upstream} takes function tools only"),
                ));
            }
            let f = t
                .function
                .ok_or_else(|| Refused::new(format!("tools[{i}].function"), "required"))?;
            if f.strict.is_some() {
                w.dropped("strict", || format!("tools[{i}].function.strict"));
            }
            Ok(f)
        })
        .collect()
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

/// `tool_choice`.
pub(crate) enum ToolChoice<'a> {
    Auto,
    None,
    Required,
    /// one function, by name
    Function(Cow<'a, str>),
}

impl<'a> ToolChoice<'a> {
    /// `auto`, `none`, `required`, or an object naming a function
    /// (`{"type":"function","function":{"name":..}}`).
    pub fn read(raw: &'a RawValue) -> Result<Self, Refused> {
        if raw.get().starts_with('"') {
            return match string("tool_choice", raw)?.as_ref() {
                "auto" => Ok(ToolChoice::Auto),
                "none" => Ok(ToolChoice::None),
                "required" => Ok(ToolChoice::Required),
                _ => Err(Refused::new("tool_choice", "one of auto, none, required")),
            };
        }
        let c: NamedChoice<'_> = parse("tool_choice", raw)?;
        Ok(ToolChoice::Function(c.function.name))
    }
}

#[derive(Deserialize)]
struct NamedChoice<'a> {
    #[serde(borrow)]
    function: Named<'a>,
}

/// `{"name": ..}`
#[derive(Deserialize)]
pub(crate) struct Named<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
}

/// `response_format`.
#[derive(Deserialize)]
pub(crate) struct ResponseFormat<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Cow<'a, str>,
    #[serde(borrow, default)]
    pub json_schema: Option<JsonSchema<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct JsonSchema<'a> {
    #[serde(borrow, default)]
    pub schema: Option<&'a RawValue>,
}

/// The media type and data of a `data:<media type>;base64,<data>` URL (the
/// media type all that stands before `;base64`).
pub(crate) fn base64_url(url: Cow<'_, str>) -> Result<(Cow<'_, str>, Cow<'_, str>), &'static str> {
    let split = |s: &str| -> Option<(usize, usize)> {
        let rest = s.strip_prefix("data:")?;
        let comma = rest.find(',')?;
        let media = rest[..comma].strip_suffix(";base64")?;
        Some((5 + media.len(), 5 + comma + 1))
    };
    let (media_end, data_start) = split(&url).ok_or("a data: URL must be base64")?;
    Ok(match url {
        Cow::Borrowed(s) => (
            Cow::Borrowed(&s[5..media_end]),
            Cow::Borrowed(&s[data_start..]),
        ),
        Cow::Owned(s) => (
            Cow::Owned(s[5..media_end].to_string()),
            Cow::Owned(s[data_start..].to_string()),
        ),
    })
}
