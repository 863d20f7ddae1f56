//! What a quota store is asked and answers, the same for both stores
//! (`memory` and Redis, see `store`): window items, reserve and settle answers,
//! ledger entries, usage pages.

use std::sync::Arc;

/// Sub-buckets per window (the Lua scripts use the same number).
pub const BUCKETS: u64 = 60;

/// A window as the store counts it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    /// the last `ms` milliseconds, in 60 sub-buckets
    Sliding(u64),
    /// one period of a calendar: `name` says which (`month@Europe/Berlin`; a
    /// window whose name changes starts afresh), `bounds` are four consecutive
    /// period boundaries (ms) around the gateway's clock: the store counts the
    /// period that holds its own now
    Calendar { name: Arc<str>, bounds: [u64; 4] },
}

impl Span {
    /// The period holding `now`: (start, end); None for a sliding window or
    /// when no given period holds it.
    pub fn period(&self, now: u64) -> Option<(u64, u64)> {
        match self {
            Span::Sliding(_) => None,
            Span::Calendar { bounds, .. } => bounds
                .windows(2)
                .find(|b| b[0] <= now && now < b[1])
                .map(|b| (b[0], b[1])),
        }
    }

    /// The argument the Lua scripts take (`span()` in quota_lib).
    pub fn arg(&self) -> String {
        match self {
            Span::Sliding(ms) => ms.to_string(),
            Span::Calendar { name, bounds } => format!(
                "{name},{},{},{},{}",
                bounds[0], bounds[1], bounds[2], bounds[3]
            ),
        }
    }
}

/// One quota window to reserve on.
#[derive(Debug, Clone)]
pub struct Item {
    /// window key without the store prefix: `{tag}:q:<owner>:<quota>:<subject>`
    pub key: String,
    pub limit: u64,
    pub span: Span,
    pub amount: u64,
}

/// One window's real usage at settlement.
#[derive(Debug, Clone)]
pub struct Actual {
    /// window key without the store prefix
    pub key: String,
    pub span: Span,
    pub amount: u64,
    pub limit: u64,
    /// alert percentages (calendar windows), ascending
    pub alerts: Arc<[u8]>,
}

/// One request's entry in the usage ledger, added by the settlement that
/// carries it (in the same store call) when its usage is charged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerAdd {
    pub dims: shared::ledger::Dims,
    pub figures: shared::ledger::Totals,
    /// when the day's aggregates expire (unix s)
    pub expire_at_s: u64,
}

/// An alert percentage a window crossed for the first time in its period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crossed {
    /// which of the settlement's windows
    pub index: usize,
    pub percent: u8,
    /// what the window holds now
    pub used: u64,
}

/// A window's state right after a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowUse {
    /// in the window, this reservation included
    pub used: u64,
    /// ms until the window holds nothing of what it holds now
    pub reset_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveAnswer {
    /// `member`: what identifies the reservation to `settle` (Redis: the lease
    /// entry; memory: empty, the id is enough)
    Admitted {
        now_ms: u64,
        used: Vec<WindowUse>,
        member: String,
    },
    /// `index`: the item that refused; `retry_ms` None: the amount alone is over
    /// the limit; `standing`: every item as it is (nothing was reserved)
    Refused {
        now_ms: u64,
        index: usize,
        retry_ms: Option<u64>,
        used: u64,
        standing: Vec<WindowUse>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleMode {
    /// a reservation was made: replace it by the real usage
    Reserved,
    /// admitted without the store (Redis was unreachable): charge the usage now
    Unreserved,
}

/// What a settlement did, and the alerts it crossed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub answer: SettleAnswer,
    pub crossed: Vec<Crossed>,
}

impl SettleAnswer {
    /// The usage was charged (and a ledger entry added).
    pub fn charged(self) -> bool {
        matches!(
            self,
            SettleAnswer::Settled | SettleAnswer::LateCharged | SettleAnswer::Charged
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleAnswer {
    /// nothing was reserved under that id
    Nothing,
    Settled,
    /// settled before: nothing changed
    Already,
    /// the lease had run out and the reservation was refunded: usage charged now
    LateCharged,
    /// no reservation, usage charged now
    Charged,
}

/// Where a page of a tag's windows ended: windows are listed in the order of
/// their ends (ms), ties by key, so the next page starts after this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    pub ends: u64,
    /// window key without the store prefix
    pub key: String,
}

impl After {
    /// `<ends>:<key>`
    pub fn encode(&self) -> String {
        format!("{}:{}", self.ends, self.key)
    }

    pub fn decode(s: &str) -> Option<After> {
        let (ends, key) = s.split_once(':')?;
        let ends = ends
            .parse()
            .ok()
            .filter(|e| *e <= MAX_WINDOW_END && !key.is_empty())?;
        Some(After {
            ends,
            key: key.to_string(),
        })
    }
}

/// Ends beyond this are no real window's (the scripts' numbers are exact below 2^53).
const MAX_WINDOW_END: u64 = 1 << 53;

/// The most index entries one `usage` call reads.
pub const MAX_PAGE: usize = 10_000;

/// One page of what a tag's windows hold (`QuotaStore::usage`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsagePage {
    /// (window key without the store prefix, used, reset ms): the windows asked
    /// for by name first (at 0 when there is none), then those of the index
    pub windows: Vec<(String, u64, u64)>,
    /// where the next page starts; None: the index has no more
    pub next: Option<After>,
}

/// A reservation as one operation of a store call ([`Op`]).
#[derive(Debug, Clone)]
pub struct ReserveOp {
    pub id: String,
    pub lease_ms: u64,
    pub tomb_ms: u64,
    /// every window of the tag, all or nothing
    pub items: Vec<Item>,
}

/// A settlement as one operation of a store call ([`Op`]).
#[derive(Debug, Clone)]
pub struct SettleOp {
    pub id: String,
    /// the reservation's lease entry (Redis); empty when none was made
    pub member: String,
    pub tomb_ms: u64,
    pub mode: SettleMode,
    /// every window of the tag the request reserved on, in that order
    pub actual: Vec<Actual>,
    /// the request's ledger entry, when this settlement carries it
    pub ledger: Option<LedgerAdd>,
}

impl ReserveOp {
    /// The settlement that gives this reservation back whole (its answer
    /// was lost to a caller that went away).
    pub fn refund(&self, member: String) -> SettleOp {
        SettleOp {
            id: self.id.clone(),
            member,
            tomb_ms: self.tomb_ms,
            mode: SettleMode::Reserved,
            actual: self
                .items
                .iter()
                .map(|it| Actual {
                    key: it.key.clone(),
                    span: it.span.clone(),
                    amount: 0,
                    limit: it.limit,
                    alerts: Arc::from(Vec::new()),
                })
                .collect(),
            ledger: None,
        }
    }
}

/// One operation of a store call: several of one hash tag travel in one
/// call (`quota_batch`), run in order, each answered on its own. Shared, so
/// that the caller keeps it (a settlement to send again, a reservation's
/// windows) while a call carries it.
#[derive(Debug, Clone)]
pub enum Op {
    Reserve(Arc<ReserveOp>),
    Settle(Arc<SettleOp>),
}

impl ReserveOp {
    /// About how many bytes of arguments it sends (a call is bounded by it).
    pub fn size(&self) -> usize {
        self.id.len() + 32 + self.items.iter().map(|i| i.key.len() + 64).sum::<usize>()
    }
}

impl SettleOp {
    /// About how many bytes of arguments it sends (a call is bounded by it).
    pub fn size(&self) -> usize {
        let ledger = self.ledger.as_ref().map_or(0, |l| {
            let d = &l.dims;
            d.tenant.len() + d.consumer.len() + d.model.len() + d.provider.len() + 200
        });
        self.id.len()
            + self.member.len()
            + 48
            + self.actual.iter().map(|a| a.key.len() + 80).sum::<usize>()
            + ledger
    }
}

impl Op {
    pub fn size(&self) -> usize {
        match self {
            Op::Reserve(r) => r.size(),
            Op::Settle(s) => s.size(),
        }
    }
}

/// What one operation of a store call answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Reserve(ReserveAnswer),
    Settle(Settled),
}
