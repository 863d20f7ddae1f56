//! Redis figures of one measured run of a row with Redis, from the harness's
//! snapshots around it: `INFO all` of the bench Redis and the gateway's
//! `/metrics`, both taken before the run and after it (once the gateway's
//! quota settle queue was empty).
//!
//! `INFO commandstats` counts every command Redis ran, those the Lua scripts
//! run inside Redis too, which are no round trips. So the commands are split
//! three ways: script calls (`EVALSHA`, `EVAL`, ...: one round trip each),
//! other commands a client sent (a command none of the gateway's scripts
//! runs: `PING`, `GET`, ...; one round trip each) and commands run inside
//! scripts (a command some script runs). A command that both a script runs
//! and the gateway sends on its own (`HGET`, `HGETALL`, `EXISTS`: the auth
//! cache refresh, the health mirror) counts as run inside scripts; outside
//! scripts the gateway sends those only in background work, a few a second.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::stats::{cmdstats_delta, proc_stat_ticks, prom_sum, redis_cpu_s, redis_time_s};

/// Commands that run a script: one round trip each, whatever they run inside.
pub const SCRIPT_CALLS: [&str; 6] = [
    "evalsha",
    "eval",
    "evalsha_ro",
    "eval_ro",
    "fcall",
    "fcall_ro",
];

/// Commands the harness itself sends around the runs (not the gateway's).
const HARNESS: [&str; 4] = ["info", "config|resetstat", "flushall", "monitor"];

/// The four snapshots around one run.
pub struct Snapshots<'a> {
    pub redis_before: &'a str,
    pub redis_after: &'a str,
    pub metrics_before: Option<&'a str>,
    pub metrics_after: Option<&'a str>,
    /// `load_side_snapshot`'s files: `hz N`, `mock <stat>`, `collector <stat>`
    pub load_side_before: Option<&'a str>,
    pub load_side_after: Option<&'a str>,
}

/// What Redis did for one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RedisRun {
    /// requests the gateway answered between the snapshots
    /// (`gateway_requests_total`), else those loadgen made, warm-up included
    pub requests: f64,
    pub requests_from_gateway: bool,
    /// `EVALSHA`, `EVAL`, ... calls
    pub script_calls: f64,
    /// other commands sent by clients (names no script runs)
    pub client_other: f64,
    /// commands run inside scripts (names some script runs)
    pub in_scripts: f64,
    /// Redis CPU seconds (`used_cpu_sys` + `used_cpu_user`)
    pub cpu_s: Option<f64>,
    /// seconds between the two INFO snapshots (Redis's clock)
    pub wall_s: Option<f64>,
    /// CPU seconds of the mock upstream and of the OTLP collector between
    /// the snapshots (they share the load core with loadgen and Redis)
    pub mock_cpu_s: Option<f64>,
    pub collector_cpu_s: Option<f64>,
    /// the gateway's own count of its quota store's Redis calls
    /// (`gateway_redis_calls_total`: a command, a pipeline or a script each)
    pub quota_calls: Option<f64>,
    pub admitted: Option<f64>,
    pub limited: Option<f64>,
    /// every command between the snapshots but the harness's, busiest first
    pub by_command: Vec<(String, f64)>,
}

/// CPU seconds of process `who` between two load-side snapshots.
fn load_side_cpu_s(before: Option<&str>, after: Option<&str>, who: &str) -> Option<f64> {
    let line = |text: &str, key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ').map(str::to_string))
    };
    let hz: f64 = line(after?, "hz")?
        .trim()
        .parse()
        .ok()
        .filter(|h| *h > 0.0)?;
    let t0 = proc_stat_ticks(&line(before?, who)?)?;
    let t1 = proc_stat_ticks(&line(after?, who)?)?;
    Some(t1.checked_sub(t0)? as f64 / hz)
}

fn delta(before: Option<&str>, after: Option<&str>, metric: &str) -> Option<f64> {
    Some(prom_sum(after?, metric)? - prom_sum(before?, metric).unwrap_or(0.0))
}

impl RedisRun {
    /// `script_names`: the commands the gateway's Lua scripts run
    /// ([`crate::stats::lua_command_names`] over `lua/*.lua`).
    pub fn from_snapshots(
        s: &Snapshots,
        loadgen_requests: Option<f64>,
        script_names: &BTreeSet<String>,
    ) -> Option<RedisRun> {
        let by_command: Vec<(String, f64)> = cmdstats_delta(s.redis_before, s.redis_after)
            .into_iter()
            .filter(|(name, _)| !HARNESS.contains(&name.as_str()))
            .collect();
        let gw =
            delta(s.metrics_before, s.metrics_after, "gateway_requests_total").filter(|n| *n > 0.0);
        let requests = gw.or(loadgen_requests)?;
        let mut run = RedisRun {
            requests,
            requests_from_gateway: gw.is_some(),
            cpu_s: Some(redis_cpu_s(s.redis_after)? - redis_cpu_s(s.redis_before)?),
            wall_s: Some(redis_time_s(s.redis_after)? - redis_time_s(s.redis_before)?),
            quota_calls: delta(
                s.metrics_before,
                s.metrics_after,
                "gateway_redis_calls_total",
            ),
            admitted: delta(
                s.metrics_before,
                s.metrics_after,
                "gateway_quota_admitted_total",
            ),
            limited: delta(
                s.metrics_before,
                s.metrics_after,
                "gateway_quota_limited_total",
            ),
            mock_cpu_s: load_side_cpu_s(s.load_side_before, s.load_side_after, "mock"),
            collector_cpu_s: load_side_cpu_s(s.load_side_before, s.load_side_after, "collector"),
            ..RedisRun::default()
        };
        for (name, calls) in &by_command {
            let base = name.split('|').next().unwrap_or(name);
            if SCRIPT_CALLS.contains(&base) {
                run.script_calls += calls;
            } else if script_names.contains(base) {
                run.in_scripts += calls;
            } else {
                run.client_other += calls;
            }
        }
        run.by_command = by_command;
        Some(run)
    }

    /// Every command Redis ran for the gateway.
    pub fn total(&self) -> f64 {
        self.script_calls + self.client_other + self.in_scripts
    }

    /// Commands clients sent: script calls and the others.
    pub fn round_trips(&self) -> f64 {
        self.script_calls + self.client_other
    }

    pub fn per_request(&self, v: f64) -> Option<f64> {
        (self.requests > 0.0).then(|| v / self.requests)
    }

    pub fn cpu_us_per_request(&self) -> Option<f64> {
        self.per_request(self.cpu_s? * 1e6)
    }

    /// The mock's and the collector's CPU per request, µs.
    pub fn mock_us_per_request(&self) -> Option<f64> {
        self.per_request(self.mock_cpu_s? * 1e6)
    }

    pub fn collector_us_per_request(&self) -> Option<f64> {
        self.per_request(self.collector_cpu_s? * 1e6)
    }

    /// Redis's CPU over the run, % of one core.
    pub fn busy_pct(&self) -> Option<f64> {
        let w = self.wall_s.filter(|w| *w > 0.0)?;
        Some(self.cpu_s? / w * 100.0)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "requests": self.requests,
            "requests_from": if self.requests_from_gateway { "gateway_requests_total" } else { "loadgen" },
            "script_calls": self.script_calls,
            "client_other_commands": self.client_other,
            "commands_in_scripts": self.in_scripts,
            "commands_total": self.total(),
            "round_trips_per_request": self.per_request(self.round_trips()),
            "script_calls_per_request": self.per_request(self.script_calls),
            "commands_per_request": self.per_request(self.total()),
            "redis_cpu_s": self.cpu_s,
            "redis_cpu_us_per_request": self.cpu_us_per_request(),
            "redis_busy_pct": self.busy_pct(),
            "mock_cpu_us_per_request": self.mock_us_per_request(),
            "collector_cpu_us_per_request": self.collector_us_per_request(),
            "window_s": self.wall_s,
            "gateway_quota_redis_calls": self.quota_calls,
            "gateway_quota_redis_calls_per_request": self.quota_calls.and_then(|c| self.per_request(c)),
            "quota_admitted": self.admitted,
            "quota_limited": self.limited,
            "by_command": self.by_command.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<String, Value>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::lua_command_names;

    fn info(time_us: u64, sys: f64, user: f64, stats: &str) -> String {
        format!(
            "# Server\r\nserver_time_usec:{time_us}\r\n# CPU\r\nused_cpu_sys:{sys}\r\n\
             used_cpu_user:{user}\r\n# Commandstats\r\n{stats}"
        )
    }

    #[test]
    fn splits_script_calls_client_commands_and_script_internals() {
        let names = lua_command_names(
            "redis.call('TIME') redis.call('HMGET', k) redis.call('HSET', k) redis.call('HGET', k)",
        );
        let before = info(
            10_000_000,
            1.0,
            2.0,
            "cmdstat_evalsha:calls=100,usec=1\r\ncmdstat_time:calls=100,usec=1\r\n\
             cmdstat_info:calls=7,usec=1\r\ncmdstat_ping:calls=5,usec=1\r\n",
        );
        // 1,000 requests: 1,010 EVALSHA (10 of them the health mirror), each
        // running TIME, HMGET and HSET; 2 PINGs, a GET and an HGET of the
        // auth refresh, the harness's INFO, a SCRIPT LOAD after a flush
        let after = info(
            12_500_000,
            1.5,
            2.25,
            "cmdstat_evalsha:calls=1110,usec=1\r\ncmdstat_time:calls=1110,usec=1\r\n\
             cmdstat_hmget:calls=1010,usec=1\r\ncmdstat_hset:calls=1010,usec=1\r\n\
             cmdstat_info:calls=8,usec=1\r\ncmdstat_ping:calls=7,usec=1\r\n\
             cmdstat_get:calls=1,usec=1\r\ncmdstat_hget:calls=1,usec=1\r\n\
             cmdstat_script|load:calls=1,usec=1\r\n",
        );
        let m0 = "gateway_requests_total{route=\"bench\",status=\"200\"} 50\n\
                  gateway_redis_calls_total 100\ngateway_quota_admitted_total 50\n\
                  gateway_quota_limited_total 0\n";
        let m1 = "gateway_requests_total{route=\"bench\",status=\"200\"} 1050\n\
                  gateway_redis_calls_total 2100\ngateway_quota_admitted_total 1050\n\
                  gateway_quota_limited_total 0\n";
        let s = Snapshots {
            redis_before: &before,
            redis_after: &after,
            metrics_before: Some(m0),
            metrics_after: Some(m1),
            load_side_before: Some(
                "hz 100\nmock 7 (mock-upstream) S 1 1 1 0 -1 0 0 0 0 0 100 50 0 0\n",
            ),
            load_side_after: Some(
                "hz 100\nmock 7 (mock-upstream) S 1 1 1 0 -1 0 0 0 0 0 150 60 0 0\n\
                 collector 9 (rotel agent) S 1 1 1 0 -1 0 0 0 0 0 40 10 0 0\n",
            ),
        };
        let r = RedisRun::from_snapshots(&s, Some(990.0), &names).unwrap();
        assert_eq!(r.requests, 1000.0);
        assert!(r.requests_from_gateway);
        assert_eq!(r.script_calls, 1010.0);
        // PING 2, GET 1, SCRIPT LOAD 1; the HGET counts inside scripts
        assert_eq!(r.client_other, 4.0);
        assert_eq!(r.in_scripts, 1010.0 * 3.0 + 1.0);
        assert_eq!(r.round_trips(), 1014.0);
        assert_eq!(r.per_request(r.round_trips()), Some(1.014));
        assert_eq!(r.total(), 1014.0 + 3031.0);
        assert!(!r.by_command.iter().any(|(n, _)| n == "info"));
        assert_eq!(r.quota_calls, Some(2000.0));
        assert_eq!(r.admitted, Some(1000.0));
        assert_eq!(r.limited, Some(0.0));
        let cpu = r.cpu_us_per_request().unwrap();
        assert!((cpu - 750.0).abs() < 1e-6, "{cpu}");
        // mock: 60 ticks at 100 Hz over 1000 requests; the collector has no
        // before line (it started later): unknown, not its whole life
        let mock = r.mock_us_per_request().unwrap();
        assert!((mock - 600.0).abs() < 1e-6, "{mock}");
        assert_eq!(r.collector_us_per_request(), None);
        let busy = r.busy_pct().unwrap();
        assert!((busy - 30.0).abs() < 1e-6, "{busy}");
        assert_eq!(
            r.to_json()["requests_from"],
            json!("gateway_requests_total")
        );

        // no /metrics: loadgen's count
        let s = Snapshots {
            metrics_before: None,
            metrics_after: None,
            ..s
        };
        let r = RedisRun::from_snapshots(&s, Some(990.0), &names).unwrap();
        assert_eq!(r.requests, 990.0);
        assert!(!r.requests_from_gateway);
        assert_eq!(r.quota_calls, None);
        assert_eq!(RedisRun::from_snapshots(&s, None, &names), None);
    }
}
