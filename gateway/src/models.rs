//! `GET /v1/models`: what the routes matching the request offer, filtered by what
//! the caller may use.

use crate::auth::{self, Auth};
use crate::ctx::RequestCtx;
use crate::error::GatewayError;
use crate::route::{self, MatchInput, Route};
use crate::runtime::Runtime;
use bytes::Bytes;
use http::request::Parts;
use http::{header, HeaderValue, Response};

/// `GET /v1/models`: the models every route matching this request offers. Routes
/// with `auth` count only for a caller they admit, and list only the models that
/// caller may use.
pub async fn list(
    cfg: &Runtime,
    auth: &Auth,
    ctx: &mut RequestCtx,
    parts: &Parts,
) -> Result<Response<Bytes>, GatewayError> {
    let host = ctx.host();
    let input = MatchInput {
        host: &host,
        path: parts.uri.path(),
        headers: &parts.headers,
        model: None,
        endpoint: Some(crate::endpoint::Endpoint::Models),
    };
    let matching: Vec<&Route> = cfg.routes.iter().filter(|r| r.matches(&input)).collect();
    if matching.is_empty() {
        if let Err(miss) = route::find(&cfg.routes, &input) {
            return Err(miss.error(&input, cfg.server.verbose_errors));
        }
    }
    let key = auth::find_key(
        &parts.headers,
        &parts.uri,
        &cfg.key_headers,
        cfg.key_in_query,
    );
    let mut ids: Vec<String> = Vec::new();
    let mut refused = None;
    let mut listed_any = false;
    for r in matching {
        if let Some(policy) = &r.auth {
            let mut who = None;
            match auth
                .authenticate(key.as_deref(), policy, &r.name, None, &mut who)
                .await
            {
                Ok(_) => *ctx.identity_slot() = who,
                Err(e) => {
                    refused = Some(e);
                    continue;
                }
            }
        }
        listed_any = true;
        for m in r.offered_models() {
            let allowed = r.auth.is_none() || ctx.identity().is_some_and(|i| i.allows_model(&m));
            if allowed && !ids.contains(&m) {
                ids.push(m);
            }
        }
    }
    if let (false, Some(e)) = (listed_any, refused) {
        return Err(e);
    }
    let data: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": "gateway"}))
        .collect();
    let body = serde_json::json!({"object": "list", "data": data}).to_string();
    let mut resp = Response::new(Bytes::from(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
