//! A config with a secret written with the wrong type (`api_tokens:` without list
//! brackets) beside four other problems of different kinds, in YAML and in JSON,
//! and the check every report of it must pass (`--check-config`, the stderr of a
//! gateway refusing to start, the 400 of `/admin/config/reload`): each problem
//! named with its key and line, the secret and the other written values nowhere.

/// The secret written as a bare string where a list is expected.
pub const SECRET: &str = "sk-live-SECRET123";

/// A gateway config template (`{{listen}}`, `{{admin}}`, `{{access_log}}`) with five
/// problems; the first one the file has is the secret's.
pub const BROKEN_YAML: &str = r#"
providers:
  - id: up1
    type: openai-compatible
    base_url: http://127.0.0.1:9/v1
    api_tokens: sk-live-SECRET123
  - type: mock
    retries: 3
server:
  listen: "{{listen}}"
  admin_listen: "{{admin}}"
  admin_token: test-admin-token
  max_body_bytes: lots
routes:
  - name: chat
    match: { path_prefix: /v1 }
    upstreams: [ { provider: up1 } ]
    quotas: [ { name: q, by: route, strategy: requests, limit: 1, window: 5w } ]
telemetry: { access_log: { enabled: true, path: "{{access_log}}" } }
"#;

/// The key and line of each problem of [`BROKEN_YAML`]: a type error holding the
/// secret, a missing required key, an unknown key, another type error and a value
/// the validation refuses.
pub const BROKEN_YAML_PROBLEMS: [(&str, usize); 5] = [
    ("providers[0].api_tokens", 6),
    ("providers[1].id", 7),
    ("providers[1].retries", 8),
    ("server.max_body_bytes", 13),
    ("routes[0].quotas[0].window", 18),
];

/// The same problems in a JSON config.
pub const BROKEN_JSON: &str = r#"{
  "providers": [
    {"id": "up1", "type": "openai-compatible", "base_url": "http://127.0.0.1:9/v1",
     "api_tokens": "sk-live-SECRET123"},
    {"type": "mock", "retries": 3}
  ],
  "server": {"listen": "{{listen}}", "admin_listen": "{{admin}}", "admin_token": "test-admin-token",
             "max_body_bytes": "lots"},
  "routes": [{"name": "chat", "match": {"path_prefix": "/v1"}, "upstreams": [{"provider": "up1"}],
              "quotas": [{"name": "q", "by": "route", "strategy": "requests", "limit": 1, "window": "5w"}]}]
}
"#;

pub const BROKEN_JSON_PROBLEMS: [(&str, usize); 5] = [
    ("providers[0].api_tokens", 4),
    ("providers[1].id", 5),
    ("providers[1].retries", 5),
    ("server.max_body_bytes", 8),
    ("routes[0].quotas[0].window", 10),
];

/// Asserts that `report` names each `(key, line)` problem on one line of its own
/// (`<file>: <key>: <reason> (line L column C)`) and quotes none of the values.
pub fn assert_every_problem_without_values(report: &str, problems: &[(&str, usize)]) {
    for value in [SECRET, "SECRET", "\"lots\"", "5w"] {
        assert!(
            !report.contains(value),
            "the report quotes {value:?}:\n{report}"
        );
    }
    for (key, line) in problems {
        let named = report.lines().any(|l| {
            l.contains(&format!(": {key}: ")) && l.contains(&format!("(line {line} column "))
        });
        assert!(named, "{key} at line {line} is not reported:\n{report}");
    }
}
