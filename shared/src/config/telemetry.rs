//! `telemetry`: access log, OTLP export, Prometheus, payload logging.

use super::d_true;
use crate::env::EnvString;
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

// ---------------------------------------------------------------- telemetry

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    #[serde(default)]
    pub access_log: AccessLogConfig,
    #[serde(default)]
    pub otlp: Option<OtlpConfig>,
    #[serde(default = "d_true")]
    pub prometheus: bool,
    #[serde(default)]
    pub log_payloads: bool,
    #[serde(default = "d_value_limit")]
    pub value_length_limit: usize,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            access_log: AccessLogConfig::default(),
            otlp: None,
            prometheus: true,
            log_payloads: false,
            value_length_limit: d_value_limit(),
        }
    }
}

fn d_value_limit() -> usize {
    4000
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessLogConfig {
    #[serde(default = "d_true")]
    pub enabled: bool,
    #[serde(default = "d_stdout")]
    pub path: EnvString,
    /// Added key: access-log lines queued before new ones are dropped (and counted).
    #[serde(default = "d_queue")]
    pub queue_size: usize,
}

impl Default for AccessLogConfig {
    fn default() -> Self {
        AccessLogConfig {
            enabled: true,
            path: d_stdout(),
            queue_size: d_queue(),
        }
    }
}

fn d_stdout() -> EnvString {
    "stdout".into()
}
fn d_queue() -> usize {
    65_536
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    pub endpoint: EnvString,
    #[serde(default)]
    pub protocol: OtlpProtocol,
    #[serde(default = "d_true")]
    pub traces: bool,
    #[serde(default = "d_true")]
    pub logs: bool,
    #[serde(default)]
    pub metrics: bool,
    #[serde(default = "d_ratio")]
    pub sampling_ratio: f64,
    #[serde(default)]
    pub headers: IndexMap<String, EnvString>,
    /// Added key: spans and log records queued for export before new ones are
    /// dropped (and counted).
    #[serde(default = "d_queue")]
    pub queue_size: usize,
    /// Added key: records sent to the collector in one export call.
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// Added key: how long one export call may take before it counts as failed.
    #[serde(default = "d_export_timeout")]
    pub timeout_ms: u64,
    /// Added key: the `service.name` resource attribute.
    #[serde(default = "d_service")]
    pub service_name: String,
    /// Added key: whether a client's sampled flag (`traceparent` flags 01, B3
    /// sampled) is followed when `sampling_ratio` would not sample the trace:
    /// `always`, `never`, or `<N>/s` (at most N such traces a second per replica).
    #[serde(default = "d_honor_client")]
    pub honor_client_sampling: String,
}

fn d_honor_client() -> String {
    "100/s".to_string()
}

fn d_batch() -> usize {
    512
}
fn d_export_timeout() -> u64 {
    5_000
}
fn d_service() -> String {
    "ai-gateway".to_string()
}

fn d_ratio() -> f64 {
    1.0
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OtlpProtocol {
    #[default]
    Grpc,
    Http,
}
