//! Inspecting quota leases in Redis: every reservation a replica has not
//! settled yet is a member of a lease sorted set (`<prefix>{<tag>}:qlease`),
//! scored with the time (ms) its lease ends; settled reservations leave a
//! tombstone member (`E\n...`) until their tombstone ends. See
//! `lua/README.md` ("Quotas").

use super::reply::{parse, Reply};
use super::{RedisCluster, RedisServer};

/// What can run `redis-cli ARGS...` and return its trimmed stdout.
pub trait Cli {
    fn cli(&self, args: &[&str]) -> String;
}

impl Cli for RedisServer {
    fn cli(&self, args: &[&str]) -> String {
        RedisServer::cli(self, args)
    }
}

impl Cli for RedisCluster {
    fn cli(&self, args: &[&str]) -> String {
        RedisCluster::cli(self, args)
    }
}

/// One member of a lease zset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// `<id>\n<key>\n<bucket>\n<amount>\n<gen>...` for a reservation,
    /// `E\n<id>` for a tombstone.
    pub member: String,
    /// When the lease (or tombstone) ends, ms since the epoch.
    pub until_ms: i64,
}

impl Lease {
    /// A settled reservation's marker rather than a held reservation.
    pub fn is_tombstone(&self) -> bool {
        self.member.starts_with("E\n")
    }

    /// The reservation id (the member's first line).
    pub fn id(&self) -> &str {
        self.member.split('\n').next().unwrap_or_default()
    }
}

/// The lease zsets in Redis (`KEYS *qlease*`).
pub fn lease_keys(r: &(impl Cli + ?Sized)) -> Vec<String> {
    r.cli(&["KEYS", "*qlease*"])
        .lines()
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect()
}

/// Every lease zset as (key, reservations held): its members but the
/// tombstones (`E` of ended leases, `S` of usage charged without a
/// reservation, which the usage ledger's own settlements leave too).
pub fn lease_counts(r: &(impl Cli + ?Sized)) -> Vec<(String, u64)> {
    lease_keys(r)
        .into_iter()
        .map(|k| {
            let n = leases_of(r, &k)
                .iter()
                .filter(|l| !l.is_tombstone() && !l.member.starts_with("S\n"))
                .count() as u64;
            (k, n)
        })
        .collect()
}

/// The members of lease zset `key`, in score order (read with `--no-raw`, so
/// members keep their newlines).
pub fn leases_of(r: &(impl Cli + ?Sized), key: &str) -> Vec<Lease> {
    let reply = parse(&r.cli(&["--no-raw", "ZRANGE", key, "0", "-1", "WITHSCORES"]));
    reply
        .items()
        .chunks(2)
        .map(|p| match p {
            [Reply::Str(m), Reply::Str(s)] => Lease {
                member: m.clone(),
                until_ms: s
                    .parse()
                    .unwrap_or_else(|e| panic!("lease score {s:?} of {m:?}: {e}")),
            },
            _ => panic!("lease entry {p:?} of {key} in {reply:?}"),
        })
        .collect()
}

/// Every reservation still held (tombstones left out) in any lease zset, with
/// its key.
pub fn held_reservations(r: &(impl Cli + ?Sized)) -> Vec<(String, Lease)> {
    lease_keys(r)
        .into_iter()
        .flat_map(|k| {
            leases_of(r, &k)
                .into_iter()
                .filter(|l| !l.is_tombstone())
                .map(move |l| (k.clone(), l))
        })
        .collect()
}
