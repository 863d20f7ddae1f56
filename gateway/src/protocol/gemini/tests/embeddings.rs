//! Embeddings, both ways.

use super::super::{embeddings_to_gemini, embeddings_to_openai};
use super::{json, opts, read};
use serde_json::value::RawValue;
use serde_json::Value;

fn to_gemini(body: &str, options: &[(String, Box<RawValue>)]) -> (Value, bool, Vec<String>) {
    let (t, batch) =
        embeddings_to_gemini(body.as_bytes(), &opts(options)).unwrap_or_else(|r| panic!("{r}"));
    (serde_json::from_slice(&t.body).unwrap(), batch, t.warnings)
}

#[test]
fn one_text_is_an_embed_content_request() {
    let (got, batch, warnings) = to_gemini(
        r#"{"model":"text-embedding-3-small","input":"hello \"world\"","dimensions":256,"encoding_format":"float"}"#,
        &[],
    );
    assert!(!batch);
    assert_eq!(
        got,
        json(r#"{"content":{"parts":[{"text":"hello \"world\""}]},"outputDimensionality":256}"#)
    );
    assert_eq!(warnings, Vec::<String>::new());
}

#[test]
fn a_list_of_texts_is_a_batch_each_naming_the_model() {
    let options = vec![(
        "taskType".to_string(),
        RawValue::from_string(r#""RETRIEVAL_DOCUMENT""#.into()).unwrap(),
    )];
    let (got, batch, _) = to_gemini(r#"{"input":["a","b"],"dimensions":8}"#, &options);
    assert!(batch);
    assert_eq!(
        got,
        json(
            r#"{"requests":[
            {"model":"models/gemini-x","content":{"parts":[{"text":"a"}]},"outputDimensionality":8,"taskType":"RETRIEVAL_DOCUMENT"},
            {"model":"models/gemini-x","content":{"parts":[{"text":"b"}]},"outputDimensionality":8,"taskType":"RETRIEVAL_DOCUMENT"}]}"#
        )
    );
}

#[test]
fn provider_options_over_one_request() {
    let options = vec![(
        "taskType".to_string(),
        RawValue::from_string(r#""CLUSTERING""#.into()).unwrap(),
    )];
    let (got, _, _) = to_gemini(r#"{"input":"a"}"#, &options);
    assert_eq!(got["taskType"], "CLUSTERING");
}

#[test]
fn dropped_embedding_fields_are_named() {
    let (_, _, warnings) = to_gemini(
        r#"{"input":"a","user":"u","encoding_format":"base64"}"#,
        &[],
    );
    assert!(
        warnings.iter().any(|w| w.starts_with("user")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.starts_with("encoding_format")),
        "{warnings:?}"
    );
}

#[test]
fn one_embedding_as_an_openai_list() {
    let mut r = read();
    r.model = Some("text-embedding-004".into());
    let got: Value = serde_json::from_slice(&embeddings_to_openai(
        br#"{"embedding":{"values":[0.25,-1.5e-3,3]}}"#,
        &mut r,
    ))
    .unwrap();
    assert_eq!(
        got,
        json(
            r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.25,-1.5e-3,3]}],
            "model":"text-embedding-004","usage":{"prompt_tokens":0,"total_tokens":0}}"#
        )
    );
    assert_eq!(r.usage, None, "Gemini gave no usage: the gateway estimates");
}

#[test]
fn batch_embeddings_in_order_with_their_usage() {
    let mut r = read();
    let got: Value = serde_json::from_slice(&embeddings_to_openai(
        br#"{"embeddings":[{"values":[1]},{"values":[2]}],"usageMetadata":{"promptTokenCount":6,"totalTokenCount":6}}"#,
        &mut r,
    ))
    .unwrap();
    assert_eq!(
        got["data"][1],
        json(r#"{"object":"embedding","index":1,"embedding":[2]}"#)
    );
    assert_eq!(got["model"], "unknown");
    assert_eq!(
        got["usage"],
        json(r#"{"prompt_tokens":6,"total_tokens":6}"#)
    );
    assert_eq!(r.usage.unwrap().prompt_tokens, 6);
}

#[test]
fn an_embeddings_body_of_another_shape_comes_back_as_it_is() {
    let body = br#"{"predictions":[]}"#;
    assert_eq!(&embeddings_to_openai(body, &mut read())[..], body);
}
