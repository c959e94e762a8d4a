//! A rolling update drops no admission: two `tierguard serve` replicas
//! behind haproxy (the Service), the real kube-apiserver as the admission
//! client (its webhook client: HTTP/2 over TLS, a new connection when the
//! server closes one), NetworkPolicy creates (`failurePolicy: Fail`) from
//! concurrent clients; one replica gets SIGTERM mid-load. Every create must
//! get tierguard's answer, the replica must exit 0 within its grace period,
//! and the other must carry the load after it.
//!
//! `TIERGUARD_DRAIN_TEST_SECONDS` sets both replicas' `--drain-seconds`
//! (default 2); with 0 the same test sees failed admissions
//! (docs/rolling-updates.md).

use std::process::Command;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::haproxy::{self, Haproxy};
use crate::harness::{Cluster, Replica};

/// Concurrent clients creating NetworkPolicies.
const CLIENTS: usize = 16;
/// Load before the SIGTERM, and after the replica has exited.
const BEFORE: Duration = Duration::from_secs(3);
const AFTER: Duration = Duration::from_secs(3);
/// A create not answered within this is a timeout (the webhooks' own
/// timeoutSeconds is 5).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// After `--drain-seconds`, what shutdown may take at most: in-flight
/// requests finishing (10 s) and the controller stepping down (5 s) — the
/// deployment's grace period without its preStop sleep and margin.
const SHUTDOWN_AFTER_DRAIN: Duration = Duration::from_secs(15);

/// What happened to the creates.
#[derive(Default)]
struct Tally {
    admitted: u64,
    refused: u64,
    /// Seconds since the SIGTERM (negative before it) and the error.
    failed: Vec<(f64, String)>,
}

fn drain_seconds() -> u64 {
    std::env::var("TIERGUARD_DRAIN_TEST_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

fn policy(name: &str) -> NetworkPolicy {
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name},
        "spec": {"podSelector": {"matchLabels": {"app": name}}, "policyTypes": ["Ingress"]},
    }))
    .expect("a NetworkPolicy")
}

/// One client: creates until `stop`, recording each outcome.
async fn client(
    api: Api<NetworkPolicy>,
    id: usize,
    stop: Arc<AtomicBool>,
    sigterm: Arc<Mutex<Option<Instant>>>,
    tally: Arc<Mutex<Tally>>,
) {
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let name = format!("load-{id}-{i}");
        let r = tokio::time::timeout(
            CLIENT_TIMEOUT,
            api.create(&PostParams::default(), &policy(&name)),
        )
        .await;
        let failure = match r {
            Ok(Ok(_)) => None,
            Ok(Err(kube::Error::Api(e)))
                if e.code == 403 && e.message.contains("denied the request") =>
            {
                tally.lock().expect("tally").refused += 1;
                continue;
            }
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no answer within {CLIENT_TIMEOUT:?}")),
        };
        let mut t = tally.lock().expect("tally");
        match failure {
            None => t.admitted += 1,
            Some(e) => {
                let at = sigterm.lock().expect("sigterm").map_or(-1.0, |s| {
                    Instant::now().saturating_duration_since(s).as_secs_f64()
                });
                t.failed.push((at, e));
            }
        }
    }
}

/// Polls `try_wait` until the replica exits or `limit` passes.
fn wait_exit(r: &mut Replica, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    let child = r.child.as_mut()?;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            r.child = None;
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The kube-apiserver's count of webhook calls that failed (no answer, or
/// not an AdmissionReview), from its /metrics.
fn apiserver_webhook_call_errors(c: &Cluster) -> u64 {
    let out = c.kubectl(&["get", "--raw", "/metrics"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            l.starts_with("apiserver_admission_webhook_rejection_count")
                && l.contains("error_type=\"calling_webhook_error\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[test]
fn rolling_update_drops_no_admission() {
    let _serial = crate::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(haproxy_bin) = haproxy::binary() else {
        return;
    };
    let drain = drain_seconds();
    let started = Instant::now();
    let Some(mut c) = Cluster::start("drain", &[], "") else {
        return;
    };
    let drain_flag = drain.to_string();
    let extra = ["--drain-seconds", drain_flag.as_str()];
    let mut a = c.start_replica("a", &extra);
    let mut b = c.start_replica("b", &extra);
    let lb = Haproxy::start(&haproxy_bin, &c.dir, &[&a, &b]);
    let ns = c.kubectl(&["create", "namespace", "load"]);
    assert!(
        ns.status.success(),
        "{}",
        String::from_utf8_lossy(&ns.stderr)
    );

    // Point the webhooks at haproxy; once the replicas answer, the API
    // server uses the new configuration and the cluster's own webhook can go.
    c.register_at(lb.port);
    let answered = |r: &Replica| r.admissions_answered().unwrap_or(0);
    c.eventually(30, "the API server calling the replicas", || {
        let probe = serde_json::to_string(&policy("probe")).expect("json");
        let _ = c.kubectl_stdin(
            &["create", "--dry-run=server", "-n", "load", "-f", "-"],
            &probe,
        );
        answered(&a) + answered(&b) > 0
    });
    c.stop_webhook();
    let setup = started.elapsed();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let config = rt
        .block_on(async {
            let kc = kube::config::Kubeconfig::read_from(&c.kubeconfig)?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default()).await
        })
        .expect("kubeconfig");
    let kube_client = {
        let _guard = rt.enter();
        kube::Client::try_from(config).expect("kube client")
    };
    let stop = Arc::new(AtomicBool::new(false));
    let sigterm_at = Arc::new(Mutex::new(None));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let workers: Vec<_> = (0..CLIENTS)
        .map(|id| {
            rt.spawn(client(
                Api::namespaced(kube_client.clone(), "load"),
                id,
                stop.clone(),
                sigterm_at.clone(),
                tally.clone(),
            ))
        })
        .collect();
    let load_start = Instant::now();
    std::thread::sleep(BEFORE);

    // The replica the API server's connections reach most is terminated.
    let (before_a, before_b) = (answered(&a), answered(&b));
    let (victim, survivor) = if before_a >= before_b {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    let victim_before = before_a.max(before_b);
    let other_before = before_a.min(before_b);
    let pid = victim.pid().expect("victim running");
    *sigterm_at.lock().expect("sigterm") = Some(Instant::now());
    let sigterm = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success(), "kill -TERM {pid} failed");
    let grace = Duration::from_secs(drain) + SHUTDOWN_AFTER_DRAIN;
    let status = wait_exit(victim, grace);
    let exited_after = sigterm.elapsed();
    let survivor_at_exit = answered(survivor);
    std::thread::sleep(AFTER);
    let survivor_end = answered(survivor);
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for w in workers {
            let _ = w.await;
        }
    });
    let load_time = load_start.elapsed();
    let call_errors = apiserver_webhook_call_errors(&c);
    eprintln!("[drain] haproxy: {}", lb.sessions(&c.dir));

    let t = tally.lock().expect("tally");
    let sent = t.admitted + t.refused + t.failed.len() as u64;
    eprintln!(
        "[drain] --drain-seconds {drain}: setup {:.1}s; {sent} creates in {:.1}s ({:.0}/s, {CLIENTS} clients): \
         {} admitted, {} refused, {} failed; replica {} (answered {victim_before} before SIGTERM, the other {}) exited {:?} \
         after {:.2}s (grace {}s); replica {} answered {} after that exit; kube-apiserver webhook call errors: {call_errors}",
        setup.as_secs_f64(),
        load_time.as_secs_f64(),
        sent as f64 / load_time.as_secs_f64(),
        t.admitted,
        t.refused,
        t.failed.len(),
        victim.name,
        other_before,
        status,
        exited_after.as_secs_f64(),
        grace.as_secs(),
        survivor.name,
        survivor_end.saturating_sub(survivor_at_exit),
    );
    for (at, e) in t.failed.iter().take(10) {
        eprintln!("[drain]   failed {at:+.2}s after SIGTERM: {e}");
    }
    let failed = t.failed.len();
    let victim_log = victim.log();
    drop(t);

    assert!(victim_before > 0, "the terminated replica served nothing");
    assert_eq!(failed, 0, "admissions failed during the rolling update");
    assert_eq!(call_errors, 0, "the API server saw failed webhook calls");
    let status = status.unwrap_or_else(|| {
        panic!("replica did not exit within its grace period {grace:?}; log:\n{victim_log}")
    });
    assert!(
        status.success(),
        "replica exited with {status}; log:\n{victim_log}"
    );
    assert!(
        survivor_end > survivor_at_exit,
        "the remaining replica served nothing after the other exited"
    );
}
