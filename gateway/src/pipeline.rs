//! The request path, top to bottom. Each phase is a small module; they share one
//! [`RequestCtx`]:
//!
//! 1. endpoint: which OpenAI API is called, the exact path (`endpoint.rs`)
//! 2. who, early: when every route the request can take needs a key, the key is
//!    checked before the body is read (`route.rs`, `auth/`)
//! 3. body: read within `max_body_bytes`, its time limit and the process's
//!    budget of buffered bodies (`body_read.rs`); the top-level JSON
//!    (`request_body.rs`)
//! 4. route match: host, path, headers, model (`route.rs`); the route's `ai_log`
//!    attributes taken from the request (`telemetry/attributes.rs`)
//! 5. authn: key -> (tenant, consumer), cache then backend, and what the route
//!    and the model allow (`auth/`)
//! 6. quota reserve: estimate, one store call per hash tag (`quota/`)
//! 7. pick instance: healthy ones by priority, then roundrobin / chash /
//!    least_busy (`balance.rs`, health mirrors in `health/`, no Redis call);
//!    `by: upstream` quotas reserved for it, `rate_limiting` fallback when they refuse
//! 8. provider adapter: URL, auth, model map, options (`providers/`)
//! 9. upstream call: pooled client, first-byte timeout (`upstream.rs`), the
//!    response made an answer (`attempt.rs`)
//! 10. retry/fallback: before the first byte reached the client only, each attempt
//!     recorded and reported to shared health (this file)
//! 11. response: frames pass through; a copy feeds the usage meter and the
//!     attributes that read the answer (`stream.rs`, `meter.rs`); watched, so it
//!     ends by its deadline whatever the client does (`stall.rs`)
//! 12. finish: quotas settled with the real usage and one `ai_log` record, on
//!     every exit path (`ctx.rs`, `quota/`, `telemetry/`)

use crate::app::App;
use crate::attempt::{
    answer, close, ms, refusal, report_failure, reserve_upstream, status_reason, Answer, Failure,
};
use crate::auth::{self, Auth};
use crate::balance;
use crate::ctx::{AttemptRec, RequestCtx};
use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::health::{Cell, Health, InFlight, StreamWatch};
use crate::providers::{mock, Flavor};
use crate::quota::{self, Estimate, Quotas, Refusal};
use crate::request_body::ClientBody;
use crate::route::{self, MatchInput, Route};
use crate::runtime::Runtime;
use crate::stream::{Metered, ResponseBody, UpstreamBody};
use crate::telemetry::attributes::Collected;
use crate::telemetry::labels::{Label, ModelLabels};
use crate::telemetry::trace_context::new_span_id;
use crate::upstream::{self, AttemptError};
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderName, Request, Response};
use hyper::body::Incoming;
use shared::config::{Algorithm, FallbackOn};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Serves one data-plane request from `remote` (the connection's peer, or the
/// PROXY protocol's source address when the peer is a trusted proxy); `conn`
/// ends its HTTP/1 connection when the answer has to be cut short.
pub async fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
    remote: SocketAddr,
    conn: Option<Arc<crate::stall::ConnAbort>>,
) -> Response<ResponseBody> {
    let cfg = app.config(); // the request finishes on the config it started with
    let (parts, body) = req.into_parts();
    let client = cfg.server.trusted_proxies.client(remote, &parts.headers);
    let mut ctx = Box::new(RequestCtx::new(
        parts.method.clone(),
        parts.uri.clone(),
        parts.version,
        &parts.headers,
        client,
        app.access_log.clone(),
    ));
    ctx.live = Some(app.shutdown.live());
    ctx.value_limit = cfg.value_length_limit;
    ctx.metrics = app.metrics.clone().filter(|_| cfg.prometheus);
    ctx.otlp = crate::ctx::Otlp::for_request(app.otlp.as_ref(), cfg.otlp.as_ref(), &parts.headers);
    let request_id = ctx.request_id.clone();
    let engines = Engines {
        auth: &app.auth,
        quotas: &app.quotas,
        health: &app.health,
        bodies: &app.bodies,
    };
    let answer = phases(&cfg, &engines, &mut ctx, &parts, body).await;
    let rate = ctx.quota.as_ref().map(|q| q.headers());
    let mut resp = match answer {
        Ok(Answer::Upstream {
            head,
            body,
            first,
            mut meter,
            limits,
        }) => {
            let status = head.status.as_u16();
            // the body went upstream: it no longer counts as being buffered (a
            // long answer would otherwise hold its share to the end)
            drop(std::mem::take(&mut ctx.body_held));
            if let Some(mut c) = ctx.attrs.take() {
                c.response_headers(&head.headers, &cfg.secret_headers);
                if c.wants_stream() || c.wants_response_body() {
                    meter.capture = Some(c);
                } else {
                    ctx.attrs = Some(c);
                }
            }
            let metered = Metered::new(
                body,
                first,
                meter,
                limits,
                status,
                ctx,
                app.shutdown.clone(),
            );
            // watched, so it ends by its deadline whatever the client does
            let write_timeout = cfg.server.conn.client_write_timeout;
            let body = app.stalls.watch(metered, write_timeout, conn);
            Response::from_parts(head, ResponseBody::Upstream(body))
        }
        Ok(Answer::Local(resp)) => {
            ctx.finish_local(resp.status().as_u16(), resp.body().len() as u64, None);
            resp.map(ResponseBody::full)
        }
        Err(e) => {
            let resp = e.response();
            ctx.finish_local(e.status.as_u16(), resp.body().len() as u64, Some(&e));
            resp.map(ResponseBody::full)
        }
    };
    resp.headers_mut().insert(X_REQUEST_ID, request_id);
    if let Some(rate) = rate {
        rate.apply(resp.headers_mut());
    }
    resp
}

/// The process-wide engines a request uses.
struct Engines<'a> {
    auth: &'a Auth,
    quotas: &'a Arc<Quotas>,
    health: &'a Arc<Health>,
    /// the budget of buffered request bodies
    bodies: &'a Arc<crate::body_read::Budget>,
}

async fn phases(
    cfg: &Runtime,
    engines: &Engines<'_>,
    ctx: &mut RequestCtx,
    parts: &Parts,
    body: Incoming,
) -> Result<Answer, GatewayError> {
    // 1. endpoint
    let path = parts.uri.path();
    if crate::endpoint::has_dot_segment(path) {
        return Err(GatewayError::bad_request(
            "invalid_path",
            "the path has a \".\" or \"..\" segment",
        ));
    }
    let endpoint = Endpoint::from_path(path).ok_or_else(|| GatewayError::unknown_endpoint(path))?;
    if parts.method != endpoint.method() {
        return Err(GatewayError::method_not_allowed(
            parts.method.as_str(),
            path,
        ));
    }
    ctx.endpoint = Some(endpoint);
    if endpoint == Endpoint::Models {
        // (`models.rs`)
        return crate::models::list(cfg, engines.auth, ctx, parts)
            .await
            .map(Answer::Local);
    }

    // 2. who, when every route this request can take needs a key: checked before
    //    the body is read, so no one without a key makes the gateway buffer one
    let host = crate::ctx::host_of(parts.headers.get(http::header::HOST), &parts.uri);
    let early = MatchInput {
        host: &host,
        path,
        headers: &parts.headers,
        model: None,
        endpoint: Some(endpoint),
    };
    let identified = route::all_need_a_key(&cfg.routes, &early)
        .map_err(|miss| miss.error(&early, cfg.server.verbose_errors))?;
    let key = || {
        auth::find_key(
            &parts.headers,
            &parts.uri,
            &cfg.key_headers,
            cfg.key_in_query,
        )
    };
    if identified {
        engines
            .auth
            .identify_into(key().as_deref(), &mut ctx.identity)
            .await?;
    }

    // 3. body
    let limits = crate::body_read::Limits {
        max: cfg.server.max_body_bytes,
        timeout: cfg.server.body_read_timeout,
        budget: cfg.server.max_buffered_body_bytes,
    };
    let (bytes, held) =
        crate::body_read::read(body, &parts.headers, limits, engines.bodies).await?;
    ctx.body_held = held;
    ctx.bytes_received = bytes.len() as u64;
    ctx.body = bytes.clone();
    let client = ClientBody::parse(&bytes)?;
    let model = client
        .model
        .clone()
        .ok_or_else(GatewayError::missing_model)?;
    ctx.stream = client.stream;
    ctx.request_model = Some(model.clone());

    // 4. route
    let input = MatchInput {
        host: &host,
        path,
        headers: &parts.headers,
        model: Some(&model),
        endpoint: Some(endpoint),
    };
    let route = route::find(&cfg.routes, &input)
        .map_err(|miss| miss.error(&input, cfg.server.verbose_errors))?;
    ctx.route = Some(route.name.clone());
    ctx.labels = ModelLabels {
        request: Label::of(&model, &cfg.known_models, || route.model_glob(&model)),
        upstream: None,
        known: Some(cfg.known_models.clone()),
    };
    if let Some(a) = &route.attributes {
        let mut c = Collected::new(a.clone(), cfg.value_length_limit);
        c.request(&parts.headers, &bytes, &cfg.secret_headers);
        ctx.attrs = Some(Box::new(c));
    }

    // 5. authn (the key was identified above when every candidate route needs one)
    if let Some(policy) = &route.auth {
        let who = match ctx.identity.clone().filter(|_| identified) {
            Some(who) => who,
            None => {
                engines
                    .auth
                    .identify_into(key().as_deref(), &mut ctx.identity)
                    .await?
            }
        };
        auth::authorize(&who, policy, &route.name, Some(&model))?;
    }

    // 6. quota reserve
    let who = ctx.identity.clone();
    let who_quotas = who.as_ref().map_or(&[][..], |w| &w.quotas[..]);
    if !route.quotas.is_empty() || !who_quotas.is_empty() {
        let estimate = Estimate::of(&client, endpoint, cfg.state.quotas.default_max_tokens);
        let held = ctx.quota.insert(Box::new(engines.quotas.hold(
            cfg.state.quotas,
            route.lease_ms,
            estimate,
        )));
        let claims = quota::spec::claims(
            route.quotas.iter().chain(who_quotas),
            who.as_deref(),
            &route.name,
            ctx.remote.ip(),
            &parts.headers,
            None,
        );
        held.reserve(claims, false).await.map_err(refusal)?;
    }

    // 7.-10. instances in balancer order, with fallback
    attempts(
        cfg,
        engines.health,
        route,
        ctx,
        &parts.headers,
        endpoint,
        &client,
        &bytes,
        &model,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn attempts(
    cfg: &Runtime,
    health: &Arc<Health>,
    route: &Route,
    ctx: &mut RequestCtx,
    headers: &HeaderMap,
    endpoint: Endpoint,
    client: &ClientBody<'_>,
    bytes: &Bytes,
    model: &str,
) -> Result<Answer, GatewayError> {
    let fallback = &route.fallback;
    let max_attempts = fallback.max_retries.saturating_add(1) as usize;
    let no_new_attempt_after = ctx.start + fallback.within;
    let add_usage = client.stream && endpoint.takes_stream_options() && !client.include_usage;
    let mut last: Option<Failure> = None;

    // 6. pick: healthy instances by priority, in the algorithm's order
    let steer = fallback.allows(FallbackOn::Unhealthy);
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
                .identity
                .as_ref()
                .map(|w| format!("{}/{}", w.tenant, w.consumer));
            route
                .balancer
                .hash_on
                .key(who.as_deref(), headers, ctx.remote.ip())
        }
        _ => Vec::new(),
    };
    let plan = route.balancer.plan(&balance::Inputs {
        ejected: &ejected,
        busy: &busy,
        key: &key,
    });
    if plan.panic {
        ctx.panic_mode = true;
        health.stats.panics.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(route = %route.name, "every upstream is ejected: trying them anyway (panic mode)");
    }

    let mut n = 0;
    for idx in plan.order {
        if n >= max_attempts || (n > 0 && Instant::now() >= no_new_attempt_after) {
            break;
        }
        let prov = &route.balancer.instance(idx).provider;
        let cell = cell_of(idx).cloned();
        // ejected since the plan was made (by this request's failures or another's)
        let gone = |c: &Arc<Cell>| c.ejected_since(&health.view()).is_some();
        if n > 0 && steer && !plan.panic && cell.as_ref().is_some_and(gone) {
            continue;
        }
        n += 1;
        ctx.provider = Some(prov.id.clone());
        ctx.upstream_host = Some(prov.host.clone());
        let sent = Instant::now();
        // recorded now, so an attempt cut short (the client left) still shows
        let traced = ctx.traced();
        ctx.attempts.push(AttemptRec {
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
        if let Err(r) = reserve_upstream(route, ctx, headers, &prov.id).await {
            let limited = matches!(r, Refusal::Limited(_));
            tracing::debug!(provider = %prov.id, attempt = n, "upstream quota refused");
            close(ctx, prov, None, None, Some(FallbackOn::RateLimiting));
            last = Some(Failure::Error(refusal(r)));
            if limited && fallback.allows(FallbackOn::RateLimiting) {
                continue;
            }
            break;
        }
        let token =
            prov.pick_token(|t| !steer || cell.as_ref().is_none_or(|c| c.token_ok(t, &view)));
        let token_index = token.as_ref().map(|(i, _, _)| *i);
        close(ctx, prov, token_index, None, None);
        ctx.inflight = cell.clone().map(InFlight::new);
        let upstream_model = prov.mapping.map(model);
        ctx.model = Some(upstream_model.to_string());
        ctx.labels.upstream = cfg.known_models.get(&upstream_model).cloned();
        if traced {
            if let Some(a) = ctx.attempts.last_mut() {
                a.model = ctx.model.clone();
            }
        }

        // 7.-8. adapter and upstream call
        let result = match prov.flavor {
            Flavor::Mock => Ok(mock::answer(
                endpoint,
                client,
                &upstream_model,
                client.include_usage || add_usage,
            )),
            _ => {
                let body = client.rewrite(bytes, Some(&upstream_model), &prov.options, add_usage);
                let mut req =
                    upstream::request(prov, endpoint, &upstream_model, body, headers, cfg, ctx)?;
                if let Some((_, name, value)) = &token {
                    req.headers_mut().insert(name.clone(), value.clone());
                }
                if let (Some(o), Some(a)) = (&ctx.otlp, ctx.attempts.last()) {
                    if o.propagate {
                        o.trace.inject(a.span_id, req.headers_mut());
                    }
                }
                let http = prov
                    .client
                    .as_ref()
                    .ok_or_else(|| GatewayError::internal("provider has no HTTP client"))?;
                upstream::send(http, req, prov.timeouts.first_byte)
                    .await
                    .map(|r| r.map(UpstreamBody::Http))
            }
        };
        let mut status = None;
        let (reason, failure) = match result {
            Ok(resp) => {
                ctx.upstream_service_ms = Some(elapsed_ms(sent));
                let s = resp.status();
                status = Some(s.as_u16());
                let redact = cfg.server.redact_upstream_errors;
                match answer(resp, prov, ctx, sent, add_usage, redact).await {
                    Ok(a) => match status_reason(s) {
                        Some(r) => (r, Failure::Response(Box::new(a))),
                        None => {
                            if let Some(c) = &cell {
                                health.success(c, token_index, prov.passive.as_ref());
                                ctx.stream_health = prov.passive.map(|passive| StreamWatch {
                                    health: health.clone(),
                                    cell: c.clone(),
                                    passive,
                                });
                            }
                            close(ctx, prov, token_index, status, None);
                            return Ok(a);
                        }
                    },
                    Err((r, e)) => (r, Failure::Error(e)),
                }
            }
            Err(AttemptError::Timeout) => (
                FallbackOn::Timeout,
                Failure::Error(GatewayError::upstream_timeout(
                    &prov.id,
                    "response headers",
                    ms(prov.timeouts.first_byte),
                )),
            ),
            Err(AttemptError::Connect(why)) => (
                FallbackOn::ConnectError,
                Failure::Error(GatewayError::upstream_unreachable(&prov.id, why)),
            ),
            // The connection broke after it was made (e.g. a pooled keep-alive
            // connection the upstream had closed); no answer came, so it counts as a
            // connection failure for fallback, but is not reported as "unreachable".
            Err(AttemptError::Other(why)) => (
                FallbackOn::ConnectError,
                Failure::Error(GatewayError::upstream_failed(&prov.id, why)),
            ),
        };
        tracing::debug!(provider = %prov.id, ?reason, attempt = n, "upstream attempt failed");
        close(ctx, prov, token_index, status, Some(reason));
        if let Some(c) = &cell {
            report_failure(health, c, prov, token_index, reason, status, &failure);
        }
        if let Some(q) = ctx.quota.as_mut() {
            q.attempt_failed();
        }
        let retry = fallback.allows(reason);
        last = Some(failure);
        if !retry {
            break;
        }
    }
    match last {
        Some(Failure::Response(a)) => Ok(*a),
        Some(Failure::Error(e)) => Err(e),
        None => Err(GatewayError::no_upstream(&route.name)),
    }
}

fn elapsed_ms(t: Instant) -> u64 {
    ms(t.elapsed())
}
