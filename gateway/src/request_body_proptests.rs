//! Properties of the body scanner (`request_body.rs`): any bytes are a body or
//! a 400; duplicates of the fields the gateway reads are refused however their
//! keys are spelled; the depth limit agrees with the structure; a rewrite
//! changes exactly the fields it is asked to.

use super::*;
use proptest::prelude::*;
use serde_json::{json, Value};

/// Top-level keys: those the gateway reads, others, and the same spelled with
/// a JSON escape (`"\u006dodel"` is `"model"`).
fn key() -> impl Strategy<Value = (String, String)> {
    prop::sample::select(vec![
        "model",
        "stream",
        "stream_options",
        "max_tokens",
        "n",
        "messages",
        "input",
        "x",
        "temperature",
    ])
    .prop_flat_map(|k| {
        let escaped = format!("\\u{:04x}{}", u32::from(k.as_bytes()[0]), &k[1..]);
        (
            Just(k.to_string()),
            prop_oneof![Just(k.to_string()), Just(escaped)],
        )
    })
}

/// Field values: what a client sends for those keys, and the odd shapes.
fn field_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<u32>().prop_map(Value::from),
        "[a-z\\-\"\\\\{}\\[\\]\u{7}é]{0,10}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof!["[a-z_]{1,6}", Just("include_usage".to_string())],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object written field by field (duplicates kept, keys as spelled).
fn body(fields: &[((String, String), Value)]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|((_, spelled), v)| format!("\"{spelled}\":{v}"))
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// `depth` arrays and objects nested in turn (`turns` picks which), each
/// level with a string that holds brackets, quotes and escapes beside it.
fn nested(depth: usize, turns: &[bool], noise: &str) -> String {
    let mut s = String::from("1");
    for i in 0..depth {
        let n = serde_json::to_string(noise).unwrap_or_default();
        s = match turns[i % turns.len()] {
            true => format!("[{n},{s}]"),
            false => format!("{{\"k{i}\":{n},\"v\":{s}}}"),
        };
    }
    s
}

proptest! {
    #![proptest_config(crate::prop::cases(256))]

    /// Any bytes: a body or a 400, never a panic.
    #[test]
    fn any_bytes_are_a_body_or_a_400(bytes in prop::collection::vec(prop_oneof![
        4 => prop::sample::select(b"{}[]\":,\\ tfnu0123model".to_vec()),
        1 => any::<u8>(),
    ], 0..200)) {
        if let Err(e) = ClientBody::parse(&bytes) {
            prop_assert_eq!(e.status, http::StatusCode::BAD_REQUEST);
        }
    }

    /// A body whose fields the gateway reads come once is read as JSON
    /// parsers read it (the last of a duplicate field); a second copy of one
    /// of them is refused, whatever the escapes in its key.
    #[test]
    fn duplicates_are_refused_and_the_rest_is_read(
        fields in prop::collection::vec((key(), field_value()), 0..8),
    ) {
        let text = body(&fields);
        let dup = READ_FIELDS.iter().any(|f| fields.iter().filter(|((k, _), _)| k == f).count() > 1);
        let parsed = ClientBody::parse(text.as_bytes());
        if dup {
            let e = parsed.err().map(|e| e.code);
            prop_assert_eq!(e, Some("duplicate_key"), "{}", text);
            return Ok(());
        }
        let last = |name: &str| fields.iter().rev().find(|((k, _), _)| k == name).map(|(_, v)| v.clone());
        let model_ok = matches!(last("model"), None | Some(Value::String(_)));
        let model_text = last("model").and_then(|m| m.as_str().map(str::to_string));
        let bad_model = !model_ok || model_text.as_deref().is_some_and(|m| m.len() > MAX_MODEL_LEN || m.chars().any(char::is_control));
        match parsed {
            Err(e) if bad_model => prop_assert_eq!(e.code, "invalid_model"),
            Err(e) => prop_assert!(false, "{}: {}", text, e.message),
            Ok(b) => {
                prop_assert!(!bad_model, "{}", text);
                prop_assert_eq!(b.model.clone(), model_text.filter(|m| !m.is_empty()));
                prop_assert_eq!(b.stream, last("stream") == Some(Value::Bool(true)));
                let usage = last("stream_options").and_then(|o| o.get("include_usage").cloned());
                prop_assert_eq!(b.include_usage, usage == Some(Value::Bool(true)));
                for ((k, _), _) in &fields {
                    let got: Option<Value> = b.get(k).map(|v| serde_json::from_str(v.get()).unwrap());
                    prop_assert_eq!(got, last(k));
                }
            }
        }
    }

    /// Nesting deeper than the limit is refused (400 `invalid_json`) and up
    /// to it accepted, wherever the brackets and escapes in strings are.
    #[test]
    fn the_depth_limit_follows_the_structure(
        depth in 118usize..140,
        turns in prop::collection::vec(any::<bool>(), 1..5),
        noise in "[\\[\\]{}\"\\\\a]{0,6}",
    ) {
        let text = format!("{{\"model\":\"m\",\"messages\":{}}}", nested(depth, &turns, &noise));
        // the body's own object is one level
        let too_deep = depth + 1 > MAX_DEPTH;
        match ClientBody::parse(text.as_bytes()) {
            Ok(_) => prop_assert!(!too_deep, "depth {}", depth + 1),
            Err(e) => {
                prop_assert!(too_deep, "depth {}: {}", depth + 1, e.message);
                prop_assert_eq!(e.code, "invalid_json");
            }
        }
    }

    /// A rewrite sets the model where the body has one, puts each option in
    /// place of the client's field of that name, adds `include_usage` when
    /// asked, and leaves every other field as it was, in order.
    #[test]
    fn a_rewrite_changes_only_what_it_is_asked(
        fields in prop::collection::vec((key(), field_value()), 0..6),
        model in "[a-z\\-\"é]{1,8}",
        options in prop::collection::btree_map(prop::sample::select(vec!["x", "temperature", "n", "seed"]), any::<u16>(), 0..3),
        add_usage: bool,
    ) {
        let text = body(&fields);
        let Ok(b) = ClientBody::parse(text.as_bytes()) else { return Ok(()); };
        let options: Vec<(String, Box<RawValue>)> = options
            .into_iter()
            .map(|(k, v)| (k.to_string(), RawValue::from_string(v.to_string()).unwrap()))
            .collect();
        let out = b.rewrite(&Bytes::from(text.clone()), Some(&model), &options, add_usage);
        let got: Vec<(String, Value)> = serde_json::from_slice::<Fields<'_>>(&out)
            .unwrap()
            .0
            .into_iter()
            .map(|(k, v)| (k.into_owned(), serde_json::from_str(v.get()).unwrap()))
            .collect();
        let mut want: Vec<(String, Value)> = fields
            .iter()
            .filter(|((k, _), _)| !options.iter().any(|(o, _)| o == k))
            .map(|((k, _), v)| match (k.as_str(), v) {
                ("model", _) => (k.clone(), json!(model)),
                ("stream_options", v) if add_usage => {
                    let mut m = v.as_object().cloned().unwrap_or_default();
                    m.insert("include_usage".into(), json!(true));
                    (k.clone(), Value::Object(m))
                }
                _ => (k.clone(), v.clone()),
            })
            .collect();
        for (k, v) in &options {
            want.push((k.clone(), serde_json::from_str(v.get()).unwrap()));
        }
        if add_usage && !fields.iter().any(|((k, _), _)| k == "stream_options") {
            want.push(("stream_options".into(), json!({"include_usage": true})));
        }
        let unchanged = b.model.as_deref() == Some(model.as_str()) && options.is_empty() && !add_usage;
        if unchanged {
            prop_assert_eq!(&out[..], text.as_bytes(), "the same bytes when nothing changes");
        } else {
            prop_assert_eq!(got, want);
        }
    }
}
