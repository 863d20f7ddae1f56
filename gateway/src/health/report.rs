//! The reporter: takes health events off the request path (a bounded queue the
//! data plane never waits on), folds whatever has queued up into one
//! `health_report` call per provider, and applies the answer to the mirrors, so
//! this replica sees an ejection it caused at once.

use super::rules::{Passive, ProbeRule};
use super::store::{self, Arg};
use super::{Backend, Cell, Health};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Most events folded into one round.
const BATCH: usize = 512;
/// Longest error text kept (the hash is read by every replica).
const ERR_MAX: usize = 200;

pub enum Kind {
    Fail { err: String, rule: Passive },
    Success,
    ProbeOk(ProbeRule),
    ProbeFail { err: String, rule: ProbeRule },
}

pub struct Event {
    pub cell: Arc<Cell>,
    pub target: usize,
    pub kind: Kind,
}

pub async fn run(health: Arc<Health>, mut rx: mpsc::Receiver<Event>) {
    let Backend::Redis(conn) = &health.backend else {
        return;
    };
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut by_provider: HashMap<Arc<str>, (Arc<Cell>, Vec<Arg>)> = HashMap::new();
        for ev in batch.drain(..) {
            let entry = by_provider
                .entry(ev.cell.id.clone())
                .or_insert_with(|| (ev.cell.clone(), Vec::new()));
            fold(&mut entry.1, ev.target, ev.kind);
        }
        let calls = by_provider.into_values().map(|(cell, args)| {
            let health = &health;
            async move {
                match store::exchange(conn, &health.channel, &cell.id, &cell.labels, &args).await {
                    Ok(state) => {
                        cell.apply_fleet(&state, health.now());
                        if state.changed & 1 != 0 {
                            health.stats.ejections.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(provider = %cell.id, "upstream ejected for the fleet");
                        }
                        if state.changed & 2 != 0 {
                            health.stats.recoveries.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(provider = %cell.id, "upstream healthy again for the fleet");
                        }
                    }
                    Err(e) => {
                        health
                            .stats
                            .reports_failed
                            .fetch_add(args.len() as u64, Ordering::Relaxed);
                        tracing::debug!(provider = %cell.id, error = %e, "health report not sent");
                    }
                }
            }
        });
        futures_util::future::join_all(calls).await;
    }
}

/// Adds one event, merging it into the previous one of the same target and kind
/// when nothing else came between (a run of failures is one argument group).
fn fold(args: &mut Vec<Arg>, target: usize, kind: Kind) {
    let (code, err, a, b, c) = match kind {
        Kind::Fail { err, rule } => (
            "f",
            err,
            u64::from(rule.failures),
            rule.window_ms,
            rule.ejection_ms,
        ),
        Kind::Success => ("s", String::new(), 1, 1, 1),
        Kind::ProbeOk(r) => ("po", String::new(), u64::from(r.healthy), 1, 1),
        Kind::ProbeFail { err, rule } => ("pf", err, u64::from(rule.unhealthy), rule.hold_ms, 1),
    };
    if let Some(last) = args.iter_mut().rev().find(|x| x.target == target) {
        if last.kind == code && last.a == a && last.b == b && last.c == c {
            // successes in a row say nothing more than one
            if code != "s" {
                last.count += 1;
            }
            if !err.is_empty() {
                last.err = short(err);
            }
            return;
        }
    }
    args.push(Arg {
        target,
        kind: code,
        count: 1,
        err: short(err),
        a: a.max(1),
        b: b.max(1),
        c: c.max(1),
    });
}

fn short(mut s: String) -> String {
    if s.len() > ERR_MAX {
        let mut cut = ERR_MAX;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Passive = Passive {
        failures: 3,
        window_ms: 1000,
        ejection_ms: 5000,
    };

    #[test]
    fn runs_fold_and_order_is_kept() {
        let mut args = Vec::new();
        for _ in 0..3 {
            fold(
                &mut args,
                0,
                Kind::Fail {
                    err: "http 503".into(),
                    rule: P,
                },
            );
        }
        fold(&mut args, 0, Kind::Success);
        fold(&mut args, 0, Kind::Success);
        fold(
            &mut args,
            0,
            Kind::Fail {
                err: "timeout".into(),
                rule: P,
            },
        );
        fold(
            &mut args,
            2,
            Kind::Fail {
                err: "http 401".into(),
                rule: P,
            },
        );
        let seen: Vec<(usize, &str, u32)> =
            args.iter().map(|a| (a.target, a.kind, a.count)).collect();
        assert_eq!(
            seen,
            vec![(0, "f", 3), (0, "s", 1), (0, "f", 1), (2, "f", 1)]
        );
        assert_eq!(args[2].err, "timeout");
    }
}
