//! What the gateway records about requests: the JSON access log (OTLP and metrics
//! come with the telemetry issue).

pub mod access_log;
