//! What the quota scripts do inside Redis per request (benches/README.md,
//! *Quota calls inside Redis*): a real `redis-server`, the mock upstream and
//! gateway replicas whose one consumer has a token quota and a request quota
//! (limits no run reaches, so every request reserves and settles). For each
//! client count: `CONFIG RESETSTAT`, `INFO cpu`, `--requests` chat requests
//! spread over the replicas by that many concurrent clients, the settle
//! queues drained, then `INFO commandstats` and `INFO cpu` again, divided by
//! the requests: script calls (`EVALSHA` and `EVAL`), every command Redis ran
//! (those the scripts call included), the time Redis spent in the scripts,
//! Redis CPU, and the gateways' own count of round trips
//! (`gateway_redis_calls_total`); and the requests' latency as this client
//! saw it. Prints a markdown table. One build per run (`GATEWAY_BIN`): to
//! compare two, alternate runs of each (benches/README.md).

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use gateway_benches::{percentiles_us, Percentiles};
use gateway_tests::client::TestClient;
use gateway_tests::config::{Config, Consumer, Provider, Quota, Route, Server, State, Tenant};
use gateway_tests::harness::{Gateway, ADMIN_TOKEN};
use gateway_tests::metrics::{metric, try_metric};
use gateway_tests::mock_upstream::{MockOptions, MockUpstream};
use gateway_tests::redis::RedisServer;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "Redis commands, script calls and CPU per quota-checked request")]
struct Args {
    /// Gateway replicas sharing the Redis.
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Concurrent clients of each run, comma-separated.
    #[arg(long, default_value = "1,32")]
    clients: String,
    /// Requests per run.
    #[arg(long, default_value_t = 4000)]
    requests: usize,
}

const KEY: &str = "sk-quota-redis-0000000001";
/// A limit no run reaches.
const UNREACHED: u64 = 1_000_000_000_000;

fn config(redis_url: &str, mock_url: &str) -> String {
    Config::new()
        .server(Server::new().admin_token(ADMIN_TOKEN))
        // a generous timeout: a call that times out under load would admit
        // requests without Redis (not what is measured here)
        .state(
            State::redis(redis_url)
                .cache_ttl_ms(1000)
                .redis_key("timeout_ms", 2000),
        )
        .provider(Provider::openai("mock", mock_url).token("sk-upstream"))
        .route(Route::new("chat", "/v1").keyed().upstream("mock"))
        .tenant(
            Tenant::new("bench").consumer(
                Consumer::new("load")
                    .key(KEY)
                    .quota(Quota::new(
                        "tpm",
                        "consumer",
                        "total_tokens",
                        UNREACHED,
                        "1m",
                    ))
                    .quota(Quota::new("rpm", "consumer", "requests", UNREACHED, "1m")),
            ),
        )
        .yaml()
}

/// `INFO <section>` as field -> value.
fn info(redis: &RedisServer, section: &str) -> BTreeMap<String, String> {
    redis
        .cli(&["INFO", section])
        .lines()
        .filter_map(|l| l.trim().split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Redis's CPU time so far (user + system), seconds.
fn cpu_s(redis: &RedisServer) -> f64 {
    let i = info(redis, "cpu");
    let f = |k: &str| i.get(k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    f("used_cpu_user") + f("used_cpu_sys")
}

/// `INFO commandstats`: (calls, µs spent) per command (lower case); a
/// script's µs hold those of the commands it called.
fn command_calls(redis: &RedisServer) -> BTreeMap<String, (u64, u64)> {
    info(redis, "commandstats")
        .into_iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("cmdstat_")?.to_string();
            let field = |f: &str| -> Option<u64> {
                v.split(',').find_map(|p| p.strip_prefix(f))?.parse().ok()
            };
            Some((name, (field("calls=")?, field("usec=")?)))
        })
        .collect()
}

/// Sends `n` chat requests from `clients` concurrent tasks, round robin over
/// `urls`; answers the failures and the requests' latency percentiles.
async fn load(urls: &[String], clients: usize, n: usize) -> (usize, Percentiles) {
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let client = TestClient::new();
    let body = json!({
        "model": "mock-small",
        "messages": [{"role": "user", "content": "count the calls"}],
        "max_tokens": 16
    });
    let auth = format!("Bearer {KEY}");
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (next, failed, client) = (next.clone(), failed.clone(), client.clone());
            let (urls, body, auth) = (urls.to_vec(), body.clone(), auth.clone());
            tokio::spawn(async move {
                let mut took = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return took;
                    }
                    let t0 = Instant::now();
                    let r = client
                        .post_json_with(
                            &urls[i % urls.len()],
                            &body,
                            &[("authorization", auth.as_str())],
                        )
                        .await;
                    took.push(u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX));
                    if r.status != 200 {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let mut took = Vec::with_capacity(n);
    for t in tasks {
        took.extend(t.await.unwrap_or_default());
    }
    (failed.load(Ordering::Relaxed), percentiles_us(&mut took))
}

/// Waits until no replica holds a settlement, then a ledger flush longer.
async fn drained(gws: &[Gateway]) -> Result<()> {
    let end = Instant::now() + Duration::from_secs(30);
    for g in gws {
        while metric(g, "gateway_quota_settle_queue").await > 0.0 {
            if Instant::now() > end {
                bail!("settle queue not drained within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    Ok(())
}

/// Counter `name` summed over the replicas (0 when a build has none).
async fn total(gws: &[Gateway], name: &str) -> u64 {
    let mut sum = 0.0;
    for g in gws {
        sum += try_metric(g, name).await.unwrap_or(0.0);
    }
    sum as u64
}

struct Row {
    clients: usize,
    requests: usize,
    failed: usize,
    secs: f64,
    /// latency percentiles (µs) p50, p99
    p50: u64,
    p99: u64,
    scripts: u64,
    /// µs Redis spent running the scripts (the commands they called included)
    script_us: u64,
    commands: u64,
    round_trips: u64,
    /// the gateways' quota calls and the operations they carried
    quota_calls: u64,
    quota_ops: u64,
    cpu_us: f64,
    per_command: BTreeMap<String, (u64, u64)>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let clients: Vec<usize> = args
        .clients
        .split(',')
        .map(|c| {
            c.trim()
                .parse()
                .context("--clients: numbers, comma-separated")
        })
        .collect::<Result<_>>()?;
    let redis = tokio::task::spawn_blocking(RedisServer::start).await?;
    let mock = MockUpstream::try_start(MockOptions {
        record_requests: false,
        ..MockOptions::default()
    })
    .context("starting the mock upstream")?;
    let yaml = config(&redis.url(), &mock.base_url());
    let mut gws = Vec::new();
    for i in 0..args.replicas.max(1) {
        let gw = Gateway::builder(&yaml)
            .try_start()
            .await
            .map_err(|e| anyhow!("gateway replica {}: {e}", i + 1))?;
        gws.push(gw);
    }
    let urls: Vec<String> = gws
        .iter()
        .map(|g| format!("{}/v1/chat/completions", g.url()))
        .collect();
    // warm-up: the key cached, the scripts loaded, the windows made
    if load(&urls, 4, 200).await.0 > 0 {
        bail!("warm-up requests failed");
    }
    let mut rows = Vec::new();
    for &c in &clients {
        drained(&gws).await?;
        redis.cli(&["CONFIG", "RESETSTAT"]);
        let cpu0 = cpu_s(&redis);
        let calls0 = total(&gws, "gateway_redis_calls_total").await;
        let admitted0 = total(&gws, "gateway_quota_admitted_total").await;
        let quota_calls0 = total(&gws, "gateway_quota_calls_total").await;
        let quota_ops0 = total(&gws, "gateway_quota_operations_total").await;
        let t0 = Instant::now();
        let (failed, latency) = load(&urls, c, args.requests).await;
        let secs = t0.elapsed().as_secs_f64();
        drained(&gws).await?;
        let per_command = command_calls(&redis);
        let cpu_us = (cpu_s(&redis) - cpu0) * 1e6;
        let round_trips = total(&gws, "gateway_redis_calls_total").await - calls0;
        let admitted = total(&gws, "gateway_quota_admitted_total").await - admitted0;
        let quota_calls = total(&gws, "gateway_quota_calls_total").await - quota_calls0;
        let quota_ops = total(&gws, "gateway_quota_operations_total").await - quota_ops0;
        if admitted != args.requests as u64 {
            eprintln!(
                "warning: {admitted} of {} requests were admitted by the quotas (the others without Redis?)",
                args.requests
            );
        }
        let sum = |names: &[&str], us: bool| -> u64 {
            per_command
                .iter()
                .filter(|(k, _)| names.contains(&k.as_str()))
                .map(|(_, v)| if us { v.1 } else { v.0 })
                .sum()
        };
        let count = |names: &[&str]| sum(names, false);
        // the harness's own INFO and CONFIG calls are not the gateway's
        let commands =
            per_command.values().map(|v| v.0).sum::<u64>() - count(&["info", "config|resetstat"]);
        rows.push(Row {
            clients: c,
            requests: args.requests,
            failed,
            secs,
            p50: latency.p50,
            p99: latency.p99,
            scripts: count(&["evalsha", "eval"]),
            script_us: sum(&["evalsha", "eval"], true),
            commands,
            round_trips,
            quota_calls,
            quota_ops,
            cpu_us,
            per_command,
        });
    }
    let n = |r: &Row, x: f64| x / r.requests as f64;
    println!(
        "| clients | requests | req/s | p50 / p99 | script calls / req | Redis commands / req | script time / req | Redis CPU / req | gateway round trips / req |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {}{} | {:.0} | {} / {} µs | {:.3} | {:.2} | {:.1} µs | {:.1} µs | {:.3} |",
            r.clients,
            r.requests,
            if r.failed > 0 {
                format!(" ({} failed)", r.failed)
            } else {
                String::new()
            },
            r.requests as f64 / r.secs,
            r.p50,
            r.p99,
            n(r, r.scripts as f64),
            n(r, r.commands as f64),
            n(r, r.script_us as f64),
            n(r, r.cpu_us),
            n(r, r.round_trips as f64),
        );
    }
    for r in &rows {
        let list: Vec<String> = r
            .per_command
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "info" | "config|resetstat"))
            .map(|(k, v)| format!("{k} {:.3}", n(r, v.0 as f64)))
            .collect();
        println!(
            "\n{} clients: {} quota calls carried {} operations; per request: {}",
            r.clients,
            r.quota_calls,
            r.quota_ops,
            list.join(", ")
        );
    }
    Ok(())
}
