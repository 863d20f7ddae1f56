//! Server-side TLS (rustls, ring): certificate chain and key from PEM files, ALPN
//! offering h2 and http/1.1. Built when the runtime is assembled; the listener
//! uses what it built.

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

/// What is wrong with a PEM file, without its path or any of its content (a PEM
/// error can quote a line of the file, and the key file is a secret).
fn pem_reason(what: &str, e: &pem::Error) -> String {
    match e {
        pem::Error::Io(io) => format!("cannot read the {what} file: {io}"),
        pem::Error::NoItemsFound => format!("no {what} found in the file"),
        _ => format!("the {what} file is not valid PEM"),
    }
}

/// Where the certificate chain and its private key are (`server.tls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    /// PEM file of the certificate chain
    pub cert: String,
    /// PEM file of the private key
    pub key: String,
}

impl From<&shared::config::TlsConfig> for Files {
    fn from(t: &shared::config::TlsConfig) -> Files {
        Files {
            cert: t.cert.as_str().to_string(),
            key: t.key.as_str().to_string(),
        }
    }
}

/// The server config from the `cert` and `key` PEM files; an error names the
/// `server.tls` key it is about (".cert", ".key" or "") and the reason.
pub fn server_config(files: &Files) -> Result<rustls::ServerConfig, (&'static str, String)> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| (".cert", pem_reason("certificate", &e)))?;
    if certs.is_empty() {
        return Err((".cert", "no certificate found in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| (".key", pem_reason("private key", &e)))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ("", format!("TLS setup failed: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            (
                "",
                format!("certificate and key do not form a usable pair: {e}"),
            )
        })?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}
