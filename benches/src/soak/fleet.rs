//! What the soak runs against: a real `redis-server`, the mock upstream (in
//! this process, on its own runtime thread) and gateway replicas sharing the
//! Redis, each on one of two configs (A and B) that a reload swaps; plus the
//! admin calls the churn makes.

use anyhow::{anyhow, Context, Result};
use gateway_tests::client::TestClient;
use gateway_tests::config::{
    Config, Consumer, Provider, Quota, Route, Server, State, Tenant, Timeouts,
};
use gateway_tests::harness::{Gateway, ADMIN_TOKEN};
use gateway_tests::mock_upstream::{MockOptions, MockUpstream};
use gateway_tests::redis::RedisServer;
use http::Method;
use serde_json::Value;

/// The seeded key of `soak/app`, the consumer most traffic uses.
pub const KEY_APP: &str = "sk-soak-app-000000000001";
/// The seeded key of `soak/tight`, whose request quota refuses part of its traffic.
pub const KEY_TIGHT: &str = "sk-soak-tight-00000000001";
/// The tenant the churn manages through the admin API (not in the config
/// files, so a reload's seed leaves it alone), and its one consumer.
pub const CHURN_TENANT: &str = "churn";
pub const CHURN_CONSUMER: &str = "rotating";
/// Header whose value the route's `by: header` quota counts separately.
pub const USER_HEADER: &str = "x-soak-user";
/// Requests `soak/tight` may make per 10 s, in config A and in config B.
pub const TIGHT_LIMIT: [u64; 2] = [50, 80];
/// The provider's first-byte timeout in config A and B, ms: an upstream that
/// stalls longer is answered 504.
pub const FIRST_BYTE_MS: [u64; 2] = [2000, 2500];
/// Content chunks of a mock stream.
pub const STREAM_CHUNKS: usize = 16;
/// A limit no run reaches (the quota still reserves and settles each request).
const UNREACHED: u64 = 1_000_000_000_000;

/// One of the two config files a reload alternates between: A (0) and B (1)
/// differ in the tight consumer's limit, the model the provider maps to and
/// its first-byte timeout, so a reload rebuilds the provider and the quotas.
pub fn config(variant: usize, redis_url: &str, mock_base_url: &str) -> String {
    let v = variant % 2;
    let model = ["mock-small", "mock-large"][v];
    Config::new()
        .server(Server::new().admin_token(ADMIN_TOKEN).config_poll_ms(0))
        .state(State::redis(redis_url).cache_ttl_ms(1000))
        .provider(
            Provider::openai("mock", mock_base_url)
                .token("sk-soak-upstream")
                .map("*", model)
                .timeouts(Timeouts::all(1000, FIRST_BYTE_MS[v], 5000, 30_000)),
        )
        .route(
            Route::new("chat", "/v1")
                .keyed()
                .upstream("mock")
                .quota(Quota::new(
                    "per-user",
                    &format!("header:{USER_HEADER}"),
                    "requests",
                    UNREACHED,
                    "1m",
                )),
        )
        .tenant(
            Tenant::new("soak")
                .quota(Quota::new(
                    "soak-tpm",
                    "tenant",
                    "total_tokens",
                    UNREACHED,
                    "1m",
                ))
                .consumer(
                    Consumer::new("app")
                        .key(KEY_APP)
                        .quota(Quota::new(
                            "app-tpm",
                            "consumer",
                            "total_tokens",
                            UNREACHED,
                            "1m",
                        ))
                        .quota(Quota::new(
                            "app-rpm", "consumer", "requests", UNREACHED, "1m",
                        )),
                )
                .consumer(Consumer::new("tight").key(KEY_TIGHT).quota(Quota::new(
                    "tight-rp10s",
                    "consumer",
                    "requests",
                    TIGHT_LIMIT[v],
                    "10s",
                ))),
        )
        .access_log()
        .yaml()
}

/// The running parts. Dropping it stops the gateways and Redis (the mock
/// stops with it too).
pub struct Fleet {
    pub redis: RedisServer,
    pub mock: MockUpstream,
    pub gateways: Vec<Gateway>,
    client: TestClient,
}

impl Fleet {
    /// Starts Redis, the mock and `replicas` gateways on config A, and creates
    /// the churn tenant and consumer.
    pub async fn start(replicas: usize) -> Result<Fleet> {
        let redis = tokio::task::spawn_blocking(RedisServer::start)
            .await
            .context("starting redis-server")?;
        let mock = MockUpstream::try_start(MockOptions {
            stream_chunks: STREAM_CHUNKS,
            record_requests: false,
            ..MockOptions::default()
        })
        .context("starting the mock upstream")?;
        let yaml = config(0, &redis.url(), &mock.base_url());
        let mut gateways = Vec::new();
        for i in 0..replicas {
            let gw = Gateway::builder(&yaml)
                .try_start()
                .await
                .map_err(|e| anyhow!("gateway replica {}: {e}", i + 1))?;
            gateways.push(gw);
        }
        let fleet = Fleet {
            redis,
            mock,
            gateways,
            client: TestClient::new(),
        };
        fleet.put_churn_consumer(0).await?;
        Ok(fleet)
    }

    /// `http://127.0.0.1:PORT/v1/chat/completions` of each replica.
    pub fn chat_urls(&self) -> Vec<String> {
        self.gateways
            .iter()
            .map(|g| format!("{}/v1/chat/completions", g.url()))
            .collect()
    }

    /// An admin call to `replica` with the admin token: (status, JSON body or
    /// Null); `Err` for a transport failure.
    pub async fn admin(
        &self,
        replica: usize,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let gw = self
            .gateways
            .get(replica)
            .ok_or_else(|| format!("no replica {replica}"))?;
        let auth = format!("Bearer {ADMIN_TOKEN}");
        let body = body.map(Value::to_string).unwrap_or_default();
        let r = self
            .client
            .try_request(
                method,
                &format!("{}{path}", gw.admin_url()),
                &[
                    ("authorization", auth.as_str()),
                    ("content-type", "application/json"),
                ],
                body,
            )
            .await?;
        Ok((
            r.status,
            serde_json::from_slice(&r.body).unwrap_or(Value::Null),
        ))
    }

    /// Writes config `variant` into `replica`'s file and asks it to reload:
    /// the status of `POST /admin/config/reload`.
    pub async fn reload(&self, replica: usize, variant: usize) -> Result<u16, String> {
        let gw = self
            .gateways
            .get(replica)
            .ok_or_else(|| format!("no replica {replica}"))?;
        gw.write_config(&config(variant, &self.redis.url(), &self.mock.base_url()));
        let (status, _) = self
            .admin(replica, Method::POST, "/admin/config/reload", None)
            .await?;
        Ok(status)
    }

    /// `PUT`s the churn tenant and its consumer (through `replica`).
    pub async fn put_churn_consumer(&self, replica: usize) -> Result<()> {
        let tenant = format!("/admin/tenants/{CHURN_TENANT}");
        let consumer = serde_json::json!({"quotas": [
            {"name": "rotating-rpm", "by": "consumer", "strategy": "requests", "limit": UNREACHED, "window": "1m"}
        ]});
        for (path, body) in [
            (tenant.clone(), serde_json::json!({})),
            (format!("{tenant}/consumers/{CHURN_CONSUMER}"), consumer),
        ] {
            let (status, answer) = self
                .admin(replica, Method::PUT, &path, Some(&body))
                .await
                .map_err(|e| anyhow!("PUT {path}: {e}"))?;
            if status != 200 && status != 201 {
                return Err(anyhow!("PUT {path}: {status} {answer}"));
            }
        }
        Ok(())
    }
}
