//! The chaos fleet's config: who the consumers are, the quotas the load presses
//! against, the accounting quotas the usage is read back from, and the
//! timeouts the faults play against.

use super::{Plan, Policy};
use crate::config::{Config, Consumer, Provider, Quota, Route, Server, State, Tenant, Timeouts};
use crate::harness::ADMIN_TOKEN;
use sha2::{Digest, Sha256};

/// Gateway replicas.
pub const REPLICAS: usize = 3;
/// The header whose value names the accounting window a request is counted in.
pub const ACCT_HEADER: &str = "x-chaos-acct";
/// Accounting quotas of every tenant (by [`ACCT_HEADER`], never pressed):
/// what Redis settled per label.
pub const ACCT_TOKENS: &str = "acct-tokens";
pub const ACCT_REQUESTS: &str = "acct-requests";
/// Every request's `max_tokens`.
pub const MAX_TOKENS: u64 = 16;
/// `state.redis.timeout_ms`: a call slower than this counts as unreachable.
pub const REDIS_TIMEOUT_MS: u64 = 250;
/// Provider timeouts: connect, first byte, idle between events, total.
pub const UPSTREAM_TIMEOUTS_MS: [u64; 4] = [500, 1000, 1000, 5000];
/// The mock's pause between stream events: streams take about 200 ms.
pub const CHUNK_DELAY_MS: u64 = 20;
/// `server.shutdown_grace_s` and `shutdown_delay_ms`.
pub const GRACE_S: u64 = 5;
pub const ACCEPT_DELAY_MS: u64 = 300;

/// What a quota counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Tokens,
    Requests,
}

/// Whose quota it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Consumer,
    Tenant,
}

/// A quota the load presses against; the limit is per [`Plan::window`],
/// a multiple of [`REPLICAS`] so every replica's `local` share is whole.
///
/// [`Plan::window`]: super::Plan::window
#[derive(Debug, Clone, Copy)]
pub struct QuotaSpec {
    pub name: &'static str,
    pub owner: Owner,
    pub strategy: Strategy,
    pub limit: u64,
}

/// One consumer and its quotas (tenant quotas of its tenant included).
#[derive(Debug, Clone, Copy)]
pub struct ConsumerSpec {
    pub tenant: &'static str,
    pub name: &'static str,
    pub key: &'static str,
    pub quotas: &'static [QuotaSpec],
}

const fn q(name: &'static str, owner: Owner, strategy: Strategy, limit: u64) -> QuotaSpec {
    QuotaSpec {
        name,
        owner,
        strategy,
        limit,
    }
}

/// The consumers; client task `i` speaks for `CONSUMERS[i % len]`. The first
/// three are pressed hard (a client's offered load is several times what the
/// limits let through); the fourth's tenant limit is far off, so there is
/// always traffic that should simply work.
pub const CONSUMERS: [ConsumerSpec; 4] = [
    ConsumerSpec {
        tenant: "acme",
        name: "tok",
        key: "sk-chaos-tok-0123456789abcdef",
        quotas: &[q("tok-tokens", Owner::Consumer, Strategy::Tokens, 18_000)],
    },
    ConsumerSpec {
        tenant: "acme",
        name: "req",
        key: "sk-chaos-req-0123456789abcdef",
        quotas: &[q("req-requests", Owner::Consumer, Strategy::Requests, 240)],
    },
    ConsumerSpec {
        tenant: "acme",
        name: "both",
        key: "sk-chaos-both-0123456789abcdef",
        quotas: &[
            q("both-tokens", Owner::Consumer, Strategy::Tokens, 12_000),
            q("both-requests", Owner::Consumer, Strategy::Requests, 150),
        ],
    },
    ConsumerSpec {
        tenant: "beta",
        name: "free",
        key: "sk-chaos-free-0123456789abcdef",
        quotas: &[q("beta-tokens", Owner::Tenant, Strategy::Tokens, 3_000_000)],
    },
];

/// Every pressing quota once (a tenant quota shared by consumers once).
pub fn quotas() -> Vec<QuotaSpec> {
    let mut out: Vec<QuotaSpec> = Vec::new();
    for c in CONSUMERS {
        for q in c.quotas {
            if !out.iter().any(|o| o.name == q.name) {
                out.push(*q);
            }
        }
    }
    out
}

/// Which of the two valid configs ([`ConfigReloads`] alternates them): the
/// second differs in things no request notices (a provider's connect timeout,
/// an unused route).
///
/// [`ConfigReloads`]: super::Fault::ConfigReloads
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Main,
    Alternate,
    /// refused by validation (a route naming a provider that does not exist)
    Invalid,
}

/// The replicas' config: Redis at `redis_url` (the proxy), the mock at
/// `mock_url`, `policy` when Redis cannot be reached.
pub fn config(policy: Policy, redis_url: &str, mock_url: &str, plan: &Plan, v: Variant) -> String {
    let window = plan.window;
    let [connect, first_byte, idle, total] = UPSTREAM_TIMEOUTS_MS;
    let connect = if v == Variant::Alternate {
        connect + 100
    } else {
        connect
    };
    let window = format!("{}s", window.as_secs().max(1));
    let mut cfg = Config::new()
        .server(
            Server::new()
                .admin_token(ADMIN_TOKEN)
                .shutdown_grace_s(GRACE_S)
                .shutdown_delay_ms(ACCEPT_DELAY_MS)
                .config_poll_ms(0),
        )
        .state(
            State::redis(redis_url)
                .redis_key("key_prefix", "chaos:")
                .redis_key("timeout_ms", REDIS_TIMEOUT_MS)
                .on_redis_error(policy.name())
                .expected_replicas(REPLICAS as u32)
                .quota_lease_s(plan.lease.as_secs().max(1)),
        )
        .key_headers(&["Authorization"])
        .provider(
            Provider::openai("mock", mock_url)
                .token("sk-upstream-chaos")
                .timeouts(Timeouts::all(connect, first_byte, idle, total)),
        )
        .route(Route::new("chat", "/v1").keyed().upstream("mock"));
    if v == Variant::Alternate {
        cfg = cfg.route(Route::new("unused", "/unused").keyed().upstream("mock"));
    }
    if v == Variant::Invalid {
        cfg = cfg.route(Route::new("broken", "/broken").upstream("no-such-provider"));
    }
    for tenant in ["acme", "beta"] {
        // the accounting quotas sit on the tenants, so every quota of a
        // request is in one hash tag and its access line's `quota_status`
        // says how each was checked
        let acct = |name: &str, strategy: &str| {
            Quota::new(
                name,
                &format!("header:{ACCT_HEADER}"),
                strategy,
                1 << 50,
                "1d",
            )
        };
        let mut t = Tenant::new(tenant)
            .quota(acct(ACCT_TOKENS, "total_tokens"))
            .quota(acct(ACCT_REQUESTS, "requests"));
        let of_tenant = || CONSUMERS.iter().filter(move |c| c.tenant == tenant);
        let mut tenant_quotas: Vec<&QuotaSpec> = Vec::new();
        for q in of_tenant().flat_map(|c| c.quotas.iter()) {
            if q.owner == Owner::Tenant && !tenant_quotas.iter().any(|o| o.name == q.name) {
                tenant_quotas.push(q);
            }
        }
        for q in tenant_quotas {
            t = t.quota(quota(q, &window));
        }
        for c in of_tenant() {
            let mut consumer = Consumer::new(c.name).key(c.key);
            for q in c.quotas.iter().filter(|q| q.owner == Owner::Consumer) {
                consumer = consumer.quota(quota(q, &window));
            }
            t = t.consumer(consumer);
        }
        cfg = cfg.tenant(t);
    }
    let cfg = cfg.access_log();
    match v {
        Variant::Invalid => cfg.yaml_unchecked(),
        _ => cfg.yaml(),
    }
}

fn quota(q: &QuotaSpec, window: &str) -> Quota {
    let by = match q.owner {
        Owner::Consumer => "consumer",
        Owner::Tenant => "tenant",
    };
    let strategy = match q.strategy {
        Strategy::Tokens => "total_tokens",
        Strategy::Requests => "requests",
    };
    Quota::new(q.name, by, strategy, q.limit, window)
}

/// The subject an accounting label is counted under in `/admin/usage`: the
/// gateway's digest of a header value without a pepper (`keys::subject_digest`;
/// `tests/tests/chaos.rs` checks the two agree).
pub fn label_digest(label: &str) -> String {
    let d = Sha256::new()
        .chain_update(b"gateway quota subject\0")
        .chain_update(label.as_bytes())
        .finalize();
    let hex: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}
