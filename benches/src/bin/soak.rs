//! The soak bench's driver (`benches/run-soak.sh` builds and runs it; see
//! benches/README.md, *Soak*): starts Redis, the mock upstream and gateway
//! replicas, runs mixed traffic with reloads and key churn for `--minutes`,
//! samples RSS, FDs, tokio tasks and Redis every `--sample-s`, and writes
//! `soak-<stamp>.md` and its SVG plots into `--out-dir`. Exits 0 when the RSS
//! and FDs of every replica stayed flat after the warm-up, no replica panicked
//! or stopped; 3 otherwise.

use anyhow::{bail, Result};
use clap::Parser;
use gateway_benches::soak::{run, Settings};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(about = "Soak bench: gateway replicas under mixed traffic, reloads and key churn")]
struct Args {
    /// Length of the traffic, minutes.
    #[arg(long, default_value_t = 15.0)]
    minutes: f64,
    /// Warm-up, seconds (default: 20% of the run).
    #[arg(long)]
    warmup_s: Option<f64>,
    /// Seconds between samples.
    #[arg(long, default_value_t = 10.0)]
    sample_s: f64,
    /// Gateway replicas.
    #[arg(long, default_value_t = 2)]
    replicas: usize,
    /// Requests per second, all clients together.
    #[arg(long, default_value_t = 200.0)]
    rps: f64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 48)]
    clients: usize,
    /// Seconds between config reloads (each replica in turn).
    #[arg(long, default_value_t = 30.0)]
    reload_s: f64,
    /// Seconds between key cycles (create, rotate, revoke).
    #[arg(long, default_value_t = 15.0)]
    keys_s: f64,
    /// Distinct values of the header a route quota counts by.
    #[arg(long, default_value_t = 500)]
    users: u32,
    /// Seed of the request mix.
    #[arg(long, default_value_t = 24)]
    seed: u64,
    /// Where soak-<stamp>.md and its SVGs go.
    #[arg(long, default_value = "benches/results")]
    out_dir: PathBuf,
    /// Names the report (default: the UTC time, YYYYMMDD-HHMMSS).
    #[arg(long)]
    stamp: Option<String>,
    /// `name=value` line for the report's settings (repeatable).
    #[arg(long = "info")]
    info: Vec<String>,
}

fn secs(name: &str, v: f64) -> Result<Duration> {
    if !(v.is_finite() && v > 0.0 && v < 1e7) {
        bail!("--{name} must be a positive number of seconds (got {v})");
    }
    Ok(Duration::from_secs_f64(v))
}

fn settings(a: Args) -> Result<Settings> {
    let duration = secs("minutes", a.minutes * 60.0)?;
    let warmup = match a.warmup_s {
        Some(w) => secs("warmup-s", w)?,
        None => duration.mul_f64(0.2),
    };
    if warmup >= duration {
        bail!("the warm-up must be shorter than the run");
    }
    if a.replicas == 0 || a.clients == 0 || a.rps <= 0.0 || a.users == 0 {
        bail!("--replicas, --clients, --rps and --users must be above 0");
    }
    let stamp = a
        .stamp
        .unwrap_or_else(|| jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S").to_string());
    Ok(Settings {
        replicas: a.replicas,
        duration,
        warmup,
        sample_every: secs("sample-s", a.sample_s)?,
        rps: a.rps,
        clients: a.clients,
        reload_every: secs("reload-s", a.reload_s)?,
        keys_every: secs("keys-s", a.keys_s)?,
        users: a.users,
        seed: a.seed,
        out_dir: a.out_dir,
        stamp,
        info: a.info,
    })
}

fn main() -> ExitCode {
    let s = match settings(Args::parse()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    };
    // the gateway binary next to this one (a release build), unless given
    if std::env::var_os("GATEWAY_BIN").is_none() {
        if let Some(bin) = std::env::current_exe()
            .ok()
            .and_then(|p| Some(p.parent()?.join("gateway")))
            .filter(|p| p.is_file())
        {
            std::env::set_var("GATEWAY_BIN", bin);
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::FAILURE;
        }
    };
    // On Ctrl-C or SIGTERM the run is dropped, and with it the gateways and
    // Redis it started (they are killed on drop).
    let result = rt.block_on(async {
        tokio::select! {
            r = run(&s) => Some(r),
            () = stop_signal() => None,
        }
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    let Some(result) = result else {
        eprintln!("[soak] interrupted; the fleet is stopped, no report written");
        return ExitCode::from(130);
    };
    match result {
        Ok(outcome) => {
            for line in &outcome.summary {
                eprintln!("[soak] {line}");
            }
            eprintln!("[soak] wrote {}", outcome.report.display());
            if outcome.passed {
                ExitCode::SUCCESS
            } else {
                eprintln!("[soak] NOT flat, or a replica panicked or stopped: see the report");
                ExitCode::from(3)
            }
        }
        Err(e) => {
            eprintln!("soak: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Ctrl-C or SIGTERM.
async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
