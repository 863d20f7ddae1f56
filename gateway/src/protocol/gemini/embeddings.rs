//! OpenAI embeddings requests as Gemini's `embedContent` (one text) or
//! `batchEmbedContents` (a list of texts), and their answers as OpenAI's
//! embeddings list.
//!
//! | OpenAI | Gemini |
//! |---|---|
//! | `input` a string | `embedContent` `{"content":{"parts":[{"text":..}]}}` |
//! | `input` a list of strings | `batchEmbedContents` `{"requests":[..]}`, each naming `models/{model}` |
//! | `dimensions` | `outputDimensionality` |
//!
//! Dropped with a warning: `user`, `encoding_format: base64` (the answer's
//! vectors are numbers) and every field OpenAI's API does not have; refused:
//! token-array inputs (Gemini embeds text). The provider's `options` are set
//! over each request's fields (`taskType`, `title`...).

use super::super::fields::{bad, parse, string, with_options, Fields, Warnings};
use super::super::{Read, Refused, RequestOpts, Translated};
use super::read::UsageIn;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// OpenAI embeddings request -> embedContent body (one string input) or
/// batchEmbedContents body (a list of strings; each request names
/// `models/{opts.model}`); which one in the bool (true = batch). Token-array
/// inputs are refused naming `input`.
pub fn embeddings_to_gemini(
    body: &[u8],
    opts: &RequestOpts,
) -> Result<(Translated, bool), Refused> {
    let fields = crate::json::from_bytes::<Fields<'_>>(body).map_err(|e| bad("(body)", &e))?;
    let mut w = Warnings::default();
    let mut input = None;
    let mut dimensions = None;
    for (k, v) in &fields.0 {
        if v.get() == "null" {
            continue;
        }
        match k.as_ref() {
            "model" => {}
            "input" => input = Some(*v),
            "dimensions" => dimensions = Some(parse::<u64>(k, v)?),
            "encoding_format" => {
                if string(k, v)? != "float" {
                    w.said("encoding_format", || {
                        "encoding_format: answered as float (Gemini's vectors are numbers)".into()
                    });
                }
            }
            other => w.dropped(other.to_string(), || other.to_string()),
        }
    }
    let input = input.ok_or_else(|| Refused::new("input", "required"))?;
    let texts = texts(input)?;
    let (body, batch) = match texts {
        Texts::One(text) => {
            let body = serde_json::to_vec(&request(text, None, dimensions))
                .map_err(|e| bad("input", &e))?;
            (with_options(body, opts.options), false)
        }
        Texts::Many(texts) => {
            let model = match opts.model.strip_prefix("models/") {
                Some(_) => Cow::Borrowed(opts.model),
                None => Cow::Owned(format!("models/{}", opts.model)),
            };
            let mut body = b"{\"requests\":[".to_vec();
            for (i, text) in texts.into_iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                let one = serde_json::to_vec(&request(text, Some(&model), dimensions))
                    .map_err(|e| bad("input", &e))?;
                body.extend_from_slice(&with_options(one, opts.options));
            }
            body.extend_from_slice(b"]}");
            (body, true)
        }
    };
    Ok((
        Translated {
            body: body.into(),
            warnings: w.into_strings(),
        },
        batch,
    ))
}

/// One text's request (`model`: in a batch, each request names it).
fn request<'a>(text: &'a RawValue, model: Option<&'a str>, dimensions: Option<u64>) -> Request<'a> {
    Request {
        model,
        content: Content {
            parts: [Text { text }],
        },
        output_dimensionality: dimensions,
    }
}

enum Texts<'a> {
    One(&'a RawValue),
    Many(Vec<&'a RawValue>),
}

/// The input's texts (raw JSON strings): a string, or a non-empty list of them.
fn texts(input: &RawValue) -> Result<Texts<'_>, Refused> {
    const TOKENS: &str = "Gemini embeds text: token arrays cannot be served";
    if input.get().starts_with('"') {
        return Ok(Texts::One(input));
    }
    let list: Vec<&RawValue> = parse("input", input)?;
    if list.is_empty() {
        return Err(Refused::new("input", "must not be empty"));
    }
    for (i, v) in list.iter().enumerate() {
        if !v.get().starts_with('"') {
            return Err(match v.get().starts_with('[') || i == 0 {
                true => Refused::new("input", TOKENS),
                false => Refused::new(format!("input[{i}]"), "must be a string"),
            });
        }
    }
    Ok(Texts::Many(list))
}

/// embedContent / batchEmbedContents answer -> an OpenAI embeddings list
/// (model: `read.model`), its usage read when Gemini gives it, else
/// `read.prompt_estimate` (a body of another shape comes back as it is).
pub fn embeddings_to_openai(body: &[u8], read: &mut Read) -> Bytes {
    let Ok(a) = crate::json::from_bytes::<AnswerIn<'_>>(body) else {
        return Bytes::copy_from_slice(body);
    };
    let vectors: Vec<&RawValue> = match (a.embedding, a.embeddings) {
        (Some(one), _) => vec![one.values],
        (None, Some(many)) => many.into_iter().map(|e| e.values).collect(),
        (None, None) => return Bytes::copy_from_slice(body),
    };
    if let Some(u) = &a.usage_metadata {
        read.usage = Some(u.normalised());
    }
    // (none from Gemini: the client gets the gateway's estimate, as the record does)
    let usage = read.usage.unwrap_or(shared::usage::Usage {
        prompt_tokens: read.prompt_estimate,
        total_tokens: read.prompt_estimate,
        estimated: true,
        ..Default::default()
    });
    let out = ListOut {
        object: "list",
        data: vectors
            .into_iter()
            .enumerate()
            .map(|(index, embedding)| EmbeddingOut {
                object: "embedding",
                index,
                embedding,
            })
            .collect(),
        model: read.model.as_deref().unwrap_or("unknown"),
        usage: UsageOut {
            prompt_tokens: usage.prompt_tokens,
            total_tokens: usage.total_tokens,
        },
    };
    serde_json::to_vec(&out).map_or_else(|_| Bytes::copy_from_slice(body), Bytes::from)
}

// ---- the Gemini request, as written ----

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Request<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    content: Content<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dimensionality: Option<u64>,
}

#[derive(Serialize)]
struct Content<'a> {
    parts: [Text<'a>; 1],
}

#[derive(Serialize)]
struct Text<'a> {
    text: &'a RawValue,
}

// ---- the Gemini answer, as read ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnswerIn<'a> {
    #[serde(borrow, default)]
    embedding: Option<Values<'a>>,
    #[serde(borrow, default)]
    embeddings: Option<Vec<Values<'a>>>,
    #[serde(default)]
    usage_metadata: Option<UsageIn>,
}

#[derive(Deserialize)]
struct Values<'a> {
    #[serde(borrow)]
    values: &'a RawValue,
}

// ---- the OpenAI answer, as written ----

#[derive(Serialize)]
struct ListOut<'a> {
    object: &'static str,
    data: Vec<EmbeddingOut<'a>>,
    model: &'a str,
    usage: UsageOut,
}

#[derive(Serialize)]
struct EmbeddingOut<'a> {
    object: &'static str,
    index: usize,
    embedding: &'a RawValue,
}

#[derive(Serialize)]
struct UsageOut {
    prompt_tokens: u64,
    total_tokens: u64,
}
