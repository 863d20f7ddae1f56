//! The chaos run as a command: every fault under every `on_redis_error`
//! policy against three replicas under load, and the Markdown report
//! (`gateway_tests::chaos`). Exits 1 when a promise was broken.
//!
//! ```sh
//! cargo run --release -p gateway-tests --bin chaos -- --out benches/results/chaos-$(date +%Y%m%d-%H%M%S).md
//! cargo run --release -p gateway-tests --bin chaos -- --short --policy local --fault redis-frozen
//! ```
//!
//! The gateway is built with the same profile (`GATEWAY_BIN` runs another);
//! `redis-server` and `redis-cli` come from `PATH`.

use clap::Parser;
use gateway_tests::chaos::report::Context;
use gateway_tests::chaos::{self, Fault, Plan, Policy};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

#[derive(Parser)]
#[command(
    about = "Faults under load against three gateway replicas, and a report of the promises kept"
)]
struct Args {
    /// Where to write the Markdown report (default: stdout only).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The suite's shortened plan instead of the full one.
    #[arg(long)]
    short: bool,
    /// Only these policies (fail_closed, local, fail_open); repeatable.
    #[arg(long = "policy")]
    policies: Vec<String>,
    /// Only these faults (redis-restart-empty, ..., upstream-stall); repeatable.
    #[arg(long = "fault")]
    faults: Vec<String>,
    /// Concurrent clients.
    #[arg(long)]
    clients: Option<usize>,
    /// Seconds each fault lasts.
    #[arg(long)]
    fault_secs: Option<f64>,
    /// `state.quota_lease_s` of the replicas.
    #[arg(long)]
    lease_secs: Option<u64>,
    /// Keep every replica's stderr and access log, and Redis's log, under DIR/<policy>/.
    #[arg(long, value_name = "DIR")]
    keep_logs: Option<PathBuf>,
}

fn git(args: &[&str]) -> String {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_default();
    format!("{cores} cores ({cpu})")
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = Args::parse();
    let mut plan = if args.short {
        Plan::short()
    } else {
        Plan::full()
    };
    if !args.policies.is_empty() {
        plan.policies = args
            .policies
            .iter()
            .map(|p| Policy::parse(p).unwrap_or_else(|| panic!("unknown policy {p}")))
            .collect();
    }
    if !args.faults.is_empty() {
        plan.faults = args
            .faults
            .iter()
            .map(|f| Fault::parse(f).unwrap_or_else(|| panic!("unknown fault {f}")))
            .collect();
    }
    if let Some(c) = args.clients {
        plan.clients = c;
    }
    if let Some(s) = args.fault_secs {
        plan.fault = Duration::from_secs_f64(s);
    }
    plan.keep_logs = args.keep_logs;
    if let Some(s) = args.lease_secs {
        plan.lease = Duration::from_secs(s);
    }
    let report = chaos::run(&plan).await;
    let dirty = !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty();
    let ctx = Context {
        title: format!(
            "Chaos run {}",
            git(&["log", "-1", "--format=%cd", "--date=format:%Y-%m-%d"])
        ),
        command: std::iter::once("cargo run --release -p gateway-tests --bin chaos --".to_string())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" "),
        commit: format!(
            "{}{}",
            git(&["rev-parse", "--short", "HEAD"]),
            if dirty {
                " (with uncommitted changes)"
            } else {
                ""
            }
        ),
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
        .into(),
        machine: machine(),
    };
    let md = report.markdown(&ctx);
    println!("{md}");
    if let Some(out) = args.out {
        std::fs::write(&out, &md).unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
        eprintln!("chaos: report written to {}", out.display());
    }
    if !report.pass() {
        for f in report.failures() {
            eprintln!("chaos: FAIL {f}");
        }
        std::process::exit(1);
    }
}
