//! Baseline injection: every tier namespace gets the isolation policy's
//! baseline NetworkPolicies (default-deny, DNS), and keeps them.
//!
//! ```text
//!  watch Namespaces ──────────────────────┐
//!  watch NetworkPolicies (managed-by=tierguard) ─► namespace ─► reconcile(ns)
//!      reconcile: defence (what slipped past the failurePolicy-Ignore Namespace webhooks):
//!                   name label missing or lying ─► reset to the name (every namespace)
//!                   label-made tier ≠ tier stamp ─► warn; with --undo-unjudged-joins
//!                        restore the tier label to the stamp (none: remove it) first,
//!                        then reconcile the namespace as it now is
//!                 not a tier namespace ─► nothing (a namespace that leaves its
//!                                        tier keeps its policies)
//!                 missing ─► server-side apply (field manager "tierguard")
//!                 drifted (spec or labels edited) ─► replace with the baseline
//!                 every 5 minutes ─► again (backstop for missed events)
//!                 API error ─► retry after 1 s, 2 s, 4 s … 5 min (per namespace)
//! ```
//!
//! With `via: clusterNetworkPolicy` the baseline ClusterNetworkPolicies are
//! kept alongside ([`cluster`]).
//!
//! Only the leader (a coordination.k8s.io Lease, see [`leader`]) reconciles;
//! every replica serves the webhook. [`lead`] runs the controller while this
//! replica holds the Lease; on shutdown it stops the controller and releases
//! the Lease so another replica takes over at once. The webhook refuses pods in a tier
//! namespace until both baseline policies exist, so nothing runs unisolated
//! in the meantime.

pub mod cluster;
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
use tokio_util::sync::CancellationToken;
use tracing::{info, instrument, warn};

use crate::admission::mutate::admitted_tier;
use crate::engine::state::NAME_LABEL;
use crate::engine::tiers::IsolationPolicy;
use crate::model::baseline::baseline_policies;
use crate::model::baseline::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, is_managed};
use crate::telemetry::{Metrics, labels};

/// The field manager of tierguard's server-side applies.
pub const FIELD_MANAGER: &str = "tierguard";
/// How often every namespace is reconciled even without events.
pub const RESYNC: Duration = Duration::from_secs(300);
/// How long to wait after the first failed reconcile; doubled per
/// consecutive failure of the same namespace, up to [`RETRY_MAX`].
pub const RETRY: Duration = Duration::from_secs(1);
/// The longest wait between retries.
pub const RETRY_MAX: Duration = Duration::from_secs(300);

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
    /// The isolation policy in force: each reconcile reads it once, and a
    /// change reconciles every namespace.
    pub policy: Arc<crate::live::Live>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Delete the managed baseline of a namespace that leaves its tier.
    pub remove_on_leave: bool,
    /// Undo a tier join nobody judged (a label-made tier that differs from
    /// the namespace's tier stamp): restore the tier label to the stamped
    /// tier, or remove it when there is no stamp. Off: only report it.
    pub undo_unjudged_joins: bool,
    /// Consecutive failures per namespace, for exponential backoff.
    pub failures: std::sync::Mutex<std::collections::HashMap<String, u32>>,
    /// While leading, publish each of this census's counts as OpenReports
    /// (`live::reports`); None: publish none.
    pub reports: Option<Arc<crate::live::census::Census>>,
}

/// The wait before retry number `n` (1-based): 1 s, 2 s, 4 s, … up to 5 minutes.
pub fn backoff(n: u32) -> Duration {
    RETRY
        .saturating_mul(2u32.saturating_pow(n.saturating_sub(1)))
        .min(RETRY_MAX)
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
    /// The `result` label of the reconcile metric.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Repaired => "repaired",
            Outcome::Unchanged => "unchanged",
        }
    }
}

fn is_tier(policy: &IsolationPolicy, ns: &corev1::Namespace) -> bool {
    policy
        .tier_of_namespace(&ns.name_any(), ns.labels())
        .is_some()
}

fn drifted(live: &netv1::NetworkPolicy, want: &netv1::NetworkPolicy) -> bool {
    !is_managed(live) || live.spec != want.spec
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
    if ns.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let policy = ctx.policy.get();
    let ns = defend(ns, &policy, &ctx).await?;
    let name = ns.name_any();
    let api: Api<netv1::NetworkPolicy> = Api::namespaced(ctx.client.clone(), &name);
    if !is_tier(&policy, &ns) {
        if ctx.remove_on_leave {
            remove_managed(&api, &policy, &ctx).await?;
        }
        return Ok(Action::await_change());
    }
    for want in baseline_policies(&policy, &name) {
        let outcome = ensure(&api, &want).await?;
        ctx.metrics
            .reconciles
            .get_or_create(&labels(&[("result", outcome.as_str())]))
            .inc();
        if outcome != Outcome::Unchanged {
            info!(policy = %want.name_any(), result = outcome.as_str(), "baseline policy reconciled");
        }
    }
    ctx.failures
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&name);
    Ok(Action::requeue(RESYNC))
}

/// The longest value a defence log line carries: a label value's limit
/// (annotations are unbounded, and a user writes them).
const LOG_VALUE_MAX: usize = 63;

/// `s`, cut to [`LOG_VALUE_MAX`] characters (marked with `…`).
fn bounded(s: &str) -> String {
    match s.char_indices().nth(LOG_VALUE_MAX) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// What slipped past the Namespace webhooks (failurePolicy Ignore) while
/// tierguard was down, and what the controller does about it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// The `name` label when it is missing (`Some(None)`) or lies
    /// (`Some(Some(value))`); `None` when it is right.
    pub name_label: Option<Option<String>>,
    /// A tier join nobody judged: the namespace's label-made tier and its
    /// stamp (`None`: absent), which differ.
    pub unjudged_join: Option<(String, Option<String>)>,
}

impl Findings {
    /// What is wrong with `ns` under `policy`.
    pub fn of(policy: &IsolationPolicy, ns: &corev1::Namespace) -> Self {
        let name = ns.name_any();
        let labels = ns.metadata.labels.as_ref();
        let name_label = match labels.and_then(|l| l.get(NAME_LABEL)) {
            Some(v) if *v == name => None,
            other => Some(other.cloned()),
        };
        let stamp = crate::admission::mutate::stamp_of(&ns.metadata);
        // Only a join counts: a namespace in no label-made tier that still
        // carries a stamp has left its tier (or its tier is gone), which
        // opens nothing to it.
        let unjudged_join = admitted_tier(policy, &name, labels)
            .filter(|tier| stamp.as_ref() != Some(tier))
            .map(|tier| (tier, stamp));
        Self {
            name_label,
            unjudged_join,
        }
    }

    /// The JSON merge patch that repairs what `undo` asks for (the name
    /// label always; the tier label when `undo` is set), or `None` when
    /// nothing is to change. It carries the observed resourceVersion, so a
    /// namespace changed since is not overwritten (the reconcile fails and
    /// retries on the new object).
    pub fn repair(
        &self,
        policy: &IsolationPolicy,
        ns: &corev1::Namespace,
        undo: bool,
    ) -> Option<serde_json::Value> {
        let mut labels = serde_json::Map::new();
        if self.name_label.is_some() {
            labels.insert(NAME_LABEL.into(), ns.name_any().into());
        }
        if undo && let Some((_, stamp)) = &self.unjudged_join {
            // A stamp that names no tier of the policy cannot be restored
            // (it may not even be a valid label value): no stamp.
            let restore = stamp
                .as_deref()
                .filter(|s| policy.tier_index(s).is_some())
                .map(|s| serde_json::Value::String(s.to_string()))
                .unwrap_or(serde_json::Value::Null);
            labels.insert(policy.tier_label.clone(), restore);
        }
        if labels.is_empty() {
            return None;
        }
        let mut metadata = serde_json::json!({ "labels": labels });
        if let Some(rv) = &ns.metadata.resource_version {
            metadata["resourceVersion"] = rv.clone().into();
        }
        Some(serde_json::json!({ "metadata": metadata }))
    }
}

/// Finds what slipped past the Namespace webhooks and repairs it (see
/// [`Findings`]): returns the namespace as it now is.
async fn defend(
    ns: Arc<corev1::Namespace>,
    policy: &IsolationPolicy,
    ctx: &Context,
) -> Result<Arc<corev1::Namespace>, Error> {
    let findings = Findings::of(policy, &ns);
    let count = |finding: &str| {
        ctx.metrics
            .defence
            .get_or_create(&labels(&[("finding", finding)]))
            .inc();
    };
    if let Some((tier, stamp)) = &findings.unjudged_join {
        warn!(
            namespace = %ns.name_any(),
            tier = %bounded(tier),
            stamp = %stamp.as_deref().map(bounded).unwrap_or_else(|| "<none>".into()),
            undo = ctx.undo_unjudged_joins,
            "tier join nobody judged: the namespace's tier label differs from its admitted-tier stamp"
        );
        count("unjudged-join-reported");
    }
    let Some(patch) = findings.repair(policy, &ns, ctx.undo_unjudged_joins) else {
        return Ok(ns);
    };
    let api: Api<corev1::Namespace> = Api::all(ctx.client.clone());
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let now = api
        .patch(&ns.name_any(), &params, &Patch::Merge(&patch))
        .await?;
    if let Some(was) = &findings.name_label {
        info!(
            was = %was.as_deref().map(bounded).unwrap_or_else(|| "<none>".into()),
            "name label reset to the namespace's name"
        );
        count("name-label-reset");
    }
    if ctx.undo_unjudged_joins
        && let Some((tier, stamp)) = &findings.unjudged_join
    {
        info!(
            tier = %bounded(tier),
            restored = %stamp.as_deref().map(bounded).unwrap_or_else(|| "<none>".into()),
            "unjudged tier join undone"
        );
        count("unjudged-join-undone");
    }
    Ok(Arc::new(now))
}

/// Deletes the managed baseline policies of a namespace outside the tiers.
async fn remove_managed(
    api: &Api<netv1::NetworkPolicy>,
    policy: &IsolationPolicy,
    ctx: &Context,
) -> Result<(), Error> {
    for name in policy.baseline_names() {
        let Some(live) = api.get_opt(name).await? else {
            continue;
        };
        if is_managed(&live) {
            api.delete(name, &kube::api::DeleteParams::default())
                .await?;
            ctx.metrics
                .reconciles
                .get_or_create(&labels(&[("result", "removed")]))
                .inc();
            info!(
                policy = name,
                "namespace left its tier: baseline policy removed"
            );
        }
    }
    Ok(())
}

fn error_policy(ns: Arc<corev1::Namespace>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconciles
        .get_or_create(&labels(&[("result", "failed")]))
        .inc();
    let n = {
        let mut f = ctx.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = f.entry(ns.name_any()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    let wait = backoff(n);
    warn!(namespace = %ns.name_any(), error = %err, attempt = n, retry_in = ?wait, "baseline reconcile failed; backing off");
    Action::requeue(wait)
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
    let cluster_stop = CancellationToken::new();
    let cluster = tokio::spawn(cluster::run(ctx.clone(), cluster_stop.clone()));
    Controller::new(namespaces, watcher::Config::default())
        .watches(policies, managed, |np: netv1::NetworkPolicy| {
            np.namespace()
                .map(|ns| ObjectRef::<corev1::Namespace>::new(&ns))
        })
        // A new isolation policy may change every namespace's baseline.
        .reconcile_all_on(ctx.policy.changes())
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                warn!(error = %e, "controller event");
            }
        })
        .await;
    cluster_stop.cancel();
    if let Err(e) = cluster.await {
        warn!(error = %e, "baseline ClusterNetworkPolicy controller ended abnormally");
    }
    info!("baseline controller stopped");
}

/// Runs the controller whenever this replica holds the leader-election
/// Lease (see [`leader::lead`]), stopping it whenever the Lease is lost;
/// returns once `shutdown` is cancelled, the controller has stopped and the
/// Lease has been released.
pub async fn lead(ctx: Arc<Context>, election: leader::Election, shutdown: CancellationToken) {
    let client = ctx.client.clone();
    leader::lead(&client, &election, shutdown, |stop| {
        let ctx = ctx.clone();
        async move {
            ctx.metrics.controller_leader.set(1);
            let stopped = CancellationToken::new();
            let publisher = ctx.reports.clone().map(|census| {
                tokio::spawn(crate::live::reports::run(
                    ctx.client.clone(),
                    census,
                    ctx.metrics.clone(),
                    stopped.clone(),
                ))
            });
            let stopping = stopped.clone();
            run(ctx.clone(), async move {
                let _ = stop.await;
                stopping.cancel();
            })
            .await;
            stopped.cancel();
            if let Some(p) = publisher
                && let Err(e) = p.await
            {
                warn!(error = %e, "the report publisher ended abnormally");
            }
            ctx.metrics.controller_leader.set(0);
        }
    })
    .await;
}

#[cfg(test)]
mod tests;
