//! Talking to Redis, for the state backend, quotas and health: a deadpool pool
//! over a standalone server, or a cluster client over a Redis Cluster, the
//! embedded Lua scripts (`lua/`, loaded at start, called by EVALSHA, reloaded
//! and run again on NOSCRIPT, up to `NOSCRIPT_RETRIES` times), a timeout on every call, and which node each
//! call went to: a call that gets no answer marks its node unreachable
//! (`reach`), and data-plane calls to a node so marked are refused at once.
//! When the monitor's probe finds a cluster slot on another master (a replica
//! promoted), the calls move to a new cluster connection made from the new
//! map's masters before the map is used: the old one would keep sending the
//! slot's calls to a primary that stopped answering without closing its
//! connections (frozen, partitioned), since only an answer (`MOVED`) or a
//! broken connection tells it the map changed.

pub mod error;
pub mod probe;
pub mod reach;

pub use error::{Result, StateError};
use probe::Probes;
use reach::{Node, Reach};
use redis::aio::ConnectionLike;
use redis::{Cmd, FromRedisValue, Pipeline, RedisFuture, Script, ScriptInvocation, Value};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// Every script the state backend runs; the version is part of the file name.
pub struct Scripts {
    pub consumer_put: Script,
    pub consumer_delete: Script,
    pub tenant_delete: Script,
    pub key_insert: Script,
    pub key_index: Script,
    pub key_update: Script,
    pub quota_reserve: Script,
    pub quota_settle: Script,
    pub quota_batch: Script,
    pub quota_usage: Script,
    pub ledger_read: Script,
    pub health_report: Script,
    pub busy_sync: Script,
}

pub static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    consumer_put: Script::new(include_str!("../../../lua/consumer_put.v1.lua")),
    consumer_delete: Script::new(include_str!("../../../lua/consumer_delete.v1.lua")),
    tenant_delete: Script::new(include_str!("../../../lua/tenant_delete.v1.lua")),
    key_insert: Script::new(include_str!("../../../lua/key_insert.v1.lua")),
    key_index: Script::new(include_str!("../../../lua/key_index.v2.lua")),
    key_update: Script::new(include_str!("../../../lua/key_update.v1.lua")),
    quota_reserve: Script::new(concat!(
        include_str!("../../../lua/quota_lib.v5.lua"),
        include_str!("../../../lua/quota_reserve.v5.lua")
    )),
    quota_settle: Script::new(concat!(
        include_str!("../../../lua/quota_lib.v5.lua"),
        include_str!("../../../lua/quota_settle.v5.lua")
    )),
    quota_batch: Script::new(concat!(
        include_str!("../../../lua/quota_lib.v5.lua"),
        include_str!("../../../lua/quota_batch.v5.lua")
    )),
    quota_usage: Script::new(concat!(
        include_str!("../../../lua/quota_lib.v5.lua"),
        include_str!("../../../lua/quota_usage.v5.lua")
    )),
    ledger_read: Script::new(include_str!("../../../lua/ledger_read.v1.lua")),
    health_report: Script::new(include_str!("../../../lua/health_report.v1.lua")),
    busy_sync: Script::new(include_str!("../../../lua/busy_sync.v1.lua")),
});

impl Scripts {
    fn all(&self) -> [&Script; 13] {
        [
            &self.ledger_read,
            &self.health_report,
            &self.busy_sync,
            &self.quota_reserve,
            &self.quota_settle,
            &self.quota_batch,
            &self.quota_usage,
            &self.consumer_put,
            &self.consumer_delete,
            &self.tenant_delete,
            &self.key_insert,
            &self.key_index,
            &self.key_update,
        ]
    }
}

enum Pools {
    Single(deadpool_redis::Pool),
    /// the client of the configured nodes (each connection it makes reads the
    /// slot map and follows `MOVED`/`ASK`)
    Cluster(Box<redis::cluster::ClusterClient>),
}

/// A cluster client on `nodes`: `connect` bounds each connection's set-up,
/// `answer` each reply (nothing inside the client waits longer for a node
/// that stopped answering).
fn cluster_client<T: redis::IntoConnectionInfo>(
    nodes: Vec<T>,
    connect: Duration,
    answer: Duration,
) -> redis::RedisResult<redis::cluster::ClusterClient> {
    redis::cluster::ClusterClientBuilder::new(nodes)
        .connection_timeout(connect)
        .response_timeout(answer)
        .build()
}

/// A multiplexed connection, standalone or cluster: cheap to clone, every clone
/// pipelines onto the same socket.
#[derive(Clone)]
pub enum Conn {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// How many more times a script call loads its script and runs it when the
/// retry after a NOSCRIPT answers NOSCRIPT again (flushed in between).
pub const NOSCRIPT_RETRIES: u32 = 3;

/// How long a call may take: `Fast` is `state.redis.timeout_ms` (the data plane,
/// refused at once while its node is known to be unreachable), `Slow` is for
/// admin writes and start-up work, which may wait longer and always try.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    Fast,
    Slow,
}

/// Where the connections go (also for the pub/sub listener).
pub use crate::config::Target;

pub struct RedisConn {
    pools: Pools,
    pub target: Target,
    pub prefix: String,
    fast: Duration,
    slow: Duration,
    /// which nodes answer, and (cluster) which node serves which slot
    pub reach: Reach,
    /// the monitor's own connections to each cluster node
    probes: Option<Probes>,
    /// a cluster connection's set-up may take this long
    connect: Duration,
    /// the last renewal of the cluster connection failed: try again
    renew_due: std::sync::atomic::AtomicBool,
    /// the connection every call shares (taken from the pool once; a standalone
    /// one is dropped after an error, a cluster one repairs itself and is
    /// replaced when its slots move): no pool checkout, and no PING the pool
    /// sends on each checkout, per call
    hot: std::sync::Mutex<Option<Conn>>,
    /// held by the one caller taking the next `hot` connection from the pool
    refill: tokio::sync::Mutex<()>,
    /// calls made (each one round trip: a command, a pipeline or a script)
    pub calls: std::sync::atomic::AtomicU64,
}

/// A call's connection, routing each command by the slot of its first key: it
/// notes the slot of the first command (where the call's failure is charged)
/// and, for a guarded (data-plane) call, refuses a command whose node is known
/// to be unreachable instead of sending it.
struct Routed<'a> {
    conn: Conn,
    reach: &'a Reach,
    guard: bool,
    /// the slot of the first command sent, if it had one
    slot: Option<u16>,
    sent: bool,
    /// the node a command was refused for
    refused: Option<Arc<Node>>,
}

impl Routed<'_> {
    /// Err when the command must not be sent.
    fn admit(&mut self, slot: Option<u16>) -> redis::RedisResult<()> {
        if !self.sent {
            self.sent = true;
            self.slot = slot;
        }
        if self.guard {
            if let Some(n) = self.reach.down(slot) {
                self.refused = Some(n);
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "node known to be unreachable",
                )));
            }
        }
        Ok(())
    }
}

impl ConnectionLike for Routed<'_> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self.admit(reach::cmd_slot(cmd)) {
            Ok(()) => self.conn.req_packed_command(cmd),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let slot = pipeline.cmd_iter().next().and_then(reach::cmd_slot);
        match self.admit(slot) {
            Ok(()) => self.conn.req_packed_commands(pipeline, offset, count),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}

/// Settings for [`RedisConn::new`].
pub struct ConnSettings {
    pub target: Target,
    pub pool_size: usize,
    pub timeout: Duration,
    pub prefix: String,
}

impl RedisConn {
    /// Builds the pool; no connection is made yet (Redis may be down at start).
    pub fn new(s: ConnSettings) -> std::result::Result<RedisConn, String> {
        let slow = s.timeout.max(Duration::from_secs(2));
        // a probe's connection may take a little longer than a call, not the
        // admin budget: the monitor waits for it
        let connect = s.timeout.max(Duration::from_millis(500));
        let mut pool_cfg = deadpool_redis::PoolConfig::new(s.pool_size.max(1));
        pool_cfg.timeouts.wait = Some(slow);
        pool_cfg.timeouts.create = Some(slow);
        pool_cfg.timeouts.recycle = Some(slow);
        let (reach, probes) = match &s.target {
            Target::Single(url) => {
                let addr = redis::IntoConnectionInfo::into_connection_info(url.as_str())
                    .ok()
                    .and_then(|i| probe::host_port(&i))
                    .unwrap_or_else(|| "redis".to_string());
                (Reach::single(addr), None)
            }
            Target::Cluster(urls) => (
                Reach::cluster(),
                Some(Probes::new(urls, connect, s.timeout)),
            ),
        };
        let pools = match &s.target {
            Target::Single(url) => {
                // redis-rs cuts a standalone connection's answers after 500 ms
                // and its connects after 1 s by default: the calls' own budgets
                // (`timeout_ms`, the slow one) are the limits, not those
                let conn_cfg = redis::AsyncConnectionConfig::new()
                    .set_response_timeout(Some(slow))
                    .set_connection_timeout(Some(slow));
                let manager = deadpool_redis::Manager::new_with_config(url.as_str(), conn_cfg)
                    .map_err(|e| e.to_string())?;
                let pool = deadpool_redis::Pool::builder(manager)
                    .config(pool_cfg)
                    .runtime(deadpool_redis::Runtime::Tokio1)
                    .build()
                    .map_err(|e| e.to_string())?;
                Pools::Single(pool)
            }
            Target::Cluster(urls) => Pools::Cluster(Box::new(
                cluster_client(urls.clone(), connect, slow).map_err(|e| e.to_string())?,
            )),
        };
        Ok(RedisConn {
            pools,
            target: s.target,
            prefix: s.prefix,
            fast: s.timeout,
            slow,
            reach,
            probes,
            connect,
            renew_due: std::sync::atomic::AtomicBool::new(false),
            hot: std::sync::Mutex::new(None),
            refill: tokio::sync::Mutex::new(()),
            calls: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// True while some node (the server, or any cluster master) is known to
    /// be unreachable.
    pub fn is_degraded(&self) -> bool {
        self.reach.any_down()
    }

    /// Whether the node serving hash tag `tag` is known to be unreachable.
    pub fn is_tag_down(&self, tag: &str) -> bool {
        self.reach.is_tag_down(tag)
    }

    /// How many times a node became unreachable (a change tells "some node
    /// was out since").
    pub fn outages(&self) -> u64 {
        self.reach.outages()
    }

    /// A cluster's slot map and every master's reachability, asked on the
    /// monitor's own connections (nothing for a standalone server, whose
    /// monitor call says it). When the map gives a slot to another master,
    /// the calls move to a connection made from it first; if that cannot be
    /// made yet, the map is used anyway (the calls' own connection follows
    /// `MOVED` and broken connections) and the move is tried again at the
    /// next probe.
    pub async fn probe(&self) {
        use std::sync::atomic::Ordering;
        let Some(p) = &self.probes else {
            return;
        };
        if let Some(ranges) = p.slot_map(&self.reach).await {
            if (self.reach.moves(&ranges) || self.renew_due.swap(false, Ordering::Relaxed))
                && !self.renew(p, &ranges).await
            {
                self.renew_due.store(true, Ordering::Relaxed);
            }
            self.reach.set_slots(&ranges);
        }
        p.ping_masters(&self.reach).await;
    }

    /// Replaces the calls' cluster connection with one made from the masters
    /// of `ranges` (so it reads the new slot map from them, and never waits on
    /// a node that left it); calls already sent finish on the old one. Says
    /// whether it worked.
    async fn renew(&self, probes: &Probes, ranges: &[(u16, u16, String)]) -> bool {
        let mut masters: Vec<&str> = ranges.iter().map(|r| r.2.as_str()).collect();
        masters.sort_unstable();
        masters.dedup();
        let nodes: Vec<redis::ConnectionInfo> =
            masters.iter().filter_map(|a| probes.info_for(a)).collect();
        let made = match cluster_client(nodes, self.connect, self.slow) {
            Ok(client) => tokio::time::timeout(self.slow, client.get_async_connection())
                .await
                .map_err(|_| format!("no connection within {} ms", self.slow.as_millis()))
                .and_then(|r| r.map_err(|e| e.to_string())),
            Err(e) => Err(e.to_string()),
        };
        match made {
            Ok(c) => {
                *self.hot() = Some(Conn::Cluster(c));
                tracing::info!(masters = ?masters, "state backend: Redis Cluster slots moved; calls go to a connection made from the new map");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "state backend: Redis Cluster slots moved, and no connection to the new map yet; retrying");
                false
            }
        }
    }

    fn budget(&self, b: Budget) -> Duration {
        match b {
            Budget::Fast => self.fast,
            Budget::Slow => self.slow,
        }
    }

    fn hot(&self) -> std::sync::MutexGuard<'_, Option<Conn>> {
        self.hot.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn get(&self) -> std::result::Result<Conn, String> {
        if let Some(c) = self.hot().clone() {
            return Ok(c);
        }
        // One caller at a time takes the next connection; the others wait for
        // it and share it. The calls that fail together (a stall: all those in
        // flight) would otherwise each check out one at once, the pool would
        // open a connection for each, and those would stay in it unused.
        let _one = self.refill.lock().await;
        if let Some(c) = self.hot().clone() {
            return Ok(c);
        }
        let c = match &self.pools {
            Pools::Single(p) => p
                .get()
                .await
                .map(|c| Conn::Single((*c).clone()))
                .map_err(|e| e.to_string()),
            Pools::Cluster(client) => client
                .get_async_connection()
                .await
                .map(Conn::Cluster)
                .map_err(|e| e.to_string()),
        }
        .map_err(|e| format!("no connection: {e}"))?;
        *self.hot() = Some(c.clone());
        Ok(c)
    }

    /// Runs one command, pipeline or script on a pooled connection within the
    /// budget, and tells `reach` whether the node it went to answered.
    async fn run<T, F>(&self, budget: Budget, f: F) -> Result<T>
    where
        F: AsyncFnOnce(&mut Routed<'_>) -> redis::RedisResult<T>,
    {
        use redis::{ErrorKind, ServerErrorKind};
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let guard = matches!(budget, Budget::Fast);
        // a standalone server known to be out: not even a connection attempt
        if let Some(n) = self.reach.down(None).filter(|_| guard) {
            return Err(StateError::Unavailable(format!(
                "Redis {} is unreachable",
                n.addr
            )));
        }
        let limit = self.budget(budget);
        let mut routed: Option<Routed<'_>> = None;
        let out = tokio::time::timeout(limit, async {
            let conn = self.get().await?;
            let r = routed.insert(Routed {
                conn,
                reach: &self.reach,
                guard,
                slot: None,
                sent: false,
                refused: None,
            });
            f(r).await.map_err(|e| {
                // an error reply (a script refusing its arguments, a script
                // flushed again before its retry, say) is an answer: Redis is
                // there, and this call alone failed
                let answered = matches!(
                    e.kind(),
                    ErrorKind::Server(
                        ServerErrorKind::ResponseError
                            | ServerErrorKind::NoScript
                            | ServerErrorKind::ExecAbort
                            | ServerErrorKind::CrossSlot
                            | ServerErrorKind::NoPerm
                    ) | ErrorKind::Extension
                        | ErrorKind::UnexpectedReturnType
                        | ErrorKind::Client
                );
                if answered {
                    format!("answered:{e}")
                } else {
                    e.to_string()
                }
            })
        })
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} ms", limit.as_millis())));
        let (slot, refused) = match routed {
            Some(r) => (r.slot, r.refused),
            None => (None, None),
        };
        if let Some(n) = refused {
            return Err(StateError::Unavailable(format!(
                "Redis node {} is unreachable",
                n.addr
            )));
        }
        match out {
            Ok(v) => {
                self.reach.report(slot, true, &"");
                Ok(v)
            }
            Err(e) if e.starts_with("answered:") => {
                self.reach.report(slot, true, &"");
                let e = e.trim_start_matches("answered:");
                tracing::warn!(error = %e, "Redis refused a call");
                Err(StateError::Rejected(format!("Redis: {e}")))
            }
            Err(e) => {
                // the next call starts on a fresh connection (a cluster
                // connection repairs its links to each node itself)
                if matches!(self.target, Target::Single(_)) {
                    *self.hot() = None;
                }
                self.reach.report(slot, false, &e);
                Err(StateError::Unavailable(format!("Redis: {e}")))
            }
        }
    }

    pub async fn query<T: FromRedisValue>(&self, budget: Budget, cmd: &Cmd) -> Result<T> {
        self.run(budget, async |c: &mut Routed<'_>| cmd.query_async(c).await)
            .await
    }

    pub async fn pipe<T: FromRedisValue>(&self, budget: Budget, p: &Pipeline) -> Result<T> {
        self.run(budget, async |c: &mut Routed<'_>| p.query_async(c).await)
            .await
    }

    /// EVALSHA; on NOSCRIPT (Redis restarted, failed over or flushed) the script
    /// is loaded again and the call retried. A SCRIPT FLUSH between the load and
    /// the retry answers NOSCRIPT again: loaded and retried again, up to
    /// [`NOSCRIPT_RETRIES`] times, within the call's budget.
    pub async fn script<T: FromRedisValue>(
        &self,
        budget: Budget,
        inv: &ScriptInvocation<'_>,
    ) -> Result<T> {
        self.run(budget, async |c: &mut Routed<'_>| {
            let mut again = 0;
            loop {
                match inv.invoke_async(c).await {
                    Err(e)
                        if again < NOSCRIPT_RETRIES
                            && e.kind()
                                == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                    {
                        again += 1;
                    }
                    r => return r,
                }
            }
        })
        .await
    }

    /// Loads every script (SCRIPT LOAD goes to every primary of a cluster) and
    /// says whether Redis answered.
    pub async fn load_scripts(&self) -> Result<()> {
        for s in SCRIPTS.all() {
            self.run(Budget::Slow, async |c: &mut Routed<'_>| {
                s.prepare_invoke().load_async(c).await
            })
            .await?;
        }
        Ok(())
    }

    pub async fn publish(&self, channel: &str, msg: &str) -> Result<()> {
        self.query::<i64>(Budget::Slow, redis::cmd("PUBLISH").arg(channel).arg(msg))
            .await
            .map(|_| ())
    }
}
