//! Loading the config file: read, `${ENV}`-interpolate, parse YAML or JSON into the
//! raw schema (`shared::config`), then validate into the runtime config. Every
//! problem is reported at once as `file: key: reason (line L column C)`, and no
//! reason quotes a value (values may be secrets).

mod collect;
mod de;
pub mod problems;
mod state;
mod tree;
pub mod validate;
pub mod window;

pub use problems::{Pos, Problem};
pub use state::{BackendRt, StateRt};
pub use validate::{build, Runtime, ServerRt};
pub use window::parse_window;

use crate::providers::ClientCache;
use serde::de::DeserializeOwned;
use shared::config::RawConfig;
use std::fmt;
use std::path::Path;
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

/// Reads a config file's text.
pub fn read_text(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigError::one(format!(
            "{}: cannot read the config file: {e}",
            path.display()
        ))
    })
}

/// Parses and validates config text (read from `name`) as version `version`.
/// Problems in the text (types, unknown or missing keys, `${ENV}`) and in the
/// values (validation) come together: the validation runs on the text as read
/// with its broken values set aside, and leaves out what those explain.
pub fn load_text(
    name: &str,
    text: &str,
    version: u64,
    clients: &ClientCache,
) -> Result<Runtime, ConfigError> {
    let parsed = parse::<RawConfig>(name, text);
    let mut problems = parsed.problems;
    if let Some(raw) = &parsed.value {
        match validate::check(raw, name, version, clients) {
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
/// name ends in `.json`), YAML otherwise. Every problem of the text, or the config.
pub fn parse_text(name: &str, text: &str) -> Result<RawConfig, ConfigError> {
    let parsed = parse::<RawConfig>(name, text);
    match parsed.value {
        Some(raw) if parsed.problems.is_empty() => Ok(raw),
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
            Err(problems
                .iter()
                .map(|p| {
                    let line = p.render("");
                    line.strip_prefix(": ").unwrap_or(&line).to_string()
                })
                .collect())
        }
    }
}

/// Puts a line on each problem that lacks one (from its key), orders them by line
/// and writes them as `file: key: reason (line L column C)`.
fn render(name: &str, text: &str, tree: Option<Tree>, mut problems: Vec<Problem>) -> Vec<String> {
    if problems.iter().any(|p| p.pos.is_none()) {
        if let Some(tree) = tree.or_else(|| Tree::parse(text).ok()) {
            for p in problems.iter_mut().filter(|p| p.pos.is_none()) {
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
    let fast: Result<T, (String, Option<Pos>)> = if looks_json {
        let mut de = serde_json::Deserializer::from_str(text);
        match serde_path_to_error::deserialize(&mut de) {
            Ok(v) => Ok(v),
            Err(e) => {
                let inner = e.inner();
                let at = Pos {
                    line: inner.line(),
                    column: inner.column(),
                };
                if inner.is_syntax() || inner.is_eof() {
                    // serde_json's syntax messages name what was expected, no value
                    return failed(vec![Problem {
                        key: key_of(e.path().to_string()),
                        reason: format!("not valid JSON: {}", strip_position(&inner.to_string())),
                        pos: Some(at),
                    }]);
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

/// serde_path_to_error writes the whole document as ".".
fn key_of(path: String) -> String {
    if path == "." {
        String::new()
    } else {
        path
    }
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
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/reference-config.yaml"
        );
        let Ok(text) = std::fs::read_to_string(path) else {
            return; // shared/ sits beside the repository only in the project's own checkouts
        };
        for var in [
            "GATEWAY_ADMIN_TOKEN",
            "OPENAI_API_KEY",
            "AZURE_OPENAI_KEY",
            "ANTHROPIC_API_KEY",
            "LABUBU_KEY",
        ] {
            std::env::set_var(var, "x");
        }
        let raw = parse_text("reference-config.yaml", &text).unwrap();
        assert_eq!(raw.providers.len(), 4);
        assert_eq!(raw.routes[0].upstreams.len(), 3);
    }
}
