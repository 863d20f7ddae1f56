//! The soak bench (`benches/run-soak.sh`, the `soak` binary): gateway replicas
//! on a real `redis-server` and the mock upstream, under steady mixed traffic
//! (JSON, streams, streams cut by the client or by the upstream, clients gone
//! before the answer, upstream errors and stalls, a quota that refuses, keys
//! that rotate or never existed) with config reloads and key churn, for a set
//! time; every few seconds each replica's RSS, open FDs and tokio tasks and
//! Redis's memory and key count are sampled. The report (Markdown, an SVG per
//! series) says whether each series stayed flat after the warm-up.

mod churn;
mod fleet;
mod logs;
mod report;
mod sampler;
mod svg;
mod traffic;
mod verdict;

pub use verdict::{Verdict, FLAT_LIMIT_PCT};

use anyhow::Result;
use sampler::Sample;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How a soak runs (the `soak` binary's options).
#[derive(Debug, Clone)]
pub struct Settings {
    pub replicas: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub sample_every: Duration,
    /// requests per second, all workers together
    pub rps: f64,
    /// concurrent clients (workers)
    pub clients: usize,
    pub reload_every: Duration,
    pub keys_every: Duration,
    /// distinct values of the header a route quota counts by
    pub users: u32,
    pub seed: u64,
    pub out_dir: PathBuf,
    /// `soak-<stamp>.md`
    pub stamp: String,
    /// `name=value` lines for the report's settings (machine, git revision)
    pub info: Vec<String>,
}

/// Counts of outcomes: (what, outcome) -> how many.
#[derive(Default)]
pub struct Tally(Mutex<BTreeMap<(String, String), u64>>);

impl Tally {
    pub fn add(&self, what: &str, outcome: &str) {
        let mut g = match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *g.entry((what.to_string(), outcome.to_string()))
            .or_insert(0) += 1;
    }

    pub fn snapshot(&self) -> BTreeMap<(String, String), u64> {
        match self.0.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

/// What a finished soak found.
pub struct Outcome {
    /// the report's path
    pub report: PathBuf,
    /// RSS and FDs of every replica flat, no panic, every replica still running
    pub passed: bool,
    /// one line per judged series and per problem
    pub summary: Vec<String>,
}

/// Runs the soak: starts the fleet, runs traffic, churn and the sampler until
/// the end, takes one more sample once the traffic has stopped, writes the
/// report and stops the fleet.
pub async fn run(s: &Settings) -> Result<Outcome> {
    let fleet = Arc::new(fleet::Fleet::start(s.replicas).await?);
    eprintln!(
        "[soak] {} replicas ready (pids {:?}), redis {} (pid {:?}), mock {}",
        fleet.gateways.len(),
        fleet.gateways.iter().map(|g| g.pid()).collect::<Vec<_>>(),
        fleet.redis.url(),
        fleet.redis.pid(),
        fleet.mock.base_url()
    );
    let shared = Arc::new(traffic::Shared {
        urls: fleet.chat_urls(),
        keys: Arc::new(traffic::KeyPool::default()),
        tally: Tally::default(),
        done: Default::default(),
        users: s.users,
    });
    let actions = Arc::new(Tally::default());
    let t0 = Instant::now();
    let end = t0 + s.duration;
    let interval = Duration::from_secs_f64(s.clients.max(1) as f64 / s.rps.max(0.1));
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..s.clients {
        tasks.spawn(traffic::worker(id, shared.clone(), interval, end, s.seed));
    }
    {
        let (fleet, actions, every) = (fleet.clone(), actions.clone(), s.reload_every);
        tasks.spawn(async move { churn::reloads(&fleet, &actions, every, end).await });
    }
    {
        let (fleet, actions, keys, every) = (
            fleet.clone(),
            actions.clone(),
            shared.keys.clone(),
            s.keys_every,
        );
        tasks.spawn(async move { churn::keys(&fleet, &keys, &actions, every, end).await });
    }
    let mut samples: Vec<Sample> = Vec::new();
    let mut next = t0;
    // (the last one a sample period before the end: at the end the clients stop)
    while next < end {
        tokio::time::sleep_until(next).await;
        let t = t0.elapsed().as_secs_f64();
        let done = shared.done.load(Ordering::Relaxed);
        let sample = sampler::take(&fleet, t, true, done).await;
        eprintln!("[soak] {}", report::progress_line(&sample));
        samples.push(sample);
        next += s.sample_every;
    }
    while tasks.join_next().await.is_some() {}
    // the traffic has stopped: what is still held once it is over
    tokio::time::sleep(s.sample_every).await;
    let done = shared.done.load(Ordering::Relaxed);
    samples.push(sampler::take(&fleet, t0.elapsed().as_secs_f64(), false, done).await);
    let key_kinds = sampler::key_kinds(&fleet).await.unwrap_or_else(|e| {
        eprintln!("[soak] could not list Redis's keys: {e}");
        Vec::new()
    });
    let leases = sampler::lease_members(&fleet).await.unwrap_or_else(|e| {
        eprintln!("[soak] could not read the quota lease zsets: {e}");
        Vec::new()
    });
    let logs: Vec<logs::ReplicaLog> = fleet
        .gateways
        .iter()
        .map(|g| logs::ReplicaLog::read(&g.stderr(), g.pid()))
        .collect();
    let outcome = report::write(&report::Inputs {
        settings: s,
        samples: &samples,
        requests: &shared.tally.snapshot(),
        actions: &actions.snapshot(),
        logs: &logs,
        key_kinds: &key_kinds,
        leases: &leases,
    })?;
    drop(fleet);
    Ok(outcome)
}
