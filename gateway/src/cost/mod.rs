//! What requests cost: the price table of one config version (`pricing.models`
//! over the built-in table of widely used models, `default_prices.yaml`), the
//! cost of a request from its normalised usage ([`Charge`]), and the worst case
//! a budget reserves before the request is sent.
//!
//! # Which price applies
//!
//! A request is priced by the model the gateway asked the upstream for and the
//! provider (id) that answered. An entry applies when its `model` (exact, or a
//! `*` glob) matches the model and its `provider` (exact, glob, or absent: any
//! provider) matches the provider. Of the entries that apply, the first in this
//! order wins:
//!
//! 1. entries of the config (`pricing.models`) before the built-in table;
//! 2. an exact model before a model glob;
//! 3. an entry naming a provider before one for every provider (an exact
//!    provider id before a provider glob, a glob with more literal characters
//!    before one with fewer);
//! 4. a model glob with more literal characters (its text without the `*`)
//!    before one with fewer: `gpt-4o-mini*` before `gpt-4o*`;
//! 5. the earlier entry of the list.
//!
//! A model no entry applies to is unpriced: it costs 0 and is flagged
//! (`ai_log.cost_unpriced`, `gateway_cost_unpriced_requests_total`), never free
//! silently.

mod price;
#[cfg(test)]
mod tests;

pub use price::Price;

use crate::glob::Glob;
use shared::config::{PriceConfig, PricingConfig};
use shared::money::Nanos;
use shared::usage::Usage;
use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

/// The built-in table's text (USD, dated and sourced in its header).
pub const DEFAULT_PRICES: &str = include_str!("default_prices.yaml");

/// The name problems of the built-in table are reported under.
const DEFAULTS_NAME: &str = "gateway/src/cost/default_prices.yaml";

/// The prices of one config version. Requests hold the version they started
/// on, so a reload prices new requests and leaves those in flight alone.
#[derive(Debug)]
pub struct Pricing {
    currency: Arc<str>,
    /// searched in order: the config's entries, then the built-in table
    tables: Vec<Arc<Table>>,
}

/// What one request an upstream answered cost, computed once at settlement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// nano-units of the pricing currency (0 when unpriced)
    pub cost: Nanos,
    /// no price applies to (model, provider)
    pub unpriced: bool,
    /// priced from the gateway's estimate of the usage (`usage_estimated`)
    pub estimated: bool,
    /// the model the gateway asked the upstream for (the last attempt's)
    pub model: String,
    /// the provider id that answered
    pub provider: Arc<str>,
}

/// Price entries, indexed for lookup in the order of the module's rule.
#[derive(Debug, Default)]
struct Table {
    /// exact models, each with its entries best first (rule 3, then 5)
    exact: HashMap<Box<str>, Vec<Entry>, xxhash_rust::xxh3::Xxh3DefaultBuilder>,
    /// model globs, best first (rules 3, 4 and 5)
    globs: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    model: Glob,
    provider: Option<Glob>,
    price: Price,
}

/// The characters of a glob that are not `*`.
fn literal(g: &Glob) -> usize {
    g.as_str().bytes().filter(|&b| b != b'*').count()
}

/// Rule 3 as a sort key: an exact provider, then provider globs by their
/// literal characters, then none.
fn provider_rank(p: Option<&Glob>) -> (u8, Reverse<usize>) {
    match p {
        Some(g) if g.is_exact() => (0, Reverse(0)),
        Some(g) => (1, Reverse(literal(g))),
        None => (2, Reverse(0)),
    }
}

impl Entry {
    fn provider_matches(&self, provider: &str) -> bool {
        self.provider.as_ref().is_none_or(|g| g.matches(provider))
    }
}

impl Table {
    /// The entries of `list` (validated: one whose prices do not fit is left out).
    fn compile(list: &[PriceConfig]) -> Table {
        let mut exact: Vec<(usize, Entry)> = Vec::new();
        let mut globs: Vec<(usize, Entry)> = Vec::new();
        for (i, c) in list.iter().enumerate() {
            let Some(price) = Price::from_config(c) else {
                continue;
            };
            let e = Entry {
                model: Glob::new(&c.model),
                provider: c.provider.as_deref().map(Glob::new),
                price,
            };
            match e.model.is_exact() {
                true => exact.push((i, e)),
                false => globs.push((i, e)),
            }
        }
        globs.sort_by_key(|(i, e)| {
            (
                provider_rank(e.provider.as_ref()),
                Reverse(literal(&e.model)),
                *i,
            )
        });
        exact.sort_by_key(|(i, e)| (provider_rank(e.provider.as_ref()), *i));
        let mut t = Table {
            globs: globs.into_iter().map(|(_, e)| e).collect(),
            ..Table::default()
        };
        for (_, e) in exact {
            t.exact.entry(e.model.as_str().into()).or_default().push(e);
        }
        t
    }

    fn find(&self, model: &str, provider: &str) -> Option<&Price> {
        let exact = self.exact.get(model).into_iter().flatten();
        exact
            .chain(self.globs.iter().filter(|e| e.model.matches(model)))
            .find(|e| e.provider_matches(provider))
            .map(|e| &e.price)
    }
}

/// The built-in table, read once per process.
static DEFAULTS: LazyLock<Result<Arc<Table>, String>> = LazyLock::new(|| {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        models: Vec<PriceConfig>,
    }
    let file: File = serde_yaml_ng::from_str(DEFAULT_PRICES)
        .map_err(|e| format!("{DEFAULTS_NAME} cannot be read: {e}"))?;
    let mut p = crate::config::validate::Problems::new(DEFAULTS_NAME);
    crate::config::pricing::models(&file.models, "models", &mut p);
    match p.errors.is_empty() {
        true => Ok(Arc::new(Table::compile(&file.models))),
        false => Err(p.messages().join("; ")),
    }
});

impl Default for Pricing {
    /// USD, no price at all.
    fn default() -> Pricing {
        Pricing {
            currency: "USD".into(),
            tables: Vec::new(),
        }
    }
}

impl Pricing {
    /// The prices of a validated `pricing` section; Err only when the built-in
    /// table it asks for cannot be read (a defect of the build, said as such).
    pub fn compile(cfg: &PricingConfig) -> Result<Pricing, String> {
        let mut tables = vec![Arc::new(Table::compile(&cfg.models))];
        if cfg.defaults {
            let defaults = DEFAULTS
                .as_ref()
                .map_err(|e| format!("the built-in price table is broken (a defect): {e}"))?;
            tables.push(defaults.clone());
        }
        Ok(Pricing {
            currency: cfg.currency.as_str().into(),
            tables,
        })
    }

    /// `pricing.currency`: what every cost is in.
    pub fn currency(&self) -> &str {
        &self.currency
    }

    /// The price of `model` at `provider` (the module's rule), if any.
    pub fn price(&self, model: &str, provider: &str) -> Option<&Price> {
        self.tables.iter().find_map(|t| t.find(model, provider))
    }

    /// What a request answered by `provider` for `model` cost with `usage`.
    pub fn charge(&self, model: String, provider: Arc<str>, usage: &Usage) -> Charge {
        let price = self.price(&model, &provider);
        Charge {
            cost: price.map_or(0, |p| p.cost(usage)),
            unpriced: price.is_none(),
            estimated: usage.estimated,
            model,
            provider,
        }
    }

    /// The most a request of `prompt` and `completion` tokens can cost on any
    /// of `candidates` ((provider id, upstream model) pairs): what a budget
    /// reserves. An unpriced candidate counts 0.
    pub fn worst_case<P, M>(
        &self,
        prompt: u64,
        completion: u64,
        candidates: impl IntoIterator<Item = (P, M)>,
    ) -> Nanos
    where
        P: AsRef<str>,
        M: AsRef<str>,
    {
        candidates
            .into_iter()
            .filter_map(|(p, m)| self.price(m.as_ref(), p.as_ref()))
            .map(|price| price.worst_case(prompt, completion))
            .max()
            .unwrap_or(0)
    }
}
