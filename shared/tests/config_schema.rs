//! The committed JSON Schema of the config file (`deploy/gateway.schema.json`)
//! is the one the serde types produce, every config the repository ships
//! validates against it, and the reference config names every key it has.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

type Result<T> = std::result::Result<T, String>;

const REGENERATE: &str =
    "cargo run -p shared --bin gateway-config-schema -- deploy/gateway.schema.json";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> Result<String> {
    std::fs::read_to_string(repo().join(rel)).map_err(|e| format!("cannot read {rel}: {e}"))
}

fn yaml(rel: &str, text: &str) -> Result<Value> {
    serde_yaml_ng::from_str(text).map_err(|e| format!("{rel} is not YAML: {e}"))
}

fn committed_schema() -> Result<Value> {
    let path = shared::schema::SCHEMA_PATH;
    serde_json::from_str(&read(path)?).map_err(|e| format!("{path} is not JSON: {e}"))
}

/// Every gateway config the repository ships, by name: whole files, the one in
/// the Kubernetes ConfigMap, and the `config` values of the Helm chart.
fn shipped_configs() -> Result<Vec<(String, Value)>> {
    let mut out = Vec::new();
    for rel in [
        "deploy/gateway.example.yaml",
        "deploy/gateway.reference.yaml",
        "deploy/docker/gateway.yaml",
        "deploy/compose/gateway/gateway.yaml",
        "gateway/src/config/default.yaml",
    ] {
        out.push((rel.to_string(), yaml(rel, &read(rel)?)?));
    }
    let rel = "deploy/k8s/10-configmap.yaml";
    let map = yaml(rel, &read(rel)?)?;
    let text = map["data"]["gateway.yaml"]
        .as_str()
        .ok_or_else(|| format!("{rel}: no data.\"gateway.yaml\""))?;
    out.push((format!("{rel} (data.gateway.yaml)"), yaml(rel, text)?));
    for rel in [
        "deploy/helm/ai-gateway/values.yaml",
        "deploy/helm/ai-gateway/ci/production-values.yaml",
        "deploy/helm/ai-gateway/ci/standalone-values.yaml",
    ] {
        let values = yaml(rel, &read(rel)?)?;
        if let Some(config) = values.get("config") {
            out.push((format!("{rel} (config)"), config.clone()));
        }
    }
    Ok(out)
}

fn problems(schema: &Value, config: &Value) -> Result<Vec<String>> {
    let validator = jsonschema::validator_for(schema).map_err(|e| format!("schema: {e}"))?;
    Ok(validator
        .iter_errors(config)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect())
}

#[test]
fn committed_schema_is_current() -> Result<()> {
    let committed = read(shared::schema::SCHEMA_PATH)?;
    assert!(
        committed == shared::schema::config_schema_text(),
        "{} is not what shared/src/config produces: run `{REGENERATE}` and commit it",
        shared::schema::SCHEMA_PATH
    );
    Ok(())
}

#[test]
fn shipped_configs_match_the_schema() -> Result<()> {
    let schema = committed_schema()?;
    let configs = shipped_configs()?;
    assert!(configs.len() >= 8, "{} configs found", configs.len());
    let mut bad = Vec::new();
    for (name, config) in &configs {
        for p in problems(&schema, config)? {
            bad.push(format!("{name}: {p}"));
        }
    }
    assert!(
        bad.is_empty(),
        "configs the schema refuses:\n{}",
        bad.join("\n")
    );
    Ok(())
}

#[test]
fn the_schema_refuses_unknown_keys_wrong_types_and_unknown_names() -> Result<()> {
    let schema = committed_schema()?;
    for (text, at) in [
        ("server: { listne: 0.0.0.0:8080 }", "/server"),
        ("server: { max_body_bytes: big }", "/server/max_body_bytes"),
        ("state: { backend: mongo }", "/state/backend"),
        ("providers: [{ id: a, type: nope }]", "/providers/0/type"),
        ("providers: [{ type: mock }]", "/providers/0"),
        ("routes: [{ name: r, match: { path_prefx: /v1 } }]", "/routes/0/match"),
        ("tenants: [{ id: t, quotas: [{ name: q, by: tenant, strategy: tokens, limit: 1, window: 1m }] }]", "/tenants/0/quotas/0/strategy"),
        ("telemetry: { otlp: { endpoint: http://c:4317, protocol: udp } }", "/telemetry/otlp"),
    ] {
        let config = yaml("inline", text)?;
        let found = problems(&schema, &config)?;
        assert!(
            found.iter().any(|p| p.starts_with(&format!("{at}: "))),
            "{text}: expected a problem at {at}, found {found:?}"
        );
    }
    Ok(())
}

/// `prefix.key`, or `key` at the top.
fn child(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Key paths (`routes[].match.hosts`) of the schema's objects.
fn schema_paths(schema: &Value, node: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let Some(r) = node.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/definitions/");
        return schema_paths(schema, &schema["definitions"][name], prefix, out);
    }
    for alt in node
        .get("anyOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        schema_paths(schema, alt, prefix, out);
    }
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            let path = child(prefix, k);
            out.insert(path.clone());
            schema_paths(schema, v, &path, out);
        }
    }
    if let Some(items) = node.get("items") {
        schema_paths(schema, items, &format!("{prefix}[]"), out);
    }
}

/// Key paths of a config value, arrays as `[]`.
fn value_paths(node: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match node {
        Value::Object(map) => {
            for (k, v) in map {
                let path = child(prefix, k);
                out.insert(path.clone());
                value_paths(v, &path, out);
            }
        }
        Value::Array(items) => {
            for v in items {
                value_paths(v, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_reference_config_names_every_key() -> Result<()> {
    // Alternatives the file shows in a comment: a config has one or the other.
    const ALTERNATIVES: [&str; 2] = [
        "state.redis.cluster_nodes",
        "providers[].auth.gcp.service_account_file",
    ];
    let schema = committed_schema()?;
    let mut keys = BTreeSet::new();
    schema_paths(&schema, &schema, "", &mut keys);
    assert!(keys.len() > 100, "{} keys in the schema", keys.len());
    let rel = "deploy/gateway.reference.yaml";
    let text = read(rel)?;
    let mut used = BTreeSet::new();
    value_paths(&yaml(rel, &text)?, "", &mut used);
    let missing: Vec<_> = keys
        .iter()
        .filter(|k| !used.contains(*k) && !ALTERNATIVES.contains(&k.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{rel} does not name these keys: {missing:?}"
    );
    for k in ALTERNATIVES {
        let last = k.rsplit('.').next().unwrap_or(k);
        assert!(
            text.contains(&format!("# {last}:")),
            "{rel}: {k} not shown in a comment"
        );
    }
    Ok(())
}
