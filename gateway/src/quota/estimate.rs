//! What a request may cost, reserved at admission: the prompt estimate plus
//! the completion tokens it may ask for, per quota strategy.

use super::spec::Quota;
use shared::config::QuotaStrategy;

/// What a request is expected to cost, reserved at admission.
#[derive(Debug, Clone, Copy, Default)]
pub struct Estimate {
    pub prompt: u64,
    pub completion: u64,
    /// the worst case in money: the prompt estimate at the input price and the
    /// completion tokens at the output price of the dearest model the request
    /// may be sent to (nano-units)
    pub cost: shared::money::Nanos,
}

impl Estimate {
    /// Prompt tokens from the body's size (the same estimate usage falls back
    /// to), completion tokens from `max_tokens` (or `max_completion_tokens`,
    /// `max_output_tokens`) times `n`, else `default_max_tokens`.
    pub fn of(
        body: &crate::request_body::ClientBody<'_>,
        endpoint: crate::endpoint::Endpoint,
        default_max_tokens: u64,
    ) -> Estimate {
        if !endpoint.uses_tokens() {
            return Estimate::default();
        }
        let prompt = shared::usage::estimate_tokens(body.prompt_bytes());
        if endpoint == crate::endpoint::Endpoint::Embeddings {
            return Estimate {
                prompt,
                ..Estimate::default()
            };
        }
        let field = |k: &str| body.get(k).and_then(|v| v.get().trim().parse::<u64>().ok());
        let max = field("max_tokens")
            .or_else(|| field("max_completion_tokens"))
            .or_else(|| field("max_output_tokens"))
            .unwrap_or(default_max_tokens);
        let n = field("n").unwrap_or(1).clamp(1, 128);
        Estimate {
            prompt,
            completion: max.saturating_mul(n),
            cost: 0,
        }
    }

    pub(super) fn amount(&self, q: &Quota) -> u64 {
        match q.strategy {
            QuotaStrategy::TotalTokens => self.prompt.saturating_add(self.completion),
            QuotaStrategy::PromptTokens => self.prompt,
            QuotaStrategy::CompletionTokens => self.completion,
            QuotaStrategy::Requests => 1,
            QuotaStrategy::Cost => self.cost,
        }
    }
}
