//! Token and request quotas shared by every replica: reserve at admission (one
//! store call per hash tag), settle with the real usage when the request ends,
//! whatever way it ends. `spec.rs` says which windows a request touches,
//! `store.rs` where they live, `queue.rs` how settlements reach Redis, and
//! `headers.rs` what the client is told.

pub mod alerts;
mod calls;
mod coalesce;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod estimate;
pub mod headers;
mod held;
pub mod ledger;
pub mod memory;
pub mod ops;
pub mod queue;
pub mod spec;
pub mod store;

use crate::error::GatewayError;
pub use estimate::Estimate;
use held::Group;
pub use held::Held;
use memory::MemoryQuotas;
use queue::{Job, SettleQueue};
use shared::config::OnRedisError;
use spec::Quota;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use store::{Actual, LedgerAdd, QuotaStore, SettleCall, SettleMode, SettleOp};

pub use crate::config::{QuotaSettings as Settings, MAX_AMOUNT};

/// How long a settled-without-reservation or expired record is remembered.
pub const TOMBSTONE_MS: u64 = 600_000;

/// Counters for `/metrics`.
#[derive(Default)]
pub struct Stats {
    pub admitted: AtomicU64,
    pub limited: AtomicU64,
    /// admitted unchecked (`fail_open`) while the store was unreachable
    pub bypassed: AtomicU64,
    /// admitted by this replica's own share (`local`) while the store was unreachable
    pub local: AtomicU64,
    /// refused because the store was unreachable (`fail_closed`)
    pub unavailable: AtomicU64,
}

pub struct Quotas {
    pub store: Arc<QuotaStore>,
    /// `on_redis_error: local`: this replica's share of each limit
    local: MemoryQuotas,
    pub queue: Arc<SettleQueue>,
    pub stats: Stats,
    pub alerts: Arc<alerts::Alerts>,
    /// budgets as this replica last saw them (`gateway_budget_used`)
    pub budgets: alerts::BudgetGauges,
    /// ledger entries of requests that ended, summed by group, until sent
    ledger_buffer: ledger::LedgerBuffer,
}

/// One quota window that applies to this request.
pub struct Claim {
    pub quota: Arc<Quota>,
    pub subject: String,
    pub tag: String,
}

/// What ai_log says about quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Allowed,
    Limited,
    /// admitted unchecked: the store was unreachable (`fail_open`)
    Bypassed,
    /// admitted by this replica's share: the store was unreachable (`local`)
    Local,
    /// refused: the store was unreachable (`fail_closed`)
    Unavailable,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Allowed => "allowed",
            Status::Limited => "limited",
            Status::Bypassed => "bypassed",
            Status::Local => "local",
            Status::Unavailable => "unavailable",
        }
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A quota refused, or could not be checked.
pub enum Refusal {
    Limited(GatewayError),
    Unavailable,
}

impl Quotas {
    pub fn new(store: QuotaStore, settle_queue: usize) -> Arc<Quotas> {
        Arc::new(Quotas {
            store: Arc::new(store),
            local: MemoryQuotas::default(),
            queue: Arc::new(SettleQueue::new(settle_queue)),
            stats: Stats::default(),
            alerts: Arc::new(alerts::Alerts::default()),
            budgets: alerts::BudgetGauges::default(),
            ledger_buffer: ledger::LedgerBuffer::default(),
        })
    }

    /// Starts the settlement workers (Redis only) and the sweeper of the
    /// windows kept in this process.
    pub fn start(self: &Arc<Self>) {
        if matches!(*self.store, QuotaStore::Redis(_)) {
            self.queue.spawn(self.store.clone(), self.alerts.clone());
            tokio::spawn(ledger_flusher(Arc::downgrade(self)));
        }
        tokio::spawn(sweeper(Arc::downgrade(self)));
    }

    /// Quota windows kept in this process (the memory backend's, and this
    /// replica's shares under `on_redis_error: local`).
    pub fn windows_in_memory(&self) -> usize {
        let store = match &*self.store {
            QuotaStore::Memory(m) => m.windows(),
            QuotaStore::Redis(_) => 0,
        };
        store + self.local.windows()
    }

    /// A new holder for one request's reservations.
    pub fn hold(self: &Arc<Self>, settings: Settings, lease_ms: u64, estimate: Estimate) -> Held {
        Held::new(self.clone(), settings, lease_ms, estimate)
    }

    /// Whether admission on `tag` keeps the outage policy although its node
    /// answers: this replica still holds settlements of usage it served without
    /// Redis there, or the node came back so recently that the other replicas
    /// may not have landed theirs. Reserving now would admit against a window
    /// that lacks that usage. Not under `fail_closed`, which served nothing.
    fn settling(&self, tag: &str, on_error: OnRedisError) -> bool {
        on_error != OnRedisError::FailClosed
            && (self.queue.unlanded(tag) > 0 || self.store.is_settling(tag))
    }

    /// Sends one group's settlement to where it was reserved.
    fn settle_group(&self, id: &str, g: &Group, actual: Vec<Actual>) {
        let now = now_ms();
        let call = SettleCall {
            tag: &g.tag,
            id,
            member: &g.member,
            tomb_ms: TOMBSTONE_MS,
            mode: g.mode,
            actual: &actual,
            ledger: None,
        };
        if g.local {
            self.local.settle(
                &SettleCall {
                    mode: SettleMode::Reserved,
                    ..call
                },
                now,
            );
        }
        match &*self.store {
            QuotaStore::Memory(m) => {
                let s = m.settle(&call, now);
                if !s.crossed.is_empty() {
                    self.alerts.crossed(&g.items, &actual, &s.crossed);
                }
            }
            QuotaStore::Redis(_) => self.queue.push(Job {
                tag: g.tag.clone(),
                op: Arc::new(SettleOp {
                    id: id.to_string(),
                    member: g.member.clone(),
                    mode: g.mode,
                    actual,
                    tomb_ms: TOMBSTONE_MS,
                    ledger: None,
                }),
                gates: g.gates,
                // (the quotas only for calendar windows and alerts: see `Job`)
                items: match g.items.iter().any(|(q, _)| q.calendar.is_some()) {
                    true => g.items.clone(),
                    false => Vec::new(),
                },
            }),
        }
    }

    /// Adds a request's ledger entry, under hash tag `tag`: at once in
    /// memory; for Redis into this replica's ledger buffer, whose groups
    /// [`Quotas::flush_ledger`] sends every [`LEDGER_EVERY`], one settle call
    /// (ledger only, with an id of its own: sent twice by the retry queue, it
    /// counts once) per group — so the ledger costs no call per request.
    pub fn ledger_add(&self, tag: String, ledger: LedgerAdd) {
        match &*self.store {
            QuotaStore::Memory(m) => m.ledger.add(&ledger),
            QuotaStore::Redis(_) => {
                if let Some((tag, ledger)) = self.ledger_buffer.add(tag, ledger) {
                    self.send_ledger(tag, ledger);
                }
            }
        }
    }

    /// Sends what the ledger buffer holds (each group of each tag as one
    /// ledger-only settlement through the settle queue).
    pub fn flush_ledger(&self) {
        for (tag, ledger) in self.ledger_buffer.take() {
            self.send_ledger(tag, ledger);
        }
    }

    fn send_ledger(&self, tag: String, ledger: LedgerAdd) {
        {
            self.queue.push(Job {
                tag,
                op: Arc::new(SettleOp {
                    id: new_id(),
                    member: String::new(),
                    mode: SettleMode::Unreserved,
                    actual: Vec::new(),
                    tomb_ms: TOMBSTONE_MS,
                    ledger: Some(ledger),
                }),
                gates: false,
                items: Vec::new(),
            });
        }
    }
}

/// How often a replica sends its ledger buffer to Redis.
pub const LEDGER_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Sends the ledger buffer every [`LEDGER_EVERY`]; ends with the quotas.
async fn ledger_flusher(quotas: std::sync::Weak<Quotas>) {
    loop {
        tokio::time::sleep(LEDGER_EVERY).await;
        let Some(q) = quotas.upgrade() else {
            return;
        };
        q.flush_ledger();
    }
}

/// How often ended windows and records leave this process's quota memory.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Removes ended windows, leases and tombstones from this process's quota
/// memory, off the request path (reserves only remove a few each); ends with
/// the quotas.
async fn sweeper(quotas: std::sync::Weak<Quotas>) {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        let Some(q) = quotas.upgrade() else {
            return;
        };
        let now = now_ms();
        q.local.sweep(now, TOMBSTONE_MS);
        if let QuotaStore::Memory(m) = &*q.store {
            m.sweep(now, TOMBSTONE_MS);
            m.ledger.expire(now / 1000);
        }
    }
}

/// Unix time in ms (the memory store's clock; Redis uses its own TIME).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
