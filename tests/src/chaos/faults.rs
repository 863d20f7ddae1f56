//! One policy's chaos run: the fleet started, the load on, each fault of the
//! plan injected between a lead-in and a recovery (the accounting label
//! switching `<fault>.pre`, `.during`, `.post` at each step), then the load
//! stopped, the settlements landed, and everything the judge needs collected.

use super::fleet::Fleet;
use super::judge::{self, Evidence, LogLine, PhaseTimes, PolicyResult};
use super::load::Load;
use super::spec::{label_digest, Variant, ACCT_REQUESTS, ACCT_TOKENS, CHUNK_DELAY_MS};
use super::{Fault, Plan, Policy};
use crate::client::TestClient;
use crate::harness::admin;
use http::Method;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Latency the slow network adds each way (well over the Redis timeout).
const SLOW_NETWORK: Duration = Duration::from_millis(600);
/// How often connections to Redis are cut.
const CUT_EVERY: Duration = Duration::from_millis(250);
const FLUSH_EVERY: Duration = Duration::from_millis(500);
const RELOAD_EVERY: Duration = Duration::from_millis(400);
/// How long a killed replica stays away before its replacement starts.
const REPLACE_AFTER: Duration = Duration::from_secs(1);

pub async fn run_policy(plan: &Plan, policy: Policy) -> PolicyResult {
    let base = Instant::now();
    let mut fleet = Fleet::start(plan, policy).await;
    let load = Load::start(
        base,
        fleet.balancer.url(),
        plan.clients,
        plan.think,
        "warmup",
        fleet.admins.clone(),
    );
    tokio::time::sleep(plan.lead_in).await;
    let mut phases = Vec::new();
    let mut panics_before = fleet.panics().len();
    // the accounts of labels done before a restart without data would be
    // gone with it: such faults come first (then only their lead-in's is)
    let mut order = plan.faults.clone();
    order.sort_by_key(|f| !f.loses_redis_data());
    for &fault in &order {
        let start = load.now();
        load.set_label(&format!("{}.pre", fault.id()));
        tokio::time::sleep(plan.lead_in).await;
        load.set_label(&format!("{}.during", fault.id()));
        let begin = load.now();
        let notes = inject(fault, plan, &mut fleet, &load).await;
        let end = load.now();
        load.set_label(&format!("{}.post", fault.id()));
        tokio::time::sleep(plan.recovery).await;
        let panics = fleet.panics();
        phases.push(PhaseTimes {
            fault,
            start,
            begin,
            end,
            until: load.now(),
            killed: notes.killed,
            lost: notes.lost,
            panics: panics[panics_before.min(panics.len())..].to_vec(),
            notes: notes.text,
        });
        panics_before = panics.len();
        eprintln!("chaos: {} {} done", policy.name(), fault.id());
    }
    let (records, labels, samples) = load.stop().await;
    fleet.wait_settled().await;
    let settled = read_accounts(&fleet, &labels).await;
    let logs = read_logs(&fleet);
    if let Some(dir) = &plan.keep_logs {
        fleet.keep_logs(&dir.join(policy.name()));
    }
    let evidence = Evidence {
        plan: plan.clone(),
        policy,
        records,
        labels,
        logs,
        settled,
        samples,
        phases,
    };
    judge::judge(&evidence)
}

/// What an injection reports back.
#[derive(Default)]
struct Notes {
    /// the replica SIGKILLed, if one was
    killed: Option<usize>,
    /// (before, after) Redis was killed without its data
    lost: Option<(u64, u64)>,
    text: Vec<String>,
}

/// Injects `fault` for the plan's fault time and removes it; returns once the
/// system is whole again (Redis answering, replicas replaced and ready).
async fn inject(fault: Fault, plan: &Plan, fleet: &mut Fleet, load: &Load) -> Notes {
    let d = plan.fault;
    let mut notes = Notes::default();
    match fault {
        Fault::RedisRestartEmpty => {
            let before = load.now();
            fleet.with_redis(|r| r.stop());
            notes.lost = Some((before, load.now()));
            tokio::time::sleep(d).await;
            fleet.with_redis(|r| r.restart());
        }
        Fault::RedisRestartWithData => {
            fleet.with_redis(|r| r.shutdown());
            tokio::time::sleep(d).await;
            fleet.with_redis(|r| r.start_again());
        }
        Fault::RedisFrozen => {
            let ms = d.as_millis().to_string();
            let r = fleet.redis_cli(&["CLIENT", "PAUSE", &ms, "ALL"]);
            notes.text.push(format!("CLIENT PAUSE {ms} ALL: {r:?}"));
            tokio::time::sleep(d).await;
        }
        Fault::RedisSlowNetwork => {
            fleet.proxy.set_latency(SLOW_NETWORK);
            tokio::time::sleep(d).await;
            fleet.proxy.heal();
        }
        Fault::RedisConnectionsCut => {
            let until = Instant::now() + d;
            let before = fleet.proxy.accepted();
            while Instant::now() < until {
                fleet.proxy.cut_all();
                tokio::time::sleep(CUT_EVERY).await;
            }
            notes.text.push(format!(
                "{} connections to Redis made during the cuts",
                fleet.proxy.accepted() - before
            ));
        }
        Fault::ScriptFlush => {
            let until = Instant::now() + d;
            let mut n = 0;
            while Instant::now() < until {
                if fleet.redis_cli(&["SCRIPT", "FLUSH"]).is_ok() {
                    n += 1;
                }
                tokio::time::sleep(FLUSH_EVERY).await;
            }
            notes.text.push(format!("{n} SCRIPT FLUSH"));
        }
        Fault::ConfigReloads => {
            let until = Instant::now() + d;
            let mut answers: HashMap<u16, usize> = HashMap::new();
            let mut k = 0usize;
            while Instant::now() < until {
                let v = match k % 5 {
                    2 => Variant::Invalid,
                    n if n % 2 == 0 => Variant::Main,
                    _ => Variant::Alternate,
                };
                for s in fleet.reload_all(v).await {
                    *answers.entry(s).or_default() += 1;
                }
                k += 1;
                tokio::time::sleep(RELOAD_EVERY).await;
            }
            for s in fleet.reload_all(Variant::Main).await {
                *answers.entry(s).or_default() += 1;
            }
            let mut a: Vec<_> = answers.into_iter().collect();
            a.sort();
            notes
                .text
                .push(format!("reload answers (status, count): {a:?}"));
        }
        Fault::ReplicaKill => {
            let victim = fleet.live[0];
            fleet.kill(victim);
            notes.killed = Some(victim);
            tokio::time::sleep(REPLACE_AFTER.min(d)).await;
            fleet.start_replica().await;
            let rest = d.saturating_sub(REPLACE_AFTER);
            tokio::time::sleep(rest).await;
        }
        Fault::RollingRestart => {
            let old = fleet.live.clone();
            for i in old {
                fleet.start_replica().await;
                let status = fleet.stop(i).await;
                notes.text.push(format!("replica {i} exit: {status:?}"));
            }
        }
        Fault::Upstream5xx => {
            fleet.mock.fail_with(500);
            tokio::time::sleep(d).await;
            fleet.mock.set_normal();
        }
        Fault::UpstreamStall => {
            let [_, first_byte, idle, _] = super::spec::UPSTREAM_TIMEOUTS_MS;
            // the first half of the fault stalls heads, the second streams
            fleet.mock.delay_headers(first_byte * 2);
            tokio::time::sleep(d / 2).await;
            fleet.mock.set_normal();
            fleet.mock.set_chunk_delay(idle * 2);
            tokio::time::sleep(d / 2).await;
            fleet.mock.set_chunk_delay(CHUNK_DELAY_MS);
        }
    }
    notes
}

/// What Redis settled per accounting label: (tokens, requests), summed over
/// the tenants, read from `/admin/usage` of a replica in service.
async fn read_accounts(
    fleet: &Fleet,
    labels: &[std::sync::Arc<str>],
) -> HashMap<String, (u64, u64)> {
    let c = TestClient::new();
    let Some(&i) = fleet.live.first() else {
        return HashMap::new();
    };
    let gw = &fleet.replicas[i];
    let mut by_digest: HashMap<String, (u64, u64)> = HashMap::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/admin/usage?limit=1000{cursor}");
        let r = admin(&c, gw, Method::GET, &path, None).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        let v = r.json();
        let rows = v["data"].as_array().cloned().unwrap_or_default();
        for row in rows {
            let (Some(q), Some(key), Some(used)) = (
                row["quota"].as_str(),
                row["key"].as_str(),
                row["used"].as_u64(),
            ) else {
                continue;
            };
            let e = by_digest.entry(key.to_string()).or_default();
            match q {
                ACCT_TOKENS => e.0 += used,
                ACCT_REQUESTS => e.1 += used,
                _ => {}
            }
        }
        match v["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    labels
        .iter()
        .map(|l| {
            let got = by_digest.get(&label_digest(l)).copied().unwrap_or_default();
            (l.to_string(), got)
        })
        .collect()
}

/// Every access-log line of every replica, by request id.
fn read_logs(fleet: &Fleet) -> HashMap<String, LogLine> {
    let mut out = HashMap::new();
    for (replica, gw) in fleet.replicas.iter().enumerate() {
        for line in gw.access_log_json() {
            let Some(id) = line["request_id"].as_str() else {
                continue;
            };
            let a = &line["ai_log"];
            out.insert(
                id.to_string(),
                LogLine {
                    replica,
                    status: line["response_code"].as_u64().unwrap_or(0) as u16,
                    quota_status: a["quota_status"].as_str().map(str::to_string),
                    total: a["total_token"].as_u64().unwrap_or(0),
                    estimated: a["usage_estimated"].as_bool().unwrap_or(false),
                },
            );
        }
    }
    out
}
