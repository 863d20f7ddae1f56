//! The report of a failover run: the set-up, then per fault the timeline, and
//! per fault and policy the window, what clients saw, the overshoot and the
//! lost usage, then every consumer's account and what the gateway can promise.

use super::fleet::Pressed;
use super::measure::{Account, Findings, Overshoot, PolicyFindings};
use super::Run;
use std::fmt::Write;
use std::time::Duration;

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

fn opt_ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), ms)
}

fn signed(n: i64) -> String {
    if n > 0 {
        format!("+{n}")
    } else {
        n.to_string()
    }
}

/// `peak / limit (+over)` of one quota.
fn against(peak: u64, limit: u64) -> String {
    if peak > limit {
        format!("{peak} / {limit} (**+{}**)", peak - limit)
    } else {
        format!("{peak} / {limit}")
    }
}

/// The window, or that no request was disrupted.
fn window(p: &PolicyFindings) -> String {
    match (p.window, p.disrupted_any) {
        (Some(w), _) => ms(w),
        (None, false) => "none disrupted".into(),
        (None, true) => "**never ended**".into(),
    }
}

fn counts(m: &std::collections::BTreeMap<String, usize>) -> String {
    if m.is_empty() {
        return "-".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn outcomes(p: &PolicyFindings) -> String {
    counts(&p.outcomes)
}

fn lost(a: &[Account]) -> String {
    let req: i64 = a.iter().map(Account::lost_requests).sum();
    let tok: i64 = a.iter().map(Account::lost_tokens).sum();
    format!("{} req, {} tok", signed(req), signed(tok))
}

fn quota(o: &Overshoot) -> &'static str {
    match o.pressed {
        Pressed::Requests => "requests",
        _ => "tokens",
    }
}

/// Facts about the machine and the build, for the report's header.
pub struct Setting {
    pub command: String,
    pub build: String,
    pub redis: String,
    pub cores: usize,
    pub load_before: String,
    pub load_after: String,
    pub date: String,
}

/// The whole report.
pub fn report(run: &Run, f: &Findings, setting: &Setting) -> String {
    let plan = &run.plan;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Redis Cluster failover under pressed quotas ({})\n",
        setting.date
    );
    let _ = writeln!(
        o,
        "Produced by `{}` ({} gateway build, {}, {} cores; load average {} before, {} after). \
         A 3-primary, 3-replica Redis Cluster (`cluster-node-timeout` 1000 ms, \
         `cluster-require-full-coverage no`, no persistence), one fleet of {} gateway replicas per \
         `on_redis_error` policy (`state.redis.timeout_ms` {}, `cache_ttl_ms` 1000), a mock \
         upstream (streams of 10 events {} ms apart). Per policy and fault one tenant whose \
         windows and keys all live on the fault's shard, loaded from {} s before the fault to {} s \
         after the old primary rejoined: a consumer pressing a request quota ({} requests / {} s) \
         and one pressing a token quota ({} tokens / {} s), each at {} requests/s from {} clients \
         spread over the replicas, half JSON and half streamed (twice what the quota admits), and \
         a `cold` consumer used once per replica right after the rejoin; besides, per policy and \
         shard a control consumer pressing a request quota for the whole run. {} s of load in \
         all, {} requests.\n",
        setting.command,
        setting.build,
        setting.redis,
        setting.cores,
        setting.load_before,
        setting.load_after,
        plan.replicas,
        plan.redis_timeout_ms,
        plan.chunk_delay_ms,
        plan.warm.as_secs(),
        plan.settle.as_secs(),
        plan.request_limit(),
        plan.window.as_secs(),
        plan.token_limit(),
        plan.window.as_secs(),
        plan.demand,
        plan.clients,
        run.duration.as_secs(),
        run.samples.len(),
    );
    let _ = writeln!(
        o,
        "Terms (tests/src/failover/measure.rs): an answer is *checked* when Redis decided it \
         (200 `allowed`, or 429 `limited` by the whole limit, not a replica's `local` share); \
         anything else is *disrupted*. A replica's outage runs from its first disrupted request \
         after the fault to the first checked answer to a request sent after that one; the \
         *window* runs from the fault to the end of the longest (the time from the fault to the \
         first admission Redis checked again on that shard); disrupted requests after a \
         replica's outage are counted apart (*later*). A *peak* is the most a consumer was served in any {} ms of \
         send times (the window less one of its 60 buckets) overlapping the time from the fault to \
         the rejoin; *checked* counts only what Redis admitted. *Lost* is what the clients were \
         served minus what the consumer's hour-long accounting windows counted at the end \
         (positive: usage the windows lost; negative: counted twice).\n",
        plan.counted_span().as_millis()
    );

    let _ = writeln!(o, "## Summary\n");
    let _ = writeln!(
        o,
        "| fault | policy | window | disrupted in it / later | other shards disrupted | requests peak / limit (checked) | tokens peak / limit (checked) | all 200s, requests / tokens (promise) | lost | cold key |"
    );
    let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for ff in &f.faults {
        for p in &ff.policies {
            let by = |k: Pressed| p.overshoot.iter().find(|x| x.pressed == k);
            let checked = |k| by(k).map_or("-".into(), |x| against(x.peak_checked, x.limit));
            let all = |k| {
                by(k).map_or("-".into(), |x: &Overshoot| {
                    let promise = x
                        .promise(p.policy, plan.replicas)
                        .map_or("none".into(), |v| v.to_string());
                    format!("{} ({promise})", x.peak)
                })
            };
            let cold = if p.cold.iter().all(|c| c.1 == 200) {
                format!("{} x 200", p.cold.len())
            } else {
                format!("{:?}", p.cold.iter().map(|c| c.1).collect::<Vec<_>>())
            };
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} / {} | {} / {} | {} | {} | {} / {} | {} | {} |",
                ff.events.fault.name(),
                p.policy.name(),
                window(p),
                p.disrupted,
                p.after.values().sum::<usize>(),
                p.others.1,
                p.others.0,
                checked(Pressed::Requests),
                checked(Pressed::Tokens),
                all(Pressed::Requests),
                all(Pressed::Tokens),
                lost(&p.accounts),
                cold,
            );
        }
    }
    let _ = writeln!(o);

    for ff in &f.faults {
        let e = &ff.events;
        let _ = writeln!(
            o,
            "## {}: {} (shard {}{}{})\n",
            e.fault.name(),
            e.fault.describe(),
            e.shard,
            if e.holds_global { ", holds `{g}`" } else { "" },
            if e.fault == super::Fault::LagKill {
                format!(", lag {}", ms(plan.lag))
            } else {
                String::new()
            }
        );
        let rel = |d: Duration| ms(d.saturating_sub(e.at));
        let _ = writeln!(
            o,
            "127.0.0.1:{} -> 127.0.0.1:{}. Fault at {:.1} s of the run; replica listed as master \
             after {}; old primary {}; an in-sync replica of the new one after {}.{}",
            e.old_primary,
            e.new_primary,
            e.at.as_secs_f64(),
            rel(e.promoted),
            e.back
                .map_or("never stopped".into(), |b| format!("back after {}", rel(b))),
            rel(e.rejoined),
            e.stale_evalsha.map_or(String::new(), |n| format!(
                " `EVALSHA`s the frozen primary ran between its freeze and its rejoin: {n}."
            )),
        );
        let _ = writeln!(
            o,
            "The new primary, by the rejoin, had answered `NOSCRIPT` {} times and run `SCRIPT \
             LOAD` {} times (Redis does not replicate loaded scripts: each gateway replica's monitor \
             loads them on every master once the shard answers again, and a call that meets \
             `NOSCRIPT` loads and retries).\n",
            e.noscript, e.script_loads
        );
        let _ = writeln!(
            o,
            "| policy | window | longest wait | answers from the fault to the window's end | later disrupted | last disrupted sent |"
        );
        let _ = writeln!(o, "|---|---:|---:|---|---|---:|");
        for p in &ff.policies {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} |",
                p.policy.name(),
                window(p),
                ms(p.max_latency),
                outcomes(p),
                counts(&p.after),
                opt_ms(p.last_disrupted),
            );
        }
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "| policy | consumer | quota | limit | steady peak | peak, all 200s | of which by policy | peak, checked | promise (all) |"
        );
        let _ = writeln!(o, "|---|---|---|---:|---:|---:|---:|---:|---:|");
        for p in &ff.policies {
            for x in &p.overshoot {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    p.policy.name(),
                    x.consumer,
                    quota(x),
                    x.limit,
                    x.steady,
                    x.peak,
                    x.peak_by_policy,
                    x.peak_checked,
                    x.promise(p.policy, plan.replicas)
                        .map_or("none".into(), |v| v.to_string()),
                );
            }
        }
        let _ = writeln!(o);
    }

    let _ = writeln!(o, "## Accounts (whole run)\n");
    let _ = writeln!(
        o,
        "| consumer | policy | shard | loaded around | requests served / counted | tokens served / counted | lost |"
    );
    let _ = writeln!(o, "|---|---|---:|---|---:|---:|---:|");
    for a in &f.accounts {
        let c = &run.consumers[a.consumer];
        let fault = c
            .fault
            .and_then(|n| run.faults.get(n))
            .map_or("(control)", |e| e.fault.name());
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} / {} | {} / {} | {} |",
            c.label(),
            c.policy.name(),
            c.shard,
            fault,
            a.served_requests,
            a.counted_requests,
            a.served_tokens,
            a.counted_tokens,
            lost(std::slice::from_ref(a)),
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "## End state\n");
    for end in &run.fleets {
        let clean = end.nodes.iter().all(|m| {
            m.values().all(|v| *v == 0.0) && {
                let mut k: Vec<&String> = m.keys().collect();
                k.sort();
                let mut want: Vec<&String> = run.masters.iter().collect();
                want.sort();
                k == want
            }
        });
        let _ = writeln!(
            o,
            "- {}: the same {} processes from start to end: {}; `gateway_state_node_degraded` \
             names the three masters of the end, all 0: {}",
            end.policy.name(),
            end.nodes.len(),
            yes(end.same_processes),
            yes(clean)
        );
    }
    let _ = writeln!(o, "- masters at the end: {}\n", run.masters.join(", "));
    let broken = super::measure::broken(run, f);
    let _ = writeln!(o, "## Checks (`failover::measure::broken`)\n");
    if broken.is_empty() {
        let _ = writeln!(o, "Every check held.\n");
    }
    for b in &broken {
        let _ = writeln!(o, "- **broken**: {b}");
    }
    if !broken.is_empty() {
        let _ = writeln!(o);
    }
    o.push_str(PROMISES);
    o
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "**no**"
    }
}

const PROMISES: &str = "## What the gateway can and cannot promise across a failover

- **It follows the new topology by itself**, without a restart or a reload.
  Its cluster client re-reads the slot map when a call is redirected
  (`MOVED`/`ASK`) or a node's connection breaks (a SIGKILL), and the state
  monitor reads the map itself (`CLUSTER SLOTS`, every 500 ms, every 100 ms
  while a master is out): when it gives a slot to another master, the calls
  move to a new connection made from the new map's masters. That is what
  takes them off a primary that stopped answering without closing its
  connections (frozen, paused, partitioned), which nothing the old connection
  hears would reveal. Redis does not replicate loaded scripts: the monitor
  loads them on the new primary, and a call that meets `NOSCRIPT` loads and
  retries. The other shards' tenants do not notice (*other shards disrupted*).
- **During the window** the shard's quotas follow `on_redis_error`:
  `fail_closed` refuses (503 `quota_unavailable`), `fail_open` admits
  unchecked, `local` admits each replica's `limit / expected_replicas` (and
  refuses past it with 429). Cached keys keep working (`stale_if_error_s`); a
  key in no cache is answered 503 `state_unavailable` until the shard answers
  again, and found on the promoted replica after (*cold key*). The window is
  the cluster's own failure detection and election (`cluster-node-timeout`,
  1 s here, and about a second more), plus one monitor poll and, for
  `fail_open` and `local`, the 300 ms during which a returning shard keeps the
  outage policy so that every replica lands what it admitted meanwhile before
  any admits against the window again. A graceful `CLUSTER FAILOVER`
  disrupts nothing: the old primary holds writes for the hand-over (*longest
  wait*) and the calls follow `MOVED`.
- **What it cannot promise: what asynchronous replication loses.** A write the
  old primary acknowledged and had not yet sent to its replica is gone when
  the replica takes over after a crash or a freeze. A lost reservation of a
  request still running costs nothing in the end (its settlement charges the
  usage without a reservation); a lost settlement, or a reservation and
  settlement both lost, leaves that request's usage out of the windows (the
  reservation, if it survived, is given back when its lease ends). So the
  windows lose at most what was admitted during the replica's lag, and the
  window spanning the failover can admit that much beyond its limit, once.
  On loopback the replica is microseconds behind and nothing was lost; with
  the replica 600 ms behind (*lag-kill*) the tables show what was. A graceful
  failover waits for the replica and loses nothing. The gateway does not send
  `WAIT` after its script calls (one more round trip, to a replica, per call,
  and still no guarantee past its timeout). Redis's `min-replicas-to-write` /
  `min-replicas-max-lag` bound the lag on the server's side instead: a
  primary whose replica is further behind refuses writes, which the gateway
  answers with its outage policy (not measured here).
";
