//! `gateway --check-config PATH`: exit 0 for a valid file, 1 with every problem at
//! once, each naming the file, the key path, the reason and the line, never the
//! value; a bad config refuses to start, with the same report on stderr.

use gateway_tests::config::{
    single_provider, Config, Consumer, Provider, Route, Server, State, Tenant,
};
use gateway_tests::config_problems::{
    assert_every_problem_without_values, BROKEN_JSON, BROKEN_JSON_PROBLEMS, BROKEN_YAML,
    BROKEN_YAML_PROBLEMS,
};
use gateway_tests::harness::{run_check_config, run_check_config_named, Gateway, ADMIN_TOKEN};
use serde_json::json;

/// A valid config: one provider `up1` (nothing listens at its URL: the check
/// does not connect), one route `chat`.
fn valid() -> Config {
    Config::new()
        .server(Server::new().admin_token(ADMIN_TOKEN))
        .provider(
            Provider::openai("up1", "http://127.0.0.1:9/v1")
                .token("t")
                .map("gpt-4*", "mock-large")
                .map("*", "mock-small"),
        )
        .route(Route::new("chat", "/v1").upstream("up1"))
        .access_log()
}

/// [`valid`] with the admin token under a misspelt key.
fn admin_token_misspelt() -> Config {
    valid()
        .with_server(|_| Server::new())
        .set("server.admin_tokn", ADMIN_TOKEN)
}

/// [`valid`] with its route sending to a provider that does not exist.
fn unknown_provider() -> Config {
    valid().with_route("chat", |_| {
        Route::new("chat", "/v1").upstream("nope-provider")
    })
}

/// A token no config or path holds by chance: `~` and six random hex digits
/// (seven characters: too short for a key, so its key is refused).
fn random_short_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("~{:06x}", h.finish() & 0xff_ffff)
}

#[test]
fn valid_config_exits_0() {
    let (code, out) = run_check_config(&valid().yaml());
    assert_eq!(code, 0, "output:\n{out}");
    let (code, out) = run_check_config(&single_provider("http://127.0.0.1:9/v1").yaml());
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
    let (code, out) = run_check_config(&admin_token_misspelt().yaml_unchecked());
    assert_eq!(code, 1, "output:\n{out}");
    assert!(out.contains("check-config.yaml"), "names the file:\n{out}");
    assert!(out.contains("admin_tokn"), "names the key:\n{out}");
    assert!(out.contains("server"), "names the key path:\n{out}");

    let bad = valid()
        .set("providers.0.bogus_provider_key", 1)
        .yaml_unchecked();
    let (code, out) = run_check_config(&bad);
    assert_eq!(code, 1, "output:\n{out}");
    assert!(out.contains("bogus_provider_key"), "{out}");
    assert!(out.contains("providers"), "names the key path:\n{out}");
}

#[test]
fn wrong_type_is_named() {
    let bad = valid()
        .set("server.max_body_bytes", "lots")
        .yaml_unchecked();
    assert_ne!(bad, valid().yaml());
    let (code, out) = run_check_config(&bad);
    assert_eq!(code, 1, "output:\n{out}");
    assert!(out.contains("max_body_bytes"), "{out}");
}

#[test]
fn unknown_provider_in_route_is_reported() {
    let (code, out) = run_check_config(&unknown_provider().yaml());
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
    // two unset variables in two keys: each is reported, with its key and line
    let bad = valid()
        .with_provider("up1", |p| {
            p.base_url("${GW_TEST_UNSET_BASE_URL_17}")
                .tokens(&["${GW_TEST_SURELY_UNSET_VAR_42}"])
        })
        .yaml();
    let (code, out) = run_check_config(&bad);
    assert_eq!(code, 1, "output:\n{out}");
    for (key, var) in [
        ("providers[0].base_url", "GW_TEST_UNSET_BASE_URL_17"),
        ("providers[0].api_tokens[0]", "GW_TEST_SURELY_UNSET_VAR_42"),
    ] {
        let line = out
            .lines()
            .find(|l| l.contains(var))
            .unwrap_or_else(|| panic!("{var} not named:\n{out}"));
        assert!(
            line.contains(&format!("{key}: environment variable {var} is not set"))
                && line.contains("(line "),
            "{var}: key and line:\n{out}"
        );
    }
    assert!(out.contains("2 problem(s)"), "{out}");
}

#[test]
fn several_problems_are_all_listed() {
    let bad = admin_token_misspelt()
        .with_route("chat", |_| {
            Route::new("chat", "/v1").upstream("nope-provider")
        })
        .yaml_unchecked();
    let (code, out) = run_check_config(&bad);
    assert_eq!(code, 1, "output:\n{out}");
    // an unknown key does not stop the checks of the values
    assert!(out.contains("server.admin_tokn: unknown field"), "{out}");
    assert!(
        out.contains("routes[0].upstreams[0].provider: unknown provider"),
        "{out}"
    );
    assert!(out.contains("2 problem(s)"), "{out}");
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
    let bad = admin_token_misspelt().yaml_unchecked();
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
    // a valid redis + auth + seed config passes (Redis need not be running)
    let ok = valid()
        .state(State::redis("redis://127.0.0.1:9/0"))
        .auth(json!({ "in_query": true }))
        .tenant(Tenant::new("acme").consumer(Consumer::new("bob").key("sk-long-enough-key")))
        .with_route("chat", |r| {
            r.auth(json!({ "enabled": true, "allowed_consumers": ["acme/*"] }))
        });
    let (code, out) = run_check_config(&ok.yaml());
    assert_eq!(code, 0, "output:\n{out}");
    let short_key =
        |key: &str| valid().tenant(Tenant::new("a").consumer(Consumer::new("c").key(key)));
    for (bad, key, says) in [
        (
            valid().set("state.backend", "redis"),
            "state.redis",
            "missing",
        ),
        (
            valid().state(
                State::redis("redis://a:1").redis_key("cluster_nodes", json!(["redis://b:1"])),
            ),
            "state.redis",
            "not both",
        ),
        (
            valid().state(State::redis("http://a:1")),
            "state.redis.url",
            "redis://",
        ),
        (
            valid().state(State::redis("redis://a:1").redis_key("key_prefix", "x{")),
            "state.redis.key_prefix",
            "hash tags",
        ),
        (
            valid().tenant(Tenant::new("a/b")),
            "tenants[0].id",
            "1 to 64",
        ),
        (
            short_key("short"),
            "tenants[0].consumers[0].keys[0]",
            "at least 8",
        ),
    ] {
        let bad = bad.yaml();
        let (code, out) = run_check_config(&bad);
        assert_eq!(code, 1, "{bad}\noutput:\n{out}");
        assert!(out.contains(key) && out.contains(says), "{bad}\n{out}");
    }
    // the seed key itself is never echoed: a random one, which nothing else in
    // the output can hold by chance, is absent however it might be quoted
    let secret = random_short_token();
    let (code, out) = run_check_config(&short_key(&secret).yaml());
    assert_eq!(code, 1, "output:\n{out}");
    assert!(
        out.contains("tenants[0].consumers[0].keys[0]"),
        "the short key is reported:\n{out}"
    );
    assert!(!out.contains(&secret), "the key {secret} is echoed:\n{out}");
}
