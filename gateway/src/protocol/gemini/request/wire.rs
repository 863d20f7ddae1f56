//! The parts of an OpenAI chat request only the Gemini translation reads
//! (content parts of audio and files, `allowed_tools`; the rest are
//! [`chat::request`](super::super::super::chat::request)'s), and the Gemini
//! `generateContent` request written out of them: borrowed from the client's
//! body where they pass along unchanged (texts stay raw JSON strings).

use super::super::super::chat::request::Named;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;

// ---- the OpenAI request's parts only Gemini reads ----

/// One part of a message's `content` array.
#[derive(Deserialize)]
pub(super) struct Part<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Cow<'a, str>,
    #[serde(borrow, default)]
    pub text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub image_url: Option<ImageUrl<'a>>,
    #[serde(borrow, default)]
    pub input_audio: Option<InputAudio<'a>>,
    #[serde(borrow, default)]
    pub file: Option<File<'a>>,
}

#[derive(Deserialize)]
pub(super) struct ImageUrl<'a> {
    #[serde(borrow)]
    pub url: Cow<'a, str>,
    #[serde(borrow, default)]
    pub detail: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub(super) struct InputAudio<'a> {
    #[serde(borrow)]
    pub data: Cow<'a, str>,
    #[serde(borrow)]
    pub format: Cow<'a, str>,
}

#[derive(Deserialize)]
pub(super) struct File<'a> {
    #[serde(borrow, default)]
    pub file_data: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub file_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub filename: Option<&'a RawValue>,
}

/// `tool_choice` as an object: a function, or OpenAI's `allowed_tools`.
#[derive(Deserialize)]
pub(super) struct ObjectChoice<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Cow<'a, str>,
    #[serde(borrow, default)]
    pub function: Option<Named<'a>>,
    #[serde(borrow, default)]
    pub allowed_tools: Option<AllowedTools<'a>>,
}

#[derive(Deserialize)]
pub(super) struct AllowedTools<'a> {
    #[serde(borrow)]
    pub mode: Cow<'a, str>,
    #[serde(borrow)]
    pub tools: Vec<NamedTool<'a>>,
}

#[derive(Deserialize)]
pub(super) struct NamedTool<'a> {
    #[serde(borrow)]
    pub function: Named<'a>,
}

// ---- the Gemini request, as written ----

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Out<'a> {
    pub contents: Vec<Content<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_instruction: Option<System<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<[Tools<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig<'a>>,
    #[serde(skip_serializing_if = "GenerationConfig::is_empty")]
    pub generation_config: GenerationConfig<'a>,
}

#[derive(Serialize)]
pub(super) struct System<'a> {
    pub parts: Vec<PartOut<'a>>,
}

#[derive(Serialize)]
pub(super) struct Content<'a> {
    pub role: &'static str,
    pub parts: Vec<PartOut<'a>>,
}

/// A Gemini `Part`: each variant's struct names its one field.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum PartOut<'a> {
    Text(TextPart<'a>),
    Inline(InlinePart<'a>),
    File(FilePart<'a>),
    Call(CallPart<'a>),
    Response(ResponsePart<'a>),
}

#[derive(Serialize)]
pub(super) struct TextPart<'a> {
    /// (a raw JSON string, as the client wrote it)
    pub text: &'a RawValue,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct InlinePart<'a> {
    pub inline_data: Blob<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Blob<'a> {
    pub mime_type: Cow<'a, str>,
    pub data: Cow<'a, str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FilePart<'a> {
    pub file_data: FileRef<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FileRef<'a> {
    pub mime_type: &'static str,
    pub file_uri: Cow<'a, str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CallPart<'a> {
    pub function_call: FunctionCall<'a>,
    /// the client has no signature of the model's thoughts to give back:
    /// Gemini's documented value for a call made without one
    pub thought_signature: &'static str,
}

#[derive(Serialize)]
pub(super) struct FunctionCall<'a> {
    pub name: Cow<'a, str>,
    pub args: Box<RawValue>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ResponsePart<'a> {
    pub function_response: FunctionResponse<'a>,
}

#[derive(Serialize)]
pub(super) struct FunctionResponse<'a> {
    pub name: Cow<'a, str>,
    pub response: Response<'a>,
}

/// A tool's result: the JSON object it is, or its text as `output`.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum Response<'a> {
    Object(Box<RawValue>),
    Output { output: Cow<'a, str> },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Tools<'a> {
    pub function_declarations: Vec<Declaration<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Declaration<'a> {
    pub name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Cow<'a, str>>,
    /// the client's JSON Schema as it came
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters_json_schema: Option<&'a RawValue>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ToolConfig<'a> {
    pub function_calling_config: CallingConfig<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CallingConfig<'a> {
    pub mode: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_function_names: Vec<Cow<'a, str>>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct GenerationConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<Cow<'a, str>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_json_schema: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_config: Option<ThinkingConfig>,
}

impl GenerationConfig<'_> {
    pub fn is_empty(&self) -> bool {
        self.temperature.is_none()
            && self.top_p.is_none()
            && self.max_output_tokens.is_none()
            && self.stop_sequences.is_none()
            && self.candidate_count.is_none()
            && self.presence_penalty.is_none()
            && self.frequency_penalty.is_none()
            && self.seed.is_none()
            && self.response_mime_type.is_none()
            && self.response_json_schema.is_none()
            && self.thinking_config.is_none()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ThinkingConfig {
    pub thinking_budget: u64,
}
