//! Real TLS: rustls server and client, certificates from a test CA, and a
//! certificate rotation done the way Kubernetes updates a Secret volume (an
//! atomic swap of the `..data` symlink) while requests keep flowing — with no
//! failed request.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls_pki_types::pem::PemObject;
use serde_json::json;
use tierguard::admission::{Ctx, router};
use tierguard::certs::Ca;
use tierguard::tls::CertStore;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Lays out `dir` like a mounted Secret: `..<version>/tls.{crt,key}`,
/// `..data -> ..<version>`, `tls.crt -> ..data/tls.crt`.
fn write_secret_version(dir: &Path, version: &str, cert: &str, key: &str) {
    let v = dir.join(format!("..{version}"));
    std::fs::create_dir_all(&v).expect("mkdir");
    std::fs::write(v.join("tls.crt"), cert).expect("write cert");
    std::fs::write(v.join("tls.key"), key).expect("write key");
    // Atomic swap: a new symlink renamed over ..data.
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("..{version}"), &tmp).expect("symlink");
    std::fs::rename(&tmp, dir.join("..data")).expect("swap");
    for f in ["tls.crt", "tls.key"] {
        let link = dir.join(f);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{f}"), &link).expect("symlink file");
        }
    }
}

fn ctx() -> Arc<Ctx> {
    common::TestCtx::three_tier()
        .state(Default::default())
        .no_editors()
        .no_pod_guard()
        .build()
}

fn review_body() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u", "kind": {"group": "", "version": "v1", "kind": "Namespace"},
            "resource": {"group": "", "version": "v1", "resource": "namespaces"},
            "name": "shop", "operation": "CREATE", "userInfo": {"username": "alice"},
            "object": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}, "dryRun": false
        }
    }))
    .expect("json")
}

struct Client {
    connector: TlsConnector,
    addr: std::net::SocketAddr,
}

impl Client {
    /// Opens a keep-alive connection; returns the sender and the serial of
    /// the certificate the server presented.
    async fn connect(
        &self,
    ) -> anyhow::Result<(
        hyper::client::conn::http1::SendRequest<Full<Bytes>>,
        Vec<u8>,
    )> {
        let tcp = TcpStream::connect(self.addr).await?;
        let tls = self
            .connector
            .connect(ServerName::try_from("localhost").expect("name"), tcp)
            .await?;
        let leaf = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec())
            .unwrap_or_default();
        let (_, parsed) =
            x509_parser::parse_x509_certificate(&leaf).map_err(|e| anyhow::anyhow!("{e}"))?;
        let serial = parsed.raw_serial().to_vec();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        Ok((sender, serial))
    }
}

async fn send(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
) -> anyhow::Result<()> {
    let req = hyper::Request::post("/mutate")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(review_body())))?;
    let resp = sender.send_request(req).await?;
    anyhow::ensure!(resp.status() == 200, "status {}", resp.status());
    let body = resp.into_body().collect().await?.to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    anyhow::ensure!(v["response"]["allowed"] == true, "not allowed: {v}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_by_symlink_swap_drops_no_request() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = common::tempdir("tls");
    let ca = Ca::new("tierguard test CA").expect("ca");
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let first = ca.issue(&names, (2031, 1, 1)).expect("leaf 1");
    let second = ca.issue(&names, (2032, 6, 1)).expect("leaf 2");
    write_secret_version(&dir, "2026_11_23_01", &first.cert_pem, &first.key_pem);

    let c = ctx();
    let store =
        CertStore::load(&dir.join("tls.crt"), &dir.join("tls.key"), &c.metrics).expect("load");
    let expiry_before = c.metrics.cert_expiry.get();
    let tls = store.server_config().expect("config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tierguard::server::serve_tls(
        listener,
        tls,
        router(c.clone(), false),
        tierguard::server::Limits::default(),
        c.metrics.clone(),
        async {
            let _ = stop_rx.await;
        },
    ));
    tokio::spawn(
        store
            .clone()
            .watch(Duration::from_millis(50), c.metrics.clone()),
    );

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).expect("ca der"))
        .expect("root");
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Full handshakes only: a resumed session reports the first session's certificate.
    config.resumption = rustls::client::Resumption::disabled();
    let client = Arc::new(Client {
        connector: TlsConnector::from(Arc::new(config)),
        addr,
    });
    let (_, serial_before) = client.connect().await.expect("first connection");

    // Request loops: two keep-alive connections and one that reconnects every time.
    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut loops = Vec::new();
    for reconnect in [false, false, true] {
        let (client, failures, done, stop) =
            (client.clone(), failures.clone(), done.clone(), stop.clone());
        loops.push(tokio::spawn(async move {
            let mut conn = client.connect().await.ok().map(|c| c.0);
            while !stop.load(Ordering::Relaxed) {
                if reconnect || conn.is_none() {
                    conn = client.connect().await.ok().map(|c| c.0);
                }
                let ok = match conn.as_mut() {
                    Some(s) => send(s).await.is_ok(),
                    None => false,
                };
                if ok {
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    write_secret_version(&dir, "2026_11_23_02", &second.cert_pem, &second.key_pem);
    // Wait until new connections see the new certificate.
    let mut rotated = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Ok((_, serial)) = client.connect().await
            && serial != serial_before
        {
            rotated = true;
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.await.expect("loop");
    }
    assert!(rotated, "the server never presented the new certificate");
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "requests failed during rotation"
    );
    assert!(
        done.load(Ordering::Relaxed) > 20,
        "too few requests to mean anything: {}",
        done.load(Ordering::Relaxed)
    );
    assert!(
        c.metrics.cert_expiry.get() > expiry_before,
        "expiry metric follows the new certificate"
    );

    // A broken pair (key of another certificate) is refused and the current one kept.
    write_secret_version(&dir, "2026_11_23_03", &first.cert_pem, &second.key_pem);
    assert!(!store.reload(&c.metrics));
    let (mut s, serial) = client.connect().await.expect("still serving");
    assert_ne!(serial, serial_before);
    send(&mut s).await.expect("still answering");

    let _ = stop_tx.send(());
    server.await.expect("join").expect("server");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_pem_is_a_clear_error() {
    let c = ctx();
    let dir = common::tempdir("tls");
    std::fs::write(dir.join("tls.crt"), "not pem").expect("write");
    std::fs::write(dir.join("tls.key"), "not pem").expect("write");
    let err = CertStore::load(&dir.join("tls.crt"), &dir.join("tls.key"), &c.metrics)
        .expect_err("invalid");
    assert!(
        format!("{err:#}").contains("no CERTIFICATE block"),
        "{err:#}"
    );
    let err = CertStore::load(&dir.join("missing.crt"), &dir.join("tls.key"), &c.metrics)
        .expect_err("missing");
    assert!(
        format!("{err:#}").contains("missing.crt: cannot read"),
        "{err:#}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_chain_is_accepted() {
    let c = ctx();
    let dir = common::tempdir("tls");
    let ca = Ca::new("root").expect("ca");
    let leaf = ca
        .issue(&["localhost".to_string()], (2030, 1, 1))
        .expect("leaf");
    std::fs::write(
        dir.join("tls.crt"),
        format!("{}{}", leaf.cert_pem, ca.cert_pem()),
    )
    .expect("write");
    std::fs::write(dir.join("tls.key"), &leaf.key_pem).expect("write");
    CertStore::load(&dir.join("tls.crt"), &dir.join("tls.key"), &c.metrics)
        .expect("a leaf followed by its CA loads");
    let _ = std::fs::remove_dir_all(&dir);
}
