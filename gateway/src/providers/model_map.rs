//! `model_mapping`: request model -> upstream model. Exact names, prefix globs
//! (`gpt-4*`), regexes with captures (`~^claude-(.*)$` -> `anthropic-$1`) and the
//! catch-all `*`; the first matching rule wins.

use crate::config::problems::regex_reason;
use crate::glob::Glob;
use indexmap::IndexMap;
use regex::Regex;
use std::borrow::Cow;

#[derive(Debug, Clone, Default)]
pub struct ModelMap {
    rules: Vec<(Matcher, String)>,
}

#[derive(Debug, Clone)]
enum Matcher {
    Glob(Glob),
    Regex(Regex),
}

impl ModelMap {
    /// An error names the rule (its request model, a key) and the reason.
    pub fn build(raw: &IndexMap<String, String>) -> Result<ModelMap, (String, String)> {
        let mut rules = Vec::with_capacity(raw.len());
        for (from, to) in raw {
            let m = match from.strip_prefix('~') {
                Some(re) => {
                    Matcher::Regex(Regex::new(re).map_err(|e| (from.clone(), regex_reason(&e)))?)
                }
                None => Matcher::Glob(Glob::new(from)),
            };
            if to.is_empty() {
                return Err((from.clone(), "maps to an empty model name".into()));
            }
            rules.push((m, to.clone()));
        }
        Ok(ModelMap { rules })
    }

    /// The upstream model for `model`; unmapped models pass unchanged.
    pub fn map<'a>(&'a self, model: &'a str) -> Cow<'a, str> {
        for (m, to) in &self.rules {
            match m {
                Matcher::Glob(g) if g.matches(model) => return Cow::Borrowed(to),
                Matcher::Regex(re) => {
                    if let Some(caps) = re.captures(model) {
                        let mut out = String::new();
                        caps.expand(to, &mut out);
                        return Cow::Owned(out);
                    }
                }
                Matcher::Glob(_) => {}
            }
        }
        Cow::Borrowed(model)
    }

    /// Request-model names the mapping accepts literally (for `GET /v1/models`).
    pub fn exact_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().filter_map(|(m, _)| match m {
            Matcher::Glob(g) if g.is_exact() => Some(g.as_str()),
            _ => None,
        })
    }
}

impl ModelMap {
    /// Upstream model names the mapping writes literally (no `$` captures).
    pub fn literal_targets(&self) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .map(|(_, to)| to.as_str())
            .filter(|to| !to.contains('$'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_match_wins() {
        let mut raw = IndexMap::new();
        raw.insert("gpt-4o".to_string(), "exact".to_string());
        raw.insert("gpt-4*".to_string(), "gpt-4o".to_string());
        raw.insert("~^claude-(.*)$".to_string(), "anthropic-$1".to_string());
        raw.insert("*".to_string(), "gpt-4o-mini".to_string());
        let m = ModelMap::build(&raw).unwrap();
        assert_eq!(m.map("gpt-4o"), "exact");
        assert_eq!(m.map("gpt-4-turbo"), "gpt-4o");
        assert_eq!(m.map("claude-3-opus"), "anthropic-3-opus");
        assert_eq!(m.map("llama"), "gpt-4o-mini");
        assert_eq!(m.exact_names().collect::<Vec<_>>(), vec!["gpt-4o"]);
    }

    #[test]
    fn unmapped_passes() {
        let m = ModelMap::default();
        assert_eq!(m.map("x"), "x");
        let mut raw = IndexMap::new();
        raw.insert("~(".to_string(), "x".to_string());
        assert!(ModelMap::build(&raw).is_err());
    }
}
