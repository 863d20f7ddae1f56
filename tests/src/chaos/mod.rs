//! Chaos runs: the fleet under load while faults come one at a time, and each
//! promise the README makes about them checked from what the clients saw, the
//! access logs and Redis.
//!
//! For each `on_redis_error` policy a fresh fleet ([`fleet`]): a persistent
//! `redis-server` reached through a [`crate::netfault::FaultyProxy`], three
//! gateway replicas behind the test balancer, the mock upstream; consumers
//! whose token and request quotas the load presses against ([`spec`]), and
//! [`Plan::clients`] client tasks sending JSON and streamed chats ([`load`]).
//! Each [`Fault`] of the plan gets a quiet lead-in, the fault, and time to
//! recover ([`faults`]); then [`judge`] measures per fault what the clients
//! saw, the tokens and requests admitted beyond each limit, the time to
//! recover, the usage Redis settled against the usage served, and panics, and
//! holds each figure against its promise; [`report`] writes the tables.
//!
//! `cargo run --release -p gateway-tests --bin chaos -- --out FILE` runs
//! [`Plan::full`]; `tests/tests/chaos.rs` runs [`Plan::short`] in the suite.

pub mod faults;
pub mod fleet;
pub mod judge;
pub mod load;
pub mod report;
pub mod spec;

use std::time::Duration;

/// What the quotas do while Redis cannot be reached (`state.on_redis_error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    FailOpen,
    FailClosed,
    Local,
}

impl Policy {
    pub const ALL: [Policy; 3] = [Policy::FailClosed, Policy::Local, Policy::FailOpen];

    /// The config value.
    pub fn name(self) -> &'static str {
        match self {
            Policy::FailOpen => "fail_open",
            Policy::FailClosed => "fail_closed",
            Policy::Local => "local",
        }
    }

    pub fn parse(s: &str) -> Option<Policy> {
        Policy::ALL.into_iter().find(|p| p.name() == s)
    }
}

/// One fault of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Redis SIGKILLed, started again without its data.
    RedisRestartEmpty,
    /// Redis stopped with SIGTERM (its append-only file flushed), started
    /// again with it.
    RedisRestartWithData,
    /// `CLIENT PAUSE <fault> ALL`: every command waits.
    RedisFrozen,
    /// 600 ms added each way between the replicas and Redis.
    RedisSlowNetwork,
    /// Every connection to Redis cut every 250 ms.
    RedisConnectionsCut,
    /// `SCRIPT FLUSH` every 500 ms.
    ScriptFlush,
    /// Every replica reloads its config every 400 ms, alternating two valid
    /// configs, one invalid one among them.
    ConfigReloads,
    /// One replica SIGKILLed, a new one started 1 s later.
    ReplicaKill,
    /// Each replica in turn: a new one started and ready, then SIGTERM to the
    /// old one, which drains.
    RollingRestart,
    /// The upstream answers 500 to everything.
    Upstream5xx,
    /// The upstream stalls: its headers come after the first-byte timeout,
    /// its stream events after the idle timeout.
    UpstreamStall,
}

impl Fault {
    pub const ALL: [Fault; 11] = [
        Fault::RedisRestartEmpty,
        Fault::RedisRestartWithData,
        Fault::RedisFrozen,
        Fault::RedisSlowNetwork,
        Fault::RedisConnectionsCut,
        Fault::ScriptFlush,
        Fault::ConfigReloads,
        Fault::ReplicaKill,
        Fault::RollingRestart,
        Fault::Upstream5xx,
        Fault::UpstreamStall,
    ];

    /// A short id (accounting labels, command line).
    pub fn id(self) -> &'static str {
        match self {
            Fault::RedisRestartEmpty => "redis-restart-empty",
            Fault::RedisRestartWithData => "redis-restart-data",
            Fault::RedisFrozen => "redis-frozen",
            Fault::RedisSlowNetwork => "redis-slow-network",
            Fault::RedisConnectionsCut => "redis-connections-cut",
            Fault::ScriptFlush => "script-flush",
            Fault::ConfigReloads => "config-reloads",
            Fault::ReplicaKill => "replica-kill",
            Fault::RollingRestart => "rolling-restart",
            Fault::Upstream5xx => "upstream-5xx",
            Fault::UpstreamStall => "upstream-stall",
        }
    }

    pub fn parse(s: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.id() == s)
    }

    /// What happens, for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Fault::RedisRestartEmpty => "Redis SIGKILLed, back empty",
            Fault::RedisRestartWithData => "Redis SIGTERMed, back with its AOF",
            Fault::RedisFrozen => "Redis frozen (CLIENT PAUSE ALL)",
            Fault::RedisSlowNetwork => "600 ms each way to Redis",
            Fault::RedisConnectionsCut => "Redis connections cut every 250 ms",
            Fault::ScriptFlush => "SCRIPT FLUSH every 500 ms",
            Fault::ConfigReloads => "config reloads every 400 ms (one invalid)",
            Fault::ReplicaKill => "a replica SIGKILLed, replaced after 1 s",
            Fault::RollingRestart => "rolling restart (SIGTERM, drain)",
            Fault::Upstream5xx => "upstream answers 500",
            Fault::UpstreamStall => "upstream stalls (headers, stream events)",
        }
    }

    /// Whether Redis is unreachable or too slow while it lasts, so the
    /// quotas follow `on_redis_error`.
    pub fn redis_outage(self) -> bool {
        matches!(
            self,
            Fault::RedisRestartEmpty
                | Fault::RedisRestartWithData
                | Fault::RedisFrozen
                | Fault::RedisSlowNetwork
                | Fault::RedisConnectionsCut
        )
    }

    /// Whether Redis loses what it held (its windows start from zero).
    pub fn loses_redis_data(self) -> bool {
        self == Fault::RedisRestartEmpty
    }
}

/// What a chaos run does.
#[derive(Debug, Clone)]
pub struct Plan {
    pub policies: Vec<Policy>,
    pub faults: Vec<Fault>,
    /// concurrent client tasks
    pub clients: usize,
    /// each client's pause between requests (jittered ±50%)
    pub think: Duration,
    /// normal traffic before each fault
    pub lead_in: Duration,
    /// how long each fault lasts
    ///
    /// (faults that lose Redis's data run first: what Redis settled for the
    /// phases before them would be lost with it)
    pub fault: Duration,
    /// traffic after each fault, to recover in
    pub recovery: Duration,
    /// the pressing quotas' window
    pub window: Duration,
    /// `state.quota_lease_s`: reservations nobody settles (a killed replica's,
    /// calls whose answer was lost) go back after this; longer than any
    /// request, and than a fault plus the time settlements take to land after
    /// it (a reservation whose lease ends first is given back until its
    /// settlement lands)
    pub lease: Duration,
    /// where to copy every replica's stderr and access log (`<policy>/`)
    pub keep_logs: Option<std::path::PathBuf>,
}

impl Plan {
    /// Every fault under every policy, 100 clients: about 10 minutes.
    pub fn full() -> Plan {
        Plan {
            policies: Policy::ALL.to_vec(),
            faults: Fault::ALL.to_vec(),
            clients: 100,
            think: Duration::from_millis(150),
            lead_in: Duration::from_secs(2),
            fault: Duration::from_secs(4),
            recovery: Duration::from_secs(8),
            window: Duration::from_secs(10),
            lease: Duration::from_secs(8),
            keep_logs: None,
        }
    }

    /// The suite's version: the faults most likely to break a promise, every
    /// policy, shorter phases: under 3 minutes on 2 cores with a debug build.
    pub fn short() -> Plan {
        Plan {
            policies: Policy::ALL.to_vec(),
            faults: vec![
                Fault::RedisRestartEmpty,
                Fault::ReplicaKill,
                Fault::RedisFrozen,
                Fault::RedisConnectionsCut,
            ],
            clients: 100,
            think: Duration::from_millis(300),
            lead_in: Duration::from_millis(1000),
            fault: Duration::from_millis(2500),
            recovery: Duration::from_millis(3500),
            window: Duration::from_secs(10),
            // no upstream stall in this plan: requests take well under a
            // second; twice a fault, so no reservation made before a fault
            // outlives its lease before its settlement lands
            lease: Duration::from_secs(5),
            keep_logs: None,
        }
    }

    /// The wall time the faults take per policy (without start and drain).
    pub fn schedule_time(&self) -> Duration {
        (self.lead_in + self.fault + self.recovery) * self.faults.len() as u32
    }
}

/// Runs `plan`: every policy in turn on a fleet of its own (the gateway is
/// built first, outside the wall time).
pub async fn run(plan: &Plan) -> report::Report {
    if let Ok(Err(e)) = tokio::task::spawn_blocking(crate::harness::gateway_bin).await {
        panic!("{e}");
    }
    let started = std::time::Instant::now();
    let mut results = Vec::new();
    for &policy in &plan.policies {
        eprintln!("chaos: {} ...", policy.name());
        results.push(faults::run_policy(plan, policy).await);
    }
    report::Report {
        plan: plan.clone(),
        policies: results,
        wall: started.elapsed(),
    }
}
