//! The config file's text as JSON with its secrets masked, for the admin API
//! (`GET /admin/config`, the console's config page): every value under a key
//! that holds credentials, and the password of any URL, become `********`;
//! a `${NAME}` placeholder stays (it says where the secret comes from, not
//! what it is), its `:-default` masked.

use serde_json::Value;

/// What a masked value reads.
pub const MASK: &str = "********";

/// Dotted paths (list items left out) whose values are credentials; a path
/// ending in `.*` masks every value of that map.
const SECRET_PATHS: &[&str] = &[
    "server.admin_token",
    "providers.api_tokens",
    "providers.auth.gcp.service_account_json",
    "providers.auth.aws.access_key_id",
    "providers.auth.aws.secret_access_key",
    "providers.auth.aws.session_token",
    "tenants.consumers.keys",
    "telemetry.otlp.headers.*",
    "budget_alerts.webhook.headers.*",
];

/// `text` (YAML or JSON) with its secrets masked; an error when it is not a
/// YAML document (the caller has a valid config, so this is not expected).
pub fn masked(text: &str) -> Result<Value, String> {
    let mut v: Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    walk(&mut v, "");
    Ok(v)
}

fn walk(v: &mut Value, path: &str) {
    let secret = SECRET_PATHS.contains(&path)
        || path
            .rsplit_once('.')
            .is_some_and(|(parent, _)| SECRET_PATHS.contains(&format!("{parent}.*").as_str()));
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                let p = match path.is_empty() {
                    true => k.clone(),
                    false => format!("{path}.{k}"),
                };
                walk(child, &p);
            }
        }
        // (list items keep their list's path)
        Value::Array(items) => items.iter_mut().for_each(|i| walk(i, path)),
        Value::String(s) if secret => *s = mask_secret(s),
        Value::String(s) => {
            if let Some(m) = mask_url_password(s) {
                *s = m;
            }
        }
        // a number or a bool under a secret key is a secret too
        other if secret && !other.is_null() => *other = Value::String(MASK.into()),
        _ => {}
    }
}

/// A secret's value: a `${NAME}` placeholder stays (its `:-default` masked),
/// anything else is [`MASK`].
fn mask_secret(s: &str) -> String {
    let placeholder = s
        .strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'))
        .filter(|inner| !inner.contains('}') && !inner.contains("${"));
    match placeholder {
        Some(inner) => match inner.split_once(":-") {
            Some((name, "")) => format!("${{{name}:-}}"),
            Some((name, _)) => format!("${{{name}:-{MASK}}}"),
            None => s.to_string(),
        },
        None => MASK.to_string(),
    }
}

/// `scheme://user:password@host...` with the password masked (None: no
/// password in it).
fn mask_url_password(s: &str) -> Option<String> {
    let (scheme, rest) = s.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let (userinfo, host) = authority.rsplit_once('@')?;
    let (user, _) = userinfo.split_once(':')?;
    Some(format!("{scheme}://{user}:{MASK}@{host}{}", &rest[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_masked_and_placeholders_kept() {
        let text = r#"
server: { admin_token: plain-admin-secret, listen: "0.0.0.0:8080" }
state: { backend: redis, redis: { url: "redis://:redis-pass@10.0.0.1:6379/0" } }
auth: { keys: [Authorization, x-api-key] }
providers:
  - id: o
    type: openai
    base_url: https://api.openai.com/v1
    api_tokens: ["${OPENAI_API_KEY}", sk-literal-secret, "${X:-sk-default-secret}"]
  - id: b
    type: bedrock
    auth: { aws: { access_key_id: AKIDLITERAL, secret_access_key: literal/secret, session_token: "${T:-}" } }
tenants:
  - id: acme
    consumers: [{ name: dev, keys: [sk-gw-literal], metadata: { owner: "a@b" } }]
telemetry:
  otlp: { endpoint: "https://u:otlp-pass@collector:4317", headers: { authorization: Bearer otlp-secret } }
budget_alerts: { webhook: { url: https://hooks.example.com/x, headers: { x-token: 12345 } } }
"#;
        let v = masked(text).unwrap();
        let all = v.to_string();
        for secret in [
            "plain-admin-secret",
            "redis-pass",
            "sk-literal-secret",
            "sk-default-secret",
            "AKIDLITERAL",
            "literal/secret",
            "sk-gw-literal",
            "otlp-pass",
            "otlp-secret",
            "12345",
        ] {
            assert!(!all.contains(secret), "{secret} in {all}");
        }
        assert_eq!(
            v["providers"][0]["api_tokens"],
            json!(["${OPENAI_API_KEY}", MASK, "${X:-********}"])
        );
        assert_eq!(v["providers"][1]["auth"]["aws"]["session_token"], "${T:-}");
        assert_eq!(
            v["state"]["redis"]["url"],
            "redis://:********@10.0.0.1:6379/0"
        );
        // what is not a secret is shown as written
        assert_eq!(v["auth"]["keys"], json!(["Authorization", "x-api-key"]));
        assert_eq!(v["providers"][0]["base_url"], "https://api.openai.com/v1");
        assert_eq!(v["tenants"][0]["consumers"][0]["metadata"]["owner"], "a@b");
        assert_eq!(
            v["budget_alerts"]["webhook"]["url"],
            "https://hooks.example.com/x"
        );
    }

    #[test]
    fn the_reference_config_shows_no_literal_secret() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/gateway.reference.yaml"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let v = masked(&text).unwrap();
        assert_eq!(v["server"]["admin_token"], "${GATEWAY_ADMIN_TOKEN}");
        assert_eq!(
            v["tenants"][0]["consumers"][0]["keys"],
            json!(["${LABUBU_KEY}"])
        );
    }
}
