//! One upstream attempt (phases 7-10): the instance's `by: upstream` quotas
//! reserved, the request built (URL, auth, model map, options), sent within the
//! first-byte timeout, its response classified and made an answer (held until
//! the first byte, error bodies redacted), and what it showed reported to shared
//! health. `pipeline.rs` strings the attempts together in the balancer's order.

use crate::balance;
use crate::ctx::RequestCtx;
use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::headers;
use crate::health::{Cell, Health, InFlight, StreamWatch, View};
use crate::protocol::anthropic::RequestOpts;
use crate::protocol::{Inbound, Seam, Upstream};
use crate::providers::native::{Target, UrlError};
use crate::providers::{mock, Flavor, Provider};
use crate::quota::{self, Refusal};
use crate::request_body::ClientBody;
use crate::route::Route;
use crate::runtime::Runtime;
use crate::telemetry::attempt::AttemptRec;
use crate::telemetry::trace_context::new_span_id;
use crate::upstream::{self, AttemptError, UpstreamBody};

mod answer;
pub use answer::{answer, ms, Answer, Reading};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::Full;
use shared::config::{Algorithm, FallbackOn};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// What every attempt of one request shares.
pub struct Call<'a> {
    pub cfg: &'a Runtime,
    pub health: &'a Arc<Health>,
    pub route: &'a Route,
    /// the client's headers
    pub headers: &'a HeaderMap,
    pub endpoint: Endpoint,
    pub client: &'a ClientBody<'a>,
    /// the client's body as read
    pub bytes: &'a Bytes,
    /// the model the client asked for
    pub model: &'a str,
}

/// The order instances are tried in, and the health they were picked by.
struct Plan {
    order: Vec<usize>,
    /// every instance was ejected: all are tried anyway
    panic: bool,
    /// `fallback.on` has `unhealthy`: ejected instances and tokens are avoided
    steer: bool,
    cells: Arc<HashMap<Arc<str>, Arc<Cell>>>,
    view: View,
}

/// What one attempt came to. (An answer is moved once, to the client: its
/// size is moot.)
#[allow(clippy::large_enum_variant)]
enum Tried {
    /// it answered: the answer goes to the client
    Answered(Answer),
    /// the instance was ejected since the plan was made: not tried
    Skipped,
    /// it failed; `retry`: `fallback.on` allows another attempt
    Failed { failure: Failure, retry: bool },
}

impl Call<'_> {
    /// The route's instances in the balancer's order, until one answers, with
    /// fallback within `max_retries` and `within`; the last failure is answered
    /// when none is left.
    pub async fn run(&self, ctx: &mut RequestCtx) -> Result<Answer, GatewayError> {
        let plan = self.plan(ctx);
        let fallback = &self.route.fallback;
        let max_attempts = fallback.max_retries.saturating_add(1) as usize;
        let no_new_attempt_after = ctx.facts().start + fallback.within;
        let (mut tried, mut last) = (0, None);
        for &idx in &plan.order {
            if tried >= max_attempts || (tried > 0 && Instant::now() >= no_new_attempt_after) {
                break;
            }
            match self.attempt(ctx, &plan, idx, tried).await? {
                Tried::Answered(a) => return Ok(a),
                Tried::Skipped => continue,
                Tried::Failed { failure, retry } => {
                    tried += 1;
                    last = Some(failure);
                    if !retry {
                        break;
                    }
                }
            }
        }
        match last {
            Some(Failure::Response(a)) => Ok(*a),
            Some(Failure::Error(e)) => Err(e),
            None => Err(GatewayError::no_upstream(&self.route.name)),
        }
    }

    /// Healthy instances by priority, in the algorithm's order (no Redis call:
    /// health is read from this replica's mirror).
    fn plan(&self, ctx: &mut RequestCtx) -> Plan {
        let (health, route) = (self.health, self.route);
        let steer = route.fallback.allows(FallbackOn::Unhealthy);
        let cells = health.cells();
        let view = health.view();
        let cell_of = |i: usize| cells.get(&*route.balancer.instance(i).provider.id);
        let ejected = |i: usize| {
            steer
                .then(|| cell_of(i).and_then(|c| c.ejected_since(&view)))
                .flatten()
        };
        let busy = |i: usize| cell_of(i).map_or(0, |c| c.busy());
        let key = match route.balancer.algorithm() {
            Algorithm::Chash => {
                let who = ctx
                    .identity()
                    .map(|w| format!("{}/{}", w.tenant, w.consumer));
                let ip = ctx.facts().remote.ip();
                route.balancer.hash_on.key(who.as_deref(), self.headers, ip)
            }
            _ => Vec::new(),
        };
        let plan = route.balancer.plan(&balance::Inputs {
            ejected: &ejected,
            busy: &busy,
            key: &key,
        });
        if plan.panic {
            ctx.attempts().set_panic_mode();
            health.stats.panics.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(route = %route.name, "every upstream is ejected: trying them anyway (panic mode)");
        }
        Plan {
            order: plan.order,
            panic: plan.panic,
            steer,
            cells,
            view,
        }
    }

    /// Tries instance `idx` of the route; `tried` attempts came before it.
    async fn attempt(
        &self,
        ctx: &mut RequestCtx,
        plan: &Plan,
        idx: usize,
        tried: usize,
    ) -> Result<Tried, GatewayError> {
        let (cfg, health, route) = (self.cfg, self.health, self.route);
        let fallback = &route.fallback;
        let prov = &route.balancer.instance(idx).provider;
        let cell = plan.cells.get(&*prov.id).cloned();
        // ejected since the plan was made (by this request's failures or another's)
        let gone = |c: &Arc<Cell>| c.ejected_since(&health.view()).is_some();
        if tried > 0 && plan.steer && !plan.panic && cell.as_ref().is_some_and(gone) {
            return Ok(Tried::Skipped);
        }
        let n = tried + 1;
        let sent = Instant::now();
        // recorded now, so an attempt cut short (the client left) still shows
        let traced = ctx.traced();
        ctx.attempts().start(AttemptRec {
            provider: prov.id.clone(),
            system: crate::providers::gen_ai_name(prov.kind),
            host: prov.host.clone(),
            span_id: if traced { new_span_id() } else { 0 },
            started: sent,
            ended: None,
            model: None,
            token: None,
            status: None,
            reason: None,
        });
        if let Err(r) = reserve_upstream(route, ctx, self.headers, &prov.id).await {
            let limited = matches!(r, Refusal::Limited(_));
            tracing::debug!(provider = %prov.id, attempt = n, "upstream quota refused");
            close(ctx, prov, None, None, Some(FallbackOn::RateLimiting));
            return Ok(Tried::Failed {
                failure: Failure::Error(refusal(r)),
                retry: limited && fallback.allows(FallbackOn::RateLimiting),
            });
        }
        let steer = plan.steer;
        let token =
            prov.pick_token(|t| !steer || cell.as_ref().is_none_or(|c| c.token_ok(t, &plan.view)));
        let token_index = token.as_ref().map(|(i, _, _)| *i);
        close(ctx, prov, token_index, None, None);
        ctx.attempts()
            .set_in_flight(cell.clone().map(InFlight::new));
        let upstream_model = prov.mapping.map(self.model);
        ctx.set_upstream_label(cfg.known_models.get(&upstream_model).cloned());
        if let Some(a) = ctx.attempts().current() {
            a.model = Some(upstream_model.to_string());
        }
        let add_usage = self.adds_usage();
        let inbound = Inbound::of(self.endpoint);
        let seam = Seam {
            inbound,
            dialect: prov.dialect_for(inbound, &upstream_model),
        };
        // (what the gateway answers itself is in the client's API already)
        let here = seam.answered_here();
        let seam = match here {
            true => Seam {
                inbound,
                dialect: inbound.native(),
            },
            false => seam,
        };

        // adapter and upstream call
        let result = match prov.flavor {
            _ if here => Ok(mock::answer(
                self.endpoint,
                self.client,
                &upstream_model,
                false,
            )),
            Flavor::Mock => Ok(mock::answer(
                self.endpoint,
                self.client,
                &upstream_model,
                self.client.include_usage || add_usage,
            )),
            _ => {
                let c = self.client;
                let opts = RequestOpts {
                    model: &upstream_model,
                    default_max_tokens: prov.default_max_tokens,
                    options: &prov.options,
                };
                let up = seam.request(c, self.bytes, &opts, add_usage)?;
                ctx.answer().warning = (!up.warnings.is_empty())
                    .then(|| format!("dropped {}", up.warnings.join(", ")));
                let mut req = self.upstream_request(prov, seam, up, &upstream_model, ctx)?;
                ctx.propagate_trace(req.headers_mut());
                let http = prov
                    .client
                    .as_ref()
                    .ok_or_else(|| GatewayError::internal("provider has no HTTP client"))?;
                match prov.authorize(&mut req, token_index).await {
                    Ok(()) => upstream::send(http, req.map(Full::new), prov.timeouts.first_byte)
                        .await
                        .map(|r| r.map(UpstreamBody::Http)),
                    Err(why) => Err(AttemptError::Auth(why)),
                }
            }
        };
        let mut status = None;
        let (reason, failure) = match result {
            Ok(resp) => {
                ctx.attempts().answered_after(ms(sent.elapsed()));
                let s = resp.status();
                status = Some(s.as_u16());
                let reading = Reading {
                    seam,
                    strip_usage: add_usage,
                    include_usage: self.client.include_usage,
                    redact: cfg.server.redact_upstream_errors,
                    model: (!seam.same_api()).then(|| upstream_model.to_string()),
                    // (only embeddings may come back without usage)
                    prompt_estimate: match !seam.same_api() && self.endpoint == Endpoint::Embeddings
                    {
                        true => shared::usage::estimate_tokens(self.client.prompt_bytes()),
                        false => 0,
                    },
                };
                match answer(resp, prov, ctx, sent, reading).await {
                    Ok(a) => match status_reason(s) {
                        Some(r) => (r, Failure::Response(Box::new(a))),
                        None => {
                            if let Some(c) = &cell {
                                health.success(c, token_index, prov.passive.as_ref());
                                let watch = prov.passive.map(|passive| StreamWatch {
                                    health: health.clone(),
                                    cell: c.clone(),
                                    passive,
                                });
                                ctx.attempts().watch_stream(watch);
                            }
                            close(ctx, prov, token_index, status, None);
                            return Ok(Tried::Answered(a));
                        }
                    },
                    Err((r, e)) => (r, Failure::Error(e)),
                }
            }
            Err(e) => no_response(e, prov),
        };
        tracing::debug!(provider = %prov.id, ?reason, attempt = n, "upstream attempt failed");
        close(ctx, prov, token_index, status, Some(reason));
        if let Some(c) = &cell {
            report_failure(health, c, prov, token_index, reason, status, &failure);
        }
        if let Some(q) = ctx.quota() {
            q.attempt_failed();
        }
        Ok(Tried::Failed {
            failure,
            retry: fallback.allows(reason),
        })
    }

    /// A stream the client did not ask usage of gets it anyway (the meter reads
    /// it and strips it again).
    fn adds_usage(&self) -> bool {
        self.client.stream && self.endpoint.takes_stream_options() && !self.client.include_usage
    }
}

/// Why no response came, for `fallback.on`, and the error the client gets.
fn no_response(e: AttemptError, prov: &Provider) -> (FallbackOn, Failure) {
    match e {
        AttemptError::Timeout => (
            FallbackOn::Timeout,
            Failure::Error(GatewayError::upstream_timeout(
                &prov.id,
                "response headers",
                ms(prov.timeouts.first_byte),
            )),
        ),
        AttemptError::Connect(why) => (
            FallbackOn::ConnectError,
            Failure::Error(GatewayError::upstream_unreachable(&prov.id, why)),
        ),
        // The connection broke after it was made (e.g. a pooled keep-alive
        // connection the upstream had closed); no answer came, so it counts as a
        // connection failure for fallback, but is not reported as "unreachable".
        AttemptError::Other(why) => (
            FallbackOn::ConnectError,
            Failure::Error(GatewayError::upstream_failed(&prov.id, why)),
        ),
        // no credentials to send (the token endpoint failed): nothing was sent
        AttemptError::Auth(why) => (
            FallbackOn::ConnectError,
            Failure::Error(GatewayError::upstream_auth_failed(&prov.id, why)),
        ),
    }
}

pub fn refusal(r: Refusal) -> GatewayError {
    match r {
        Refusal::Limited(e) => e,
        Refusal::Unavailable => GatewayError::quota_unavailable(),
    }
}

/// Why an attempt failed, for `fallback.on`.
pub fn status_reason(status: StatusCode) -> Option<FallbackOn> {
    match status.as_u16() {
        429 => Some(FallbackOn::Http429),
        401 => Some(FallbackOn::Http401),
        402 => Some(FallbackOn::Http402),
        403 => Some(FallbackOn::Http403),
        500..=599 => Some(FallbackOn::Http5xx),
        _ => None,
    }
}

/// The last failure seen, answered when no attempt is left.
pub enum Failure {
    Error(GatewayError),
    Response(Box<Answer>),
}

/// Fills in the current attempt's record.
pub fn close(
    ctx: &mut RequestCtx,
    prov: &Provider,
    token: Option<usize>,
    status: Option<u16>,
    reason: Option<FallbackOn>,
) {
    if let Some(a) = ctx.attempts().current() {
        a.token = token
            .filter(|_| prov.token_count() > 1)
            .and_then(|t| u32::try_from(t).ok());
        a.status = status;
        a.reason = reason.map(FallbackOn::as_str);
        a.ended = Some(Instant::now());
    }
}

/// Tells shared health about a failed attempt: a refused token (401/402/403, and
/// 429, which providers count per key) counts against that token, anything else
/// against the provider.
pub fn report_failure(
    health: &Health,
    cell: &Arc<Cell>,
    prov: &Provider,
    token: Option<usize>,
    reason: FallbackOn,
    status: Option<u16>,
    failure: &Failure,
) {
    let target = match reason {
        FallbackOn::Http429 | FallbackOn::Http401 | FallbackOn::Http402 | FallbackOn::Http403 => {
            cell.token_target(token)
        }
        _ => 0,
    };
    let err = match (status, failure) {
        (Some(s), Failure::Response(_)) => format!("http {s}"),
        (_, Failure::Error(e)) => e.message.clone(),
        (None, Failure::Response(_)) => reason.as_str().to_string(),
    };
    health.failure(cell, target, &err, prov.passive.as_ref());
}

/// Reserves the `by: upstream` quotas that apply to `provider`, if any.
pub async fn reserve_upstream(
    route: &Route,
    ctx: &mut RequestCtx,
    headers: &HeaderMap,
    provider: &str,
) -> Result<(), Refusal> {
    let who = ctx.identity().cloned();
    let ip = ctx.facts().remote.ip();
    let Some(held) = ctx.quota() else {
        return Ok(());
    };
    let who_quotas = who.as_ref().map_or(&[][..], |w| &w.quotas[..]);
    let claims = quota::spec::claims(
        route.quotas.iter().chain(who_quotas),
        who.as_deref(),
        &route.name,
        ip,
        headers,
        Some(provider),
    );
    held.reserve(claims, true).await
}

impl Call<'_> {
    /// The request for one attempt: the provider's URL for the upstream's endpoint
    /// and `model`, the client's headers without secrets and hop-by-hop ones (and
    /// those of another API), the dialect's own, the request id and the caller's
    /// `tenant/consumer` (the credentials are added by the caller).
    fn upstream_request(
        &self,
        prov: &Provider,
        seam: Seam,
        up: Upstream,
        model: &str,
        ctx: &RequestCtx,
    ) -> Result<http::Request<Bytes>, GatewayError> {
        let call = Target {
            endpoint: up.endpoint,
            stream: up.stream,
            batch: up.batch,
        };
        let uri = prov.uri(call, model).map_err(|e| match e {
            UrlError::Model(e) => GatewayError::bad_request(
                "invalid_model",
                format!("cannot build the upstream URL for model {model:?}: {e}"),
            ),
            UrlError::Unserved(e) => GatewayError::bad_request("unsupported_endpoint", e),
        })?;
        let mut req = http::Request::new(up.body);
        *req.method_mut() = up.endpoint.method();
        *req.uri_mut() = uri;
        let h = req.headers_mut();
        let cfg = self.cfg;
        headers::copy_to_upstream(self.headers, h, &cfg.secret_headers, ctx.traced());
        seam.dialect.headers(&prov.api_version, h);
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        h.insert(headers::X_REQUEST_ID, ctx.facts().request_id.clone());
        // the client's copy of the consumer header was dropped with the secret headers
        if let Some(v) = ctx.identity().and_then(|i| i.header_value.clone()) {
            h.insert(cfg.consumer_header.clone(), v);
        }
        Ok(req)
    }
}
