//! Serving certificates: PEM loading, and reloading without a restart.
//!
//! The server resolves its certificate per handshake from an
//! `ArcSwap<CertifiedKey>`, so a reload swaps it for new connections while
//! open ones finish undisturbed. Reloads poll the files' *contents* (every
//! `--tls-reload-seconds`) rather than watching paths: Kubernetes Secret
//! volumes replace files by swapping a `..data` symlink, which path watchers
//! miss, while a read always follows the link. A broken new pair (half
//! written, key not matching) is logged and the old one kept.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tracing::{info, warn};

use crate::telemetry::{Metrics, labels};

/// The crypto provider tierguard uses (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A loaded certificate chain and key, with the leaf's expiry.
pub struct Loaded {
    /// The chain and signing key.
    pub key: Arc<CertifiedKey>,
    /// The leaf certificate's notAfter, as a Unix timestamp.
    pub not_after: i64,
}

/// Parses a PEM certificate chain (leaf first) and a PEM private key.
pub fn parse(cert_pem: &[u8], key_pem: &[u8], origin: &str) -> Result<Loaded> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!("{origin}: certificate PEM: {e}"))?;
    if chain.is_empty() {
        bail!("{origin}: no CERTIFICATE block in the certificate file");
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| anyhow!("{origin}: private key PEM: {e}"))?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| anyhow!("{origin}: unsupported private key: {e}"))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| anyhow!("{origin}: the private key does not match the certificate: {e}"))?;
    let (_, leaf) = x509_parser::parse_x509_certificate(certified.cert[0].as_ref())
        .map_err(|e| anyhow!("{origin}: cannot parse the certificate: {e}"))?;
    Ok(Loaded {
        not_after: leaf.validity().not_after.timestamp(),
        key: Arc::new(certified),
    })
}

/// Certificate and key files, and the pair currently served.
pub struct CertStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: ArcSwap<CertifiedKey>,
    last_bytes: std::sync::Mutex<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish()
    }
}

fn read_pair(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>)> {
    let c = std::fs::read(cert).with_context(|| format!("{}: cannot read", cert.display()))?;
    let k = std::fs::read(key).with_context(|| format!("{}: cannot read", key.display()))?;
    Ok((c, k))
}

// === impl CertStore ===

impl CertStore {
    /// Loads the pair; fails when it cannot be served.
    pub fn load(cert_path: &Path, key_path: &Path, metrics: &Metrics) -> Result<Arc<Self>> {
        let (c, k) = read_pair(cert_path, key_path)?;
        let loaded = parse(&c, &k, &cert_path.display().to_string())?;
        metrics.cert_expiry.set(loaded.not_after as f64);
        Ok(Arc::new(Self {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            current: ArcSwap::new(loaded.key),
            last_bytes: std::sync::Mutex::new((c, k)),
        }))
    }

    /// Re-reads the files; swaps in a changed, valid pair. Returns whether it
    /// swapped.
    pub fn reload(&self, metrics: &Metrics) -> bool {
        let (c, k) = match read_pair(&self.cert_path, &self.key_path) {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "cannot read certificate files; keeping the current pair");
                metrics
                    .cert_reloads
                    .get_or_create(&labels(&[("result", "error")]))
                    .inc();
                return false;
            }
        };
        let mut last = self.last_bytes.lock().unwrap_or_else(|e| e.into_inner());
        if last.0 == c && last.1 == k {
            return false;
        }
        match parse(&c, &k, &self.cert_path.display().to_string()) {
            Ok(loaded) => {
                self.current.store(loaded.key);
                metrics.cert_expiry.set(loaded.not_after as f64);
                metrics
                    .cert_reloads
                    .get_or_create(&labels(&[("result", "reloaded")]))
                    .inc();
                info!(cert = %self.cert_path.display(), not_after = loaded.not_after, "serving certificate reloaded");
                *last = (c, k);
                true
            }
            Err(e) => {
                // Possibly caught mid-update: retry on the next tick.
                warn!(error = %e, "new certificate pair is not usable yet; keeping the current pair");
                metrics
                    .cert_reloads
                    .get_or_create(&labels(&[("result", "error")]))
                    .inc();
                false
            }
        }
    }

    /// Polls the files forever.
    pub async fn watch(self: Arc<Self>, every: Duration, metrics: Arc<Metrics>) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.reload(&metrics);
        }
    }

    /// The rustls server configuration serving this store (TLS 1.2 and 1.3,
    /// HTTP/2 and HTTP/1.1).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>> {
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| anyhow!("TLS configuration: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}
