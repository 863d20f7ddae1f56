//! Python scripts of `tests/python/` run with the interpreter that has the official
//! `openai` package: `$GATEWAY_TEST_PYTHON`, else `<repo>/.venv/bin/python`
//! (`./scripts/test.sh` creates that venv); the `USAGE` lines the SDK scripts
//! print read back ([`reported_usage`]).

use crate::harness::workspace_dir;
use serde::Deserialize;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const HOW_TO_FIX: &str = "run ./scripts/test.sh (creates .venv with the openai package)";

/// The Python interpreter with the `openai` package; panics (with the fix) when
/// there is none.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("GATEWAY_TEST_PYTHON").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return p;
        }
        panic!(
            "GATEWAY_TEST_PYTHON={} does not exist; {HOW_TO_FIX}",
            p.display()
        );
    }
    let venv = workspace_dir().join(".venv").join("bin").join("python");
    if venv.is_file() {
        return venv;
    }
    panic!(
        "no Python with the openai package: GATEWAY_TEST_PYTHON is unset and {} does not exist; {HOW_TO_FIX}",
        venv.display()
    );
}

/// `<repo>/tests/python/<name>`; panics when it is missing.
pub fn script(name: &str) -> PathBuf {
    let p = workspace_dir().join("tests").join("python").join(name);
    assert!(p.is_file(), "{} is missing", p.display());
    p
}

/// A running script of `tests/python/`, its stdout and stderr going to files
/// (read them any time); killed on drop.
pub struct PyScript {
    child: Child,
    status: Option<ExitStatus>,
    out_path: PathBuf,
    err_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl PyScript {
    /// Starts `tests/python/<name> ARGS...`, kept away from any proxy or OpenAI
    /// settings of the machine.
    pub fn spawn(name: &str, args: &[&str]) -> PyScript {
        let python = python();
        let script = script(name);
        let dir = tempfile::Builder::new()
            .prefix("py-script-")
            .tempdir()
            .expect("tempdir");
        let out_path = dir.path().join("stdout.txt");
        let err_path = dir.path().join("stderr.txt");
        let out = std::fs::File::create(&out_path).expect("stdout file");
        let err = std::fs::File::create(&err_path).expect("stderr file");
        let child = Command::new(&python)
            .arg(&script)
            .args(args)
            .env_remove("OPENAI_BASE_URL")
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_ORG_ID")
            .env_remove("OPENAI_PROJECT_ID")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {} {}: {e}", python.display(), script.display()));
        PyScript {
            child,
            status: None,
            out_path,
            err_path,
            _dir: dir,
        }
    }

    /// What the script printed so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out_path).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err_path).unwrap_or_default()
    }

    /// Waits until stdout contains `needle` (true) or `timeout` passed or the
    /// script exited without printing it (false).
    pub async fn wait_for_stdout(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stdout().contains(needle) {
                return true;
            }
            if Instant::now() > deadline || matches!(self.child.try_wait(), Ok(Some(_))) {
                return self.stdout().contains(needle);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the script to exit; kills it after `timeout` (then `None`).
    pub async fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.status = Some(status);
                    return Some(status);
                }
                Ok(None) if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return None;
                }
                Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => panic!("waiting for the python script: {e}"),
            }
        }
    }
}

impl Drop for PyScript {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One `USAGE {"what": .., "usage": ..}` line of an SDK script
/// (`tests/python/e2e_common.py`'s `report_usage`): the usage object the SDK parsed
/// from one model answer, as its `model_dump` (None: the answer carried none).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ReportedUsage {
    /// which request of the script (`chat`, `tool result`, `stream`, ...)
    pub what: String,
    pub usage: Option<Value>,
}

impl ReportedUsage {
    /// The figure `key` of the usage (`prompt_tokens`, `input_tokens`, ...), or
    /// of an object in it with a `/` path (`prompt_tokens_details/cached_tokens`);
    /// 0 when the SDK left it out (None), None when the answer had no usage.
    pub fn figure(&self, key: &str) -> Option<u64> {
        let usage = self.usage.as_ref()?;
        Some(
            usage
                .pointer(&format!("/{key}"))
                .and_then(Value::as_u64)
                .unwrap_or(0),
        )
    }
}

/// The `USAGE` lines of a script's `stdout`, in the order printed; panics on a
/// line that does not parse.
pub fn reported_usage(stdout: &str) -> Vec<ReportedUsage> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("USAGE "))
        .map(|json| {
            serde_json::from_str(json).unwrap_or_else(|e| panic!("USAGE line {json:?}: {e}"))
        })
        .collect()
}
