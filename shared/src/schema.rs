//! The JSON Schema of the config file, derived from the serde types in
//! [`crate::config`]: what editors validate against (`deploy/gateway.schema.json`,
//! written by the `gateway-config-schema` binary and checked current by
//! `shared/tests/config_schema.rs`).

use crate::config::RawConfig;
use schemars::generate::SchemaSettings;

/// Where the committed schema lives, from the repository root.
pub const SCHEMA_PATH: &str = "deploy/gateway.schema.json";

/// The schema as a JSON value (draft-07, which every editor's YAML/JSON
/// language server reads).
pub fn config_schema() -> serde_json::Value {
    let mut schema = SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<RawConfig>();
    schema.insert("title".into(), "AI gateway config file".into());
    schema.insert(
        "description".into(),
        "The gateway's config file (YAML or JSON). Generated from shared/src/config \
         by `cargo run -p shared --bin gateway-config-schema -- deploy/gateway.schema.json`; \
         do not edit by hand. The gateway's own check (`gateway --check-config FILE`) \
         also validates what a schema cannot (references between sections, globs, \
         regexes, windows, addresses)."
            .into(),
    );
    schema.to_value()
}

/// The committed file's exact text: pretty-printed, ending with a newline.
pub fn config_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&config_schema()).unwrap_or_default();
    text.push('\n');
    text
}
