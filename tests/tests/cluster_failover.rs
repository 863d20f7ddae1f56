//! A Redis Cluster master dies under load, with real processes: a 3-master,
//! 3-replica cluster (`cluster-require-full-coverage no`, a 1 s node timeout),
//! two gateway replicas on it (one `on_redis_error: fail_closed`, one
//! `fail_open`) and a mock upstream. Two tenants live on each shard: their
//! tenant quota windows (`{t:<tenant>}`) and their key records (`{k:<digest>}`)
//! hash to slots of the same master. The master that also holds the global keys
//! (`{g}`) is SIGKILLed while every tenant sends requests; its replica takes
//! over a few seconds later.
//!
//! The tenants of the two other shards must not notice: under 1% errors and no
//! quota admitted unchecked (`bypassed`) or refused for want of Redis
//! (`unavailable`). The dead shard's tenants get the outage policy meanwhile and
//! are served normally again within a second of the promotion. Each gateway's
//! `/metrics` names the dead node in `gateway_state_node_degraded`.

use gateway_tests::client::TestClient;
use gateway_tests::config::{
    Config, Consumer, Provider, Quota, Route, Server, State, Tenant as TenantConfig, Timeouts,
};
use gateway_tests::harness::{Gateway, ADMIN_TOKEN};
use gateway_tests::metrics::Scrape;
use gateway_tests::mock_upstream::MockUpstream;
use gateway_tests::redis::{key_slot, ClusterNode, RedisCluster};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Tenants whose windows and key live on each master.
const TENANTS_PER_SHARD: usize = 2;
/// Load before the kill.
const WARM: Duration = Duration::from_millis(1500);
/// Load after the promotion.
const AFTER: Duration = Duration::from_millis(2500);
/// How soon after the promotion the dead shard's tenants must be served again.
const RECOVERY: Duration = Duration::from_secs(1);

/// A seeded tenant with one consumer and one key, all on one shard.
#[derive(Debug, Clone)]
struct Tenant {
    id: String,
    key: String,
    /// port of the master holding its slots at the start
    master: u16,
}

/// Tenants whose `{t:<id>}` and whose key's `{k:<sha256>}` both hash to a slot
/// of `master` (keys are stored as plain SHA-256 digests: no pepper).
fn tenants_on(master: &ClusterNode, n: usize) -> Vec<Tenant> {
    (0..n)
        .map(|i| {
            let id = master.tenant_here(&format!("t{}-{i}", master.port));
            Tenant {
                key: master.key_here(&format!("cluster-{id}")),
                id,
                master: master.port,
            }
        })
        .collect()
}

/// Replicas on `cluster` with `on_redis_error: mode`, keyed route to `mock`,
/// `tenants` seeded (each with a large tenant quota and one consumer `app`).
fn config(cluster: &RedisCluster, mock: &MockUpstream, mode: &str, tenants: &[Tenant]) -> String {
    let mut config = Config::new()
        .server(Server::new().admin_token(ADMIN_TOKEN))
        .state(
            State::redis_cluster(&cluster.nodes())
                .redis_key("key_prefix", "gw:")
                .redis_key("timeout_ms", 500)
                .on_redis_error(mode)
                .cache_ttl_ms(1000),
        )
        .key_headers(&["Authorization"])
        .provider(
            Provider::openai("up1", &mock.base_url())
                .token("sk-upstream-secret")
                .timeouts(Timeouts::all(500, 5000, 5000, 10_000)),
        )
        .route(Route::new("chat", "/v1").keyed().upstream("up1"))
        .access_log();
    for t in tenants {
        config = config.tenant(
            TenantConfig::new(&t.id)
                .quota(Quota::new("rpm", "tenant", "requests", 1_000_000, "1m"))
                .consumer(Consumer::new("app").key(&t.key)),
        );
    }
    config.yaml()
}

/// One request of the load: which replica and tenant, when, and the answer.
#[derive(Debug, Clone)]
struct Sample {
    gw: usize,
    tenant: usize,
    start: Instant,
    status: u16,
    code: Option<String>,
    request_id: String,
}

/// Sends requests one after the other as `tenant` to replica `gw` until `stop`.
async fn load(
    url: String,
    gw: usize,
    tenant: usize,
    key: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
    out: Arc<Mutex<Vec<Sample>>>,
) {
    let c = TestClient::new();
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    let auth = format!("Bearer {key}");
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let start = Instant::now();
        let r = c
            .post_json_with(&url, &body, &[("authorization", auth.as_str())])
            .await;
        out.lock().unwrap().push(Sample {
            gw,
            tenant,
            start,
            status: r.status,
            code: r.error_code(),
            request_id: r.header("x-request-id").unwrap_or_default().to_string(),
        });
    }
}

/// `gateway_state_node_degraded` of the replica at `admin_url`: node -> value.
async fn node_metric(admin_url: &str) -> HashMap<String, f64> {
    let scrape = Scrape::try_from_url(admin_url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    scrape
        .series("gateway_state_node_degraded")
        .filter_map(|s| Some((s.label("node")?.to_string(), s.value)))
        .collect()
}

/// Polls each replica's metrics until `stop`: whether each ever said `node` is
/// unreachable.
async fn watch_node(
    admin_urls: Vec<String>,
    node: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<bool> {
    let mut seen = vec![false; admin_urls.len()];
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        for (g, url) in admin_urls.iter().enumerate() {
            if node_metric(url).await.get(&node) == Some(&1.0) {
                seen[g] = true;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_dead_master_leaves_the_other_shards_alone() {
    let mut cluster = tokio::task::spawn_blocking(RedisCluster::start_with_replicas)
        .await
        .expect("cluster start");
    let mock = MockUpstream::start_default();
    let masters = cluster.masters();
    assert_eq!(masters.len(), 3, "{masters:?}");
    let global = key_slot("{g}");
    let victim = masters
        .iter()
        .find(|m| m.serves(global))
        .expect("a master holds {g}")
        .port;
    let tenants: Vec<Tenant> = masters
        .iter()
        .flat_map(|m| tenants_on(m, TENANTS_PER_SHARD))
        .collect();
    let modes = ["fail_closed", "fail_open"];
    let mut gws = Vec::new();
    for mode in modes {
        let yaml = config(&cluster, &mock, mode, &tenants);
        gws.push(
            Gateway::builder(&yaml)
                .env("GATEWAY_KEY_PEPPER", "")
                .start()
                .await,
        );
    }
    let c = TestClient::new();

    // every key known to both replicas before the load starts
    for gw in &gws {
        for t in &tenants {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let r = c
                    .post_json_with(
                        &format!("{}/v1/chat/completions", gw.url()),
                        &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
                        &[("authorization", &format!("Bearer {}", t.key))],
                    )
                    .await;
                if r.status == 200 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "tenant {} never served before the kill: {} {}",
                    t.id,
                    r.status,
                    r.text()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (g, gw) in gws.iter().enumerate() {
        for (i, t) in tenants.iter().enumerate() {
            tasks.push(tokio::spawn(load(
                format!("{}/v1/chat/completions", gw.url()),
                g,
                i,
                t.key.clone(),
                stop.clone(),
                samples.clone(),
            )));
        }
    }
    tokio::time::sleep(WARM).await;

    let killed = Instant::now();
    cluster.kill_port(victim);
    let victim_label = format!("127.0.0.1:{victim}");
    let watcher = tokio::spawn(watch_node(
        gws.iter().map(Gateway::admin_url).collect(),
        victim_label.clone(),
        stop.clone(),
    ));
    let slot = masters
        .iter()
        .find(|m| m.port == victim)
        .and_then(|m| m.slots.first())
        .map(|s| s.0)
        .expect("the victim's slots");
    let promoted = tokio::task::block_in_place(|| {
        cluster.wait_promoted(slot, victim, Duration::from_secs(20))
    });
    eprintln!(
        "master 127.0.0.1:{victim} killed; its replica took over after {:?}",
        promoted - killed
    );
    tokio::time::sleep(AFTER).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.expect("load task");
    }
    let seen_down = watcher.await.expect("metrics watcher");
    let samples = samples.lock().unwrap().clone();

    // quota_status of every answered request, from the access logs (written
    // off the request path: wait for the last lines)
    let mut status_of: HashMap<String, Option<String>> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for gw in &gws {
            for line in gw.access_log_lines() {
                status_of.insert(line.request_id.clone(), line.ai_log.quota_status.clone());
            }
        }
        let missing = samples
            .iter()
            .filter(|s| !status_of.contains_key(&s.request_id))
            .count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} requests have no access-log line"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let quota = |s: &Sample| status_of.get(&s.request_id).cloned().flatten();

    let mut failures = Vec::new();
    for (g, mode) in modes.iter().enumerate() {
        // the healthy shards: from the kill to the end
        let healthy: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.gw == g && tenants[s.tenant].master != victim && s.start >= killed)
            .collect();
        let errors = healthy.iter().filter(|s| s.status != 200).count();
        let unchecked = healthy
            .iter()
            .filter(|s| s.status == 200 && quota(s).as_deref() != Some("allowed"))
            .count();
        for s in healthy
            .iter()
            .filter(|s| s.status == 200 && quota(s).as_deref() != Some("allowed"))
            .take(3)
        {
            eprintln!(
                "{mode}: {} admitted with quota status {:?}, {:?} after the kill",
                s.request_id,
                quota(s),
                s.start - killed
            );
        }
        let mut codes: HashMap<String, usize> = HashMap::new();
        for s in healthy.iter().filter(|s| s.status != 200) {
            *codes
                .entry(format!(
                    "{} {}",
                    s.status,
                    s.code.clone().unwrap_or_default()
                ))
                .or_default() += 1;
        }
        eprintln!(
            "{mode}: other shards' tenants: {} requests, {errors} errors ({:.1}%) {codes:?}, {unchecked} admitted without their quota",
            healthy.len(),
            100.0 * errors as f64 / healthy.len().max(1) as f64
        );
        if healthy.len() < 100 {
            failures.push(format!(
                "{mode}: only {} requests on the other shards",
                healthy.len()
            ));
        }
        if errors * 100 >= healthy.len() {
            failures.push(format!(
                "{mode}: the other shards' tenants got {errors} errors in {} requests ({codes:?})",
                healthy.len()
            ));
        }
        if unchecked > 0 {
            failures.push(format!(
                "{mode}: {unchecked} requests of the other shards' tenants were admitted without their quota (bypassed)"
            ));
        }

        // the dead shard: the outage policy meanwhile, served normally within
        // RECOVERY of the promotion
        let dead: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.gw == g && tenants[s.tenant].master == victim && s.start >= killed)
            .collect();
        let ok = |s: &Sample| s.status == 200 && quota(s).as_deref() == Some("allowed");
        let outage = dead.iter().filter(|s| !ok(s)).count();
        let last_bad = dead.iter().filter(|s| !ok(s)).map(|s| s.start).max();
        // signed ms from the promotion to the start of the last refused or
        // unchecked request
        let late = last_bad.map(|t| {
            if t >= promoted {
                (t - promoted).as_millis() as i64
            } else {
                -((promoted - t).as_millis() as i64)
            }
        });
        let mut after: HashMap<String, usize> = HashMap::new();
        for s in dead.iter().filter(|s| s.start >= promoted && !ok(s)) {
            *after
                .entry(format!(
                    "{} {} {}",
                    s.status,
                    s.code.clone().unwrap_or_default(),
                    quota(s).unwrap_or_default()
                ))
                .or_default() += 1;
        }
        if !after.is_empty() {
            eprintln!("{mode}: dead shard's tenants after the promotion: {after:?}");
        }
        eprintln!(
            "{mode}: dead shard's tenants: {} requests, {outage} under the outage policy; the last one started {late:?} ms after the promotion",
            dead.len()
        );
        if outage == 0 {
            failures.push(format!(
                "{mode}: the dead shard's tenants never saw the outage"
            ));
        }
        if late.is_some_and(|l| l >= RECOVERY.as_millis() as i64) {
            failures.push(format!(
                "{mode}: the dead shard's tenants were still refused or unchecked {late:?} ms after the promotion"
            ));
        }
        if !dead.iter().any(|s| s.start >= promoted + RECOVERY && ok(s)) {
            failures.push(format!(
                "{mode}: no request of the dead shard served after the promotion"
            ));
        }
    }
    for (g, seen) in seen_down.iter().enumerate() {
        if !seen {
            failures.push(format!(
                "{}: gateway_state_node_degraded{{node=\"{victim_label}\"}} never said 1",
                modes[g]
            ));
        }
    }
    // after the promotion the dead node serves no slot and no node is down
    for (g, gw) in gws.iter().enumerate() {
        let m = node_metric(&gw.admin_url()).await;
        if m.values().any(|v| *v != 0.0) || m.len() != 3 {
            failures.push(format!("{}: nodes after the promotion: {m:?}", modes[g]));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n{}",
        failures.join("\n"),
        gws.iter()
            .zip(modes)
            .map(|(gw, m)| format!("stderr of the {m} replica:\n{}", gw.stderr()))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
