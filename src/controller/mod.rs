//! Baseline injection: every tier namespace gets the isolation policy's
//! baseline NetworkPolicies (default-deny, DNS), and keeps them.
//!
//! ```text
//!  watch Namespaces ──────────────────────┐
//!  watch NetworkPolicies (managed-by=tierguard) ─► namespace ─► reconcile(ns)
//!      reconcile: not a tier namespace ─► nothing (a namespace that leaves its
//!                                        tier keeps its policies)
//!                 missing ─► server-side apply (field manager "tierguard")
//!                 drifted (spec or labels edited) ─► replace with the baseline
//!                 every 5 minutes ─► again (backstop for missed events)
//! ```
//!
//! Only the leader (a coordination.k8s.io Lease, see [`leader`]) reconciles;
//! every replica serves the webhook. The webhook refuses pods in a tier
//! namespace until both baseline policies exist, so nothing runs unisolated
//! in the meantime.

pub mod leader;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1 as corev1;
use k8s_openapi::api::networking::v1 as netv1;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tracing::{info, instrument, warn};

use crate::engine::isolation::Checker;
use crate::engine::state::Namespace;
use crate::engine::state::State;
use crate::guardpolicy::baseline::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use crate::guardpolicy::{IsolationPolicy, baseline_policies};
use crate::telemetry::{Metrics, labels};

/// The field manager of tierguard's server-side applies.
pub const FIELD_MANAGER: &str = "tierguard";
/// How often every namespace is reconciled even without events.
pub const RESYNC: Duration = Duration::from_secs(300);
/// How long to wait after a failed reconcile.
pub const RETRY: Duration = Duration::from_secs(5);

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// What reconciles need.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// The isolation policy.
    pub policy: IsolationPolicy,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

/// What happened to one baseline policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It was missing and has been created.
    Applied,
    /// It had been edited and has been restored.
    Repaired,
    /// It was in place.
    Unchanged,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Repaired => "repaired",
            Outcome::Unchanged => "unchanged",
        }
    }
}

fn is_tier(policy: &IsolationPolicy, ns: &corev1::Namespace) -> bool {
    let name = ns.name_any();
    let n = Namespace::new(&name, ns.labels().clone());
    let mut state = State::new();
    state.apply_namespace(n.clone());
    Checker::new(policy, &state).tier_of(&n).is_some()
}

fn drifted(live: &netv1::NetworkPolicy, want: &netv1::NetworkPolicy) -> bool {
    let managed = live
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .is_some_and(|v| v == MANAGED_BY_VALUE);
    !managed || live.spec != want.spec
}

/// Makes one baseline policy match the isolation policy.
pub async fn ensure(
    api: &Api<netv1::NetworkPolicy>,
    want: &netv1::NetworkPolicy,
) -> Result<Outcome, Error> {
    let name = want.name_any();
    match api.get_opt(&name).await? {
        None => {
            api.patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(want),
            )
            .await?;
            Ok(Outcome::Applied)
        }
        Some(live) if drifted(&live, want) => {
            let mut fixed = want.clone();
            fixed.metadata.resource_version = live.metadata.resource_version.clone();
            api.replace(&name, &PostParams::default(), &fixed).await?;
            Ok(Outcome::Repaired)
        }
        Some(_) => Ok(Outcome::Unchanged),
    }
}

/// Reconciles one namespace.
#[instrument(skip_all, fields(namespace = %ns.name_any()))]
pub async fn reconcile(ns: Arc<corev1::Namespace>, ctx: Arc<Context>) -> Result<Action, Error> {
    if ns.metadata.deletion_timestamp.is_some() || !is_tier(&ctx.policy, &ns) {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let api: Api<netv1::NetworkPolicy> = Api::namespaced(ctx.client.clone(), &name);
    for want in baseline_policies(&ctx.policy, &name) {
        let outcome = ensure(&api, &want).await?;
        ctx.metrics
            .reconciles
            .get_or_create(&labels(&[("result", outcome.as_str())]))
            .inc();
        if outcome != Outcome::Unchanged {
            info!(policy = %want.name_any(), result = outcome.as_str(), "baseline policy reconciled");
        }
    }
    Ok(Action::requeue(RESYNC))
}

fn error_policy(ns: Arc<corev1::Namespace>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconciles
        .get_or_create(&labels(&[("result", "failed")]))
        .inc();
    warn!(namespace = %ns.name_any(), error = %err, "baseline reconcile failed; retrying");
    Action::requeue(RETRY)
}

/// Runs the controller until `stop` completes.
pub async fn run(
    ctx: Arc<Context>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let namespaces: Api<corev1::Namespace> = Api::all(ctx.client.clone());
    let policies: Api<netv1::NetworkPolicy> = Api::all(ctx.client.clone());
    let managed =
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    info!("baseline controller running");
    Controller::new(namespaces, watcher::Config::default())
        .watches(policies, managed, |np: netv1::NetworkPolicy| {
            np.namespace()
                .map(|ns| ObjectRef::<corev1::Namespace>::new(&ns))
        })
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                warn!(error = %e, "controller event");
            }
        })
        .await;
    info!("baseline controller stopped");
}
