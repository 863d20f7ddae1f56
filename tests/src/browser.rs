//! Debian's headless Chromium driven through `chromedriver` (W3C WebDriver on a
//! free loopback port): [`ChromeDriver::start`] finds both binaries
//! (`$GATEWAY_TEST_CHROMIUM` / `$GATEWAY_TEST_CHROMEDRIVER`, else
//! `/usr/bin/chromium` and `/usr/bin/chromedriver`, else on `PATH`; missing ones
//! fail the test naming the Debian packages), starts the driver in a process
//! group of its own with a scratch profile and home, and kills the whole group
//! (driver, browser and its helpers) on drop. The WebDriver client is the test's
//! script (`tests/python/console_e2e.py`, stdlib only).

use crate::harness::{self, free_port};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HOW_TO_FIX: &str = "install the Debian packages `chromium` and `chromium-driver` \
     (./scripts/test.sh --setup-only does it with apt-get)";

/// The Chromium binary the driver starts.
pub fn chromium_bin() -> PathBuf {
    harness::find_tool(
        "GATEWAY_TEST_CHROMIUM",
        "chromium",
        &["/usr/bin/chromium", "/usr/lib/chromium/chromium"],
        HOW_TO_FIX,
    )
}

/// The `chromedriver` binary.
pub fn chromedriver_bin() -> PathBuf {
    harness::find_tool(
        "GATEWAY_TEST_CHROMEDRIVER",
        "chromedriver",
        &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
        HOW_TO_FIX,
    )
}

/// A running `chromedriver` (and, once a session is opened, the Chromium it
/// started), every process of it killed on drop.
pub struct ChromeDriver {
    child: Child,
    port: u16,
    chromium: PathBuf,
    dir: tempfile::TempDir,
}

impl ChromeDriver {
    /// Starts `chromedriver` on a free loopback port and waits until it is
    /// ready to open sessions.
    pub async fn start() -> ChromeDriver {
        let chromium = chromium_bin();
        let driver = chromedriver_bin();
        let dir = tempfile::Builder::new()
            .prefix("chromedriver-")
            .tempdir()
            .expect("tempdir");
        let log = std::fs::File::create(dir.path().join("chromedriver.log")).expect("log file");
        let port = free_port();
        let child = {
            use std::os::unix::process::CommandExt;
            Command::new(&driver)
                .arg(format!("--port={port}"))
                // Chromium keeps crash reports, caches and temporary dirs under
                // $HOME, $XDG_* and $TMPDIR: in the scratch dir, removed on drop
                .env("HOME", dir.path())
                .env("TMPDIR", dir.path())
                .env("XDG_CONFIG_HOME", dir.path().join("config"))
                .env("XDG_CACHE_HOME", dir.path().join("cache"))
                .env("NO_PROXY", "127.0.0.1,localhost")
                .env("no_proxy", "127.0.0.1,localhost")
                .env_remove("http_proxy")
                .env_remove("https_proxy")
                .env_remove("HTTP_PROXY")
                .env_remove("HTTPS_PROXY")
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone().expect("log file")))
                .stderr(Stdio::from(log))
                // its own process group: the browser and its helpers join it, and
                // drop kills the group, so nothing outlives the test
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}; {HOW_TO_FIX}", driver.display()))
        };
        let mut d = ChromeDriver {
            child,
            port,
            chromium,
            dir,
        };
        d.wait_ready().await;
        d
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let client = crate::client::TestClient::new();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("chromedriver exited ({status}): {}", self.log());
            }
            let r = client
                .try_request(
                    http::Method::GET,
                    &format!("{}/status", self.url()),
                    &[],
                    bytes::Bytes::new(),
                )
                .await;
            if r.is_ok_and(|r| r.status == 200 && r.json()["value"]["ready"] == true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver not ready on {}: {}",
                self.url(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://127.0.0.1:PORT`, the WebDriver endpoint.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The Chromium binary sessions should ask for (`goog:chromeOptions.binary`).
    pub fn chromium(&self) -> &Path {
        &self.chromium
    }

    /// A scratch directory for the browser profile (`--user-data-dir`), removed
    /// on drop.
    pub fn profile_dir(&self) -> PathBuf {
        self.dir.path().join("profile")
    }

    /// What the driver logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default()
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // the whole group: the driver, the browser and its zygotes, renderers and
        // crash handler (no libc here: the `kill` command)
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
