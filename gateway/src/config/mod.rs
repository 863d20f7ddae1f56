//! The config model: config text (`${ENV}`-interpolated) parsed as YAML or JSON
//! into the raw schema (`shared::config`), then validated into plain data (pure:
//! reading the file and building what the config describes are `runtime`'s).
//! Every problem is reported at once as `file: key: reason (line L column C)`,
//! and no reason quotes a value (values may be secrets).

pub mod budget;
mod collect;
mod de;
pub mod health;
pub mod masked;
pub mod pricing;
pub mod problems;
mod reason;
mod server;
mod state;
mod tree;
pub mod validate;
pub mod window;
mod zero;

pub use problems::{Pos, Problem};
pub use state::{check_name, BackendRt, QuotaSettings, StateRt, Target, MAX_AMOUNT};
pub use validate::{check, Config, ServerRt};
pub use window::parse_window;

use serde::de::DeserializeOwned;
use shared::config::RawConfig;
use shared::env::{with_env, Lookup};
use std::fmt;
use std::rc::Rc;
use tree::Tree;

/// The config the gateway runs when started without `--config`: memory backend, the
/// built-in `mock` provider behind one open route, access log on stdout.
pub const EMBEDDED_DEFAULT: &str = include_str!("default.yaml");

/// The name used in messages for the embedded default.
pub const EMBEDDED_NAME: &str = "<embedded default>";

/// Everything wrong with a config file; each entry names file, key and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    pub fn one(p: String) -> Self {
        ConfigError { problems: vec![p] }
    }
}

/// Parses config text (read from `name`, `${NAME}` looked up in `env`) and
/// validates it with `check` (see
/// `runtime::load_text`). Problems in the text (types, unknown or missing keys,
/// `${ENV}`) and in the values (validation) come together: the validation runs
/// on the text as read with its broken values set aside, and leaves out what
/// those explain.
pub fn load_text<T>(
    name: &str,
    text: &str,
    env: Lookup,
    check: impl FnOnce(&RawConfig) -> Result<T, Vec<Problem>>,
) -> Result<T, ConfigError> {
    let parsed = with_env(env, || parse::<RawConfig>(name, text));
    let mut problems = parsed.problems;
    if let Some(raw) = &parsed.value {
        match check(raw) {
            Ok(rt) if problems.is_empty() => return Ok(rt),
            Ok(_) => {}
            Err(found) => problems.extend(
                found
                    .into_iter()
                    .filter(|p| !parsed.shadowed.iter().any(|s| problems::related(&p.key, s))),
            ),
        }
    }
    Err(ConfigError {
        problems: render(name, text, parsed.tree, problems),
    })
}

/// Parses config text into the raw schema: JSON when it looks like JSON (or the
/// name ends in `.json`), YAML otherwise; no `${NAME}` is set. Every problem of
/// the text, or the config.
pub fn parse_text(name: &str, text: &str) -> Result<RawConfig, ConfigError> {
    parse_text_in(name, text, Rc::new(|_| None))
}

/// [`parse_text`], with `${NAME}` looked up in `env`.
pub fn parse_text_in(name: &str, text: &str, env: Lookup) -> Result<RawConfig, ConfigError> {
    with_env(env, || parse_as::<RawConfig>(name, text))
}

/// Parses text (YAML or JSON, read from `name`) into any part of the schema,
/// e.g. a file that holds only the `pricing` section: the value, or every
/// problem of the text placed on its line.
pub fn parse_as<T: DeserializeOwned>(name: &str, text: &str) -> Result<T, ConfigError> {
    let parsed = parse::<T>(name, text);
    match parsed.value {
        Some(v) if parsed.problems.is_empty() => Ok(v),
        _ => Err(ConfigError {
            problems: render(name, text, parsed.tree, parsed.problems),
        }),
    }
}

/// Reads a JSON document (an admin API body) into `T`: the value, or every
/// problem as `key: reason (line L column C)`, none quoting a value.
pub fn parse_json<T: DeserializeOwned>(text: &str) -> Result<T, Vec<String>> {
    let parsed = parse::<T>("request.json", text);
    match parsed.value {
        Some(v) if parsed.problems.is_empty() => Ok(v),
        _ => {
            let mut problems = parsed.problems;
            sort(&mut problems);
            Err(problems.iter().map(Problem::to_string).collect())
        }
    }
}

/// Puts a line on each problem of a key that lacks one, orders them by line and
/// writes them as `file: key: reason (line L column C)`; those about the whole
/// file come last.
fn render(name: &str, text: &str, tree: Option<Tree>, mut problems: Vec<Problem>) -> Vec<String> {
    let unplaced = |p: &Problem| p.pos.is_none() && !p.key.is_empty();
    if problems.iter().any(unplaced) {
        if let Some(tree) = tree.or_else(|| Tree::parse(text).ok()) {
            for p in problems.iter_mut().filter(|p| unplaced(p)) {
                p.pos = Some(tree.locate(&p.key));
            }
        }
    }
    sort(&mut problems);
    problems.iter().map(|p| p.render(name)).collect()
}

fn sort(problems: &mut [Problem]) {
    problems.sort_by_key(|p| {
        p.pos
            .map_or((usize::MAX, usize::MAX), |at| (at.line, at.column))
    });
}

struct Parsed<T> {
    value: Option<T>,
    problems: Vec<Problem>,
    /// see `collect::Collected::shadowed`
    shadowed: Vec<String>,
    tree: Option<Tree>,
}

fn parse<T: DeserializeOwned>(name: &str, text: &str) -> Parsed<T> {
    let failed = |problems| Parsed {
        value: None,
        problems,
        shadowed: Vec::new(),
        tree: None,
    };
    if text.trim().is_empty() {
        return failed(vec![Problem {
            key: String::new(),
            reason: "the config file is empty".into(),
            pos: None,
        }]);
    }
    let looks_json = name.ends_with(".json") || text.trim_start().starts_with('{');
    // The parser the gateway runs on reads a valid file; only a file it refuses is
    // read again as a tree, for every problem with its line and without the value
    // (serde's own messages quote it).
    let json_syntax = |e: &serde_json::Error, key: String| Problem {
        key,
        // serde_json's syntax messages name what was expected, no value
        reason: format!("not valid JSON: {}", strip_position(&e.to_string())),
        pos: Some(Pos {
            line: e.line(),
            column: e.column(),
        }),
    };
    let fast: Result<T, (String, Option<Pos>)> = if looks_json {
        let mut de = serde_json::Deserializer::from_str(text);
        match serde_path_to_error::deserialize(&mut de) {
            // nothing but white space after the document
            Ok(v) => match de.end() {
                Ok(()) => Ok(v),
                Err(e) => return failed(vec![json_syntax(&e, String::new())]),
            },
            Err(e) => {
                let inner = e.inner();
                let at = Pos {
                    line: inner.line(),
                    column: inner.column(),
                };
                if inner.is_syntax() || inner.is_eof() {
                    return failed(vec![json_syntax(inner, key_of(e.path().to_string()))]);
                }
                Err((e.path().to_string(), Some(at)))
            }
        }
    } else {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let at = e.inner().location().map(|l| Pos {
                line: l.line(),
                column: l.column(),
            });
            (e.path().to_string(), at)
        })
    };
    let (path, at) = match fast {
        Ok(v) => {
            return Parsed {
                value: Some(v),
                problems: Vec::new(),
                shadowed: Vec::new(),
                tree: None,
            }
        }
        Err(e) => e,
    };
    let tree = match Tree::parse(text) {
        Ok(t) => t,
        Err(e) => {
            return failed(vec![Problem {
                key: e.key,
                reason: e.reason,
                pos: Some(e.pos),
            }])
        }
    };
    let mut c = collect::collect::<T>(&tree);
    if c.problems.is_empty() {
        // the tree reader took what the parser refused: say where, not what
        c.value = None;
        c.problems.push(Problem {
            key: key_of(path),
            reason: "cannot be read as the expected type".into(),
            pos: at,
        });
    }
    Parsed {
        value: c.value,
        problems: c.problems,
        shadowed: c.shadowed,
        tree: Some(tree),
    }
}

/// serde_path_to_error writes the whole document as "." and a key it did not get
/// to read as "?".
fn key_of(path: String) -> String {
    let known: Vec<&str> = path
        .split('.')
        .filter(|s| !s.is_empty() && *s != "?")
        .collect();
    known.join(".")
}

/// serde_json appends "at line X column Y"; the position is printed once, ours.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ClientCache;
    use crate::runtime::load_text;

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = parse_text("gw.yaml", "server:\n  listen: 127.0.0.1:1\n  lisen: x\n").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("gw.yaml: server.lisen: unknown field `lisen`"),
            "{msg}"
        );
        assert!(msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn nested_type_error_has_path() {
        let text = "providers:\n  - id: a\n    type: openai\n    timeouts: { connect_ms: fast }\n";
        let msg = parse_text("c.yaml", text).unwrap_err().to_string();
        assert!(msg.contains("providers[0].timeouts.connect_ms"), "{msg}");
        assert!(msg.contains("line 4"), "{msg}");
    }

    #[test]
    fn missing_env_variable_is_named() {
        let text = "providers:\n  - id: a\n    type: openai\n    api_tokens: [\"${GW_TEST_SURELY_UNSET_VAR}\"]\n";
        let msg = parse_text("c.yaml", text).unwrap_err().to_string();
        assert!(msg.contains("GW_TEST_SURELY_UNSET_VAR is not set"), "{msg}");
        assert!(msg.contains("providers[0].api_tokens[0]"), "{msg}");
    }

    /// A secret written without list brackets, and three other kinds of problem.
    const BROKEN: &str = "server:
  listen: 127.0.0.1:1
  admin_listen: 127.0.0.1:2
  max_body_bytes: lots
providers:
  - id: up1
    type: openai
    api_tokens: sk-live-SECRET123
  - type: mock
    bogus: 1
routes:
  - name: r
    upstreams: [{ provider: up1 }]
    quotas: [{ name: q, by: route, strategy: requests, limit: 1, window: 5w }]
";

    fn load(name: &str, text: &str) -> Vec<String> {
        load_text(name, text, 1, &ClientCache::default())
            .err()
            .unwrap()
            .problems
    }

    #[test]
    fn every_problem_at_once_with_key_and_line_and_no_value() {
        let all = load("c.yaml", BROKEN);
        assert_eq!(
            all,
            [
                "c.yaml: server.max_body_bytes: expected an integer of 0 or more, found a string (line 4 column 19)",
                "c.yaml: providers[0].api_tokens: expected a list like [a, b], found a string (line 8 column 17)",
                "c.yaml: providers[1].id: required, but not set (line 9 column 5)",
                "c.yaml: providers[1].bogus: unknown field `bogus`, expected one of `id`, `type`, `base_url`, `api_version`, `api_tokens`, `model_mapping`, `options`, `timeouts`, `checks`, `passive`, `models`, `default_max_tokens`, `project`, `location`, `region`, `auth` (line 10 column 5)",
                "c.yaml: routes[0].quotas[0].window: a window's unit is s, m, h or d, or a calendar window: day, week, month (line 14 column 74)",
            ],
            "(the validation's \"needs at least one api token\" is a consequence of the removed api_tokens)"
        );
    }

    #[test]
    fn json_problems_are_all_listed_too() {
        let json = r#"{
  "server": {"listen": "127.0.0.1:1", "admin_listen": "127.0.0.1:2", "max_body_bytes": "lots"},
  "providers": [
    {"id": "up1", "type": "openai", "api_tokens": "sk-live-SECRET123"},
    {"type": "mock", "bogus": 1}
  ],
  "routes": [{"name": "r", "upstreams": [{"provider": "up1"}], "quotas": [{"name": "q", "by": "route", "strategy": "requests", "limit": 1, "window": "5w"}]}]
}"#;
        let all = load("c.json", json).join("\n");
        for needle in [
            "c.json: server.max_body_bytes: expected an integer of 0 or more, found a string (line 2 column 88)",
            "c.json: providers[0].api_tokens: expected a list like [a, b], found a string (line 4 column 51)",
            "c.json: providers[1].id: required, but not set (line 5 column 5)",
            "c.json: providers[1].bogus: unknown field `bogus`",
            "c.json: routes[0].quotas[0].window: a window's unit is s, m, h or d, or a calendar window: day, week, month (line 7",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        assert_eq!(all.lines().count(), 5, "{all}");
        assert!(!all.contains("SECRET") && !all.contains("lots"), "{all}");
        let broken = load("c.json", "{\"server\": {\"listen\": \"sk-SECRET\"\n");
        assert_eq!(
            broken,
            ["c.json: server: not valid JSON: EOF while parsing an object (line 2 column 0)"]
        );
        let trailing = load("c.json", "{\"server\": {}} sk-SECRET");
        assert_eq!(
            trailing,
            ["c.json: (top level): not valid JSON: trailing characters (line 1 column 16)"]
        );
    }

    #[test]
    fn wrong_enum_values_are_not_echoed() {
        let text =
            "providers:\n  - id: a\n    type: sk-SECRET\nstate: { on_redis_error: sk-SECRET2 }\n";
        let all = parse_text("c.yaml", text).unwrap_err().problems;
        assert_eq!(all.len(), 2, "{all:?}");
        assert!(all[0].starts_with("c.yaml: providers[0].type: not a known value: expected one of `openai`, `openai-compatible`"), "{all:?}");
        assert_eq!(all[1], "c.yaml: state.on_redis_error: not a known value: expected one of `fail_open`, `fail_closed`, `local` (line 4 column 26)");
        assert!(!all.concat().contains("SECRET"), "{all:?}");
    }

    #[test]
    fn env_errors_do_not_quote_the_value() {
        let text = "server: { admin_token: \"sk-SECRET${\" }\nproviders:\n  - { id: a, type: openai, api_tokens: [\"${GW_TEST_SURELY_UNSET_VAR}\", \"sk-SECRET${a b}\"] }\n";
        let all = parse_text("c.yaml", text).unwrap_err().problems;
        assert_eq!(all.len(), 3, "{all:?}");
        assert!(
            all[0].starts_with(
                "c.yaml: server.admin_token: a \"${\" without its closing \"}\" (line 1"
            ),
            "{all:?}"
        );
        assert!(all[1].contains("providers[0].api_tokens[0]: environment variable GW_TEST_SURELY_UNSET_VAR is not set"), "{all:?}");
        assert!(
            all[2].contains(
                "providers[0].api_tokens[1]: a \"${...}\" that is not an environment variable name"
            ),
            "{all:?}"
        );
        assert!(!all.concat().contains("SECRET"), "{all:?}");
    }

    #[test]
    fn syntax_errors_name_the_place() {
        let all = parse_text("c.yaml", "server:\n  listen: [unclosed\n")
            .unwrap_err()
            .problems;
        assert_eq!(all.len(), 1, "{all:?}");
        assert!(
            all[0].starts_with("c.yaml: server.listen: not valid YAML: "),
            "{all:?}"
        );
        assert!(all[0].ends_with("(line 3 column 1)"), "{all:?}");
    }

    #[test]
    fn admin_bodies_list_every_problem_without_values() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Body {
            keys: Vec<String>,
            limit: u64,
        }
        let e = parse_json::<Body>(r#"{"keys": "sk-SECRET", "limit": -1, "x": 2}"#).unwrap_err();
        assert_eq!(
            e,
            [
                "keys: expected a list like [a, b], found a string (line 1 column 10)",
                "limit: expected an integer of 0 or more, found a negative integer (line 1 column 32)",
                "x: unknown field `x`, expected `keys` or `limit` (line 1 column 36)",
            ]
        );
    }

    #[test]
    fn json_is_accepted() {
        let raw = parse_text("c.json", r#"{"server": {"listen": "127.0.0.1:9"}}"#).unwrap();
        assert_eq!(raw.server.listen.as_str(), "127.0.0.1:9");
        let msg = parse_text("c.json", r#"{"server": {"nope": 1}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("unknown field `nope`") && msg.contains("line 1"),
            "{msg}"
        );
    }

    #[test]
    fn empty_file_is_an_error() {
        assert!(parse_text("c.yaml", "  \n").is_err());
    }

    #[test]
    fn reference_config_parses() {
        // deploy/gateway.reference.yaml names every key of the config file; a
        // missing or invalid file fails here.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/gateway.reference.yaml"
        );
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
        let vars = [
            "GATEWAY_ADMIN_TOKEN",
            "OPENAI_API_KEY",
            "AZURE_OPENAI_KEY",
            "ANTHROPIC_API_KEY",
            "LABUBU_KEY",
            "GEMINI_API_KEY",
            "GCP_SERVICE_ACCOUNT",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ];
        let env = Rc::new(move |n: &str| vars.contains(&n).then(|| "x".to_string()));
        let raw = parse_text_in("gateway.reference.yaml", &text, env)
            .unwrap_or_else(|e| panic!("{path} does not parse:\n{e}"));
        assert_eq!(raw.providers.len(), 7);
        assert_eq!(raw.routes[0].upstreams.len(), 3);
        assert_eq!(raw.routes.len(), 3);
        assert_eq!(raw.tenants[0].consumers[0].quotas.len(), 3);
        assert_eq!(raw.pricing.models.len(), 3);
        assert!(raw.server.tls.is_some() && raw.telemetry.otlp.is_some());
    }
}
