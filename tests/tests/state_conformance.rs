//! The state backend conformance suite (`gateway::state::conformance`) against
//! real Redis: a standalone server and a 3-node Redis Cluster, both started here.
//! Plus what only Redis can do wrong: scripts lost by a flush are reloaded
//! invisibly, the key prefix keeps two deployments apart, an unreachable server
//! is reported as unavailable (never as "not found") and recovery is automatic.
//! The quota store suite (`gateway::quota::conformance`) runs on the same servers.

use gateway::quota::store::QuotaStore;
use gateway::redis_conn::{ConnSettings, Target};
use gateway::state::conformance::{self, consumer, key, tenant};
use gateway::state::redis::RedisStore;
use gateway::state::{StateError, Store};
use gateway_tests::redis::{RedisCluster, RedisServer};
use std::sync::Arc;
use std::time::Duration;

fn store(target: Target, prefix: &str) -> Store {
    Store::Redis(
        RedisStore::new(ConnSettings {
            target,
            pool_size: 4,
            timeout: Duration::from_millis(500),
            prefix: prefix.to_string(),
        })
        .unwrap(),
    )
}

/// Scripts loaded and the data marked as written, as the gateway does at start.
async fn prepare(s: &Store) {
    conn(s).load_scripts().await.unwrap();
    if let Store::Redis(r) = s {
        r.mark_prepared().await.unwrap();
    }
}

fn conn(s: &Store) -> &gateway::redis_conn::RedisConn {
    redis_conn(s)
}

fn redis_conn(s: &Store) -> &Arc<gateway::redis_conn::RedisConn> {
    match s {
        Store::Redis(r) => &r.conn,
        Store::Memory(_) => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_redis_conforms() {
    let redis = RedisServer::start();
    let s = store(Target::Single(redis.url()), "gw:");
    prepare(&s).await;
    conformance::run(&s).await;
    // the quota store on the same connection
    let q = QuotaStore::redis(Arc::clone(redis_conn(&s)));
    gateway::quota::conformance::run(&q, "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_conforms() {
    let cluster = RedisCluster::start();
    let s = store(Target::Cluster(cluster.nodes()), "gw:");
    prepare(&s).await;
    conformance::run(&s).await;
    let q = QuotaStore::redis(Arc::clone(redis_conn(&s)));
    gateway::quota::conformance::run(&q, "").await;
    // the data really is spread over the nodes (hash tags, not one slot for all)
    let s2 = store(Target::Cluster(cluster.nodes()), "spread:");
    for i in 0..12 {
        s2.put_tenant(tenant(&format!("t{i}"))).await.unwrap();
    }
    let used = (0..3)
        .filter(|&i| cluster.node_cli(i, &["DBSIZE"]).trim() != "0")
        .count();
    assert!(used >= 2, "tenants all landed on one node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushed_scripts_are_reloaded_and_prefixes_isolate() {
    let redis = RedisServer::start();
    let a = store(Target::Single(redis.url()), "a:");
    let b = store(Target::Single(redis.url()), "b:");
    prepare(&a).await;
    a.put_tenant(tenant("acme")).await.unwrap();
    // every script is gone (as after a restart or failover): writes still work
    assert_eq!(redis.cli(&["SCRIPT", "FLUSH"]), "OK");
    a.put_consumer(consumer("acme", "bob")).await.unwrap();
    a.insert_key(key("acme", "bob", "k1", 'a')).await.unwrap();
    // another prefix sees none of it; before its data is marked as written
    // (a Redis that lost it), an unknown key is "unavailable", not "unknown"
    assert!(b.list_tenants().await.unwrap().is_empty());
    assert!(matches!(
        b.lookup(&"a".repeat(64)).await,
        Err(StateError::Unavailable(_))
    ));
    if let Store::Redis(r) = &b {
        r.mark_prepared().await.unwrap();
    }
    assert!(b.lookup(&"a".repeat(64)).await.unwrap().is_none());
    assert_eq!(
        a.lookup(&"a".repeat(64)).await.unwrap().unwrap().key.id,
        "k1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_is_unavailable_and_recovers() {
    let mut redis = RedisServer::start();
    let s = store(Target::Single(redis.url()), "gw:");
    s.put_tenant(tenant("acme")).await.unwrap();
    redis.stop();
    assert!(matches!(
        s.lookup(&"a".repeat(64)).await,
        Err(StateError::Unavailable(_))
    ));
    assert!(matches!(
        s.put_tenant(tenant("beta")).await,
        Err(StateError::Unavailable(_))
    ));
    assert!(s.is_degraded());
    redis.restart();
    // empty server, no scripts: the first script call loads it again
    s.put_tenant(tenant("acme")).await.unwrap();
    s.put_consumer(consumer("acme", "bob")).await.unwrap();
    assert!(!s.is_degraded());
    assert_eq!(s.list_consumers("acme").await.unwrap().len(), 1);
}

/// The delete scripts as they run on their own: the first step of a delete,
/// after which the gateway deletes the key records (the step an interruption
/// skips).
const CONSUMER_DELETE: &str = include_str!("../../lua/consumer_delete.v1.lua");
const TENANT_DELETE: &str = include_str!("../../lua/tenant_delete.v1.lua");

/// A delete interrupted after its first step leaves the key records behind,
/// unlisted: they never resolve again, neither when the consumer is made anew
/// nor when the tenant is, and nobody else can claim their digest; inserting
/// the same key again (the seed written again) lists it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_left_by_an_interrupted_delete_never_resolve() {
    let redis = RedisServer::start();
    let s = store(Target::Single(redis.url()), "gw:");
    prepare(&s).await;
    let record = |d: char| format!("gw:{{k:{}}}", d.to_string().repeat(64));
    s.put_tenant(tenant("acme")).await.unwrap();
    s.put_consumer(consumer("acme", "bob")).await.unwrap();
    s.insert_key(key("acme", "bob", "k1", 'a')).await.unwrap();
    s.insert_key(key("acme", "bob", "k2", 'b')).await.unwrap();

    // consumer: the script ran, the records stayed
    redis.cli(&[
        "EVAL",
        CONSUMER_DELETE,
        "2",
        "gw:{t:acme}:consumers",
        "gw:{t:acme}:keys",
        "bob",
    ]);
    assert_eq!(redis.cli(&["EXISTS", &record('a'), &record('b')]), "2");
    s.put_consumer(consumer("acme", "bob")).await.unwrap();
    assert!(s.lookup(&"a".repeat(64)).await.unwrap().is_none());
    assert!(s.lookup(&"b".repeat(64)).await.unwrap().is_none());
    assert!(s.list_keys("acme", "bob").await.unwrap().is_empty());
    // another key cannot take the digest; the same key again is listed again
    assert!(matches!(
        s.insert_key(key("acme", "bob", "other", 'a')).await,
        Err(StateError::Conflict(_))
    ));
    s.insert_key(key("acme", "bob", "k1", 'a')).await.unwrap();
    assert_eq!(
        s.lookup(&"a".repeat(64)).await.unwrap().unwrap().key.id,
        "k1"
    );
    assert!(s.lookup(&"b".repeat(64)).await.unwrap().is_none());

    // tenant: the script ran, the records stayed
    redis.cli(&[
        "EVAL",
        TENANT_DELETE,
        "3",
        "gw:{t:acme}:tenant",
        "gw:{t:acme}:consumers",
        "gw:{t:acme}:keys",
    ]);
    assert_eq!(redis.cli(&["EXISTS", &record('a')]), "1");
    s.put_tenant(tenant("acme")).await.unwrap();
    s.put_consumer(consumer("acme", "bob")).await.unwrap();
    assert!(s.lookup(&"a".repeat(64)).await.unwrap().is_none());
    assert!(s.list_keys("acme", "bob").await.unwrap().is_empty());

    // a complete delete leaves no record behind
    s.insert_key(key("acme", "bob", "k3", 'c')).await.unwrap();
    s.delete_consumer("acme", "bob").await.unwrap();
    assert_eq!(redis.cli(&["EXISTS", &record('c')]), "0");
}
