//! Access-log lines into usage-ledger rows, as the gateway's ledger counts
//! them: only requests an upstream answered (their line has `ai_log.cost`),
//! under tenant, consumer (empty when absent), `ai_log.cost_model`,
//! `ai_log.provider` and the UTC day the request started; the cost priced
//! again from the usage at the bill's prices.

use super::prices::PriceList;
use crate::report::parse_day;
use serde::Deserialize;
use shared::ledger::{Dims, Totals};
use shared::usage::Usage;
use std::collections::HashMap;

/// What the lines read were.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// lines read, blank ones left out
    pub lines: u64,
    /// requests an upstream answered: in the ledger, so in the bill
    pub billed: u64,
    /// the gateway's lines without a cost (no upstream answered): not charged
    pub unbilled: u64,
    /// not JSON, or JSON without `ai_log`
    pub foreign: u64,
    /// gateway lines whose fields cannot be read (a figure of the wrong type,
    /// a `start_time` that does not start with a date)
    pub unreadable: u64,
    /// longer than `input::MAX_LINE`
    pub too_long: u64,
}

/// The parts of an access-log line (`shared::ai_log::AccessLogLine`) a bill reads.
#[derive(Deserialize)]
struct LogLine {
    start_time: String,
    ai_log: LogAi,
}

#[derive(Deserialize)]
struct LogAi {
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    consumer: Option<String>,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    cost: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    cost_model: Option<String>,
    input_token: u64,
    output_token: u64,
    #[serde(default)]
    total_token: u64,
    cached_tokens: u64,
    #[serde(default)]
    cache_creation_tokens: u64,
    reasoning_tokens: u64,
    usage_estimated: bool,
}

/// Only whether there is an `ai_log` object: what a gateway line has.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "ai_log")]
    _ai_log: serde_json::Map<String, serde_json::Value>,
}

/// The ledger rows of the lines seen so far.
pub struct Tally<'p> {
    prices: &'p dyn PriceList,
    rows: HashMap<Dims, Totals>,
    pub counts: Counts,
}

impl<'p> Tally<'p> {
    pub fn new(prices: &'p dyn PriceList) -> Tally<'p> {
        Tally {
            prices,
            rows: HashMap::new(),
            counts: Counts::default(),
        }
    }

    pub fn too_long(&mut self) {
        self.counts.lines += 1;
        self.counts.too_long += 1;
    }

    /// Takes one line (without its line break).
    pub fn line(&mut self, text: &[u8]) {
        if text.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let c = &mut self.counts;
        c.lines += 1;
        let line: LogLine = match serde_json::from_slice(text) {
            Ok(l) => l,
            Err(_) if serde_json::from_slice::<Probe>(text).is_ok() => {
                c.unreadable += 1;
                return;
            }
            Err(_) => {
                c.foreign += 1;
                return;
            }
        };
        let a = line.ai_log;
        if a.cost.is_none() {
            c.unbilled += 1;
            return;
        }
        let Some(day) = line.start_time.get(..10).filter(|d| parse_day(d).is_ok()) else {
            c.unreadable += 1;
            return;
        };
        c.billed += 1;
        let usage = Usage {
            prompt_tokens: a.input_token,
            completion_tokens: a.output_token,
            total_tokens: a.total_token,
            cached_tokens: a.cached_tokens,
            cache_creation_tokens: a.cache_creation_tokens,
            reasoning_tokens: a.reasoning_tokens,
            estimated: a.usage_estimated,
        };
        let dims = Dims {
            tenant: a.tenant.unwrap_or_default(),
            consumer: a.consumer.unwrap_or_default(),
            model: a.cost_model.unwrap_or_default(),
            provider: a.provider.unwrap_or_default(),
            day: day.to_string(),
        };
        let cost = self.prices.cost(&dims.model, &dims.provider, &usage);
        self.rows.entry(dims).or_default().add(&Totals {
            requests: 1,
            input_tokens: usage.prompt_tokens,
            output_tokens: usage.completion_tokens,
            cached_tokens: usage.cached_tokens,
            cache_write_tokens: usage.cache_creation_tokens,
            reasoning_tokens: usage.reasoning_tokens,
            cost: cost.unwrap_or(0),
            unpriced_requests: u64::from(cost.is_none()),
            estimated_requests: u64::from(usage.estimated),
        });
    }

    /// The rows: one per tenant x consumer x model x provider x day seen.
    pub fn rows(self) -> Vec<(Dims, Totals)> {
        self.rows.into_iter().collect()
    }
}
