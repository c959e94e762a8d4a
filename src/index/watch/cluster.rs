//! The policy.networking.k8s.io kinds: found by discovery, watched while
//! served.
//!
//! ```text
//!  every interval: GET /apis → policy.networking.k8s.io versions
//!                  GET /apis/policy.networking.k8s.io/<version> → resources
//!      kind newly served ──► Index::set_cluster_apis (unsynced) ──► spawn its watch
//!      kind gone          ──► stop its watch; drop its objects when the next
//!                             discovery confirms it (unsynced meanwhile)
//! ```
//!
//! A kind is watched at the first version tierguard reads that the API
//! server serves ([`Api::versions`]: ClusterNetworkPolicy v1beta1, else
//! v1alpha2). Until a newly served kind's initial list is in, the index is
//! not synced, so judgements are "retry" rather than blind to it. When the
//! group is absent nothing is watched and nothing is logged as an error.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::watcher::Event;
use kube::{Api as KubeApi, Client};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::{publish, report_rejected, watcher};
use crate::engine::cluster::Api;
use crate::index::{SharedIndex, Watched};
use crate::model::clusterpolicy::GROUP;
use crate::telemetry::Metrics;

/// A running watch: the version it reads and its task.
struct Running {
    version: String,
    task: JoinHandle<()>,
}

/// Discovers the kinds every `every` and keeps one watch per served kind.
pub(super) async fn discover(
    client: Client,
    index: SharedIndex,
    metrics: Arc<Metrics>,
    every: Duration,
) {
    let mut running: BTreeMap<Api, Running> = BTreeMap::new();
    let write = || index.write().unwrap_or_else(|e| e.into_inner());
    loop {
        match served(&client).await {
            Ok(found) => {
                // Watches of kinds gone, served at another version, or
                // ended (a task that panicked) stop, and are awaited, so
                // none writes to the index after this.
                let stale: Vec<Api> = running
                    .iter()
                    .filter(|(api, r)| found.get(*api) != Some(&r.version) || r.task.is_finished())
                    .map(|(api, _)| *api)
                    .collect();
                for api in &stale {
                    if let Some(r) = running.remove(api) {
                        r.task.abort();
                        let _ = r.task.await;
                        info!(kind = api.kind(), version = %r.version, "watch stopped");
                    }
                }
                let apis: Vec<Api> = found.keys().copied().collect();
                {
                    let mut idx = write();
                    // With no kind served there is no watch to say the API
                    // server answers again: this discovery does.
                    if found.is_empty() {
                        idx.watch_ok(Watched::ClusterPolicy);
                    }
                    // A kind watched again starts over: unsynced.
                    for api in stale.iter().filter(|a| found.contains_key(a)) {
                        idx.restart_cluster_api(*api);
                    }
                    idx.set_cluster_apis(&apis);
                }
                for (api, version) in found {
                    if running.contains_key(&api) {
                        continue;
                    }
                    info!(kind = api.kind(), %version, "served; watching it");
                    let task = tokio::spawn(watch(
                        client.clone(),
                        index.clone(),
                        metrics.clone(),
                        api,
                        version.clone(),
                    ));
                    running.insert(api, Running { version, task });
                }
            }
            // Recorded with the kinds' watches: a discovery that keeps
            // failing makes the index stale (a quiet one recovers, see
            // RECOVERED_AFTER_QUIET, longer than the default interval).
            Err(e) => {
                write().watch_failed(Watched::ClusterPolicy, Instant::now());
                warn!(error = %crate::report::clip(&e.to_string(), 512), "discovery of cluster policy kinds failed; retrying");
            }
        }
        publish(&index, &metrics);
        tokio::time::sleep(every).await;
    }
}

/// The kinds the API server serves, with the version tierguard watches.
pub(super) async fn served(client: &Client) -> Result<BTreeMap<Api, String>, kube::Error> {
    let groups = client.list_api_groups().await?;
    let Some(group) = groups.groups.into_iter().find(|g| g.name == GROUP) else {
        return Ok(BTreeMap::new());
    };
    let versions: Vec<String> = group.versions.into_iter().map(|v| v.version).collect();
    let mut resources: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for v in &versions {
        let list = client
            .list_api_group_resources(&format!("{GROUP}/{v}"))
            .await?;
        resources.insert(
            v.clone(),
            list.resources.into_iter().map(|r| r.name).collect(),
        );
    }
    let mut out = BTreeMap::new();
    for api in Api::ALL {
        let found = api.versions().iter().find(|v| {
            resources
                .get(**v)
                .is_some_and(|rs| rs.iter().any(|r| r == api.plural()))
        });
        if let Some(v) = found {
            out.insert(api, (*v).to_string());
        }
    }
    Ok(out)
}

/// Keeps one cluster policy kind of the index current, as `watch` does for
/// the typed kinds.
async fn watch(
    client: Client,
    index: SharedIndex,
    metrics: Arc<Metrics>,
    api: Api,
    version: String,
) {
    let resource = ApiResource {
        group: GROUP.into(),
        version: version.clone(),
        api_version: format!("{GROUP}/{version}"),
        kind: api.kind().into(),
        plural: api.plural().into(),
    };
    // A watch that cannot start where it was (HTTP 410) ends `follow`; a
    // new watcher lists afresh, as for the typed kinds.
    loop {
        let kapi: KubeApi<DynamicObject> = KubeApi::all_with(client.clone(), &resource);
        if follow(watcher(kapi), &index, &metrics, api).await == super::Ended::Stream {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Applies one cluster policy kind's watcher events to the index, as
/// `super::follow` does for the typed kinds.
async fn follow(
    stream: impl futures::Stream<Item = Result<Event<DynamicObject>, kube::runtime::watcher::Error>>
    + Send,
    index: &SharedIndex,
    metrics: &Metrics,
    api: Api,
) -> super::Ended {
    let mut stream = std::pin::pin!(stream);
    let mut initial: Vec<serde_json::Value> = Vec::new();
    let write = || index.write().unwrap_or_else(|e| e.into_inner());
    let json = |o: &DynamicObject| serde_json::to_value(o).unwrap_or(serde_json::Value::Null);
    while let Some(event) = stream.next().await {
        if event.is_ok() {
            write().watch_ok(Watched::ClusterPolicy);
        }
        let rejected = match event {
            Ok(Event::Init) => {
                initial.clear();
                if write().listing_cluster_api(api) {
                    super::relisted(metrics, api.kind());
                }
                publish(index, metrics);
                continue;
            }
            Ok(Event::InitApply(obj)) => {
                initial.push(json(&obj));
                continue;
            }
            Ok(Event::InitDone) => {
                let rejected = write().reset_cluster_policies(api, &initial);
                info!(kind = api.kind(), objects = initial.len(), "synced");
                initial.clear();
                rejected
            }
            Ok(Event::Apply(obj)) => match write().apply_cluster_policy(api, &json(&obj)) {
                Ok(()) => BTreeMap::new(),
                Err(errs) => {
                    let name = obj.metadata.name.clone().unwrap_or_default();
                    BTreeMap::from([(format!("{} {name}", api.kind()), errs)])
                }
            },
            Ok(Event::Delete(obj)) => {
                if let Some(name) = &obj.metadata.name {
                    write().delete_cluster_policy(api, name);
                }
                BTreeMap::new()
            }
            Err(e) => {
                let missed = super::missed(&e);
                {
                    let mut idx = write();
                    idx.watch_failed(Watched::ClusterPolicy, Instant::now());
                    if missed != super::Missed::Nothing && idx.listing_cluster_api(api) {
                        super::relisted(metrics, api.kind());
                    }
                }
                warn!(kind = api.kind(), error = %crate::report::clip(&e.to_string(), 512), "watch failed; retrying with backoff");
                publish(index, metrics);
                if missed == super::Missed::Restart {
                    return super::Ended::Gone;
                }
                continue;
            }
        };
        report_rejected(metrics, api.kind(), &rejected);
        publish(index, metrics);
    }
    super::Ended::Stream
}
