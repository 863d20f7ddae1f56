//! The system under test of one policy's chaos run, on loopback: a persistent
//! `redis-server`, the [`FaultyProxy`] the replicas reach it through, the mock
//! upstream, [`REPLICAS`] gateway replicas behind the test balancer (which
//! follows `/readyz`, as a Kubernetes Service does), and what replaces and
//! stops them. Replicas that were stopped or killed are kept (not running) for
//! their access logs and stderr.

use super::spec::{self, Variant, CHUNK_DELAY_MS, REPLICAS};
use super::{Plan, Policy};
use crate::balancer::Balancer;
use crate::client::TestClient;
use crate::harness::{admin, Gateway};
use crate::metrics::try_metric;
use crate::mock_upstream::{MockOptions, MockUpstream};
use crate::netfault::FaultyProxy;
use crate::redis::lease::held_reservations;
use crate::redis::RedisServer;
use http::Method;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a new replica may take to be ready behind the balancer.
const READY_WITHIN: Duration = Duration::from_secs(15);

pub struct Fleet {
    pub policy: Policy,
    pub redis: RedisServer,
    pub proxy: FaultyProxy,
    pub mock: MockUpstream,
    pub balancer: Balancer,
    /// every replica started, in order
    pub replicas: Vec<Gateway>,
    /// indexes (into `replicas`) of those in service
    pub live: Vec<usize>,
    /// the admin URLs of the replicas in service (read by the usage sampler)
    pub admins: Arc<Mutex<Vec<String>>>,
    plan: Plan,
    client: TestClient,
}

impl Fleet {
    pub async fn start(plan: &Plan, policy: Policy) -> Fleet {
        let redis = tokio::task::block_in_place(RedisServer::start_persistent);
        let target = format!("127.0.0.1:{}", redis.port())
            .parse()
            .unwrap_or_else(|e| panic!("redis address: {e}"));
        let proxy = FaultyProxy::start(target).await;
        let mock = MockUpstream::start(MockOptions {
            chunk_delay_ms: CHUNK_DELAY_MS,
            record_requests: false,
            ..MockOptions::default()
        });
        let mut fleet = Fleet {
            policy,
            redis,
            proxy,
            mock,
            balancer: Balancer::start().await,
            replicas: Vec::new(),
            live: Vec::new(),
            admins: Arc::new(Mutex::new(Vec::new())),
            plan: plan.clone(),
            client: TestClient::new(),
        };
        let yaml = fleet.yaml(Variant::Main);
        let starting: Vec<_> = (0..REPLICAS)
            .map(|_| tokio::spawn(replica(yaml.clone())))
            .collect();
        for s in starting {
            let gw = s.await.unwrap_or_else(|e| panic!("replica start: {e}"));
            fleet.serve(gw).await;
        }
        fleet
    }

    /// The replicas' config text.
    pub fn yaml(&self, v: Variant) -> String {
        let redis_url = format!("redis://{}/0", self.proxy.addr());
        spec::config(
            self.policy,
            &redis_url,
            &self.mock.base_url(),
            &self.plan,
            v,
        )
    }

    /// Starts a replica, puts it behind the balancer and waits until the
    /// balancer has seen it ready; its index.
    pub async fn start_replica(&mut self) -> usize {
        let gw = replica(self.yaml(Variant::Main)).await;
        self.serve(gw).await
    }

    /// Puts a started replica behind the balancer and waits until the
    /// balancer has seen it ready; its index.
    async fn serve(&mut self, gw: Gateway) -> usize {
        self.balancer.add(gw.listen_addr(), gw.admin_addr());
        if !self
            .balancer
            .wait_ready(gw.listen_addr(), READY_WITHIN)
            .await
        {
            panic!("replica not ready behind the balancer:\n{}", gw.stderr());
        }
        lock(&self.admins).push(gw.admin_url());
        self.replicas.push(gw);
        let i = self.replicas.len() - 1;
        self.live.push(i);
        i
    }

    /// Takes replica `i` out of service (balancer, sampler).
    fn retire(&mut self, i: usize) {
        let gw = &self.replicas[i];
        self.balancer.remove(gw.listen_addr());
        let admin = gw.admin_url();
        lock(&self.admins).retain(|a| *a != admin);
        self.live.retain(|&l| l != i);
    }

    /// SIGKILL to replica `i`; the balancer notices on its own (its readiness
    /// probe fails), then it is removed.
    pub fn kill(&mut self, i: usize) {
        self.replicas[i].signal("KILL");
        tokio::task::block_in_place(|| {
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.replicas[i].is_running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        self.retire(i);
    }

    /// SIGTERM to replica `i`, waiting for it to drain and exit; its exit
    /// status, `None` when it outlived its grace.
    pub async fn stop(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        self.replicas[i].sigterm();
        let grace = Duration::from_secs(spec::GRACE_S + 2);
        let status = self.replicas[i].wait_exit(grace).await;
        self.retire(i);
        status
    }

    /// Writes config `v` to every replica in service and asks each to reload
    /// it; the answers' statuses.
    pub async fn reload_all(&self, v: Variant) -> Vec<u16> {
        let yaml = self.yaml(v);
        let mut statuses = Vec::new();
        for &i in &self.live {
            let gw = &self.replicas[i];
            gw.write_config(&yaml);
            let r = admin(&self.client, gw, Method::POST, "/admin/config/reload", None).await;
            statuses.push(r.status);
        }
        statuses
    }

    /// `redis-cli` on the server itself (not through the proxy).
    pub fn redis_cli(&self, args: &[&str]) -> Result<String, String> {
        tokio::task::block_in_place(|| self.redis.try_cli(args))
    }

    /// Runs `f` on the server off the async workers' toes.
    pub fn with_redis<T>(&mut self, f: impl FnOnce(&mut RedisServer) -> T) -> T {
        tokio::task::block_in_place(|| f(&mut self.redis))
    }

    /// Lines with `panicked` in every replica's stderr.
    pub fn panics(&self) -> Vec<String> {
        self.replicas
            .iter()
            .enumerate()
            .flat_map(|(i, gw)| {
                gw.stderr()
                    .lines()
                    .filter(|l| l.contains("panicked"))
                    .map(|l| format!("replica {i}: {l}"))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Copies every replica's stderr and access log to `dir`
    /// (`replica-<i>.stderr`, `replica-<i>.access.log`) and Redis's log.
    pub fn keep_logs(&self, dir: &std::path::Path) {
        let _ = std::fs::create_dir_all(dir);
        for (i, gw) in self.replicas.iter().enumerate() {
            let _ = std::fs::write(dir.join(format!("replica-{i}.stderr")), gw.stderr());
            let _ = std::fs::copy(
                gw.access_log_path(),
                dir.join(format!("replica-{i}.access.log")),
            );
        }
        let _ = std::fs::write(dir.join("redis.log"), self.redis.log());
    }

    /// After the load: every replica in service has sent its settlements, and
    /// the leases of reservations nobody will settle (a killed replica's,
    /// calls whose answer was lost) have ended.
    pub async fn wait_settled(&self) {
        let deadline = Instant::now() + self.plan.lease + Duration::from_secs(10);
        for &i in &self.live {
            let gw = &self.replicas[i];
            while try_metric(gw, "gateway_quota_settle_queue").await != Some(0.0)
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        loop {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let held = tokio::task::block_in_place(|| held_reservations(&self.redis));
            if held.iter().all(|(_, l)| l.until_ms < now) || Instant::now() > deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A gateway replica running `yaml` (every replica digests keys alike,
/// whatever the environment's pepper).
async fn replica(yaml: String) -> Gateway {
    Gateway::builder(&yaml)
        .env("GATEWAY_KEY_PEPPER", "")
        .start()
        .await
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}
