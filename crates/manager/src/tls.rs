//! TLS on the manager's listener (rustls with the ring provider).
//!
//! The operator either supplies a certificate chain and key (PEM), or the manager
//! creates a self-signed certificate at first start and keeps it next to its
//! database, so clients can pin it (`--ca-cert`). Handshakes run in their own
//! tasks with a deadline, so a slow or silent client never stalls `accept`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Longest a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A PEM file holds nothing usable.
    #[error("{path}: {what}")]
    Pem {
        /// File.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// Certificate generation or rustls refused the material.
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// Where the certificate comes from.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// Operator-supplied PEM files.
    Files {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// Self-signed, created in `dir` at first start (`cert.pem`, `key.pem`) and
    /// reused afterwards.
    SelfSigned {
        /// Directory.
        dir: PathBuf,
        /// Names and addresses the certificate is valid for, besides
        /// `localhost`, 127.0.0.1 and ::1.
        names: Vec<String>,
    },
}

impl CertSource {
    /// The certificate file clients should trust.
    pub fn cert_path(&self) -> PathBuf {
        match self {
            CertSource::Files { cert, .. } => cert.clone(),
            CertSource::SelfSigned { dir, .. } => dir.join("cert.pem"),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io { path: path.to_path_buf(), source }
}

/// Creates a self-signed certificate and key in `dir` unless both exist.
pub fn ensure_self_signed(dir: &Path, names: &[String]) -> Result<(PathBuf, PathBuf), TlsError> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut sans: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    for n in names {
        if !sans.contains(n) {
            sans.push(n.clone());
        }
    }
    let ck = rcgen::generate_simple_self_signed(sans.clone()).map_err(|e| TlsError::Setup(e.to_string()))?;
    netslice_io::file::write_secret(&key, ck.signing_key.serialize_pem().trim_end()).map_err(io(&key))?;
    std::fs::write(&cert, ck.cert.pem()).map_err(io(&cert))?;
    tracing::info!("created a self-signed TLS certificate for {} in {}", sans.join(", "), cert.display());
    Ok((cert, key))
}

/// Loads the certificate and key into a rustls server config.
pub fn server_config(src: &CertSource) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let (cert, key) = match src {
        CertSource::Files { cert, key } => (cert.clone(), key.clone()),
        CertSource::SelfSigned { dir, names } => ensure_self_signed(dir, names)?,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .map_err(|e| TlsError::Pem { path: cert.clone(), what: e.to_string() })?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem { path: cert.clone(), what: e.to_string() })?;
    if chain.is_empty() {
        return Err(TlsError::Pem { path: cert, what: "no certificate in the file".into() });
    }
    let key_der =
        PrivateKeyDer::from_pem_file(&key).map_err(|e| TlsError::Pem { path: key.clone(), what: e.to_string() })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| TlsError::Setup(format!("{} with {}: {e}", cert.display(), key.display())))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A listener that hands out connections whose TLS handshake is done.
#[derive(Debug)]
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp`, shaking hands in the background.
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<TlsListener> {
        let addr = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!("TLS handshake with {peer} failed: {e}"),
                        Err(_) => tracing::debug!("TLS handshake with {peer} timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { rx, addr })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(x) => x,
            // The accept task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_created_once_and_reused() {
        let d = tempfile::tempdir().unwrap();
        let (c1, k1) = ensure_self_signed(d.path(), &["h1.example".into()]).unwrap();
        let first = std::fs::read(&c1).unwrap();
        let (c2, _) = ensure_self_signed(d.path(), &[]).unwrap();
        assert_eq!(first, std::fs::read(&c2).unwrap(), "second start reuses the certificate");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&k1).unwrap().permissions().mode() & 0o777, 0o600);
        server_config(&CertSource::SelfSigned { dir: d.path().into(), names: vec![] }).unwrap();
    }

    #[test]
    fn bad_pem_is_named() {
        let d = tempfile::tempdir().unwrap();
        let cert = d.path().join("c.pem");
        let key = d.path().join("k.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(&key, "nor a key").unwrap();
        let e = server_config(&CertSource::Files { cert: cert.clone(), key }).unwrap_err().to_string();
        assert!(e.contains("c.pem"), "{e}");
        let e = server_config(&CertSource::Files { cert: d.path().join("missing.pem"), key: cert }).unwrap_err();
        assert!(e.to_string().contains("missing.pem"), "{e}");
    }
}
