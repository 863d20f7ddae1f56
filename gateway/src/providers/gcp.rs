//! TEMP STUB
use std::time::Duration;
pub struct ServiceAccount {
    p: Option<String>,
}
impl ServiceAccount {
    pub fn parse(_json: &str) -> Result<ServiceAccount, String> {
        Ok(ServiceAccount { p: None })
    }
    pub fn project_id(&self) -> Option<&str> {
        self.p.as_deref()
    }
    pub fn token_uri(&self) -> Option<&str> {
        None
    }
}
pub struct GcpSettings {
    pub token_url: http::Uri,
    pub scopes: Vec<String>,
    pub max_ttl: Option<Duration>,
    pub expire_early: Duration,
    pub timeout: Duration,
}
pub struct TokenSource;
#[derive(Debug)]
pub struct AuthError(String);
impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl TokenSource {
    pub fn new(
        _sa: ServiceAccount,
        _s: GcpSettings,
        _c: crate::upstream::HttpClient,
    ) -> TokenSource {
        TokenSource
    }
    pub async fn header(&self) -> Result<http::HeaderValue, AuthError> {
        Err(AuthError("stub".into()))
    }
}
