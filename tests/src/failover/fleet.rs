//! Who sends what in a failover run: per `on_redis_error` policy a fleet of
//! gateway replicas (its own key prefix, so fleets never share a window), and
//! tenants whose quota windows (`{t:<tenant>}`) and consumer keys
//! (`{k:<sha256>}`) all live on one shard's master: per policy and shard a
//! control tenant loaded for the whole run, and per policy and fault a tenant
//! on the fault's shard, loaded from a little more than a window before its
//! fault to a window after it. A fault's tenant has a consumer pressed against
//! a request quota, one pressed against a token quota (every pressed consumer
//! also carries two accounting windows that never refuse), and a `cold`
//! consumer that sends nothing until its fault is over (its key is looked up
//! for the first time on the promoted replica).

use super::{Plan, Policy};
use crate::config::{
    Config, Consumer as ConsumerConfig, Provider, Quota, Route, Server, State, Tenant, Timeouts,
};
use crate::harness::{Gateway, ADMIN_TOKEN};
use crate::mock_upstream::MockUpstream;
use crate::redis::{ClusterNode, RedisCluster};

/// The pressed request quota of a `requests` consumer.
pub const REQUEST_QUOTA: &str = "rpw";
/// The pressed token quota of a `tokens` consumer.
pub const TOKEN_QUOTA: &str = "tpw";
/// The accounting windows of every consumer: an hour, limits never reached.
pub const ACCOUNT_REQUESTS: &str = "acct-requests";
pub const ACCOUNT_TOKENS: &str = "acct-tokens";
/// Limit of the accounting windows.
const UNREACHABLE: u64 = 1_000_000_000_000;
/// `state.quota_lease_s`: a reservation whose call timed out after Redis had
/// made it (the request was answered with the outage policy) is given back
/// this soon, before the accounting windows are read.
pub const LEASE_S: u64 = 5;

/// What a consumer's load presses against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pressed {
    /// `rpw`: requests per window
    Requests,
    /// `tpw`: total tokens per window
    Tokens,
    /// nothing: the `cold` consumer, used once after each fault
    Cold,
}

/// One consumer of the run.
#[derive(Debug, Clone)]
pub struct Consumer {
    pub policy: Policy,
    /// index of the shard (0..3, masters ordered by their first slot at the start)
    pub shard: usize,
    /// the fault it is loaded around (index into the plan's faults); `None`
    /// for a control consumer, loaded for the whole run
    pub fault: Option<usize>,
    pub tenant: String,
    pub name: String,
    pub key: String,
    pub pressed: Pressed,
}

impl Consumer {
    /// `tenant/name`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.tenant, self.name)
    }
}

/// The shard fault `n` of a plan hits.
pub fn shard_of(n: usize, shards: usize) -> usize {
    n % shards.max(1)
}

/// The consumers of `policy`: a control consumer on each of `shards`
/// (masters at the start) and the consumers of each of `faults` faults.
pub fn consumers(policy: Policy, shards: &[ClusterNode], faults: usize) -> Vec<Consumer> {
    let mut out = Vec::new();
    let mut add = |master: &ClusterNode, shard, fault, tenant: &str, name: &str, pressed| {
        out.push(Consumer {
            policy,
            shard,
            fault,
            key: master.key_here(&format!("{tenant}-{name}")),
            tenant: tenant.to_string(),
            name: name.into(),
            pressed,
        });
    };
    for (s, master) in shards.iter().enumerate() {
        let tenant = master.tenant_here(&format!("{}-s{s}-control", policy.short()));
        add(master, s, None, &tenant, "requests", Pressed::Requests);
    }
    for n in 0..faults {
        let s = shard_of(n, shards.len());
        let tenant = shards[s].tenant_here(&format!("{}-f{n}", policy.short()));
        for (name, pressed) in [
            ("requests", Pressed::Requests),
            ("tokens", Pressed::Tokens),
            ("cold", Pressed::Cold),
        ] {
            add(&shards[s], s, Some(n), &tenant, name, pressed);
        }
    }
    out
}

/// The config of `policy`'s replicas.
pub fn config(
    plan: &Plan,
    policy: Policy,
    cluster: &RedisCluster,
    mock: &MockUpstream,
    consumers: &[Consumer],
) -> String {
    let window = format!("{}s", plan.window.as_secs());
    let mut config = Config::new()
        .server(Server::new().admin_token(ADMIN_TOKEN))
        .state(
            State::redis_cluster(&cluster.nodes())
                .redis_key("key_prefix", format!("{}:", policy.short()))
                .redis_key("timeout_ms", plan.redis_timeout_ms)
                .on_redis_error(policy.name())
                .expected_replicas(plan.replicas as u32)
                .cache_ttl_ms(1000)
                .quota_lease_s(LEASE_S),
        )
        .key_headers(&["Authorization"])
        .provider(
            Provider::openai("up1", &mock.base_url())
                .token("sk-upstream-secret")
                .timeouts(Timeouts::all(1000, 10_000, 10_000, 30_000)),
        )
        .route(Route::new("chat", "/v1").keyed().upstream("up1"))
        .access_log();
    let mut tenants: Vec<&str> = consumers.iter().map(|c| c.tenant.as_str()).collect();
    tenants.dedup();
    for t in tenants {
        let mut tenant = Tenant::new(t);
        for c in consumers.iter().filter(|c| c.tenant == t) {
            let mut cc = ConsumerConfig::new(&c.name)
                .key(&c.key)
                .quota(Quota::new(
                    ACCOUNT_REQUESTS,
                    "consumer",
                    "requests",
                    UNREACHABLE,
                    "1h",
                ))
                .quota(Quota::new(
                    ACCOUNT_TOKENS,
                    "consumer",
                    "total_tokens",
                    UNREACHABLE,
                    "1h",
                ));
            cc = match c.pressed {
                Pressed::Requests => cc.quota(Quota::new(
                    REQUEST_QUOTA,
                    "consumer",
                    "requests",
                    plan.request_limit(),
                    &window,
                )),
                Pressed::Tokens => cc.quota(Quota::new(
                    TOKEN_QUOTA,
                    "consumer",
                    "total_tokens",
                    plan.token_limit(),
                    &window,
                )),
                Pressed::Cold => cc,
            };
            tenant = tenant.consumer(cc);
        }
        config = config.tenant(tenant);
    }
    config.yaml()
}

/// The replicas of one policy.
pub struct Fleet {
    pub policy: Policy,
    pub gateways: Vec<Gateway>,
    /// their pids at the start: the same processes must answer at the end
    pub pids: Vec<u32>,
}

impl Fleet {
    pub async fn start(yaml: &str, policy: Policy, replicas: usize) -> Fleet {
        let mut gateways = Vec::new();
        for _ in 0..replicas {
            gateways.push(
                Gateway::builder(yaml)
                    .env("GATEWAY_KEY_PEPPER", "")
                    .start()
                    .await,
            );
        }
        let pids = gateways.iter().map(Gateway::pid).collect();
        Fleet {
            policy,
            gateways,
            pids,
        }
    }
}
