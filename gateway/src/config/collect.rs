//! Every problem of a config text in one pass. Deserializes the tree; at each
//! error it records the problem (key, reason, line) and repairs the tree where the
//! error was: an unknown or repeated key is dropped, a wrong value is removed (its
//! default applies) or, where the key is required or sits in a list, replaced by a
//! placeholder that reads as a zero (or by a plain `0` when the type refuses that
//! zero, as a decimal does; only then by a placeholder for the value around
//! it). Then it tries again, a bounded number of
//! times. What it returns is the repaired value, so the validation can still run
//! and report its own problems, less those about the repaired keys (`shadowed`).

use super::de::{De, ErrorKind};
use super::problems::Problem;
use super::tree::{Kind, Tree};
use serde::de::DeserializeOwned;
use std::collections::HashSet;

/// Each round repairs one node (and reads the text up to the next problem); a
/// file with more problems than this gets the first ones and a line saying so.
const MAX_ROUNDS: usize = 200;

pub struct Collected<T> {
    /// the value read from the repaired tree; None when the tree could not be
    /// repaired (e.g. the whole file is a list)
    pub value: Option<T>,
    pub problems: Vec<Problem>,
    /// key paths whose value is not the written one: validation problems about
    /// them (or about what contains them) are consequences, not news
    pub shadowed: Vec<String>,
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

pub fn collect<T: DeserializeOwned>(tree: &Tree) -> Collected<T> {
    let mut work = tree.clone();
    let mut out = Collected {
        value: None,
        problems: Vec::new(),
        shadowed: Vec::new(),
    };
    // keys this loop removed: when one turns out to be required, its "missing" is
    // not news
    let mut removed = HashSet::new();
    // stand-ins that became a plain `0` after a type refused the placeholder
    let mut zeroed = HashSet::new();
    for _ in 0..MAX_ROUNDS {
        let e = match T::deserialize(De::new(&work, work.root)) {
            Ok(v) => {
                out.value = Some(v);
                return out;
            }
            Err(e) => e,
        };
        let id = e.node.unwrap_or(work.root);
        let node = work.node(id);
        let (path, pos, parent) = (node.path.clone(), node.pos, node.parent);
        if work.is_placeholder(id) || zeroed.contains(&id) {
            // a type refused its zero. One that reads any value reads the
            // placeholder as a null (a decimal takes numbers and text, not a
            // null): give it a `0` once; then stand in for its container
            // instead (which would hide the rest of the container's problems)
            if zeroed.insert(id) {
                work.make_zero_number(id);
                continue;
            }
            match parent {
                Some(p) => {
                    out.shadowed.push(work.node(p).path.clone());
                    work.make_placeholder(p);
                    continue;
                }
                None => return out,
            }
        }
        if let ErrorKind::MissingField(field) = e.kind {
            let key = join(&path, field);
            if !removed.contains(&key) {
                out.problems.push(Problem {
                    key,
                    reason: e.to_string(),
                    pos: Some(pos),
                });
            }
            // the object stands with a zero in that key: its other checks would
            // be about the zero
            work.add_placeholder_field(id, field);
            out.shadowed.push(path);
            continue;
        }
        out.problems.push(Problem {
            key: path.clone(),
            reason: e.to_string(),
            pos: Some(pos),
        });
        let key_only = matches!(
            e.kind,
            ErrorKind::UnknownField { .. } | ErrorKind::DuplicateField(_)
        );
        let in_map = parent.is_some_and(|p| matches!(work.node(p).kind, Kind::Map(_)));
        if in_map {
            work.remove_entry(id);
            if !key_only {
                removed.insert(path.clone());
                out.shadowed.push(path);
            }
        } else if parent.is_some() {
            work.make_placeholder(id);
            out.shadowed.push(path);
        } else {
            // the file itself is of the wrong shape: nothing to repair
            return out;
        }
    }
    out.problems.push(Problem {
        key: String::new(),
        reason: "more problems than these; fix them and check again".into(),
        pos: None,
    });
    out.value = None;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(deny_unknown_fields)]
    struct Item {
        id: String,
        #[serde(default)]
        tokens: Vec<String>,
        #[serde(default)]
        kind: Option<Color>,
    }

    #[derive(Debug, Deserialize, PartialEq, Clone, Copy)]
    #[serde(rename_all = "snake_case")]
    enum Color {
        Red,
        Blue,
    }

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        #[serde(default)]
        items: Vec<Item>,
        #[serde(default)]
        port: u16,
        #[serde(default)]
        on: bool,
    }

    fn run(text: &str) -> Collected<Doc> {
        collect(&Tree::parse(text).unwrap())
    }

    fn lines(c: &Collected<Doc>) -> Vec<String> {
        c.problems.iter().map(|p| p.render("f")).collect()
    }

    #[test]
    fn a_valid_text_reads_as_serde_yaml_reads_it() {
        let c = run(
            "items:\n  - id: 0x10\n    tokens: [a, \"b\"]\n    kind: blue\nport: 0x1f\non: True\n",
        );
        assert!(c.problems.is_empty(), "{:?}", lines(&c));
        let d = c.value.unwrap();
        assert_eq!(d.items[0].id, "0x10");
        assert_eq!(d.items[0].tokens, ["a", "b"]);
        assert_eq!(d.items[0].kind, Some(Color::Blue));
        assert_eq!((d.port, d.on), (31, true));
    }

    #[test]
    fn every_problem_is_listed_with_key_and_line_and_no_value() {
        let text = "items:\n  - id: a\n    tokens: sk-live-SECRET123\n  - tokens: []\n    colour: red\n  - id: c\n    kind: purple-SECRET\nport: 70000\non: maybe-SECRET\n";
        let c = run(text);
        let all = lines(&c).join("\n");
        for expected in [
            "f: items[0].tokens: expected a list like [a, b], found a string",
            "(line 3 column 13)",
            "f: items[1].id: required, but not set (line 4 column 5)",
            "f: items[1].colour: unknown field `colour`, expected one of `id`, `tokens`, `kind` (line 5 column 5)",
            "f: items[2].kind: not a known value: expected `red` or `blue` (line 7 column 11)",
            "f: port: expected an integer from 0 to 65535, found an integer out of range (line 8 column 7)",
            "f: on: expected true or false, found a string (line 9 column 5)",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
        }
        assert_eq!(c.problems.len(), 6, "{all}");
        assert!(!all.contains("SECRET"), "{all}");
        // the repaired value keeps every list index
        let d = c.value.unwrap();
        assert_eq!(d.items.len(), 3);
        assert_eq!(d.items[2].id, "c");
        assert!(d.items[0].tokens.is_empty());
        for s in ["items[0].tokens", "items[1]", "items[2].kind", "port", "on"] {
            assert!(c.shadowed.iter().any(|x| x == s), "{s} in {:?}", c.shadowed);
        }
    }

    #[test]
    fn a_removed_required_key_is_reported_once() {
        let c = run("items:\n  - id: [x]\n");
        let all = lines(&c);
        assert_eq!(all.len(), 1, "{all:?}");
        assert!(
            all[0].starts_with("f: items[0].id: expected a string, found a list"),
            "{all:?}"
        );
    }

    #[test]
    fn wrong_items_in_a_list_keep_their_index() {
        let c = run("items: [5, {id: b}, [c]]\n");
        let all = lines(&c).join("\n");
        assert!(
            all.contains("items[0]: expected a mapping, found an integer"),
            "{all}"
        );
        assert!(
            all.contains("items[2]: expected a mapping, found a list"),
            "{all}"
        );
        let d = c.value.unwrap();
        assert_eq!(d.items.len(), 3);
        assert_eq!(d.items[1].id, "b");
    }

    #[test]
    fn duplicate_keys_point_at_the_second() {
        let c = run("port: 1\nport: 2\n");
        let all = lines(&c);
        assert_eq!(
            all,
            ["f: port: set twice in the same mapping (line 2 column 1)"]
        );
        assert_eq!(c.value.unwrap().port, 1);
    }

    #[test]
    fn json_is_read_too() {
        let c = run("{\"items\": [{\"id\": \"a\", \"tokens\": \"sk-live-SECRET\"}],\n \"port\": \"80\", \"x\": 1}");
        let all = lines(&c).join("\n");
        assert!(all.contains("f: items[0].tokens: expected a list like [a, b], found a string (line 1 column 34)"), "{all}");
        assert!(
            all.contains(
                "f: port: expected an integer from 0 to 65535, found a string (line 2 column 10)"
            ),
            "{all}"
        );
        assert!(all.contains("f: x: unknown field `x`"), "{all}");
        assert!(!all.contains("SECRET"), "{all}");
    }

    #[test]
    fn a_file_of_the_wrong_shape_is_one_problem() {
        let c = run("- a\n- b\n");
        assert!(c.value.is_none());
        assert_eq!(
            lines(&c),
            ["f: (top level): expected a mapping, found a list (line 1 column 1)"]
        );
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Priced {
        name: String,
        /// reads a number or a text (`deserialize_any`), never a null
        price: shared::money::Decimal,
    }

    #[derive(Debug, Deserialize)]
    struct Prices {
        items: Vec<Priced>,
    }

    #[test]
    fn a_bad_value_of_a_type_that_reads_any_value_hides_no_other_problem() {
        let text = "items:\n  - { name: a, price: 0.0000000001 }\n  - { name: [b], price: 2 }\n  - { name: c, price: -1 }\n";
        let c: Collected<Prices> = collect(&Tree::parse(text).unwrap());
        let all: Vec<String> = c.problems.iter().map(|p| p.render("f")).collect();
        assert_eq!(
            all,
            [
                "f: items[0].price: has more than 9 decimal places (line 2 column 23)",
                "f: items[1].name: expected a string, found a list (line 3 column 13)",
                "f: items[2].price: is negative (line 4 column 23)",
            ]
        );
        // the repaired list keeps its items, the bad prices read as 0
        let d = c.value.unwrap();
        assert_eq!(d.items.len(), 3);
        assert_eq!(
            (d.items[1].price.to_nanos(), d.items[2].name.as_str()),
            (Some(2_000_000_000), "c")
        );
        assert_eq!(d.items[0].price.to_nanos(), Some(0));
        assert!(c.shadowed.iter().all(|s| s != "items"), "{:?}", c.shadowed);
    }

    #[test]
    fn a_file_with_too_many_problems_says_so() {
        let text: String = (0..300).map(|i| format!("k{i}: 1\n")).collect();
        let c = run(&text);
        assert!(c.value.is_none());
        assert_eq!(c.problems.len(), MAX_ROUNDS + 1);
        assert!(c.problems[MAX_ROUNDS]
            .reason
            .starts_with("more problems than these"));
    }
}
