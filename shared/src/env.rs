//! `${NAME}` interpolation of config values from an environment the caller
//! names ([`with_env`]; the gateway passes the process environment when it loads
//! its config file).

use serde::{Deserialize, Deserializer};
use std::cell::RefCell;
use std::fmt;
use std::ops::Deref;
use std::rc::Rc;

/// Where `${NAME}` is looked up.
pub type Lookup = Rc<dyn Fn(&str) -> Option<String>>;

thread_local! {
    static ENV: RefCell<Option<Lookup>> = const { RefCell::new(None) };
}

/// Runs `f` (a parse of config text on this thread) with `${NAME}` read from
/// `env`. Outside it, no variable is set.
pub fn with_env<R>(env: Lookup, f: impl FnOnce() -> R) -> R {
    /// puts the outer environment back, also when `f` unwinds
    struct Restore(Option<Lookup>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let outer = self.0.take();
            ENV.with(|e| *e.borrow_mut() = outer);
        }
    }
    let _restore = Restore(ENV.with(|e| e.replace(Some(env))));
    f()
}

/// A variable of the environment the config is being read with (None outside
/// [`with_env`]).
pub fn lookup(name: &str) -> Option<String> {
    ENV.with(|e| e.borrow().as_ref().and_then(|l| l(name)))
}

/// A config string whose `${NAME}` / `${NAME:-default}` placeholders were replaced
/// from the environment while the file was parsed (see [`with_env`]). A missing
/// variable without a default is a load error that names it.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct EnvString(String);

impl EnvString {
    pub fn new(s: impl Into<String>) -> Self {
        EnvString(s.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_string(self) -> String {
        self.0
    }
}

impl Deref for EnvString {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for EnvString {
    // Values may be secrets (api tokens, keys): never print them in debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EnvString(<{} bytes>)", self.0.len())
    }
}

impl From<&str> for EnvString {
    fn from(s: &str) -> Self {
        EnvString(s.to_string())
    }
}

impl<'de> Deserialize<'de> for EnvString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        let env = ENV.with(|e| e.borrow().clone());
        interpolate(&raw, |name| env.as_ref().and_then(|lookup| lookup(name)))
            .map(EnvString)
            .map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for EnvString {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EnvString".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A string; `${NAME}` and `${NAME:-default}` in it are read from the environment when the file is loaded."
        })
    }
}

/// Replaces `${NAME}` and `${NAME:-default}` in `raw` using `lookup`. Errors name
/// the variable, never the value around it (it may be a secret).
pub fn interpolate(raw: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    if !raw.contains("${") {
        return Ok(raw.to_string());
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "a \"${\" without its closing \"}\"".to_string())?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            // not a name, so maybe a value (a secret with a "${" in it): not quoted
            return Err(
                "a \"${...}\" that is not an environment variable name (letters, digits, _)"
                    .to_string(),
            );
        }
        match (lookup(name), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "SET").then(|| "v".to_string())
    }

    #[test]
    fn parses_read_the_environment_they_are_given() {
        let parse = || serde_json::from_str::<EnvString>(r#""a${SET}b""#).map(|e| e.0);
        let got = with_env(Rc::new(env), parse);
        assert_eq!(got.ok().as_deref(), Some("avb"));
        let outside = parse().unwrap_err().to_string();
        assert!(outside.contains("SET is not set"), "{outside}");
    }

    #[test]
    fn replaces_and_defaults() {
        assert_eq!(interpolate("a${SET}b", env).as_deref(), Ok("avb"));
        assert_eq!(interpolate("${NOPE:-d}", env).as_deref(), Ok("d"));
        assert_eq!(interpolate("${NOPE:-}", env).as_deref(), Ok(""));
        assert_eq!(interpolate("plain", env).as_deref(), Ok("plain"));
    }

    #[test]
    fn missing_variable_is_named() {
        let e = interpolate("x ${OPENAI_KEY}", env).unwrap_err();
        assert!(e.contains("OPENAI_KEY"), "{e}");
        assert!(interpolate("${", env).is_err());
        assert!(interpolate("${a b}", env).is_err());
    }

    #[test]
    fn errors_do_not_quote_the_value() {
        for raw in [
            "sk-live-SECRET${",
            "sk-live-SECRET${a b}",
            "${sk-live-SECRET}",
        ] {
            let e = interpolate(raw, env).unwrap_err();
            assert!(!e.contains("SECRET"), "{e}");
        }
    }
}
