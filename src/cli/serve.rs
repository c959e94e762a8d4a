//! `tierguard serve`: the admission webhook.
//!
//! ```text
//!  --policy ──► IsolationPolicy (--mode overrides its mode)
//!  kubeconfig / in-cluster ──► kube Client ──► watches ──► Index ◄── --world (offline)
//!  --tls-cert/--tls-key ──► CertStore (polled reload) ──► :8443 /mutate /validate
//!  :8080 /healthz /readyz /metrics (plain HTTP)
//! ```

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use clap::{Args, ValueEnum};
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::admission::{self, Ctx, DEFAULT_MAX_BODY};
use crate::controller::{self, leader};
use crate::engine::tiers::Mode;
use crate::index::{Index, SharedIndex};
use crate::server;
use crate::telemetry::{self, LogFormat, Metrics};
use crate::tls::CertStore;
use crate::world::World;

/// `--mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Refuse changes that open forbidden flows.
    Enforce,
    /// Admit them with warnings, audit annotations, logs and metrics.
    Audit,
}

/// Arguments of `serve`. Every flag can also be set from the environment.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address of the webhook's HTTPS listener.
    #[arg(long, env = "TIERGUARD_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Address of the plain-HTTP admin listener (/healthz, /readyz, /metrics).
    #[arg(long, env = "TIERGUARD_ADMIN_LISTEN", default_value = "0.0.0.0:8080")]
    pub admin_listen: SocketAddr,
    /// Serving certificate chain (PEM, leaf first).
    #[arg(long, env = "TIERGUARD_TLS_CERT")]
    pub tls_cert: PathBuf,
    /// Serving private key (PEM).
    #[arg(long, env = "TIERGUARD_TLS_KEY")]
    pub tls_key: PathBuf,
    /// How often to re-read the certificate files, in seconds.
    #[arg(long, env = "TIERGUARD_TLS_RELOAD_SECONDS", default_value_t = 5)]
    pub tls_reload_seconds: u64,
    /// The isolation policy (default: policies/three-tier.yaml in the repository).
    #[arg(long, env = "TIERGUARD_POLICY")]
    pub policy: Option<PathBuf>,
    /// Override the isolation policy's mode.
    #[arg(long, env = "TIERGUARD_MODE", value_enum)]
    pub mode: Option<ModeArg>,
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, env = "TIERGUARD_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context.
    #[arg(long, env = "TIERGUARD_KUBE_CONTEXT")]
    pub context: Option<String>,
    /// Log format.
    #[arg(long, env = "TIERGUARD_LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: LogFormat,
    /// Per-request deadline in milliseconds (keep it under the webhook timeout).
    #[arg(long, env = "TIERGUARD_REQUEST_DEADLINE_MS", default_value_t = admission::DEFAULT_DEADLINE_MS)]
    pub request_deadline_ms: u64,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "TIERGUARD_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY)]
    pub max_body_bytes: usize,
    /// Judge against these manifests instead of a cluster (no kube client;
    /// for benchmarks and offline trials).
    #[arg(long, env = "TIERGUARD_WORLD")]
    pub world: Vec<PathBuf>,
    /// The guard's own user: it may change managed baseline policies.
    #[arg(
        long,
        env = "TIERGUARD_SERVICE_ACCOUNT",
        default_value = "system:serviceaccount:tierguard:tierguard"
    )]
    pub service_account: String,
    /// More users allowed to change or delete managed baseline policies (comma-separated).
    #[arg(long, env = "TIERGUARD_BASELINE_EDITORS", value_delimiter = ',')]
    pub baseline_editors: Vec<String>,
    /// Refuse pods in tier namespaces until their baseline exists (`--pod-guard=false` turns it off).
    #[arg(long, env = "TIERGUARD_POD_GUARD", default_value_t = true, action = clap::ArgAction::Set)]
    pub pod_guard: bool,
    /// Run the baseline controller (with leader election) in this process (`--controller=false` turns it off).
    #[arg(long, env = "TIERGUARD_CONTROLLER", default_value_t = true, action = clap::ArgAction::Set)]
    pub controller: bool,
    /// Delete the managed baseline of a namespace that leaves its tier (default: keep it).
    #[arg(long, env = "TIERGUARD_REMOVE_BASELINE_ON_LEAVE")]
    pub remove_baseline_on_leave: bool,
    /// Namespace of the leader-election Lease.
    #[arg(
        long,
        env = "TIERGUARD_LEADER_ELECTION_NAMESPACE",
        default_value = "tierguard"
    )]
    pub leader_election_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "TIERGUARD_LEASE_NAME",
        default_value = "tierguard-controller"
    )]
    pub lease_name: String,
    /// This replica's identity in the Lease (default: POD_NAME, else hostname and pid).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Serve POST /noop (parses and admits), for benchmarks.
    #[arg(long, hide = true)]
    pub bench_noop: bool,
}

/// Runs the webhook until SIGTERM.
pub fn run(args: ServeArgs) -> Result<ExitCode> {
    telemetry::init_logging(args.log_format);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(args))?;
    Ok(ExitCode::SUCCESS)
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "tierguard".into());
    format!("{host}-{}", std::process::id())
}

/// Runs the baseline controller whenever this replica leads.
async fn lead(client: kube::Client, election: leader::Election, ctx: Arc<controller::Context>) {
    loop {
        election.acquire(&client).await;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(controller::run(ctx.clone(), async move {
            let _ = stop_rx.await;
        }));
        election.hold(&client).await;
        let _ = stop_tx.send(());
        let _ = running.await;
    }
}

async fn kube_client(args: &ServeArgs) -> Result<kube::Client> {
    let opts = kube::config::KubeConfigOptions {
        context: args.context.clone(),
        ..Default::default()
    };
    let config = match &args.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| anyhow!("{}: cannot read kubeconfig: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &opts)
                .await
                .map_err(|e| anyhow!("{}: {e}", path.display()))?
        }
        None if args.context.is_some() => kube::Config::from_kubeconfig(&opts)
            .await
            .map_err(|e| anyhow!("kubeconfig: {e}"))?,
        None => kube::Config::infer()
            .await
            .map_err(|e| anyhow!("no cluster configuration: {e}"))?,
    };
    kube::Client::try_from(config).map_err(|e| anyhow!("kube client: {e}"))
}

async fn serve(args: ServeArgs) -> Result<()> {
    let mut policy = super::load_policy(args.policy.as_deref())?;
    if let Some(m) = args.mode {
        policy.mode = match m {
            ModeArg::Enforce => Mode::Enforce,
            ModeArg::Audit => Mode::Audit,
        };
    }
    let metrics = Arc::new(Metrics::new());
    let certs = CertStore::load(&args.tls_cert, &args.tls_key, &metrics)?;
    let tls = certs.server_config()?;

    let index: SharedIndex = if args.world.is_empty() {
        Arc::new(RwLock::new(Index::new()))
    } else {
        let world = World::load(&args.world)?;
        Arc::new(RwLock::new(Index::preloaded(world.state)))
    };
    crate::index::publish(&index, &metrics);

    let mut editors: BTreeSet<String> = args.baseline_editors.iter().cloned().collect();
    editors.insert(args.service_account.clone());
    let ctx = Arc::new(Ctx {
        policy,
        index: index.clone(),
        metrics: metrics.clone(),
        deadline: Duration::from_millis(args.request_deadline_ms),
        max_body: args.max_body_bytes,
        baseline_editors: editors,
        pod_guard: args.pod_guard,
        pool: admission::pool::JudgePool::per_core(),
    });

    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding the webhook listener {}", args.listen))?;
    let admin = TcpListener::bind(args.admin_listen)
        .await
        .with_context(|| format!("binding the admin listener {}", args.admin_listen))?;
    info!(
        listen = %listener.local_addr()?, admin = %admin.local_addr()?,
        policy = %ctx.policy.name, mode = ?ctx.policy.mode, judge = ?ctx.policy.judge,
        "tierguard serving"
    );

    if args.world.is_empty() {
        let client = kube_client(&args).await?;
        let (idx, m, c) = (index.clone(), metrics.clone(), client.clone());
        tokio::spawn(async move {
            if let Err(e) = crate::index::run_watches(c, idx, m).await {
                warn!(error = %e, "watches stopped");
            }
        });
        if args.controller {
            let election = leader::Election {
                namespace: args.leader_election_namespace.clone(),
                name: args.lease_name.clone(),
                identity: args.identity.clone().unwrap_or_else(default_identity),
                lease: Duration::from_secs(15),
                renew: Duration::from_secs(5),
            };
            let cctx = Arc::new(controller::Context {
                client: client.clone(),
                policy: ctx.policy.clone(),
                metrics: metrics.clone(),
                remove_on_leave: args.remove_baseline_on_leave,
                failures: Default::default(),
            });
            tokio::spawn(lead(client, election, cctx));
        }
    }
    tokio::spawn(certs.clone().watch(
        Duration::from_secs(args.tls_reload_seconds.max(1)),
        metrics.clone(),
    ));

    let admin_app = admission::admin_router(ctx.clone());
    let admin_task = tokio::spawn(async move {
        if let Err(e) = axum::serve(admin, admin_app)
            .with_graceful_shutdown(server::shutdown_signal())
            .await
        {
            warn!(error = %e, "admin listener failed");
        }
    });
    server::serve_tls(
        listener,
        tls,
        admission::router(ctx, args.bench_noop),
        server::shutdown_signal(),
    )
    .await?;
    let _ = admin_task.await;
    Ok(())
}
