//! `*` globs for models, hosts, tenants: `*` matches any run of characters.

/// A compiled glob. Patterns without `*` compare exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: std::sync::Arc<str>,
    parts: Vec<String>,
    exact: bool,
    /// the pattern is `*`: matches everything without looking
    all: bool,
}

impl Glob {
    pub fn new(pattern: &str) -> Self {
        Glob {
            pattern: pattern.into(),
            parts: pattern.split('*').map(str::to_string).collect(),
            exact: !pattern.contains('*'),
            all: pattern == "*",
        }
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// The pattern, shared (e.g. as a metric label).
    pub fn shared(&self) -> std::sync::Arc<str> {
        self.pattern.clone()
    }

    /// true when the pattern has no wildcard, so it names exactly one value.
    pub fn is_exact(&self) -> bool {
        self.exact
    }

    pub fn matches(&self, s: &str) -> bool {
        if self.all {
            return true;
        }
        if self.exact {
            return *self.pattern == *s;
        }
        let (first, rest) = match self.parts.split_first() {
            Some(x) => x,
            None => return true,
        };
        let Some(mut tail) = s.strip_prefix(first.as_str()) else {
            return false;
        };
        let (last, middle) = match rest.split_last() {
            Some(x) => x,
            None => return tail.is_empty(),
        };
        for part in middle {
            match tail.find(part.as_str()) {
                Some(i) => tail = &tail[i + part.len()..],
                None => return false,
            }
        }
        tail.len() >= last.len() && tail.ends_with(last.as_str())
    }
}

/// Any of several globs.
pub fn any_match(globs: &[Glob], s: &str) -> bool {
    globs.iter().any(|g| g.matches(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(Glob::new("*").matches(""));
        assert!(Glob::new("*").matches("anything"));
        assert!(Glob::new("gpt-*").matches("gpt-4o"));
        assert!(!Glob::new("gpt-*").matches("claude-3"));
        assert!(Glob::new("gpt-4o").matches("gpt-4o"));
        assert!(!Glob::new("gpt-4o").matches("gpt-4o-mini"));
        assert!(Glob::new("*.example.com").matches("api.example.com"));
        assert!(!Glob::new("*.example.com").matches("example.com"));
        assert!(Glob::new("a*b*c").matches("abc"));
        assert!(Glob::new("a*b*c").matches("a-b-b-c"));
        assert!(!Glob::new("a*b*c").matches("a-c"));
        assert!(!Glob::new("ab*ba").matches("aba"));
        assert!(Glob::new("acme/*").matches("acme/labubu"));
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// The meaning of a glob, written the slow obvious way: `*` matches any
    /// run of characters (backtracking over every split).
    fn reference(p: &[char], s: &[char]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some(('*', rest)) => (0..=s.len()).any(|i| reference(rest, &s[i..])),
            Some((c, rest)) => s.first() == Some(c) && reference(rest, &s[1..]),
        }
    }

    proptest! {
        #![proptest_config(crate::prop::cases(256))]

        /// Over a small alphabet (so that parts repeat and overlap, as `ab*ba`
        /// against `aba` does), a glob matches exactly what the backtracking
        /// reference matches.
        #[test]
        fn matches_as_the_reference(p in "[ab*é]{0,8}", s in "[abé]{0,10}") {
            let pc: Vec<char> = p.chars().collect();
            let sc: Vec<char> = s.chars().collect();
            prop_assert_eq!(Glob::new(&p).matches(&s), reference(&pc, &sc), "{:?} vs {:?}", p, s);
        }

        /// A value matches every glob made from it by turning runs of it into `*`.
        #[test]
        fn a_value_matches_its_generalisations(
            s in "[a-z.\\-/]{0,12}",
            cuts in proptest::collection::vec((0usize..13, 0usize..13), 0..4),
        ) {
            let mut keep = vec![true; s.len()];
            for (a, b) in cuts {
                let (a, b) = (a.min(b).min(s.len()), a.max(b).min(s.len()));
                keep[a..b].iter_mut().for_each(|k| *k = false);
            }
            let mut pattern = String::new();
            for (i, c) in s.chars().enumerate() {
                if keep[i] {
                    pattern.push(c);
                } else if !pattern.ends_with('*') {
                    pattern.push('*');
                }
            }
            prop_assert!(Glob::new(&pattern).matches(&s), "{:?} !~ {:?}", pattern, s);
        }
    }
}
