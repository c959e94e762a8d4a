//! The baseline ClusterNetworkPolicies (`spec.baseline.via:
//! clusterNetworkPolicy`, see [`crate::model::clusterbaseline`]), kept as
//! the isolation policy writes them.
//!
//! ```text
//!  watch ClusterNetworkPolicies (managed-by=tierguard) ─┐
//!  every 5 minutes ─────────────────────────────────────┴► reconcile all:
//!      missing ─► server-side apply (field manager "tierguard")
//!      drifted (means something else, or lost the managed-by label) ─► replace
//!      API error (the kind not served yet, say) ─► retry after 1 s, 2 s … 5 min
//! ```
//!
//! Drift is judged on meaning: the live object is read as tierguard reads
//! any ClusterNetworkPolicy and compared with the wanted one, so defaults
//! the API server adds never cause a rewrite. Policies the isolation policy
//! no longer writes are left alone (reported once per start): removing a
//! Deny can open flows, and the webhook judges that like any deletion.

use std::sync::Arc;

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Context, Error, FIELD_MANAGER, Outcome, RESYNC, backoff};
use crate::engine::cluster::Api as PolicyApi;
use crate::model::baseline::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use crate::model::clusterbaseline::{self, API_VERSION};
use crate::model::clusterpolicy::GROUP;
use crate::telemetry::labels;

/// The resource tierguard writes its baseline as.
pub fn resource() -> ApiResource {
    let version = API_VERSION.rsplit('/').next().unwrap_or("v1beta1");
    ApiResource {
        group: GROUP.into(),
        version: version.into(),
        api_version: API_VERSION.into(),
        kind: PolicyApi::ClusterNetworkPolicy.kind().into(),
        plural: PolicyApi::ClusterNetworkPolicy.plural().into(),
    }
}

/// True when `live` means what `want` means and carries the managed-by
/// label.
pub fn in_place(live: &Value, want: &Value) -> bool {
    if !clusterbaseline::is_managed(live) {
        return false;
    }
    let read = |v| crate::model::clusterpolicy::convert(PolicyApi::ClusterNetworkPolicy, v).ok();
    match (read(live), read(want)) {
        (Some(l), Some(w)) => l == w,
        _ => false,
    }
}

/// Makes one baseline ClusterNetworkPolicy match `want`.
pub async fn ensure(api: &Api<DynamicObject>, want: &Value) -> Result<Outcome, Error> {
    let name = want["metadata"]["name"].as_str().unwrap_or_default();
    match api.get_opt(name).await? {
        None => {
            api.patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(want),
            )
            .await?;
            Ok(Outcome::Applied)
        }
        Some(live) => {
            let live_value = serde_json::to_value(&live).unwrap_or(Value::Null);
            if in_place(&live_value, want) {
                return Ok(Outcome::Unchanged);
            }
            let mut fixed: DynamicObject = serde_json::from_value(want.clone())
                .map_err(|e| Error::Kube(kube::Error::SerdeError(e)))?;
            fixed.metadata.resource_version = live.metadata.resource_version.clone();
            api.replace(name, &PostParams::default(), &fixed).await?;
            Ok(Outcome::Repaired)
        }
    }
}

/// Reconciles every baseline ClusterNetworkPolicy once.
async fn reconcile_all(
    api: &Api<DynamicObject>,
    ctx: &Context,
    wanted: &[Value],
) -> Result<(), Error> {
    for want in wanted {
        let outcome = ensure(api, want).await?;
        ctx.metrics
            .reconciles
            .get_or_create(&labels(&[("result", outcome.as_str())]))
            .inc();
        if outcome != Outcome::Unchanged {
            info!(
                cluster_network_policy = want["metadata"]["name"].as_str().unwrap_or_default(),
                result = outcome.as_str(),
                "baseline ClusterNetworkPolicy reconciled"
            );
        }
    }
    Ok(())
}

/// Runs until `stop` is cancelled, keeping the ClusterNetworkPolicies of
/// the isolation policy in force; idle while it keeps none, and started
/// over with the new ones when it changes.
pub async fn run(ctx: Arc<Context>, stop: CancellationToken) {
    let mut changes = ctx.policy.subscribe();
    loop {
        changes.mark_unchanged();
        let policy = ctx.policy.get();
        let keep = match policy.baseline.via {
            crate::engine::tiers::Via::ClusterNetworkPolicy { priority, .. } => {
                keep(
                    &ctx,
                    clusterbaseline::objects(&policy, priority),
                    &stop,
                    &mut changes,
                )
                .await
            }
            crate::engine::tiers::Via::NetworkPolicy => {
                tokio::select! {
                    () = stop.cancelled() => Ended::Stopped,
                    r = changes.changed() => if r.is_ok() { Ended::PolicyChanged } else { Ended::Stopped },
                }
            }
        };
        if keep == Ended::Stopped {
            return;
        }
        info!("isolation policy changed: baseline ClusterNetworkPolicies looked at again");
    }
}

/// Why [`keep`] returned.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    Stopped,
    PolicyChanged,
}

/// Keeps `wanted` until `stop` or a policy change.
async fn keep(
    ctx: &Arc<Context>,
    wanted: Vec<Value>,
    stop: &CancellationToken,
    changes: &mut tokio::sync::watch::Receiver<u64>,
) -> Ended {
    let api: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &resource());
    let managed =
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    // Any event (or a watch error, when the kind is not served) is a
    // reason to look again; the reconcile reports what is wrong.
    let mut events = watcher(api.clone(), managed).default_backoff().boxed();
    info!(
        policies = wanted.len(),
        "baseline ClusterNetworkPolicy controller running"
    );
    let mut failures = 0u32;
    let mut reported_stale = false;
    let ended = loop {
        let wait = match reconcile_all(&api, ctx, &wanted).await {
            Ok(()) => {
                failures = 0;
                if !reported_stale {
                    reported_stale = true;
                    report_stale(&api, &wanted).await;
                }
                RESYNC
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                ctx.metrics
                    .reconciles
                    .get_or_create(&labels(&[("result", "failed")]))
                    .inc();
                let wait = backoff(failures);
                warn!(error = %e, attempt = failures, retry_in = ?wait, "baseline ClusterNetworkPolicy reconcile failed; backing off");
                wait
            }
        };
        tokio::select! {
            () = stop.cancelled() => break Ended::Stopped,
            r = changes.changed() => break if r.is_ok() { Ended::PolicyChanged } else { Ended::Stopped },
            () = tokio::time::sleep(wait) => {}
            _ = events.next(), if failures == 0 => {}
        }
    };
    info!("baseline ClusterNetworkPolicy controller stopped");
    ended
}

/// Logs the managed ClusterNetworkPolicies the isolation policy no longer
/// writes (a tier renamed or removed).
async fn report_stale(api: &Api<DynamicObject>, wanted: &[Value]) {
    let params =
        kube::api::ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    let Ok(list) = api.list(&params).await else {
        return;
    };
    for obj in list {
        let name = obj.metadata.name.unwrap_or_default();
        if !wanted
            .iter()
            .any(|w| w["metadata"]["name"] == name.as_str())
        {
            warn!(cluster_network_policy = %name, "managed ClusterNetworkPolicy the isolation policy no longer writes: left in place; delete it once nothing relies on it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wanted() -> Vec<Value> {
        let iso = crate::model::isolationpolicy::load_file(std::path::Path::new(
            "examples/three-tier-cluster-baseline/policy.yaml",
        ))
        .expect("policy");
        clusterbaseline::objects(&iso, 0)
    }

    #[test]
    fn drift_is_judged_on_meaning() {
        let want = wanted().remove(1);
        let mut live = want.clone();
        live["metadata"]["resourceVersion"] = json!("7");
        live["metadata"]["uid"] = json!("u");
        live["status"] = json!({"conditions": []});
        assert!(in_place(&live, &want), "server-side fields are no drift");
        let mut unlabelled = live.clone();
        unlabelled["metadata"]["labels"] = json!({});
        assert!(
            !in_place(&unlabelled, &want),
            "the managed-by label is part of it"
        );
        let mut edited = live.clone();
        edited["spec"]["priority"] = json!(500);
        assert!(!in_place(&edited, &want));
        let mut broken = live;
        broken["spec"]["ingress"] = json!("nonsense");
        assert!(
            !in_place(&broken, &want),
            "an unreadable object is replaced"
        );
    }

    #[test]
    fn the_resource_is_the_version_tierguard_writes() {
        let r = resource();
        assert_eq!(r.api_version, "policy.networking.k8s.io/v1beta1");
        assert_eq!(
            (r.version.as_str(), r.plural.as_str()),
            ("v1beta1", "clusternetworkpolicies")
        );
        assert!(
            wanted()
                .iter()
                .all(|w| w["apiVersion"] == r.api_version.as_str())
        );
    }
}
