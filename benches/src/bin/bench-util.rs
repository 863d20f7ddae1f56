//! Small helpers for `benches/run-load.sh`:
//!
//! * `free-port` prints a free TCP port on 127.0.0.1;
//! * `wait-http --url URL` polls a GET until it answers 200 (or times out);
//! * `get --url URL` prints the body of one GET (the gateway's `/metrics`);
//! * `rss --pid PID...` prints the summed VmRSS in KiB;
//! * `report --raw-dir DIR ...` turns the raw files of a run (loadgen
//!   reports, each row's meta, the Redis `INFO` and gateway `/metrics`
//!   snapshots around each run of a row with Redis) into the Markdown report
//!   (stdout) and a combined JSON file ([`gateway_benches::load_report`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use gateway_benches::load_report::{self, ReportInput};
use gateway_benches::rss_kib;
use http::header::HOST;
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

#[derive(Parser)]
#[command(about = "Helpers for the load harness")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print a free TCP port on 127.0.0.1.
    FreePort,
    /// Poll `GET URL` until it returns 200.
    WaitHttp {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 30.0)]
        timeout_s: f64,
        /// Fail early if this process exits.
        #[arg(long)]
        pid: Option<u32>,
        /// Any HTTP response counts as ready (not only 200).
        #[arg(long)]
        any_status: bool,
    },
    /// Print the body of `GET URL` (fails unless it answers 200).
    Get {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 5.0)]
        timeout_s: f64,
    },
    /// Print the summed VmRSS (KiB) of the given processes.
    Rss {
        #[arg(long = "pid", required = true)]
        pids: Vec<u32>,
    },
    /// Build the results table from the raw loadgen files.
    Report(ReportArgs),
}

#[derive(Parser)]
struct ReportArgs {
    /// Directory with `<target>-<mode>-c<N>.json` and `<target>.meta.json`.
    #[arg(long)]
    raw_dir: PathBuf,
    /// Connections of the throughput runs.
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// Connections of the second throughput runs (0: none).
    #[arg(long, default_value_t = 0)]
    connections_high: u32,
    /// The gateway's Lua scripts (`lua/`): the commands they run inside
    /// Redis are told apart from those clients send.
    #[arg(long)]
    lua_dir: Option<PathBuf>,
    /// Where to write the combined raw JSON.
    #[arg(long)]
    out_json: Option<PathBuf>,
    /// `key=value` lines for the "Run" section (repeatable, in order).
    #[arg(long = "info")]
    info: Vec<String>,
    /// Rounds of the quotas / health A/B (BENCH_AB_ROUNDS): round 1 is the
    /// table's rows, rounds 2..=N the `ab<r>.gateway-{quota,health}-<mode>-c<N>.json`
    /// throughput runs.
    #[arg(long, default_value_t = 1)]
    ab_rounds: u32,
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::FreePort => {
            let l = std::net::TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
            println!("{}", l.local_addr()?.port());
            Ok(())
        }
        Cmd::WaitHttp {
            url,
            timeout_s,
            pid,
            any_status,
        } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(wait_http(
                &url,
                Duration::from_secs_f64(timeout_s),
                pid,
                any_status,
            ))
        }
        Cmd::Get { url, timeout_s } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let uri: Uri = url.parse().context("parsing --url")?;
            let (status, body) = rt.block_on(async {
                tokio::time::timeout(Duration::from_secs_f64(timeout_s), get(&uri))
                    .await
                    .with_context(|| format!("GET {url} timed out"))?
            })?;
            if status != 200 {
                bail!("GET {url}: status {status}");
            }
            print!("{}", String::from_utf8_lossy(&body));
            Ok(())
        }
        Cmd::Rss { pids } => {
            let mut total = 0;
            for p in pids {
                total += rss_kib(p).with_context(|| format!("no VmRSS for pid {p}"))?;
            }
            println!("{total}");
            Ok(())
        }
        Cmd::Report(a) => {
            let md = load_report::report(&ReportInput {
                raw_dir: a.raw_dir,
                connections: a.connections,
                connections_high: a.connections_high,
                out_json: a.out_json,
                info: a.info,
                ab_rounds: a.ab_rounds,
                lua_dir: a.lua_dir,
            })?;
            print!("{md}");
            Ok(())
        }
    }
}

async fn get_status(uri: &Uri) -> Result<u16> {
    Ok(get(uri).await?.0)
}

async fn get(uri: &Uri) -> Result<(u16, Bytes)> {
    let authority = uri.authority().context("URL has no host")?;
    let addr = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    );
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(conn);
    let req = Request::get(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .header(HOST, authority.as_str())
        .body(Empty::<Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    driver.abort();
    Ok((status, body))
}

async fn wait_http(url: &str, timeout: Duration, pid: Option<u32>, any_status: bool) -> Result<()> {
    let uri: Uri = url.parse().context("parsing --url")?;
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no attempt");
    while Instant::now() < deadline {
        if let Some(p) = pid {
            if !Path::new(&format!("/proc/{p}")).exists() {
                bail!("process {p} exited while waiting for {url}");
            }
        }
        match tokio::time::timeout(Duration::from_secs(2), get_status(&uri)).await {
            Ok(Ok(200)) => return Ok(()),
            Ok(Ok(_)) if any_status => return Ok(()),
            Ok(Ok(s)) => last = format!("status {s}"),
            Ok(Err(e)) => last = format!("{e:#}"),
            Err(_) => last = "timed out".into(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{url} not ready after {timeout:?}: {last}")
}
