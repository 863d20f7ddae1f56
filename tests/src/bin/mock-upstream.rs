//! `mock-upstream --listen 127.0.0.1:0 [--stream-chunks N] [--chunk-delay-ms MS]`
//!
//! Serves the mock upstream of `gateway_tests::mock_upstream` (all its dialects:
//! OpenAI, Anthropic, Gemini, Vertex AI, Bedrock; request recording off), prints
//! exactly one line `LISTENING 127.0.0.1:PORT` to stdout once it accepts
//! connections, and runs until killed.

use gateway_tests::mock_upstream::{serve, MockOptions, MockState};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

fn usage() -> ExitCode {
    eprintln!("usage: mock-upstream --listen ADDR [--stream-chunks N] [--chunk-delay-ms MS]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut listen = "127.0.0.1:0".to_string();
    let mut opts = MockOptions {
        record_requests: false,
        ..MockOptions::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let value = match inline.or_else(|| args.next()) {
            Some(v) => v,
            None => return usage(),
        };
        match key.as_str() {
            "--listen" => listen = value,
            "--stream-chunks" => match value.parse() {
                Ok(n) => opts.stream_chunks = n,
                Err(_) => return usage(),
            },
            "--chunk-delay-ms" => match value.parse() {
                Ok(n) => opts.chunk_delay_ms = n,
                Err(_) => return usage(),
            },
            _ => return usage(),
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mock-upstream: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(&listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("mock-upstream: cannot listen on {listen}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => {
                eprintln!("mock-upstream: {e}");
                return ExitCode::FAILURE;
            }
        };
        {
            let mut out = std::io::stdout().lock();
            if writeln!(out, "LISTENING {addr}")
                .and_then(|()| out.flush())
                .is_err()
            {
                return ExitCode::FAILURE;
            }
        }
        let state = Arc::new(MockState::new(&opts));
        // Keep the sender alive for ever: the mock runs until it is killed.
        let (tx, rx) = tokio::sync::watch::channel(false);
        serve(listener, state, rx).await;
        drop(tx);
        ExitCode::SUCCESS
    })
}
