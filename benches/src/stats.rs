//! Parsers for the statistics the load harness reads: Redis `INFO` replies
//! (commandstats, cpu, server time), the gateway's `/metrics` text,
//! `/proc/<pid>/stat`, and the Redis commands the gateway's Lua scripts run.

use std::collections::{BTreeMap, BTreeSet};

/// utime and stime (fields 14 and 15, all threads) of a `/proc/<pid>/stat`
/// line, in clock ticks.
pub fn proc_stat_times(stat: &str) -> Option<(u64, u64)> {
    // The command name (field 2) may hold spaces and ')'; the fields after
    // the last ')' are space separated, starting with field 3 (state).
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    // utime is field 14, stime field 15 => indexes 11 and 12 in `rest`.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// utime + stime of a `/proc/<pid>/stat` line, in clock ticks.
pub fn proc_stat_ticks(stat: &str) -> Option<u64> {
    proc_stat_times(stat).map(|(user, sys)| user + sys)
}

/// A numeric `key:value` line of a Redis `INFO` reply (the key matched
/// whole: `used_cpu_sys` is not `used_cpu_sys_children`).
pub fn info_number(info: &str, key: &str) -> Option<f64> {
    info.lines().find_map(|l| {
        let (k, v) = l.trim().split_once(':')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// CPU seconds the Redis process has used (`used_cpu_sys` + `used_cpu_user`
/// of `INFO cpu`: every thread, microsecond resolution).
pub fn redis_cpu_s(info: &str) -> Option<f64> {
    Some(info_number(info, "used_cpu_sys")? + info_number(info, "used_cpu_user")?)
}

/// The Redis server's clock when it answered the `INFO` (`server_time_usec`),
/// in seconds.
pub fn redis_time_s(info: &str) -> Option<f64> {
    info_number(info, "server_time_usec").map(|us| us / 1e6)
}

/// `cmdstat_<name>:calls=<n>,...` lines of an `INFO commandstats` (or
/// `INFO all`) reply, as name → calls. Subcommands keep Redis's spelling
/// (`config|resetstat`, `script|load`).
pub fn parse_cmdstats(info: &str) -> BTreeMap<String, f64> {
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_string(), calls))
        })
        .collect()
}

/// Calls per command between two `INFO` snapshots (commands with none left
/// out), busiest first.
pub fn cmdstats_delta(before: &str, after: &str) -> Vec<(String, f64)> {
    let b = parse_cmdstats(before);
    let mut out: Vec<(String, f64)> = parse_cmdstats(after)
        .into_iter()
        .map(|(name, calls)| {
            let d = calls - b.get(&name).copied().unwrap_or(0.0);
            (name, d)
        })
        .filter(|(_, d)| *d > 0.0)
        .collect();
    out.sort_by(|x, y| y.1.total_cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
    out
}

/// The sum of every sample of metric `name` (whatever its labels) in
/// Prometheus text; `None` when the metric is not there.
pub fn prom_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = false;
    let mut sum = 0.0;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let value = if rest.starts_with('{') {
            rest.rsplit_once('}').map(|(_, v)| v)
        } else if rest.starts_with(' ') {
            Some(rest)
        } else {
            None // another metric whose name starts with `name`
        };
        if let Some(v) = value.and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok()) {
            sum += v;
            found = true;
        }
    }
    found.then_some(sum)
}

/// The Redis commands a Lua script runs (`redis.call('NAME'` and
/// `redis.pcall("NAME"`), lower case as `INFO commandstats` spells them.
pub fn lua_command_names(source: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for call in ["redis.call(", "redis.pcall("] {
        for (i, _) in source.match_indices(call) {
            let rest = source.get(i + call.len()..).unwrap_or("").trim_start();
            let Some(quote) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') else {
                continue;
            };
            if let Some((name, _)) = rest.get(1..).and_then(|r| r.split_once(quote)) {
                names.insert(name.to_ascii_lowercase());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_fields_after_the_command_name() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
        // majflt cmajflt utime stime ...; the name holds a space and a ')'
        let stat = "4242 (tokio-rt worker) a) S 1 4242 4242 0 -1 4194560 12 0 3 0 \
                    1500 250 7 9 20 0 5 0 123 4567 89 18446744073709551615";
        assert_eq!(proc_stat_ticks(stat), Some(1750));
        assert_eq!(proc_stat_ticks("4242 (short) S 1 2"), None);
        assert_eq!(proc_stat_ticks("no parenthesis"), None);
        assert_eq!(proc_stat_times(stat), Some((1500, 250)));
        assert_eq!(proc_stat_times("4242 (short) S 1 2"), None);
    }

    #[test]
    fn info_fields_cpu_and_time() {
        let info = "# Server\r\nredis_version:7.0.15\r\nserver_time_usec:1796652677350866\r\n\
                    # CPU\r\nused_cpu_sys:1.250000\r\nused_cpu_user:2.500500\r\n\
                    used_cpu_sys_children:9.0\r\nused_cpu_user_children:9.0\r\n\
                    used_cpu_sys_main_thread:1.2\r\n";
        assert_eq!(info_number(info, "used_cpu_sys"), Some(1.25));
        assert_eq!(redis_cpu_s(info), Some(3.7505));
        assert_eq!(info_number(info, "redis_version"), None, "not a number");
        assert_eq!(
            info_number(info, "used_cpu"),
            None,
            "a key is matched whole"
        );
        let t = redis_time_s(info).unwrap_or_default();
        assert!((t - 1_796_652_677.350_866).abs() < 1e-6, "{t}");
        assert_eq!(redis_cpu_s("used_cpu_sys:1\n"), None);
    }

    #[test]
    fn commandstats_and_their_delta() {
        let before = "# Commandstats\r\ncmdstat_ping:calls=10,usec=5,usec_per_call=0.50\r\n\
                      cmdstat_info:calls=3,usec=1\r\ntotal_commands_processed:13\r\n";
        let after = "cmdstat_ping:calls=14,usec=7\ncmdstat_get:calls=32,usec=9\n\
                     cmdstat_info:calls=4,usec=1\ncmdstat_hget:calls=32,usec=3\n\
                     cmdstat_config|resetstat:calls=1,usec=35,rejected_calls=0,failed_calls=0\n";
        assert_eq!(parse_cmdstats(before).get("ping"), Some(&10.0));
        assert_eq!(
            cmdstats_delta(before, after),
            vec![
                ("get".to_string(), 32.0),
                ("hget".to_string(), 32.0),
                ("ping".to_string(), 4.0),
                ("config|resetstat".to_string(), 1.0),
                ("info".to_string(), 1.0),
            ]
        );
    }

    #[test]
    fn prometheus_sums_over_labels() {
        let text =
            "# HELP gateway_requests_total Requests.\n# TYPE gateway_requests_total counter\n\
                    gateway_requests_total{route=\"bench\",status=\"200\"} 1200\n\
                    gateway_requests_total{route=\"bench\",status=\"401\"} 3\n\
                    gateway_requests_total_other 99\n\
                    gateway_quota_settle_queue 0\n\
                    gateway_redis_calls_total 2400\n";
        assert_eq!(prom_sum(text, "gateway_requests_total"), Some(1203.0));
        assert_eq!(prom_sum(text, "gateway_redis_calls_total"), Some(2400.0));
        assert_eq!(prom_sum(text, "gateway_quota_settle_queue"), Some(0.0));
        assert_eq!(prom_sum(text, "gateway_requests"), None);
        assert_eq!(prom_sum(text, "gateway_missing_total"), None);
    }

    #[test]
    fn commands_a_script_runs() {
        let lua = "local t = redis.call('TIME')\nlocal v = redis.call( \"HMGET\", KEYS[1], 'a')\n\
                   redis.pcall('zadd', k, 1, m)\n-- redis.call(cmd) is not a name\nredis.call(cmd, k)\n";
        let names: Vec<String> = lua_command_names(lua).into_iter().collect();
        assert_eq!(names, vec!["hmget", "time", "zadd"]);
    }
}
