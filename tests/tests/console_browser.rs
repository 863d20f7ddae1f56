//! The console (`/ui/` on the admin listener) in Debian's headless Chromium
//! through `chromedriver`, driven by `tests/python/console_e2e.py` (a W3C
//! WebDriver client of the standard library, and the official `openai` SDK):
//! an operator's whole round with keys, and hostile names and metadata shown as
//! text. Every step of both also fails on a SEVERE browser log or a CSP report,
//! a request answered >= 400 and a request to another origin than the
//! console's (the browser's log and its performance entries), except the
//! failures a step provokes on purpose. Screenshots of every page at 1280 and
//! 390 px go to `<target>/test-artifacts/console/`.

use gateway_tests::browser::ChromeDriver;
use gateway_tests::config::{Config, Price, Pricing, Provider, Route, Server};
use gateway_tests::harness::{target_dir, Gateway, ADMIN_TOKEN};
use gateway_tests::mock_upstream::MockUpstream;
use gateway_tests::python::PyScript;
use std::time::{Duration, Instant};

/// The model the SDK asks for: the mock's, priced so requests have a cost.
const MODEL: &str = "mock-small";

/// A keyed route to the mock upstream, the admin listener (and so the console)
/// on, requests priced.
fn config(mock: &MockUpstream) -> String {
    Config::new()
        .server(Server::new().admin_token(ADMIN_TOKEN))
        .provider(Provider::openai("up", &mock.base_url()).token("sk-upstream-secret"))
        .route(Route::new("chat", "/v1").keyed().upstream("up"))
        .pricing(Pricing::only().price(Price::new(MODEL, "2.50", "10")))
        .access_log()
        .yaml()
}

/// Runs `console_e2e.py <scenario>` against a fresh gateway and browser; fails
/// with the script's output (its `FAILED:` line names the step and the check).
async fn run(scenario: &str) {
    let started = Instant::now();
    let mock = MockUpstream::start_default();
    let gw = Gateway::start(&config(&mock)).await;
    let driver = ChromeDriver::start().await;
    let artifacts = target_dir().join("test-artifacts").join("console");
    std::fs::create_dir_all(&artifacts)
        .unwrap_or_else(|e| panic!("create {}: {e}", artifacts.display()));
    let console = format!("{}/ui/", gw.admin_url());
    let gateway = format!("{}/v1", gw.url());
    let mut script = PyScript::spawn(
        "console_e2e.py",
        &[
            scenario,
            "--webdriver",
            &driver.url(),
            "--chromium",
            &driver.chromium().to_string_lossy(),
            "--profile",
            &driver.profile_dir().to_string_lossy(),
            "--console",
            &console,
            "--gateway",
            &gateway,
            "--admin-token",
            ADMIN_TOKEN,
            "--model",
            MODEL,
            "--artifacts",
            &artifacts.to_string_lossy(),
        ],
    );
    let status = script.wait(Duration::from_secs(120)).await;
    println!("{}", script.stdout());
    assert!(
        status.is_some_and(|s| s.success()),
        "console_e2e.py {scenario}: {}\n--- stdout\n{}\n--- stderr\n{}\n--- chromedriver (tail)\n{}\n--- gateway stderr (tail)\n{}",
        status.map_or("killed after 120 s".to_string(), |s| s.to_string()),
        script.stdout(),
        script.stderr(),
        tail(&driver.log(), 40),
        tail(&gw.stderr(), 40),
    );
    println!(
        "console_e2e.py {scenario}: passed in {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        artifacts.display()
    );
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A wrong admin token reads as an error; signed in, the operator makes a
/// tenant, a consumer with a token quota and a key, copies the key, the
/// `openai` SDK is answered with it, the request shows in Live requests and
/// the consumer's usage bar moves; revoked in the console, the key gets the SDK
/// a 401 within a second; every page is shot at both widths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_makes_and_revokes_a_key_the_sdk_uses() {
    run("keys").await;
}

/// Tenant, consumer and key names, metadata, an allowed-model glob and a
/// client's model name (shown in Live requests) carrying `<script>`,
/// `"><img onerror=..>`, `javascript:` and the like are shown as text on every
/// page and none of it runs; a tenant name with markup is refused with a
/// readable error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_and_metadata_are_shown_as_text() {
    run("hostile").await;
}
