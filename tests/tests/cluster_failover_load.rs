//! Redis Cluster failovers under pressed quotas (`gateway_tests::failover`):
//! a 3-primary, 3-replica cluster, a fleet of two gateway replicas per
//! `on_redis_error` policy, consumers on every shard pressing request and token
//! quotas at twice their limit; one after the other a primary SIGKILLed (its
//! replica promoted, the old primary restarted as a replica), a graceful
//! `CLUSTER FAILOVER`, and a primary frozen with SIGSTOP past its replica's
//! promotion, then resumed.
//!
//! The short run checks every promise `failover::measure::broken` lists: no
//! gateway restarted; each shard answered by Redis again within 2 s of its
//! promotion, and a frozen primary's shard before it resumes; the other shards
//! undisturbed; keys first looked up after the fault served; Redis never
//! admitting more than the limit and one request in a window beyond what the
//! failover measurably lost; `fail_closed` and `local` within their promise;
//! nothing counted twice, nothing lost by the graceful failover.
//!
//! The ignored full run writes `benches/results/cluster-failover-<date>.md`
//! (benches/README.md, "Redis Cluster failover").

use gateway_tests::failover::markdown::{report, Setting};
use gateway_tests::failover::measure::{broken, measure};
use gateway_tests::failover::{run, Plan};
use gateway_tests::harness::{gateway_bin, target_dir, workspace_dir};
use std::process::Command;

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn setting(command: &str, load_before: String) -> Setting {
    let bin = gateway_bin().unwrap_or_else(|e| panic!("{e}"));
    let build = bin
        .parent()
        .and_then(|d| d.file_name())
        .map_or("?".into(), |n| n.to_string_lossy().into_owned());
    let redis = Command::new("redis-server")
        .arg("--version")
        .output()
        .map(|o| {
            let v = String::from_utf8_lossy(&o.stdout);
            v.split_whitespace()
                .find_map(|w| w.strip_prefix("v="))
                .map_or("redis ?".into(), |v| format!("redis-server {v}"))
        })
        .unwrap_or_else(|_| "redis ?".into());
    Setting {
        command: command.into(),
        build,
        redis,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_before,
        load_after: loadavg(),
        date: jiff::Timestamp::now()
            .strftime("%Y-%m-%d %H:%M UTC")
            .to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failovers_under_pressed_quotas_keep_the_promises() {
    let before = loadavg();
    let r = run(&Plan::ci()).await;
    let f = measure(&r);
    let text = report(
        &r,
        &f,
        &setting(
            "cargo test -p gateway-tests --test cluster_failover_load",
            before,
        ),
    );
    let dir = target_dir().join("test-artifacts/cluster-failover");
    let _ = r.write_artifacts(&dir);
    let path = dir.join("report.md");
    let _ = std::fs::write(&path, &text);
    eprintln!("{text}\n(written to {})", path.display());
    let b = broken(&r, &f);
    assert!(b.is_empty(), "broken promises:\n{}", b.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "the full failover bench (about 3 minutes): benches/README.md"]
async fn failover_report() {
    let before = loadavg();
    let r = run(&Plan::full()).await;
    let f = measure(&r);
    let text = report(
        &r,
        &f,
        &setting(
            "cargo test -p gateway-tests --test cluster_failover_load -- --ignored",
            before,
        ),
    );
    let stamp = jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S").to_string();
    let dir: std::path::PathBuf = std::env::var_os("FAILOVER_RESULTS_DIR")
        .map_or_else(|| workspace_dir().join("benches/results"), Into::into);
    let path = dir.join(format!("cluster-failover-{stamp}.md"));
    let _ = r.write_artifacts(&target_dir().join("test-artifacts/cluster-failover-full"));
    std::fs::write(&path, &text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    eprintln!("{text}\n(written to {})", path.display());
    let b = broken(&r, &f);
    assert!(b.is_empty(), "broken promises:\n{}", b.join("\n"));
}
