//! One model's prices in nano-units per million tokens, and what a request's
//! usage costs at them.

use shared::config::PriceConfig;
use shared::money::{cost_of, Nanos};
use shared::usage::Usage;

/// The prices of one model (at one provider) per million tokens, in nano-units
/// of the currency, each kind resolved (a cached read, a cache write or a
/// reasoning token without a price of its own costs `input` or `output`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Price {
    pub input: Nanos,
    pub output: Nanos,
    pub cached_input: Nanos,
    pub cache_write: Nanos,
    pub reasoning: Nanos,
}

impl Price {
    /// The entry's prices; None when one does not fit (the validation refuses
    /// those: see `config::pricing`).
    pub fn from_config(c: &PriceConfig) -> Option<Price> {
        let input = c.input.to_nanos()?;
        let output = c.output.to_nanos()?;
        let or = |d: Option<shared::money::Decimal>, default: Nanos| match d {
            Some(d) => d.to_nanos(),
            None => Some(default),
        };
        Some(Price {
            input,
            output,
            cached_input: or(c.cached_input, input)?,
            cache_write: or(c.cache_write, input)?,
            reasoning: or(c.reasoning, output)?,
        })
    }

    /// What `u` costs: the prompt tokens neither read from nor written to a
    /// cache at `input`, cache reads at `cached_input`, cache writes at
    /// `cache_write`, the completion tokens that are not reasoning at `output`
    /// and reasoning at `reasoning`; summed exactly and rounded once (half up)
    /// to a nano-unit. (`prompt_tokens` includes the cached and cache-write
    /// tokens, `completion_tokens` the reasoning ones: the subtractions
    /// saturate, so figures that do not add up never cost less than their parts.)
    pub fn cost(&self, u: &Usage) -> Nanos {
        let plain_prompt = u
            .prompt_tokens
            .saturating_sub(u.cached_tokens)
            .saturating_sub(u.cache_creation_tokens);
        let plain_completion = u.completion_tokens.saturating_sub(u.reasoning_tokens);
        cost_of(&[
            (plain_prompt, self.input),
            (u.cached_tokens, self.cached_input),
            (u.cache_creation_tokens, self.cache_write),
            (plain_completion, self.output),
            (u.reasoning_tokens, self.reasoning),
        ])
    }

    /// The most `prompt` and `completion` tokens can cost: every prompt token
    /// at the dearer of `input` and `cache_write`, every completion token at
    /// the dearer of `output` and `reasoning`.
    pub fn worst_case(&self, prompt: u64, completion: u64) -> Nanos {
        cost_of(&[
            (prompt, self.input.max(self.cache_write)),
            (completion, self.output.max(self.reasoning)),
        ])
    }
}
