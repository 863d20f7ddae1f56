//! Reading the JSON the translations take, for every dialect: a JSON object's
//! top-level fields borrowed in order, one field's value parsed or the request
//! [`Refused`](super::Refused) naming it, the bounded list of warnings for
//! dropped fields, the provider's options set over a written body, and the
//! raw JSON strings of answers (passed along without being unescaped).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;

pub(crate) use crate::request_body::Fields;

/// `body` (a JSON object just written) with the provider's `options` set over
/// its top-level fields; `body` itself when there are none.
pub(crate) fn with_options(body: Vec<u8>, options: &[(String, Box<RawValue>)]) -> Vec<u8> {
    if options.is_empty() {
        return body;
    }
    let Ok(fields) = crate::json::from_bytes::<Fields<'_>>(&body) else {
        return body;
    };
    let mut out = Vec::with_capacity(body.len() + 64);
    out.push(b'{');
    let kept = fields
        .0
        .iter()
        .filter(|(k, _)| !options.iter().any(|(o, _)| o == k))
        .map(|(k, v)| (k.as_ref(), v.get()));
    let set = options.iter().map(|(k, v)| (k.as_str(), v.get()));
    for (i, (k, v)) in kept.chain(set).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Writing a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, k);
        out.push(b':');
        out.extend_from_slice(v.as_bytes());
    }
    out.push(b'}');
    out
}

/// `out` written as the translated request's body, the provider's `options`
/// set over its top-level fields, with the warnings `w` holds.
pub(crate) fn translated(
    out: &impl Serialize,
    options: &[(String, Box<RawValue>)],
    w: Warnings,
) -> Result<super::Translated, super::Refused> {
    let body = serde_json::to_vec(out).map_err(|e| bad("(body)", &e))?;
    Ok(super::Translated {
        body: with_options(body, options).into(),
        warnings: w.into_strings(),
    })
}

/// Most distinct warnings one request gets (the body is the client's: its
/// unknown fields are not to grow the record without bound).
const MAX_WARNINGS: usize = 16;

/// Fields dropped in translation: one warning per kind of field, naming where
/// it first appeared and how often it did.
#[derive(Default)]
pub(crate) struct Warnings {
    /// (kind, first path, how many)
    seen: Vec<(Cow<'static, str>, String, usize)>,
    /// kinds beyond [`MAX_WARNINGS`]
    more: usize,
}

impl Warnings {
    /// `path` (whose last part is `kind`) was dropped.
    pub fn dropped(&mut self, kind: impl Into<Cow<'static, str>>, path: impl FnOnce() -> String) {
        let kind = kind.into();
        if let Some(w) = self.seen.iter_mut().find(|w| w.0 == kind) {
            w.2 += 1;
        } else if self.seen.len() < MAX_WARNINGS {
            self.seen.push((kind, bounded(path()), 1));
        } else {
            self.more += 1;
        }
    }

    /// A field changed or dropped for a reason of its own (`message` names it).
    pub fn said(&mut self, kind: &'static str, message: impl FnOnce() -> String) {
        if !self.seen.iter().any(|w| w.0 == kind) && self.seen.len() < MAX_WARNINGS {
            self.seen.push((Cow::Borrowed(kind), bounded(message()), 0));
        }
    }

    pub fn into_strings(self) -> Vec<String> {
        let mut out: Vec<String> = self
            .seen
            .into_iter()
            .map(|(_, path, n)| match n {
                0 => path,
                1 => format!("{path}: dropped (no counterpart upstream)"),
                n => format!(
                    "{path}: dropped (no counterpart upstream), and {} more like it",
                    n - 1
                ),
            })
            .collect();
        if self.more > 0 {
            out.push(format!("{} more fields dropped", self.more));
        }
        out
    }
}

/// Longest warning or refusal reason: they can name the client's keys and
/// quote its values, which are as long as the client likes.
const MAX_TEXT: usize = 200;

/// `s` cut to [`MAX_TEXT`] bytes (at a character boundary).
pub(crate) fn bounded(mut s: String) -> String {
    if s.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
    s
}

/// A Refused for a value that is not of the shape the field takes.
pub(crate) fn bad(field: impl Into<String>, e: &serde_json::Error) -> super::Refused {
    let msg = e.to_string();
    // serde's message names the expected shape; its position is in the field's
    // own text, not the body's, so it is cut
    let msg = msg.split(" at line ").next().unwrap_or("invalid value");
    super::Refused::new(field, bounded(msg.to_string()))
}

/// Parses one field's raw value as `T`, refusing the request naming `field`.
pub(crate) fn parse<'a, T: Deserialize<'a>>(
    field: &str,
    v: &'a RawValue,
) -> Result<T, super::Refused> {
    serde_json::from_str(v.get()).map_err(|e| bad(field, &e))
}

/// A JSON string or an array of them (`stop`).
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany<'a> {
    One(#[serde(borrow)] Cow<'a, str>),
    Many(#[serde(borrow)] Vec<Cow<'a, str>>),
}

impl<'a> OneOrMany<'a> {
    pub fn into_vec(self) -> Vec<Cow<'a, str>> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// [`parse`] with the field's path made only when the request is refused.
pub(crate) fn parse_at<'a, T: Deserialize<'a>>(
    v: &'a RawValue,
    field: impl FnOnce() -> String,
) -> Result<T, super::Refused> {
    serde_json::from_str(v.get()).map_err(|e| bad(field(), &e))
}

/// [`string`] with the field's path made only when the request is refused.
pub(crate) fn string_at<'a>(
    v: &'a RawValue,
    field: impl FnOnce() -> String,
) -> Result<Cow<'a, str>, super::Refused> {
    parse_at::<Str<'a>>(v, field).map(|s| s.0)
}

#[derive(Deserialize)]
struct Str<'a>(#[serde(borrow)] Cow<'a, str>);

/// Parses one field's raw value as a string, borrowed when it has no escapes.
pub(crate) fn string<'a>(field: &str, v: &'a RawValue) -> Result<Cow<'a, str>, super::Refused> {
    parse::<Str<'a>>(field, v).map(|s| s.0)
}

/// A raw JSON value when it is a string (null and other shapes are absent).
pub(crate) fn text(v: Option<&RawValue>) -> Option<&RawValue> {
    v.filter(|v| v.get().starts_with('"'))
}

/// Bytes of a raw JSON string's text (escapes counted as written: an estimate).
pub(crate) fn raw_len(v: Option<&RawValue>) -> usize {
    text(v).map_or(0, |v| v.get().len().saturating_sub(2))
}

/// A raw JSON string that holds text (not `""`).
pub(crate) fn nonempty(v: Option<&RawValue>) -> Option<&RawValue> {
    text(v).filter(|v| v.get().len() > 2)
}
