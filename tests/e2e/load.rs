//! Load through the API server for the deployment tests: two `tierguard
//! serve` replicas behind haproxy (the Service) with the webhooks pointed at
//! it, and concurrent clients creating NetworkPolicies (`failurePolicy:
//! Fail`), each outcome timed against a marked moment (a signal sent, a
//! process restarted). Used by `drain` (SIGTERM) and `resilience` (SIGKILL,
//! leader loss, the API server restarted, etcd stopped).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::haproxy::{self, Haproxy};
use crate::harness::{Cluster, Replica};

/// A create not answered within this is a timeout (the webhooks' own
/// timeoutSeconds is 5).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// What happened to the creates.
#[derive(Default)]
pub struct Tally {
    /// Admitted by tierguard and stored.
    pub admitted: u64,
    /// Refused by tierguard (a webhook denied it).
    pub refused: u64,
    /// When each failed create was sent, in seconds since the mark
    /// (negative before it), and the error.
    pub failed: Vec<(f64, String)>,
}

impl Tally {
    /// Every create sent.
    pub fn sent(&self) -> u64 {
        self.admitted + self.refused + self.failed.len() as u64
    }
}

/// A NetworkPolicy `name` any tier namespace may hold: it isolates pods
/// labelled `app=<name>` for ingress and opens nothing.
pub fn policy(name: &str) -> NetworkPolicy {
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name},
        "spec": {"podSelector": {"matchLabels": {"app": name}}, "policyTypes": ["Ingress"]},
    }))
    .expect("a NetworkPolicy")
}

/// Two replicas (`a`, `b`, with `extra` serve flags) behind haproxy, the
/// webhooks pointed at haproxy, the cluster's own webhook stopped, and a
/// namespace `load`; `None` (skip) without haproxy or a control plane.
pub struct Pair {
    pub cluster: Cluster,
    pub a: Replica,
    pub b: Replica,
    pub lb: Haproxy,
}

impl Pair {
    /// Sets it up (see [`Pair`]); `name` names the cluster's directory.
    pub fn start(name: &str, extra: &[&str]) -> Option<Pair> {
        let haproxy_bin = haproxy::binary()?;
        let mut c = Cluster::start(name, &[], "")?;
        let a = c.start_replica("a", extra);
        let b = c.start_replica("b", extra);
        let lb = Haproxy::start(&haproxy_bin, &c.dir, &[&a, &b]);
        let ns = c.kubectl(&["create", "namespace", "load"]);
        assert!(
            ns.status.success(),
            "{}",
            String::from_utf8_lossy(&ns.stderr)
        );
        // Point the webhooks at haproxy; once the replicas answer, the API
        // server uses the new configuration and the cluster's own webhook
        // can go.
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
        Some(Pair {
            cluster: c,
            a,
            b,
            lb,
        })
    }

    /// The replica that has answered more admissions, then the other.
    pub fn busier_first(&mut self) -> (&mut Replica, &mut Replica) {
        let answered = |r: &Replica| r.admissions_answered().unwrap_or(0);
        if answered(&self.a) >= answered(&self.b) {
            (&mut self.a, &mut self.b)
        } else {
            (&mut self.b, &mut self.a)
        }
    }
}

/// Concurrent clients creating NetworkPolicies in `namespace` until
/// stopped.
pub struct Load {
    rt: tokio::runtime::Runtime,
    workers: Vec<tokio::task::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    mark: Arc<Mutex<Option<Instant>>>,
    tally: Arc<Mutex<Tally>>,
    started: Instant,
}

impl Load {
    /// Starts `clients` clients of the cluster's API server.
    pub fn start(c: &Cluster, namespace: &str, clients: usize) -> Load {
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
        let mark = Arc::new(Mutex::new(None));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let workers = (0..clients)
            .map(|id| {
                rt.spawn(client(
                    Api::namespaced(kube_client.clone(), namespace),
                    id,
                    stop.clone(),
                    mark.clone(),
                    tally.clone(),
                ))
            })
            .collect();
        Load {
            rt,
            workers,
            stop,
            mark,
            tally,
            started: Instant::now(),
        }
    }

    /// Marks now: failures are timed from here.
    pub fn mark(&self) -> Instant {
        let now = Instant::now();
        *self.mark.lock().expect("mark") = Some(now);
        now
    }

    /// Creates sent so far.
    pub fn sent(&self) -> u64 {
        self.tally.lock().expect("tally").sent()
    }

    /// Stops the clients, waits for them, and returns the tally and how
    /// long the load ran.
    pub fn finish(self) -> (Tally, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let workers = self.workers;
        self.rt.block_on(async {
            for w in workers {
                let _ = w.await;
            }
        });
        let ran = self.started.elapsed();
        let tally = std::mem::take(&mut *self.tally.lock().expect("tally"));
        (tally, ran)
    }
}

/// One client: creates until `stop`, recording each outcome.
async fn client(
    api: Api<NetworkPolicy>,
    id: usize,
    stop: Arc<AtomicBool>,
    mark: Arc<Mutex<Option<Instant>>>,
    tally: Arc<Mutex<Tally>>,
) {
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let name = format!("load-{id}-{i}");
        let sent = Instant::now();
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
            Ok(Err(kube::Error::Api(e))) => Some(format!("{} {}", e.code, e.message)),
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no answer within {CLIENT_TIMEOUT:?}")),
        };
        let failed = failure.is_some();
        {
            let mut t = tally.lock().expect("tally");
            match failure {
                None => t.admitted += 1,
                Some(e) => {
                    // When the create was sent: one sent during an outage
                    // may fail only after it (a timeout).
                    let at = mark.lock().expect("mark").map_or(-1.0, |s| {
                        if sent >= s {
                            sent.duration_since(s).as_secs_f64()
                        } else {
                            -s.duration_since(sent).as_secs_f64()
                        }
                    });
                    t.failed.push((at, e));
                }
            }
        }
        if failed {
            // An API server that is down refuses at once: do not spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Polls `try_wait` until the replica exits or `limit` passes.
pub fn wait_exit(r: &mut Replica, limit: Duration) -> Option<std::process::ExitStatus> {
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
pub fn apiserver_webhook_call_errors(c: &Cluster) -> u64 {
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
