//! The encoder's export requests, decoded with the OTLP protos.

use super::*;
use crate::telemetry::trace_context::TraceCtx;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;
use shared::ai_log::{AccessLogLine, AiLog, Attempt};
use std::sync::Arc;

fn record(i: u64, spans: bool, log: bool) -> Record {
    let line = AccessLogLine {
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        request_id: format!("req-{i}"),
        response_code: 200,
        ai_log: AiLog {
            model: Some("m-large".into()),
            request_model: Some("m".into()),
            input_token: 10 + i,
            output_token: 3,
            total_token: 13 + i,
            status: 200,
            attempts: vec![Attempt {
                provider: "up1".into(),
                status: Some(200),
                ..Default::default()
            }],
            ..Default::default()
        },
        ..Default::default()
    };
    Record {
        line: Arc::new(line),
        trace: TraceCtx {
            trace_id: 0x1000 + u128::from(i),
            span_id: 0x2000 + i,
            parent: None,
            sampled: true,
            tracestate: None,
            b3: false,
        },
        spans,
        log,
        linked: false,
        start: SystemTime::now(),
        started: Instant::now(),
        end: Duration::from_millis(5),
        first_token: None,
        operation: "chat",
        attempts: vec![AttemptRec {
            provider: Arc::from("up1"),
            system: "openai",
            host: Arc::from("127.0.0.1:9"),
            span_id: 0x3000 + i,
            started: Instant::now(),
            ended: None,
            model: Some("m-large".into()),
            token: None,
            status: Some(200),
            reason: None,
        }],
        span_attrs: Default::default(),
        finish_reason: Some("stop".into()),
    }
}

fn attr<'a>(kvs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    kvs.iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

/// The ready requests of one signal, decoded (gRPC: after the 5-byte header,
/// whose length must match).
fn ready<M: Message + Default>(e: &mut Encoder, signal: Signal, grpc: bool) -> Vec<(M, u64)> {
    e.ready
        .iter()
        .filter(|(s, _, _)| *s as usize == signal as usize)
        .map(|(_, body, n)| {
            let body = match grpc {
                true => {
                    assert_eq!(body[0], 0, "not compressed");
                    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]);
                    assert_eq!(len as usize, body.len() - 5);
                    &body[5..]
                }
                false => &body[..],
            };
            (M::decode(body).unwrap(), *n)
        })
        .collect()
}

#[test]
fn records_added_one_by_one_make_requests_cut_at_max_bytes() {
    for grpc in [false, true] {
        let mut e = Encoder::new("svc", grpc, 8 * 1024);
        for i in 0..40 {
            e.add(&record(i, true, true), 7);
        }
        e.finish();
        let traces: Vec<(ExportTraceServiceRequest, u64)> = ready(&mut e, Signal::Traces, grpc);
        assert!(traces.len() > 1, "cut at max_bytes: {}", traces.len());
        let spans: Vec<_> = traces
            .iter()
            .flat_map(|(t, n)| {
                assert_eq!(t.resource_spans.len(), 1);
                let rs = &t.resource_spans[0];
                let res = &rs.resource.as_ref().unwrap().attributes;
                assert_eq!(
                    attr(res, "service.name"),
                    Some(&Value::StringValue("svc".into()))
                );
                let spans: Vec<_> = rs
                    .scope_spans
                    .iter()
                    .flat_map(|s| s.spans.clone())
                    .collect();
                assert_eq!(spans.len() as u64, *n, "count of spans in the request");
                spans
            })
            .collect();
        assert_eq!(
            spans.len(),
            80,
            "a SERVER and a CLIENT span per record, none lost"
        );
        for (i, pair) in spans.chunks(2).enumerate() {
            let (server, client) = (&pair[0], &pair[1]);
            assert_eq!(server.span_id, (0x2000 + i as u64).to_be_bytes());
            assert_eq!(client.parent_span_id, server.span_id);
            assert_eq!(client.name, "chat m-large");
            assert_eq!(
                attr(&client.attributes, "gen_ai.usage.input_tokens"),
                Some(&Value::IntValue(10 + i as i64))
            );
        }
        let logs: Vec<(ExportLogsServiceRequest, u64)> = ready(&mut e, Signal::Logs, grpc);
        let records: Vec<_> = logs
            .iter()
            .flat_map(|(l, n)| {
                let recs: Vec<_> = l.resource_logs[0]
                    .scope_logs
                    .iter()
                    .flat_map(|s| s.log_records.clone())
                    .collect();
                assert_eq!(recs.len() as u64, *n);
                recs
            })
            .collect();
        assert_eq!(records.len(), 40);
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.observed_time_unix_nano, 7);
            assert_eq!(
                attr(&r.attributes, "request_id"),
                Some(&Value::StringValue(format!("req-{i}")))
            );
        }
    }
}

#[test]
fn only_what_a_record_asks_for_and_nothing_when_empty() {
    let mut e = Encoder::new("svc", false, 2 * 1024 * 1024);
    e.finish();
    assert!(e.ready.is_empty(), "no records: no request");
    e.add(&record(1, false, true), 1);
    e.add(&record(2, false, true), 1);
    e.finish();
    assert_eq!(e.ready.len(), 1);
    assert!(matches!(e.ready[0].0, Signal::Logs));
    assert_eq!(e.ready[0].2, 2);
    e.ready.clear();
    e.add(&record(3, true, false), 1);
    e.finish();
    let t: Vec<(ExportTraceServiceRequest, u64)> = ready(&mut e, Signal::Traces, false);
    assert_eq!((e.ready.len(), t[0].1), (1, 2));
}

#[test]
fn prompt_cache_tokens_are_span_attributes_when_there_are_any() {
    let spans_of = |r: Record| {
        let mut e = Encoder::new("svc", false, 2 * 1024 * 1024);
        e.add(&r, 1);
        e.finish();
        let t: Vec<(ExportTraceServiceRequest, u64)> = ready(&mut e, Signal::Traces, false);
        t[0].0.resource_spans[0].scope_spans[0].spans.clone()
    };
    let mut r = record(1, true, false);
    let mut line = (*r.line).clone();
    line.ai_log.cached_tokens = 7;
    line.ai_log.cache_creation_tokens = 5;
    r.line = Arc::new(line);
    let spans = spans_of(r);
    let client = &spans[1];
    assert_eq!(
        attr(&client.attributes, "gen_ai.usage.cache_read.input_tokens"),
        Some(&Value::IntValue(7))
    );
    assert_eq!(
        attr(
            &client.attributes,
            "gen_ai.usage.cache_creation.input_tokens"
        ),
        Some(&Value::IntValue(5))
    );
    let none = spans_of(record(1, true, false));
    assert_eq!(
        attr(&none[1].attributes, "gen_ai.usage.cache_read.input_tokens"),
        None
    );
}

#[test]
fn cost_is_on_the_server_span_and_the_log_record() {
    let mut r = record(1, true, true);
    let mut line = (*r.line).clone();
    line.ai_log.cost = Some("0.000125".into());
    line.ai_log.cost_currency = Some("USD".into());
    line.ai_log.cost_model = Some("m-large".into());
    line.ai_log.cost_estimated = true;
    r.line = Arc::new(line);
    let mut e = Encoder::new("svc", false, 2 * 1024 * 1024);
    e.add(&r, 1);
    e.add(&record(2, true, true), 1);
    e.finish();
    let t: Vec<(ExportTraceServiceRequest, u64)> = ready(&mut e, Signal::Traces, false);
    let spans = &t[0].0.resource_spans[0].scope_spans[0].spans;
    let server = &spans[0].attributes;
    let text = |s: &str| Some(Value::StringValue(s.into()));
    assert_eq!(attr(server, "gateway.cost").cloned(), text("0.000125"));
    assert_eq!(attr(server, "gateway.cost_currency").cloned(), text("USD"));
    assert_eq!(attr(server, "gateway.cost_model").cloned(), text("m-large"));
    assert_eq!(
        attr(server, "gateway.cost_estimated"),
        Some(&Value::BoolValue(true))
    );
    assert_eq!(
        attr(server, "gateway.cost_unpriced"),
        None,
        "set flags only"
    );
    // a request without a cost has no cost attributes
    assert_eq!(attr(&spans[2].attributes, "gateway.cost"), None);
    let l: Vec<(ExportLogsServiceRequest, u64)> = ready(&mut e, Signal::Logs, false);
    let recs = &l[0].0.resource_logs[0].scope_logs[0].log_records;
    assert_eq!(
        attr(&recs[0].attributes, "ai_log.cost").cloned(),
        text("0.000125")
    );
    assert_eq!(
        attr(&recs[0].attributes, "ai_log.cost_currency").cloned(),
        text("USD")
    );
    assert_eq!(
        attr(&recs[0].attributes, "ai_log.cost_estimated"),
        Some(&Value::BoolValue(true))
    );
    assert_eq!(attr(&recs[1].attributes, "ai_log.cost"), None);
}
