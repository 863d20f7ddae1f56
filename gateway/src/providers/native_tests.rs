//! Tests of `native.rs`: URLs of each call, and the validation of the
//! gemini, vertex-ai and bedrock keys.

use super::*;
use crate::providers::{ClientCache, Provider};
use std::rc::Rc;

/// The problems of one provider `yaml` read with environment `env`.
fn problems(yaml: &str, env: &[(&'static str, &'static str)]) -> (Option<Provider>, Vec<String>) {
    let env = env.to_vec();
    let lookup = Rc::new(move |n: &str| {
        env.iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| v.to_string())
    });
    let raw = crate::config::parse_text_in("t", &format!("providers:\n  - {yaml}\n"), lookup)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut p = crate::config::validate::test_problems();
    let prov = Provider::build(
        &raw.providers[0],
        "providers[0]",
        &ClientCache::default(),
        &mut p,
    );
    (prov, p.errors.iter().map(|e| e.to_string()).collect())
}

#[test]
fn bedrock_takes_region_and_keys_from_the_environment() {
    let env = [
        ("AWS_REGION", "eu-west-3"),
        ("AWS_ACCESS_KEY_ID", "AKIDENV"),
        ("AWS_SECRET_ACCESS_KEY", "env-secret"),
    ];
    let (prov, errors) = problems("{ id: b, type: bedrock }", &env);
    assert!(errors.is_empty(), "{errors:?}");
    let prov = prov.unwrap();
    assert_eq!(
        prov.base_url,
        "https://bedrock-runtime.eu-west-3.amazonaws.com"
    );
    assert!(matches!(prov.credentials, Credentials::Aws(_)));
    assert_eq!(&*prov.host, "bedrock-runtime.eu-west-3.amazonaws.com");
}

#[test]
fn bedrock_without_region_or_credentials_names_both() {
    let (_, errors) = problems("{ id: b, type: bedrock }", &[]);
    assert!(
        errors.iter().any(|e| e.contains("providers[0].region")),
        "{errors:?}"
    );
    let (_, errors) = problems("{ id: b, type: bedrock, region: us-east-1 }", &[]);
    assert!(
        errors.iter().any(|e| e.contains("providers[0].auth.aws")),
        "{errors:?}"
    );
}

#[test]
fn keys_of_another_type_are_refused() {
    let (_, errors) = problems(
        "{ id: g, type: gemini, api_tokens: [k], region: us-east-1, project: p, auth: { aws: { access_key_id: a, secret_access_key: s } } }",
        &[],
    );
    for key in ["region", "project", "auth.aws"] {
        assert!(
            errors
                .iter()
                .any(|e| e.contains(&format!("providers[0].{key}"))),
            "{key}: {errors:?}"
        );
    }
    let (_, errors) = problems(
        "{ id: b, type: bedrock, region: us-east-1, api_tokens: [k], auth: { aws: { access_key_id: a, secret_access_key: s } } }",
        &[],
    );
    assert!(
        errors.iter().any(|e| e.contains("providers[0].api_tokens")),
        "{errors:?}"
    );
}

#[test]
fn gemini_on_the_openai_compatibility_url_points_at_gemini_openai() {
    let (_, errors) = problems(
        "{ id: g, type: gemini, api_tokens: [k], base_url: \"https://generativelanguage.googleapis.com/v1beta/openai/\" }",
        &[],
    );
    assert!(
        errors.iter().any(|e| e.contains("gemini-openai")),
        "{errors:?}"
    );
    let (prov, errors) = problems("{ id: g, type: gemini-openai, api_tokens: [k] }", &[]);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        prov.unwrap().base_url,
        "https://generativelanguage.googleapis.com/v1beta/openai"
    );
}

const SA_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/gcp-test-service-account.json"
);

#[test]
fn vertex_reads_its_service_account_and_places_its_urls() {
    let (prov, errors) = problems(
        &format!("{{ id: v, type: vertex-ai, location: europe-west4, auth: {{ gcp: {{ service_account_file: {SA_FILE} }} }} }}"),
        &[],
    );
    assert!(errors.is_empty(), "{errors:?}");
    let prov = prov.unwrap();
    assert_eq!(
        prov.base_url,
        "https://europe-west4-aiplatform.googleapis.com/v1"
    );
    assert!(matches!(prov.credentials, Credentials::Gcp(_)));
    let t = Target {
        endpoint: Endpoint::ChatCompletions,
        stream: false,
        batch: false,
    };
    assert_eq!(
        prov.uri(t, "gemini-2.0-flash").unwrap(),
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/gw-test-project/locations/europe-west4/publishers/google/models/gemini-2.0-flash:generateContent",
        "the project is the service account's"
    );
}

#[test]
fn a_broken_service_account_is_named_without_its_text() {
    let (_, errors) = problems(
        "{ id: v, type: vertex-ai, project: p, auth: { gcp: { service_account_json: '{\"type\":\"service_account\",\"client_email\":\"a@b\",\"private_key\":\"SECRET-NOT-A-KEY\"}' } } }",
        &[],
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("providers[0].auth.gcp.service_account_json")),
        "{errors:?}"
    );
    assert!(
        !errors.iter().any(|e| e.contains("SECRET-NOT-A-KEY")),
        "{errors:?}"
    );
}

#[test]
fn vertex_takes_the_service_account_the_environment_names() {
    let (prov, errors) = problems(
        "{ id: v, type: vertex-ai }",
        &[("GOOGLE_APPLICATION_CREDENTIALS", SA_FILE)],
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert!(matches!(prov.unwrap().credentials, Credentials::Gcp(_)));
}

#[test]
fn vertex_needs_a_service_account_and_a_generation_probe() {
    let (_, errors) = problems(
        "{ id: v, type: vertex-ai, project: p, checks: { active: { interval_s: 5 } } }",
        &[],
    );
    assert!(
        errors.iter().any(|e| e.contains("providers[0].auth.gcp")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("providers[0].checks.active.generate")),
        "{errors:?}"
    );
}

fn call(endpoint: Endpoint, stream: bool) -> Target {
    Target {
        endpoint,
        stream,
        batch: false,
    }
}

#[test]
fn gemini_urls_name_model_and_method() {
    let u = |c, m| url(Flavor::Gemini, "https://g/v1beta", "", c, m).unwrap();
    assert_eq!(
        u(call(Endpoint::ChatCompletions, false), "gemini-2.0-flash").unwrap(),
        "https://g/v1beta/models/gemini-2.0-flash:generateContent"
    );
    assert_eq!(
        u(call(Endpoint::Messages, true), "models/gemini-2.5-pro").unwrap(),
        "https://g/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    );
    let batch = Target {
        endpoint: Endpoint::Embeddings,
        stream: false,
        batch: true,
    };
    assert_eq!(
        u(batch, "text-embedding-004").unwrap(),
        "https://g/v1beta/models/text-embedding-004:batchEmbedContents"
    );
    for bad in ["a/b", "..", "x y", "", "m?alt=json", "m@1"] {
        assert!(
            u(call(Endpoint::ChatCompletions, false), bad).is_err(),
            "{bad}"
        );
    }
    assert!(u(call(Endpoint::Completions, false), "m").is_err());
}

#[test]
fn vertex_urls_pick_the_publisher_by_model() {
    let u = |c, m| {
        url(
            Flavor::Vertex,
            "https://v/v1",
            "/projects/p/locations/l",
            c,
            m,
        )
        .unwrap()
    };
    assert_eq!(
        u(call(Endpoint::ChatCompletions, true), "gemini-2.0-flash").unwrap(),
        "https://v/v1/projects/p/locations/l/publishers/google/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(
        u(call(Endpoint::Messages, false), "claude-sonnet-4@20250514").unwrap(),
        "https://v/v1/projects/p/locations/l/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict"
    );
    assert_eq!(
        u(call(Endpoint::Messages, true), "claude-3-5-haiku@20241022").unwrap(),
        "https://v/v1/projects/p/locations/l/publishers/anthropic/models/claude-3-5-haiku@20241022:streamRawPredict"
    );
    assert!(u(call(Endpoint::Embeddings, false), "m").is_err());
    assert!(u(call(Endpoint::ChatCompletions, false), "../x").is_err());
}

#[test]
fn bedrock_urls_encode_ids_and_arns_as_one_segment() {
    let u = |c, m| url(Flavor::Bedrock, "https://b", "", c, m).unwrap();
    assert_eq!(
        u(
            call(Endpoint::ChatCompletions, false),
            "anthropic.claude-3-5-sonnet-20240620-v1:0"
        )
        .unwrap(),
        "https://b/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    );
    assert_eq!(
        u(call(Endpoint::Messages, true), "arn:aws:bedrock:us-east-1:123:inference-profile/us.meta.llama3").unwrap(),
        "https://b/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123%3Ainference-profile%2Fus.meta.llama3/converse-stream"
    );
    assert!(u(call(Endpoint::Embeddings, false), "m").is_err());
    assert!(url(
        Flavor::OpenAi,
        "x",
        "",
        call(Endpoint::Embeddings, false),
        "m"
    )
    .is_none());
}
