//! The gateway binary and the workspace it is built from: [`gateway_bin`]
//! (built once per test binary unless `$GATEWAY_BIN` is set), the tools a
//! test runs ([`find_tool`]), and one-shot runs of the binary
//! ([`run_check_config`], [`run_gateway`]).

use super::ports::free_ports;
use super::{template, write_atomic};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// `<workspace>` (the parent of this crate's manifest dir).
pub fn workspace_dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map_or(manifest.clone(), Path::to_path_buf)
}

/// (profile dir such as `<target>/debug`, cargo profile name such as `dev`) of the
/// running test binary (`<target>/<profile>/deps/<test>-<hash>`) or of a binary
/// of this crate (`<target>/<profile>/chaos`).
fn profile_dir() -> (PathBuf, String) {
    let from_exe = std::env::current_exe().ok().and_then(|exe| {
        let parent = exe.parent()?;
        let dir = if parent.file_name()? == "deps" {
            parent.parent()?.to_path_buf()
        } else if parent.join("deps").is_dir() && parent.join(".fingerprint").is_dir() {
            // a binary run by `cargo run`, in the profile dir itself
            parent.to_path_buf()
        } else {
            return None;
        };
        let name = dir.file_name()?.to_string_lossy().into_owned();
        Some((dir, name))
    });
    let (dir, name) =
        from_exe.unwrap_or_else(|| (workspace_dir().join("target").join("debug"), "debug".into()));
    let profile = if name == "debug" {
        "dev".to_string()
    } else {
        name
    };
    (dir, profile)
}

/// The target dir of the running test binary (`<target>` of
/// `<target>/<profile>/deps/<test>-<hash>`), where test artifacts go.
pub fn target_dir() -> PathBuf {
    let (profile, _) = profile_dir();
    profile
        .parent()
        .map_or_else(|| workspace_dir().join("target"), Path::to_path_buf)
}

/// A tool a test runs: `$var` when set (it must exist), else the first of
/// `defaults` that is a file, else `name` found on `PATH`; panics with
/// `how_to_fix` (which names the package to install) when none is.
pub fn find_tool(var: &str, name: &str, defaults: &[&str], how_to_fix: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "{var}={} does not exist; {how_to_fix}",
            p.display()
        );
        return p;
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    defaults
        .iter()
        .map(PathBuf::from)
        .chain(on_path)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("no {name} ({var} unset, not in {defaults:?} nor on PATH); {how_to_fix}")
        })
}

static GATEWAY_BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Path of the gateway binary (builds it on first use unless `$GATEWAY_BIN` is set).
/// Blocking: call from a blocking context or accept blocking the current thread.
pub fn gateway_bin() -> Result<PathBuf, String> {
    GATEWAY_BIN.get_or_init(build_gateway).clone()
}

fn build_gateway() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("GATEWAY_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("GATEWAY_BIN={} is not a file", p.display()))
        };
    }
    let (dir, profile) = profile_dir();
    let target_dir = dir.parent().map_or(dir.clone(), Path::to_path_buf);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    // `cargo test` sets per-package variables for the test process; build scripts
    // (ring's) track some of them, so passing them on would make every build here
    // dirty and rebuild half the tree. Drop them.
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k == "CARGO_MANIFEST_DIR"
            || k == "CARGO_MANIFEST_PATH"
            || k == "CARGO_CRATE_NAME"
            || k == "CARGO_BIN_NAME"
            || k == "CARGO_PRIMARY_PACKAGE"
            || k == "CARGO_TARGET_TMPDIR"
            || k == "CARGO_RUSTC_CURRENT_DIR"
            || k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_BIN_EXE_")
        {
            cmd.env_remove(&key);
        }
    }
    let out = cmd
        .arg("build")
        .arg("--manifest-path")
        .arg(workspace_dir().join("Cargo.toml"))
        .args(["-p", "gateway", "--bin", "gateway", "--profile", &profile])
        .arg("--target-dir")
        .arg(&target_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("running {cargo:?} build -p gateway: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo build -p gateway --bin gateway failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let bin = dir.join(format!("gateway{}", std::env::consts::EXE_SUFFIX));
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "built the gateway but {} does not exist",
            bin.display()
        ))
    }
}

pub(super) async fn gateway_bin_async() -> Result<PathBuf, String> {
    if let Some(r) = GATEWAY_BIN.get() {
        return r.clone();
    }
    tokio::task::spawn_blocking(gateway_bin)
        .await
        .map_err(|e| format!("build task failed: {e}"))?
}

/// Runs `gateway --check-config PATH` on `yaml` written to
/// `<tempdir>/check-config.yaml` (placeholders `{{listen}}`, `{{admin}}`,
/// `{{access_log}}`, `{{dir}}` are filled in). Returns (exit code, stdout + stderr).
pub fn run_check_config(yaml: &str) -> (i32, String) {
    run_check_config_named(yaml, "check-config.yaml")
}

/// As [`run_check_config`] with another file name (`.json` for a JSON config).
pub fn run_check_config_named(yaml: &str, file_name: &str) -> (i32, String) {
    let bin = match gateway_bin() {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    };
    let dir = match tempfile::Builder::new().prefix("gw-check-").tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    };
    let path = dir.path().join(file_name);
    let ports = free_ports(2);
    let vars = vec![
        ("listen".to_string(), format!("127.0.0.1:{}", ports[0])),
        ("admin".to_string(), format!("127.0.0.1:{}", ports[1])),
        (
            "access_log".to_string(),
            dir.path().join("access.log").display().to_string(),
        ),
        ("dir".to_string(), dir.path().display().to_string()),
    ];
    write_atomic(&path, &template(yaml, &vars));
    let out = match Command::new(&bin)
        .arg("--check-config")
        .arg(&path)
        .env_remove("GATEWAY_CONFIG")
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) => o,
        Err(e) => panic!("running {} --check-config: {e}", bin.display()),
    };
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// Runs the gateway binary with `args` (a command such as `bill ...`) to its
/// end, stdin empty: (exit code, stdout, stderr).
pub fn run_gateway<A: AsRef<std::ffi::OsStr>>(args: &[A]) -> (i32, String, String) {
    let bin = match gateway_bin() {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    };
    let out = match Command::new(&bin)
        .args(args)
        .env_remove("GATEWAY_CONFIG")
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) => o,
        Err(e) => panic!("running {}: {e}", bin.display()),
    };
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
