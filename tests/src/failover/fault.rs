//! The faults of a failover run and how each is injected: [`Fault`], the
//! moments it recorded ([`FaultEvents`]), and [`inject`], which hurts the
//! master of a slot and waits until the cluster has healed (the old primary an
//! in-sync replica of the new one).

use super::Plan;
use crate::redis::RedisCluster;
use std::time::{Duration, Instant};
use tokio::task::block_in_place;

/// What happens to a shard's primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL; its replica is promoted after the node timeout; the killed
    /// node is started again (empty) and rejoins as a replica
    Kill,
    /// `CLUSTER FAILOVER` sent to its replica: the graceful hand-over
    Failover,
    /// SIGSTOP until its replica was promoted (and a while more), then SIGCONT
    Freeze,
    /// its replica frozen and cut off for [`Plan::lag`] (it falls that far
    /// behind, as a replica over a slow link or in a long pause would), then
    /// the primary SIGKILLed and the replica resumed: what the primary
    /// acknowledged meanwhile is lost; the killed node is restarted empty as
    /// for `Kill`
    LagKill,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Failover => "failover",
            Fault::Freeze => "freeze",
            Fault::LagKill => "lag-kill",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Fault::Kill => "primary SIGKILLed; replica promoted; old primary restarted empty",
            Fault::Failover => "`CLUSTER FAILOVER` on the replica (graceful)",
            Fault::Freeze => "primary SIGSTOPped past its replica's promotion, then SIGCONT",
            Fault::LagKill => {
                "replica cut off (SIGSTOP, replication link closed), primary SIGKILLed the lag later, \
                 replica resumed and promoted, old primary restarted empty"
            }
        }
    }
}

/// The moments of one fault, on the run's clock.
#[derive(Debug, Clone)]
pub struct FaultEvents {
    pub fault: Fault,
    /// index of the shard (0..3)
    pub shard: usize,
    pub old_primary: u16,
    pub new_primary: u16,
    /// the shard holds the `{g}` slot (the seed marker)
    pub holds_global: bool,
    /// the fault was injected
    pub at: Duration,
    /// a running node first listed the replica as the slots' master
    pub promoted: Duration,
    /// the killed node was started again / the frozen one resumed
    pub back: Option<Duration>,
    /// the old primary was an in-sync replica of the new one
    pub rejoined: Duration,
    /// `EVALSHA`s the frozen primary ran between its freeze and its rejoin
    pub stale_evalsha: Option<u64>,
    /// on the new primary at the rejoin: `NOSCRIPT` answers it gave (its
    /// script cache was empty: scripts are not replicated) and `SCRIPT`
    /// commands it ran (the gateway loading them again)
    pub noscript: u64,
    pub script_loads: u64,
}

/// Injects `fault` on the master of `slot` and waits until it is over (the
/// old primary an in-sync replica of the new one).
pub async fn inject(
    cluster: &mut RedisCluster,
    plan: &Plan,
    fault: Fault,
    slot: u16,
    epoch: Instant,
) -> FaultEvents {
    const WITHIN: Duration = Duration::from_secs(30);
    let since = |t: Instant| t.saturating_duration_since(epoch);
    let old = block_in_place(|| cluster.master_of(slot));
    let replica = block_in_place(|| cluster.replica_of(old))
        .unwrap_or_else(|| panic!("127.0.0.1:{old} has no replica"));
    let evalsha =
        |c: &RedisCluster, port| c.stat_on(port, "commandstats", "cmdstat_evalsha", "calls");
    let mut stale_before = None;
    if fault == Fault::Freeze {
        stale_before = Some(block_in_place(|| evalsha(cluster, old)));
    }
    if fault == Fault::LagKill {
        // the replica stops reading, and the primary stops sending: what the
        // kernel already holds for the replica still reaches it when it
        // resumes, what the primary acknowledges from now on never does
        block_in_place(|| {
            cluster.freeze_port(replica);
            cluster.cut_replica_links(old);
        });
        tokio::time::sleep(plan.lag).await;
    }
    let at = Instant::now();
    match fault {
        Fault::Kill => block_in_place(|| cluster.kill_port(old)),
        Fault::Failover => block_in_place(|| cluster.failover_to(replica)),
        Fault::Freeze => block_in_place(|| cluster.freeze_port(old)),
        Fault::LagKill => block_in_place(|| {
            cluster.kill_port(old);
            cluster.thaw_port(replica);
        }),
    }
    let promoted = block_in_place(|| cluster.wait_promoted(slot, old, WITHIN));
    let back = match fault {
        Fault::Kill | Fault::LagKill => {
            tokio::time::sleep(plan.restart_after).await;
            block_in_place(|| cluster.restart_port(old));
            Some(Instant::now())
        }
        Fault::Freeze => {
            tokio::time::sleep(plan.frozen_after_promotion).await;
            block_in_place(|| cluster.thaw_port(old));
            Some(Instant::now())
        }
        Fault::Failover => None,
    };
    let new_primary = block_in_place(|| cluster.master_of(slot));
    let rejoined = block_in_place(|| cluster.wait_replica(old, new_primary, WITHIN));
    let stale_evalsha =
        stale_before.map(|b| block_in_place(|| evalsha(cluster, old)).saturating_sub(b));
    let (noscript, script_loads) = block_in_place(|| {
        (
            cluster.stat_on(new_primary, "errorstats", "errorstat_NOSCRIPT", "count"),
            cluster.stat_on(new_primary, "commandstats", "cmdstat_script|load", "calls"),
        )
    });
    FaultEvents {
        fault,
        shard: 0,
        old_primary: old,
        new_primary,
        holds_global: false,
        at: since(at),
        promoted: since(promoted),
        back: back.map(since),
        rejoined: since(rejoined),
        stale_evalsha,
        noscript,
        script_loads,
    }
}
