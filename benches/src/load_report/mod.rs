//! The load harness's report (`bench-util report`, run by
//! `benches/run-load.sh`): turns the raw files of one run (loadgen reports,
//! each row's meta, the Redis `INFO` and gateway `/metrics` snapshots around
//! each run of a row with Redis) into the Markdown tables and one combined
//! JSON file.

mod ab;
mod fmt;
mod monitor;
mod redis;
mod tables;
mod targets;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::stats::lua_command_names;
use ab::HealthAb;
use redis::{RedisRun, Snapshots};

/// What the report is made from.
pub struct ReportInput {
    /// `<target>-<mode>-c<N>.json`, `<target>.meta.json`, snapshots
    pub raw_dir: PathBuf,
    /// connections of the throughput runs (`BENCH_CONNECTIONS`)
    pub connections: u32,
    /// connections of the second throughput runs (`BENCH_CONNECTIONS_HIGH`;
    /// 0: none)
    pub connections_high: u32,
    pub out_json: Option<PathBuf>,
    /// `key=value` lines for the "Run" section, in order
    pub info: Vec<String>,
    /// rounds of the quotas / health A/B (`BENCH_AB_ROUNDS`)
    pub ab_rounds: u32,
    /// the gateway's Lua scripts (`lua/`), to tell the commands they run
    /// inside Redis from those clients send
    pub lua_dir: Option<PathBuf>,
}

/// The rows, in the tables' order.
pub const TARGETS: [&str; 8] = [
    "direct",
    "nginx",
    "hyper",
    "gateway",
    "gateway-auth",
    "gateway-quota",
    "gateway-health",
    "gateway-full",
];
/// Rows whose gateway keeps state in Redis.
pub const REDIS_TARGETS: [&str; 4] = [
    "gateway-auth",
    "gateway-quota",
    "gateway-health",
    "gateway-full",
];
/// Rows with a quota: every request reserves and settles.
pub const QUOTA_TARGETS: [&str; 3] = ["gateway-quota", "gateway-health", "gateway-full"];
pub const MODES: [&str; 2] = ["json", "stream"];

/// How a row is named in the tables.
pub fn display_name(target: &str) -> &str {
    match target {
        "gateway-auth" => "gateway + auth",
        "gateway-quota" => "gateway + auth + quota",
        "gateway-health" => "gateway + auth + quota + health",
        "gateway-full" => "full-featured",
        "hyper" => "hyper alone",
        t => t,
    }
}

pub fn run_name(target: &str, mode: &str, conns: u32) -> String {
    format!("{target}-{mode}-c{conns}")
}

/// Requests the system under test saw in one loadgen run, warm-up and
/// failures included (requests still in flight when the window closed are
/// not counted).
fn requests_made(run: &Value) -> Option<f64> {
    let fields = ["requests", "errors", "warmup_requests", "warmup_errors"];
    let mut total = 0.0;
    for f in fields {
        total += run.get(f)?.as_f64()?;
    }
    Some(total)
}

fn load(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn num(v: Option<&Value>, ptr: &str) -> Option<f64> {
    v?.pointer(ptr)?.as_f64()
}

/// Figures of one (row, mode) from its loadgen runs.
#[derive(Default, Clone, Copy)]
pub struct Row {
    /// requests/s at each throughput level (`Data::levels`), in order
    pub rps: [Option<f64>; 2],
    /// SUT CPU, % of one core, at each throughput level
    pub cpu_pct: [Option<f64>; 2],
    /// the kernel's part of `cpu_pct` (stime)
    pub sys_pct: [Option<f64>; 2],
    /// CPU of processes outside the benchmark at each throughput level, then @1
    pub foreign: [Option<f64>; 3],
    pub errors: Option<f64>,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub ttft_p99: Option<f64>,
    pub added_p50: Option<f64>,
    pub added_p99: Option<f64>,
    pub added_ttft_p99: Option<f64>,
}

/// Everything one report is made from.
pub struct Data<'a> {
    pub input: &'a ReportInput,
    pub runs: BTreeMap<String, Value>,
    pub metas: BTreeMap<String, Value>,
    pub rows: BTreeMap<(&'static str, &'static str), Row>,
    /// by run name
    pub redis: BTreeMap<String, RedisRun>,
    /// the commands the gateway's scripts run (empty: no `lua/` found)
    pub script_names: BTreeSet<String>,
    pub ab: BTreeMap<&'static str, HealthAb>,
    pub ab_runs: BTreeMap<String, Value>,
    /// runs measured twice, their first attempt disturbed
    /// (`<run>.disturbed.json`): name → the first attempt's other CPU
    pub retried: BTreeMap<String, Option<f64>>,
}

impl Data<'_> {
    /// Connections of the throughput runs: `BENCH_CONNECTIONS`, then
    /// `BENCH_CONNECTIONS_HIGH` when set.
    pub fn levels(&self) -> Vec<u32> {
        let mut v = vec![self.input.connections];
        if self.input.connections_high > 0 {
            v.push(self.input.connections_high);
        }
        v
    }

    /// Every run of a row with Redis: the throughput levels, then 1.
    pub fn redis_levels(&self) -> Vec<u32> {
        let mut v = self.levels();
        v.push(1);
        v
    }

    pub fn row(&self, target: &str, mode: &str) -> Row {
        self.rows
            .iter()
            .find(|((t, m), _)| *t == target && *m == mode)
            .map(|(_, r)| *r)
            .unwrap_or_default()
    }

    pub fn redis_run(&self, target: &str, mode: &str, conns: u32) -> Option<&RedisRun> {
        self.redis.get(&run_name(target, mode, conns))
    }

    pub fn meta(&self, target: &str) -> Option<&Value> {
        self.metas.get(target)
    }

    fn raw(&self, file: &str) -> Option<String> {
        std::fs::read_to_string(self.input.raw_dir.join(file)).ok()
    }

    fn load(input: &ReportInput) -> Data<'_> {
        let script_names = input
            .lua_dir
            .as_ref()
            .and_then(|d| std::fs::read_dir(d).ok())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "lua"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .flat_map(|src| lua_command_names(&src))
            .collect();
        let mut d = Data {
            input,
            runs: BTreeMap::new(),
            metas: BTreeMap::new(),
            rows: BTreeMap::new(),
            redis: BTreeMap::new(),
            script_names,
            ab: BTreeMap::new(),
            ab_runs: BTreeMap::new(),
            retried: BTreeMap::new(),
        };
        for e in std::fs::read_dir(&input.raw_dir)
            .into_iter()
            .flatten()
            .flatten()
        {
            let file = e.file_name().to_string_lossy().into_owned();
            if let Some(name) = file.strip_suffix(".disturbed.json") {
                let other = load(&e.path()).and_then(|v| num(Some(&v), "/foreign_cpu_pct"));
                d.retried.insert(name.to_string(), other);
            }
        }
        let levels = d.levels();
        for t in TARGETS {
            if let Some(m) = load(&input.raw_dir.join(format!("{t}.meta.json"))) {
                d.metas.insert(t.to_string(), m);
            }
            for m in MODES {
                let mut row = Row::default();
                let mut errors = None;
                for (i, c) in levels.iter().chain([&1]).enumerate() {
                    let name = run_name(t, m, *c);
                    let Some(v) = load(&input.raw_dir.join(format!("{name}.json"))) else {
                        continue;
                    };
                    if let Some(e) = num(Some(&v), "/errors") {
                        errors = Some(errors.unwrap_or(0.0) + e);
                    }
                    let latency_run = i == levels.len();
                    if let Some(f) = row.foreign.get_mut(if latency_run { 2 } else { i }) {
                        *f = num(Some(&v), "/foreign_cpu_pct");
                    }
                    if latency_run {
                        row.p50 = num(Some(&v), "/latency_us/p50");
                        row.p99 = num(Some(&v), "/latency_us/p99");
                        row.ttft_p99 = num(Some(&v), "/ttft_us/p99");
                    } else if let (Some(r), Some(p)) = (row.rps.get_mut(i), row.cpu_pct.get_mut(i))
                    {
                        *r = num(Some(&v), "/rps");
                        *p = num(Some(&v), "/sut_cpu_pct");
                        if let Some(k) = row.sys_pct.get_mut(i) {
                            *k = num(Some(&v), "/sut_sys_cpu_pct");
                        }
                    }
                    d.runs.insert(name, v);
                }
                row.errors = errors;
                d.rows.insert((t, m), row);
            }
        }
        // Added latency = row minus direct (same mode).
        for m in MODES {
            let direct = d.row("direct", m);
            for t in TARGETS {
                if let Some(r) = d.rows.get_mut(&(t, m)) {
                    let sub = |x: Option<f64>, y: Option<f64>| Some(x? - y?);
                    r.added_p50 = sub(r.p50, direct.p50);
                    r.added_p99 = sub(r.p99, direct.p99);
                    r.added_ttft_p99 = sub(r.ttft_p99, direct.ttft_p99);
                }
            }
        }
        for t in REDIS_TARGETS {
            for m in MODES {
                for c in d.redis_levels() {
                    let name = run_name(t, m, c);
                    let (Some(rb), Some(ra)) = (
                        d.raw(&format!("{name}.redis-before.txt")),
                        d.raw(&format!("{name}.redis-after.txt")),
                    ) else {
                        continue;
                    };
                    let (mb, ma) = (
                        d.raw(&format!("{name}.metrics-before.txt")),
                        d.raw(&format!("{name}.metrics-after.txt")),
                    );
                    let (lb, la) = (
                        d.raw(&format!("{name}.load-side-before.txt")),
                        d.raw(&format!("{name}.load-side-after.txt")),
                    );
                    let snaps = Snapshots {
                        redis_before: &rb,
                        redis_after: &ra,
                        metrics_before: mb.as_deref(),
                        metrics_after: ma.as_deref(),
                        load_side_before: lb.as_deref(),
                        load_side_after: la.as_deref(),
                    };
                    let made = d.runs.get(&name).and_then(requests_made);
                    if let Some(r) = RedisRun::from_snapshots(&snaps, made, &d.script_names) {
                        d.redis.insert(name, r);
                    }
                }
            }
        }
        d.load_ab();
        d
    }

    /// The quotas / health A/B: round 1 is the table's rows, rounds 2..=N
    /// the extra throughput runs of BENCH_AB_ROUNDS.
    fn load_ab(&mut self) {
        let c = self.input.connections;
        for m in MODES {
            let (rq, rh) = (self.row("gateway-quota", m), self.row("gateway-health", m));
            let mut x = HealthAb {
                rounds: vec![(rq.rps[0], rh.rps[0])],
                other_cpu: vec![(rq.foreign[0], rh.foreign[0])],
            };
            for round in 2..=self.input.ab_rounds {
                let (mut rps, mut other) = ((None, None), (None, None));
                for (t, r, o) in [
                    ("gateway-quota", &mut rps.0, &mut other.0),
                    ("gateway-health", &mut rps.1, &mut other.1),
                ] {
                    let name = format!("ab{round}.{}", run_name(t, m, c));
                    if let Some(v) = load(&self.input.raw_dir.join(format!("{name}.json"))) {
                        *r = num(Some(&v), "/rps");
                        *o = num(Some(&v), "/foreign_cpu_pct");
                        self.ab_runs.insert(name, v);
                    }
                }
                x.rounds.push(rps);
                x.other_cpu.push(other);
            }
            self.ab.insert(m, x);
        }
    }

    fn to_json(&self) -> Value {
        let info: BTreeMap<String, String> = self
            .input
            .info
            .iter()
            .map(|i| match i.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (i.clone(), String::new()),
            })
            .collect();
        let redis: BTreeMap<&String, Value> =
            self.redis.iter().map(|(k, v)| (k, v.to_json())).collect();
        let levels = self.levels();
        let mut summary = serde_json::Map::new();
        for t in TARGETS {
            let mut modes = serde_json::Map::new();
            for m in MODES {
                let r = self.row(t, m);
                let n = self.row("nginx", m);
                let mut o = serde_json::Map::new();
                for (i, c) in levels.iter().enumerate() {
                    let rps = r.rps.get(i).copied().flatten();
                    let cpu = r.cpu_pct.get(i).copied().flatten();
                    o.insert(format!("rps_c{c}"), json!(rps));
                    o.insert(
                        format!("rps_c{c}_vs_nginx"),
                        json!(fmt::ratio(rps, n.rps.get(i).copied().flatten())),
                    );
                    o.insert(
                        format!("sut_cpu_us_per_request_c{c}"),
                        json!(fmt::cpu_per_req(cpu, rps)),
                    );
                }
                o.insert("added_p50_us_c1".into(), json!(r.added_p50));
                o.insert("added_p99_us_c1".into(), json!(r.added_p99));
                o.insert("added_ttft_p99_us_c1".into(), json!(r.added_ttft_p99));
                o.insert("errors".into(), json!(r.errors));
                modes.insert(m.into(), Value::Object(o));
            }
            summary.insert(t.into(), Value::Object(modes));
        }
        json!({
            "info": info,
            "summary": summary,
            "meta": self.metas,
            "runs": self.runs,
            "redis_runs": redis,
            "lua_script_commands": self.script_names,
            "ab_runs": self.ab_runs,
            "retried_runs_first_other_cpu_pct": self.retried,
            "health_vs_quotas": {
                "rounds": self.input.ab_rounds,
                "json": self.ab.get("json").map(HealthAb::to_json),
                "stream": self.ab.get("stream").map(HealthAb::to_json),
            },
        })
    }
}

/// Builds the report: returns the Markdown, writes the combined JSON to
/// `out_json` when given.
pub fn report(input: &ReportInput) -> Result<String> {
    let d = Data::load(input);
    let md = tables::write(&d).context("formatting the report")?;
    if let Some(out) = &input.out_json {
        std::fs::write(out, serde_json::to_vec_pretty(&d.to_json())?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(md)
}
