//! The replica's key cache against a real Redis, counted at the server: a cache
//! hit costs no Redis command, a repeated unknown key costs one lookup per TTL,
//! and a lost pub/sub subscription flushes the cache (so a change made while no
//! notification could arrive is seen at the next request, not at TTL end); a
//! key read while Redis is being seeded again is not refused, and a Redis
//! slower than the client library's default timeout but within `timeout_ms`
//! is no outage.

use gateway_tests::client::{chat_body, TestClient};
use gateway_tests::config::{Config, Consumer, Provider, Route, Server, State, Tenant};
use gateway_tests::harness::{Gateway, ADMIN_TOKEN};
use gateway_tests::metrics::metric;
use gateway_tests::netfault::FaultyProxy;
use gateway_tests::redis::RedisServer;
use std::time::{Duration, Instant};

const SEED_KEY: &str = "sk-cache-test-seeded-key-1";

fn config(redis_url: &str, ttl_ms: u64) -> String {
    Config::new()
        .server(Server::new().admin_token(ADMIN_TOKEN))
        .state(State::redis(redis_url).cache_ttl_ms(ttl_ms))
        .provider(Provider::mock("m"))
        .route(Route::new("chat", "/v1").keyed().upstream("m"))
        .tenant(Tenant::new("acme").consumer(Consumer::new("bob").key(SEED_KEY)))
        // the ledger's script calls (every 250 ms; their HGET counts in
        // commandstats like a lookup's) are not what these tests count
        .no_ledger()
        .access_log()
        .yaml()
}

/// What a key lookup sends (see `lookup` in gateway/src/state/redis.rs): the
/// key record (HGETALL), then for a known key its tenant (GET), consumer and
/// index entry (HGET, HGET), for an unknown one the seed marker (EXISTS) and
/// the record again.
const LOOKUP_COMMANDS: [&str; 4] = ["hgetall", "get", "hget", "exists"];

/// How often the state monitor checks the seed marker with an EXISTS of its
/// own (`PING_EVERY` in gateway/src/auth/sync.rs): the one lookup command
/// Redis also sees without any request.
const MONITOR_EVERY: Duration = Duration::from_millis(500);

/// `calls` of each of [`LOOKUP_COMMANDS`] in `INFO commandstats`.
fn lookup_calls(redis: &RedisServer) -> [u64; 4] {
    LOOKUP_COMMANDS.map(|c| calls(redis, c))
}

/// `calls` of one command in `INFO commandstats`.
fn calls(redis: &RedisServer, cmd: &str) -> u64 {
    let stats = redis.cli(&["INFO", "commandstats"]);
    let prefix = format!("cmdstat_{cmd}:calls=");
    stats
        .lines()
        .find_map(|l| l.trim().strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

async fn chat(gw: &Gateway, key: &str) -> u16 {
    TestClient::new()
        .post_json_with(
            &format!("{}/v1/chat/completions", gw.url()),
            &chat_body("gpt-4o", "hi"),
            &[("authorization", &format!("Bearer {key}"))],
        )
        .await
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_hits_and_repeated_bad_keys_cost_no_redis_calls() {
    let redis = RedisServer::start();
    let gw = Gateway::start(&config(&redis.url(), 10_000)).await;
    // (subscribing flushes the cache: keys cached before are looked up again)
    wait_subscribed(&redis).await;
    assert_eq!(chat(&gw, SEED_KEY).await, 200);
    assert_eq!(chat(&gw, "sk-not-a-key-of-ours").await, 401);
    // the upstream-health mirror reads its provider's hash with one script call
    // at start and then every cache_ttl_ms (10 s here), and that script's HGETALL
    // counts in commandstats too: let the start-up read land before counting
    let t = std::time::Instant::now();
    while calls(&redis, "evalsha") == 0 {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "no health read"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let before = lookup_calls(&redis);
    let t = Instant::now();
    for _ in 0..100 {
        assert_eq!(chat(&gw, SEED_KEY).await, 200);
        assert_eq!(chat(&gw, "sk-not-a-key-of-ours").await, 401);
    }
    let took = t.elapsed();
    let after = lookup_calls(&redis);
    let made: Vec<(&str, u64)> = LOOKUP_COMMANDS
        .iter()
        .zip(after.iter().zip(before))
        .map(|(c, (a, b))| (*c, a - b))
        .collect();
    // every command a lookup sends, except the monitor's own EXISTS, not once
    assert_eq!(
        &made[..3],
        &[("hgetall", 0), ("get", 0), ("hget", 0)],
        "200 requests with a cached good key and a cached bad key made key lookups"
    );
    // EXISTS: only the monitor's, one per MONITOR_EVERY (a lookup of the bad
    // key per request would be 100)
    let monitor = took.as_millis() as u64 / MONITOR_EVERY.as_millis() as u64 + 2;
    assert!(
        made[3].1 <= monitor,
        "{} EXISTS in {took:?} (the monitor sends at most {monitor}): {made:?}",
        made[3].1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_subscription_flushes_the_cache() {
    let redis = RedisServer::start();
    // a TTL far beyond the test: only the flush can make the change visible
    let gw = Gateway::start(&config(&redis.url(), 600_000)).await;
    // (subscribing flushes the cache: a key cached before that is looked up again)
    wait_subscribed(&redis).await;
    assert_eq!(chat(&gw, SEED_KEY).await, 200);
    let digest = {
        let field = redis.cli(&["HKEYS", "gw:{t:acme}:keys"]);
        redis.cli(&["HGET", "gw:{t:acme}:keys", field.trim()])
    };
    assert_eq!(digest.len(), 64, "{digest}");
    // revoke behind the gateway's back: no notification is published
    redis.cli(&["HSET", &format!("gw:{{k:{digest}}}"), "revoked", "1"]);
    assert_eq!(
        chat(&gw, SEED_KEY).await,
        200,
        "the cached key is trusted until a notification or the TTL"
    );
    // the subscription breaks: whatever it might have carried is unknown now
    let killed = redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    assert_ne!(killed.trim(), "0", "the gateway had a subscriber");
    let t0 = Instant::now();
    loop {
        if chat(&gw, SEED_KEY).await == 401 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "still accepted 2 s after the subscription was lost"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "revoked key refused {} ms after the subscription was lost",
        t0.elapsed().as_millis()
    );
    // and the gateway subscribes again
    wait_subscribed(&redis).await;
}

/// Waits until the gateway listens on the change channel.
async fn wait_subscribed(redis: &RedisServer) {
    let t0 = Instant::now();
    while redis
        .cli(&["PUBSUB", "NUMSUB", "gw:changes"])
        .lines()
        .nth(1)
        != Some("1")
    {
        assert!(t0.elapsed() < Duration::from_secs(5), "never subscribed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_entry_under_load_is_looked_up_once() {
    let redis = RedisServer::start();
    let gw = Gateway::start(&config(&redis.url(), 1_000)).await;
    assert_eq!(chat(&gw, SEED_KEY).await, 200);
    tokio::time::sleep(Duration::from_millis(1_100)).await; // the entry is past its TTL
    let before = lookup_calls(&redis);
    let burst: Vec<_> = (0..48)
        .map(|_| {
            let url = gw.url();
            tokio::spawn(async move {
                TestClient::new()
                    .post_json_with(
                        &format!("{url}/v1/chat/completions"),
                        &chat_body("gpt-4o", "hi"),
                        &[("authorization", &format!("Bearer {SEED_KEY}"))],
                    )
                    .await
                    .status
            })
        })
        .collect();
    for r in burst {
        assert_eq!(r.await.unwrap(), 200);
    }
    let after = lookup_calls(&redis);
    // a lookup of the good key: HGETALL of its record, then GET, HGET, HGET
    let lookups = after[0] - before[0];
    assert!(
        (1..=2).contains(&lookups),
        "48 concurrent requests on an expired entry made {lookups} key lookups (the expired entry must be looked up again, and only once or twice)"
    );
    let (gets, hgets) = (after[1] - before[1], after[2] - before[2]);
    assert!(
        gets >= 1 && hgets >= 2,
        "the lookup read the tenant (GET), consumer and index entry (HGET, HGET): {gets} GET, {hgets} HGET"
    );
}

/// Keys of two more seeded consumers, for the lookups made while the seed is
/// written again.
const CAROL_KEY: &str = "sk-cache-test-seeded-carol";
const DAVE_KEY: &str = "sk-cache-test-seeded-dave";

/// What a replica writing the seed again has not written yet when a lookup
/// reads the key (besides the seed marker, written last).
#[derive(Debug, Clone, Copy)]
enum NotYet {
    /// the key's record (Redis came back empty)
    Record,
    /// the key's entry in its tenant's index (written after the record)
    IndexEntry,
}

/// A lookup that reads a key while Redis is empty (restarted without its
/// data) or half-seeded, and the seed marker after another replica finished
/// writing the seed, must not call the key unknown: a key that does not
/// resolve is read again once the marker is seen. The replica reaches Redis
/// through a proxy adding 400 ms each way, so its reads reach the server
/// 800 ms apart (the record at ~400 ms, the index entry at ~1,200 ms, then the
/// marker); what the seed writes vanishes just before the read that misses
/// it and comes back, the marker last, before the marker read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_read_while_the_seed_is_written_again_is_not_refused() {
    let redis = RedisServer::start();
    let proxy = FaultyProxy::start(format!("127.0.0.1:{}", redis.port()).parse().unwrap()).await;
    let url = format!("redis://{}/0", proxy.addr());
    let yaml = Config::new()
        .server(Server::new().admin_token(ADMIN_TOKEN))
        .state(State::redis(&url).redis_key("timeout_ms", 5_000))
        .provider(Provider::mock("m"))
        .route(Route::new("chat", "/v1").keyed().upstream("m"))
        .tenant(
            Tenant::new("acme")
                .consumer(Consumer::new("carol").key(CAROL_KEY))
                .consumer(Consumer::new("dave").key(DAVE_KEY)),
        )
        .no_ledger()
        .access_log()
        .yaml();
    let gw = Gateway::start(&yaml).await;
    wait_subscribed(&redis).await;
    proxy.set_latency(Duration::from_millis(400));
    for (key, consumer, not_yet) in [
        (CAROL_KEY, "carol", NotYet::Record),
        (DAVE_KEY, "dave", NotYet::IndexEntry),
    ] {
        let index = redis.cli(&["HGETALL", "gw:{t:acme}:keys"]);
        let lines: Vec<&str> = index.lines().map(str::trim).collect();
        let at = lines
            .iter()
            .position(|l| l.starts_with(&format!("{consumer}/")))
            .unwrap_or_else(|| panic!("no index entry of {consumer}: {index}"));
        let (field, digest) = (lines[at].to_string(), lines[at + 1].to_string());
        let record = format!("gw:{{k:{digest}}}");
        let marker = "gw:{g}:seeded";
        let request = tokio::spawn({
            let url = gw.url();
            async move {
                TestClient::new()
                    .post_json_with(
                        &format!("{url}/v1/chat/completions"),
                        &chat_body("gpt-4o", "hi"),
                        &[("authorization", &format!("Bearer {key}"))],
                    )
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        match not_yet {
            NotYet::Record => redis.cli(&["RENAME", &record, "hidden"]),
            NotYet::IndexEntry => redis.cli(&["HDEL", "gw:{t:acme}:keys", &field]),
        };
        redis.cli(&["RENAME", marker, "hidden-marker"]);
        // back after the read that misses it, before the marker read
        let back_at = match not_yet {
            NotYet::Record => 650,
            NotYet::IndexEntry => 1_500,
        };
        tokio::time::sleep(Duration::from_millis(back_at - 150)).await;
        match not_yet {
            NotYet::Record => redis.cli(&["RENAME", "hidden", &record]),
            NotYet::IndexEntry => redis.cli(&["HSET", "gw:{t:acme}:keys", &field, &digest]),
        };
        redis.cli(&["RENAME", "hidden-marker", marker]);
        let r = request.await.unwrap();
        assert_eq!(
            r.status,
            200,
            "a seeded key refused while its {not_yet:?} and the marker came back: {}",
            r.text()
        );
    }
}

/// `state.redis.timeout_ms` is the limit of a call, not the client library's
/// own default (redis-rs cuts a standalone connection's answers after 500 ms):
/// with 400 ms added each way and a budget of 3 s, keys are looked up and
/// Redis is not taken for down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_slower_than_500_ms_within_timeout_ms_is_not_an_outage() {
    let redis = RedisServer::start();
    let proxy = FaultyProxy::start(format!("127.0.0.1:{}", redis.port()).parse().unwrap()).await;
    let url = format!("redis://{}/0", proxy.addr());
    let yaml = Config::new()
        .server(Server::new().admin_token(ADMIN_TOKEN))
        .state(State::redis(&url).redis_key("timeout_ms", 3_000))
        .provider(Provider::mock("m"))
        .route(Route::new("chat", "/v1").keyed().upstream("m"))
        .tenant(Tenant::new("acme").consumer(Consumer::new("bob").key(SEED_KEY)))
        .no_ledger()
        .yaml();
    let gw = Gateway::start(&yaml).await;
    proxy.set_latency(Duration::from_millis(400));
    let t = Instant::now();
    assert_eq!(chat(&gw, SEED_KEY).await, 200, "{}", gw.stderr());
    assert!(
        t.elapsed() >= Duration::from_millis(1_600),
        "the lookup's two round trips took {:?}: the latency was not in the way",
        t.elapsed()
    );
    assert_eq!(metric(&gw, "gateway_state_degraded").await, 0.0);
}
