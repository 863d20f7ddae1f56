//! What each fault did to the clients, the quotas and the accounts, held
//! against what the README promises for the policy in force.
//!
//! A request counts against a quota window when it was admitted (its access
//! line says `allowed`, `local` or `bypassed`; without a line, when it was
//! answered 200), with the usage its answer reported (else the one its access
//! line charged: a cut stream's estimate). Its admission lies between when it
//! was sent and when its head came back, so a window `[t - W, t]` surely holds
//! the requests sent after `t - W` whose head came by `t`: sums over those
//! are never too high, and every right end `t` at a response head is tried.
//!
//! * **Over the limit.** A request admitted by Redis was checked against
//!   everything the window held before it, outage usage included (the
//!   replicas land it before they reserve again). So a window holds at most
//!   the limit (+ one request's cost for tokens; `requests` is exact) plus the
//!   usage admitted without Redis (`local`, `bypassed`) that had not landed
//!   when Redis admitted its last request: admitted after it, or still running
//!   then (a request admitted during an outage is charged when it ends, as
//!   documented), and what a SIGKILLed replica served without settling it (in
//!   flight, or settlement still queued: its reservation goes back when its
//!   lease ends, as documented). A window holding usage admitted without Redis
//!   may instead stay within the README's bound for the first window after an
//!   outage, max(limit, that usage) + one request, or, when a replica saw
//!   Redis come back later than another admitted through it, the limit + that
//!   usage + one request (the row says how many windows needed each). Under
//!   `fail_closed` nothing is admitted without Redis: never over the limit.
//!   Across a restart without data only what was admitted after it counts
//!   (Redis forgot the rest, as documented).
//! * **Local shares.** Under `local`, what one replica admitted on its own in
//!   any window stays within `limit / 3` (+ one request's cost for tokens).
//! * **Errors.** Only those the fault explains: `503 quota_unavailable` under
//!   `fail_closed` while Redis is out, the upstream's 500s, 504s and cut
//!   streams while it fails, no answer for what a killed replica was serving.
//! * **Recovery.** From the end of the fault to the first second after which
//!   every answer is a 200 (whole) or a 429, within the recovery time.
//! * **Usage.** Per accounting label, what Redis settled equals what the
//!   admitted requests used, to the token and the request; only what Redis
//!   lost in a restart without data, and what a killed replica served in its
//!   last second, may be missing.
//! * **Panics.** No `panicked` in any replica's stderr.

mod windows;

use super::load::{request_id, Record, UsageSample};
use super::{Fault, Plan, Policy};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use windows::windows;

/// µs.
const SECOND: u64 = 1_000_000;
/// How long after its answer ended a request's settlement may take to reach
/// Redis (queued at the end, sent by the replica's settle workers).
const LANDING: u64 = SECOND / 4;

/// What the judge reads of one access-log line.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// index of the replica that wrote it
    pub replica: usize,
    pub status: u16,
    pub quota_status: Option<String>,
    pub total: u64,
    pub estimated: bool,
}

/// When one fault's phases began and ended (µs since the run's start).
#[derive(Debug, Clone)]
pub struct PhaseTimes {
    pub fault: Fault,
    /// the lead-in began
    pub start: u64,
    /// the fault began
    pub begin: u64,
    /// the fault was over (Redis back, replicas replaced and ready)
    pub end: u64,
    /// the recovery time was over
    pub until: u64,
    /// the replica SIGKILLed
    pub killed: Option<usize>,
    /// (before, after) Redis was killed, when it lost its data
    pub lost: Option<(u64, u64)>,
    /// `panicked` lines written meanwhile
    pub panics: Vec<String>,
    pub notes: Vec<String>,
}

/// Everything one policy's run left.
pub struct Evidence {
    pub plan: Plan,
    pub policy: Policy,
    pub records: Vec<Record>,
    pub labels: Vec<Arc<str>>,
    pub logs: HashMap<String, LogLine>,
    /// per label: (tokens, requests) Redis settled
    pub settled: HashMap<String, (u64, u64)>,
    pub samples: Vec<UsageSample>,
    pub phases: Vec<PhaseTimes>,
}

/// One figure of the table, with its verdict (`None`: for information).
#[derive(Debug, Clone)]
pub struct Cell {
    pub text: String,
    pub pass: Option<bool>,
}

impl Cell {
    fn info(text: String) -> Cell {
        Cell { text, pass: None }
    }

    fn check(text: String, pass: bool) -> Cell {
        Cell {
            text,
            pass: Some(pass),
        }
    }
}

/// One fault under one policy.
#[derive(Debug, Clone)]
pub struct Row {
    pub fault: Fault,
    pub answers: Cell,
    pub errors: Cell,
    pub tokens_over: Cell,
    pub requests_over: Cell,
    pub local_shares: Cell,
    pub recovery: Cell,
    pub usage: Cell,
    pub panics: Cell,
    /// what explains the figures
    pub details: Vec<String>,
}

impl Row {
    pub fn cells(&self) -> [&Cell; 8] {
        [
            &self.errors,
            &self.tokens_over,
            &self.requests_over,
            &self.local_shares,
            &self.recovery,
            &self.usage,
            &self.panics,
            &self.answers,
        ]
    }

    pub fn pass(&self) -> bool {
        self.cells().iter().all(|c| c.pass != Some(false))
    }
}

/// One policy's rows and totals.
#[derive(Debug, Clone)]
pub struct PolicyResult {
    pub policy: Policy,
    pub rows: Vec<Row>,
    pub requests: usize,
    pub seconds: f64,
    /// (tokens served, tokens settled) over every label
    pub totals: (u64, u64),
}

impl PolicyResult {
    pub fn pass(&self) -> bool {
        self.rows.iter().all(Row::pass)
    }
}

/// How one answer ended.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Ok,
    Limited,
    QuotaUnavailable,
    Transport,
    Cut,
    Status(u16, String),
}

impl Kind {
    fn of(r: &Record) -> Kind {
        let code = r.code.as_deref().unwrap_or("-");
        match r.status {
            0 => Kind::Transport,
            200 if r.complete => Kind::Ok,
            200 => Kind::Cut,
            429 => Kind::Limited,
            503 if code == "quota_unavailable" => Kind::QuotaUnavailable,
            s => Kind::Status(s, code.to_string()),
        }
    }

    fn normal(&self) -> bool {
        matches!(self, Kind::Ok | Kind::Limited)
    }

    fn name(&self) -> String {
        match self {
            Kind::Ok => "200".into(),
            Kind::Limited => "429".into(),
            Kind::QuotaUnavailable => "503 quota_unavailable".into(),
            Kind::Transport => "no answer".into(),
            Kind::Cut => "cut stream".into(),
            Kind::Status(s, c) => format!("{s} {c}"),
        }
    }
}

/// What the judge knows of one record.
struct Seen<'a> {
    r: &'a Record,
    log: Option<&'a LogLine>,
    kind: Kind,
    admitted: bool,
    tokens: u64,
    /// served by a replica SIGKILLed before it could settle: in flight then,
    /// or ended in its last second (its settlement may have been queued still);
    /// the reservation goes back when its lease ends
    orphan: bool,
}

pub fn judge(e: &Evidence) -> PolicyResult {
    let seen: Vec<Seen> = e
        .records
        .iter()
        .map(|r| {
            let log = e.logs.get(&request_id(r.seq));
            let admitted = match log.and_then(|l| l.quota_status.as_deref()) {
                Some(s) => matches!(s, "allowed" | "local" | "bypassed"),
                None => r.status == 200,
            };
            let tokens = if admitted {
                r.usage.or(log.map(|l| l.total)).unwrap_or(0)
            } else {
                0
            };
            let orphan = e.phases.iter().any(|p| {
                p.killed.is_some_and(|k| {
                    log.is_none_or(|l| l.replica == k)
                        && r.sent <= p.begin
                        && r.end + SECOND >= p.begin
                })
            });
            Seen {
                r,
                log,
                kind: Kind::of(r),
                admitted,
                tokens,
                orphan,
            }
        })
        .collect();
    let losses: Vec<(u64, u64)> = e.phases.iter().filter_map(|p| p.lost).collect();
    let rows = e.phases.iter().map(|p| row(e, p, &seen, &losses)).collect();
    let served: u64 = seen.iter().map(|s| s.tokens).sum();
    let settled: u64 = e.settled.values().map(|v| v.0).sum();
    let span = e.records.iter().map(|r| r.end).max().unwrap_or(0);
    PolicyResult {
        policy: e.policy,
        rows,
        requests: e.records.len(),
        seconds: span as f64 / SECOND as f64,
        totals: (served, settled),
    }
}

fn row(e: &Evidence, p: &PhaseTimes, seen: &[Seen], losses: &[(u64, u64)]) -> Row {
    let mut details = Vec::new();
    let in_phase = |s: &&Seen| s.r.end >= p.start && s.r.end < p.until;
    // answers of the fault and its recovery
    let mut by_kind: BTreeMap<Kind, usize> = BTreeMap::new();
    for s in seen
        .iter()
        .filter(|s| s.r.end >= p.begin && s.r.end < p.until)
    {
        *by_kind.entry(s.kind.clone()).or_default() += 1;
    }
    let count = |k: &Kind| by_kind.get(k).copied().unwrap_or(0);
    let others: usize = by_kind
        .iter()
        .filter(|(k, _)| !matches!(k, Kind::Ok | Kind::Limited | Kind::QuotaUnavailable))
        .map(|(_, n)| n)
        .sum();
    let answers = Cell::info(format!(
        "{} / {} / {} / {}",
        fmt(count(&Kind::Ok) as u64),
        fmt(count(&Kind::Limited) as u64),
        fmt(count(&Kind::QuotaUnavailable) as u64),
        fmt(others as u64)
    ));
    if others > 0 {
        let list: Vec<String> = by_kind
            .iter()
            .filter(|(k, _)| !matches!(k, Kind::Ok | Kind::Limited | Kind::QuotaUnavailable))
            .map(|(k, n)| format!("{} × {n}", k.name()))
            .collect();
        details.push(format!("other answers: {}", list.join(", ")));
    }
    // errors the fault does not explain
    let mut unexplained: BTreeMap<String, usize> = BTreeMap::new();
    for s in seen.iter().filter(in_phase) {
        if !s.kind.normal() && !explained(e.policy, p, s) {
            *unexplained.entry(s.kind.name()).or_default() += 1;
        }
    }
    let n_unexplained: usize = unexplained.values().sum();
    if n_unexplained > 0 {
        let list: Vec<String> = unexplained
            .iter()
            .map(|(k, n)| format!("{k} × {n}"))
            .collect();
        details.push(format!("errors beyond the promise: {}", list.join(", ")));
    }
    let errors = Cell::check(fmt(n_unexplained as u64), n_unexplained == 0);
    let slowest = seen
        .iter()
        .filter(in_phase)
        .max_by_key(|s| s.r.end - s.r.sent);
    if let Some(s) = slowest.filter(|s| s.r.end - s.r.sent > 2 * SECOND) {
        details.push(format!(
            "slowest answer: {} after {:.1} s, sent {:.1} s after the fault began",
            s.kind.name(),
            (s.r.end - s.r.sent) as f64 / SECOND as f64,
            (s.r.sent as f64 - p.begin as f64) / SECOND as f64
        ));
    }
    // quota windows
    let (tokens_over, requests_over, local_shares) = windows(e, p, seen, losses, &mut details);
    let recovery = recovery(p, seen, &mut details);
    if n_unexplained > 0 || recovery.pass == Some(false) {
        details.push(timeline(p, seen));
    }
    let usage = usage(e, p, seen, &mut details);
    let panics = Cell::check(p.panics.len().to_string(), p.panics.is_empty());
    for l in p.panics.iter().take(3) {
        details.push(format!("panic: {l}"));
    }
    details.extend(p.notes.iter().cloned());
    Row {
        fault: p.fault,
        answers,
        errors,
        tokens_over,
        requests_over,
        local_shares,
        recovery,
        usage,
        panics,
        details,
    }
}

/// Whether the fault and the policy explain a failed answer.
fn explained(policy: Policy, p: &PhaseTimes, s: &Seen) -> bool {
    let overlaps = s.r.sent <= p.end && s.r.end >= p.begin;
    match (&s.kind, p.fault) {
        (Kind::QuotaUnavailable, f) => {
            policy == Policy::FailClosed && f.redis_outage() && s.r.end >= p.begin
        }
        (Kind::Transport | Kind::Cut, Fault::ReplicaKill) => {
            // in flight on the killed replica, or sent before the balancer's
            // readiness probe could notice (it polls every 50 ms)
            s.r.sent <= p.begin + SECOND && s.r.end >= p.begin
        }
        (Kind::Status(500, _), Fault::Upstream5xx) => overlaps,
        (Kind::Status(504, _) | Kind::Cut, Fault::UpstreamStall) => overlaps,
        _ => false,
    }
}

fn recovery(p: &PhaseTimes, seen: &[Seen], details: &mut Vec<String>) -> Cell {
    let last_bad = seen
        .iter()
        .filter(|s| s.r.end >= p.end && s.r.end < p.until && !s.kind.normal())
        .map(|s| s.r.end)
        .max();
    match last_bad {
        None => Cell::check("0 s".into(), true),
        Some(t) => {
            let secs = (t - p.end) / SECOND + 1;
            let ok = t + SECOND <= p.until;
            if !ok {
                details.push(format!(
                    "still failing {:.1} s after the fault ended",
                    (t - p.end) as f64 / SECOND as f64
                ));
            }
            Cell::check(format!("{secs} s"), ok)
        }
    }
}

/// Answers per second of the phase (by when they ended), from the lead-in on:
/// `-1.0 s: 200×12 429×3 | ...`, seconds relative to the fault's start.
fn timeline(p: &PhaseTimes, seen: &[Seen]) -> String {
    let mut secs: BTreeMap<i64, BTreeMap<String, usize>> = BTreeMap::new();
    for s in seen
        .iter()
        .filter(|s| s.r.end >= p.start && s.r.end < p.until)
    {
        let k = (s.r.end as i64 - p.begin as i64).div_euclid(SECOND as i64);
        *secs.entry(k).or_default().entry(s.kind.name()).or_default() += 1;
    }
    let parts: Vec<String> = secs
        .iter()
        .map(|(k, m)| {
            let kinds: Vec<String> = m.iter().map(|(n, c)| format!("{n}×{c}")).collect();
            format!("{k:+} s: {}", kinds.join(" "))
        })
        .collect();
    format!(
        "answers per second from the fault's start (it ended at +{:.1} s): {}",
        (p.end - p.begin) as f64 / SECOND as f64,
        parts.join(" | ")
    )
}

fn usage(e: &Evidence, p: &PhaseTimes, seen: &[Seen], details: &mut Vec<String>) -> Cell {
    let mut served_all = 0;
    let mut settled_all = 0;
    let mut ok = true;
    let mut lost_by_design = 0;
    for part in ["pre", "during", "post"] {
        let label = format!("{}.{part}", p.fault.id());
        let Some(li) = e.labels.iter().position(|l| **l == *label) else {
            continue;
        };
        let mine: Vec<&Seen> = seen
            .iter()
            .filter(|s| usize::from(s.r.label) == li && s.admitted)
            .collect();
        let served: u64 = mine.iter().map(|s| s.tokens).sum();
        let requests = mine.len() as u64;
        let (settled, settled_requests) = e.settled.get(&label).copied().unwrap_or_default();
        // what may be missing: admitted by the Redis that was then lost, or
        // served by the killed replica in its last second
        let may_miss: Vec<&&Seen> = mine
            .iter()
            .filter(|s| {
                let redis_lost = p.lost.is_some_and(|(_, after)| s.r.sent < after);
                redis_lost || s.orphan
            })
            .collect();
        let may_tokens: u64 = may_miss.iter().map(|s| s.tokens).sum();
        let may_requests = may_miss.len() as u64;
        let fine = settled <= served
            && served - settled <= may_tokens
            && settled_requests <= requests
            && requests - settled_requests <= may_requests;
        if settled != served || settled_requests != requests {
            details.push(format!(
                "{label}: served {} tokens in {} requests, Redis settled {} in {}{}",
                fmt(served),
                fmt(requests),
                fmt(settled),
                fmt(settled_requests),
                if fine {
                    format!(
                        " (may be missing: {} tokens, {} requests)",
                        fmt(may_tokens),
                        fmt(may_requests)
                    )
                } else {
                    String::new()
                }
            ));
        }
        if fine {
            lost_by_design += served - settled;
        }
        ok &= fine;
        served_all += served;
        settled_all += settled;
    }
    let text = if served_all == settled_all {
        format!("{} = {}", fmt(served_all), fmt(settled_all))
    } else {
        format!("{} vs {}", fmt(served_all), fmt(settled_all))
    };
    let text = if ok && lost_by_design > 0 {
        format!("{text} (−{} by design)", fmt(lost_by_design))
    } else {
        text
    };
    Cell::check(text, ok)
}

/// 12,345
pub fn fmt(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn signed(n: i64) -> String {
    if n <= 0 {
        "0".into()
    } else {
        format!("+{}", fmt(n as u64))
    }
}
