//! Google Cloud credentials for Vertex AI: a service account key exchanged for
//! OAuth 2.0 access tokens by the JWT bearer grant (RFC 7523, as Google does it),
//! each token cached per provider and replaced `expire_early` before it expires,
//! one refresh at a time. Nothing here prints the key, an assertion or a token.

use crate::upstream::{self, AttemptError, HttpClient};
use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::{header, HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// Google's token endpoint, for a service account without `token_uri`.
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// `grant_type` of the JWT bearer grant, form-encoded.
const GRANT_TYPE: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";
/// Lifetime of an assertion (Google accepts at most an hour).
const ASSERTION_SECS: u64 = 3600;
/// Most of a token answer read.
const ANSWER_MAX: usize = 64 * 1024;
/// Longest [`AuthError`] message.
const MESSAGE_MAX: usize = 200;
/// `expires_in` assumed when an answer has none (Google's tokens live an hour).
const DEFAULT_EXPIRES_IN: u64 = 3600;
/// Longest token lifetime believed, whatever an answer says.
const EXPIRES_IN_MAX: u64 = 24 * 3600;

/// A service account key file (`"type": "service_account"`), its key parsed.
pub struct ServiceAccount {
    client_email: String,
    key: EncodingKey,
    private_key_id: Option<String>,
    project_id: Option<String>,
    token_uri: Option<Uri>,
}

impl ServiceAccount {
    /// Reads a key file's JSON text. Errors name every missing or invalid field
    /// and never quote a value.
    pub fn parse(json: &str) -> Result<ServiceAccount, String> {
        let value: Value = serde_json::from_str(json).map_err(|e| {
            // a position only: serde_json's messages may quote the text
            format!(
                "service account JSON is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        let Value::Object(fields) = value else {
            return Err("service account JSON is not an object".into());
        };
        let mut problems = Vec::new();
        let kind = text(&fields, "type", true, &mut problems);
        if kind.is_some_and(|k| k != "service_account") {
            problems.push("service account `type` is not service_account".into());
        }
        let client_email = text(&fields, "client_email", true, &mut problems);
        let private_key_id = text(&fields, "private_key_id", false, &mut problems);
        let project_id = text(&fields, "project_id", false, &mut problems);
        let key = text(&fields, "private_key", true, &mut problems).and_then(|pem| {
            let key = signing_key(pem);
            if key.is_none() {
                problems.push("service account `private_key` is not a PEM RSA private key".into());
            }
            key
        });
        let token_uri = text(&fields, "token_uri", false, &mut problems).and_then(|uri| {
            let uri = uri.parse::<Uri>().ok().filter(is_http_url);
            if uri.is_none() {
                problems.push("service account `token_uri` is not an http(s) URL".into());
            }
            uri
        });
        match (client_email, key) {
            (Some(email), Some(key)) if problems.is_empty() => Ok(ServiceAccount {
                client_email: email.to_owned(),
                key,
                private_key_id: private_key_id.map(str::to_owned),
                project_id: project_id.map(str::to_owned),
                token_uri,
            }),
            _ => Err(problems.join("; ")),
        }
    }

    pub fn project_id(&self) -> Option<&str> {
        self.project_id.as_deref()
    }

    pub fn client_email(&self) -> &str {
        &self.client_email
    }

    /// Where its tokens come from unless the config says otherwise: its
    /// `token_uri`, else [`DEFAULT_TOKEN_URL`].
    pub fn token_url(&self) -> Uri {
        self.token_uri
            .clone()
            .unwrap_or_else(|| Uri::from_static(DEFAULT_TOKEN_URL))
    }
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("project_id", &self.project_id)
            .field("private_key_id", &self.private_key_id)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

/// A string field: None (and a problem when `required`) if absent, null,
/// empty or not a string.
fn text<'a>(
    fields: &'a Map<String, Value>,
    name: &str,
    required: bool,
    problems: &mut Vec<String>,
) -> Option<&'a str> {
    match fields.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        Some(Value::String(_)) if required => {
            problems.push(format!("service account `{name}` is empty"));
            None
        }
        None | Some(Value::Null) | Some(Value::String(_)) => {
            if required {
                problems.push(format!("service account JSON has no `{name}`"));
            }
            None
        }
        Some(_) => {
            problems.push(format!("service account `{name}` is not a string"));
            None
        }
    }
}

/// The key, if it parses and signs (ring reads it only when signing, so a
/// trial signature finds a broken key at load rather than at the first request).
fn signing_key(pem: &str) -> Option<EncodingKey> {
    let key = EncodingKey::from_rsa_pem(pem.as_bytes()).ok()?;
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &Map::new(), &key).ok()?;
    Some(key)
}

fn is_http_url(uri: &Uri) -> bool {
    matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some()
}

/// How a [`TokenSource`] asks for tokens (from `auth.gcp`).
#[derive(Debug, Clone)]
pub struct GcpSettings {
    /// `auth.gcp.token_url`, else the account's `token_uri`, else
    /// [`DEFAULT_TOKEN_URL`] (see [`ServiceAccount::token_url`]).
    pub token_url: Uri,
    pub scopes: Vec<String>,
    /// `max_ttl`: longest a token is used, whatever its `expires_in`.
    pub max_ttl: Option<Duration>,
    /// `expire_early_secs`: how long before its expiry a token is replaced.
    pub expire_early: Duration,
    /// The whole token exchange (connect, answer, body).
    pub timeout: Duration,
}

/// Why no access token could be had. The message says what failed, bounded,
/// and never carries the key, the assertion or a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError(String);

impl AuthError {
    fn new(message: impl Into<String>) -> AuthError {
        let mut message = message.into();
        if message.len() > MESSAGE_MAX {
            let mut end = MESSAGE_MAX;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        AuthError(message)
    }

    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AuthError {}

/// One access token and when it stops being used.
struct Token {
    /// `Bearer <token>`, marked sensitive
    value: HeaderValue,
    /// fetched + min(expires_in, max_ttl)
    expires_at: Instant,
    /// `expires_at - expire_early`: replaced from then on
    refresh_at: Instant,
}

/// A provider's access tokens: cached, refreshed before they expire, one
/// refresh at a time however many requests wait for it.
pub struct TokenSource {
    account: ServiceAccount,
    settings: GcpSettings,
    client: HttpClient,
    /// the assertion's `scope` and `aud`
    scope: String,
    audience: String,
    current: ArcSwapOption<Token>,
    /// refreshes finished (either way): a waiter that sees this move after it
    /// started waiting takes that refresh's outcome instead of making another
    finished: AtomicU64,
    /// held while a refresh runs; the last refresh's error, if it failed
    flight: tokio::sync::Mutex<Option<AuthError>>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("account", &self.account)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    token_type: Option<String>,
}

impl TokenSource {
    pub fn new(account: ServiceAccount, settings: GcpSettings, client: HttpClient) -> TokenSource {
        TokenSource {
            scope: settings.scopes.join(" "),
            audience: settings.token_url.to_string(),
            account,
            settings,
            client,
            current: ArcSwapOption::empty(),
            finished: AtomicU64::new(0),
            flight: tokio::sync::Mutex::new(None),
        }
    }

    pub fn account(&self) -> &ServiceAccount {
        &self.account
    }

    /// `Bearer <access token>` (sensitive), from the cache while it is not due
    /// for replacement, else after a refresh.
    pub async fn header(&self) -> Result<HeaderValue, AuthError> {
        // read before the cache: a refresh finishing after this is one waited for
        let seen = self.finished.load(Ordering::Acquire);
        if let Some(t) = self.usable(|t| t.refresh_at) {
            return Ok(t);
        }
        let mut last_error = self.flight.lock().await;
        if let Some(t) = self.usable(|t| t.refresh_at) {
            return Ok(t);
        }
        if self.finished.load(Ordering::Acquire) != seen {
            // a refresh finished while this call waited: its outcome is this
            // call's too (a fresh token however short-lived, or its error)
            if let Some(t) = self.usable(|t| t.expires_at) {
                return Ok(t);
            }
            if let Some(e) = last_error.as_ref() {
                return Err(e.clone());
            }
        }
        let outcome = self.fetch().await;
        let result = match outcome {
            Ok(token) => {
                let value = token.value.clone();
                self.current.store(Some(std::sync::Arc::new(token)));
                *last_error = None;
                Ok(value)
            }
            Err(e) => {
                *last_error = Some(e.clone());
                // a token not yet expired still serves while its successor cannot be had
                match self.usable(|t| t.expires_at) {
                    Some(t) => {
                        tracing::warn!(error = %e, "access token refresh failed; the current token serves until it expires");
                        Ok(t)
                    }
                    None => Err(e),
                }
            }
        };
        self.finished.fetch_add(1, Ordering::Release);
        result
    }

    /// The cached token's header if now is before `until(token)`.
    fn usable(&self, until: impl Fn(&Token) -> Instant) -> Option<HeaderValue> {
        let guard = self.current.load();
        let token = guard.as_ref()?;
        (Instant::now() < until(token)).then(|| token.value.clone())
    }

    /// One token request, bounded by `settings.timeout`.
    async fn fetch(&self) -> Result<Token, AuthError> {
        let fetched_at = Instant::now();
        let assertion = self.assertion(SystemTime::now())?;
        let body = format!("grant_type={GRANT_TYPE}&assertion={assertion}");
        let req = Request::post(self.settings.token_url.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| AuthError::new("token request could not be built"))?;
        let timeout = self.settings.timeout;
        let exchange = async {
            let resp = upstream::send(&self.client, req, timeout)
                .await
                .map_err(|e| match e {
                    AttemptError::Connect(e) => {
                        AuthError::new(format!("token endpoint unreachable: {e}"))
                    }
                    AttemptError::Timeout => timed_out(timeout),
                    AttemptError::Other(e) | AttemptError::Auth(e) => {
                        AuthError::new(format!("token request failed: {e}"))
                    }
                })?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), ANSWER_MAX)
                .collect()
                .await
                .map_err(|e| {
                    AuthError::new(format!(
                        "token answer unreadable or over 64 KiB: {}",
                        crate::error::error_chain(&*e)
                    ))
                })?
                .to_bytes();
            Ok((status, body))
        };
        let (status, body) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| timed_out(timeout))??;
        if !status.is_success() {
            return Err(refused(status, &body));
        }
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|_| AuthError::new("token answer is not JSON with an access_token"))?;
        if answer.access_token.is_empty() {
            return Err(AuthError::new("token answer has an empty access_token"));
        }
        if answer
            .token_type
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
        {
            return Err(AuthError::new("token answer's token_type is not Bearer"));
        }
        let mut value =
            HeaderValue::try_from(format!("Bearer {}", answer.access_token)).map_err(|_| {
                AuthError::new("token answer's access_token is not a valid header value")
            })?;
        value.set_sensitive(true);
        let mut lifetime = Duration::from_secs(
            answer
                .expires_in
                .unwrap_or(DEFAULT_EXPIRES_IN)
                .min(EXPIRES_IN_MAX),
        );
        if let Some(max) = self.settings.max_ttl {
            lifetime = lifetime.min(max);
        }
        let expires_at = fetched_at + lifetime;
        let refresh_at = expires_at
            .checked_sub(self.settings.expire_early)
            .map_or(fetched_at, |t| t.max(fetched_at));
        Ok(Token {
            value,
            expires_at,
            refresh_at,
        })
    }

    /// The signed JWT: header {RS256, JWT, kid}, claims {iss, scope, aud, iat, exp}.
    fn assertion(&self, now: SystemTime) -> Result<String, AuthError> {
        let iat = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut head = Header::new(Algorithm::RS256);
        head.kid.clone_from(&self.account.private_key_id);
        let claims = Claims {
            iss: &self.account.client_email,
            scope: &self.scope,
            aud: &self.audience,
            iat,
            exp: iat + ASSERTION_SECS,
        };
        jsonwebtoken::encode(&head, &claims, &self.account.key)
            .map_err(|_| AuthError::new("the service account key could not sign the token request"))
    }
}

fn timed_out(timeout: Duration) -> AuthError {
    AuthError::new(format!(
        "token endpoint did not answer within {} ms",
        timeout.as_millis()
    ))
}

/// `token endpoint answered 400 (invalid_grant)`: the status and the OAuth
/// `error` code when there is one (only its code characters, bounded; never the
/// description, which could echo what was sent).
fn refused(status: StatusCode, body: &[u8]) -> AuthError {
    #[derive(Deserialize)]
    struct OAuthError<'a> {
        #[serde(borrow)]
        error: Option<std::borrow::Cow<'a, str>>,
    }
    let code: Option<String> = serde_json::from_slice::<OAuthError>(body)
        .ok()
        .and_then(|e| e.error)
        .map(|c| {
            c.chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                .take(64)
                .collect()
        })
        .filter(|c: &String| !c.is_empty());
    match code {
        Some(code) => AuthError::new(format!(
            "token endpoint answered {} ({code})",
            status.as_u16()
        )),
        None => AuthError::new(format!("token endpoint answered {}", status.as_u16())),
    }
}

#[cfg(test)]
#[path = "gcp_tests.rs"]
mod tests;
