//! What a real OTLP collector (rotel) receives for requests to Gemini, Vertex
//! AI and Bedrock providers: each upstream attempt's CLIENT span names its
//! provider with the OpenTelemetry GenAI value (`gcp.gemini`,
//! `gcp.vertex_ai`, `aws.bedrock`) and carries the usage the provider
//! reported.

use gateway_tests::client::{chat_body, TestClient};
use gateway_tests::collector::{Collector, Span};
use gateway_tests::config::{AwsAuth, Config, GcpAuth, Provider, Route, Telemetry};
use gateway_tests::harness::Gateway;
use gateway_tests::mock_upstream::{converse_usage, gemini_usage, MockUpstream, GEMINI_API_KEY};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);
const CHUNKS: usize = 8;

/// Three routes by model (`g-*`, `v-*`, `b-*`) to a gemini, a vertex-ai and a
/// bedrock provider at `mock`, traces to `col`.
fn config(mock: &MockUpstream, col: &Collector) -> String {
    let otlp = json!({"endpoint": col.grpc_endpoint(), "protocol": "grpc",
        "traces": true, "logs": true, "sampling_ratio": 1.0});
    Config::new()
        .provider(
            Provider::gemini("gem", &mock.gemini_base_url())
                .token(GEMINI_API_KEY)
                .map("*", "gemini-2.5-flash"),
        )
        .provider(
            Provider::vertex(
                "vtx",
                &mock.vertex_base_url(),
                "gw-test-project",
                "us-central1",
            )
            .gcp(GcpAuth::test_account(&mock.token_url()))
            .map("*", "gemini-2.5-pro"),
        )
        .provider(
            Provider::bedrock("br", &mock.bedrock_base_url(), "us-east-1")
                .aws(AwsAuth::test())
                .map("*", "us.amazon.nova-micro-v1:0"),
        )
        .route(Route::new("gemini", "/v1").model("g-*").upstream("gem"))
        .route(Route::new("vertex", "/v1").model("v-*").upstream("vtx"))
        .route(Route::new("bedrock", "/v1").model("b-*").upstream("br"))
        .telemetry(Telemetry::new().otlp(otlp))
        .yaml()
}

/// Sends one chat of `model` in trace `trace`; returns the upstream request's body.
async fn chat(gw: &Gateway, mock: &MockUpstream, model: &str, trace: &str) -> serde_json::Value {
    let r = TestClient::new()
        .post_json_with(
            &format!("{}/v1/chat/completions", gw.url()),
            &chat_body(model, "How are the spans named?"),
            &[("traceparent", &format!("00-{trace}-b7ad6b7169203331-01"))],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    mock.last_request().unwrap().body
}

/// The CLIENT span of `trace`.
async fn client_span(col: &Collector, trace: &str) -> Span {
    let t = trace.to_string();
    let spans = col
        .wait_spans(WAIT, |s| {
            s.iter()
                .any(|x| x.trace_id == t && x.kind == "SPAN_KIND_CLIENT")
        })
        .await;
    spans
        .into_iter()
        .find(|x| x.trace_id == trace && x.kind == "SPAN_KIND_CLIENT")
        .unwrap_or_else(|| panic!("no CLIENT span of {trace}:\n{}", col.output()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_spans_name_gemini_vertex_and_bedrock() {
    let col = Collector::start().await;
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(&config(&mock, &col)).await;
    let cases = [
        (
            "g-1",
            "0af7651916cd43dd8448eb211c800001",
            "gcp.gemini",
            "gemini-2.5-flash",
        ),
        (
            "v-1",
            "0af7651916cd43dd8448eb211c800002",
            "gcp.vertex_ai",
            "gemini-2.5-pro",
        ),
        (
            "b-1",
            "0af7651916cd43dd8448eb211c800003",
            "aws.bedrock",
            "us.amazon.nova-micro-v1:0",
        ),
    ];
    for (model, trace, system, upstream_model) in cases {
        let body = chat(&gw, &mock, model, trace).await;
        let (input, output) = match system {
            "aws.bedrock" => {
                let u = converse_usage(&body, CHUNKS);
                (u.prompt_total(), u.output_tokens)
            }
            _ => {
                let u = gemini_usage(&body, CHUNKS);
                (u.prompt_token_count, u.candidates_token_count)
            }
        };
        let span = client_span(&col, trace).await;
        assert_eq!(span.attr("gen_ai.provider.name"), Some(system), "{span:#?}");
        assert_eq!(
            span.attr("gen_ai.request.model"),
            Some(upstream_model),
            "{span:#?}"
        );
        assert_eq!(
            span.attr("gen_ai.usage.input_tokens"),
            Some(input.to_string().as_str()),
            "{span:#?}"
        );
        assert_eq!(
            span.attr("gen_ai.usage.output_tokens"),
            Some(output.to_string().as_str()),
            "{span:#?}"
        );
    }
}
