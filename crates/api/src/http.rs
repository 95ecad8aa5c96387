//! The HTTPS client every client of the manager uses (the CLI, the agents,
//! the tests).
//!
//! The manager's listener speaks TLS only. A client either pins a certificate
//! (`--ca-cert FILE`: the manager's self-signed certificate, or the operator's CA)
//! or trusts the platform's roots.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The certificate file is unreadable or holds no certificate.
    #[error("trusted certificate {path}: {what}")]
    Cert {
        /// File.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// reqwest refused the configuration.
    #[error("HTTP client: {0}")]
    Build(#[from] reqwest::Error),
}

/// Installs the ring provider as the process default (once; later calls are no-ops).
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// How long an idle connection to the manager is kept for reuse.
pub const POOL_IDLE: Duration = Duration::from_secs(5);

/// A client that trusts exactly the certificates in `ca` (PEM), or the
/// platform's roots when `ca` is None.
pub fn client(ca: Option<&Path>, connect_timeout: Duration) -> Result<reqwest::Client, ClientError> {
    install_crypto();
    // The manager closes a connection that sends no request for 10 s (its
    // header timeout, against clients that trickle their headers); a pooled
    // connection is dropped here before that, so that a request never goes out
    // on a connection the manager is closing.
    let builder = reqwest::Client::builder().connect_timeout(connect_timeout).pool_idle_timeout(POOL_IDLE);
    let Some(ca) = ca else {
        return Ok(builder.build()?);
    };
    let err = |what: String| ClientError::Cert { path: ca.display().to_string(), what };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no certificate in the file".into()));
    }
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        roots.add(c).map_err(|e| err(e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(builder.tls_backend_preconfigured(tls).build()?)
}
