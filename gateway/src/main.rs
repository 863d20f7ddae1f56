//! The `gateway` binary: `gateway [--config PATH]`, `gateway --check-config PATH`,
//! `gateway bill ...` (a usage report from access logs: `gateway::bill`).

use clap::Parser;
use std::cell::Cell;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

/// mimalloc: cheaper small allocations than glibc's, and frees from another thread
/// (request records freed by the exporter threads) without lock contention.
#[global_allocator]
static ALLOC: MiMalloc = MiMalloc;

/// mimalloc, asked for an alignment only when its plain allocation does not
/// already give it: every block of 16 bytes or more is 16-aligned, every
/// block 8-aligned. (Asking `mi_malloc_aligned` for every allocation, as the
/// `mimalloc` crate does, sends each one that finds its size's page empty to
/// an over-allocation: about 12 of a request's 70 allocations, measured.)
struct MiMalloc;

/// The largest alignment a plain `mi_malloc(size)` gives.
fn plain(align: usize, size: usize) -> bool {
    align <= 8 || (align <= 16 && size >= 16)
}

// SAFETY: the mimalloc functions honour the GlobalAlloc contract (a block of
// at least `size` bytes at the alignment asked, or null); `plain` asks for the
// aligned entry points whenever the plain ones would not align enough.
unsafe impl std::alloc::GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        use libmimalloc_sys::{mi_malloc, mi_malloc_aligned};
        if plain(layout.align(), layout.size()) {
            mi_malloc(layout.size()).cast()
        } else {
            mi_malloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        use libmimalloc_sys::{mi_zalloc, mi_zalloc_aligned};
        if plain(layout.align(), layout.size()) {
            mi_zalloc(layout.size()).cast()
        } else {
            mi_zalloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: std::alloc::Layout) {
        libmimalloc_sys::mi_free(ptr.cast());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        use libmimalloc_sys::{mi_realloc, mi_realloc_aligned};
        if plain(layout.align(), new_size) {
            mi_realloc(ptr.cast(), new_size).cast()
        } else {
            mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
        }
    }
}

/// mimalloc v3's `mi_option_arena_eager_commit` (its `mi_option_e` has no
/// constant for it in `libmimalloc-sys`).
#[cfg(target_os = "linux")]
const MI_OPTION_ARENA_EAGER_COMMIT: std::ffi::c_int = 4;

/// Run by the loader before `main` and before any allocation: arenas are
/// committed as their pages are first used, not eagerly. With mimalloc's
/// default (eager on Linux) the memory start-up allocates and frees (config,
/// root certificates, scripts) stayed resident: 25 MiB idle against 14 MiB.
/// A default, not a set: `MIMALLOC_ARENA_EAGER_COMMIT` still overrides it.
#[cfg(target_os = "linux")]
extern "C" fn mimalloc_options() {
    // SAFETY: sets an option's default; takes no pointers, callable before
    // mimalloc's own initialisation.
    unsafe { libmimalloc_sys::mi_option_set_default(MI_OPTION_ARENA_EAGER_COMMIT, 0) }
}

#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static MIMALLOC_OPTIONS: extern "C" fn() = mimalloc_options;

#[derive(Parser)]
#[command(
    name = "gateway",
    version,
    about = "OpenAI-compatible multi-tenant LLM gateway"
)]
struct Cli {
    /// Config file (YAML or JSON). Without it the embedded default runs (mock provider).
    #[arg(long, env = "GATEWAY_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    /// Validate a config file, print its problems, exit 0 (valid) or 1.
    // no conflict with --config: GATEWAY_CONFIG set in the environment must not break it
    #[arg(long, value_name = "PATH")]
    check_config: Option<PathBuf>,
    /// Health probe for images without a shell or curl: GET the URL (plain http, e.g.
    /// http://127.0.0.1:8001/readyz), exit 0 on a 2xx answer within 2 s, else 1.
    // (nor with --config, for the same reason)
    #[arg(long, value_name = "URL", conflicts_with = "check_config")]
    probe: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Compute the usage report (the one /admin/usage/report answers) from access-log
    /// files, priced at the prices of a file; the report on stdout, what was skipped
    /// on stderr.
    Bill(gateway::bill::Args),
}

/// Bumped when freed memory should go back to the OS (after answers were cut):
/// mimalloc purges a thread's free pages only when that thread works in it, so
/// each runtime worker gives its own back when it next goes idle.
static RELEASE: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static RELEASED: Cell<u64> = const { Cell::new(0) };
}

fn release_memory() {
    RELEASE.fetch_add(1, Ordering::Relaxed);
    collect_if_asked();
}

/// On a worker about to park: one atomic load, and a collection when asked.
fn collect_if_asked() {
    let wanted = RELEASE.load(Ordering::Relaxed);
    RELEASED.with(|done| {
        if done.get() != wanted {
            done.set(wanted);
            // SAFETY: mi_collect takes no pointers; any thread may call it.
            unsafe { libmimalloc_sys::mi_collect(true) }
        }
    });
}

fn main() -> ExitCode {
    gateway::stall::on_memory_freed(release_memory);
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    if let Some(Command::Bill(args)) = cli.command {
        return gateway::bill::run(args);
    }
    if let Some(path) = cli.check_config {
        return check(&path);
    }
    if let Some(url) = cli.probe {
        return probe(&url);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(collect_if_asked)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(gateway::run(cli.config)) {
        Ok(sinks) => {
            // Dropping what still runs records the requests cut off; write those too.
            // (what is left then is small: the final export gets 2 s)
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
            sinks.flush(std::time::Duration::from_secs(2));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    // Building the runtime config validates everything; nothing is bound or started.
    let clients = gateway::providers::ClientCache::default();
    match gateway::load(Some(path), &clients) {
        Ok((rt, _)) => {
            for w in &rt.warnings {
                println!("warning: {w}");
            }
            println!(
                "ok: {} is valid ({} providers, {} routes)",
                path.display(),
                rt.providers.len(),
                rt.routes.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            for p in &e.problems {
                println!("error: {p}");
            }
            println!(
                "{}: {} problem(s); the config is not valid",
                path.display(),
                e.problems.len()
            );
            ExitCode::FAILURE
        }
    }
}

fn probe(url: &str) -> ExitCode {
    let answer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
        .and_then(|rt| rt.block_on(probe_get(url)));
    match answer {
        Ok(status) if status.is_success() => {
            println!("ok: {url} answered {status}");
            ExitCode::SUCCESS
        }
        Ok(status) => {
            eprintln!("not ready: {url} answered {status}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("probe failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn probe_get(url: &str) -> Result<http::StatusCode, String> {
    use hyper_util::client::legacy::Client;
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("{url}: only http:// URLs (the admin listener)"));
    }
    let client = Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    match tokio::time::timeout(std::time::Duration::from_secs(2), client.get(uri)).await {
        Ok(Ok(resp)) => Ok(resp.status()),
        Ok(Err(e)) => Err(format!("{url}: {e}")),
        Err(_) => Err(format!("{url}: no answer within 2 s")),
    }
}

#[cfg(test)]
mod tests {
    use std::alloc::{GlobalAlloc, Layout};

    /// The option set before `main` holds (arenas committed lazily), unless the
    /// environment says otherwise.
    #[cfg(target_os = "linux")]
    #[test]
    fn arenas_are_committed_lazily() {
        if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_some() {
            return;
        }
        // SAFETY: reads an option; takes no pointers.
        let v = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_ARENA_EAGER_COMMIT) };
        assert_eq!(v, 0);
    }

    /// Every size and alignment a program asks for is given, whichever entry
    /// point serves it; a grown or shrunk block keeps its alignment and bytes.
    #[test]
    fn the_allocator_aligns_every_block() {
        let a = super::MiMalloc;
        for align in [1, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for size in [
                1, 3, 7, 8, 9, 15, 16, 17, 24, 40, 48, 100, 1000, 1025, 5000, 70_000,
            ] {
                let l = Layout::from_size_align(size, align).unwrap();
                // several, so some come from a fresh page and some from a used one
                let blocks: Vec<*mut u8> = (0..40)
                    .map(|i| unsafe {
                        let p = if i % 2 == 0 {
                            a.alloc(l)
                        } else {
                            a.alloc_zeroed(l)
                        };
                        assert!(
                            !p.is_null() && (p as usize).is_multiple_of(align),
                            "{size} {align}"
                        );
                        p.write_bytes(7, size);
                        p
                    })
                    .collect();
                for p in blocks {
                    unsafe {
                        let q = a.realloc(p, l, size * 3);
                        assert!(
                            !q.is_null() && (q as usize).is_multiple_of(align),
                            "{size} {align} grown"
                        );
                        assert!((0..size).all(|i| *q.add(i) == 7));
                        let big = Layout::from_size_align(size * 3, align).unwrap();
                        let r = a.realloc(q, big, size.div_ceil(2));
                        assert!(
                            !r.is_null() && (r as usize).is_multiple_of(align),
                            "{size} {align} shrunk"
                        );
                        a.dealloc(r, Layout::from_size_align(size.div_ceil(2), align).unwrap());
                    }
                }
            }
        }
    }
}
