//! `gateway --check-config PATH`: exit 0 for a valid file, 1 with every problem at
//! once, each naming the file, the key path, the reason and the line, never the
//! value; a bad config refuses to start, with the same report on stderr.

use gateway_tests::config_problems::{
    assert_every_problem_without_values, BROKEN_JSON, BROKEN_JSON_PROBLEMS, BROKEN_YAML,
    BROKEN_YAML_PROBLEMS,
};
use gateway_tests::harness::{
    run_check_config, run_check_config_named, single_provider_config, Gateway,
};

const VALID: &str = r#"
server: { listen: "{{listen}}", admin_listen: "{{admin}}", admin_token: test-admin-token }
providers:
  - id: up1
    type: openai-compatible
    base_url: http://127.0.0.1:9/v1
    api_tokens: ["t"]
    model_mapping: { "gpt-4*": mock-large, "*": mock-small }
routes:
  - name: chat
    match: { path_prefix: /v1 }
    upstreams: [ { provider: up1 } ]
telemetry: { access_log: { enabled: true, path: "{{access_log}}" } }
"#;

#[test]
fn valid_config_exits_0() {
    let (code, out) = run_check_config(VALID);
    assert_eq!(code, 0, "output:\n{out}");
    let (code, out) = run_check_config(&single_provider_config("http://127.0.0.1:9/v1"));
    assert_eq!(code, 0, "output:\n{out}");
}

#[test]
fn valid_json_config_exits_0() {
    let json = r#"{
  "server": {"listen": "{{listen}}", "admin_listen": "{{admin}}"},
  "providers": [{"id": "up1", "type": "openai-compatible", "base_url": "http://127.0.0.1:9/v1", "api_tokens": ["t"]}],
  "routes": [{"name": "chat", "match": {"path_prefix": "/v1"}, "upstreams": [{"provider": "up1"}]}]
}"#;
    let (code, out) = run_check_config_named(json, "check-config.json");
    assert_eq!(code, 0, "output:\n{out}");
}

#[test]
fn unknown_key_is_named_with_file_and_path() {
    let bad = VALID.replace("admin_token:", "admin_tokn:");
    let (code, out) = run_check_config(&bad);
    assert_eq!(code, 1, "output:\n{out}");
    assert!(out.contains("check-config.yaml"), "names the file:\n{out}");
    assert!(out.contains("admin_tokn"), "names the key:\n{out}");
    assert!(out.contains("server"), "names the key path:\n{out}");

    let bad = VALID.replace(
        "    api_tokens: [\"t\"]",
        "    api_tokens: [\"t\"]\n    bogus_provider_key: 1",
    );
    let (code, out) = run_check_config(&bad);
    assert_eq!(code, 1, "output:\n{out}");
    assert!(out.contains("bogus_provider_key"), "{out}");
    assert!(out.contains("providers"), "names the key path:\n{out}");
}

#[test]
fn wrong_type_is_named() {
    let bad = VALID.replace(
        "admin_token: test-admin-token }",
        "admin_token: test-admin-token, max_body_bytes: lots }",
    );
    assert_ne!(bad, VALID);
    let (code, out) = run_check_config(&bad);
    assert_eq!(code, 1, "output:\n{out}");
    assert!(out.contains("max_body_bytes"), "{out}");
}

#[test]
fn unknown_provider_in_route_is_reported() {
    let bad = VALID.replace("{ provider: up1 }", "{ provider: nope-provider }");
    let (code, out) = run_check_config(&bad);
    assert_eq!(code, 1, "output:\n{out}");
    assert!(
        out.contains("routes[0].upstreams[0].provider: unknown provider"),
        "names the key path:\n{out}"
    );
    assert!(
        !out.contains("nope-provider"),
        "the value is not quoted:\n{out}"
    );
}

#[test]
fn missing_env_var_is_named() {
    let bad = VALID.replace(
        "api_tokens: [\"t\"]",
        "api_tokens: [\"${GW_TEST_SURELY_UNSET_VAR_42}\"]",
    );
    let (code, out) = run_check_config(&bad);
    assert_eq!(code, 1, "output:\n{out}");
    assert!(out.contains("GW_TEST_SURELY_UNSET_VAR_42"), "{out}");
}

#[test]
fn several_problems_are_all_listed() {
    let bad = VALID
        .replace("admin_token:", "admin_tokn:")
        .replace("{ provider: up1 }", "{ provider: nope-provider }");
    let (code, out) = run_check_config(&bad);
    assert_eq!(code, 1, "output:\n{out}");
    // an unknown key does not stop the checks of the values
    assert!(out.contains("server.admin_tokn: unknown field"), "{out}");
    assert!(
        out.contains("routes[0].upstreams[0].provider: unknown provider"),
        "{out}"
    );
}

#[test]
fn a_secret_of_the_wrong_type_is_not_echoed_and_every_problem_is_listed() {
    let (code, out) = run_check_config(BROKEN_YAML);
    assert_eq!(code, 1, "output:\n{out}");
    assert_every_problem_without_values(&out, &BROKEN_YAML_PROBLEMS);
    assert!(out.contains("5 problem(s)"), "{out}");
}

#[test]
fn a_json_config_gets_every_problem_too() {
    let (code, out) = run_check_config_named(BROKEN_JSON, "check-config.json");
    assert_eq!(code, 1, "output:\n{out}");
    assert_every_problem_without_values(&out, &BROKEN_JSON_PROBLEMS);
    assert!(out.contains("5 problem(s)"), "{out}");
}

#[test]
fn invalid_yaml_exits_1() {
    let (code, out) = run_check_config("server: [unclosed\n");
    assert_eq!(code, 1, "output:\n{out}");
    assert!(out.contains("check-config.yaml"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_refuses_to_start_with_bad_config() {
    let bad = VALID.replace("admin_token:", "admin_tokn:");
    let res = Gateway::builder(&bad).try_start().await;
    let err = match res {
        Ok(_) => panic!("the gateway started with an invalid config"),
        Err(e) => e,
    };
    assert!(
        err.contains("admin_tokn"),
        "stderr should name the problem:\n{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_refusing_a_bad_config_names_every_problem_without_the_secret() {
    let err = match Gateway::builder(BROKEN_YAML).try_start().await {
        Ok(_) => panic!("the gateway started with an invalid config"),
        Err(e) => e,
    };
    // the harness's message shows the config, then what the gateway wrote
    let stderr = match err.split_once("\nstderr:\n") {
        Some((_, stderr)) => stderr,
        None => panic!("no stderr in: {err}"),
    };
    assert_every_problem_without_values(stderr, &BROKEN_YAML_PROBLEMS);
}

#[test]
fn state_auth_and_tenant_problems_are_named() {
    let with = |extra: &str| format!("{VALID}{extra}");
    // a valid redis + auth + seed config passes (Redis need not be running)
    let ok = with(
        "state: { backend: redis, redis: { url: \"redis://127.0.0.1:9/0\" } }\n\
         auth: { in_query: true }\n\
         tenants:\n  - id: acme\n    consumers:\n      - name: bob\n        keys: [\"sk-long-enough-key\"]\n",
    )
    .replace(
        "    match: { path_prefix: /v1 }",
        "    match: { path_prefix: /v1 }\n    auth: { enabled: true, allowed_consumers: [\"acme/*\"] }",
    );
    let (code, out) = run_check_config(&ok);
    assert_eq!(code, 0, "output:\n{out}");
    for (extra, key, says) in [
        ("state: { backend: redis }\n", "state.redis", "missing"),
        (
            "state: { backend: redis, redis: { url: \"redis://a:1\", cluster_nodes: [\"redis://b:1\"] } }\n",
            "state.redis",
            "not both",
        ),
        (
            "state: { backend: redis, redis: { url: \"http://a:1\" } }\n",
            "state.redis.url",
            "redis://",
        ),
        (
            "state: { backend: redis, redis: { url: \"redis://a:1\", key_prefix: \"x{\" } }\n",
            "state.redis.key_prefix",
            "hash tags",
        ),
        ("tenants: [ { id: \"a/b\" } ]\n", "tenants[0].id", "1 to 64"),
        (
            "tenants: [ { id: a, consumers: [ { name: c, keys: [\"short\"] } ] } ]\n",
            "tenants[0].consumers[0].keys[0]",
            "at least 8",
        ),
    ] {
        let (code, out) = run_check_config(&with(extra));
        assert_eq!(code, 1, "{extra}\noutput:\n{out}");
        assert!(out.contains(key) && out.contains(says), "{extra}\n{out}");
    }
    // the seed key itself is never echoed
    let (_, out) = run_check_config(&with(
        "tenants: [ { id: a, consumers: [ { name: c, keys: [\"short\"] } ] } ]\n",
    ));
    assert!(!out.contains("\"short\""), "{out}");
}
