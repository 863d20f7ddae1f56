//! `pricing`, validated: the currency, the built-in table only with USD, and each
//! price entry (model, provider, prices per million tokens). The prices
//! themselves are compiled by `cost::Pricing`.

use super::problems::Problems;
use shared::config::{PriceConfig, PricingConfig, RawConfig};
use shared::money::Decimal;
use std::collections::HashSet;

/// The highest price per million tokens accepted (in the currency): far above
/// any list price, low enough that no request's cost can overflow.
pub const MAX_PRICE: Decimal = Decimal::from_whole(1_000_000);

/// Checks `pricing` of `raw`: errors for what cannot be priced, a warning for an
/// entry whose `provider` names no configured provider.
pub fn pricing(raw: &RawConfig, p: &mut Problems) {
    let cfg: &PricingConfig = &raw.pricing;
    let c = cfg.currency.as_str();
    let currency_ok = c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase());
    if !currency_ok {
        p.error(
            "pricing.currency",
            "an ISO 4217 currency code: three capital letters (e.g. USD, EUR)",
        );
    } else if cfg.defaults && c != "USD" {
        p.error(
            "pricing.currency",
            "the built-in prices (pricing.defaults, on by default) are in USD: with another currency set `pricing.defaults: false` and price every model in that currency under `pricing.models`",
        );
    }
    models(&cfg.models, "pricing.models", p);
    let ids: Vec<&str> = raw.providers.iter().map(|pc| pc.id.as_str()).collect();
    for (i, m) in cfg.models.iter().enumerate() {
        let Some(provider) = m.provider.as_deref().filter(|s| !s.is_empty()) else {
            continue;
        };
        let glob = crate::glob::Glob::new(provider);
        if !ids.iter().any(|id| glob.matches(id)) {
            p.warn(
                format!("pricing.models[{i}].provider"),
                "matches no configured provider: the entry prices nothing",
            );
        }
    }
}

/// Checks a list of price entries (`key` is where it is: `pricing.models`, or the
/// built-in table's name).
pub fn models(list: &[PriceConfig], key: &str, p: &mut Problems) {
    let mut seen = HashSet::new();
    for (i, m) in list.iter().enumerate() {
        let k = format!("{key}[{i}]");
        if m.model.is_empty() {
            p.error(
                format!("{k}.model"),
                "must not be empty (a model name, or a glob such as gpt-4o*)",
            );
        }
        if m.provider.as_deref() == Some("") {
            p.error(
                format!("{k}.provider"),
                "must not be empty: leave it out to price the model at every provider",
            );
        }
        if !seen.insert((m.model.as_str(), m.provider.as_deref())) {
            p.error(
                format!("{k}.model"),
                "another entry has the same model and provider",
            );
        }
        let prices = [
            ("input", Some(m.input)),
            ("output", Some(m.output)),
            ("cached_input", m.cached_input),
            ("cache_write", m.cache_write),
            ("reasoning", m.reasoning),
        ];
        for (field, price) in prices {
            if price.is_some_and(|d| d > MAX_PRICE) {
                p.error(
                    format!("{k}.{field}"),
                    "a price per million tokens is at most 1000000",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse_text;
    use crate::config::validate::test_problems;

    /// The problems (errors, then warnings) of `pricing:` YAML (with two providers).
    fn problems(pricing_yaml: &str) -> (Vec<String>, Vec<String>) {
        let text = format!(
            "providers:\n  - {{ id: openai-main, type: mock }}\n  - {{ id: azure-east, type: mock }}\npricing:\n{pricing_yaml}"
        );
        let raw = parse_text("t.yaml", &text).unwrap();
        let mut p = test_problems();
        super::pricing(&raw, &mut p);
        (p.messages(), p.warnings)
    }

    #[test]
    fn a_good_table_has_no_problem() {
        let (errors, warnings) = problems(
            "  currency: USD\n  models:\n    - { model: gpt-4o, input: 2.50, output: 10, cached_input: 1.25 }\n    - { model: gpt-4o, provider: azure-*, input: 2.75, output: 11 }\n    - { model: \"claude-*\", input: 3, output: 15, cache_write: 3.75, reasoning: 15 }\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn every_problem_is_named_by_its_key_without_the_value() {
        let (errors, warnings) = problems(
            "  currency: usd-x\n  models:\n    - { model: \"\", input: 1, output: 1 }\n    - { model: secret-model, provider: \"\", input: 1000000.5, output: 1, reasoning: 2000000 }\n    - { model: gpt-4o, provider: nowhere-*, input: 1, output: 2 }\n    - { model: gpt-4o, provider: nowhere-*, input: 1, output: 2 }\n",
        );
        assert_eq!(
            errors,
            [
                "t: pricing.currency: an ISO 4217 currency code: three capital letters (e.g. USD, EUR)",
                "t: pricing.models[0].model: must not be empty (a model name, or a glob such as gpt-4o*)",
                "t: pricing.models[1].provider: must not be empty: leave it out to price the model at every provider",
                "t: pricing.models[1].input: a price per million tokens is at most 1000000",
                "t: pricing.models[1].reasoning: a price per million tokens is at most 1000000",
                "t: pricing.models[3].model: another entry has the same model and provider",
            ]
        );
        assert_eq!(
            warnings,
            [
                "t: pricing.models[2].provider: matches no configured provider: the entry prices nothing",
                "t: pricing.models[3].provider: matches no configured provider: the entry prices nothing",
            ]
        );
        let all = format!("{errors:?}{warnings:?}");
        for value in ["usd-x", "secret-model", "nowhere", "1000000.5"] {
            assert!(!all.contains(value), "{value} quoted: {all}");
        }
    }

    #[test]
    fn the_built_in_table_needs_usd() {
        let (errors, _) = problems("  currency: EUR\n");
        assert_eq!(
            errors,
            ["t: pricing.currency: the built-in prices (pricing.defaults, on by default) are in USD: with another currency set `pricing.defaults: false` and price every model in that currency under `pricing.models`"]
        );
        let (errors, _) = problems("  currency: EUR\n  defaults: false\n");
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn problems_are_placed_on_their_line() {
        let text =
            "pricing:\n  currency: EUR\n  models:\n    - { model: m, input: 2000000, output: 1 }\n";
        let e = crate::runtime::load_text("c.yaml", text, 1, &Default::default())
            .err()
            .unwrap();
        assert_eq!(
            e.problems,
            [
                "c.yaml: pricing.currency: the built-in prices (pricing.defaults, on by default) are in USD: with another currency set `pricing.defaults: false` and price every model in that currency under `pricing.models` (line 2 column 13)",
                "c.yaml: pricing.models[0].input: a price per million tokens is at most 1000000 (line 4 column 26)",
            ]
        );
    }

    #[test]
    fn a_provider_glob_matching_a_configured_provider_is_fine() {
        let (_, warnings) =
            problems("  models:\n    - { model: m, provider: \"azure-*\", input: 1, output: 1 }\n    - { model: m, provider: openai-main, input: 1, output: 1 }\n");
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}
