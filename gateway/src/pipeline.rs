//! The request path, top to bottom. Each phase is a small module; they share one
//! [`RequestCtx`], held as [`Unfinished`] so every exit path is recorded:
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
//! 7. to 10. attempts (`attempt.rs`): pick an instance (healthy ones by
//!    priority, then roundrobin / chash / least_busy: `balance.rs`, `health/`),
//!    reserve its `by: upstream` quotas, build the request (`providers/`), send
//!    it (`upstream.rs`), classify the response, report to shared health; fall
//!    back before the first byte reached the client only
//! 11. response: frames pass through; a copy feeds the usage meter and the
//!     attributes that read the answer (`stream.rs`, `meter.rs`); watched, so it
//!     ends by its deadline whatever the client does (`stall.rs`)
//! 12. finish: quotas settled with the real usage and one `ai_log` record, on
//!     every exit path (`finish.rs`, `quota/`, `telemetry/`)

use crate::attempt::{refusal, Answer, Call};
use crate::auth::{self, Auth};
use crate::body_read::Budget;
use crate::ctx::{RequestCtx, Sinks};
use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::finish::{Outcome, Unfinished};
use crate::health::Health;
use crate::quota::{self, Estimate, Quotas};
use crate::request_body::ClientBody;
use crate::response::ResponseBody;
use crate::route::{self, MatchInput};
use crate::runtime::Runtime;
use crate::shutdown::Shutdown;
use crate::stall::{ConnAbort, Stalls};
use crate::stream::Metered;
use crate::telemetry::access_log::AccessLog;
use crate::telemetry::attributes::Collected;
use crate::telemetry::labels::{Label, ModelLabels};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::otlp::Otlp;
use http::request::Parts;
use http::{Request, Response};
use hyper::body::Incoming;
use shared::config::QuotaStrategy;
use std::net::SocketAddr;
use std::sync::Arc;

/// The process-wide engines and sinks a request uses.
pub struct Engines<'a> {
    pub auth: &'a Auth,
    pub quotas: &'a Arc<Quotas>,
    pub health: &'a Arc<Health>,
    /// the budget of buffered request bodies
    pub bodies: &'a Arc<Budget>,
    pub access_log: &'a Arc<AccessLog>,
    pub metrics: Option<&'a Arc<Metrics>>,
    pub otlp: Option<&'a Arc<Otlp>>,
    pub shutdown: &'a Arc<Shutdown>,
    /// answers in flight, ended by their deadline whatever the client does
    pub stalls: &'a Arc<Stalls>,
    /// the last requests and the last hour, for the admin API
    pub views: &'a Arc<crate::telemetry::Views>,
}

/// Serves one data-plane request from `remote` (the connection's peer, or the
/// PROXY protocol's source address when the peer is a trusted proxy) on config
/// `cfg` (the request finishes on the config it started with); `conn` ends its
/// HTTP/1 connection when the answer has to be cut short.
pub async fn handle(
    cfg: &Runtime,
    engines: &Engines<'_>,
    req: Request<Incoming>,
    remote: SocketAddr,
    conn: Option<Arc<ConnAbort>>,
) -> Response<ResponseBody> {
    let (parts, body) = req.into_parts();
    let client = cfg.server.trusted_proxies.client(remote, &parts.headers);
    let sinks = Sinks {
        log: engines.access_log.clone(),
        metrics: engines.metrics.filter(|_| cfg.prometheus).cloned(),
        otlp: crate::ctx::Otlp::for_request(engines.otlp, cfg.otlp.as_ref(), &parts.headers),
        value_limit: cfg.value_length_limit,
        labels: Default::default(),
        live: Some(engines.shutdown.live()),
        pricing: cfg.pricing.clone(),
        ledger: cfg.budget.ledger.then(|| crate::ctx::LedgerSink {
            quotas: engines.quotas.clone(),
            retention_days: cfg.budget.retention_days,
        }),
        views: cfg
            .server
            .admin_token
            .is_some()
            .then(|| engines.views.clone()),
    };
    let ctx = RequestCtx::new(
        parts.method.clone(),
        parts.uri.clone(),
        parts.version,
        &parts.headers,
        client,
        sinks,
    );
    let mut ctx = Unfinished::new(Box::new(ctx));
    let request_id = ctx.facts().request_id.clone();
    let answer = phases(cfg, engines, &mut ctx, &parts, body).await;
    let rate = ctx.quota_headers();
    let mut resp = match answer {
        Ok(Answer::Upstream {
            head,
            body,
            first,
            mut meter,
            limits,
        }) => {
            let status = head.status.as_u16();
            ctx.release_body();
            meter.reads_finish_reason = ctx.exports_otlp();
            if let Some(mut c) = ctx.answer().attrs.take() {
                c.response_headers(&head.headers, &cfg.secret_headers);
                if c.wants_stream() || c.wants_response_body() {
                    meter.capture = Some(c);
                } else {
                    ctx.answer().attrs = Some(c);
                }
            }
            let shutdown = engines.shutdown.clone();
            let metered = Metered::new(body, first, meter, limits, status, ctx, shutdown);
            // watched, so it ends by its deadline whatever the client does
            let write_timeout = cfg.server.conn.client_write_timeout;
            let body = engines.stalls.watch(metered, write_timeout, conn);
            Response::from_parts(head, ResponseBody::Upstream(body))
        }
        Ok(Answer::Local(resp)) => {
            ctx.finish(Outcome::Local {
                status: resp.status().as_u16(),
                bytes_sent: resp.body().len() as u64,
                error: None,
            });
            resp.map(ResponseBody::full)
        }
        Err(e) => {
            let resp = e.response_in(ctx.error_shape());
            ctx.finish(Outcome::Local {
                status: e.status.as_u16(),
                bytes_sent: resp.body().len() as u64,
                error: Some(&e),
            });
            resp.map(ResponseBody::full)
        }
    };
    resp.headers_mut()
        .insert(crate::headers::X_REQUEST_ID, request_id);
    if let Some(rate) = rate {
        rate.apply(resp.headers_mut());
    }
    resp
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
    ctx.set_endpoint(endpoint);
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
            .identify_into(key().as_deref(), ctx.identity_slot())
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
    ctx.set_body(bytes.clone(), held);
    let client = ClientBody::parse(&bytes)?;
    ctx.set_stream(client.stream);
    let model = client
        .model
        .clone()
        .ok_or_else(GatewayError::missing_model)?;
    ctx.set_request_model(model.clone());

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
    let labels = ModelLabels {
        request: Label::of(&model, &cfg.known_models, || route.model_glob(&model)),
        upstream: None,
        known: Some(cfg.known_models.clone()),
    };
    ctx.set_route(route.name.clone(), labels);
    if let Some(a) = &route.attributes {
        let mut c = Collected::new(a.clone(), cfg.value_length_limit);
        c.request(&parts.headers, &bytes, &cfg.secret_headers);
        ctx.answer().attrs = Some(Box::new(c));
    }

    // 5. authn (the key was identified above when every candidate route needs one)
    if let Some(policy) = &route.auth {
        let who = match ctx.identity().cloned().filter(|_| identified) {
            Some(who) => who,
            None => {
                engines
                    .auth
                    .identify_into(key().as_deref(), ctx.identity_slot())
                    .await?
            }
        };
        auth::authorize(&who, policy, &route.name, Some(&model))?;
    }

    // 6. quota reserve
    let who = ctx.identity().cloned();
    let who_quotas = who.as_ref().map_or(&[][..], |w| &w.quotas[..]);
    if !route.quotas.is_empty() || !who_quotas.is_empty() {
        let mut estimate = Estimate::of(&client, endpoint, cfg.state.quotas.default_max_tokens);
        // a budget reserves the worst case in money: priced only when there is one
        let quotas = route.quotas.iter().chain(who_quotas);
        if quotas.clone().any(|q| q.strategy == QuotaStrategy::Cost) {
            let (prompt, completion) = (estimate.prompt, estimate.completion);
            let candidates = route.upstream_models(&model);
            estimate.cost = cfg.pricing.worst_case(prompt, completion, candidates);
        }
        let ip = ctx.facts().remote.ip();
        let held = ctx.hold_quota(
            engines
                .quotas
                .hold(cfg.state.quotas, route.lease_ms, estimate),
        );
        let claims = quota::spec::claims(
            quotas,
            who.as_deref(),
            &route.name,
            ip,
            &parts.headers,
            None,
        );
        held.reserve(claims, false).await.map_err(refusal)?;
    }

    // 7.-10. instances in the balancer's order (`attempt.rs`), with fallback:
    //        before the first byte reached the client only
    let call = Call {
        cfg,
        health: engines.health,
        route,
        headers: &parts.headers,
        endpoint,
        client: &client,
        bytes: &bytes,
        model: &model,
    };
    call.run(ctx).await
}
