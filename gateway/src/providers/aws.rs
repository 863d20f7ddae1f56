//! AWS credentials for Bedrock: every request signed with SigV4 (the `aws-sigv4`
//! crate, as the AWS SDKs sign) from static keys and an optional session token.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::header::{HeaderName, AUTHORIZATION, HOST};
use http::{HeaderValue, Request};
use std::fmt;
use std::time::SystemTime;

const X_AMZ_DATE: HeaderName = HeaderName::from_static("x-amz-date");
const X_AMZ_SECURITY_TOKEN: HeaderName = HeaderName::from_static("x-amz-security-token");

/// Static AWS credentials (`auth.aws`, or `AWS_*` from the environment).
#[derive(Clone)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Signs requests for one service in one region.
pub struct Signer {
    identity: Identity,
    access_key_id: String,
    region: String,
    service: &'static str,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("access_key_id", &self.access_key_id)
            .field("region", &self.region)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// `service` is the signing name: `bedrock` for Bedrock Runtime.
    pub fn new(creds: AwsCredentials, region: String, service: &'static str) -> Signer {
        let access_key_id = creds.access_key_id.clone();
        let identity = Credentials::new(
            creds.access_key_id,
            creds.secret_access_key,
            creds.session_token,
            None,
            "gateway-config",
        )
        .into();
        Signer {
            identity,
            access_key_id,
            region,
            service,
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// Signs `req` as of now: see [`Signer::sign_at`].
    pub fn sign(&self, req: &mut Request<Bytes>) -> Result<(), String> {
        self.sign_at(req, SystemTime::now())
    }

    /// Signs the method, the URI's path and query as sent, every header present
    /// (a `host` is added from the URI when absent) and the body's SHA-256; adds
    /// `authorization`, `x-amz-date` and, with a session token,
    /// `x-amz-security-token` (signed too). A signature already present is replaced.
    ///
    /// The path is canonicalised the way AWS expects for every service but S3:
    /// the URI is taken as encoded once (a Bedrock model id or ARN is
    /// percent-encoded once when the URL is built, `:` as `%3A`) and its
    /// segments are encoded once more for the canonical request (`%3A` ->
    /// `%253A`): `SigningSettings::default()`'s `PercentEncodingMode::Double`
    /// with path normalisation, which is what the AWS SDKs sign Bedrock with.
    pub fn sign_at(&self, req: &mut Request<Bytes>, time: SystemTime) -> Result<(), String> {
        let uri = req.uri();
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return Err("cannot sign a request whose URI has no scheme or host".into());
        };
        if !req.headers().contains_key(HOST) {
            // the default port is left out, as the signer and hyper both do
            let host = match (scheme, uri.port_u16()) {
                ("http", Some(80)) | ("https", Some(443)) | (_, None) => host.to_owned(),
                (_, Some(port)) => format!("{host}:{port}"),
            };
            let value = HeaderValue::try_from(host)
                .map_err(|_| "the URI's host is not a valid header value".to_string())?;
            req.headers_mut().insert(HOST, value);
        }
        for name in [AUTHORIZATION, X_AMZ_DATE, X_AMZ_SECURITY_TOKEN] {
            req.headers_mut().remove(name);
        }

        let headers = req
            .headers()
            .iter()
            .map(|(name, value)| match value.to_str() {
                Ok(v) => Ok((name.as_str(), v)),
                Err(_) => Err(format!("cannot sign header {name}: not visible ASCII")),
            })
            .collect::<Result<Vec<_>, String>>()?;
        let uri = req.uri().to_string();
        let signable = SignableRequest::new(
            req.method().as_str(),
            uri.as_str(),
            headers.into_iter(),
            SignableBody::Bytes(req.body()),
        )
        .map_err(|e| format!("cannot sign the request: {}", crate::error::error_chain(&e)))?;
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name(self.service)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| format!("cannot sign the request: {e}"))?
            .into();
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| format!("cannot sign the request: {}", crate::error::error_chain(&e)))?
            .into_parts();

        let (headers, _query) = instructions.into_parts();
        for h in headers {
            let mut value = HeaderValue::from_str(h.value())
                .map_err(|_| format!("the signature's {} is not a valid header value", h.name()))?;
            value.set_sensitive(h.sensitive() || h.name() == AUTHORIZATION);
            req.headers_mut().insert(h.name(), value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    const KEY_ID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    /// the session token of the suite's `post-sts-header-before` case
    const TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";
    /// 20150830T123600Z, the suite's time
    const SUITE_TIME: u64 = 1_440_938_160;

    fn signer(token: Option<&str>, region: &str, service: &'static str) -> Signer {
        let creds = AwsCredentials {
            access_key_id: KEY_ID.into(),
            secret_access_key: SECRET.into(),
            session_token: token.map(str::to_owned),
        };
        Signer::new(creds, region.into(), service)
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn request(method: &str, uri: &str, body: &'static [u8]) -> Request<Bytes> {
        Request::builder()
            .method(method)
            .uri(uri)
            .body(Bytes::from_static(body))
            .unwrap()
    }

    fn header<'a>(req: &'a Request<Bytes>, name: &str) -> &'a str {
        req.headers()[name].to_str().unwrap()
    }

    fn suite_authorization(signed_headers: &str, signature: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders={signed_headers}, Signature={signature}"
        )
    }

    /// aws-sig-v4-test-suite `get-vanilla` and `post-vanilla`, byte for byte.
    #[test]
    fn the_published_vanilla_cases_are_reproduced() {
        let cases = [
            (
                "GET",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
            (
                "POST",
                "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            ),
        ];
        for (method, signature) in cases {
            let mut req = request(method, "https://example.amazonaws.com/", b"");
            signer(None, "us-east-1", "service")
                .sign_at(&mut req, at(SUITE_TIME))
                .unwrap();
            assert_eq!(header(&req, "host"), "example.amazonaws.com");
            assert_eq!(header(&req, "x-amz-date"), "20150830T123600Z");
            assert_eq!(
                header(&req, "authorization"),
                suite_authorization("host;x-amz-date", signature)
            );
            assert!(req.headers()["authorization"].is_sensitive());
            assert!(!req.headers().contains_key("x-amz-security-token"));
        }
    }

    /// `post-sts-header-before`: the session token is sent and signed.
    #[test]
    fn a_session_token_is_sent_and_signed() {
        let mut req = request("POST", "https://example.amazonaws.com/", b"");
        signer(Some(TOKEN), "us-east-1", "service")
            .sign_at(&mut req, at(SUITE_TIME))
            .unwrap();
        assert_eq!(header(&req, "x-amz-security-token"), TOKEN);
        assert!(req.headers()["x-amz-security-token"].is_sensitive());
        assert_eq!(
            header(&req, "authorization"),
            suite_authorization(
                "host;x-amz-date;x-amz-security-token",
                "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"
            )
        );
    }

    /// The suite's `double-url-encode` case: an ARN in the path, encoded once in
    /// the URI, twice in the canonical request, as a Bedrock model id or
    /// inference profile ARN is.
    #[test]
    fn a_percent_encoded_path_is_encoded_again_for_the_canonical_request() {
        let uri = "https://lambda.us-east-2.amazonaws.com/2015-03-31/functions/\
                   arn%3Aaws%3Alambda%3Aus-west-2%3A892717189312%3Afunction%3Amy-rusty-fun/invocations";
        let mut req = request("POST", uri, b"");
        signer(None, "us-east-2", "lambda")
            .sign_at(&mut req, at(1_620_747_645)) // 20210511T154045Z
            .unwrap();
        assert_eq!(
            header(&req, "authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20210511/us-east-2/lambda/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=4b93abbcc68be32bd64c18e2c71150660ab4c29bbd6c32a383a7517a88fc1804"
        );
        // the URI itself is sent as it was built
        assert_eq!(req.uri().to_string(), uri);
    }

    #[test]
    fn a_bedrock_request_signs_its_headers_and_body() {
        let uri = "https://bedrock-runtime.us-east-1.amazonaws.com/model/\
                   anthropic.claude-3-haiku-20240307-v1%3A0/converse";
        let sign = |body: &'static [u8], token: Option<&str>| {
            let mut req = request("POST", uri, body);
            req.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            signer(token, "us-east-1", "bedrock")
                .sign_at(&mut req, at(SUITE_TIME))
                .unwrap();
            req
        };
        let req = sign(b"{\"messages\":[]}", None);
        let auth = header(&req, "authorization");
        assert!(auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, Signature="
        ));
        assert_eq!(
            header(&req, "host"),
            "bedrock-runtime.us-east-1.amazonaws.com"
        );
        // the body is part of the signature
        let other = sign(b"{\"messages\":[1]}", None);
        assert_ne!(auth, header(&other, "authorization"));
        // signing again replaces the signature rather than adding one
        let mut again = req.clone();
        signer(Some(TOKEN), "us-east-1", "bedrock")
            .sign_at(&mut again, at(SUITE_TIME))
            .unwrap();
        assert_eq!(again.headers().get_all("authorization").iter().count(), 1);
        assert!(header(&again, "authorization")
            .contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,"));
    }

    #[test]
    fn a_non_default_port_is_part_of_the_host() {
        let mut req = request("POST", "http://127.0.0.1:8123/model/m/converse", b"{}");
        signer(None, "us-east-1", "bedrock").sign(&mut req).unwrap();
        assert_eq!(header(&req, "host"), "127.0.0.1:8123");
    }

    #[test]
    fn no_output_carries_the_secret_or_the_token() {
        let s = signer(Some(TOKEN), "us-east-1", "bedrock");
        let creds = AwsCredentials {
            access_key_id: KEY_ID.into(),
            secret_access_key: SECRET.into(),
            session_token: Some(TOKEN.into()),
        };
        let mut outputs = vec![format!("{creds:?}"), format!("{s:?}")];
        assert!(outputs[0].contains(KEY_ID));

        let mut relative = request("POST", "/model/m/converse", b"");
        outputs.push(s.sign(&mut relative).unwrap_err());
        let mut bad_header = request("POST", "https://h.example/", b"");
        bad_header
            .headers_mut()
            .insert("x-odd", HeaderValue::from_bytes(b"\xff").unwrap());
        outputs.push(s.sign(&mut bad_header).unwrap_err());
        assert_eq!(outputs[3], "cannot sign header x-odd: not visible ASCII");

        let mut ok = request("POST", "https://h.example/", b"");
        s.sign(&mut ok).unwrap();
        outputs.push(format!("{:?}", ok.headers()));
        for out in &outputs {
            assert!(!out.contains(SECRET), "{out}");
            assert!(!out.contains(TOKEN), "{out}");
        }
    }
}
