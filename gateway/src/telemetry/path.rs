//! gjson-style paths into JSON, for `ai_log.attributes`: keys separated by dots
//! (`\.` for a dot inside a key), array indexes (`choices.0`), `@reverse`
//! (the array backwards, or an object unchanged), `#` for an array's length, and
//! `#.<rest>` for `<rest>` of every element (`choices.#.message.content`).

use serde_json::Value;
use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    /// an array index (also tried as an object key)
    Index(usize),
    Reverse,
    /// `#`: the length, or with more steps after it, each element
    Each,
}

/// A compiled path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    steps: Vec<Step>,
}

impl Path {
    pub fn parse(s: &str) -> Result<Path, String> {
        if s.is_empty() {
            return Err("an empty path".into());
        }
        let mut parts = Vec::new();
        let mut cur = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(n) => cur.push(n),
                    None => return Err("ends with a lone backslash".into()),
                },
                '.' => parts.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        parts.push(cur);
        let mut steps = Vec::with_capacity(parts.len());
        for p in parts {
            if p.is_empty() {
                return Err("a path with an empty step (two dots, or a dot at an end)".into());
            }
            steps.push(match p.as_str() {
                "@reverse" => Step::Reverse,
                "#" => Step::Each,
                _ if p.starts_with('@') => {
                    return Err("an unknown @modifier (only @reverse is known)".into())
                }
                _ => match p.parse::<usize>() {
                    Ok(i) if !p.starts_with('+') => Step::Index(i),
                    _ => Step::Key(p),
                },
            });
        }
        Ok(Path { steps })
    }

    /// The value at this path in `v`, if any.
    pub fn get<'a>(&self, v: &'a Value) -> Option<Cow<'a, Value>> {
        walk(&self.steps, Cow::Borrowed(v))
    }
}

fn walk<'a>(steps: &[Step], v: Cow<'a, Value>) -> Option<Cow<'a, Value>> {
    let Some((step, rest)) = steps.split_first() else {
        return Some(v);
    };
    match step {
        Step::Key(k) => {
            child(v, |v| v.as_object().and_then(|o| o.get(k))).and_then(|c| walk(rest, c))
        }
        Step::Index(i) => child(v, |v| match v {
            Value::Array(a) => a.get(*i),
            Value::Object(o) => o.get(&i.to_string()),
            _ => None,
        })
        .and_then(|c| walk(rest, c)),
        Step::Reverse => match &*v {
            Value::Array(a) => {
                let rev: Vec<Value> = a.iter().rev().cloned().collect();
                walk(rest, Cow::Owned(Value::Array(rev)))
            }
            Value::Object(_) => walk(rest, v),
            _ => None,
        },
        Step::Each => {
            let a = v.as_array()?;
            if rest.is_empty() {
                return Some(Cow::Owned(Value::from(a.len())));
            }
            let each: Vec<Value> = a
                .iter()
                .filter_map(|e| walk(rest, Cow::Borrowed(e)).map(Cow::into_owned))
                .collect();
            Some(Cow::Owned(Value::Array(each)))
        }
    }
}

/// A child of `v` found by `f`, borrowed when `v` is, owned otherwise.
fn child<'a>(v: Cow<'a, Value>, f: impl Fn(&Value) -> Option<&Value>) -> Option<Cow<'a, Value>> {
    match v {
        Cow::Borrowed(b) => f(b).map(Cow::Borrowed),
        Cow::Owned(o) => f(&o).cloned().map(Cow::Owned),
    }
}

/// How a JSON value is written as an attribute: strings as they are, `null` as
/// nothing, anything else as JSON text.
pub fn to_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(path: &str, v: &Value) -> Option<Value> {
        Path::parse(path).unwrap().get(v).map(Cow::into_owned)
    }

    #[test]
    fn keys_indexes_reverse_and_length() {
        let v = json!({
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
                {"role": "user", "content": "and now?"}
            ],
            "a.b": {"c": 1},
            "obj": {"0": "zero"}
        });
        assert_eq!(at("messages.0.role", &v), Some(json!("system")));
        assert_eq!(
            at("messages.@reverse.0.content", &v),
            Some(json!("and now?"))
        );
        assert_eq!(at("messages.#", &v), Some(json!(3)));
        assert_eq!(
            at("messages.#.role", &v),
            Some(json!(["system", "user", "user"]))
        );
        assert_eq!(at("a\\.b.c", &v), Some(json!(1)));
        assert_eq!(at("obj.0", &v), Some(json!("zero")));
        assert_eq!(at("messages.9", &v), None);
        assert_eq!(at("nope.x", &v), None);
        assert_eq!(at("obj.@reverse.0", &v), Some(json!("zero")));
    }

    #[test]
    fn bad_paths_are_refused() {
        assert!(Path::parse("").is_err());
        assert!(Path::parse("a..b").is_err());
        assert!(Path::parse("a.").is_err());
        assert!(Path::parse("a.@sort").is_err());
        assert!(Path::parse("a\\").is_err());
    }

    #[test]
    fn text_of_values() {
        assert_eq!(to_text(&json!("x")), Some("x".into()));
        assert_eq!(to_text(&json!(3)), Some("3".into()));
        assert_eq!(to_text(&json!({"a": 1})), Some("{\"a\":1}".into()));
        assert_eq!(to_text(&Value::Null), None);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Map};

    /// JSON values with keys that need escaping (dots, backslashes), keys
    /// that look like indexes, and `@`/`#` inside keys.
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-z .]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 40, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec(("[a-c.\\\\0-2#@]{1,4}", inner), 0..5)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
            ]
        })
    }

    /// A step written as a path step: a key escaped (`\.` and `\\`).
    fn escape(key: &str) -> String {
        key.replace('\\', "\\\\").replace('.', "\\.")
    }

    /// A walk from the root of `v` by `choices`: the path written for it and
    /// the value it ends on. Keys that would read as something else (an
    /// index, `#`, `@...`) end the walk.
    fn walk_into(v: &Value, choices: &[usize]) -> (Vec<String>, Value) {
        let mut steps = Vec::new();
        let mut at = v.clone();
        for &c in choices {
            let next = match &at {
                Value::Array(a) if !a.is_empty() => {
                    let i = c % a.len();
                    steps.push(i.to_string());
                    a[i].clone()
                }
                Value::Object(o) if !o.is_empty() => {
                    let (k, child) = o.iter().nth(c % o.len()).unwrap();
                    if k.parse::<usize>().is_ok() || k == "#" || k.starts_with('@') {
                        break;
                    }
                    steps.push(escape(k));
                    child.clone()
                }
                _ => break,
            };
            at = next;
        }
        (steps, at)
    }

    proptest! {
        #![proptest_config(crate::prop::cases(256))]

        /// The path of any walk into a value finds the value walked to.
        #[test]
        fn a_walk_is_found_again(v in value(), choices in prop::collection::vec(any::<usize>(), 0..6)) {
            let v = json!({ "r": v });
            let mut choices = choices;
            choices.insert(0, 0);
            let (steps, want) = walk_into(&v, &choices);
            let path = Path::parse(&steps.join(".")).unwrap();
            prop_assert_eq!(path.get(&v).map(Cow::into_owned), Some(want));
        }

        /// `#` is an array's length, `@reverse` its elements backwards (twice:
        /// the array), `#.<rest>` `<rest>` of each element that has it.
        #[test]
        fn length_reverse_and_each(items in prop::collection::vec(value(), 0..6)) {
            let v = json!({ "a": items.clone() });
            let get = |p: &str| Path::parse(p).unwrap().get(&v).map(Cow::into_owned);
            prop_assert_eq!(get("a.#"), Some(json!(items.len())));
            let mut rev = items.clone();
            rev.reverse();
            prop_assert_eq!(get("a.@reverse"), Some(Value::Array(rev.clone())));
            prop_assert_eq!(get("a.@reverse.@reverse"), Some(Value::Array(items.clone())));
            if let Some(last) = items.last() {
                prop_assert_eq!(get("a.@reverse.0"), Some(last.clone()));
            }
            let each: Vec<Value> = items.iter().filter_map(|e| e.get("b").cloned()).collect();
            prop_assert_eq!(get("a.#.b"), Some(Value::Array(each)));
        }

        /// Any path text parses or is refused with a reason, and a parsed path
        /// evaluates on any value without a panic.
        #[test]
        fn any_path_text_is_safe(p in "[a-c0-9.\\\\#@ ]{0,12}|@reverse|.{0,8}", v in value()) {
            if let Ok(path) = Path::parse(&p) {
                let _ = path.get(&v);
            }
        }
    }
}
