//! One request's quota reservations ([`Held`]): reserved at admission and per
//! upstream attempt, all or nothing per hash tag, under the outage policy when
//! Redis cannot be reached; settled with the real usage at the end, or as unused
//! when dropped.

use super::headers::{self, RateHeaders, Standing};
use super::spec::{Quota, Spend};
use super::store::{Actual, Item, ReserveAnswer, ReserveOp, SettleMode, Span, WindowUse};
use super::{
    new_id, now_ms, Claim, Estimate, Quotas, Refusal, Settings, Status, MAX_AMOUNT, TOMBSTONE_MS,
};
use crate::error::GatewayError;
use crate::redis_conn::StateError;
use futures_util::future::join_all;
use shared::config::{OnRedisError, QuotaStrategy};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Quotas with the window key each one counts in.
pub(super) type Windows = Vec<(Arc<Quota>, String)>;

/// Reservations of one hash tag, settled together.
pub(super) struct Group {
    pub(super) tag: String,
    /// the store's handle on the reservation (Redis: its lease entry)
    pub(super) member: String,
    pub(super) items: Windows,
    /// what the store is told at the end
    pub(super) mode: SettleMode,
    /// also reserved in this replica's local windows
    pub(super) local: bool,
    /// reserved for one upstream attempt (`by: upstream`)
    pub(super) attempt: bool,
    /// admitted without Redis because its node could not be reached (not
    /// because earlier such usage was still landing): the tag's admission
    /// waits for this one's settlement to land
    pub(super) gates: bool,
}

/// A request's reservations, from admission until they are settled (on drop at
/// the latest, so no exit path leaves tokens held).
pub struct Held {
    engine: Arc<Quotas>,
    settings: Settings,
    id: String,
    lease_ms: u64,
    estimate: Estimate,
    groups: Vec<Group>,
    /// what the request-level quotas say, for the x-ratelimit headers
    headers: RateHeaders,
    /// what the quotas of the latest upstream attempt say (an instance the
    /// fallback moved away from no longer counts)
    attempt_headers: RateHeaders,
    /// the request was counted in the /metrics counters
    counted: bool,
    pub status: Option<Status>,
    /// the quota that refused, for ai_log
    pub limited_by: Option<String>,
}

impl Held {
    pub(super) fn new(
        engine: Arc<Quotas>,
        settings: Settings,
        lease_ms: u64,
        estimate: Estimate,
    ) -> Held {
        Held {
            engine,
            settings,
            id: new_id(),
            lease_ms: settings.lease_ms.unwrap_or(lease_ms).max(1),
            estimate,
            groups: Vec::new(),
            headers: RateHeaders::default(),
            attempt_headers: RateHeaders::default(),
            counted: false,
            status: None,
            limited_by: None,
        }
    }
}

fn kind(q: &Quota) -> &'static str {
    match q.strategy {
        QuotaStrategy::Cost => "budget",
        QuotaStrategy::Requests => "requests",
        _ => "tokens",
    }
}

fn describe(q: &Quota, subject: &str) -> String {
    let what = match q.strategy {
        QuotaStrategy::TotalTokens => "tokens",
        QuotaStrategy::PromptTokens => "prompt tokens",
        QuotaStrategy::CompletionTokens => "completion tokens",
        QuotaStrategy::Requests => "requests",
        QuotaStrategy::Cost => {
            return format!(
                "budget {:?} ({} per {} by {} {subject:?})",
                q.name,
                shared::money::format_nanos(q.limit),
                q.window,
                q.by_name()
            )
        }
    };
    format!(
        "quota {:?} ({} {what} per {} by {} {subject:?})",
        q.name,
        q.limit,
        q.window,
        q.by_name()
    )
}

impl Held {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Reserves the estimate on every claim, all or nothing. `attempt`: the claims
    /// are `by: upstream` ones for the instance about to be tried.
    pub async fn reserve(&mut self, claims: Vec<Claim>, attempt: bool) -> Result<(), Refusal> {
        if claims.is_empty() {
            return Ok(());
        }
        let mut tags: Vec<(String, Windows)> = Vec::new();
        for c in claims {
            self.engine.alerts.follow(&c.quota.name, &c.quota.alerts);
            let key = c.quota.key(&c.tag, &c.subject);
            match tags.iter_mut().find(|(t, _)| *t == c.tag) {
                Some((_, v)) => v.push((c.quota, key)),
                None => tags.push((c.tag, vec![(c.quota, key)])),
            }
        }
        let engine = self.engine.clone();
        if attempt {
            self.attempt_headers = RateHeaders::default();
        }
        let now = now_ms();
        let calls = tags.iter().map(|(tag, items)| {
            let items: Vec<Item> = items
                .iter()
                .map(|(q, key)| Item {
                    key: key.clone(),
                    limit: q.limit,
                    span: q.span(now),
                    // more than the limit is refused the same; capped so the
                    // scripts' arithmetic stays exact
                    amount: self.estimate.amount(q).min(q.limit.saturating_add(1)),
                })
                .collect();
            let engine = &engine;
            let op = Arc::new(ReserveOp {
                id: self.id.clone(),
                lease_ms: self.lease_ms,
                tomb_ms: TOMBSTONE_MS,
                items,
            });
            let on_error = self.settings.on_error;
            async move {
                // the node holding this tag is out: the outage policy at once,
                // whatever the other tags' nodes do
                if engine.store.is_tag_down(tag) {
                    return (op, Err(StateError::Unavailable("node down".into())), true);
                }
                // it is back, but usage served without it has not all landed
                // (what is admitted meanwhile does not hold the gate shut)
                if engine.settling(tag, on_error) {
                    return (
                        op,
                        Err(StateError::Unavailable(
                            "usage served during the outage is still being charged".into(),
                        )),
                        false,
                    );
                }
                let r = engine.store.reserve_op(tag, op.clone()).await;
                (op, r, true)
            }
        });
        let answers = join_all(calls).await;
        let mut refusal: Option<Refusal> = None;
        let first_new = self.groups.len();
        for ((tag, quotas), (op, answer, gates)) in tags.into_iter().zip(answers) {
            let items = &op.items;
            let (mode, local, used, member) = match answer {
                Ok(ReserveAnswer::Admitted { used, member, .. }) => {
                    (SettleMode::Reserved, false, used, member)
                }
                Ok(ReserveAnswer::Refused {
                    index,
                    retry_ms,
                    used,
                    standing,
                    ..
                }) => {
                    self.note(attempt, &quotas, items, &standing);
                    if refusal.is_none() {
                        refusal =
                            Some(self.refused(attempt, &quotas, items, index, retry_ms, used));
                    }
                    continue;
                }
                Err(e) => match self.settings.on_error {
                    OnRedisError::FailOpen => {
                        tracing::debug!(error = %e, "quota store unreachable: admitted unchecked");
                        self.status = Some(Status::Bypassed);
                        (SettleMode::Unreserved, false, Vec::new(), String::new())
                    }
                    OnRedisError::FailClosed => {
                        if refusal.is_none() {
                            refusal = Some(Refusal::Unavailable);
                        }
                        continue;
                    }
                    OnRedisError::Local => {
                        let share = self.settings.expected_replicas.max(1) as u64;
                        let local: Vec<Item> = items
                            .iter()
                            .map(|it| Item {
                                limit: it.limit.div_ceil(share),
                                ..it.clone()
                            })
                            .collect();
                        let a = engine.local.reserve(
                            &tag,
                            &self.id,
                            self.lease_ms,
                            TOMBSTONE_MS,
                            &local,
                            now_ms(),
                        );
                        match a {
                            ReserveAnswer::Admitted { used, .. } => {
                                self.status = Some(Status::Local);
                                (SettleMode::Unreserved, true, used, String::new())
                            }
                            ReserveAnswer::Refused {
                                index,
                                retry_ms,
                                used,
                                standing,
                                ..
                            } => {
                                self.note(attempt, &quotas, &local, &standing);
                                // over this replica's share but within the fleet's
                                // limit: it fits again once Redis is back or the
                                // window has moved, not never
                                let retry_ms = retry_ms.or_else(|| {
                                    items.get(index).and_then(|it| {
                                        (it.amount <= it.limit).then(|| match it.span {
                                            Span::Sliding(ms) => ms,
                                            // a calendar's share: until the period ends
                                            Span::Calendar { .. } => it
                                                .span
                                                .period(now_ms())
                                                .map_or(0, |(_, end)| end.saturating_sub(now_ms())),
                                        })
                                    })
                                });
                                if refusal.is_none() {
                                    refusal =
                                        Some(self.refused(
                                            attempt, &quotas, &local, index, retry_ms, used,
                                        ));
                                }
                                continue;
                            }
                        }
                    }
                },
            };
            self.note(attempt, &quotas, items, &used);
            self.groups.push(Group {
                tag,
                member,
                items: quotas,
                mode,
                local,
                attempt,
                gates,
            });
        }
        match refusal {
            None => {
                if matches!(self.status, None | Some(Status::Limited)) {
                    self.status = Some(Status::Allowed);
                    self.limited_by = None;
                }
                Ok(())
            }
            Some(r) => {
                // all or nothing: what this call reserved goes back
                for g in self.groups.drain(first_new..).collect::<Vec<_>>() {
                    let actual = actuals(&g.items, |_| 0);
                    engine.settle_group(&self.id, &g, actual);
                }
                match &r {
                    Refusal::Limited(_) => {
                        self.status = Some(Status::Limited);
                    }
                    Refusal::Unavailable => {
                        self.status = Some(Status::Unavailable);
                    }
                }
                Err(r)
            }
        }
    }

    /// The x-ratelimit headers: the tightest of the request's quotas and those
    /// of the upstream attempt that answered (or refused last).
    pub fn headers(&self) -> RateHeaders {
        let mut h = self.headers;
        for (tokens, s) in [
            (true, self.attempt_headers.tokens),
            (false, self.attempt_headers.requests),
        ] {
            if let Some(s) = s {
                h.note(tokens, s);
            }
        }
        h
    }

    fn target(&mut self, attempt: bool) -> &mut RateHeaders {
        if attempt {
            &mut self.attempt_headers
        } else {
            &mut self.headers
        }
    }

    /// Records each quota's standing for the x-ratelimit headers.
    fn note(&mut self, attempt: bool, quotas: &Windows, items: &[Item], used: &[WindowUse]) {
        for (((q, _), it), u) in quotas.iter().zip(items).zip(used) {
            // a budget is money, not tokens or requests: not in those headers,
            // but in the budget gauges
            if q.strategy == QuotaStrategy::Cost {
                self.engine.budgets.observe(q, u.used);
                continue;
            }
            self.target(attempt).note(
                q.counts_tokens(),
                Standing {
                    limit: it.limit,
                    remaining: it.limit.saturating_sub(u.used),
                    reset_ms: u.reset_ms,
                },
            );
        }
    }

    fn refused(
        &mut self,
        attempt: bool,
        quotas: &[(Arc<Quota>, String)],
        items: &[Item],
        index: usize,
        retry_ms: Option<u64>,
        used: u64,
    ) -> Refusal {
        let (Some((q, key)), Some(it)) = (quotas.get(index), items.get(index)) else {
            return Refusal::Unavailable;
        };
        let subject = q.subject_in(key);
        self.limited_by = Some(q.name.clone());
        if q.strategy != QuotaStrategy::Cost {
            self.target(attempt).note(
                q.counts_tokens(),
                Standing {
                    limit: it.limit,
                    remaining: it.limit.saturating_sub(used),
                    reset_ms: retry_ms.unwrap_or(q.window_ms),
                },
            );
        }
        let money = |n: u64| q.show_amount(n);
        let msg = match retry_ms {
            Some(ms) => format!(
                "{} is exhausted: {} used, this request needs up to {}; retry in {}",
                describe(q, subject),
                money(used),
                money(it.amount),
                headers::duration(ms)
            ),
            None => format!(
                "{} can never admit this request: it may use up to {} (estimated prompt {} + max_tokens {}); lower max_tokens",
                describe(q, subject),
                money(self.estimate.amount(q)),
                self.estimate.prompt,
                self.estimate.completion
            ),
        };
        Refusal::Limited(GatewayError::rate_limited(kind(q), msg, retry_ms))
    }

    /// Settles the groups of the upstream attempt that failed: nothing was used,
    /// but the request reached (or was meant for) that upstream.
    pub fn attempt_failed(&mut self) {
        let (failed, kept): (Vec<Group>, Vec<Group>) = std::mem::take(&mut self.groups)
            .into_iter()
            .partition(|g| g.attempt);
        self.groups = kept;
        for g in failed {
            let actual = actuals(&g.items, |q| q.amount(&Spend::default()));
            self.engine.settle_group(&self.id, &g, actual);
        }
    }

    /// Settles everything with the request's real (or estimated) usage. A
    /// request the quotas themselves refused (every upstream's quota, or the
    /// store under `fail_closed`) costs nothing, not even as a request.
    pub fn finish(&mut self, spent: &Spend) {
        self.count();
        let refused = matches!(self.status, Some(Status::Limited | Status::Unavailable));
        for g in std::mem::take(&mut self.groups) {
            let actual = actuals(&g.items, |q| match refused {
                true => 0,
                false => q.amount(spent).min(MAX_AMOUNT),
            });
            self.engine.settle_group(&self.id, &g, actual);
        }
    }
}

/// Each window's settlement: `amount` of its quota.
fn actuals(items: &Windows, amount: impl Fn(&Quota) -> u64) -> Vec<Actual> {
    let now = now_ms();
    items
        .iter()
        .map(|(q, k)| Actual {
            key: k.clone(),
            span: q.span(now),
            amount: amount(q),
            limit: q.limit,
            alerts: q.alerts.clone(),
        })
        .collect()
}

impl Held {
    /// Counts the request once in the /metrics counters, by its final status.
    fn count(&mut self) {
        if std::mem::replace(&mut self.counted, true) {
            return;
        }
        let stats = &self.engine.stats;
        let c = match self.status {
            Some(Status::Allowed) => &stats.admitted,
            Some(Status::Limited) => &stats.limited,
            Some(Status::Bypassed) => &stats.bypassed,
            Some(Status::Local) => &stats.local,
            Some(Status::Unavailable) => &stats.unavailable,
            None => return,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Held {
    /// Never leaves a reservation behind: what was not settled is settled as unused.
    fn drop(&mut self) {
        self.count();
        if !self.groups.is_empty() {
            self.finish(&Spend::default());
        }
    }
}
