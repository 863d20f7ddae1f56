//! The Converse request as written: borrowed from the client's body where
//! its parts pass along unchanged.

use super::super::chat::request::Schema;
use super::super::chat::turns::Turn;
use serde::Serialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Out<'a> {
    pub messages: Vec<Turn<Block<'a>>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<SystemText<'a>>,
    #[serde(skip_serializing_if = "InferenceConfig::is_empty")]
    pub inference_config: InferenceConfig<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig<'a>>,
}

/// A `system` block: `{"text": ..}`.
#[derive(Serialize)]
pub(super) struct SystemText<'a> {
    pub text: &'a RawValue,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct InferenceConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<Cow<'a, str>>>,
}

impl InferenceConfig<'_> {
    fn is_empty(&self) -> bool {
        self.max_tokens.is_none()
            && self.temperature.is_none()
            && self.top_p.is_none()
            && self.stop_sequences.is_none()
    }
}

/// A content block: `{"text": ..}`, `{"image": ..}`, `{"toolUse": ..}`,
/// `{"toolResult": ..}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) enum Block<'a> {
    Text(&'a RawValue),
    Image(Image<'a>),
    ToolUse(ToolUse<'a>),
    ToolResult(ToolResult<'a>),
}

#[derive(Serialize)]
pub(super) struct Image<'a> {
    /// png, jpeg, gif or webp
    pub format: &'static str,
    pub source: ImageSource<'a>,
}

#[derive(Serialize)]
pub(super) struct ImageSource<'a> {
    /// base64
    pub bytes: Cow<'a, str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ToolUse<'a> {
    pub tool_use_id: Cow<'a, str>,
    pub name: Cow<'a, str>,
    pub input: Box<RawValue>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ToolResult<'a> {
    pub tool_use_id: Cow<'a, str>,
    pub content: Vec<Block<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ToolConfig<'a> {
    pub tools: Vec<ToolOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ToolOut<'a> {
    pub tool_spec: ToolSpec<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ToolSpec<'a> {
    pub name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Cow<'a, str>>,
    pub input_schema: InputSchema<'a>,
}

/// `{"json": <JSON schema>}`
#[derive(Serialize)]
pub(super) struct InputSchema<'a> {
    pub json: Schema<'a>,
}

/// `{"auto":{}}`, `{"any":{}}` or `{"tool":{"name":..}}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) enum ToolChoice<'a> {
    Auto(Empty),
    Any(Empty),
    Tool(Named<'a>),
}

#[derive(Serialize)]
pub(super) struct Empty {}

#[derive(Serialize)]
pub(super) struct Named<'a> {
    pub name: Cow<'a, str>,
}
