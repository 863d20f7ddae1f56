//! Problem lists: each problem names a key path and a reason, and gets the line and
//! column of that key once the file's text is known. Reasons never quote a value
//! (values may be secrets); they say what was expected instead.

use std::fmt::{self, Display};

/// A place in the config text, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} column {}", self.line, self.column)
    }
}

/// One problem: the key path (`providers[0].api_tokens`, "" for the whole file) and
/// what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub reason: String,
    pub pos: Option<Pos>,
}

impl Problem {
    /// `file: key: reason (line L column C)`.
    pub fn render(&self, file: &str) -> String {
        format!("{file}: {self}")
    }
}

/// `key: reason (line L column C)`.
impl Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = if self.key.is_empty() {
            "(top level)"
        } else {
            &self.key
        };
        write!(f, "{key}: {}", self.reason)?;
        match self.pos {
            Some(at) => write!(f, " ({at})"),
            None => Ok(()),
        }
    }
}

/// Collects problems as key + reason; warnings are plain `file: key: reason` lines.
pub struct Problems {
    file: String,
    pub errors: Vec<Problem>,
    pub warnings: Vec<String>,
}

impl Problems {
    /// Problems reported against `file` (a config file, or "request" for admin bodies).
    pub fn new(file: impl Into<String>) -> Problems {
        Problems {
            file: file.into(),
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub fn file(&self) -> &str {
        &self.file
    }

    pub fn error(&mut self, key: impl Display, reason: impl Display) {
        self.errors.push(Problem {
            key: key.to_string(),
            reason: reason.to_string(),
            pos: None,
        });
    }
    pub fn warn(&mut self, key: impl Display, reason: impl Display) {
        self.warnings
            .push(format!("{}: {key}: {reason}", self.file));
    }

    /// The errors as `file: key: reason` lines.
    pub fn messages(&self) -> Vec<String> {
        self.errors.iter().map(|p| p.render(&self.file)).collect()
    }
}

/// True when `key` is `scope`, lies under it (`scope.x`, `scope[0]`) or contains it.
pub fn related(key: &str, scope: &str) -> bool {
    fn under(inner: &str, outer: &str) -> bool {
        outer.is_empty()
            || inner
                .strip_prefix(outer)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    }
    under(key, scope) || under(scope, key)
}

/// What a regex did not like, without the pattern (it is a config value).
pub fn regex_reason(e: &regex::Error) -> String {
    match e {
        // the syntax message repeats the pattern with a caret, then "error: <what>"
        regex::Error::Syntax(s) => s
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("error: "))
            .map_or_else(
                || "not a valid regex".to_string(),
                |w| format!("not a valid regex: {w}"),
            ),
        regex::Error::CompiledTooBig(_) => "the regex compiles to more than the size limit".into(),
        _ => "not a valid regex".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn related_paths() {
        assert!(related(
            "providers[0].api_tokens",
            "providers[0].api_tokens"
        ));
        assert!(related(
            "providers[0].api_tokens[1]",
            "providers[0].api_tokens"
        ));
        assert!(related("providers[0]", "providers[0].api_tokens"));
        assert!(!related(
            "providers[0].api_tokens_x",
            "providers[0].api_tokens"
        ));
        assert!(!related("providers[01]", "providers[0]"));
        assert!(!related("routes[0]", "providers[0]"));
        assert!(related("anything", ""));
    }

    #[test]
    fn regex_reason_does_not_quote_the_pattern() {
        let pattern = String::from("secret-(abc");
        let e = regex::Regex::new(&pattern).unwrap_err();
        let r = regex_reason(&e);
        assert!(!r.contains("secret"), "{r}");
        assert!(r.contains("unclosed group"), "{r}");
    }

    #[test]
    fn render_shape() {
        let p = Problem {
            key: "server.listen".into(),
            reason: "expected a string, found a list".into(),
            pos: Some(Pos {
                line: 3,
                column: 11,
            }),
        };
        assert_eq!(
            p.render("gw.yaml"),
            "gw.yaml: server.listen: expected a string, found a list (line 3 column 11)"
        );
        let top = Problem {
            key: String::new(),
            reason: "x".into(),
            pos: None,
        };
        assert_eq!(top.render("f"), "f: (top level): x");
    }
}
