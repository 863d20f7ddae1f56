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

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// A rule's request side: a glob over a small alphabet, or a regex
    /// with a capture.
    fn from() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[ab*]{1,5}",
            1 => "[ab]{1,3}".prop_map(|p| format!("~^{p}-(.*)$")),
        ]
    }

    proptest! {
        #![proptest_config(crate::prop::cases(256))]

        /// The first rule that matches decides (a glob's target as it is, a
        /// regex's with its capture); a model no rule matches passes unchanged.
        #[test]
        fn the_first_matching_rule_wins(
            rules in proptest::collection::vec((from(), "[xy]{1,3}(\\$1)?"), 0..6),
            model in "[ab\\-]{0,8}",
        ) {
            let raw: IndexMap<String, String> = rules.into_iter().collect();
            let m = ModelMap::build(&raw).unwrap();
            let mut expected = model.clone();
            for (from, to) in &raw {
                if let Some(re) = from.strip_prefix('~') {
                    let prefix = re.trim_start_matches('^').trim_end_matches("-(.*)$");
                    if let Some(rest) = model.strip_prefix(prefix).and_then(|r| r.strip_prefix('-')) {
                        expected = to.replace("$1", rest);
                        break;
                    }
                } else if Glob::new(from).matches(&model) {
                    expected = to.clone();
                    break;
                }
            }
            prop_assert_eq!(m.map(&model).into_owned(), expected);
        }

        /// Building never panics on any rule text: a bad regex is an error
        /// naming its rule, an empty target too.
        #[test]
        fn any_rule_text_builds_or_names_the_rule(from in "~?.{0,12}", to in ".{0,4}") {
            let mut raw = IndexMap::new();
            raw.insert(from.clone(), to.clone());
            match ModelMap::build(&raw) {
                Ok(m) => {
                    prop_assert!(!to.is_empty());
                    let _ = m.map(&from);
                }
                Err((rule, _)) => prop_assert_eq!(rule, from),
            }
        }
    }
}
