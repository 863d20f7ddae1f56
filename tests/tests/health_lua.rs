//! Upstream health kept two ways that must agree: `lua/health_report.v1.lua`
//! (the fleet's hash in Redis, Redis time) and the in-process state machine
//! `gateway::health::rules::TargetState` (memory backend, local outlier
//! detection). Every sequence here goes through both: each event is sent to the
//! script first (through `gateway::health::store::exchange`, exactly as the
//! reporter sends it), then applied to `TargetState` at the `now` the script
//! answered, and the two states are compared field by field after every step.
//! Each sequence also checks the intended rules (README "Upstream health",
//! lua/README "Upstream health"), so the two cannot agree on something wrong.
//!
//! * passive: failures below the threshold then a success; the threshold ejects
//!   for `ejection`; failures during an ejection do not extend it; failures older
//!   than the window do not count; a repeat ejection doubles (200 -> 400 -> 800
//!   ms), starts again after 300 s of quiet, and stops at the cap (300 s, or the
//!   first ejection if longer);
//! * active: `unhealthy` failed probes eject for `hold`, renewed by each further
//!   one and ending on its own; `healthy` good probes end any ejection (passive
//!   ones too); a traffic failure resets the good-probe count;
//! * api-token targets are independent of the provider; the last error is kept;
//! * a seeded random mix of all of it (several events per call, sleeps so that
//!   windows and ejections run out), with the announcements counted;
//! * announcements: an ejection, an end of ejection and a target starting to
//!   count failures (outside an ejection) publish `h:<provider>` exactly once
//!   per call on the channel; further failures below the threshold, successes,
//!   renewals, reads and ejections running out publish nothing; the script's
//!   `changed` answer (1 began an ejection, 2 ended one) matches the Rust side;
//! * bad arguments get an error reply and change nothing, also when good events
//!   come before the bad one in the same call;
//! * the same on a 3-node Redis Cluster (`{h:<provider>}` hash tag);
//! * `lua/busy_sync.v1.lua` through `store::busy_exchange`.
//!
//! Windows and ejections are short (window 300 ms, ejection 200 ms, hold 300 ms):
//! the script takes its time from Redis `TIME`, so only real sleeps move it.
//! Sleeps only ever make more time pass than a rule needs; where an expectation
//! needs a step to come soon after the previous one, it is checked against the
//! `now` the script answered (a stalled machine makes it skip, never fail). The
//! comparison with the Rust side does not depend on timing at all. The tests
//! run one after another (a file-wide lock) to keep the CPU calm for those
//! timings.

use gateway::health::rules::{Passive, ProbeRule, Source, TargetState, CAP_MS};
use gateway::health::store::{self, Arg, FleetState};
use gateway::redis_conn::{Budget, ConnSettings, RedisConn, Target, SCRIPTS};
use gateway::state::StateError;
use gateway_tests::redis::{RedisCluster, RedisServer};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// 3 failures within 300 ms eject for 200 ms.
/// The targets' names in the hash: `p` for the provider, then the token
/// indexes as labels (the gateway uses token fingerprints; the script does not
/// care what a label is).
fn labels() -> Vec<String> {
    std::iter::once("p".to_string())
        .chain((0..8).map(|i| i.to_string()))
        .collect()
}

const P: Passive = Passive {
    failures: 3,
    window_ms: 300,
    ejection_ms: 200,
};
/// The same with a long ejection, for sequences that must not see it run out.
const P_SLOW: Passive = Passive {
    failures: 3,
    window_ms: 300,
    ejection_ms: 10_000,
};
/// 2 good probes end an ejection, 2 failed ones eject for 300 ms.
const R: ProbeRule = ProbeRule {
    healthy: 2,
    unhealthy: 2,
    hold_ms: 300,
};
/// The same with a long hold.
const R_SLOW: ProbeRule = ProbeRule {
    healthy: 2,
    unhealthy: 2,
    hold_ms: 10_000,
};

const PREFIX: &str = "gw:";
/// `<prefix>changes`, the channel the gateway announces on.
const CHANNEL: &str = "gw:changes";

/// One test at a time (see the module doc).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn sleep_ms(n: u64) {
    tokio::time::sleep(ms(n)).await;
}

// ---------------------------------------------------------------------------
// Redis

/// A standalone server or a cluster, with a `RedisConn` on it.
struct Redis {
    _server: Option<RedisServer>,
    _cluster: Option<RedisCluster>,
    urls: Vec<String>,
    conn: RedisConn,
}

async fn connect(target: Target) -> RedisConn {
    let conn = RedisConn::new(ConnSettings {
        target,
        pool_size: 2,
        timeout: Duration::from_secs(2),
        prefix: PREFIX.to_string(),
    })
    .unwrap();
    conn.load_scripts().await.unwrap();
    conn
}

async fn standalone() -> Redis {
    let server = RedisServer::start();
    let url = server.url();
    let conn = connect(Target::Single(url.clone())).await;
    Redis {
        _server: Some(server),
        _cluster: None,
        urls: vec![url],
        conn,
    }
}

async fn cluster() -> Redis {
    let cluster = RedisCluster::start();
    let urls = cluster.nodes();
    let conn = connect(Target::Cluster(urls.clone())).await;
    Redis {
        _server: None,
        _cluster: Some(cluster),
        urls,
        conn,
    }
}

fn sync_conn(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

impl Redis {
    /// The node that holds `key` (the only one when standalone).
    fn node_of(&self, key: &str) -> String {
        if self.urls.len() == 1 {
            return self.urls[0].clone();
        }
        for url in &self.urls {
            let r: redis::RedisResult<String> =
                redis::cmd("TYPE").arg(key).query(&mut sync_conn(url));
            if r.is_ok() {
                return url.clone();
            }
        }
        panic!("no node of the cluster serves {key}");
    }

    fn hash(&self, key: &str) -> BTreeMap<String, String> {
        redis::cmd("HGETALL")
            .arg(key)
            .query(&mut sync_conn(&self.node_of(key)))
            .unwrap()
    }

    fn pttl(&self, key: &str) -> i64 {
        redis::cmd("PTTL")
            .arg(key)
            .query(&mut sync_conn(&self.node_of(key)))
            .unwrap()
    }

    fn hset(&self, key: &str, field: &str, value: u64) {
        let _: i64 = redis::cmd("HSET")
            .arg(key)
            .arg(field)
            .arg(value)
            .query(&mut sync_conn(&self.node_of(key)))
            .unwrap();
    }

    /// Subscribes to [`CHANNEL`] on the node that holds `key`, where the script
    /// touching `key` publishes.
    fn listen(&self, key: &str) -> Listener {
        Listener::start(&self.node_of(key), CHANNEL)
    }
}

// ---------------------------------------------------------------------------
// Announcements

/// Each listener's stop word is its own: on a cluster a PUBLISH reaches the
/// subscribers of every node, so a shared one would stop the others too.
static LISTENERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A subscriber on one channel (plain `redis` crate pub/sub, on a thread).
struct Listener {
    url: String,
    channel: String,
    seen: Arc<Mutex<Vec<String>>>,
    marks: u64,
    stop: String,
    thread: Option<JoinHandle<()>>,
}

fn publish(url: &str, channel: &str, msg: &str) -> redis::RedisResult<i64> {
    redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .and_then(|mut c| redis::cmd("PUBLISH").arg(channel).arg(msg).query(&mut c))
}

impl Listener {
    fn start(url: &str, channel: &str) -> Listener {
        let mut con = sync_conn(url);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (ready, subscribed) = std::sync::mpsc::channel();
        let stop = format!(
            "__stop listener {}",
            LISTENERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let thread = std::thread::spawn({
            let seen = Arc::clone(&seen);
            let channel = channel.to_string();
            let stop = stop.clone();
            move || {
                let mut ps = con.as_pubsub();
                let r = ps.subscribe(&channel);
                let _ = ready.send(r.map_err(|e| e.to_string()));
                while let Ok(msg) = ps.get_message() {
                    if msg.get_channel_name() != channel {
                        continue;
                    }
                    let Ok(payload) = msg.get_payload::<String>() else {
                        continue;
                    };
                    if payload == stop {
                        break;
                    }
                    if payload.starts_with("__stop listener ") {
                        continue;
                    }
                    seen.lock().unwrap().push(payload);
                }
            }
        });
        match subscribed.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("SUBSCRIBE {channel} on {url}: {e}"),
            Err(e) => panic!("SUBSCRIBE {channel} on {url}: no answer ({e})"),
        }
        Listener {
            url: url.to_string(),
            channel: channel.to_string(),
            seen,
            marks: 0,
            stop,
            thread: Some(thread),
        }
    }

    /// Everything announced since the last call, but announcements of other
    /// providers (a cluster broadcasts every node's messages, and those of
    /// another node come when they come). Publishes a marker on the node the
    /// subscriber is on (the one the script ran on) and waits for it: what the
    /// script published came before it.
    async fn take(&mut self, provider: &str) -> Vec<String> {
        self.marks += 1;
        let mark = format!("__mark {} of {}", self.marks, self.stop);
        publish(&self.url, &self.channel, &mark).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            {
                let mut seen = self.seen.lock().unwrap();
                if let Some(i) = seen.iter().position(|m| *m == mark) {
                    let mine = format!("h:{provider}");
                    let mut out: Vec<String> = seen.drain(..=i).collect();
                    out.pop();
                    out.retain(|m| {
                        *m == mine || !(m.starts_with("h:") || m.starts_with("__mark "))
                    });
                    return out;
                }
            }
            assert!(
                Instant::now() < deadline,
                "marker {mark:?} not received within 5 s"
            );
            sleep_ms(1).await;
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if publish(&self.url, &self.channel, &self.stop).is_ok() {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Events, sent to both sides

#[derive(Clone, Copy, Debug)]
enum Kind {
    Fail(Passive),
    Success,
    ProbeOk(ProbeRule),
    ProbeFail(ProbeRule),
}

/// One event as the reporter folds it: a run of `count` of one kind.
#[derive(Clone, Debug)]
struct Ev {
    target: usize,
    kind: Kind,
    count: u32,
    err: &'static str,
}

fn fail(target: usize, count: u32, err: &'static str) -> Ev {
    fail_with(target, count, err, P)
}

fn fail_with(target: usize, count: u32, err: &'static str, p: Passive) -> Ev {
    Ev {
        target,
        kind: Kind::Fail(p),
        count,
        err,
    }
}

fn success(target: usize) -> Ev {
    Ev {
        target,
        kind: Kind::Success,
        count: 1,
        err: "",
    }
}

fn probe_ok(target: usize, count: u32, r: ProbeRule) -> Ev {
    Ev {
        target,
        kind: Kind::ProbeOk(r),
        count,
        err: "",
    }
}

fn probe_fail(target: usize, count: u32, err: &'static str, r: ProbeRule) -> Ev {
    Ev {
        target,
        kind: Kind::ProbeFail(r),
        count,
        err,
    }
}

impl Ev {
    /// The script's arguments, as `health::report::fold` builds them.
    fn arg(&self) -> Arg {
        let (kind, a, b, c) = match self.kind {
            Kind::Fail(p) => ("f", u64::from(p.failures), p.window_ms, p.ejection_ms),
            Kind::Success => ("s", 1, 1, 1),
            Kind::ProbeOk(r) => ("po", u64::from(r.healthy), 1, 1),
            Kind::ProbeFail(r) => ("pf", u64::from(r.unhealthy), r.hold_ms, 1),
        };
        Arg {
            target: self.target,
            kind,
            count: self.count,
            err: self.err.to_string(),
            a,
            b,
            c,
        }
    }

    /// Applies the event to the Rust state machine at `now` (a run of probes is
    /// that many probes). Answers what the script's `changed` says of it (1: it
    /// began an ejection, 2: it ended one), and whether it is a failure that
    /// starts the count of a target that is not ejected (the script announces
    /// that too; not a rule of `TargetState`, so derived from its state here).
    fn apply(&self, s: &mut TargetState, now: u64) -> (u8, bool) {
        let err = Some(self.err).filter(|e| !e.is_empty());
        let starts = s.fails == 0 && !s.ejected(now);
        match self.kind {
            Kind::Fail(p) => (u8::from(s.fail(now, self.count, &p, err)), starts),
            Kind::Success => {
                s.succeed();
                (0, false)
            }
            Kind::ProbeOk(r) => {
                let ended = (0..self.count).fold(false, |ch, _| s.probe(now, true, &r, err) | ch);
                (2 * u8::from(ended), false)
            }
            Kind::ProbeFail(r) => {
                let ejected =
                    (0..self.count).fold(false, |ch, _| s.probe(now, false, &r, err) | ch);
                (u8::from(ejected), starts)
            }
        }
    }
}

fn label(target: usize) -> String {
    if target == 0 {
        "p".to_string()
    } else {
        (target - 1).to_string()
    }
}

/// The fields of two states that differ.
fn differing(l: &TargetState, r: &TargetState) -> Vec<&'static str> {
    let mut d = Vec::new();
    let fields: [(&str, bool); 9] = [
        ("fails", l.fails != r.fails),
        ("recent", l.recent != r.recent),
        ("until", l.until != r.until),
        ("since", l.since != r.since),
        ("ejections", l.ejections != r.ejections),
        ("source", l.source != r.source),
        ("last_error", l.last_error != r.last_error),
        ("probe_ok", l.probe_ok != r.probe_ok),
        ("probe_ko", l.probe_ko != r.probe_ko),
    ];
    for (name, differs) in fields {
        if differs {
            d.push(name);
        }
    }
    d
}

/// What one step answered.
struct Step {
    /// Redis time of the call
    now: u64,
    /// the Rust side ejected a target or ended an ejection
    changed: bool,
    /// the script publishes once for this call: a change, or a target starting
    /// to count failures
    announce: bool,
    lua: FleetState,
}

/// One provider driven through the script and through `TargetState` side by side.
struct Twin<'a> {
    redis: &'a Redis,
    channel: &'a str,
    provider: String,
    rust: BTreeMap<usize, TargetState>,
    history: Vec<String>,
    now: u64,
}

impl<'a> Twin<'a> {
    fn new(redis: &'a Redis, provider: &str) -> Twin<'a> {
        Twin::on_channel(redis, CHANNEL, provider)
    }

    fn on_channel(redis: &'a Redis, channel: &'a str, provider: &str) -> Twin<'a> {
        Twin {
            redis,
            channel,
            provider: provider.to_string(),
            rust: BTreeMap::new(),
            history: Vec::new(),
            now: 0,
        }
    }

    fn key(&self) -> String {
        store::health_key(PREFIX, &self.provider)
    }

    /// Sends `events` in one script call, applies them to the Rust side at the
    /// `now` it answered, and compares every target.
    async fn send(&mut self, events: &[Ev]) -> Step {
        let args: Vec<Arg> = events.iter().map(Ev::arg).collect();
        let lua = store::exchange(
            &self.redis.conn,
            self.channel,
            &self.provider,
            &labels(),
            &args,
        )
        .await
        .unwrap_or_else(|e| panic!("health_report {events:?}: {e}"));
        let now = lua.now;
        assert!(
            now >= self.now,
            "Redis time went back: {now} after {}",
            self.now
        );
        let mut bits = 0;
        let mut starts = false;
        for ev in events {
            let (b, s) = ev.apply(self.rust.entry(ev.target).or_default(), now);
            bits |= b;
            starts |= s;
        }
        self.history.push(if events.is_empty() {
            format!("@{now} read")
        } else {
            format!("@{now} {events:?}")
        });
        self.now = now;
        self.compare(&lua);
        assert!(
            lua.changed == bits,
            "the script says this call changed {} (1 = began an ejection, 2 = ended one), \
             the Rust side {bits}; sequence:\n  {}",
            lua.changed,
            self.history.join("\n  ")
        );
        Step {
            now,
            changed: bits != 0,
            announce: bits != 0 || starts,
            lua,
        }
    }

    async fn read(&mut self) -> Step {
        self.send(&[]).await
    }

    /// Panics with both states and the sequence so far if the script's hash and
    /// the Rust state differ on any target.
    fn compare(&self, lua: &FleetState) {
        let none = TargetState::default();
        let targets: BTreeSet<usize> = lua
            .targets
            .keys()
            .chain(self.rust.keys())
            .copied()
            .collect();
        for t in targets {
            let l = lua.targets.get(&t).unwrap_or(&none);
            let r = self.rust.get(&t).unwrap_or(&none);
            if l != r {
                panic!(
                    "Lua and Rust disagree on provider {:?} target {} ({}) after step {} at now={}; \
                     differing fields: {:?}\n\
                     sequence:\n  {}\n\
                     Lua (health_report.v1.lua): {l:#?}\n\
                     Rust (rules::TargetState): {r:#?}",
                    self.provider,
                    t,
                    label(t),
                    self.history.len(),
                    lua.now,
                    differing(l, r),
                    self.history.join("\n  "),
                );
            }
        }
    }

    /// The state of `target` after the last step (both sides agree on it).
    fn state(&self, target: usize) -> TargetState {
        self.rust.get(&target).cloned().unwrap_or_default()
    }

    /// Writes one field of `target` straight into the hash and the same into
    /// the Rust state (to stand for time that cannot pass in a test).
    fn poke(&mut self, target: usize, field: &str, value: u64) {
        self.redis
            .hset(&self.key(), &format!("{}:{field}", label(target)), value);
        let s = self.rust.entry(target).or_default();
        match field {
            "u" => s.until = value,
            "a" => s.since = value,
            "n" => s.ejections = u32::try_from(value).unwrap(),
            other => panic!("poke: field {other} not handled"),
        }
        self.history
            .push(format!("poke {}:{field} = {value}", label(target)));
    }
}

// ---------------------------------------------------------------------------
// Sequences (each on its own provider)

/// Failures below the threshold, then a success: the count starts again.
async fn seq_reset(r: &Redis, provider: &str) {
    let mut t = Twin::new(r, provider);
    let s = t.send(&[fail(0, 1, "http 503")]).await;
    let st = t.state(0);
    assert_eq!((st.fails, st.until), (1, 0));
    assert_eq!(st.recent, [s.now]);
    assert_eq!(st.last_error.as_deref(), Some("http 503"));
    assert!(!s.changed);

    let s = t.send(&[fail(0, 1, "")]).await;
    assert_eq!(t.state(0).fails, 2);
    assert_eq!(t.state(0).recent.len(), 2);
    assert!(!t.state(0).ejected(s.now));

    t.send(&[success(0)]).await;
    let st = t.state(0);
    assert_eq!(st.fails, 0);
    assert!(st.recent.is_empty());
    assert_eq!(
        st.last_error.as_deref(),
        Some("http 503"),
        "a success keeps the last error"
    );

    // after the reset two more are still below the threshold
    let s = t.send(&[fail(0, 2, "")]).await;
    assert!(!t.state(0).ejected(s.now));
    assert_eq!(t.state(0).fails, 2);

    // order within one call is kept: a success between failures resets
    let s = t
        .send(&[success(0), fail(0, 2, ""), success(0), fail(0, 2, "")])
        .await;
    assert!(!t.state(0).ejected(s.now) && !s.changed);
    assert_eq!(t.state(0).fails, 2);

    // three single failures in one call reach it
    let s = t
        .send(&[success(0), fail(0, 1, ""), fail(0, 1, ""), fail(0, 1, "")])
        .await;
    assert!(s.changed);
    assert_eq!(t.state(0).until, s.now + P.ejection_ms);
    assert_eq!(t.state(0).fails, 3);
    t.read().await;
}

/// The threshold ejects for `ejection`; failures during it do not extend it; it
/// ends on its own.
async fn seq_eject(r: &Redis, provider: &str) {
    let mut t = Twin::new(r, provider);
    let s = t.send(&[fail(0, 2, "")]).await;
    assert!(!t.state(0).ejected(s.now) && !s.changed);
    let s = t.send(&[fail(0, 1, "http 502")]).await;
    assert!(s.changed);
    let st = t.state(0);
    assert_eq!(st.until, s.now + P.ejection_ms);
    assert_eq!(st.since, s.now);
    assert_eq!(st.ejections, 1);
    assert_eq!(st.source, Source::Passive);
    assert_eq!(st.fails, 3);
    assert!(
        st.recent.is_empty(),
        "an ejection clears the recent failures"
    );
    let until = st.until;
    let since = st.since;

    let s = t.send(&[fail(0, 3, "")]).await;
    if s.now < until {
        let st = t.state(0);
        assert!(!s.changed);
        assert_eq!((st.until, st.since, st.ejections), (until, since, 1));
        assert_eq!(st.fails, 6);
        assert!(
            st.recent.is_empty(),
            "failures during an ejection are not held against the next period"
        );
    }

    // the same within one call, on a token
    let s = t.send(&[fail(1, 3, ""), fail(1, 3, "")]).await;
    let st = t.state(1);
    assert!(s.changed);
    assert_eq!(
        (st.until, st.since, st.ejections),
        (s.now + P.ejection_ms, s.now, 1)
    );
    assert_eq!(st.fails, 6);
    assert!(st.recent.is_empty());

    // it runs out by itself
    sleep_ms(P.ejection_ms + 50).await;
    let s = t.read().await;
    assert!(!t.state(0).ejected(s.now) && !t.state(1).ejected(s.now));
    assert!(!s.changed);
}

/// Failures older than the window do not count.
async fn seq_window(r: &Redis, provider: &str) {
    let mut t = Twin::new(r, provider);
    let mut times = Vec::new();
    let s = t.send(&[fail(0, 2, "")]).await;
    times.extend([s.now, s.now]);
    sleep_ms(P.window_ms + 50).await;
    let s = t.send(&[fail(0, 1, "")]).await;
    times.push(s.now);
    assert_eq!(
        t.state(0).recent,
        [s.now],
        "the two old ones left the window"
    );
    assert_eq!(
        t.state(0).fails,
        3,
        "the consecutive count itself has no window"
    );
    assert!(!t.state(0).ejected(s.now));
    for pause in [150, 200, 0, 0] {
        sleep_ms(pause).await;
        let s = t.send(&[fail(0, 1, "")]).await;
        times.push(s.now);
        let st = t.state(0);
        if s.changed {
            // only with 3 within the window
            let within = times.iter().filter(|&&at| at + P.window_ms > s.now).count();
            assert!(within >= 3, "ejected with {within} failures in the window");
            assert_eq!(st.until, s.now + P.ejection_ms);
            break;
        }
        let expect: Vec<u64> = times
            .iter()
            .copied()
            .filter(|&at| at + P.window_ms > s.now)
            .collect();
        assert_eq!(Vec::from(st.recent.clone()), expect);
        assert!(expect.len() < 3);
    }
}

/// A repeat ejection within 300 s of the end of the previous one doubles; after
/// a longer quiet it starts again; it stops at the cap.
async fn seq_doubling(r: &Redis, provider: &str) {
    let mut t = Twin::new(r, provider);
    let mut lengths = Vec::new();
    for n in 1..=3 {
        let s = t.send(&[fail(0, 3, "http 500")]).await;
        assert!(s.changed, "ejection {n}");
        let st = t.state(0);
        assert_eq!(st.ejections, n);
        assert_eq!(st.since, s.now);
        lengths.push(st.until - s.now);
        sleep_ms(st.until - s.now + 50).await;
    }
    assert_eq!(lengths, [200, 400, 800]);

    // the last one ended more than 300 s ago: the first length again
    let s = t.read().await;
    t.poke(0, "u", s.now - CAP_MS - 1);
    t.read().await;
    let s = t.send(&[fail(0, 3, "")]).await;
    assert_eq!(
        (t.state(0).until - s.now, t.state(0).ejections),
        (P.ejection_ms, 1)
    );

    // many repeats: never longer than the cap
    t.poke(0, "u", s.now - 1);
    t.poke(0, "n", 30);
    let s = t.send(&[fail(0, 3, "")]).await;
    assert_eq!(
        (t.state(0).until - s.now, t.state(0).ejections),
        (CAP_MS, 31)
    );

    // a first ejection longer than the cap is the cap, and the repeat window
    let long = Passive {
        failures: 3,
        window_ms: 300,
        ejection_ms: 400_000,
    };
    let s = t.send(&[fail_with(1, 3, "", long)]).await;
    assert_eq!(t.state(1).until - s.now, 400_000);
    t.poke(1, "u", s.now - 350_000);
    let s = t.send(&[fail_with(1, 3, "", long)]).await;
    assert_eq!(
        (t.state(1).until - s.now, t.state(1).ejections),
        (400_000, 2)
    );
}

/// Failed probes eject for `hold`, renewed by each further one; good probes end it.
async fn seq_probes(r: &Redis, provider: &str) {
    let mut t = Twin::new(r, provider);
    let s = t.send(&[probe_fail(0, 1, "probe: http 500", R)]).await;
    let st = t.state(0);
    assert_eq!((st.probe_ko, st.fails), (1, 1));
    assert!(!st.ejected(s.now) && !s.changed);
    assert_eq!(st.last_error.as_deref(), Some("probe: http 500"));

    let s = t.send(&[probe_fail(0, 1, "", R)]).await;
    let st = t.state(0);
    assert!(s.changed);
    assert_eq!((st.until, st.since), (s.now + R.hold_ms, s.now));
    assert_eq!(st.source, Source::Active);
    assert_eq!(
        st.ejections, 0,
        "active ejections do not count for doubling"
    );
    let first = s.now;

    // renewed by the next failed probe, not announced again
    let s = t.send(&[probe_fail(0, 1, "", R)]).await;
    assert_eq!(t.state(0).until, s.now + R.hold_ms);
    if s.now < first + R.hold_ms {
        assert!(!s.changed);
        assert_eq!(t.state(0).since, first);
    }

    // it ends on its own once the probes stop failing
    sleep_ms(R.hold_ms + 50).await;
    let s = t.read().await;
    assert!(!t.state(0).ejected(s.now));

    // with a long hold: `healthy` good probes end it, at once
    let s = t.send(&[probe_fail(0, 2, "", R_SLOW)]).await;
    assert!(s.changed, "a run of failed probes in one event ejects");
    assert_eq!(t.state(0).until, s.now + R_SLOW.hold_ms);
    let fails_before = t.state(0).fails;
    let s = t.send(&[probe_ok(0, 1, R_SLOW)]).await;
    let st = t.state(0);
    // a good probe does not wipe what traffic counted
    assert_eq!((st.probe_ok, st.probe_ko, st.fails), (1, 0, fails_before));
    assert!(st.ejected(s.now) && !s.changed);
    let s = t.send(&[probe_ok(0, 1, R_SLOW)]).await;
    assert!(s.changed);
    assert_eq!(t.state(0).until, s.now, "ended: until = now");
    assert!(!t.state(0).ejected(s.now));

    // a run of good probes in one event ends it too
    let s = t.send(&[probe_fail(0, 2, "", R_SLOW)]).await;
    assert!(s.changed);
    let s = t.send(&[probe_ok(0, 2, R_SLOW)]).await;
    assert!(s.changed);
    assert_eq!(t.state(0).until, s.now);
    // good probes while not ejected change nothing more
    let s = t.send(&[probe_ok(0, 2, R_SLOW)]).await;
    assert!(!s.changed);
    assert_eq!(t.state(0).probe_ok, 4);
}

/// Good probes end a passive ejection too; failed ones take it over only when
/// they hold it longer.
async fn seq_probes_and_passive(r: &Redis, provider: &str) {
    let mut t = Twin::new(r, provider);
    let s = t.send(&[fail_with(0, 3, "", P_SLOW)]).await;
    assert!(s.changed);
    assert_eq!(t.state(0).until, s.now + P_SLOW.ejection_ms);
    let s = t.send(&[probe_ok(0, 1, R)]).await;
    assert!(t.state(0).ejected(s.now) && !s.changed);
    let s = t.send(&[probe_ok(0, 1, R)]).await;
    assert!(s.changed);
    assert_eq!(t.state(0).until, s.now);
    assert_eq!(t.state(0).source, Source::Passive);

    // the next passive ejection follows one that ended now: it doubles
    let s = t.send(&[fail_with(0, 3, "", P_SLOW)]).await;
    assert_eq!(
        (t.state(0).until - s.now, t.state(0).ejections),
        (2 * P_SLOW.ejection_ms, 2)
    );
    let until = t.state(0).until;

    // failed probes during a longer passive ejection: not extended, still passive
    let s = t.send(&[probe_fail(0, 2, "probe: timeout", R)]).await;
    assert!(!s.changed);
    assert_eq!(
        (t.state(0).until, t.state(0).source),
        (until, Source::Passive)
    );

    // during a shorter one (200 ms < hold 300 ms): extended, now active
    let s = t.send(&[fail(1, 3, "")]).await;
    let until = t.state(1).until;
    let s2 = t.send(&[probe_fail(1, 2, "", R)]).await;
    if s2.now < until {
        assert!(!s2.changed);
        assert_eq!(t.state(1).until, s2.now + R.hold_ms);
        assert_eq!(t.state(1).source, Source::Active);
        assert_eq!(t.state(1).since, s.now);
    }
}

/// A traffic failure resets the good probes in a row (not the failed ones); a
/// traffic success resets neither.
async fn seq_fail_resets_probe_ok(r: &Redis, provider: &str) {
    let mut t = Twin::new(r, provider);
    let s = t.send(&[probe_fail(0, 2, "", R_SLOW)]).await;
    assert!(s.changed);
    t.send(&[probe_ok(0, 1, R_SLOW)]).await;
    assert_eq!(t.state(0).probe_ok, 1);
    t.send(&[fail(0, 1, "http 503")]).await;
    // the two failed probes and this failure: good probes leave the count
    assert_eq!((t.state(0).probe_ok, t.state(0).fails), (0, 3));
    let s = t.send(&[probe_ok(0, 1, R_SLOW)]).await;
    assert!(
        t.state(0).ejected(s.now) && !s.changed,
        "one good probe is not two"
    );
    let s = t.send(&[probe_ok(0, 1, R_SLOW)]).await;
    assert!(s.changed && !t.state(0).ejected(s.now));

    // failed probes: a traffic failure does not reset them
    t.send(&[probe_fail(0, 1, "", R_SLOW)]).await;
    t.send(&[fail(0, 1, "")]).await;
    assert_eq!(t.state(0).probe_ko, 1);
    let s = t.send(&[probe_fail(0, 1, "", R_SLOW)]).await;
    assert!(s.changed, "the second failed probe in a row ejects");

    // a traffic success touches neither count
    t.send(&[probe_ok(0, 1, R_SLOW)]).await;
    t.send(&[success(0)]).await;
    assert_eq!((t.state(0).probe_ok, t.state(0).probe_ko), (1, 0));
}

/// Api-token targets (1.. in the state, `0`.. in the hash) and the provider (0,
/// `p`) are independent.
async fn seq_targets(r: &Redis, provider: &str) {
    let mut t = Twin::new(r, provider);
    let s = t.send(&[fail(1, 3, "http 401")]).await;
    assert!(s.changed && t.state(1).ejected(s.now));
    assert_eq!(s.lua.targets.get(&0), None, "the provider is untouched");
    assert_eq!(t.state(0), TargetState::default());

    let s = t
        .send(&[
            fail(0, 1, "http 503"),
            fail(1, 1, ""),
            fail(2, 2, "http 429"),
            success(2),
        ])
        .await;
    assert!(!s.changed);
    assert_eq!(
        (t.state(0).fails, t.state(1).fails, t.state(2).fails),
        (1, 4, 0)
    );
    assert!(!t.state(0).ejected(s.now) && !t.state(2).ejected(s.now));
    assert_eq!(t.state(2).last_error.as_deref(), Some("http 429"));

    let s = t.send(&[probe_fail(3, 2, "probe: http 403", R_SLOW)]).await;
    assert!(s.changed && t.state(3).ejected(s.now));
    assert_eq!(t.state(3).source, Source::Active);
    assert!(!t.state(0).ejected(s.now));

    // a success of the provider resets only the provider
    t.send(&[success(0)]).await;
    assert_eq!((t.state(0).fails, t.state(1).fails), (0, 4));

    let h = r.hash(&t.key());
    for f in ["p:f", "0:u", "1:e", "2:u", "2:s"] {
        assert!(h.contains_key(f), "{f} missing from {h:?}");
    }
    assert!(!h.contains_key("p:u"), "{h:?}");
}

/// The last error text is kept until another one replaces it.
async fn seq_last_error(r: &Redis, provider: &str) {
    let mut t = Twin::new(r, provider);
    let last = |t: &Twin, target| t.state(target).last_error;
    t.send(&[fail(0, 1, "http 503")]).await;
    t.send(&[fail(0, 1, "")]).await;
    assert_eq!(last(&t, 0).as_deref(), Some("http 503"));
    t.send(&[success(0)]).await;
    t.send(&[probe_ok(0, 1, R)]).await;
    assert_eq!(last(&t, 0).as_deref(), Some("http 503"));
    t.send(&[probe_fail(0, 1, "probe: connect error", R)]).await;
    assert_eq!(last(&t, 0).as_deref(), Some("probe: connect error"));
    t.send(&[fail(0, 1, "stream cut — ünïcode, a:b,c")]).await;
    assert_eq!(last(&t, 0).as_deref(), Some("stream cut — ünïcode, a:b,c"));
    // the last one of a call wins
    t.send(&[
        fail(0, 1, "first"),
        fail(1, 1, "token"),
        fail(0, 1, "second"),
    ])
    .await;
    assert_eq!(last(&t, 0).as_deref(), Some("second"));
    assert_eq!(last(&t, 1).as_deref(), Some("token"));
    // it survives an ejection and its end
    let s = t
        .send(&[success(0), probe_ok(0, 2, R), fail(0, 3, "")])
        .await;
    assert!(s.changed && t.state(0).ejected(s.now));
    t.send(&[probe_ok(0, 2, R)]).await;
    assert_eq!(last(&t, 0).as_deref(), Some("second"));
    assert_eq!(last(&t, 2), None);
}

/// A small deterministic generator for the random mix.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[derive(Default, Debug)]
struct Seen {
    steps: u64,
    changes: u64,
    passive: u64,
    active: u64,
    doubled: u64,
    ended_by_probe: u64,
}

/// A seeded random mix of every event on three targets, several per call, with
/// sleeps that let windows, ejections and holds run out; compared after every
/// call, and the announcements counted against the Rust side's changes.
async fn seq_random(r: &Redis, provider: &str, seed: u64, steps: usize) -> Seen {
    const ERRS: [&str; 5] = ["", "", "http 503", "connect error", "probe: http 500"];
    let mut rng = Lcg(seed);
    let mut t = Twin::new(r, provider);
    let mut l = r.listen(&t.key());
    let mut seen = Seen::default();
    for _ in 0..steps {
        if rng.below(100) < 8 {
            sleep_ms(20 + rng.below(150)).await;
        }
        let n = if rng.below(10) == 0 {
            0
        } else {
            1 + rng.below(3)
        };
        let mut events = Vec::new();
        for _ in 0..n {
            let target = usize::try_from(rng.below(3)).unwrap();
            let err = ERRS[usize::try_from(rng.below(5)).unwrap()];
            let roll = rng.below(100);
            events.push(if roll < 45 {
                let count = if rng.below(3) == 0 { 2 } else { 1 };
                fail(target, count, err)
            } else if roll < 62 {
                success(target)
            } else if roll < 80 {
                probe_ok(target, 1 + u32::from(rng.below(4) == 0), R)
            } else {
                probe_fail(target, 1 + u32::from(rng.below(4) == 0), err, R)
            });
        }
        let before: Vec<TargetState> = (0..3).map(|i| t.state(i)).collect();
        let s = t.send(&events).await;
        let got = l.take(provider).await;
        let want = if s.announce {
            vec![format!("h:{provider}")]
        } else {
            Vec::new()
        };
        assert_eq!(
            got,
            want,
            "announcements after {events:?} at {} (expected from the Rust side: {})\nsequence:\n  {}",
            s.now,
            s.announce,
            t.history.join("\n  ")
        );
        seen.steps += 1;
        seen.changes += u64::from(s.changed);
        for (i, b) in before.iter().enumerate() {
            let a = t.state(i);
            if a.since != b.since && a.ejected(s.now) {
                match a.source {
                    Source::Passive => seen.passive += 1,
                    Source::Active => seen.active += 1,
                }
                if a.source == Source::Passive && a.ejections > 1 {
                    seen.doubled += 1;
                }
            }
            if b.ejected(s.now) && a.until == s.now {
                seen.ended_by_probe += 1;
            }
        }
    }
    seen
}

/// Announcements: exactly one `h:<provider>` per ejection or end of one, nothing
/// otherwise.
async fn announcements(r: &Redis, provider: &str) {
    let mut t = Twin::new(r, provider);
    let mut l = r.listen(&t.key());
    let one = vec![format!("h:{provider}")];
    let none: Vec<String> = Vec::new();

    macro_rules! step {
        ($events:expr, $want:expr, $what:expr) => {{
            let s = t.send($events).await;
            let got = l.take(provider).await;
            assert_eq!(got, $want, "{}", $what);
            assert_eq!(got.len(), usize::from(s.announce), "{}: Rust side", $what);
            s
        }};
    }

    step!(&[], none, "a read");
    let s = step!(
        &[fail(0, 1, "http 503")],
        one,
        "a first failure: the count leaves zero"
    );
    assert_eq!(s.lua.changed, 0);
    step!(&[fail(0, 1, "")], none, "a second one, below the threshold");
    step!(&[success(0)], none, "a success");
    step!(&[success(0)], none, "a success with nothing to reset");
    step!(
        &[fail_with(0, 1, "", P_SLOW)],
        one,
        "counting again after the success"
    );
    let s = step!(&[fail_with(0, 2, "", P_SLOW)], one, "a passive ejection");
    assert_eq!(s.lua.changed, 1);
    step!(
        &[fail_with(0, 2, "", P_SLOW)],
        none,
        "failures during the ejection"
    );
    step!(&[], none, "a read while ejected");
    step!(
        &[probe_ok(0, 1, R_SLOW)],
        none,
        "one good probe (resets the count, still ejected)"
    );
    step!(
        &[fail_with(0, 1, "", P_SLOW)],
        none,
        "a failure while ejected: the count leaves zero, the target is out"
    );
    step!(&[probe_ok(0, 1, R_SLOW)], none, "one good probe again");
    let s = step!(&[probe_ok(0, 1, R_SLOW)], one, "the end of the ejection");
    assert_eq!(s.lua.changed, 2);
    step!(&[], none, "a read after it");
    step!(
        &[probe_fail(0, 2, "probe: http 500", R_SLOW)],
        one,
        "an active ejection (and its count leaving zero: one message)"
    );
    step!(
        &[probe_fail(0, 1, "", R_SLOW)],
        none,
        "its renewal by a failed probe"
    );
    step!(&[probe_ok(0, 2, R_SLOW)], one, "the end of it");
    step!(
        &[success(0)],
        none,
        "a traffic success clears the count (good probes do not)"
    );
    step!(
        &[probe_fail(0, 1, "", R_SLOW)],
        one,
        "a failed probe below `unhealthy` starts the count"
    );
    step!(&[success(0)], none, "a success");
    step!(
        &[fail_with(1, 3, "http 401", P_SLOW)],
        one,
        "a token ejected (announced under the provider's name)"
    );
    // an ejection and the end of another in one call: one message
    let s = step!(
        &[fail_with(2, 3, "", P_SLOW), probe_ok(1, 2, R_SLOW)],
        one,
        "two changes in one call"
    );
    assert_eq!(s.lua.changed, 3);
    // an ejection that runs out by itself is nobody's event
    let s = step!(&[fail(3, 3, "")], one, "a short passive ejection");
    sleep_ms(P.ejection_ms + 50).await;
    let s2 = step!(&[], none, "a read once it ran out");
    assert!(t.state(3).ejected(s.now) && !t.state(3).ejected(s2.now));

    // no channel: no announcement; another channel: not on this one
    for (channel, other) in [("", "quiet"), ("other:changes", "elsewhere")] {
        let mut q = Twin::on_channel(r, channel, &format!("{provider}-{other}"));
        let s = q.send(&[fail(0, 3, "")]).await;
        assert!(s.changed);
        assert_eq!(l.take(&q.provider).await, none, "channel {channel:?}");
    }
}

// ---------------------------------------------------------------------------
// Tests: the conformance sequences on a standalone server

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_threshold_then_success_resets() {
    let _serial = SERIAL.lock().await;
    let r = standalone().await;
    seq_reset(&r, "p1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threshold_ejects_and_failures_during_it_do_not_extend_it() {
    let _serial = SERIAL.lock().await;
    let r = standalone().await;
    seq_eject(&r, "p1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_older_than_the_window_do_not_count() {
    let _serial = SERIAL.lock().await;
    let r = standalone().await;
    seq_window(&r, "p1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeat_ejections_double_and_stop_at_the_cap() {
    let _serial = SERIAL.lock().await;
    let r = standalone().await;
    seq_doubling(&r, "p1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_eject_renew_and_end() {
    let _serial = SERIAL.lock().await;
    let r = standalone().await;
    seq_probes(&r, "p1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_end_a_passive_ejection() {
    let _serial = SERIAL.lock().await;
    let r = standalone().await;
    seq_probes_and_passive(&r, "p1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traffic_failure_resets_the_good_probes() {
    let _serial = SERIAL.lock().await;
    let r = standalone().await;
    seq_fail_resets_probe_ok(&r, "p1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_targets_are_independent_of_the_provider() {
    let _serial = SERIAL.lock().await;
    let r = standalone().await;
    seq_targets(&r, "p1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_error_is_kept() {
    let _serial = SERIAL.lock().await;
    let r = standalone().await;
    seq_last_error(&r, "p1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_mix_agrees_and_announces_each_change_once() {
    let _serial = SERIAL.lock().await;
    let r = standalone().await;
    let mut total = Seen::default();
    for seed in [1, 2, 3] {
        let s = seq_random(&r, &format!("mix{seed}"), seed, 250).await;
        eprintln!("seed {seed}: {s:?}");
        total.steps += s.steps;
        total.changes += s.changes;
        total.passive += s.passive;
        total.active += s.active;
        total.doubled += s.doubled;
        total.ended_by_probe += s.ended_by_probe;
    }
    // the mix did reach every kind of change
    assert!(
        total.passive > 0 && total.active > 0 && total.doubled > 0 && total.ended_by_probe > 0,
        "{total:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejections_and_their_ends_are_announced_once() {
    let _serial = SERIAL.lock().await;
    let r = standalone().await;
    announcements(&r, "p1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_create_nothing_and_reports_set_a_ttl() {
    let _serial = SERIAL.lock().await;
    let r = standalone().await;
    let mut t = Twin::new(&r, "p1");
    let s = t.read().await;
    assert!(s.lua.targets.is_empty() && s.now > 0);
    assert_eq!(
        r.pttl(&t.key()),
        -2,
        "a read of an unknown provider creates no key"
    );
    t.send(&[fail(0, 1, "")]).await;
    let ttl = r.pttl(&t.key());
    assert!(
        (86_000_000..=86_400_000).contains(&ttl),
        "ttl {ttl} after a report"
    );
}

// ---------------------------------------------------------------------------
// Bad arguments

/// `health_report` with raw keys and arguments.
async fn raw(r: &Redis, keys: &[&str], args: &[&str]) -> Result<redis::Value, StateError> {
    let mut inv = SCRIPTS.health_report.prepare_invoke();
    for k in keys {
        inv.key(*k);
    }
    for a in args {
        inv.arg(*a);
    }
    r.conn.script::<redis::Value>(Budget::Fast, &inv).await
}

/// The call got an error reply naming `script` and saying `want` (the `redis`
/// crate quotes the first word of an error: `"health_report:": bad event`).
fn rejected(what: &str, r: Result<impl std::fmt::Debug, StateError>, script: &str, want: &str) {
    match r {
        Err(StateError::Rejected(e)) => assert!(
            e.contains(script) && e.contains(want),
            "{what}: {e:?} does not say {script}: {want}"
        ),
        other => panic!("{what}: expected an error reply saying {want:?}, got {other:?}"),
    }
}

fn arg(kind: &'static str, count: u32, err: &str, a: u64) -> Arg {
    Arg {
        target: 0,
        kind,
        count,
        err: err.to_string(),
        a,
        b: 300,
        c: 200,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_get_an_error_reply_and_change_nothing() {
    let _serial = SERIAL.lock().await;
    let r = standalone().await;
    let mut t = Twin::new(&r, "p1");
    t.send(&[fail(0, 1, "http 503"), fail(1, 2, "http 401")])
        .await;
    let key = t.key();
    let before = r.hash(&key);
    let mut l = r.listen(&key);
    let k = key.as_str();
    let ev = ["p", "f", "3", "", "3", "300", "200"];
    let with = |head: &[&'static str], tail: &[&'static str]| -> Vec<&'static str> {
        head.iter().chain(tail).copied().collect()
    };
    let cases: Vec<(&str, Vec<&str>, Vec<&str>, &str)> = vec![
        (
            "one event announced, 6 arguments",
            vec![k],
            with(&[CHANNEL, "h:p1", "1"], &ev[..6]),
            "bad arguments",
        ),
        (
            "one event announced, 8 arguments",
            vec![k],
            with(&[CHANNEL, "h:p1", "1"], &with(&ev, &["x"])),
            "bad arguments",
        ),
        (
            "two events announced, one given",
            vec![k],
            with(&[CHANNEL, "h:p1", "2"], &ev),
            "bad arguments",
        ),
        (
            "no events announced, one given",
            vec![k],
            with(&[CHANNEL, "h:p1", "0"], &ev),
            "bad arguments",
        ),
        (
            "event count not a number",
            vec![k],
            with(&[CHANNEL, "h:p1", "one"], &ev),
            "bad arguments",
        ),
        (
            "negative event count",
            vec![k],
            vec![CHANNEL, "h:p1", "-1"],
            "bad arguments",
        ),
        (
            "no event count",
            vec![k],
            vec![CHANNEL, "h:p1"],
            "bad arguments",
        ),
        ("no arguments", vec![k], vec![], "bad arguments"),
        (
            "no key",
            vec![],
            with(&[CHANNEL, "h:p1", "1"], &ev),
            "bad arguments",
        ),
        (
            "two keys",
            vec![k, "gw:{h:p1}:other"],
            with(&[CHANNEL, "h:p1", "1"], &ev),
            "bad arguments",
        ),
        (
            "count not a number",
            vec![k],
            vec![CHANNEL, "h:p1", "1", "p", "f", "x", "", "3", "300", "200"],
            "bad event",
        ),
        (
            "window not a number",
            vec![k],
            vec![CHANNEL, "h:p1", "1", "p", "f", "3", "", "3", "", "200"],
            "bad event",
        ),
        (
            "negative count",
            vec![k],
            vec![CHANNEL, "h:p1", "1", "p", "f", "-3", "", "3", "300", "200"],
            "bad event",
        ),
    ];
    for (what, keys, args, want) in cases {
        rejected(what, raw(&r, &keys, &args).await, "health_report", want);
        assert_eq!(r.hash(&key), before, "{what} changed the hash");
    }
    let exchanges: [(&str, Arg, &str); 4] = [
        ("unknown kind", arg("zz", 1, "", 3), "unknown event kind"),
        ("count 0", arg("f", 0, "", 3), "bad event"),
        (
            "count 0 with an error text",
            arg("f", 0, "boom", 3),
            "bad event",
        ),
        ("threshold 0", arg("pf", 1, "", 0), "bad event"),
    ];
    for (what, a, want) in exchanges {
        rejected(
            what,
            store::exchange(&r.conn, CHANNEL, "p1", &labels(), &[a]).await,
            "health_report",
            want,
        );
        assert_eq!(r.hash(&key), before, "{what} changed the hash");
    }
    assert!(!r.conn.is_degraded(), "an error reply is not an outage");
    assert_eq!(l.take("p1").await, Vec::<String>::new());
    // the script and the connection still work, and the state is what it was
    t.read().await;
    let s = t.send(&[fail(0, 2, "")]).await;
    assert!(s.changed);
    assert_eq!(l.take("p1").await, vec!["h:p1".to_string()]);
}

/// An event the script refuses after others in the same call: it answers an
/// error, so nothing of the call should stay. The script validates each event
/// as it gets to it, so what came before stays (here an ejection, never
/// announced, and the reporter counts the whole call as failed). The gateway
/// never sends such an event (`report::fold` makes count >= 1, a >= 1 and
/// known kinds), hence low stakes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_event_after_good_ones_changes_nothing() {
    let _serial = SERIAL.lock().await;
    let r = standalone().await;
    let key = store::health_key(PREFIX, "p1");
    let mut l = r.listen(&key);
    let e = store::exchange(
        &r.conn,
        CHANNEL,
        "p1",
        &labels(),
        &[arg("f", 3, "", 3), arg("f", 0, "", 3)],
    )
    .await;
    rejected("a good event then count 0", e, "health_report", "bad event");
    assert_eq!(
        r.hash(&key),
        BTreeMap::new(),
        "the hash after a refused call"
    );
    assert_eq!(l.take("p1").await, Vec::<String>::new());
}

/// An unknown kind carrying an error text is refused: nothing of it should
/// stay. The script writes `t:e` before it looks at the kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kind_with_an_error_text_changes_nothing() {
    let _serial = SERIAL.lock().await;
    let r = standalone().await;
    let key = store::health_key(PREFIX, "p1");
    let e = store::exchange(
        &r.conn,
        CHANNEL,
        "p1",
        &labels(),
        &[arg("zz", 1, "boom", 3)],
    )
    .await;
    rejected("unknown kind", e, "health_report", "unknown event kind");
    assert_eq!(
        r.hash(&key),
        BTreeMap::new(),
        "the hash after a refused call"
    );
}

// ---------------------------------------------------------------------------
// Redis Cluster

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_agrees_and_announces() {
    let _serial = SERIAL.lock().await;
    let r = cluster().await;
    // the key of a provider hashes by {h:<provider>}
    let slot = |k: &str| -> i64 {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(k)
            .query(&mut sync_conn(&r.urls[0]))
            .unwrap()
    };
    for p in ["c1", "c2", "c3"] {
        assert_eq!(slot(&store::health_key(PREFIX, p)), slot(&format!("h:{p}")));
    }
    let nodes: BTreeSet<String> = ["c1", "c2", "c3", "c4", "c5", "c6"]
        .iter()
        .map(|p| r.node_of(&store::health_key(PREFIX, p)))
        .collect();
    assert!(nodes.len() >= 2, "every provider on one node: {nodes:?}");

    seq_reset(&r, "c1").await;
    seq_eject(&r, "c2").await;
    seq_probes_and_passive(&r, "c3").await;
    announcements(&r, "c4").await;
    let s = seq_random(&r, "c5", 7, 120).await;
    assert!(s.changes > 0, "{s:?}");
    busy(&r).await;
}

// ---------------------------------------------------------------------------
// busy_sync

async fn busy_of(r: &Redis, replica: &str, counts: &[(&str, i64)]) -> HashMap<String, i64> {
    let counts: Vec<(Arc<str>, i64)> = counts.iter().map(|(p, n)| (Arc::from(*p), *n)).collect();
    store::busy_exchange(&r.conn, replica, &counts, 200)
        .await
        .unwrap_or_else(|e| panic!("busy_sync as {replica}: {e}"))
}

fn sums(pairs: &[(&str, i64)]) -> HashMap<String, i64> {
    pairs.iter().map(|(p, n)| (p.to_string(), *n)).collect()
}

fn redis_time_ms(r: &Redis, key: &str) -> u64 {
    let (s, us): (u64, u64) = redis::cmd("TIME")
        .query(&mut sync_conn(&r.node_of(key)))
        .unwrap();
    s * 1000 + us / 1000
}

async fn busy(r: &Redis) {
    let key = format!("{PREFIX}{{busy}}:inflight");
    assert_eq!(busy_of(r, "r1", &[("a", 3), ("b", 1)]).await, sums(&[]));
    assert_eq!(
        busy_of(r, "r2", &[("a", 2), ("c", 5)]).await,
        sums(&[("a", 3), ("b", 1)])
    );
    assert_eq!(
        busy_of(r, "r1", &[("a", 3), ("b", 1)]).await,
        sums(&[("a", 2), ("c", 5)]),
        "r1 sees r2 only, not itself"
    );
    assert_eq!(
        busy_of(r, "r3", &[("a", 1)]).await,
        sums(&[("a", 5), ("b", 1), ("c", 5)])
    );
    // a zero count removes the field; so does leaving a provider out
    assert_eq!(
        busy_of(r, "r1", &[("a", 4), ("b", 0)]).await,
        sums(&[("a", 3), ("c", 5)])
    );
    assert_eq!(busy_of(r, "r2", &[("a", 2)]).await, sums(&[("a", 5)]));
    let h = r.hash(&key);
    assert!(!h.contains_key("r1|b") && !h.contains_key("r2|c"), "{h:?}");
    assert_eq!(h.get("r1|a").map(String::as_str), Some("4"), "{h:?}");
    assert_eq!(busy_of(r, "r3", &[("a", 1)]).await, sums(&[("a", 6)]));
    let ttl = r.pttl(&key);
    assert!(ttl > 0 && ttl <= 60_000, "ttl {ttl}");

    // r3 goes silent; r1 and r2 keep writing
    sleep_ms(150).await;
    busy_of(r, "r2", &[("a", 2)]).await;
    sleep_ms(100).await;
    let r2_wrote: u64 = r.hash(&key)["r2|"].parse().unwrap();
    // r2 surely still counts if Redis time after the call is within stale_ms of
    // its write (on a stalled machine it may not: then only r3 is checked)
    let r2_fresh = |after: u64| after < r2_wrote + 200;
    let got = busy_of(r, "r1", &[("a", 4)]).await;
    if r2_fresh(redis_time_ms(r, &key)) {
        assert_eq!(got, sums(&[("a", 2)]), "r3 silent for over 200 ms");
    } else {
        assert!(got.get("a").copied().unwrap_or(0) <= 2, "{got:?}");
    }
    let h = r.hash(&key);
    assert!(
        !h.contains_key("r3|a") && !h.contains_key("r3|"),
        "a silent replica's fields are removed: {h:?}"
    );
    // r3 comes back and counts again
    busy_of(r, "r3", &[("a", 7)]).await;
    let got = busy_of(r, "r1", &[("a", 4)]).await;
    if r2_fresh(redis_time_ms(r, &key)) {
        assert_eq!(got, sums(&[("a", 9)]));
    } else {
        assert!(got["a"] >= 7, "{got:?}");
    }

    // a bad replica id is refused
    for bad in ["", "r|1"] {
        let e = store::busy_exchange(&r.conn, bad, &[], 200).await;
        rejected(&format!("replica {bad:?}"), e, "busy_sync", "bad arguments");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_counts_are_shared_and_silent_replicas_drop_out() {
    let _serial = SERIAL.lock().await;
    let r = standalone().await;
    busy(&r).await;
}
