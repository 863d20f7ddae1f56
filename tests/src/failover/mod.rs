//! Redis Cluster failovers under pressed quotas, measured: a 3-primary,
//! 3-replica cluster, one fleet of gateway replicas per `on_redis_error`
//! policy, and per policy and fault a tenant on the fault's shard whose
//! consumers press a request and a token quota at twice their limit, besides
//! a control tenant per shard ([`fleet`], [`load`]). One after the other, on
//! the shards in turn, a primary is SIGKILLed (and restarted once its replica
//! took over: it rejoins as a replica), a replica takes over with `CLUSTER
//! FAILOVER` (graceful), a primary is frozen with SIGSTOP until its replica
//! took over and resumed with SIGCONT (it must rejoin as a replica, and the
//! gateway must not keep writing to it), and (the full run) a primary is
//! SIGKILLed while its replica lags behind, so acknowledged writes are lost
//! ([`Fault`]).
//!
//! [`run`] records every request and the fault's moments on one clock;
//! [`measure`] turns them into the failover window, the answers clients saw
//! during it, the quota overshoot over the windows spanning the failover, and
//! the usage the windows lost against the usage clients were served;
//! [`markdown`] writes the report. `tests/tests/cluster_failover.rs` runs a
//! short plan and checks the promises; the full plan writes
//! `benches/results/cluster-failover-<date>.md` (benches/README.md).

pub mod fault;
pub mod fleet;
pub mod load;
pub mod markdown;
pub mod measure;

use crate::harness::Gateway;
use crate::metrics::{wait_metric, Scrape};
use crate::mock_upstream::{MockOptions, MockUpstream};
use crate::redis::{key_slot, RedisCluster};
use crate::report::used_in;
pub use fault::{Fault, FaultEvents};
use fleet::{Consumer, Fleet, Pressed};
use load::{ClientSpec, Sample};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::block_in_place;

/// What a replica does with a quota whose Redis node cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Policy {
    FailClosed,
    FailOpen,
    Local,
}

impl Policy {
    pub const ALL: [Policy; 3] = [Policy::FailClosed, Policy::FailOpen, Policy::Local];

    /// The `state.on_redis_error` value.
    pub fn name(self) -> &'static str {
        match self {
            Policy::FailClosed => "fail_closed",
            Policy::FailOpen => "fail_open",
            Policy::Local => "local",
        }
    }

    /// Prefix of its tenants and of its Redis keys.
    pub fn short(self) -> &'static str {
        match self {
            Policy::FailClosed => "fc",
            Policy::FailOpen => "fo",
            Policy::Local => "lo",
        }
    }
}

/// The shape of a run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// window of the pressed quotas (whole seconds)
    pub window: Duration,
    /// a fault's consumers' load before it
    pub warm: Duration,
    /// their load after it is over (old primary back as a replica)
    pub settle: Duration,
    /// how far behind the replica is when its primary is killed (`LagKill`)
    pub lag: Duration,
    /// how long a killed primary stays dead after its replica took over
    pub restart_after: Duration,
    /// how long a frozen primary stays frozen after its replica took over
    pub frozen_after_promotion: Duration,
    pub policies: Vec<Policy>,
    pub faults: Vec<Fault>,
    /// gateway replicas per policy (also `expected_replicas`)
    pub replicas: usize,
    /// clients per pressed consumer
    pub clients: usize,
    /// requests per second of each pressed consumer (its clients together)
    pub demand: f64,
    /// `state.redis.timeout_ms`
    pub redis_timeout_ms: u64,
    /// delay between the mock's stream events (a stream lasts about 10 of them)
    pub chunk_delay_ms: u64,
}

impl Plan {
    /// The run of `benches/results` (about 3 minutes, setup included).
    pub fn full() -> Plan {
        Plan {
            window: Duration::from_secs(10),
            warm: Duration::from_secs(15),
            settle: Duration::from_secs(12),
            lag: Duration::from_millis(600),
            restart_after: Duration::from_secs(3),
            frozen_after_promotion: Duration::from_secs(3),
            policies: Policy::ALL.to_vec(),
            faults: vec![Fault::Kill, Fault::Failover, Fault::Freeze, Fault::LagKill],
            replicas: 2,
            clients: 4,
            demand: 12.0,
            redis_timeout_ms: 250,
            chunk_delay_ms: 20,
        }
    }

    /// The CI run (about 40 s on 2 cores, setup included): no `LagKill`,
    /// whose loss a test could not bound.
    pub fn ci() -> Plan {
        Plan {
            window: Duration::from_secs(4),
            warm: Duration::from_secs(5),
            settle: Duration::from_secs(4),
            faults: vec![Fault::Kill, Fault::Failover, Fault::Freeze],
            restart_after: Duration::from_secs(1),
            // (as long as the full run's: the monitor takes up to a probe
            // round and a connection's set-up to move the calls, which took
            // more than 1 s on a loaded machine, so a 1 s freeze past the
            // promotion read as "answered only once the primary resumed")
            frozen_after_promotion: Duration::from_secs(3),
            clients: 2,
            demand: 8.0,
            chunk_delay_ms: 10,
            ..Plan::full()
        }
    }

    /// Limit of a `requests` consumer's window: half its demand.
    pub fn request_limit(&self) -> u64 {
        ((self.demand * self.window.as_secs_f64()) / 2.0).round() as u64
    }

    /// Limit of a `tokens` consumer's window: half its demand.
    pub fn token_limit(&self) -> u64 {
        self.request_limit() * load::REQUEST_TOKENS
    }

    /// The span over which a run counts a window: the quota window less one
    /// of its 60 buckets, so any such span of send times lies inside one
    /// window as Redis counts it (61 buckets back from the newest) even when a
    /// reservation is made a little after the request was sent.
    pub fn counted_span(&self) -> Duration {
        let w = u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(w - w.div_ceil(60))
    }
}

/// A request of the `cold` consumer of a fault's shard after the fault.
#[derive(Debug, Clone)]
pub struct ColdCheck {
    pub fault: usize,
    pub policy: Policy,
    pub replica: usize,
    pub status: u16,
    pub quota_status: Option<String>,
}

/// How a fleet ended.
#[derive(Debug, Clone)]
pub struct FleetEnd {
    pub policy: Policy,
    /// every replica is the process it was at the start
    pub same_processes: bool,
    /// `gateway_state_node_degraded` of each replica: node -> value
    pub nodes: Vec<HashMap<String, f64>>,
}

/// Everything a run recorded.
pub struct Run {
    pub plan: Plan,
    pub consumers: Vec<Consumer>,
    pub samples: Vec<Sample>,
    /// `ai_log.quota_status` by request id (from the access logs)
    pub quota_status: HashMap<String, Option<String>>,
    pub faults: Vec<FaultEvents>,
    /// (requests, tokens) in each consumer's accounting windows at the end
    pub accounts: Vec<(u64, u64)>,
    pub cold: Vec<ColdCheck>,
    pub fleets: Vec<FleetEnd>,
    /// `host:port` of the masters at the end
    pub masters: Vec<String>,
    /// how long the run's load lasted
    pub duration: Duration,
    /// each replica's stderr: (policy, replica, text)
    pub stderr: Vec<(Policy, usize, String)>,
}

impl Run {
    /// Writes `samples.csv` (one line per request) and each replica's stderr
    /// (`gateway-<policy>-<replica>.log`) to `dir`, for a look at what the
    /// tables sum up.
    pub fn write_artifacts(&self, dir: &std::path::Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut csv = String::from(
            "consumer,policy,shard,replica,stream,sent_ms,answered_ms,status,code,quota_status,tokens,limit_requests,limit_tokens,error\n",
        );
        for s in &self.samples {
            let c = &self.consumers[s.consumer];
            let qs = self.quota_status.get(&s.request_id).cloned().flatten();
            csv.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                c.label(),
                c.policy.name(),
                c.shard,
                s.replica,
                s.stream,
                s.sent.as_millis(),
                s.answered.as_millis(),
                s.status,
                s.code.as_deref().unwrap_or(""),
                qs.as_deref().unwrap_or(""),
                s.tokens.map_or(String::new(), |t| t.to_string()),
                s.limit_requests.map_or(String::new(), |t| t.to_string()),
                s.limit_tokens.map_or(String::new(), |t| t.to_string()),
                s.error.as_deref().unwrap_or("").replace([',', '\n'], " "),
            ));
        }
        std::fs::write(dir.join("samples.csv"), csv)?;
        for (p, r, text) in &self.stderr {
            std::fs::write(dir.join(format!("gateway-{}-{r}.log", p.name())), text)?;
        }
        Ok(())
    }
}

/// The load of some consumers: their clients, until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("load task");
        }
    }
}

/// What the load of a run shares.
struct Bench<'a> {
    plan: &'a Plan,
    fleets: &'a [Fleet],
    consumers: &'a [Consumer],
    epoch: Instant,
    samples: Arc<Mutex<Vec<Sample>>>,
    client: crate::client::TestClient,
}

impl Bench<'_> {
    fn fleet(&self, p: Policy) -> &Fleet {
        self.fleets
            .iter()
            .find(|f| f.policy == p)
            .expect("a fleet per policy")
    }

    /// One request of consumer `i` to replica `r` of its fleet, recorded.
    async fn once(&self, i: usize, r: usize) -> Sample {
        let gw = &self.fleet(self.consumers[i].policy).gateways[r];
        let spec = spec_for(gw, i, r, &self.consumers[i], false);
        let s = load::send(&self.client, &spec, self.epoch).await;
        self.samples.lock().unwrap().push(s.clone());
        s
    }

    /// Starts the pressed consumers `which` selects, once each has been
    /// served by every replica of its fleet (its key in every cache).
    async fn start(&self, which: impl Fn(&Consumer) -> bool) -> Load {
        let plan = self.plan;
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        let period = Duration::from_secs_f64(plan.clients as f64 / plan.demand);
        for (i, con) in self.consumers.iter().enumerate() {
            if con.pressed == Pressed::Cold || !which(con) {
                continue;
            }
            let f = self.fleet(con.policy);
            for r in 0..f.gateways.len() {
                let s = self.once(i, r).await;
                assert_eq!(s.status, 200, "first request of {}: {s:?}", con.label());
            }
            for k in 0..plan.clients {
                let r = k % f.gateways.len();
                let mut spec = spec_for(&f.gateways[r], i, r, con, k % 2 == 1);
                spec.period = period;
                spec.phase = period.mul_f64(k as f64 / plan.clients as f64);
                tasks.push(tokio::spawn(load::client(
                    spec,
                    self.epoch,
                    stop.clone(),
                    self.samples.clone(),
                )));
            }
        }
        Load { stop, tasks }
    }
}

/// Runs `plan` and records it (panics when the set-up fails, not when a
/// promise is broken: that is for [`measure`] to say).
pub async fn run(plan: &Plan) -> Run {
    let mut cluster = tokio::task::spawn_blocking(RedisCluster::start_with_replicas)
        .await
        .expect("cluster start");
    let mock = MockUpstream::start(MockOptions {
        chunk_delay_ms: plan.chunk_delay_ms,
        record_requests: false,
        ..MockOptions::default()
    });
    let shards = cluster.masters();
    assert_eq!(shards.len(), 3, "{shards:?}");
    // one slot of each shard, to follow it across promotions
    let shard_slot: Vec<u16> = shards.iter().map(|m| m.slots[0].0).collect();
    let global = key_slot("{g}");
    let mut consumers = Vec::new();
    let mut fleets = Vec::new();
    for &policy in &plan.policies {
        let mine = fleet::consumers(policy, &shards, plan.faults.len());
        let yaml = fleet::config(plan, policy, &cluster, &mock, &mine);
        fleets.push(Fleet::start(&yaml, policy, plan.replicas).await);
        consumers.extend(mine);
    }
    let bench = Bench {
        plan,
        fleets: &fleets,
        consumers: &consumers,
        epoch: Instant::now(),
        samples: Arc::new(Mutex::new(Vec::new())),
        client: crate::client::TestClient::new(),
    };
    let control = bench.start(|c| c.fault.is_none()).await;
    let mut faults = Vec::new();
    let mut cold = Vec::new();
    for (n, &fault) in plan.faults.iter().enumerate() {
        let load = bench.start(|c| c.fault == Some(n)).await;
        tokio::time::sleep(plan.warm).await;
        let shard = fleet::shard_of(n, shard_slot.len());
        let mut ev = fault::inject(&mut cluster, plan, fault, shard_slot[shard], bench.epoch).await;
        ev.shard = shard;
        ev.holds_global = block_in_place(|| cluster.master_of(global)) == ev.new_primary;
        eprintln!("{fault:?} on shard {shard}: {ev:?}");
        // the cold consumer of the fault, first looked up now, on each replica
        for (i, c) in consumers.iter().enumerate() {
            if c.fault == Some(n) && c.pressed == Pressed::Cold {
                for r in 0..plan.replicas {
                    cold.push((n, c.policy, r, bench.once(i, r).await));
                }
            }
        }
        faults.push(ev);
        tokio::time::sleep(plan.settle).await;
        load.stop().await;
    }
    control.stop().await;
    let duration = bench.epoch.elapsed();
    let samples = bench.samples.lock().unwrap().clone();
    let c = &bench.client;

    // every settlement landed before the windows are read
    for f in &fleets {
        for gw in &f.gateways {
            wait_metric(
                gw,
                "gateway_quota_settle_queue",
                &[],
                |v| v == 0.0,
                "0",
                Duration::from_secs(20),
            )
            .await;
        }
    }
    // reservations whose call timed out after Redis made them are given back
    // when their lease ends (the usage read sweeps them)
    tokio::time::sleep(Duration::from_secs(fleet::LEASE_S + 1)).await;
    let mut accounts = Vec::new();
    for con in &consumers {
        let gw = &bench.fleet(con.policy).gateways[0];
        let r = crate::harness::admin(
            c,
            gw,
            http::Method::GET,
            &format!("/admin/usage?tenant={}&consumer={}", con.tenant, con.name),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "GET /admin/usage: {}", r.text());
        let v = r.json();
        accounts.push((
            used_in(&v, fleet::ACCOUNT_REQUESTS).unwrap_or(0),
            used_in(&v, fleet::ACCOUNT_TOKENS).unwrap_or(0),
        ));
    }
    let quota_status = access_log_statuses(&fleets, &samples).await;
    let cold = cold
        .into_iter()
        .map(|(fault, policy, replica, s)| ColdCheck {
            fault,
            policy,
            replica,
            status: s.status,
            quota_status: quota_status.get(&s.request_id).cloned().flatten(),
        })
        .collect();
    let mut ends = Vec::new();
    let mut stderr = Vec::new();
    for f in &mut fleets {
        let mut nodes = Vec::new();
        for gw in &f.gateways {
            let scrape = Scrape::try_from_url(&gw.admin_url())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            nodes.push(
                scrape
                    .series("gateway_state_node_degraded")
                    .filter_map(|s| Some((s.label("node")?.to_string(), s.value)))
                    .collect(),
            );
        }
        let same_processes = f
            .gateways
            .iter_mut()
            .zip(&f.pids)
            .all(|(gw, pid)| gw.pid() == *pid && gw.is_running());
        ends.push(FleetEnd {
            policy: f.policy,
            same_processes,
            nodes,
        });
        for (r, gw) in f.gateways.iter().enumerate() {
            stderr.push((f.policy, r, gw.stderr()));
        }
    }
    let masters = block_in_place(|| cluster.masters())
        .iter()
        .map(|m| format!("127.0.0.1:{}", m.port))
        .collect();
    Run {
        plan: plan.clone(),
        consumers,
        samples,
        quota_status,
        faults,
        accounts,
        cold,
        fleets: ends,
        masters,
        duration,
        stderr,
    }
}

fn spec_for(
    gw: &Gateway,
    consumer: usize,
    replica: usize,
    con: &Consumer,
    stream: bool,
) -> ClientSpec {
    ClientSpec {
        consumer,
        replica,
        url: format!("{}/v1/chat/completions", gw.url()),
        key: con.key.clone(),
        stream,
        period: Duration::ZERO,
        phase: Duration::ZERO,
    }
}

/// `ai_log.quota_status` of every answered request, from the access logs
/// (written off the request path: waits for the last lines).
async fn access_log_statuses(
    fleets: &[Fleet],
    samples: &[Sample],
) -> HashMap<String, Option<String>> {
    let mut status_of = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for f in fleets {
            for gw in &f.gateways {
                for line in gw.access_log_lines() {
                    status_of.insert(line.request_id.clone(), line.ai_log.quota_status.clone());
                }
            }
        }
        let missing = samples
            .iter()
            .filter(|s| s.status != 0 && !status_of.contains_key(&s.request_id))
            .count();
        if missing == 0 || Instant::now() > deadline {
            if missing > 0 {
                eprintln!("{missing} answered requests have no access-log line");
            }
            return status_of;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
