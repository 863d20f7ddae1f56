//! What a failover [`Run`] shows, per fault and policy: the failover window,
//! the answers clients got during it, the quota overshoot over the windows
//! spanning the failover, and the usage the windows lost against what clients
//! were served.
//!
//! - An answer is *checked* when Redis decided it: 200 with `quota_status`
//!   `allowed`, or 429 `limited` with the whole limit in its
//!   `x-ratelimit-limit-*` header (the pressed consumers get many of those, as
//!   they should; a replica's own share refuses with its share there). Anything else is *disrupted*: the outage policy (`503
//!   quota_unavailable`, 200 `bypassed` or `local`), another error, or no
//!   answer.
//! - The *window* of a fault runs from the fault to the end of the longest
//!   replica outage (the fault's pressed consumers): a replica's outage runs
//!   from its first disrupted request to the first checked answer to a request
//!   sent after it. Disrupted requests after that (a latency blip when the old
//!   primary resyncs, say) are counted apart.
//! - The *peak* of a pressed consumer is the most it was served (requests, or
//!   tokens the clients received) in any [`super::Plan::counted_span`] of send times
//!   that overlaps the fault (from a span before it to the rejoin): all 200s,
//!   and only those Redis checked. The fleet promises `limit + one request`
//!   for the checked ones whatever the policy; `fail_closed` promises it for
//!   all of them, `local` `2 x limit + one request` (the window as it was,
//!   plus each replica's `limit / N` share while the node is out), and
//!   `fail_open` nothing while the node is out.
//! - An *account* compares what a consumer's clients were served over the run
//!   with what its hour-long accounting windows counted at the end.

use super::fleet::Pressed;
use super::load::{Sample, REQUEST_TOKENS};
use super::{FaultEvents, Policy, Run};
use std::collections::BTreeMap;
use std::time::Duration;

/// How one request ended, as a label: `200 allowed`, `429 rate_limit_exceeded`,
/// `429 by this replica's share`, `503 quota_unavailable`, `200 bypassed`,
/// `no answer`...
pub fn outcome(run: &Run, s: &Sample, quota_status: Option<&str>) -> String {
    if s.status == 0 {
        return "no answer".into();
    }
    match (s.status, &s.code) {
        (200, _) => format!("200 {}", quota_status.unwrap_or("(no log line)")),
        (429, _) if quota_status == Some("limited") && !full_limit(run, s) => {
            "429 by this replica's share".into()
        }
        (st, Some(code)) => format!("{st} {code}"),
        (st, None) => format!("{st}"),
    }
}

/// The answer's `x-ratelimit-limit-*` header of its consumer's pressed quota
/// gives the whole limit, not a replica's share of it (`local`, during an
/// outage: refusals by the share are logged `limited` too).
fn full_limit(run: &Run, s: &Sample) -> bool {
    match run.consumers[s.consumer].pressed {
        Pressed::Requests => s.limit_requests == Some(run.plan.request_limit()),
        Pressed::Tokens => s.limit_tokens == Some(run.plan.token_limit()),
        Pressed::Cold => true,
    }
}

/// Redis decided it (see the module doc).
fn checked(run: &Run, s: &Sample, qs: Option<&str>) -> bool {
    match (s.status, qs) {
        (200, Some("allowed")) => true,
        (429, Some("limited")) => full_limit(run, s),
        _ => false,
    }
}

/// The most `events` (time, amount; sorted by time) add up to within `span`
/// of a start in `[from, to]`, and the part of it `part` selects.
fn peak<F: Fn(usize) -> bool>(
    events: &[(Duration, u64)],
    span: Duration,
    from: Duration,
    to: Duration,
    part: F,
) -> (u64, u64) {
    let mut best = (0, 0);
    let starts =
        std::iter::once(from).chain(events.iter().map(|e| e.0).filter(|&t| t >= from && t <= to));
    for t in starts {
        let (mut sum, mut sub) = (0, 0);
        for (i, e) in events.iter().enumerate() {
            if e.0 >= t && e.0 < t + span {
                sum += e.1;
                if part(i) {
                    sub += e.1;
                }
            }
        }
        if sum > best.0 {
            best = (sum, sub);
        }
    }
    best
}

/// One pressed consumer's windows around a fault.
#[derive(Debug, Clone)]
pub struct Overshoot {
    pub consumer: String,
    pub pressed: Pressed,
    pub limit: u64,
    /// what one request costs in this quota
    pub one_request: u64,
    /// the most served in a window overlapping the fault, all 200s
    pub peak: u64,
    /// of it, admitted by the outage policy (`bypassed`, `local`)
    pub peak_by_policy: u64,
    /// the most served in such a window counting only what Redis checked
    pub peak_checked: u64,
    /// the most served in a window ending before the fault (all checked)
    pub steady: u64,
}

impl Overshoot {
    /// What the fleet promises for all the 200s of a window spanning the fault.
    pub fn promise(&self, policy: Policy, replicas: usize) -> Option<u64> {
        match policy {
            Policy::FailClosed => Some(self.limit + self.one_request),
            Policy::Local => Some(
                self.limit + (self.limit / replicas as u64) * replicas as u64 + self.one_request,
            ),
            Policy::FailOpen => None,
        }
    }
}

/// A consumer's usage: served to its clients, and counted by its accounting
/// windows.
#[derive(Debug, Clone)]
pub struct Account {
    pub consumer: usize,
    pub served_requests: u64,
    pub counted_requests: u64,
    pub served_tokens: u64,
    pub counted_tokens: u64,
    /// 200 answers whose usage the client did not receive (a cut stream)
    pub unknown_usage: usize,
}

impl Account {
    pub fn lost_requests(&self) -> i64 {
        self.served_requests as i64 - self.counted_requests as i64
    }

    pub fn lost_tokens(&self) -> i64 {
        self.served_tokens as i64 - self.counted_tokens as i64
    }
}

/// One fleet through one fault.
#[derive(Debug, Clone)]
pub struct PolicyFindings {
    pub policy: Policy,
    /// from the fault to the end of the replicas' outages (the longest): a
    /// replica's runs from its first disrupted request to the first checked
    /// answer to a request sent after it; `None` when one never ended (or,
    /// see `disrupted_any`, none began)
    pub window: Option<Duration>,
    /// some request was disrupted
    pub disrupted_any: bool,
    /// when the last disrupted request was sent (since the fault)
    pub last_disrupted: Option<Duration>,
    /// the fault's requests sent from the fault to the end of the window, by outcome
    pub outcomes: BTreeMap<String, usize>,
    pub disrupted: usize,
    /// disrupted requests sent after their replica's outage ended, by outcome
    pub after: BTreeMap<String, usize>,
    /// the longest a request of the shard sent from the fault to the rejoin waited
    pub max_latency: Duration,
    /// the other shards' control requests from the fault to the rejoin, and
    /// how many were disrupted
    pub others: (usize, usize),
    pub overshoot: Vec<Overshoot>,
    /// the fault's consumers
    pub accounts: Vec<Account>,
    /// the cold consumer's requests after the fault: (replica, status, quota status)
    pub cold: Vec<(usize, u16, Option<String>)>,
}

#[derive(Debug, Clone)]
pub struct FaultFindings {
    pub events: FaultEvents,
    pub policies: Vec<PolicyFindings>,
}

/// Everything [`measure`] found.
#[derive(Debug, Clone)]
pub struct Findings {
    pub faults: Vec<FaultFindings>,
    /// every consumer's account
    pub accounts: Vec<Account>,
}

/// Reads `run`.
pub fn measure(run: &Run) -> Findings {
    let qs = |s: &Sample| run.quota_status.get(&s.request_id).cloned().flatten();
    let accounts: Vec<Account> = run
        .consumers
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let served: Vec<&Sample> = run
                .samples
                .iter()
                .filter(|s| s.consumer == i && s.status == 200)
                .collect();
            Account {
                consumer: i,
                served_requests: served.len() as u64,
                counted_requests: run.accounts[i].0,
                served_tokens: served.iter().filter_map(|s| s.tokens).sum(),
                counted_tokens: run.accounts[i].1,
                unknown_usage: served.iter().filter(|s| s.tokens.is_none()).count(),
            }
        })
        .collect();
    let span = run.plan.counted_span();
    let mut faults = Vec::new();
    for (n, ev) in run.faults.iter().enumerate() {
        let mut policies = Vec::new();
        for &policy in &run.plan.policies {
            // the fault's pressed consumers, and the control ones of the other shards
            let of_fault = |s: &&Sample| {
                let c = &run.consumers[s.consumer];
                c.policy == policy && c.pressed != Pressed::Cold && c.fault == Some(n)
            };
            let of_others = |s: &&Sample| {
                let c = &run.consumers[s.consumer];
                c.policy == policy && c.fault.is_none() && c.shard != ev.shard
            };
            let mut mine: Vec<&Sample> = run
                .samples
                .iter()
                .filter(|s| of_fault(s) && s.answered >= ev.at)
                .collect();
            mine.sort_by_key(|s| s.sent);
            let ok = |s: &Sample| checked(run, s, qs(s).as_deref());
            // each replica's outage: from its first disrupted request to the
            // first checked answer to a request sent after that one
            let mut window: Option<Duration> = Some(Duration::ZERO);
            let mut any_disrupted = false;
            let mut ends = Vec::new();
            for r in 0..run.plan.replicas {
                let of_r: Vec<&Sample> = mine.iter().copied().filter(|s| s.replica == r).collect();
                let Some(first_bad) = of_r.iter().find(|s| !ok(s)) else {
                    ends.push(ev.at);
                    continue;
                };
                any_disrupted = true;
                let end = of_r
                    .iter()
                    .filter(|s| s.sent > first_bad.sent && ok(s))
                    .map(|s| s.answered)
                    .min();
                ends.push(end.unwrap_or(run.duration));
                window = match (window, end) {
                    (Some(w), Some(e)) => Some(w.max(e.saturating_sub(ev.at))),
                    _ => None,
                };
            }
            let window = window.filter(|_| any_disrupted);
            let until = ends.iter().copied().max().unwrap_or(ev.at);
            let mut outcomes = BTreeMap::new();
            let mut disrupted = 0;
            let mut after = BTreeMap::new();
            let mut last_disrupted = None;
            for s in mine.iter().filter(|s| s.sent >= ev.at) {
                let q = qs(s);
                let bad = !checked(run, s, q.as_deref());
                if s.sent <= until {
                    *outcomes.entry(outcome(run, s, q.as_deref())).or_insert(0) += 1;
                    disrupted += usize::from(bad);
                } else if bad && ends.get(s.replica).is_some_and(|e| s.sent > *e) {
                    *after.entry(outcome(run, s, q.as_deref())).or_insert(0) += 1;
                }
                if bad {
                    last_disrupted = Some(s.sent.saturating_sub(ev.at));
                }
            }
            let max_latency = mine
                .iter()
                .filter(|s| s.sent <= ev.rejoined)
                .map(|s| s.latency())
                .max()
                .unwrap_or_default();
            let others: Vec<&Sample> = run
                .samples
                .iter()
                .filter(|s| of_others(s) && s.sent >= ev.at && s.sent <= ev.rejoined)
                .collect();
            let others_bad = others
                .iter()
                .filter(|s| !checked(run, s, qs(s).as_deref()))
                .count();
            let mut overshoot = Vec::new();
            for (i, c) in run.consumers.iter().enumerate() {
                if c.policy != policy || c.fault != Some(n) || c.pressed == Pressed::Cold {
                    continue;
                }
                let served: Vec<&Sample> = {
                    let mut v: Vec<&Sample> = run
                        .samples
                        .iter()
                        .filter(|s| s.consumer == i && s.status == 200)
                        .collect();
                    v.sort_by_key(|s| s.sent);
                    v
                };
                let (limit, one) = match c.pressed {
                    Pressed::Requests => (run.plan.request_limit(), 1),
                    _ => (run.plan.token_limit(), REQUEST_TOKENS),
                };
                let events: Vec<(Duration, u64)> = served
                    .iter()
                    .map(|s| {
                        let amount = match c.pressed {
                            Pressed::Requests => 1,
                            _ => s.tokens.unwrap_or(REQUEST_TOKENS),
                        };
                        (s.sent, amount)
                    })
                    .collect();
                let allowed: Vec<bool> = served
                    .iter()
                    .map(|s| qs(s).as_deref() == Some("allowed"))
                    .collect();
                let from = ev.at.saturating_sub(span);
                let (peak_all, peak_allowed_part) =
                    peak(&events, span, from, ev.rejoined, |k| allowed[k]);
                let checked_events: Vec<(Duration, u64)> = events
                    .iter()
                    .zip(&allowed)
                    .filter(|(_, a)| **a)
                    .map(|(e, _)| *e)
                    .collect();
                let (peak_checked, _) = peak(&checked_events, span, from, ev.rejoined, |_| true);
                let started = events.first().map_or(Duration::ZERO, |e| e.0);
                let (steady, _) =
                    peak(&events, span, started, ev.at.saturating_sub(span), |_| true);
                overshoot.push(Overshoot {
                    consumer: c.label(),
                    pressed: c.pressed,
                    limit,
                    one_request: one,
                    peak: peak_all,
                    peak_by_policy: peak_all - peak_allowed_part,
                    peak_checked,
                    steady,
                });
            }
            let shard_accounts = accounts
                .iter()
                .filter(|a| {
                    let c = &run.consumers[a.consumer];
                    c.policy == policy && c.fault == Some(n)
                })
                .cloned()
                .collect();
            let cold = run
                .cold
                .iter()
                .filter(|c| c.fault == n && c.policy == policy)
                .map(|c| (c.replica, c.status, c.quota_status.clone()))
                .collect();
            policies.push(PolicyFindings {
                policy,
                window,
                disrupted_any: any_disrupted,
                last_disrupted,
                outcomes,
                disrupted,
                after,
                max_latency,
                others: (others.len(), others_bad),
                overshoot,
                accounts: shard_accounts,
                cold,
            });
        }
        faults.push(FaultFindings {
            events: ev.clone(),
            policies,
        });
    }
    Findings { faults, accounts }
}

/// How long after the cluster listed the promoted replica a fleet may still
/// be disrupted on that shard: one `timeout_ms`, the monitor's poll and the
/// 300 ms a returning shard keeps the outage policy, with room for a loaded
/// machine.
pub const FOLLOW_WITHIN: Duration = Duration::from_secs(2);

/// Every promise `run` broke, as sentences (empty: all kept).
pub fn broken(run: &Run, f: &Findings) -> Vec<String> {
    let mut out = Vec::new();
    for end in &run.fleets {
        if !end.same_processes {
            out.push(format!(
                "{}: a replica is not the process it was at the start",
                end.policy.name()
            ));
        }
        for (r, nodes) in end.nodes.iter().enumerate() {
            let mut named: Vec<&String> = nodes.keys().collect();
            named.sort();
            let mut masters: Vec<&String> = run.masters.iter().collect();
            masters.sort();
            if named != masters || nodes.values().any(|v| *v != 0.0) {
                out.push(format!(
                    "{} replica {r}: gateway_state_node_degraded at the end is {nodes:?}, the masters are {:?}",
                    end.policy.name(),
                    run.masters
                ));
            }
        }
    }
    for a in &f.accounts {
        let c = &run.consumers[a.consumer];
        if a.lost_requests() < 0 || a.lost_tokens() < 0 {
            out.push(format!(
                "{}: counted more than its clients were served ({} requests, {} tokens too many)",
                c.label(),
                -a.lost_requests(),
                -a.lost_tokens()
            ));
        }
        if a.unknown_usage > 0 {
            out.push(format!(
                "{}: {} answers without usage (cut streams)",
                c.label(),
                a.unknown_usage
            ));
        }
    }
    for ff in &f.faults {
        let e = &ff.events;
        for p in &ff.policies {
            let what = format!("{} / {}", e.fault.name(), p.policy.name());
            match p.window {
                None if p.disrupted_any => {
                    out.push(format!("{what}: the shard never answered checked again"))
                }
                None => {}
                Some(w) => {
                    let recovered = e.at + w;
                    if recovered > e.promoted + FOLLOW_WITHIN {
                        out.push(format!(
                            "{what}: checked answers came back {} ms after the promotion (allowed {} ms)",
                            (recovered - e.promoted).as_millis(),
                            FOLLOW_WITHIN.as_millis()
                        ));
                    }
                    if let (super::Fault::Freeze, Some(back)) = (e.fault, e.back) {
                        if recovered >= back {
                            out.push(format!(
                                "{what}: the shard answered again only once the frozen primary resumed"
                            ));
                        }
                    }
                }
            }
            if p.others.1 * 100 > p.others.0 {
                out.push(format!(
                    "{what}: the other shards had {} disrupted requests in {}",
                    p.others.1, p.others.0
                ));
            }
            for (r, status, qs) in &p.cold {
                if *status != 200 {
                    out.push(format!(
                        "{what}: the cold key of the shard got {status} ({qs:?}) from replica {r}"
                    ));
                }
            }
            let lost_of = |consumer: &str, pressed: Pressed| {
                p.accounts
                    .iter()
                    .find(|a| run.consumers[a.consumer].label() == consumer)
                    .map_or(0, |a| match pressed {
                        Pressed::Requests => a.lost_requests(),
                        _ => a.lost_tokens(),
                    })
                    .max(0) as u64
            };
            for x in &p.overshoot {
                let lost = lost_of(&x.consumer, x.pressed);
                if x.steady > x.limit + x.one_request {
                    out.push(format!(
                        "{}: {} served before any fault in one window, limit {}",
                        x.consumer, x.steady, x.limit
                    ));
                }
                if x.peak_checked > x.limit + x.one_request + lost {
                    out.push(format!(
                        "{what}: {} was admitted {} by Redis in one window, limit {} (+ one request {} + lost {lost})",
                        x.consumer, x.peak_checked, x.limit, x.one_request
                    ));
                }
                if let Some(promise) = x.promise(p.policy, run.plan.replicas) {
                    if x.peak > promise + lost {
                        out.push(format!(
                            "{what}: {} was served {} in one window, promise {promise} (+ lost {lost})",
                            x.consumer, x.peak
                        ));
                    }
                }
            }
            if e.fault == super::Fault::Failover {
                for a in &p.accounts {
                    if a.lost_requests() != 0 || a.lost_tokens() != 0 {
                        out.push(format!(
                            "{what}: a graceful failover lost usage of {}: {} requests, {} tokens",
                            run.consumers[a.consumer].label(),
                            a.lost_requests(),
                            a.lost_tokens()
                        ));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_peak_is_the_fullest_span() {
        let ev = [
            (ms(0), 1),
            (ms(50), 1),
            (ms(100), 1),
            (ms(990), 5),
            (ms(1000), 1),
        ];
        // [0, 1000): 1+1+1+5; [50, 1050): 1+1+5+1
        assert_eq!(peak(&ev, ms(1000), ms(0), ms(2000), |_| true), (8, 8));
        // the part: only the 5
        assert_eq!(peak(&ev, ms(1000), ms(0), ms(2000), |i| i == 3), (8, 5));
        // starts only up to 10 ms
        assert_eq!(peak(&ev, ms(100), ms(0), ms(10), |_| true).0, 2);
        assert_eq!(peak(&[], ms(100), ms(0), ms(10), |_| true), (0, 0));
    }
}
