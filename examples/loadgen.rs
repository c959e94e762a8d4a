//! Load generator for the admission webhook (docs/benchmarks.md, "Webhook
//! latency under load").
//!
//! ```text
//! loadgen --write-world DIR            2,000 namespaces, 5,000 NetworkPolicies (manifests)
//! loadgen --addr A --ca F --path P     open-loop load against a running `tierguard serve`
//! loadgen --compare                    spawns `tierguard serve --world .. --bench-noop`,
//!                                      loads /noop then /validate on the same process,
//!                                      reads its RSS; --runs times, then medians
//! ```
//!
//! Load is open-loop: request `i` is due at `start + i / rate`, whatever
//! happened to the previous ones. A pacer thread releases requests at their
//! due time to whichever of the `--connections` keep-alive HTTP/1.1 TLS
//! connections is free. Latency is measured from the *due* time (so a stalled
//! server is charged for the requests queued behind it: no coordinated
//! omission); service time from the moment the request is written.
//!
//! Every loop is bounded (a fixed number of requests, timeouts on every
//! request, handshake and wait) and only loopback addresses are used.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc};
use tokio_rustls::TlsConnector;

const THREE_TIER: [(&str, &str); 4] = [
    (
        "namespaces.yaml",
        include_str!("three-tier/namespaces.yaml"),
    ),
    ("baseline.yaml", include_str!("three-tier/baseline.yaml")),
    ("flows.yaml", include_str!("three-tier/flows.yaml")),
    ("apps.yaml", include_str!("three-tier/apps.yaml")),
];
/// Requests taking longer than this count as errors.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const READY_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Parser)]
#[command(about = "Load generator for tierguard's admission webhook")]
struct Args {
    /// Write the benchmark world (manifests) into DIR and exit.
    #[arg(long, value_name = "DIR")]
    write_world: Option<PathBuf>,

    /// Write a CA (ca.crt) and a serving pair for localhost/127.0.0.1
    /// (tls.crt, tls.key) into DIR and exit, for `tierguard serve` and `--ca`.
    #[arg(long, value_name = "DIR")]
    write_certs: Option<PathBuf>,

    /// Load a running webhook at this loopback address.
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// CA certificate (PEM) the webhook's serving certificate chains to.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Name the serving certificate is checked against.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// Endpoint to load (`--addr` mode).
    #[arg(long, default_value = "/validate")]
    path: String,

    /// Requests per second (open loop).
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Measured duration (`30s`, `2m`, `500ms`).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured warm-up at the same rate, before each measurement.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    warmup: Duration,
    /// Keep-alive connections (at most this many requests in flight).
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Percentages of the four requests: NetworkPolicy CREATE in `database`
    /// from backend (admitted), in `database` from frontend (refused), in a
    /// non-tier namespace, Namespace CREATE. They must add up to 100.
    #[arg(long, default_value = "40,10,40,10", value_parser = parse_mix)]
    mix: Mix,

    /// Spawn `tierguard serve` and compare /noop and /validate on it.
    #[arg(long)]
    compare: bool,
    /// How many times to repeat the whole comparison (a new server each time).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The tierguard binary.
    #[arg(long, default_value = "target/release/tierguard")]
    server: PathBuf,
    /// The isolation policy the server uses (with `--addr`: the one the
    /// server was started with, so the refused request is one it refuses).
    #[arg(long, default_value = "policies/three-tier.yaml")]
    policy: PathBuf,
    /// World manifests for the server (default: generated into a temporary directory).
    #[arg(long)]
    world: Option<PathBuf>,
    /// Before each run, wait until the 1-minute load average is below this.
    #[arg(long, default_value_t = 1.5)]
    max_load: f64,
    /// ... and until less than this fraction of the CPUs is busy (over 3 s).
    #[arg(long, default_value_t = 0.25)]
    max_busy: f64,
    /// Give up waiting for a quiet machine after this long (and run anyway).
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    max_wait: Duration,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m)")),
    };
    if !(secs.is_finite() && (0.0..86_400.0).contains(&secs)) {
        return Err(format!("duration {s:?} out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

// === The world ===

#[path = "../benches/world/mod.rs"]
mod world;
use world::{NAMESPACES, POLICIES, TIERS, namespace_manifest, other_namespace, team_policy};

fn yaml_stream(docs: &[Value]) -> Result<String> {
    let mut out = String::new();
    for d in docs {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(d)?);
    }
    Ok(out)
}

/// Writes the world into `dir` and checks it loads as 2,000 namespaces and
/// 5,000 policies.
/// True when the isolation policy at `path` keeps baseline
/// ClusterNetworkPolicies.
fn keeps_cluster_baseline(path: &Path) -> Result<bool> {
    let iso = tierguard::model::isolationpolicy::load_file(path)?;
    Ok(!iso.cluster_baseline().is_empty())
}

/// Writes the benchmark world into `dir`, with the baseline
/// ClusterNetworkPolicies the isolation policy at `policy` keeps, if any
/// (as tierguard's controller would have created them).
fn write_world(dir: &Path, policy: &Path) -> Result<()> {
    let tiers = dir.join("three-tier");
    std::fs::create_dir_all(&tiers).with_context(|| format!("creating {}", tiers.display()))?;
    for (name, text) in THREE_TIER {
        std::fs::write(tiers.join(name), text)?;
    }
    // The tutorial's files: 3 namespaces, 6 baseline policies, 5 flow policies.
    let tier_policies = 11;
    let others = NAMESPACES - TIERS.len();
    let extra = POLICIES - tier_policies - 2 * others;
    let mut namespaces = Vec::with_capacity(others);
    let mut policies = Vec::with_capacity(POLICIES);
    for i in 0..others {
        let ns = other_namespace(i);
        namespaces.push(namespace_manifest(i));
        let n = if i < extra { 3 } else { 2 };
        for k in 0..n {
            policies.push(team_policy(&ns, i, k));
        }
    }
    std::fs::write(dir.join("namespaces.yaml"), yaml_stream(&namespaces)?)?;
    std::fs::write(dir.join("policies.yaml"), yaml_stream(&policies)?)?;
    let iso = tierguard::model::isolationpolicy::load_file(policy)?;
    if let tierguard::engine::tiers::Via::ClusterNetworkPolicy { priority, .. } = iso.baseline.via {
        let objects = tierguard::model::clusterbaseline::objects(&iso, priority);
        std::fs::write(dir.join("cluster-baseline.yaml"), yaml_stream(&objects)?)?;
    }

    let world = tierguard::world::World::load(&[dir.to_path_buf()])?;
    let counts = world.state.counts();
    ensure!(
        counts == (NAMESPACES, POLICIES),
        "the world in {} has {counts:?} (namespaces, policies), expected ({NAMESPACES}, {POLICIES})",
        dir.display()
    );
    eprintln!(
        "wrote {}: {} namespaces, {} NetworkPolicies, {} ClusterNetworkPolicies",
        dir.display(),
        counts.0,
        counts.1,
        world.state.cluster_policies().count()
    );
    Ok(())
}

/// Writes ca.crt, tls.crt and tls.key into `dir`; returns the CA PEM.
fn write_certs(dir: &Path) -> Result<String> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ca = tierguard::certs::Ca::new("tierguard loadgen CA")?;
    let pair = ca.issue(&["localhost".into(), "127.0.0.1".into()], (2030, 1, 1))?;
    std::fs::write(dir.join("ca.crt"), ca.cert_pem())?;
    std::fs::write(dir.join("tls.crt"), &pair.cert_pem)?;
    std::fs::write(dir.join("tls.key"), &pair.key_pem)?;
    Ok(ca.cert_pem())
}

// === Requests ===

/// The four requests of the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// NetworkPolicy CREATE in `database`: ingress from backend on 5432 (admitted).
    Admit,
    /// NetworkPolicy CREATE in `database`: ingress from frontend (refused).
    Refuse,
    /// NetworkPolicy CREATE in a non-tier namespace (admitted).
    Other,
    /// Namespace CREATE outside the tiers (admitted).
    Namespace,
}

const KINDS: [Kind; 4] = [Kind::Admit, Kind::Refuse, Kind::Other, Kind::Namespace];

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Admit => "np database (admit)",
            Kind::Refuse => "np database (refuse)",
            Kind::Other => "np team-NNNN",
            Kind::Namespace => "namespace create",
        }
    }
    fn index(self) -> usize {
        KINDS.iter().position(|k| *k == self).unwrap_or(0)
    }
}

/// Percentages of each [`Kind`], in [`KINDS`] order.
#[derive(Clone, Copy, Debug)]
struct Mix([u32; 4]);

fn parse_mix(s: &str) -> Result<Mix, String> {
    let parts: Vec<u32> = s
        .split(',')
        .map(|p| p.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad --mix {s:?}: {e}"))?;
    let arr: [u32; 4] = parts
        .try_into()
        .map_err(|_| format!("--mix takes four percentages, got {s:?}"))?;
    if arr.iter().sum::<u32>() != 100 {
        return Err(format!("--mix percentages must add up to 100: {s:?}"));
    }
    Ok(Mix(arr))
}

impl Mix {
    /// The kind of request `i`: a fixed permutation of every block of 100
    /// requests (37 is coprime with 100), so the kinds are spread evenly.
    fn kind(&self, i: u64) -> Kind {
        let slot = ((i % 100) * 37 % 100) as u32;
        let mut acc = 0;
        for (k, w) in KINDS.iter().zip(self.0) {
            acc += w;
            if slot < acc {
                return *k;
            }
        }
        Kind::Other
    }
}

/// Request bodies with `@ID@` (8 digits) and `@TEAM@` placeholders.
struct Templates([String; 4]);

fn review_template(kind: (&str, &str), ns: Option<&str>, name: &str, object: Value) -> Value {
    let (group, k) = kind;
    let resource = if k == "Namespace" {
        "namespaces"
    } else {
        "networkpolicies"
    };
    let gvk = json!({"group": group, "version": "v1", "kind": k});
    let gvr = json!({"group": group, "version": "v1", "resource": resource});
    let mut req = json!({
        "uid": "loadgen-@ID@",
        "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
        "name": name,
        "operation": "CREATE",
        "userInfo": {"username": "alice@example.com", "uid": "u-1", "groups": ["developers", "system:authenticated"]},
        "object": object,
        "oldObject": null,
        "dryRun": false,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions", "fieldManager": "kubectl-client-side-apply"},
    });
    if let Some(ns) = ns {
        req["namespace"] = json!(ns);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req})
}

fn netpol_object(ns: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {
            "name": name, "namespace": ns, "uid": "00000000-0000-4000-8000-@ID@0000",
            "creationTimestamp": "2026-11-23T00:00:00Z", "generation": 1,
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
        },
        "spec": spec,
    })
}

impl Templates {
    fn new(cluster_baseline: bool) -> Result<Self> {
        const NP: (&str, &str) = ("networking.k8s.io", "NetworkPolicy");
        let admit = review_template(
            NP,
            Some("database"),
            "allow-backend-workers-@ID@",
            netpol_object(
                "database",
                "allow-backend-workers-@ID@",
                world::backend_workers_to_database(),
            ),
        );
        let refuse = review_template(
            NP,
            Some("database"),
            "allow-frontend-@ID@",
            netpol_object(
                "database",
                "allow-frontend-@ID@",
                if cluster_baseline {
                    json!({
                        "podSelector": {"matchLabels": {"app": "database"}},
                        "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
                            "ports": [{"protocol": "TCP", "port": 5432}]}],
                    })
                } else {
                    world::frontend_to_database()
                },
            ),
        );
        let other = review_template(
            NP,
            Some("@TEAM@"),
            "allow-web-@ID@",
            netpol_object(
                "@TEAM@",
                "allow-web-@ID@",
                json!({
                    "podSelector": {"matchLabels": {"app": "app-2"}},
                    "policyTypes": ["Ingress", "Egress"],
                    "ingress": [{
                        "from": [
                            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}},
                            {"ipBlock": {"cidr": "172.16.0.0/12", "except": ["172.16.5.0/24"]}},
                        ],
                        "ports": [{"protocol": "TCP", "port": "http"}, {"protocol": "TCP", "port": 8000, "endPort": 8100}],
                    }],
                    "egress": [{
                        "to": [{"podSelector": {"matchLabels": {"app": "postgres"}}}],
                        "ports": [{"protocol": "TCP", "port": 5432}],
                    }],
                }),
            ),
        );
        let namespace = review_template(
            ("", "Namespace"),
            None,
            "lg-@ID@",
            json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {
                    "name": "lg-@ID@", "uid": "00000000-0000-4000-8000-@ID@0000",
                    "creationTimestamp": "2026-11-23T00:00:00Z",
                    "labels": {"kubernetes.io/metadata.name": "lg-@ID@", "name": "lg-@ID@", "team": "t7"},
                },
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }),
        );
        let s = |v: &Value| serde_json::to_string(v).context("serializing a template");
        Ok(Self([s(&admit)?, s(&refuse)?, s(&other)?, s(&namespace)?]))
    }

    fn body(&self, kind: Kind, i: u64) -> Vec<u8> {
        let id = format!("{:08}", i % 100_000_000);
        let team = format!("team-{:04}", 3 + (i % 1994));
        self.0[kind.index()]
            .replace("@ID@", &id)
            .replace("@TEAM@", &team)
            .into_bytes()
    }
}

// === The client ===

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Allowed,
    Refused,
    /// Not 200.
    Status,
    /// Not an AdmissionReview answering this request.
    Unparsable,
    /// Connection error or timeout.
    Transport,
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    kind: Kind,
    /// Microseconds from the due time to the full response.
    latency_us: u64,
    /// Microseconds from writing the request to the full response.
    service_us: u64,
    /// Microseconds from the due time to writing the request.
    lag_us: u64,
    outcome: Outcome,
}

struct Target {
    addr: SocketAddr,
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl Target {
    fn new(addr: SocketAddr, ca_pem: &[u8], server_name: &str) -> Result<Self> {
        ensure!(
            addr.ip().is_loopback(),
            "loadgen only loads loopback addresses, not {addr}"
        );
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca_pem) {
            roots.add(c.map_err(|e| anyhow!("CA PEM: {e}"))?)?;
        }
        ensure!(!roots.is_empty(), "no certificate in the CA file");
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Self {
            addr,
            connector: TlsConnector::from(Arc::new(config)),
            server_name: ServerName::try_from(server_name.to_string())?,
        })
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>> {
        let work = async {
            let tcp = TcpStream::connect(self.addr).await?;
            tcp.set_nodelay(true)?;
            let tls = self
                .connector
                .connect(self.server_name.clone(), tcp)
                .await?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
            tokio::spawn(conn);
            anyhow::Ok(sender)
        };
        tokio::time::timeout(CONNECT_TIMEOUT, work)
            .await
            .map_err(|_| anyhow!("connecting to {} timed out", self.addr))?
    }
}

fn classify(status: StatusCode, body: &[u8], uid: &str) -> Outcome {
    if status != StatusCode::OK {
        return Outcome::Status;
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Outcome::Unparsable;
    };
    let resp = &v["response"];
    if v["kind"] != "AdmissionReview" || resp["uid"] != uid {
        return Outcome::Unparsable;
    }
    match resp["allowed"].as_bool() {
        Some(true) => Outcome::Allowed,
        Some(false) => Outcome::Refused,
        None => Outcome::Unparsable,
    }
}

/// One load phase's settings.
struct Phase<'a> {
    path: &'a str,
    rate: u64,
    duration: Duration,
    connections: usize,
    mix: Mix,
    /// The server keeps the baseline ClusterNetworkPolicies (`via:
    /// clusterNetworkPolicy`): frontend's pods are denied there, so the
    /// refused request opens database to the outside instead.
    cluster_baseline: bool,
}

struct Plan {
    start: Instant,
    rate: u64,
    path: String,
    mix: Mix,
    templates: Templates,
}

impl Plan {
    fn due(&self, i: u64) -> Instant {
        self.start + Duration::from_nanos(i * 1_000_000_000 / self.rate)
    }
}

async fn worker(
    target: Arc<Target>,
    mut sender: SendRequest<Full<Bytes>>,
    jobs: Arc<Mutex<mpsc::UnboundedReceiver<u64>>>,
    plan: Arc<Plan>,
) -> Vec<Sample> {
    let mut out = Vec::new();
    loop {
        let next = { jobs.lock().await.recv().await };
        let Some(i) = next else { break };
        let due = plan.due(i);
        let kind = plan.mix.kind(i);
        let uid = format!("loadgen-{:08}", i % 100_000_000);
        let req = Request::post(plan.path.as_str())
            .header("host", "localhost")
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(Full::new(Bytes::from(plan.templates.body(kind, i))));
        let sent = Instant::now();
        let result = match req {
            Ok(req) => {
                tokio::time::timeout(REQUEST_TIMEOUT, async {
                    sender.ready().await?;
                    let resp = sender.send_request(req).await?;
                    let status = resp.status();
                    let body = resp.into_body().collect().await?.to_bytes();
                    anyhow::Ok((status, body))
                })
                .await
            }
            Err(e) => Ok(Err(e.into())),
        };
        let done = Instant::now();
        let outcome = match &result {
            Ok(Ok((status, body))) => classify(*status, body, &uid),
            _ => Outcome::Transport,
        };
        out.push(Sample {
            kind,
            latency_us: done.saturating_duration_since(due).as_micros() as u64,
            service_us: done.saturating_duration_since(sent).as_micros() as u64,
            lag_us: sent.saturating_duration_since(due).as_micros() as u64,
            outcome,
        });
        if outcome == Outcome::Transport {
            // One reconnection attempt; without it this worker stops and the
            // others take its share.
            match target.connect().await {
                Ok(s) => sender = s,
                Err(_) => break,
            }
        }
    }
    out
}

/// What one phase measured.
struct PhaseResult {
    path: String,
    planned: u64,
    samples: Vec<Sample>,
    /// From the first due time to the last response.
    elapsed: Duration,
}

/// Sends `rate * duration` requests on a fixed schedule; returns the samples.
async fn run_phase(target: &Arc<Target>, p: &Phase<'_>) -> Result<PhaseResult> {
    ensure!(
        p.rate > 0 && p.connections > 0,
        "rate and connections must be > 0"
    );
    let mut senders = Vec::with_capacity(p.connections);
    for _ in 0..p.connections {
        senders.push(target.connect().await?);
    }
    let total = (p.rate as f64 * p.duration.as_secs_f64()).round() as u64;
    ensure!(total > 0, "rate × duration is less than one request");
    let plan = Arc::new(Plan {
        start: Instant::now() + Duration::from_millis(20),
        rate: p.rate,
        path: p.path.to_string(),
        mix: p.mix,
        templates: Templates::new(p.cluster_baseline)?,
    });
    let (tx, rx) = mpsc::unbounded_channel::<u64>();
    let jobs = Arc::new(Mutex::new(rx));
    // The pacer: a thread (its sleeps are far finer than tokio's 1 ms timer
    // wheel) releasing request i at its due time.
    let pacer_plan = plan.clone();
    let pacer = std::thread::spawn(move || {
        for i in 0..total {
            let due = pacer_plan.due(i);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if tx.send(i).is_err() {
                break;
            }
        }
    });
    let mut set = tokio::task::JoinSet::new();
    for s in senders {
        set.spawn(worker(target.clone(), s, jobs.clone(), plan.clone()));
    }
    let mut samples = Vec::with_capacity(total as usize);
    while let Some(r) = set.join_next().await {
        samples.extend(r?);
    }
    let elapsed = plan.start.elapsed();
    pacer
        .join()
        .map_err(|_| anyhow!("the pacer thread panicked"))?;
    Ok(PhaseResult {
        path: p.path.to_string(),
        planned: total,
        samples,
        elapsed,
    })
}

// === Statistics ===

/// Percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default)]
struct Pcts {
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    max: u64,
    mean: f64,
}

fn pcts(mut v: Vec<u64>) -> Pcts {
    if v.is_empty() {
        return Pcts::default();
    }
    v.sort_unstable();
    let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Pcts {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        p999: at(0.999),
        max: v[v.len() - 1],
        mean: v.iter().sum::<u64>() as f64 / v.len() as f64,
    }
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

/// The summary of one phase.
#[derive(Clone, Debug)]
struct Summary {
    path: String,
    planned: u64,
    done: u64,
    achieved_rate: f64,
    latency: Pcts,
    service: Pcts,
    lag: Pcts,
    allowed: u64,
    refused: u64,
    errors_status: u64,
    errors_unparsable: u64,
    errors_transport: u64,
    not_sent: u64,
    /// Verdicts other than expected (only judged on /validate).
    unexpected: u64,
    by_kind: Vec<(Kind, u64, Pcts)>,
}

impl Summary {
    fn errors(&self) -> u64 {
        self.errors_status + self.errors_unparsable + self.errors_transport + self.not_sent
    }
}

fn summarize(r: &PhaseResult) -> Summary {
    let count = |o: Outcome| r.samples.iter().filter(|s| s.outcome == o).count() as u64;
    let judged = r.path.ends_with("/validate");
    let unexpected = if judged {
        r.samples
            .iter()
            .filter(|s| match s.outcome {
                Outcome::Allowed => s.kind == Kind::Refuse,
                Outcome::Refused => s.kind != Kind::Refuse,
                _ => false,
            })
            .count() as u64
    } else {
        0
    };
    let by_kind = KINDS
        .iter()
        .map(|k| {
            let v: Vec<u64> = r
                .samples
                .iter()
                .filter(|s| s.kind == *k)
                .map(|s| s.latency_us)
                .collect();
            (*k, v.len() as u64, pcts(v))
        })
        .filter(|(_, n, _)| *n > 0)
        .collect();
    Summary {
        path: r.path.clone(),
        planned: r.planned,
        done: r.samples.len() as u64,
        achieved_rate: r.samples.len() as f64 / r.elapsed.as_secs_f64(),
        latency: pcts(r.samples.iter().map(|s| s.latency_us).collect()),
        service: pcts(r.samples.iter().map(|s| s.service_us).collect()),
        lag: pcts(r.samples.iter().map(|s| s.lag_us).collect()),
        allowed: count(Outcome::Allowed),
        refused: count(Outcome::Refused),
        errors_status: count(Outcome::Status),
        errors_unparsable: count(Outcome::Unparsable),
        errors_transport: count(Outcome::Transport),
        not_sent: r.planned.saturating_sub(r.samples.len() as u64),
        unexpected,
        by_kind,
    }
}

fn print_summary(s: &Summary) {
    let line = |name: &str, p: &Pcts| {
        println!(
            "  {name:<22} p50 {:>8}  p90 {:>8}  p99 {:>8}  p99.9 {:>8}  max {:>8}  mean {:>8.3} ms",
            ms(p.p50),
            ms(p.p90),
            ms(p.p99),
            ms(p.p999),
            ms(p.max),
            p.mean / 1000.0
        )
    };
    println!(
        "{}: {} requests planned, {} completed, achieved {:.1} req/s",
        s.path, s.planned, s.done, s.achieved_rate
    );
    line("latency (from due)", &s.latency);
    line("service time", &s.service);
    line("send lag", &s.lag);
    for (k, n, p) in &s.by_kind {
        line(&format!("{} ×{n}", k.label()), p);
    }
    println!(
        "  verdicts: allowed {}, refused {}; unexpected verdicts {}; errors {} (non-200 {}, unparsable {}, transport/timeout {}, not sent {})",
        s.allowed,
        s.refused,
        s.unexpected,
        s.errors(),
        s.errors_status,
        s.errors_unparsable,
        s.errors_transport,
        s.not_sent
    );
}

fn pcts_json(p: &Pcts) -> Value {
    json!({"p50_us": p.p50, "p90_us": p.p90, "p99_us": p.p99, "p999_us": p.p999, "max_us": p.max, "mean_us": p.mean})
}

fn summary_json(s: &Summary) -> Value {
    json!({
        "path": s.path, "planned": s.planned, "completed": s.done, "achieved_rate": s.achieved_rate,
        "latency": pcts_json(&s.latency), "service": pcts_json(&s.service), "lag": pcts_json(&s.lag),
        "allowed": s.allowed, "refused": s.refused, "unexpected_verdicts": s.unexpected,
        "errors": s.errors(), "errors_non200": s.errors_status, "errors_unparsable": s.errors_unparsable,
        "errors_transport": s.errors_transport, "not_sent": s.not_sent,
        "by_kind": s.by_kind.iter().map(|(k, n, p)| json!({"kind": k.label(), "count": n, "latency": pcts_json(p)})).collect::<Vec<_>>(),
    })
}

// === The server (compare mode) ===

fn free_port() -> Result<u16> {
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Fields of /proc/PID/status in kB.
fn proc_status_kb(pid: u32, field: &str) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow!("no {field} in /proc/{pid}/status"))
}

/// User + system CPU time of a process (`self` or a PID), in clock ticks (1/100 s).
fn cpu_ticks(pid: &str) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("malformed /proc/{pid}/stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| -> Result<u64> {
        f.get(i)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("malformed /proc/{pid}/stat"))
    };
    Ok(get(11)? + get(12)?)
}

fn loadavg() -> Result<(f64, f64, f64)> {
    let text = std::fs::read_to_string("/proc/loadavg")?;
    let v: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .map(|x| x.parse().unwrap_or(f64::NAN))
        .collect();
    match v.as_slice() {
        [a, b, c] => Ok((*a, *b, *c)),
        _ => bail!("malformed /proc/loadavg"),
    }
}

/// (busy, total) jiffies of all CPUs, from /proc/stat.
fn cpu_jiffies() -> Result<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat")?;
    let line = text
        .lines()
        .next()
        .filter(|l| l.starts_with("cpu "))
        .ok_or_else(|| anyhow!("malformed /proc/stat"))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    ensure!(v.len() >= 5, "malformed /proc/stat");
    let total: u64 = v.iter().sum();
    let idle = v[3] + v[4];
    Ok((total - idle, total))
}

/// The fraction of all CPUs busy over the next `over`.
fn busy_fraction(over: Duration) -> Result<f64> {
    let (b0, t0) = cpu_jiffies()?;
    std::thread::sleep(over);
    let (b1, t1) = cpu_jiffies()?;
    Ok((b1 - b0) as f64 / (t1 - t0).max(1) as f64)
}

/// Waits (bounded by `limit`) until the 1-minute load average is below
/// `max_load` and, over 3 s, less than `max_busy` of the CPUs is in use.
fn wait_for_quiet(max_load: f64, max_busy: f64, limit: Duration) -> Result<bool> {
    let start = Instant::now();
    loop {
        let busy = busy_fraction(Duration::from_secs(3))?;
        let (l1, l5, l15) = loadavg()?;
        if l1 < max_load && busy < max_busy {
            return Ok(true);
        }
        if start.elapsed() >= limit {
            eprintln!(
                "load average {l1:.2}, CPUs {:.0} % busy after waiting {limit:?}; running anyway",
                busy * 100.0
            );
            return Ok(false);
        }
        eprintln!(
            "waiting for a quieter machine: load average {l1:.2} {l5:.2} {l15:.2} (want < {max_load}), CPUs {:.0} % busy (want < {:.0} %), waited {:.0} s",
            busy * 100.0,
            max_busy * 100.0,
            start.elapsed().as_secs_f64()
        );
        std::thread::sleep(Duration::from_secs(12));
    }
}

/// GET on the plain-HTTP admin listener.
async fn admin_get(addr: SocketAddr, path: &str) -> Result<(StatusCode, String)> {
    let work = async {
        let tcp = TcpStream::connect(addr).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        let req = Request::get(path)
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(CONNECT_TIMEOUT, work)
        .await
        .map_err(|_| anyhow!("GET {path} timed out"))?
}

/// `tierguard_admission_duration_seconds` sum and count.
async fn handler_time(admin: SocketAddr) -> Result<(f64, f64)> {
    let (_, text) = admin_get(admin, "/metrics").await?;
    let get = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok((
        get("tierguard_admission_duration_seconds_sum"),
        get("tierguard_admission_duration_seconds_count"),
    ))
}

struct Server {
    child: Child,
    addr: SocketAddr,
    admin: SocketAddr,
    log: PathBuf,
}

impl Server {
    async fn start(args: &Args, dir: &Path, world: &Path, run: usize) -> Result<Self> {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let log = dir.join(format!("server-run{run}.log"));
        let log_file = std::fs::File::create(&log)?;
        let child = Command::new(&args.server)
            .arg("serve")
            .args(["--listen", &addr.to_string()])
            .args(["--admin-listen", &admin.to_string()])
            .arg("--tls-cert")
            .arg(dir.join("tls.crt"))
            .arg("--tls-key")
            .arg(dir.join("tls.key"))
            .arg("--policy")
            .arg(&args.policy)
            .arg("--world")
            .arg(world)
            .args(["--log-format", "json", "--bench-noop"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", args.server.display()))?;
        let mut server = Server {
            child,
            addr,
            admin,
            log,
        };
        let start = Instant::now();
        loop {
            if let Some(status) = server.child.try_wait()? {
                let log = std::fs::read_to_string(&server.log).unwrap_or_default();
                bail!("tierguard serve exited ({status}) before it was ready:\n{log}");
            }
            if let Ok((StatusCode::OK, _)) = admin_get(admin, "/readyz").await {
                eprintln!(
                    "server pid {} ready in {:.2} s",
                    server.child.id(),
                    start.elapsed().as_secs_f64()
                );
                return Ok(server);
            }
            if start.elapsed() > READY_TIMEOUT {
                server.stop();
                bail!("tierguard serve was not ready within {READY_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        // Our own child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One endpoint in one run, with the server's side.
struct Measured {
    summary: Summary,
    server_cpu_us_per_req: f64,
    client_cpu_us_per_req: f64,
    handler_mean_us: f64,
    rss_kb: u64,
    /// CPU cores used during the phase by everything but this server and
    /// this load generator (other jobs on the machine).
    other_cores: f64,
}

async fn measure(
    args: &Args,
    target: &Arc<Target>,
    server: &Server,
    path: &str,
) -> Result<Measured> {
    let cluster_baseline = keeps_cluster_baseline(&args.policy)?;
    let phase = |duration| Phase {
        path,
        rate: args.rate,
        duration,
        connections: args.connections,
        mix: args.mix,
        cluster_baseline,
    };
    if !args.warmup.is_zero() {
        run_phase(target, &phase(args.warmup)).await?;
    }
    let (sum0, n0) = handler_time(server.admin).await?;
    let cpu0 = cpu_ticks(&server.pid().to_string())?;
    let self0 = cpu_ticks("self")?;
    let (busy0, total0) = cpu_jiffies()?;
    let t0 = Instant::now();
    let result = run_phase(target, &phase(args.duration)).await?;
    let cpu1 = cpu_ticks(&server.pid().to_string())?;
    let self1 = cpu_ticks("self")?;
    let (busy1, total1) = cpu_jiffies()?;
    let secs = t0.elapsed().as_secs_f64();
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let busy_cores = (busy1 - busy0) as f64 / (total1 - total0).max(1) as f64 * ncpu;
    let own_cores = ((cpu1 - cpu0) + (self1 - self0)) as f64 / 100.0 / secs;
    let (sum1, n1) = handler_time(server.admin).await?;
    let summary = summarize(&result);
    let n = summary.done.max(1) as f64;
    Ok(Measured {
        server_cpu_us_per_req: (cpu1 - cpu0) as f64 * 10_000.0 / n,
        client_cpu_us_per_req: (self1 - self0) as f64 * 10_000.0 / n,
        handler_mean_us: if n1 > n0 {
            (sum1 - sum0) / (n1 - n0) * 1e6
        } else {
            0.0
        },
        rss_kb: proc_status_kb(server.pid(), "VmRSS")?,
        other_cores: (busy_cores - own_cores).max(0.0),
        summary,
    })
}

fn measured_json(m: &Measured) -> Value {
    json!({
        "summary": summary_json(&m.summary), "server_cpu_us_per_req": m.server_cpu_us_per_req,
        "client_cpu_us_per_req": m.client_cpu_us_per_req, "handler_mean_us": m.handler_mean_us,
        "rss_kb": m.rss_kb, "other_cores": m.other_cores,
    })
}

struct Run {
    index: usize,
    load_before: (f64, f64, f64),
    load_after: (f64, f64, f64),
    quiet: bool,
    rss_ready_kb: u64,
    noop: Measured,
    validate: Measured,
    rss_kb: u64,
    hwm_kb: u64,
    log_lines: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

async fn compare(args: &Args) -> Result<bool> {
    ensure!(args.runs > 0 && args.runs <= 20, "--runs must be 1..=20");
    let dir = std::env::temp_dir().join(format!("tierguard-loadgen-{}", std::process::id()));
    let ca_pem = write_certs(&dir)?;
    let world = match &args.world {
        Some(w) => w.clone(),
        None => {
            let w = dir.join("world");
            write_world(&w, &args.policy)?;
            w
        }
    };
    eprintln!("working directory {}", dir.display());

    let mut runs = Vec::new();
    for index in 1..=args.runs {
        let quiet = wait_for_quiet(args.max_load, args.max_busy, args.max_wait)?;
        let load_before = loadavg()?;
        eprintln!(
            "run {index}/{}: load average {:.2} {:.2} {:.2}",
            args.runs, load_before.0, load_before.1, load_before.2
        );
        let mut server = Server::start(args, &dir, &world, index).await?;
        let rss_ready_kb = proc_status_kb(server.pid(), "VmRSS")?;
        let target = Arc::new(Target::new(
            server.addr,
            ca_pem.as_bytes(),
            &args.server_name,
        )?);
        let noop = measure(args, &target, &server, "/noop").await?;
        print_summary(&noop.summary);
        let validate = measure(args, &target, &server, "/validate").await?;
        print_summary(&validate.summary);
        let rss_kb = proc_status_kb(server.pid(), "VmRSS")?;
        let hwm_kb = proc_status_kb(server.pid(), "VmHWM")?;
        let load_after = loadavg()?;
        server.stop();
        let log_lines = std::fs::read_to_string(&server.log)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        println!(
            "run {index}: server RSS {:.1} MB at ready, {:.1} MB after, peak (VmHWM) {:.1} MB; {log_lines} log lines; load average {:.2} -> {:.2}",
            rss_ready_kb as f64 / 1024.0,
            rss_kb as f64 / 1024.0,
            hwm_kb as f64 / 1024.0,
            load_before.0,
            load_after.0
        );
        runs.push(Run {
            index,
            load_before,
            load_after,
            quiet,
            rss_ready_kb,
            noop,
            validate,
            rss_kb,
            hwm_kb,
            log_lines,
        });
    }

    // The table (Markdown, pasted into docs/benchmarks.md).
    let mut t = String::new();
    writeln!(
        t,
        "| run | endpoint | p50 | p90 | p99 | p99.9 | max | achieved req/s | errors | refused/expected | server CPU µs/req | handler mean µs | RSS MB (peak) | load avg before | other jobs (cores) |"
    )?;
    writeln!(
        t,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )?;
    for r in &runs {
        for m in [&r.noop, &r.validate] {
            let s = &m.summary;
            let expected_refusals = s
                .by_kind
                .iter()
                .find(|(k, _, _)| *k == Kind::Refuse)
                .map(|(_, n, _)| *n)
                .unwrap_or(0);
            writeln!(
                t,
                "| {} | `{}` | {} | {} | {} | {} | {} | {:.1} | {} | {}/{} | {:.0} | {:.0} | {:.1} ({:.1}) | {:.2}{} | {:.2} |",
                r.index,
                s.path,
                ms(s.latency.p50),
                ms(s.latency.p90),
                ms(s.latency.p99),
                ms(s.latency.p999),
                ms(s.latency.max),
                s.achieved_rate,
                s.errors(),
                s.refused,
                if s.path.ends_with("/validate") {
                    expected_refusals.to_string()
                } else {
                    "0".to_string()
                },
                m.server_cpu_us_per_req,
                m.handler_mean_us,
                m.rss_kb as f64 / 1024.0,
                r.hwm_kb as f64 / 1024.0,
                r.load_before.0,
                if r.quiet { "" } else { " (busy)" },
                m.other_cores,
            )?;
        }
    }
    let med = |f: &dyn Fn(&Run) -> f64| median(runs.iter().map(f).collect());
    let p = |us: f64| format!("{:.3}", us / 1000.0);
    let m_noop_p50 = med(&|r| r.noop.summary.latency.p50 as f64);
    let m_noop_p99 = med(&|r| r.noop.summary.latency.p99 as f64);
    let m_val_p50 = med(&|r| r.validate.summary.latency.p50 as f64);
    let m_val_p99 = med(&|r| r.validate.summary.latency.p99 as f64);
    let m_ratio_p50 =
        med(&|r| r.validate.summary.latency.p50 as f64 / r.noop.summary.latency.p50.max(1) as f64);
    let m_ratio_p99 =
        med(&|r| r.validate.summary.latency.p99 as f64 / r.noop.summary.latency.p99.max(1) as f64);
    let m_hwm = med(&|r| r.hwm_kb as f64 / 1024.0);
    let errors: u64 = runs
        .iter()
        .map(|r| r.noop.summary.errors() + r.validate.summary.errors())
        .sum();
    let unexpected: u64 = runs.iter().map(|r| r.validate.summary.unexpected).sum();
    println!();
    println!("{t}");
    println!(
        "medians over {} runs: /noop p50 {} ms p99 {} ms; /validate p50 {} ms p99 {} ms; validate/noop (same run) p50 {:.2}x p99 {:.2}x; peak RSS {:.1} MB; errors {errors}; unexpected verdicts {unexpected}",
        runs.len(),
        p(m_noop_p50),
        p(m_noop_p99),
        p(m_val_p50),
        p(m_val_p99),
        m_ratio_p50,
        m_ratio_p99,
        m_hwm
    );
    println!("per-run ratios validate/noop:");
    for r in &runs {
        println!(
            "  run {}: p50 {:.2}x, p99 {:.2}x",
            r.index,
            r.validate.summary.latency.p50 as f64 / r.noop.summary.latency.p50.max(1) as f64,
            r.validate.summary.latency.p99 as f64 / r.noop.summary.latency.p99.max(1) as f64
        );
    }
    let met = |b: bool| if b { "met" } else { "MISSED" };
    println!(
        "targets: /validate p99 ≤ 2 ms: {}; p99 ≤ 1.5× /noop: {}; 0 errors: {}; peak RSS ≤ 150 MB: {}",
        met(m_val_p99 <= 2000.0),
        met(m_ratio_p99 <= 1.5),
        met(errors == 0 && unexpected == 0),
        met(m_hwm <= 150.0)
    );

    if let Some(path) = &args.json {
        let v = json!({
            "rate": args.rate, "duration_s": args.duration.as_secs_f64(), "warmup_s": args.warmup.as_secs_f64(),
            "connections": args.connections, "mix": args.mix.0,
            "runs": runs.iter().map(|r| json!({
                "run": r.index, "load_before": [r.load_before.0, r.load_before.1, r.load_before.2],
                "load_after": [r.load_after.0, r.load_after.1, r.load_after.2], "quiet": r.quiet,
                "rss_ready_kb": r.rss_ready_kb, "rss_kb": r.rss_kb, "hwm_kb": r.hwm_kb, "log_lines": r.log_lines,
                "endpoints": [measured_json(&r.noop), measured_json(&r.validate)],
            })).collect::<Vec<_>>(),
            "medians": {"noop_p50_us": m_noop_p50, "noop_p99_us": m_noop_p99, "validate_p50_us": m_val_p50,
                        "validate_p99_us": m_val_p99, "ratio_p50": m_ratio_p50, "ratio_p99": m_ratio_p99, "hwm_mb": m_hwm},
        });
        std::fs::write(path, serde_json::to_string_pretty(&v)?)?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(errors == 0 && unexpected == 0)
}

async fn load(args: &Args) -> Result<bool> {
    let addr = args
        .addr
        .ok_or_else(|| anyhow!("give --write-world, --compare, or --addr with --ca"))?;
    let ca_path = args
        .ca
        .as_ref()
        .ok_or_else(|| anyhow!("--addr needs --ca"))?;
    let ca = std::fs::read(ca_path).with_context(|| format!("reading {}", ca_path.display()))?;
    let target = Arc::new(Target::new(addr, &ca, &args.server_name)?);
    let cluster_baseline = keeps_cluster_baseline(&args.policy)?;
    let phase = |duration| Phase {
        path: &args.path,
        rate: args.rate,
        duration,
        connections: args.connections,
        mix: args.mix,
        cluster_baseline,
    };
    if !args.warmup.is_zero() {
        run_phase(&target, &phase(args.warmup)).await?;
    }
    let r = run_phase(&target, &phase(args.duration)).await?;
    let s = summarize(&r);
    print_summary(&s);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&summary_json(&s))?)?;
    }
    Ok(s.errors() == 0 && s.unexpected == 0)
}

fn main() -> Result<std::process::ExitCode> {
    let args = Args::parse();
    if args.write_world.is_some() || args.write_certs.is_some() {
        if let Some(dir) = &args.write_world {
            write_world(dir, &args.policy)?;
        }
        if let Some(dir) = &args.write_certs {
            write_certs(dir)?;
            eprintln!("wrote {}/{{ca.crt,tls.crt,tls.key}}", dir.display());
        }
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let ok = rt.block_on(async {
        if args.compare {
            compare(&args).await
        } else {
            load(&args).await
        }
    })?;
    let by_kind: BTreeMap<&str, u32> = KINDS
        .iter()
        .zip(args.mix.0)
        .map(|(k, w)| (k.label(), w))
        .collect();
    eprintln!("mix (percent): {by_kind:?}");
    Ok(if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}
