//! `--prices FILE`: the prices a bill is computed at. The file is a gateway
//! config (its `pricing:` section is used; a config without one means the
//! built-in prices) or just a pricing section (`currency`, `defaults`,
//! `models`). The lines are priced with the gateway's own pricing code.

use crate::config::{parse_as, ConfigError};
use serde::Deserialize;
use shared::config::PricingConfig;
use shared::money::Nanos;
use shared::usage::Usage;
use std::path::Path;

/// What the bill needs of a price list.
pub trait PriceList {
    /// ISO 4217 code of the costs
    fn currency(&self) -> &str;
    /// What `usage` costs at `model` (the model the gateway asked the upstream
    /// for) and `provider`; None: the model has no price.
    fn cost(&self, model: &str, provider: &str, usage: &Usage) -> Option<Nanos>;
}

/// Which reading of the file applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// a gateway config's `pricing:` section
    ConfigSection,
    /// a gateway config without `pricing:`: the gateway's defaults
    ConfigWithout,
    /// the file is a pricing section
    Section,
}

/// A gateway config read for its `pricing:` alone (other keys are not read).
#[derive(Deserialize)]
struct WithPricing {
    pricing: PricingConfig,
}

/// Reads the pricing config out of `text` (read from `name`).
pub fn parse(name: &str, text: &str) -> Result<(PricingConfig, Found), ConfigError> {
    let top: Vec<String> = match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) {
        Ok(serde_yaml_ng::Value::Mapping(m)) => m
            .keys()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect(),
        // not a mapping, or not YAML: the section parser says what is wrong
        _ => Vec::new(),
    };
    if top.iter().any(|k| k == "pricing") {
        return Ok((
            parse_as::<WithPricing>(name, text)?.pricing,
            Found::ConfigSection,
        ));
    }
    let schema = shared::schema::config_schema();
    let config_keys = schema["properties"].as_object();
    if top
        .iter()
        .any(|k| config_keys.is_some_and(|c| c.contains_key(k)))
    {
        return Ok((PricingConfig::default(), Found::ConfigWithout));
    }
    Ok((parse_as::<PricingConfig>(name, text)?, Found::Section))
}

/// Reads `path` and builds the prices from it.
pub fn load(path: &Path) -> Result<(Box<dyn PriceList>, Found), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::one(format!("{}: cannot read the prices: {e}", path.display()))
    })?;
    let (cfg, found) = parse(&path.display().to_string(), &text)?;
    Ok((build(&path.display().to_string(), cfg)?, found))
}

/// The gateway's pricing made of `cfg`, checked as the gateway checks its
/// config's `pricing:` section.
fn build(name: &str, cfg: PricingConfig) -> Result<Box<dyn PriceList>, ConfigError> {
    let raw = shared::config::RawConfig {
        pricing: cfg,
        ..Default::default()
    };
    let mut p = crate::config::problems::Problems::new(name);
    crate::config::pricing::pricing(&raw, &mut p);
    if !p.errors.is_empty() {
        return Err(ConfigError {
            problems: p.errors.iter().map(|e| format!("{name}: {e}")).collect(),
        });
    }
    let pricing = crate::cost::Pricing::compile(&raw.pricing)
        .map_err(|e| ConfigError::one(format!("{name}: pricing: {e}")))?;
    Ok(Box::new(pricing))
}

impl PriceList for crate::cost::Pricing {
    fn currency(&self) -> &str {
        crate::cost::Pricing::currency(self)
    }

    fn cost(&self, model: &str, provider: &str, usage: &Usage) -> Option<Nanos> {
        self.price(model, provider).map(|p| p.cost(usage))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gateway_config_gives_its_pricing_section() {
        let text = "server:\n  listen: 127.0.0.1:0\nproviders: []\npricing:\n  currency: EUR\n  defaults: false\n  models:\n    - {model: m1, input: 1, output: 2}\n";
        let (cfg, found) = parse("gw.yaml", text).unwrap();
        assert_eq!(found, Found::ConfigSection);
        assert_eq!(
            (cfg.currency.as_str(), cfg.defaults, cfg.models.len()),
            ("EUR", false, 1)
        );
    }

    #[test]
    fn a_config_without_pricing_means_the_defaults() {
        let (cfg, found) = parse("gw.yaml", "routes: []\n").unwrap();
        assert_eq!(found, Found::ConfigWithout);
        assert_eq!((cfg.currency.as_str(), cfg.defaults), ("USD", true));
    }

    #[test]
    fn a_pricing_section_alone_is_read_and_checked() {
        let (cfg, found) = parse(
            "p.yaml",
            "currency: USD\nmodels:\n  - {model: m1, input: 0.15, output: 0.6}\n",
        )
        .unwrap();
        assert_eq!(found, Found::Section);
        assert_eq!(cfg.models[0].input.to_nanos(), Some(150_000_000));
        // a typo is an error naming the key and line, not the defaults
        let e = parse("p.yaml", "currency: USD\nmodel:\n  - {model: m1}\n").unwrap_err();
        assert!(e.problems[0].starts_with("p.yaml: model:"), "{e}");
        assert!(e.problems[0].contains("line 2"), "{e}");
        let e = parse(
            "gw.yaml",
            "pricing:\n  models:\n    - {model: m1, input: -1, output: 1}\n",
        )
        .unwrap_err();
        assert!(e.problems[0].contains("pricing.models[0].input"), "{e}");
    }
}
