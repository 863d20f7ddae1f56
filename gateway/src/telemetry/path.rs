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
