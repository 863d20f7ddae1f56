//! `pricing`, `ledger` and `budget_alerts`: what tokens cost, how long the usage
//! ledger keeps its days, and where budget alerts are posted.

use super::d_true;
use crate::env::EnvString;
use crate::money::Decimal;
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PricingConfig {
    /// ISO 4217 code of the one currency every price, cost and budget is in
    #[serde(default = "d_currency")]
    pub currency: String,
    /// use the built-in table of widely used models (USD) under `models`
    #[serde(default = "d_true")]
    pub defaults: bool,
    /// prices per million tokens; the most specific entry matching a request's
    /// upstream model (and provider) wins over the built-in table
    #[serde(default)]
    pub models: Vec<PriceConfig>,
}

impl Default for PricingConfig {
    fn default() -> Self {
        PricingConfig {
            currency: d_currency(),
            defaults: true,
            models: Vec::new(),
        }
    }
}

fn d_currency() -> String {
    "USD".into()
}

/// The price of one model (at one provider), per million tokens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceConfig {
    /// the model the gateway asks the upstream for: exact, or a glob (`gpt-4o*`)
    pub model: String,
    /// a provider id (exact or glob) where its price differs; absent: any
    #[serde(default)]
    pub provider: Option<String>,
    /// prompt tokens not read from or written to a prompt cache
    pub input: Decimal,
    /// completion tokens (reasoning included unless `reasoning` is set)
    pub output: Decimal,
    /// prompt tokens read from the prompt cache; absent: `input`
    #[serde(default)]
    pub cached_input: Option<Decimal>,
    /// prompt tokens written to the prompt cache; absent: `input`
    #[serde(default)]
    pub cache_write: Option<Decimal>,
    /// reasoning tokens, where billed apart from output; absent: `output`
    #[serde(default)]
    pub reasoning: Option<Decimal>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    /// keep the usage ledger (false: no per-day aggregates are written;
    /// `gateway bill` still reads the access log)
    #[serde(default = "d_true")]
    pub enabled: bool,
    /// days a day of the usage ledger is kept (expired by TTL)
    #[serde(default = "d_retention")]
    pub retention_days: u32,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            enabled: true,
            retention_days: d_retention(),
        }
    }
}

fn d_retention() -> u32 {
    400
}

/// Where the alerts of budgets (quotas with `alerts:`) are posted, besides the
/// log line and the metric every alert gets.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetAlertsConfig {
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// http:// or https:// URL the alert is POSTed to as JSON
    pub url: EnvString,
    /// extra request headers (e.g. an Authorization for the receiver)
    #[serde(default)]
    pub headers: IndexMap<String, EnvString>,
    /// per attempt
    #[serde(default = "d_webhook_timeout")]
    pub timeout_ms: u64,
    /// attempts after the first, with a doubling pause from 500 ms
    #[serde(default = "d_webhook_retries")]
    pub max_retries: u32,
}

fn d_webhook_timeout() -> u64 {
    2000
}
fn d_webhook_retries() -> u32 {
    3
}
