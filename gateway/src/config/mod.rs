//! Loading the config file: read, `${ENV}`-interpolate, parse YAML or JSON into the
//! raw schema (`shared::config`), then validate into the runtime config. Every
//! problem is reported as `file: key: reason`.

mod state;
pub mod validate;
pub mod window;

pub use state::{BackendRt, StateRt};
pub use validate::{build, Runtime, ServerRt};
pub use window::parse_window;

use shared::config::RawConfig;
use std::fmt;
use std::path::Path;

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

/// Reads and parses a config file into the raw schema.
pub fn read_file(path: &Path) -> Result<(RawConfig, String), ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::one(format!("{name}: cannot read the config file: {e}")))?;
    let raw = parse_text(&name, &text)?;
    Ok((raw, text))
}

/// Parses config text; JSON when it looks like JSON (or the name ends in `.json`),
/// YAML otherwise.
pub fn parse_text(name: &str, text: &str) -> Result<RawConfig, ConfigError> {
    if text.trim().is_empty() {
        return Err(ConfigError::one(format!(
            "{name}: the config file is empty"
        )));
    }
    let looks_json = name.ends_with(".json") || text.trim_start().starts_with('{');
    let result = if looks_json {
        let mut de = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let inner = e.inner();
            let at = format!("line {} column {}", inner.line(), inner.column());
            (e.path().to_string(), strip_position(&inner.to_string()), at)
        })
    } else {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let inner = e.inner();
            let at = inner
                .location()
                .map(|l| format!("line {} column {}", l.line(), l.column()))
                .unwrap_or_else(|| "unknown position".into());
            (e.path().to_string(), strip_position(&inner.to_string()), at)
        })
    };
    result.map_err(|(path, msg, at)| {
        let key = if path.is_empty() || path == "." {
            "(top level)".to_string()
        } else {
            path
        };
        ConfigError::one(format!("{name}: {key}: {msg} ({at})"))
    })
}

/// serde_yaml prefixes its own key path and both parsers append "at line X column
/// Y"; we print the path and the position once each.
fn strip_position(msg: &str) -> String {
    let msg = match msg.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') => rest,
        _ => msg,
    };
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
