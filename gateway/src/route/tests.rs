//! Route matching, endpoint paths and 404 details.
use super::*;
use crate::config::parse_text;
use crate::providers::ClientCache;
use crate::runtime::build;

fn routes(yaml: &str) -> Vec<Route> {
    let text = format!("providers: [{{ id: m, type: mock }}]\nroutes:\n{yaml}");
    let raw = parse_text("t", &text).unwrap();
    build(&raw, "t", 1, &ClientCache::default()).unwrap().routes
}

fn input<'a>(
    host: &'a str,
    path: &'a str,
    h: &'a HeaderMap,
    model: Option<&'a str>,
) -> MatchInput<'a> {
    MatchInput {
        host,
        path,
        headers: h,
        model,
        endpoint: Endpoint::from_path(path),
    }
}

fn detail(rs: &[Route], input: &MatchInput<'_>) -> String {
    find(rs, input).err().unwrap().detail()
}

#[test]
fn first_match_wins_and_misses_are_named() {
    let rs = routes(
        concat!(
            "  - { name: blue, match: { hosts: [\"*.example.com\"], path_prefix: /v1, headers: { x-team: [blue] }, models: [\"gpt-*\"] }, upstreams: [{provider: m}] }\n",
            "  - { name: exact, match: { path_exact: /v1/embeddings }, upstreams: [{provider: m}] }\n",
            "  - { name: re, match: { path_regex: \"^/v2/.*\" }, upstreams: [{provider: m}] }\n",
        ),
    );
    let mut h = HeaderMap::new();
    h.insert("x-team", "blue".parse().unwrap());
    let none = HeaderMap::new();
    assert_eq!(
        &*find(
            &rs,
            &input("a.example.com", "/v1/chat/completions", &h, Some("gpt-4o"))
        )
        .unwrap()
        .name,
        "blue"
    );
    assert_eq!(
        &*find(
            &rs,
            &input("a.example.com", "/v1/embeddings", &none, Some("gpt-4o"))
        )
        .unwrap()
        .name,
        "exact"
    );
    assert_eq!(
        &*find(&rs, &input("x", "/v2/chat/completions", &none, Some("m")))
            .unwrap()
            .name,
        "re"
    );
    let e = detail(
        &rs,
        &input("example.com", "/v1/chat/completions", &h, Some("claude")),
    );
    assert!(e.contains("route \"blue\": host \"example.com\""), "{e}");
    assert!(e.contains("route \"exact\": path"), "{e}");
    // the answer names the request's facts only
    let miss = input("example.com", "/v1/chat/completions", &h, Some("claude"));
    let answer = find(&rs, &miss).err().unwrap().error(&miss, false).message;
    assert_eq!(
        answer,
        "no route matches path \"/v1/chat/completions\" on host \"example.com\" with model \"claude\""
    );
    let verbose = find(&rs, &miss).err().unwrap().error(&miss, true).message;
    assert!(verbose.contains("route \"blue\": host"), "{verbose}");
    let e = detail(
        &rs,
        &input("a.example.com", "/v1/chat/completions", &h, Some("claude")),
    );
    assert!(e.contains("model \"claude\" is not one of [gpt-*]"), "{e}");
    let e = detail(
        &rs,
        &input(
            "a.example.com",
            "/v1/chat/completions",
            &none,
            Some("gpt-4o"),
        ),
    );
    assert!(
        e.contains("header x-team does not have an accepted value"),
        "{e}"
    );
    assert!(
        !e.contains("[\"blue\"]"),
        "expected header values must not be shown: {e}"
    );
}

#[test]
fn the_path_names_an_endpoint_exactly_under_the_prefix() {
    let rs = routes(concat!(
        "  - { name: openai, match: { path_prefix: /openai }, upstreams: [{provider: m}] }\n",
        "  - { name: chat, match: { path_prefix: /v1/chat }, upstreams: [{provider: m}] }\n",
        "  - { name: v1, match: { path_prefix: /v1/ }, upstreams: [{provider: m}] }\n",
    ));
    let none = HeaderMap::new();
    let route = |path: &str| {
        find(&rs, &input("h", path, &none, Some("m")))
            .ok()
            .map(|r| r.name.to_string())
    };
    assert_eq!(
        route("/openai/v1/chat/completions").as_deref(),
        Some("openai")
    );
    assert_eq!(
        route("/openai/chat/completions/").as_deref(),
        Some("openai")
    );
    assert_eq!(route("/v1/chat/completions").as_deref(), Some("chat"));
    assert_eq!(route("/v1/completions").as_deref(), Some("v1"));
    assert_eq!(route("/v1/embeddings").as_deref(), Some("v1"));
    for tricky in [
        "/v1/x/chat/completions",
        "/v1/x/../../chat/completions",
        "/v1/v1/v1/chat/completions",
        "/v1/chat/x/chat/completions",
        "/openai/anything/chat/completions",
        "/v1chat/completions",
    ] {
        assert_eq!(route(tricky), None, "{tricky}");
    }
    let open = routes("  - { name: any, upstreams: [{provider: m}] }\n");
    let found = |path: &str| find(&open, &input("h", path, &none, Some("m"))).is_ok();
    assert!(found("/v1/chat/completions") && found("/chat/completions"));
    assert!(!found("/openai/v1/chat/completions"));
}

#[test]
fn bad_globs_are_named() {
    let text = "providers: [{ id: m, type: mock }]\nroutes: [{ name: r, match: { hosts: [\"a*b.com\", \"*.ok.com\"], models: [\"\", \"gpt *\"] }, upstreams: [{provider: m}] }]\n";
    let raw = parse_text("t", text).unwrap();
    let e = build(&raw, "t", 1, &ClientCache::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("routes[0].match.hosts[0]: not a host pattern"),
        "{e}"
    );
    assert!(!e.contains("hosts[1]"), "{e}");
    assert!(
        e.contains("routes[0].match.models[0]: not a model glob"),
        "{e}"
    );
    assert!(
        e.contains("routes[0].match.models[1]: not a model glob"),
        "{e}"
    );
    assert!(
        !e.contains("a*b.com") && !e.contains("gpt *"),
        "values are not quoted: {e}"
    );
}

#[test]
fn models_offered() {
    let text = "providers: [{ id: m, type: mock, models: [gpt-4o, other], model_mapping: { gpt-x: y, \"g*\": z } }]\n\
                routes: [{ name: r, match: { models: [\"gpt-*\", \"exact-one\"] }, upstreams: [{provider: m}] }]\n";
    let raw = parse_text("t", text).unwrap();
    let rs = build(&raw, "t", 1, &ClientCache::default()).unwrap().routes;
    assert_eq!(rs[0].offered_models(), vec!["exact-one", "gpt-4o", "gpt-x"]);
}
