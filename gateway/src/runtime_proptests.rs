//! Properties of the config loader: any text loads or is refused with
//! problems that each name the file, and none quotes a value; a valid config,
//! generated and written as YAML and as JSON, loads from both as the same
//! config.

use super::load_text;
use crate::providers::ClientCache;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// What a problem must never show: it is in values only.
const CANARY: &str = "sk-CANARY";

/// Text made of the pieces YAML and the config are made of.
fn yaml_soup() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "server",
        "providers",
        "routes",
        "tenants",
        "state",
        "telemetry",
        "pricing",
        "quotas",
        "id",
        "type",
        "openai",
        "mock",
        "name",
        "upstreams",
        "provider",
        "window",
        "limit",
        ":",
        ": ",
        "\n",
        "\n  ",
        "\n    ",
        "- ",
        "[",
        "]",
        "{",
        "}",
        ",",
        "\"",
        "'",
        "${",
        "}",
        "#",
        "&a ",
        "*a",
        "!!str ",
        "<<: ",
        "|",
        ">",
        "---",
        "...",
        "~",
        "null",
        "1",
        "-1",
        "1e400",
        "0x1f",
        "1m",
        "day",
        "\t",
        "\\",
        "é",
        "\u{0}",
        "sk-CANARY",
    ]);
    prop::collection::vec(piece, 0..60).prop_map(|p| p.concat())
}

/// A quota of a route, tenant or consumer.
fn quota(name: String) -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["route", "tenant", "consumer", "ip", "header:x-user"]),
        prop::sample::select(vec!["total_tokens", "prompt_tokens", "completion_tokens", "requests"]),
        1u64..1_000_000,
        prop::sample::select(vec!["1s", "60s", "5m", "1h", "1d", "day", "week", "month"]),
    )
        .prop_map(move |(by, strategy, limit, window)| {
            json!({"name": name, "by": by, "strategy": strategy, "limit": limit, "window": window})
        })
}

/// A valid config: providers (mock, or OpenAI with tokens and a model map),
/// routes over them with model globs and quotas, tenants with consumers.
fn config() -> impl Strategy<Value = Value> {
    let provider = (
        any::<bool>(),
        prop::collection::btree_map("[a-z]{1,4}\\*?", "[a-z0-9\\-]{1,8}", 0..3),
    );
    (
        (1024u16..30000, 1u16..1000),
        prop::collection::vec(provider, 1..4),
        prop::collection::vec(
            (prop::collection::vec("[a-z]{1,5}\\*?", 0..3), any::<prop::sample::Index>(), prop::collection::vec(quota(String::new()), 0..3), any::<bool>()),
            0..4,
        ),
        prop::collection::vec(
            (prop::collection::vec(quota(String::new()), 0..2), prop::collection::vec("[a-z]{1,6}", 0..3)),
            0..3,
        ),
        prop::sample::select(vec!["fail_open", "fail_closed", "local"]),
    )
        .prop_map(|((port, gap), providers, routes, tenants, on_error)| {
            let providers: Vec<Value> = providers
                .into_iter()
                .enumerate()
                .map(|(i, (openai, map))| match openai {
                    true => json!({"id": format!("p{i}"), "type": "openai", "api_tokens": [format!("sk-{i}")],
                                   "model_mapping": map}),
                    false => json!({"id": format!("p{i}"), "type": "mock"}),
                })
                .collect();
            let n = providers.len();
            let named = |qs: Vec<Value>, scope: &str| -> Vec<Value> {
                qs.into_iter()
                    .enumerate()
                    .map(|(j, mut q)| {
                        q["name"] = json!(format!("{scope}-q{j}"));
                        q
                    })
                    .collect()
            };
            let routes: Vec<Value> = routes
                .into_iter()
                .enumerate()
                .map(|(i, (models, up, quotas, auth))| {
                    // (quotas by tenant or consumer need callers known)
                    let quotas: Vec<Value> = quotas
                        .into_iter()
                        .filter(|q| auth || !(q["by"] == "tenant" || q["by"] == "consumer"))
                        .collect();
                    json!({"name": format!("r{i}"), "match": {"path_prefix": "/v1", "models": models},
                           "auth": {"enabled": auth},
                           "upstreams": [{"provider": format!("p{}", up.index(n))}],
                           "quotas": named(quotas, &format!("r{i}"))})
                })
                .collect();
            let tenants: Vec<Value> = tenants
                .into_iter()
                .enumerate()
                .map(|(i, (quotas, consumers))| {
                    let mut seen = std::collections::BTreeSet::new();
                    let consumers: Vec<Value> = consumers
                        .into_iter()
                        .filter(|c| seen.insert(c.clone()))
                        .map(|c| json!({"name": c}))
                        .collect();
                    let quotas: Vec<Value> = named(quotas, &format!("t{i}"))
                        .into_iter()
                        .filter(|q| q["by"] == "tenant" || q["by"] == "consumer")
                        .collect();
                    json!({"id": format!("t{i}"), "quotas": quotas, "consumers": consumers})
                })
                .collect();
            json!({
                "server": {"listen": format!("127.0.0.1:{port}"), "admin_listen": format!("127.0.0.1:{}", port + gap)},
                "state": {"backend": "memory", "on_redis_error": on_error},
                "providers": providers,
                "routes": routes,
                "tenants": tenants,
            })
        })
}

/// `v` with the value at one place (picked by `at`) replaced by `with`.
fn replace_one(v: &mut Value, at: usize, with: Value) {
    fn count(v: &Value) -> usize {
        1 + match v {
            Value::Array(a) => a.iter().map(count).sum(),
            Value::Object(o) => o.values().map(count).sum(),
            _ => 0,
        }
    }
    fn go(v: &mut Value, mut at: usize, with: Value) {
        if at == 0 {
            *v = with;
            return;
        }
        at -= 1;
        let children: Vec<&mut Value> = match v {
            Value::Array(a) => a.iter_mut().collect(),
            Value::Object(o) => o.values_mut().collect(),
            _ => return,
        };
        for c in children {
            let n = count(c);
            if at < n {
                return go(c, at, with);
            }
            at -= n;
        }
    }
    let n = count(v);
    go(v, at % n, with);
}

/// `v` with string values replaced where `with` says (in the order they
/// come, `with` repeated).
fn replace_strings(v: &mut Value, with: &[Option<Value>], at: &mut usize) {
    match v {
        Value::String(_) if !with.is_empty() => {
            if let Some(w) = &with[*at % with.len()] {
                *v = w.clone();
            }
            *at += 1;
        }
        Value::Array(a) => a.iter_mut().for_each(|c| replace_strings(c, with, at)),
        Value::Object(o) => o.values_mut().for_each(|c| replace_strings(c, with, at)),
        _ => {}
    }
}

/// A value of some other type, holding the canary.
fn wrong() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(CANARY)),
        Just(json!(format!("${{{CANARY}"))),
        Just(json!(format!("1{CANARY}"))),
        Just(json!([CANARY, 1])),
        Just(json!({"a": CANARY})),
        Just(json!(-1)),
        Just(json!(1.5)),
        Just(json!(true)),
        Just(Value::Null),
        Just(json!(u64::MAX)),
    ]
}

fn yaml(v: &Value) -> String {
    serde_yaml_ng::to_string(v).unwrap()
}

fn problems(name: &str, text: &str) -> Option<Vec<String>> {
    load_text(name, text, 1, &ClientCache::default())
        .err()
        .map(|e| e.problems)
}

proptest! {
    #![proptest_config(crate::prop::cases(128))]

    /// Any text: a config, or problems that each begin with the file's name;
    /// never a panic.
    #[test]
    fn any_text_loads_or_names_its_problems(text in yaml_soup(), json: bool) {
        let name = if json { "c.json" } else { "c.yaml" };
        if let Some(all) = problems(name, &text) {
            prop_assert!(!all.is_empty());
            for p in &all {
                prop_assert!(p.starts_with(&format!("{name}: ")), "{}", p);
            }
        }
    }

    /// Any bytes read as text (as a file that is not UTF-8 would not be, but
    /// a mangled one may be): no panic.
    #[test]
    fn any_bytes_are_safe(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = problems("c.yaml", &text);
    }

    /// A valid config with one value anywhere, and some of its strings,
    /// replaced by values (of another type, or broken `${...}`) that hold a
    /// secret-looking string: no problem shows it.
    #[test]
    fn problems_never_quote_a_value(
        c in config(),
        at: usize,
        with in wrong(),
        strings in prop::collection::vec(prop::option::weighted(0.2, wrong()), 1..16),
        json: bool,
    ) {
        let mut c = c;
        replace_one(&mut c, at, with);
        replace_strings(&mut c, &strings, &mut 0);
        let text = if json { c.to_string() } else { yaml(&c) };
        if let Some(all) = problems(if json { "c.json" } else { "c.yaml" }, &text) {
            for p in &all {
                prop_assert!(!p.contains(CANARY), "{}\nin:\n{}", p, text);
            }
        }
    }

    /// A generated valid config loads, written as YAML and as JSON, and both
    /// texts read as the same config.
    #[test]
    fn a_valid_config_round_trips(c in config()) {
        let (y, j) = (yaml(&c), c.to_string());
        let from_yaml = load_text("c.yaml", &y, 1, &ClientCache::default());
        prop_assert!(from_yaml.is_ok(), "{:?}\n{}", from_yaml.err(), y);
        let from_json = load_text("c.json", &j, 1, &ClientCache::default());
        prop_assert!(from_json.is_ok(), "{:?}\n{}", from_json.err(), j);
        let a = crate::config::parse_text("c.yaml", &y).unwrap();
        let b = crate::config::parse_text("c.json", &j).unwrap();
        prop_assert_eq!(format!("{a:?}"), format!("{b:?}"));
        // and the raw config says what the generator wrote
        let back: Map<String, Value> = c.as_object().cloned().unwrap_or_default();
        prop_assert_eq!(a.providers.len(), back["providers"].as_array().map_or(0, Vec::len));
        prop_assert_eq!(a.routes.len(), back["routes"].as_array().map_or(0, Vec::len));
    }
}
