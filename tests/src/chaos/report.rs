//! The chaos report: one table per policy, a row per fault, each promise's
//! figure with PASS or FAIL, and what explains the figures under it.

use super::judge::{fmt, Cell, PolicyResult};
use super::spec::{quotas, Strategy, REDIS_TIMEOUT_MS, REPLICAS};
use super::{Plan, Policy};
use std::fmt::Write;
use std::time::Duration;

pub struct Report {
    pub plan: Plan,
    pub policies: Vec<PolicyResult>,
    pub wall: Duration,
}

/// Where and how the run was made, for the report's head.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub title: String,
    pub command: String,
    pub commit: String,
    pub build: String,
    pub machine: String,
}

impl Report {
    /// Every promise of every fault under every policy held.
    pub fn pass(&self) -> bool {
        self.policies.iter().all(PolicyResult::pass)
    }

    /// The promises broken, one line each.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.policies {
            for r in p.rows.iter().filter(|r| !r.pass()) {
                let names = [
                    "errors",
                    "tokens over the limit",
                    "requests over the limit",
                    "local shares",
                    "recovery",
                    "usage settled",
                    "panics",
                    "answers",
                ];
                let broken: Vec<String> = r
                    .cells()
                    .iter()
                    .zip(names)
                    .filter(|(c, _)| c.pass == Some(false))
                    .map(|(c, n)| format!("{n} ({})", c.text))
                    .collect();
                out.push(format!(
                    "{} / {}: {}; {}",
                    p.policy.name(),
                    r.fault.id(),
                    broken.join(", "),
                    r.details.join("; ")
                ));
            }
        }
        out
    }

    pub fn markdown(&self, ctx: &Context) -> String {
        let mut s = String::new();
        let plan = &self.plan;
        let _ = writeln!(s, "# {}\n", ctx.title);
        let verdict = if self.pass() {
            "every promise held".to_string()
        } else {
            format!("{} promise(s) broken", self.failures().len())
        };
        let _ = writeln!(
            s,
            "`{}` — {}, wall time {:.0} s.\n",
            ctx.command,
            verdict,
            self.wall.as_secs_f64()
        );
        let _ = writeln!(
            s,
            "Commit {}, {} build, {}. {} replicas on one `redis-server` (append-only file, fsync every second) \
             reached through a TCP proxy that injects the network faults, the mock upstream, the test \
             balancer in front (it follows `/readyz`); {} client tasks (JSON and streamed chats, \
             prompts of 40-400 bytes, `max_tokens` 16, {} ms between requests ±50%), \
             `state.redis.timeout_ms` {REDIS_TIMEOUT_MS}, `quota_lease_s` {}. Each fault: {:.1} s of normal \
             traffic, the fault for {:.1} s, {:.1} s to recover.\n",
            ctx.commit,
            ctx.build,
            ctx.machine,
            REPLICAS,
            plan.clients,
            plan.think.as_millis(),
            plan.lease.as_secs(),
            plan.lead_in.as_secs_f64(),
            plan.fault.as_secs_f64(),
            plan.recovery.as_secs_f64(),
        );
        let limits: Vec<String> = quotas()
            .iter()
            .map(|q| {
                let unit = match q.strategy {
                    Strategy::Tokens => "tokens",
                    Strategy::Requests => "requests",
                };
                format!("`{}` {} {unit}", q.name, fmt(q.limit))
            })
            .collect();
        let _ = writeln!(
            s,
            "Quotas pressed (per {} s sliding window): {}.\n",
            plan.window.as_secs(),
            limits.join(", ")
        );
        s.push_str(COLUMNS);
        for p in &self.policies {
            let _ = writeln!(
                s,
                "\n## `on_redis_error: {}` — {}\n",
                p.policy.name(),
                if p.pass() { "PASS" } else { "FAIL" }
            );
            let _ = writeln!(
                s,
                "{} requests in {:.0} s; tokens served {} and settled {} over the whole run (warm-up included).\n",
                fmt(p.requests as u64),
                p.seconds,
                fmt(p.totals.0),
                fmt(p.totals.1)
            );
            s.push_str("| fault | answers 200 / 429 / 503 quota / other | errors beyond the promise | tokens over a limit, during / after | requests over a limit, during / after | local share excess | recovery | tokens served = settled | panics |\n");
            s.push_str("|---|---|---|---|---|---|---|---|---|\n");
            for r in &p.rows {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    r.fault.describe(),
                    cell(&r.answers),
                    cell(&r.errors),
                    cell(&r.tokens_over),
                    cell(&r.requests_over),
                    cell(&r.local_shares),
                    cell(&r.recovery),
                    cell(&r.usage),
                    cell(&r.panics),
                );
            }
            let notes: Vec<String> = p
                .rows
                .iter()
                .filter(|r| !r.details.is_empty())
                .map(|r| format!("- **{}**: {}", r.fault.id(), r.details.join("; ")))
                .collect();
            if !notes.is_empty() {
                s.push('\n');
                s.push_str(&notes.join("\n"));
                s.push('\n');
            }
            s.push_str(promise_of(p.policy));
        }
        s
    }
}

fn cell(c: &Cell) -> String {
    match c.pass {
        None => c.text.clone(),
        Some(true) => format!("{} PASS", c.text),
        Some(false) => format!("**{} FAIL**", c.text),
    }
}

const COLUMNS: &str = "\
How to read the tables (tests/src/chaos/judge.rs has the rules):

- *answers*: requests that ended between the fault's start and the end of the recovery time, by answer.
- *errors beyond the promise*: answers other than 200 and 429 the fault does not explain: only 503 \
`quota_unavailable` under `fail_closed` while Redis is out, the upstream's 500 / 504 / cut streams while \
it fails, and no answer for requests in flight on a SIGKILLed replica are explained.
- *over a limit*: the most any sliding window ending during the fault / after it held beyond a quota's \
limit, from the usage the answers reported (a window surely holds a request sent after its start whose \
head came before its end). The promise: what Redis admitted never pushes a window over the limit \
(+ one request's cost for tokens, exact for requests), counting the outage's usage; only usage admitted \
without Redis that had not reached Redis when it admitted its last request in the window may add to it \
(admitted after it, or still running then: such a request is charged when it ends; `local`: each \
replica's share; `fail_open`: anything), and what a SIGKILLed replica served without settling it \
(its reservations go back when their leases end); or, for a window holding usage admitted without \
Redis, the README's bound for the first window after an outage: max(limit, that usage) + one request \
when the replicas see Redis return together, the limit + that usage + one request when one sees it later. \
Under `fail_closed`, nothing; `/admin/usage` sampled every second must agree.
- *local share excess*: the most one replica admitted on its own in a window beyond `limit / 3`.
- *recovery*: from the end of the fault to the first second after which every answer is a whole 200 or \
a 429; it must come within the recovery time.
- *tokens served = settled*: for the requests sent during the lead-in, the fault and the recovery, the \
usage the answers reported (a cut stream's charged estimate from the access log) against what Redis \
settled for them (`/admin/usage` of an accounting quota keyed by a header naming the phase); requests \
are compared the same way. Only what a Redis restarted without data forgot, and what a SIGKILLed \
replica served in its last second, may be missing (\"by design\").
- *panics*: lines with `panicked` in the replicas' stderr.
";

fn promise_of(p: Policy) -> &'static str {
    match p {
        Policy::FailClosed => "\n`fail_closed` promises 503 `quota_unavailable` while Redis cannot be reached, and never a token over a limit.\n",
        Policy::Local => "\n`local` promises that each replica admits at most `limit / expected_replicas` on its own while Redis cannot be reached, that this usage is charged when Redis returns, and that no replica admits against a window lacking it.\n",
        Policy::FailOpen => "\n`fail_open` promises that every request is admitted while Redis cannot be reached (counted in `gateway_quota_bypassed_total`), that this usage is charged when Redis returns, and that no replica admits against a window lacking it.\n",
    }
}
