//! Upstream health, shared by the fleet: what traffic and probes say of each
//! provider and api token, which ones are ejected, and how busy each provider is.
//!
//! Reads on the request path never wait for Redis: every replica keeps a mirror of
//! the fleet state per provider ([`Cell`]), refreshed every `state.cache_ttl_ms` and
//! at once on a change notification (`sync.rs`). Reports go the other way through a
//! bounded queue to a task that batches them into `lua/health_report.v1.lua` calls
//! (`report.rs`). Each replica also runs the same rules in process (`rules.rs`):
//! that is the whole state on the memory backend, and what steers while Redis cannot
//! be reached on the Redis backend.

pub mod active;
pub mod busy;
pub mod report;
pub mod rules;
pub mod store;
pub mod sync;

use crate::providers::Provider;
use crate::redis_conn::RedisConn;
use arc_swap::ArcSwap;
use report::{Event, Kind};
use rules::{Passive, ProbeRule, TargetState};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Reports waiting for the reporter; more are dropped (and counted), never waited for.
const REPORT_QUEUE: usize = 4096;

/// Where the fleet's health lives.
pub enum Backend {
    /// this process is the fleet
    Memory,
    Redis(Arc<RedisConn>),
}

/// What a replica can tell at a glance about one target.
#[derive(Default)]
struct Mirror {
    /// ejected until, ms on this replica's health clock (0 = not ejected)
    until: AtomicU64,
    /// when that ejection began (same clock)
    since: AtomicU64,
    /// consecutive failures are being counted: a success has something to reset
    failing: AtomicBool,
    /// (local rules) this ejection began while the fleet's state could not be
    /// had: it holds until it ends even after Redis is back, since the reports
    /// that would have made it fleet-wide were lost
    sticky: AtomicBool,
}

impl Mirror {
    fn set(&self, until: u64, since: u64, failing: bool) {
        self.until.store(until, Ordering::Relaxed);
        self.since.store(since, Ordering::Relaxed);
        self.failing.store(failing, Ordering::Relaxed);
    }
}

/// One provider's health: target 0 is the provider, targets 1.. its api tokens
/// (only when it has several; a single token's failures are the provider's).
pub struct Cell {
    pub id: Arc<str>,
    tokens: usize,
    /// what each target is called in Redis: `p`, then each token's fingerprint
    pub labels: Vec<String>,
    /// this replica's own rules (local outlier detection)
    local: Mutex<Vec<TargetState>>,
    local_view: Box<[Mirror]>,
    /// the fleet's state as last read from Redis
    fleet: Box<[Mirror]>,
    /// Redis's time of the fleet state last applied (older answers are dropped)
    fleet_now: AtomicU64,
    /// when (health clock) it was applied: a copy too old is not trusted alone
    fleet_at: AtomicU64,
    /// a notification read is running / another one was asked for meanwhile
    pub(crate) refreshing: AtomicBool,
    pub(crate) refresh_again: AtomicBool,
    /// requests this replica has at the provider now
    pub inflight: AtomicI64,
    /// requests the other replicas had there at the last exchange (`least_busy`)
    pub others_busy: AtomicI64,
}

impl Cell {
    /// `tokens`: the fingerprints of the provider's api tokens.
    fn new(id: Arc<str>, tokens: &[String]) -> Cell {
        let labels = labels_for(tokens);
        let n = labels.len();
        Cell {
            id,
            tokens: tokens.len(),
            labels,
            local: Mutex::new(vec![TargetState::default(); n]),
            local_view: (0..n).map(|_| Mirror::default()).collect(),
            fleet: (0..n).map(|_| Mirror::default()).collect(),
            fleet_now: AtomicU64::new(0),
            fleet_at: AtomicU64::new(0),
            refreshing: AtomicBool::new(false),
            refresh_again: AtomicBool::new(false),
            inflight: AtomicI64::new(0),
            others_busy: AtomicI64::new(0),
        }
    }

    /// Requests in flight at the provider across the fleet, as far as known.
    pub fn busy(&self) -> i64 {
        self.inflight.load(Ordering::Relaxed) + self.others_busy.load(Ordering::Relaxed)
    }

    pub fn targets(&self) -> usize {
        self.fleet.len()
    }

    /// The target a token's own failures (401/403/429) count against.
    pub fn token_target(&self, token: Option<usize>) -> usize {
        match token {
            Some(i) if self.tokens > 1 && i < self.tokens => i + 1,
            _ => 0,
        }
    }

    /// Whether the fleet's state of this provider can be trusted alone: Redis is
    /// reachable and answered within `stale_after` (an error reply, Redis out of
    /// memory say, leaves it reachable but stale).
    fn fleet_usable(&self, v: &View) -> bool {
        v.fleet
            && !v.local
            && v.now.saturating_sub(self.fleet_at.load(Ordering::Relaxed)) <= v.stale_after
    }

    fn until(&self, t: usize, v: &View) -> (u64, u64) {
        let local_too = !self.fleet_usable(v);
        let mut out = (0, 0);
        if let Some(m) = self.fleet.get(t).filter(|_| v.fleet) {
            let u = m.until.load(Ordering::Relaxed);
            if u > v.now {
                out = (u, m.since.load(Ordering::Relaxed));
            }
        }
        if let Some(m) = self.local_view.get(t) {
            if local_too || m.sticky.load(Ordering::Relaxed) {
                let u = m.until.load(Ordering::Relaxed);
                if u > v.now && u > out.0 {
                    out = (u, m.since.load(Ordering::Relaxed));
                }
            }
        }
        out
    }

    /// When the provider's current ejection began, if it is out: itself, or every
    /// one of its tokens.
    pub fn ejected_since(&self, v: &View) -> Option<u64> {
        let (u, since) = self.until(0, v);
        if u > 0 {
            return Some(since);
        }
        if self.tokens < 2 {
            return None;
        }
        let mut latest = 0;
        for t in 1..self.targets() {
            let (u, since) = self.until(t, v);
            if u == 0 {
                return None;
            }
            latest = latest.max(since);
        }
        Some(latest)
    }

    pub fn token_ok(&self, i: usize, v: &View) -> bool {
        self.tokens < 2 || self.until(i + 1, v).0 == 0
    }

    fn failing(&self, t: usize) -> bool {
        self.fleet[t].failing.load(Ordering::Relaxed)
            || self.local_view[t].failing.load(Ordering::Relaxed)
    }

    /// Applies this replica's own observation to its local rules.
    fn local<F: FnOnce(&mut TargetState) -> bool>(&self, t: usize, now: u64, f: F) -> bool {
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        let Some(s) = local.get_mut(t) else {
            return false;
        };
        let changed = f(s);
        let until = if s.ejected(now) { s.until } else { 0 };
        self.local_view[t].set(until, s.since, s.fails > 0);
        changed
    }

    /// Local rules, for the admin view and the memory backend.
    pub fn local_states(&self) -> Vec<TargetState> {
        self.local.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Takes in what Redis holds; its `now` translates its times to ours.
    /// An answer older than one already applied is dropped.
    fn apply_fleet(&self, fleet: &store::FleetState, now: u64) {
        if fleet.now < self.fleet_now.fetch_max(fleet.now, Ordering::Relaxed) {
            return;
        }
        self.fleet_at.store(now, Ordering::Relaxed);
        for (t, m) in self.fleet.iter().enumerate() {
            match fleet.targets.get(&t) {
                Some(s) if s.until > fleet.now => {
                    let until = now.saturating_add(s.until - fleet.now);
                    let since = now.saturating_sub(fleet.now.saturating_sub(s.since));
                    m.set(until, since.max(1), s.fails > 0);
                }
                Some(s) => m.set(0, 0, s.fails > 0),
                None => m.set(0, 0, false),
            }
        }
    }
}

fn labels_for(tokens: &[String]) -> Vec<String> {
    let mut labels = vec!["p".to_string()];
    if tokens.len() > 1 {
        labels.extend(tokens.iter().cloned());
    }
    labels
}

/// How to read the mirrors for one request.
pub struct View {
    pub now: u64,
    /// there is a fleet state (Redis backend)
    fleet: bool,
    /// Redis (or any master of a cluster) is unreachable: this replica's own
    /// rules steer too
    local: bool,
    /// ms after which a fleet copy is too old to be trusted alone
    stale_after: u64,
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct Stats {
    /// ejections this replica's reports or probes started
    pub ejections: AtomicU64,
    /// ejections ended by probes this replica ran
    pub recoveries: AtomicU64,
    pub reports_dropped: AtomicU64,
    pub reports_failed: AtomicU64,
    pub probes: AtomicU64,
    pub probes_failed: AtomicU64,
    pub panics: AtomicU64,
}

pub struct Health {
    cells: ArcSwap<HashMap<Arc<str>, Arc<Cell>>>,
    pub backend: Backend,
    epoch: Instant,
    tx: mpsc::Sender<Event>,
    rx: Mutex<Option<mpsc::Receiver<Event>>>,
    pub stats: Stats,
    /// this process, in leases and the fleet's busy counts
    pub replica: String,
    /// the pub/sub channel changes are announced on (Redis)
    pub channel: String,
    /// 2 x cache_ttl_ms + 1 s: a fleet copy older than this is not trusted alone
    stale_after: AtomicU64,
    /// what the background tasks follow of the current config (`ensure`)
    followed: ArcSwap<Followed>,
}

/// What health follows of a config version: its providers (probed, mirrored),
/// `state.cache_ttl_ms` (how often mirrors are read) and whether a route picks
/// by `least_busy` (the busy counts are exchanged only then).
#[derive(Default)]
pub struct Followed {
    pub providers: HashMap<String, Arc<Provider>>,
    pub cache_ttl: Duration,
    pub least_busy: bool,
}

impl Health {
    pub fn new(backend: Backend, channel: String) -> Arc<Health> {
        let (tx, rx) = mpsc::channel(REPORT_QUEUE);
        Arc::new(Health {
            cells: ArcSwap::from_pointee(HashMap::new()),
            backend,
            epoch: Instant::now(),
            tx,
            rx: Mutex::new(Some(rx)),
            stats: Stats::default(),
            replica: replica_id(),
            channel,
            stale_after: AtomicU64::new(3_000),
            followed: ArcSwap::from_pointee(Followed::default()),
        })
    }

    /// ms on this replica's health clock (never 0).
    pub fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX) + 1
    }

    pub fn view(&self) -> View {
        let (fleet, local) = match &self.backend {
            Backend::Memory => (false, true),
            Backend::Redis(c) => (true, c.is_degraded()),
        };
        View {
            now: self.now(),
            fleet,
            local,
            stale_after: self.stale_after.load(Ordering::Relaxed),
        }
    }

    /// Follows a config version: a cell for every provider (kept across reloads
    /// while the provider keeps its id and number of tokens).
    pub fn ensure(&self, followed: Followed) {
        let ttl = u64::try_from(followed.cache_ttl.as_millis()).unwrap_or(u64::MAX);
        self.stale_after.store(
            ttl.saturating_mul(2).saturating_add(1_000),
            Ordering::Relaxed,
        );
        let old = self.cells.load();
        let mut next = HashMap::with_capacity(followed.providers.len());
        for p in followed.providers.values() {
            let cell = match old.get(&p.id) {
                Some(c) if c.labels == labels_for(&p.token_ids) => c.clone(),
                _ => Arc::new(Cell::new(p.id.clone(), &p.token_ids)),
            };
            next.insert(p.id.clone(), cell);
        }
        self.cells.store(Arc::new(next));
        self.followed.store(Arc::new(followed));
    }

    /// What the background tasks follow now (see [`Followed`]).
    pub fn followed(&self) -> Arc<Followed> {
        self.followed.load_full()
    }

    /// The cells of the current config (an `Arc`: requests hold it across awaits).
    pub fn cells(&self) -> Arc<HashMap<Arc<str>, Arc<Cell>>> {
        self.cells.load_full()
    }

    pub fn cell(&self, id: &str) -> Option<Arc<Cell>> {
        self.cells.load().get(id).cloned()
    }

    /// Traffic through `token` of the provider went well.
    pub fn success(&self, cell: &Arc<Cell>, token: Option<usize>, passive: Option<&Passive>) {
        if passive.is_none() {
            return;
        }
        let tt = cell.token_target(token);
        self.reset(cell, 0);
        if tt != 0 {
            self.reset(cell, tt);
        }
    }

    /// A success where failures are being counted, by the fleet (its mirror; the
    /// script announces a target starting to count, so mirrors learn it at once)
    /// or by this replica (its report may still be on the way).
    fn reset(&self, cell: &Arc<Cell>, t: usize) {
        if !cell.failing(t) {
            return;
        }
        cell.local(t, 0, |s| {
            s.succeed();
            false
        });
        self.send(cell, t, Kind::Success);
    }

    /// A failure from traffic that counts against `target` (see `Cell::token_target`).
    pub fn failure(&self, cell: &Arc<Cell>, target: usize, err: &str, passive: Option<&Passive>) {
        let Some(p) = passive else {
            return;
        };
        let view = self.view();
        let now = view.now;
        let ejected = cell.local(target, now, |s| s.fail(now, 1, p, Some(err)));
        if ejected {
            let lost = matches!(self.backend, Backend::Redis(_)) && !cell.fleet_usable(&view);
            cell.local_view[target]
                .sticky
                .store(lost, Ordering::Relaxed);
            tracing::warn!(provider = %cell.id, target, error = %err, "upstream ejected by this replica's outlier detection");
            if matches!(self.backend, Backend::Memory) {
                self.stats.ejections.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.send(
            cell,
            target,
            Kind::Fail {
                err: err.to_string(),
                rule: *p,
            },
        );
    }

    /// An active probe's result for `target`.
    pub fn probed(&self, cell: &Arc<Cell>, target: usize, ok: bool, err: &str, rule: &ProbeRule) {
        let now = self.now();
        let changed = cell.local(target, now, |s| s.probe(now, ok, rule, Some(err)));
        if changed && matches!(self.backend, Backend::Memory) {
            let c = if ok {
                &self.stats.recoveries
            } else {
                &self.stats.ejections
            };
            c.fetch_add(1, Ordering::Relaxed);
        }
        let kind = if ok {
            Kind::ProbeOk(*rule)
        } else {
            Kind::ProbeFail {
                err: err.to_string(),
                rule: *rule,
            }
        };
        self.send(cell, target, kind);
    }

    fn send(&self, cell: &Arc<Cell>, target: usize, kind: Kind) {
        if matches!(self.backend, Backend::Memory) {
            return;
        }
        let ev = Event {
            cell: cell.clone(),
            target,
            kind,
        };
        if self.tx.try_send(ev).is_err() {
            self.stats.reports_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Starts the reporter, the refresher, the probes and the busy exchange; they
    /// end when `stop` turns true.
    pub fn start(self: &Arc<Self>, stop: tokio::sync::watch::Receiver<bool>) {
        let rx = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let (Backend::Redis(_), Some(rx)) = (&self.backend, rx) {
            tokio::spawn(report::run(self.clone(), rx));
            tokio::spawn(sync::run(self.clone(), stop.clone()));
            tokio::spawn(busy::run(self.clone(), stop.clone()));
        }
        tokio::spawn(active::run(self.clone(), stop));
    }

    /// Takes in a fleet state read from Redis.
    pub fn apply(&self, id: &str, fleet: &store::FleetState) {
        if let Some(c) = self.cell(id) {
            c.apply_fleet(fleet, self.now());
        }
    }
}

/// A random id for this process (leases, busy counts).
fn replica_id() -> String {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        // still unique enough per process: the pid and the start time
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        b = (t ^ u64::from(std::process::id())).to_be_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An answer that is streaming: if the upstream breaks it off (or goes silent)
/// after its headers, that counts as a failure of the provider too.
pub struct StreamWatch {
    pub health: Arc<Health>,
    pub cell: Arc<Cell>,
    pub passive: Passive,
}

impl StreamWatch {
    pub fn failed(&self, err: &str) {
        self.health.failure(&self.cell, 0, err, Some(&self.passive));
    }
}

/// Counts a request at a provider until dropped (`least_busy`).
pub struct InFlight(Arc<Cell>);

impl InFlight {
    pub fn new(cell: Arc<Cell>) -> InFlight {
        cell.inflight.fetch_add(1, Ordering::Relaxed);
        InFlight(cell)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passive() -> Passive {
        Passive {
            failures: 2,
            window_ms: 10_000,
            ejection_ms: 30_000,
        }
    }

    #[test]
    fn memory_backend_ejects_a_token_then_the_provider() {
        let h = Health::new(Backend::Memory, String::new());
        let cell = Arc::new(Cell::new(Arc::from("p"), &["ta".into(), "tb".into()]));
        let p = passive();
        let t1 = cell.token_target(Some(1));
        assert_eq!(t1, 2);
        h.failure(&cell, t1, "http 401", Some(&p));
        assert!(cell.token_ok(1, &h.view()));
        h.failure(&cell, t1, "http 401", Some(&p));
        assert!(!cell.token_ok(1, &h.view()));
        assert!(cell.token_ok(0, &h.view()));
        assert_eq!(cell.ejected_since(&h.view()), None);
        let t0 = cell.token_target(Some(0));
        h.failure(&cell, t0, "http 401", Some(&p));
        h.failure(&cell, t0, "http 401", Some(&p));
        assert!(cell.ejected_since(&h.view()).is_some(), "every token out");
    }

    #[test]
    fn a_success_resets_the_count() {
        let h = Health::new(Backend::Memory, String::new());
        let cell = Arc::new(Cell::new(Arc::from("p"), &["ta".into()]));
        let p = passive();
        h.failure(&cell, 0, "http 503", Some(&p));
        h.success(&cell, Some(0), Some(&p));
        h.failure(&cell, 0, "http 503", Some(&p));
        assert_eq!(cell.ejected_since(&h.view()), None);
        h.failure(&cell, 0, "http 503", Some(&p));
        assert!(cell.ejected_since(&h.view()).is_some());
        // without passive settings nothing is counted
        let other = Arc::new(Cell::new(Arc::from("q"), &[]));
        for _ in 0..10 {
            h.failure(&other, 0, "http 503", None);
        }
        assert_eq!(other.ejected_since(&h.view()), None);
    }
}
