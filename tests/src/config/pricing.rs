//! `pricing:` of a test config: the currency, the built-in table on or off,
//! and price entries. Prices are written as decimal text (`"2.50"`), exactly as
//! the gateway reads them.

use serde::Serialize;

/// `pricing:`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Pricing {
    #[serde(skip_serializing_if = "Option::is_none")]
    currency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    defaults: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    models: Vec<Price>,
}

/// One of `pricing.models`: per million tokens.
#[derive(Debug, Clone, Serialize)]
pub struct Price {
    model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<String>,
    input: String,
    output: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    cached_input: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_write: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<String>,
}

impl Pricing {
    /// Nothing set: USD, the built-in table on, no entries.
    pub fn new() -> Self {
        Pricing::default()
    }

    /// Only the prices given here (`defaults: false`).
    pub fn only() -> Self {
        Pricing::new().defaults(false)
    }

    pub fn currency(mut self, code: &str) -> Self {
        self.currency = Some(code.into());
        self
    }

    pub fn defaults(mut self, on: bool) -> Self {
        self.defaults = Some(on);
        self
    }

    pub fn price(mut self, p: Price) -> Self {
        self.models.push(p);
        self
    }
}

impl Price {
    /// `model` (exact or glob) at `input` and `output` per million tokens.
    pub fn new(model: &str, input: &str, output: &str) -> Self {
        Price {
            model: model.into(),
            provider: None,
            input: input.into(),
            output: output.into(),
            cached_input: None,
            cache_write: None,
            reasoning: None,
        }
    }

    /// At this provider (id or glob) only.
    pub fn provider(mut self, id: &str) -> Self {
        self.provider = Some(id.into());
        self
    }

    pub fn cached_input(mut self, v: &str) -> Self {
        self.cached_input = Some(v.into());
        self
    }

    pub fn cache_write(mut self, v: &str) -> Self {
        self.cache_write = Some(v.into());
        self
    }

    pub fn reasoning(mut self, v: &str) -> Self {
        self.reasoning = Some(v.into());
        self
    }
}
