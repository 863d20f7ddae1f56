//! The chaos run's shortened plan in the suite (`gateway_tests::chaos`,
//! [`Plan::short`]): three replicas on one Redis behind the balancer, 100
//! clients pressing token and request quotas, and under each `on_redis_error`
//! policy a Redis restart without data, a replica SIGKILLed, Redis frozen
//! (`CLIENT PAUSE`) and its connections cut every 250 ms. Fails when any
//! promise of the report's table is broken, with the table and what explains
//! it; the report is also written to `target/test-artifacts/chaos/short.md`.
//! About 2.5 minutes on 2 cores. The full run is
//! `cargo run --release -p gateway-tests --bin chaos` (benches/README.md).

use gateway::keys::KeyHasher;
use gateway_tests::chaos::report::Context;
use gateway_tests::chaos::spec::label_digest;
use gateway_tests::chaos::{self, Plan};
use gateway_tests::harness::target_dir;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_promise_holds_under_the_short_chaos_plan() {
    let report = chaos::run(&Plan::short()).await;
    let md = report.markdown(&Context {
        title: "Chaos run, shortened plan (tests/tests/chaos.rs)".into(),
        command: "cargo test -p gateway-tests --test chaos".into(),
        commit: "this checkout".into(),
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
        .into(),
        machine: format!(
            "{} cores",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ),
    });
    let dir = target_dir().join("test-artifacts").join("chaos");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("short.md"), &md);
    assert!(
        report.pass(),
        "broken promises:\n{}\n\n{md}",
        report.failures().join("\n")
    );
}

/// The run reads what Redis settled per phase under the digest the gateway
/// shows for a header value (no pepper): the two must agree.
#[test]
fn accounting_labels_are_read_under_the_gateways_digest() {
    for label in ["warmup", "redis-frozen.during", "replica-kill.post"] {
        assert_eq!(
            label_digest(label),
            KeyHasher::new(None).subject_digest(label.as_bytes())
        );
    }
}
