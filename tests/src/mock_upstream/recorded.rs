//! A request as the mock received it, kept so that tests assert what the gateway
//! sent.

use bytes::Bytes;
use serde_json::Value;

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path_and_query: String,
    /// Header names lowercased, in arrival order (values decoded lossily).
    pub headers: Vec<(String, String)>,
    /// Names of the headers whose value was not valid UTF-8.
    pub non_utf8_headers: Vec<String>,
    /// The body parsed as JSON, `Value::Null` when it is not JSON.
    pub body: Value,
    /// The body as received.
    pub raw_body: Bytes,
}

impl RecordedRequest {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(self.path_and_query.as_str(), |(p, _)| p)
    }
}
