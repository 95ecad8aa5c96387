//! Raw HTTP/1.1 over TLS to a manager, for requests no well-behaved client
//! sends: bodies that trickle in, chunked bodies, broken framing.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What came back: the status (if a response came at all), the body, and
/// how long after the first byte was sent.
#[derive(Debug)]
pub struct Answer {
    pub status: Option<u16>,
    pub body: String,
    pub elapsed: Duration,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

fn config(cert: &Path) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).expect("cert file") {
        roots.add(c.expect("cert")).expect("add cert");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(cfg)
}

/// Sends `parts` (each after its pause) on a new TLS connection to `url`
/// (`https://127.0.0.1:port`) and reads until the server closes or `limit`
/// passes.
pub async fn exchange(url: &str, cert: &Path, parts: Vec<(Duration, Vec<u8>)>, limit: Duration) -> Answer {
    let addr = url.trim_start_matches("https://").to_string();
    let tcp = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let connector = tokio_rustls::TlsConnector::from(config(cert));
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap().to_owned();
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let start = Instant::now();
    let (mut rd, mut wr) = tokio::io::split(&mut tls);
    let writer = async move {
        for (pause, bytes) in parts {
            tokio::time::sleep(pause).await;
            if wr.write_all(&bytes).await.is_err() || wr.flush().await.is_err() {
                break;
            }
        }
        // Keep the connection open: the answer ends the exchange.
        std::future::pending::<()>().await;
    };
    let mut got = Vec::new();
    let reader = async {
        let mut buf = [0u8; 8192];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            if complete(&got) {
                break;
            }
        }
    };
    tokio::select! {
        _ = writer => {}
        _ = reader => {}
        _ = tokio::time::sleep(limit) => {}
    }
    let elapsed = start.elapsed();
    let text = String::from_utf8_lossy(&got).to_string();
    let status = text.strip_prefix("HTTP/1.1 ").and_then(|r| r.get(..3)).and_then(|s| s.parse().ok());
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    // A chunked answer: take the first chunk's data.
    let body = if text.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body.split_once("\r\n")
            .map(|(_, rest)| rest.rsplit_once("\r\n0\r\n").map(|(b, _)| b).unwrap_or(rest).trim_end().to_string())
            .unwrap_or(body)
    } else {
        body
    };
    Answer { status, body, elapsed }
}

/// A request head with `Connection: close`.
pub fn head(method: &str, path: &str, token: Option<&str>, extra: &[&str]) -> Vec<u8> {
    let mut h = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(t) = token {
        h.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for e in extra {
        h.push_str(e);
        h.push_str("\r\n");
    }
    h.push_str("\r\n");
    h.into_bytes()
}

/// Whether `got` holds a whole response with a Content-Length (the server may
/// keep the connection open a while to read the rest of a refused body).
fn complete(got: &[u8]) -> bool {
    let text = String::from_utf8_lossy(got);
    let Some((head, body)) = text.split_once("\r\n\r\n") else { return false };
    head.lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().ok()))
        .flatten()
        .is_some_and(|n| body.len() >= n)
}
