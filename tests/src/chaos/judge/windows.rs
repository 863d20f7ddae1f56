//! The quota windows of one fault: the most any window held beyond each
//! limit, held against the bound the policy promises, and (`local`) each
//! replica's own share. The rules are in the parent module's doc.

use super::{request_id, signed, Cell, Evidence, PhaseTimes, Seen, LANDING, SECOND};
use crate::chaos::spec::{quotas, Owner, QuotaSpec, Strategy, CONSUMERS, REPLICAS};
use crate::chaos::Policy;

/// One admitted request, as a quota window counts it.
#[derive(Debug, Clone, Copy)]
struct Item {
    seq: u64,
    /// the replica whose access log has it
    replica: Option<usize>,
    sent: u64,
    head: u64,
    end: u64,
    amount: u64,
    /// admitted without Redis (`local`, `bypassed`)
    outage: bool,
    /// admitted by this replica's own share (`local`)
    local_of: Option<usize>,
    /// which of Redis's lives it was admitted in (`None`: maybe either)
    epoch: Option<u32>,
    /// its reservation may go back unsettled (see `Seen::orphan`)
    orphan: bool,
}

pub(super) fn epoch(t: u64, losses: &[(u64, u64)]) -> u32 {
    losses.iter().filter(|(_, after)| *after <= t).count() as u32
}

pub(super) fn item_epoch(sent: u64, head: u64, losses: &[(u64, u64)]) -> Option<u32> {
    let straddles = losses
        .iter()
        .any(|&(before, after)| sent < after && head >= before);
    (!straddles).then(|| epoch(sent, losses))
}

pub(super) fn windows(
    e: &Evidence,
    p: &PhaseTimes,
    seen: &[Seen],
    losses: &[(u64, u64)],
    details: &mut Vec<String>,
) -> (Cell, Cell, Cell) {
    let w = u64::try_from(e.plan.window.as_micros()).unwrap_or(u64::MAX);
    let mut over = [(0i64, 0i64, true); 2];
    let mut share = (0i64, true);
    for q in quotas() {
        let mut items: Vec<Item> = seen
            .iter()
            .filter(|s| s.admitted && applies(&q, s.r.consumer))
            .map(|s| {
                let status = s.log.and_then(|l| l.quota_status.as_deref());
                Item {
                    seq: s.r.seq,
                    replica: s.log.map(|l| l.replica),
                    sent: s.r.sent,
                    head: s.r.head,
                    end: s.r.end,
                    amount: match q.strategy {
                        Strategy::Tokens => s.tokens,
                        Strategy::Requests => 1,
                    },
                    outage: matches!(status, Some("local" | "bypassed")),
                    local_of: match status {
                        Some("local") => s.log.map(|l| l.replica),
                        _ => None,
                    },
                    epoch: item_epoch(s.r.sent, s.r.head, losses),
                    orphan: s.orphan,
                }
            })
            .collect();
        items.sort_by_key(|i| i.head);
        let slack = match q.strategy {
            Strategy::Tokens => items.iter().map(|i| i.amount).max().unwrap_or(0),
            Strategy::Requests => 0,
        };
        let k = usize::from(q.strategy == Strategy::Requests);
        // one request, as the README's bound after an outage counts it
        let one = match q.strategy {
            Strategy::Tokens => slack,
            Strategy::Requests => 1,
        };
        let fleet = sweep(&items, w, p, losses, |win| {
            let exact = match win.last_redis {
                Some(_) => q.limit + slack + win.unchecked,
                None => u64::MAX,
            };
            // the first window after an outage ends within max(limit, usage
            // served during the outage) + one request when the replicas see
            // Redis return together; one that sees it later admits under its
            // policy meanwhile, so whatever the timing a window holds at most
            // the limit + one request + what was admitted without Redis
            // (README, Quotas)
            let (together, late) = match win.outage {
                0 => (0, 0),
                out => (q.limit.max(out) + one, q.limit + out + one),
            };
            let verdict = if win.sum <= exact {
                Verdict::Exact
            } else if win.sum <= together {
                Verdict::Documented
            } else if win.sum <= late {
                Verdict::Late
            } else {
                Verdict::Broken
            };
            (win.sum as i64 - q.limit as i64, verdict)
        });
        if fleet.documented > 0 {
            details.push(format!(
                "{}: {} window(s) over the exact bound, within max(limit, outage usage) + one request (an admission by Redis before another replica's outage usage had landed)",
                q.name, fleet.documented
            ));
        }
        if fleet.late > 0 {
            details.push(format!(
                "{}: {} window(s) past max(limit, outage usage) + one request, within limit + outage usage + one request (a replica saw Redis return later than another admitted through it)",
                q.name, fleet.late
            ));
        }
        over[k].0 = over[k].0.max(fleet.during);
        over[k].1 = over[k].1.max(fleet.after);
        if let Some(v) = fleet.violation {
            over[k].2 = false;
            details.push(format!("{}: {v}", q.name));
            if let Some(dir) = &e.plan.keep_logs {
                let file = dir.join(e.policy.name()).join(format!(
                    "window-{}-{}.txt",
                    p.fault.id(),
                    q.name
                ));
                let _ = std::fs::create_dir_all(dir.join(e.policy.name()));
                let _ = std::fs::write(file, fleet.dump.join("\n"));
            }
        }
        // /admin/usage while the fault lasted and after
        let peak = e
            .samples
            .iter()
            .filter(|s| s.quota == q.name && s.at >= p.begin && s.at < p.until)
            .map(|s| s.used)
            .max();
        if let Some(peak) = peak {
            if e.policy == Policy::FailClosed && peak > q.limit + slack {
                over[k].2 = false;
                details.push(format!(
                    "{}: /admin/usage showed {peak} used of {}",
                    q.name, q.limit
                ));
            }
        }
        if e.policy == Policy::Local {
            let limit = q.limit / REPLICAS as u64;
            for replica in 0..e.logs.values().map(|l| l.replica + 1).max().unwrap_or(0) {
                // (a replica's own windows live through Redis's restarts)
                let mine: Vec<Item> = items
                    .iter()
                    .filter(|i| i.local_of == Some(replica))
                    .map(|i| Item {
                        epoch: Some(0),
                        ..*i
                    })
                    .collect();
                let s = sweep(&mine, w, p, &[], |win| {
                    let verdict = match win.sum <= limit + slack {
                        true => Verdict::Exact,
                        false => Verdict::Broken,
                    };
                    (win.sum as i64 - limit as i64, verdict)
                });
                share.0 = share.0.max(s.during).max(s.after);
                if let Some(v) = s.violation {
                    share.1 = false;
                    details.push(format!("{} share of replica {replica}: {v}", q.name));
                }
            }
        }
    }
    let cell =
        |(d, a, ok): (i64, i64, bool)| Cell::check(format!("{} / {}", signed(d), signed(a)), ok);
    let shares = match e.policy {
        Policy::Local => Cell::check(signed(share.0), share.1),
        _ => Cell::info("–".into()),
    };
    (cell(over[0]), cell(over[1]), shares)
}

fn applies(q: &QuotaSpec, consumer: u8) -> bool {
    let c = &CONSUMERS[usize::from(consumer)];
    match q.owner {
        Owner::Consumer => c.quotas.iter().any(|o| o.name == q.name),
        Owner::Tenant => CONSUMERS
            .iter()
            .any(|o| o.tenant == c.tenant && o.quotas.iter().any(|x| x.name == q.name)),
    }
}

/// What one window `[t - w, t]` holds.
struct Window {
    sum: u64,
    /// when the last request Redis admitted in it was sent
    last_redis: Option<u64>,
    /// what Redis may not have counted at its last admission (see [`sweep`])
    unchecked: u64,
    /// usage admitted without Redis
    outage: u64,
}

/// How a window stands against its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// within what Redis knew at its last admission
    Exact,
    /// beyond that, within the README's bound for the first window after an
    /// outage the replicas saw end together: max(limit, outage usage) + one
    Documented,
    /// beyond that, within limit + outage usage + one request: a replica
    /// admitted without Redis after another saw it back (README, Quotas)
    Late,
    Broken,
}

/// The worst windows of one set of items whose right end falls in the fault
/// (`during`) or its recovery (`after`).
struct Sweep {
    during: i64,
    after: i64,
    /// windows only the README's bound after an outage held
    documented: usize,
    /// windows only the bound for an outage seen to end late held
    late: usize,
    violation: Option<String>,
    /// the first violating window's items, one line each
    dump: Vec<String>,
}

/// Tries every window `[t - w, t]` with `t` a head time in the phase;
/// `judge` gives its excess over the limit and its verdict.
fn sweep(
    items: &[Item],
    w: u64,
    p: &PhaseTimes,
    losses: &[(u64, u64)],
    judge: impl Fn(&Window) -> (i64, Verdict),
) -> Sweep {
    let mut out = Sweep {
        during: 0,
        after: 0,
        documented: 0,
        late: 0,
        violation: None,
        dump: Vec::new(),
    };
    let mut lo = 0;
    for (j, it) in items.iter().enumerate() {
        let t = it.head;
        if t < p.begin || t >= p.until {
            continue;
        }
        while items[lo].head + w < t {
            lo += 1;
        }
        let ep = epoch(t, losses);
        let inside = || {
            items[lo..=j]
                .iter()
                .filter(move |i| i.sent + w >= t && i.epoch == Some(ep))
        };
        let sum: u64 = inside().map(|i| i.amount).sum();
        let last_redis = inside().filter(|i| !i.outage).map(|i| i.sent).max();
        // what Redis may not have counted at its last admission: admitted
        // without it after that, or before but still running (charged when it
        // ends, as documented) or landing then; and what a killed replica
        // served unsettled (its reservations go back when their leases end)
        let out_after: u64 = match last_redis {
            Some(s) => inside()
                .filter(|i| (i.outage && i.end + LANDING >= s) || i.orphan)
                .map(|i| i.amount)
                .sum(),
            None => 0,
        };
        let outage: u64 = inside().filter(|i| i.outage).map(|i| i.amount).sum();
        let (excess, verdict) = judge(&Window {
            sum,
            last_redis,
            unchecked: out_after,
            outage,
        });
        out.documented += usize::from(verdict == Verdict::Documented);
        out.late += usize::from(verdict == Verdict::Late);
        let ok = verdict != Verdict::Broken;
        if t < p.end {
            out.during = out.during.max(excess);
        } else {
            out.after = out.after.max(excess);
        }
        if !ok && out.violation.is_none() {
            out.violation = Some(format!(
                "the window ending {:.1} s after the fault began holds {sum} ({} not counted in Redis at its last admission: admitted without it, or served unsettled by a killed replica)",
                (t as f64 - p.begin as f64) / SECOND as f64,
                out_after
            ));
            let rel = |x: u64| (x as f64 - p.begin as f64) / SECOND as f64;
            out.dump = inside()
                .map(|i| {
                    format!(
                        "{} replica {:?} sent {:.3} head {:.3} end {:.3} amount {} outage {} orphan {}",
                        request_id(i.seq),
                        i.replica,
                        rel(i.sent),
                        rel(i.head),
                        rel(i.end),
                        i.amount,
                        i.outage,
                        i.orphan
                    )
                })
                .collect();
        }
    }
    out
}
