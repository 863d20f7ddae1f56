//! The lookup rule, the cost arithmetic, the worst case and the built-in table.

use super::*;
use shared::money::{format_nanos, Decimal, NANOS_PER_UNIT};

fn d(s: &str) -> Decimal {
    Decimal::parse(s).unwrap()
}

/// An entry priced `input` (output twice that).
fn entry(model: &str, provider: Option<&str>, input: &str) -> PriceConfig {
    PriceConfig {
        model: model.into(),
        provider: provider.map(str::to_string),
        input: d(input),
        output: d(input),
        cached_input: None,
        cache_write: None,
        reasoning: None,
    }
}

fn pricing(models: Vec<PriceConfig>, defaults: bool) -> Pricing {
    Pricing::compile(&PricingConfig {
        currency: "USD".into(),
        defaults,
        models,
    })
    .unwrap()
}

/// The input price (in whole units) that applies, or None.
fn input_of(p: &Pricing, model: &str, provider: &str) -> Option<u64> {
    p.price(model, provider).map(|p| p.input / NANOS_PER_UNIT)
}

#[test]
fn the_most_specific_entry_wins() {
    let p = pricing(
        vec![
            entry("gpt-*", None, "1"),
            entry("gpt-4o*", None, "2"),
            entry("gpt-4o", None, "3"),
            entry("gpt-4o", Some("azure-*"), "4"),
            entry("gpt-4o", Some("azure-east"), "5"),
            entry("gpt-4o-mini*", Some("az*"), "6"),
            entry("*", Some("local"), "7"),
            entry("gpt-4o", None, "8"),
        ],
        false,
    );
    // exact model, provider exact > provider glob > any
    assert_eq!(input_of(&p, "gpt-4o", "azure-east"), Some(5));
    assert_eq!(input_of(&p, "gpt-4o", "azure-west"), Some(4));
    assert_eq!(input_of(&p, "gpt-4o", "openai"), Some(3), "first of equals");
    // an exact model before any glob, even one naming the provider
    assert_eq!(input_of(&p, "gpt-4o", "local"), Some(3));
    // globs: with a provider first, then the longer literal
    assert_eq!(input_of(&p, "gpt-4o-mini", "azure-east"), Some(6));
    assert_eq!(input_of(&p, "gpt-4o-mini", "openai"), Some(2));
    assert_eq!(input_of(&p, "gpt-4o-2024-08-06", "openai"), Some(2));
    assert_eq!(input_of(&p, "gpt-3.5", "openai"), Some(1));
    assert_eq!(input_of(&p, "gpt-3.5", "local"), Some(7));
    assert_eq!(input_of(&p, "claude-3", "openai"), None);
}

#[test]
fn config_entries_come_before_the_built_in_table() {
    let p = pricing(vec![entry("gpt-4o*", None, "9")], true);
    // a config glob beats the table's exact gpt-4o and its gpt-4o-mini
    assert_eq!(input_of(&p, "gpt-4o", "openai"), Some(9));
    assert_eq!(input_of(&p, "gpt-4o-mini", "openai"), Some(9));
    // what the config does not price, the table does
    let sonnet = p.price("claude-sonnet-4-5", "anthropic").unwrap();
    assert_eq!(sonnet.input, 3 * NANOS_PER_UNIT);
    let without = pricing(vec![entry("gpt-4o*", None, "9")], false);
    assert!(without.price("claude-sonnet-4-5", "anthropic").is_none());
}

#[test]
fn the_built_in_table_loads_and_prices_widely_used_models() {
    let p = pricing(Vec::new(), true);
    let mini = p
        .price("gpt-4o-mini", "any")
        .expect("gpt-4o-mini is priced");
    assert_eq!(
        (mini.input, mini.cached_input, mini.output),
        (150_000_000, 75_000_000, 600_000_000)
    );
    // dated snapshots by glob; the mini's glob is more specific than gpt-4o's
    let dated = p.price("gpt-4o-mini-2024-07-18", "any").unwrap();
    assert_eq!(dated.input, 150_000_000);
    assert_eq!(
        p.price("gpt-4o-2024-08-06", "x").unwrap().input,
        2_500_000_000
    );
    assert_eq!(
        p.price("gpt-4o-2024-05-13", "x").unwrap().input,
        5 * NANOS_PER_UNIT
    );
    let sonnet = p.price("claude-sonnet-4-5-20250929", "claude").unwrap();
    assert_eq!(
        (
            sonnet.input,
            sonnet.cache_write,
            sonnet.cached_input,
            sonnet.output
        ),
        (
            3 * NANOS_PER_UNIT,
            3_750_000_000,
            300_000_000,
            15 * NANOS_PER_UNIT
        )
    );
    assert!(
        p.price("gemini-2.5-flash-lite", "g").unwrap().input
            < p.price("gemini-2.5-flash", "g").unwrap().input
    );
    // no price silently: made-up names are unpriced
    assert!(p.price("mock-small", "up1").is_none());
    let table = DEFAULTS.as_ref().expect("the table parses and validates");
    assert!(table.exact.len() + table.globs.len() >= 50);
    assert!(DEFAULT_PRICES.contains("Sources:") && DEFAULT_PRICES.contains("2025"));
}

#[test]
fn bedrock_and_vertex_ids_are_priced_as_their_models() {
    let p = pricing(Vec::new(), true);
    let input = |m: &str| p.price(m, "x").map(|pr| pr.input);
    let sonnet = Some(3 * NANOS_PER_UNIT);
    assert_eq!(input("anthropic.claude-3-5-sonnet-20240620-v1:0"), sonnet);
    assert_eq!(input("us.anthropic.claude-sonnet-4-20250514-v1:0"), sonnet);
    assert_eq!(
        input("arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.anthropic.claude-sonnet-4-5-20250929-v1:0"),
        sonnet
    );
    assert_eq!(input("claude-sonnet-4@20250514"), sonnet);
    assert_eq!(input("claude-3-5-sonnet-v2@20241022"), sonnet);
    assert_eq!(input("us.amazon.nova-micro-v1:0"), Some(35_000_000));
    assert_eq!(
        input("us.meta.llama3-3-70b-instruct-v1:0"),
        Some(720_000_000)
    );
}

#[test]
fn cost_prices_each_kind_of_token_and_rounds_once() {
    let price = Price::from_config(&PriceConfig {
        model: "m".into(),
        provider: None,
        input: d("2.50"),
        output: d("10"),
        cached_input: Some(d("1.25")),
        cache_write: Some(d("3.75")),
        reasoning: Some(d("12")),
    })
    .unwrap();
    let u = Usage {
        prompt_tokens: 1000,
        cached_tokens: 300,
        cache_creation_tokens: 200,
        completion_tokens: 100,
        reasoning_tokens: 40,
        ..Usage::default()
    };
    // 500 x 2.50 + 300 x 1.25 + 200 x 3.75 + 60 x 10 + 40 x 12 = 3455 per million
    assert_eq!(format_nanos(price.cost(&u)), "0.003455");
    // without prices of their own, the kinds cost input and output
    let plain = Price::from_config(&entry("m", None, "2")).unwrap();
    // 1000 x 2 + 100 x 2 = 2200 per million
    assert_eq!(plain.cost(&u), 2_200_000);
    // figures that do not add up never cost less than their parts
    let odd = Usage {
        prompt_tokens: 10,
        cached_tokens: 30,
        completion_tokens: 1,
        reasoning_tokens: 5,
        ..Usage::default()
    };
    // 0 x 2.50 + 30 x 1.25 + 0 x 10 + 5 x 12 = 97.5 per million
    assert_eq!(price.cost(&odd), 97_500);
    // half a nano-unit rounds up, once for the whole request
    let tiny = Price {
        input: 500_000,
        ..Price::default()
    };
    let one = Usage {
        prompt_tokens: 1,
        ..Usage::default()
    };
    assert_eq!(tiny.cost(&one), 1);
}

#[test]
fn a_charge_is_flagged_unpriced_and_estimated() {
    let p = pricing(vec![entry("priced", None, "1")], false);
    let u = Usage {
        prompt_tokens: 1_000_000,
        completion_tokens: 1_000_000,
        estimated: true,
        ..Usage::default()
    };
    let c = p.charge("priced".into(), "up".into(), &u);
    assert_eq!(
        (c.cost, c.unpriced, c.estimated),
        (2 * NANOS_PER_UNIT, false, true)
    );
    let c = p.charge("other".into(), "up".into(), &u);
    assert_eq!((c.cost, c.unpriced), (0, true));
    assert_eq!((c.model.as_str(), &*c.provider), ("other", "up"));
}

#[test]
fn the_worst_case_is_the_dearest_candidate() {
    let mut cheap = entry("cheap", None, "1");
    cheap.output = d("2");
    // cache writes dearer than input, reasoning dearer than output
    let mut dear = entry("dear", Some("b"), "3");
    dear.cache_write = Some(d("4"));
    dear.reasoning = Some(d("20"));
    dear.output = d("15");
    let p = pricing(vec![cheap, dear], false);
    let candidates = [("a", "cheap"), ("b", "dear"), ("a", "unpriced")];
    // 1000 x 4 + 100 x 20 = 6000 per million
    assert_eq!(p.worst_case(1000, 100, candidates), 6_000_000);
    // "dear" is priced at provider b only
    assert_eq!(
        p.worst_case(1000, 100, [("a", "dear"), ("a", "cheap")]),
        1_200_000
    );
    assert_eq!(p.worst_case(1000, 100, [("a", "unpriced")]), 0);
    assert_eq!(p.worst_case(1000, 100, Vec::<(&str, &str)>::new()), 0);
}

#[test]
fn a_config_without_defaults_prices_nothing_it_does_not_name() {
    let p = Pricing::default();
    assert_eq!(p.currency(), "USD");
    assert!(p.price("gpt-4o", "openai").is_none());
}
