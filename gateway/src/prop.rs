//! What the property tests share (`proptest`): the number of cases a property
//! runs, bounded so that the suite stays within its time in CI, and raised (or
//! lowered) for a local run with `PROPTEST_CASES=<n>`.

use proptest::test_runner::Config;

/// `n` cases (or `PROPTEST_CASES`), failures kept in `proptest-regressions/`
/// beside the source file and replayed first on the next run.
pub(crate) fn cases(n: u32) -> Config {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n);
    Config {
        cases: n,
        ..Config::default()
    }
}
