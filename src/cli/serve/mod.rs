//! `tierguard serve`: the admission webhook.
//!
//! ```text
//!  --policy ──► IsolationPolicy (--mode overrides its mode)
//!  kubeconfig / in-cluster ──► kube Client ──► watches ──► Index ◄── --world (offline)
//!  --tls-cert/--tls-key ──► CertStore (polled reload) ──► :8443 /mutate /validate
//!  --max-connections, --*-timeout-seconds, --h2-* ──► server::Limits on every connection
//!  :8080 /healthz /readyz /metrics (plain HTTP, admin.rs)
//!  --controller ──► controller::lead (baseline controller while this replica holds the Lease)
//!  SIGTERM ──► one shutdown token ─┬─► /readyz 503 at once; the leader releases its Lease
//!                                  └─► --drain-seconds still serving (a second signal skips it)
//!                                      ─► the webhook listener stops, in-flight requests finish
//!                                      ─► the admin listener stops ─► exit
//! ```

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::admin::{self, AdminState};
use crate::admission::{self, BodyBudget, Ctx, DEFAULT_MAX_BODY, DEFAULT_MAX_INFLIGHT_BODY};
use crate::controller;
use crate::engine::tiers::Mode;
use crate::index::{Index, SharedIndex};
use crate::server;
use crate::telemetry::{self, LogFormat, Metrics};
use crate::tls::CertStore;
use crate::world::World;

/// How long shutdown waits, after the listeners have drained, for the
/// controller to stop and the Lease to be released.
const STEP_DOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// `--mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Refuse changes that open forbidden flows.
    Enforce,
    /// Admit them with warnings, audit annotations, logs and metrics.
    Audit,
}

/// Arguments of `serve`, in groups. Every flag can also be set from the
/// environment.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where the listeners bind.
    #[command(flatten)]
    pub listen: ListenArgs,
    /// The webhook listener's connection limits and shutdown drain.
    #[command(flatten)]
    pub server: ServerArgs,
    /// The serving certificate.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// What the webhook judges and how.
    #[command(flatten)]
    pub admission: AdmissionArgs,
    /// Where the cluster state comes from.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// The baseline controller and its leader election.
    #[command(flatten)]
    pub controller: ControllerArgs,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

/// Listen addresses.
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Address of the webhook's HTTPS listener.
    #[arg(long, env = "TIERGUARD_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Address of the plain-HTTP admin listener (/healthz, /readyz, /metrics).
    #[arg(long, env = "TIERGUARD_ADMIN_LISTEN", default_value = "0.0.0.0:8080")]
    pub admin_listen: SocketAddr,
}

/// Bounds on the webhook listener's connections, and the drain on shutdown.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Webhook connections open at once; more are closed right after accept.
    #[arg(long, env = "TIERGUARD_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Time a client has to finish the TLS handshake, in seconds.
    #[arg(long, env = "TIERGUARD_HANDSHAKE_TIMEOUT_SECONDS", default_value_t = 5)]
    pub handshake_timeout_seconds: u64,
    /// Time a client has to send an HTTP/1 request head, in seconds.
    #[arg(long, env = "TIERGUARD_HEADER_TIMEOUT_SECONDS", default_value_t = 5)]
    pub header_timeout_seconds: u64,
    /// Time a connection may stay without a request in flight (after the
    /// handshake, between requests), in seconds; then it is closed.
    #[arg(long, env = "TIERGUARD_IDLE_TIMEOUT_SECONDS", default_value_t = 30)]
    pub idle_timeout_seconds: u64,
    /// How often HTTP/2 connections are pinged, in seconds.
    #[arg(
        long,
        env = "TIERGUARD_H2_KEEPALIVE_INTERVAL_SECONDS",
        default_value_t = 20
    )]
    pub h2_keepalive_interval_seconds: u64,
    /// How long an HTTP/2 ping may go unanswered before the connection is
    /// closed, in seconds.
    #[arg(
        long,
        env = "TIERGUARD_H2_KEEPALIVE_TIMEOUT_SECONDS",
        default_value_t = 10
    )]
    pub h2_keepalive_timeout_seconds: u64,
    /// Concurrent streams on one HTTP/2 connection.
    #[arg(
        long,
        env = "TIERGUARD_H2_MAX_CONCURRENT_STREAMS",
        default_value_t = 100
    )]
    pub h2_max_concurrent_streams: u32,
    /// Largest HTTP/2 header list, in bytes.
    #[arg(
        long,
        env = "TIERGUARD_H2_MAX_HEADER_LIST_BYTES",
        default_value_t = 16384
    )]
    pub h2_max_header_list_bytes: u32,
    /// After SIGTERM, how long to keep serving with /readyz failing, so the
    /// endpoints drop this replica before it stops accepting, in seconds.
    #[arg(long, env = "TIERGUARD_DRAIN_SECONDS", default_value_t = 10)]
    pub drain_seconds: u64,
}

/// The serving certificate and its reload.
#[derive(Debug, Args)]
pub struct TlsArgs {
    /// Serving certificate chain (PEM, leaf first).
    #[arg(long, env = "TIERGUARD_TLS_CERT")]
    pub tls_cert: PathBuf,
    /// Serving private key (PEM).
    #[arg(long, env = "TIERGUARD_TLS_KEY")]
    pub tls_key: PathBuf,
    /// How often to re-read the certificate files, in seconds.
    #[arg(long, env = "TIERGUARD_TLS_RELOAD_SECONDS", default_value_t = 5)]
    pub tls_reload_seconds: u64,
}

/// The isolation policy and the webhook's limits and privileges.
#[derive(Debug, Args)]
pub struct AdmissionArgs {
    /// The isolation policy (default: ./tierguard.yaml, policies/three-tier.yaml
    /// in the repository, then ~/.config/tierguard/policy.yaml).
    #[arg(long, env = "TIERGUARD_POLICY", conflicts_with = "policy_object")]
    pub policy: Option<PathBuf>,
    /// Read the isolation policy from the cluster's IsolationPolicy object
    /// of this name instead, watched: each valid generation is in force
    /// within seconds, an invalid one leaves the last valid one in force,
    /// and its status says which (needs `tierguard crd` installed).
    #[arg(long, env = "TIERGUARD_POLICY_OBJECT")]
    pub policy_object: Option<String>,
    /// Override the isolation policy's mode.
    #[arg(long, env = "TIERGUARD_MODE", value_enum)]
    pub mode: Option<ModeArg>,
    /// Per-request deadline in milliseconds (keep it under the webhook timeout).
    #[arg(long, env = "TIERGUARD_REQUEST_DEADLINE_MS", default_value_t = admission::DEFAULT_DEADLINE_MS)]
    pub request_deadline_ms: u64,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "TIERGUARD_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY)]
    pub max_body_bytes: usize,
    /// Request bodies held in memory at once, summed over requests (at least
    /// --max-body-bytes); a body that would exceed it waits within its deadline.
    #[arg(long, env = "TIERGUARD_MAX_INFLIGHT_BODY_BYTES", default_value_t = DEFAULT_MAX_INFLIGHT_BODY)]
    pub max_inflight_body_bytes: usize,
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
    /// Serve POST /noop (parses and admits), for benchmarks.
    #[arg(long, hide = true)]
    pub bench_noop: bool,
}

/// The cluster to watch, or manifests instead of one.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, env = "TIERGUARD_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context.
    #[arg(long, env = "TIERGUARD_KUBE_CONTEXT")]
    pub context: Option<String>,
    /// Judge against these manifests instead of a cluster (no kube client;
    /// for benchmarks and offline trials).
    #[arg(long, env = "TIERGUARD_WORLD")]
    pub world: Vec<PathBuf>,
    /// Seconds a watch may keep failing before the index counts as stale:
    /// `/readyz` fails and judgements are "cannot judge" (refused in enforce
    /// mode) until the watch recovers.
    #[arg(
        long,
        env = "TIERGUARD_INDEX_STALE_AFTER_SECONDS",
        default_value_t = 60
    )]
    pub index_stale_after_seconds: u64,
    /// Seconds between discoveries of the policy.networking.k8s.io kinds
    /// (ClusterNetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy):
    /// a kind whose CRD is installed later is watched from the next one on
    /// (1 to 40; larger values are taken as 40).
    #[arg(
        long,
        env = "TIERGUARD_DISCOVERY_INTERVAL_SECONDS",
        default_value_t = 30
    )]
    pub discovery_interval_seconds: u64,
}

/// The baseline controller and the Lease that elects the replica running it.
#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// Run the baseline controller (with leader election) in this process (`--controller=false` turns it off).
    #[arg(long, env = "TIERGUARD_CONTROLLER", default_value_t = true, action = clap::ArgAction::Set)]
    pub controller: bool,
    /// Delete the managed baseline of a namespace that leaves its tier (default: keep it).
    #[arg(long, env = "TIERGUARD_REMOVE_BASELINE_ON_LEAVE")]
    pub remove_baseline_on_leave: bool,
    /// Undo tier joins nobody judged (a namespace whose tier label differs
    /// from its tierguard.io/admitted-tier stamp, e.g. labelled while the
    /// webhook was down): restore the stamped tier, or remove the tier
    /// label when there is no stamp (default: only report them). Turn it
    /// on only once the namespaces labelled into a tier before tierguard was
    /// installed are stamped: they have no stamp, so they are reported (and
    /// would be taken out of their tier).
    #[arg(long, env = "TIERGUARD_UNDO_UNJUDGED_JOINS")]
    pub undo_unjudged_joins: bool,
    /// Publish the current violations as OpenReports (`openreports.io/v1alpha1`
    /// Report per tier namespace, ClusterReport per isolation policy),
    /// written by the leader when they change; nothing is written while the
    /// API server does not serve the kinds (`--reports=false` turns it off).
    #[arg(long, env = "TIERGUARD_REPORTS", default_value_t = true, action = clap::ArgAction::Set)]
    pub reports: bool,
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
    /// How long the Lease lasts without renewal, in seconds: another replica
    /// takes it over after that.
    #[arg(long, env = "TIERGUARD_LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// How often the holder renews the Lease, in seconds; less than
    /// --lease-duration-seconds. A holder none of whose renewals succeeded
    /// for duration - renew stops leading.
    #[arg(long, env = "TIERGUARD_LEASE_RENEW_SECONDS", default_value_t = 5)]
    pub lease_renew_seconds: u64,
    /// How often the other replicas try to take the Lease, and the holder
    /// retries a failed renewal, in seconds; at most --lease-renew-seconds
    /// (client-go's RetryPeriod).
    #[arg(long, env = "TIERGUARD_LEASE_RETRY_SECONDS", default_value_t = 2)]
    pub lease_retry_seconds: u64,
}

/// Logging.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log format.
    #[arg(long, env = "TIERGUARD_LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: LogFormat,
}

// === impl ServerArgs ===

impl ServerArgs {
    /// The connection limits these flags describe, refused when a limit is
    /// zero (it would close every connection).
    pub fn limits(&self) -> Result<server::Limits> {
        for (flag, value) in [
            ("--max-connections", self.max_connections as u64),
            (
                "--handshake-timeout-seconds",
                self.handshake_timeout_seconds,
            ),
            ("--header-timeout-seconds", self.header_timeout_seconds),
            ("--idle-timeout-seconds", self.idle_timeout_seconds),
            (
                "--h2-keepalive-interval-seconds",
                self.h2_keepalive_interval_seconds,
            ),
            (
                "--h2-keepalive-timeout-seconds",
                self.h2_keepalive_timeout_seconds,
            ),
            (
                "--h2-max-concurrent-streams",
                u64::from(self.h2_max_concurrent_streams),
            ),
            (
                "--h2-max-header-list-bytes",
                u64::from(self.h2_max_header_list_bytes),
            ),
        ] {
            if value == 0 {
                bail!("{flag} must be at least 1");
            }
        }
        Ok(server::Limits {
            max_connections: self.max_connections,
            handshake_timeout: Duration::from_secs(self.handshake_timeout_seconds),
            header_read_timeout: Duration::from_secs(self.header_timeout_seconds),
            idle_timeout: Duration::from_secs(self.idle_timeout_seconds),
            h2_keep_alive_interval: Duration::from_secs(self.h2_keepalive_interval_seconds),
            h2_keep_alive_timeout: Duration::from_secs(self.h2_keepalive_timeout_seconds),
            h2_max_concurrent_streams: self.h2_max_concurrent_streams,
            h2_max_header_list_size: self.h2_max_header_list_bytes,
            drain_timeout: server::DRAIN_TIMEOUT,
        })
    }

    /// How long to keep serving after SIGTERM.
    pub fn drain(&self) -> Duration {
        Duration::from_secs(self.drain_seconds)
    }
}

/// Runs the webhook until SIGTERM.
pub fn run(args: ServeArgs) -> Result<ExitCode> {
    telemetry::init_logging(args.log.log_format);
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

async fn kube_client(args: &ClusterArgs) -> Result<kube::Client> {
    super::client_for(args.kubeconfig.as_deref(), args.context.as_deref()).await
}

async fn serve(args: ServeArgs) -> Result<()> {
    let ServeArgs {
        listen,
        server: server_args,
        tls,
        admission: adm,
        cluster,
        controller: ctrl,
        log: _,
    } = args;
    let election = ctrl.election()?;
    let limits = server_args.limits()?;
    // The one shutdown signal, for the listeners and the leader loop alike.
    let shutdown = server::shutdown_token();
    let mode = adm.mode.map(|m| match m {
        ModeArg::Enforce => Mode::Enforce,
        ModeArg::Audit => Mode::Audit,
    });
    let client = if cluster.world.is_empty() {
        Some(kube_client(&cluster).await?)
    } else {
        None
    };
    let (policy, from_object) = match (&adm.policy_object, &client) {
        (Some(name), Some(client)) => {
            let (live, generation) = crate::live::object::first(client, name, mode).await;
            (live, Some((name.clone(), generation)))
        }
        (Some(_), None) => {
            bail!("--policy-object reads the cluster: it cannot be used with --world")
        }
        (None, _) => (
            crate::live::Live::new(super::load_policy(adm.policy.as_deref())?, mode),
            None,
        ),
    };
    let metrics = Arc::new(Metrics::new());
    let certs = CertStore::load(&tls.tls_cert, &tls.tls_key, &metrics)?;
    let server_tls = certs.server_config()?;

    let index: SharedIndex = if cluster.world.is_empty() {
        Arc::new(RwLock::new(Index::new().with_stale_after(
            Duration::from_secs(cluster.index_stale_after_seconds),
        )))
    } else {
        let world = World::load(&cluster.world)?;
        Arc::new(RwLock::new(Index::preloaded(world.state)))
    };
    crate::index::publish(&index, &metrics);

    let mut editors: BTreeSet<String> = adm.baseline_editors.iter().cloned().collect();
    editors.insert(adm.service_account.clone());
    let ctx = Arc::new(Ctx {
        policy,
        index: index.clone(),
        metrics: metrics.clone(),
        deadline: Duration::from_millis(adm.request_deadline_ms),
        max_body: adm.max_body_bytes,
        baseline_editors: editors,
        pod_guard: adm.pod_guard,
        pool: admission::pool::JudgePool::per_core(),
        bodies: BodyBudget::new(adm.max_inflight_body_bytes, adm.max_body_bytes),
    });

    let listener = TcpListener::bind(listen.listen)
        .await
        .with_context(|| format!("binding the webhook listener {}", listen.listen))?;
    let admin = TcpListener::bind(listen.admin_listen)
        .await
        .with_context(|| format!("binding the admin listener {}", listen.admin_listen))?;
    let in_force = ctx.policy();
    info!(
        listen = %listener.local_addr()?, admin = %admin.local_addr()?,
        policy = %in_force.name, mode = ?in_force.mode, judge = ?in_force.judge,
        object = from_object.is_some(),
        "tierguard serving"
    );

    let mut leader = None;
    if let Some(client) = client {
        let census = Arc::new(crate::live::census::Census::default());
        tokio::spawn(crate::live::census::run(
            ctx.policy.clone(),
            index.clone(),
            metrics.clone(),
            census.clone(),
        ));
        if let Some((name, generation)) = from_object {
            tokio::spawn(crate::live::object::run(
                client.clone(),
                name,
                ctx.policy.clone(),
                generation,
                index.clone(),
                census.clone(),
            ));
        }
        let (idx, m, c) = (index.clone(), metrics.clone(), client.clone());
        // Under RECOVERED_AFTER_QUIET, so a discovery that keeps failing
        // makes the index stale.
        let every = Duration::from_secs(cluster.discovery_interval_seconds.clamp(1, 40));
        tokio::spawn(async move {
            if let Err(e) = crate::index::run_watches(c, idx, m, every).await {
                warn!(error = %e, "watches stopped");
            }
        });
        if ctrl.controller {
            let cctx = Arc::new(controller::Context {
                client: client.clone(),
                policy: ctx.policy.clone(),
                metrics: metrics.clone(),
                remove_on_leave: ctrl.remove_baseline_on_leave,
                undo_unjudged_joins: ctrl.undo_unjudged_joins,
                failures: Default::default(),
                reports: ctrl.reports.then(|| census.clone()),
            });
            leader = Some(tokio::spawn(controller::lead(
                cctx,
                election,
                shutdown.clone(),
            )));
        }
    }
    tokio::spawn(certs.clone().watch(
        Duration::from_secs(tls.tls_reload_seconds.max(1)),
        metrics.clone(),
    ));

    // /readyz fails from the first signal on; /healthz and /metrics stay
    // up until the webhook listener has drained.
    let admin_app = admin::router(Arc::new(AdminState {
        index: index.clone(),
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
    }));
    let admin_stop = CancellationToken::new();
    let admin_stopped = admin_stop.clone();
    let admin_task = tokio::spawn(async move {
        if let Err(e) = axum::serve(admin, admin_app)
            .with_graceful_shutdown(admin_stopped.cancelled_owned())
            .await
        {
            warn!(error = %e, "admin listener failed");
        }
    });
    // Serve through the drain period; a second SIGTERM or Ctrl-C cuts it
    // short (the signal is only listened for once the first has come).
    let stop_accepting = server::after_drain(
        shutdown.clone(),
        server_args.drain(),
        server::shutdown_signal(),
    );
    let served = server::serve_tls(
        listener,
        server_tls,
        admission::router(ctx, adm.bench_noop),
        limits,
        metrics.clone(),
        stop_accepting,
    )
    .await;
    admin_stop.cancel();
    let _ = admin_task.await;
    served?;
    if let Some(leader) = leader
        && tokio::time::timeout(STEP_DOWN_TIMEOUT, leader)
            .await
            .is_err()
    {
        warn!(
            "the controller had not stepped down after {STEP_DOWN_TIMEOUT:?}; the Lease runs out on its own"
        );
    }
    Ok(())
}

mod lease;

#[cfg(test)]
mod tests;
