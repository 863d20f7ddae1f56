//! Loopback ports for the processes a test starts, never handed out twice
//! by one test process.

use std::collections::HashSet;
use std::sync::Mutex;

/// Ports handed out by this process, never handed out twice (tests of one binary
/// run in parallel and pick ports concurrently).
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// `n` distinct loopback ports that were free a moment ago and were not handed
/// out before by this process.
pub fn free_ports(n: usize) -> Vec<u16> {
    let mut held = Vec::new();
    let mut ports = Vec::new();
    let mut guard = match HANDED_OUT.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    let seen = guard.get_or_insert_with(HashSet::new);
    let mut tries = 0;
    while ports.len() < n {
        tries += 1;
        if tries > 1000 {
            panic!("cannot find {n} free loopback ports");
        }
        // keep every listener open until all ports are picked, so the kernel
        // cannot hand the same port out twice
        let l = match std::net::TcpListener::bind("127.0.0.1:0") {
            Ok(l) => l,
            Err(e) => panic!("cannot bind 127.0.0.1:0: {e}"),
        };
        let port = match l.local_addr() {
            Ok(a) => a.port(),
            Err(e) => panic!("local_addr: {e}"),
        };
        held.push(l);
        if seen.insert(port) {
            ports.push(port);
        }
    }
    ports
}

/// A loopback port that was free a moment ago (see [`free_ports`]).
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `127.0.0.1:PORT` with a free port.
pub fn free_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// `http://127.0.0.1:PORT/v1` where nothing listens (connections are refused).
pub fn closed_port_url() -> String {
    format!("http://127.0.0.1:{}/v1", free_port())
}
