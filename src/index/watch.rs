//! kube-rs watches that keep the index current.

use std::sync::Arc;

use anyhow::Result;
use futures::StreamExt;
use k8s_openapi::api::core::v1 as corev1;
use k8s_openapi::api::networking::v1 as netv1;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tracing::{info, warn};

use super::SharedIndex;
use crate::telemetry::{Metrics, labels};

/// Watches namespaces and NetworkPolicies until the streams end (they
/// retry with backoff, so only on shutdown).
pub async fn run_watches(client: Client, index: SharedIndex, metrics: Arc<Metrics>) -> Result<()> {
    tokio::join!(
        namespaces(client.clone(), index.clone(), metrics.clone()),
        policies(client, index, metrics)
    );
    Ok(())
}

/// Records the index's size and sync state in the metrics.
pub fn publish(index: &SharedIndex, metrics: &Metrics) {
    let idx = index.read().unwrap_or_else(|e| e.into_inner());
    let (ns, np) = idx.counts();
    metrics.index_synced.set(i64::from(idx.is_synced()));
    metrics
        .index_objects
        .get_or_create(&labels(&[("kind", "Namespace")]))
        .set(i64::try_from(ns).unwrap_or(i64::MAX));
    metrics
        .index_objects
        .get_or_create(&labels(&[("kind", "NetworkPolicy")]))
        .set(i64::try_from(np).unwrap_or(i64::MAX));
}

async fn namespaces(client: Client, index: SharedIndex, metrics: Arc<Metrics>) {
    let api: Api<corev1::Namespace> = Api::all(client);
    let mut stream = watcher(api).boxed();
    let mut initial = Vec::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => initial.clear(),
            Ok(Event::InitApply(ns)) => initial.push(ns),
            Ok(Event::InitDone) => {
                index
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .reset_namespaces(&initial);
                info!(namespaces = initial.len(), "namespaces synced");
                initial.clear();
            }
            Ok(Event::Apply(ns)) => index
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .apply_namespace(&ns),
            Ok(Event::Delete(ns)) => {
                if let Some(name) = &ns.metadata.name {
                    index
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .delete_namespace(name);
                }
            }
            Err(e) => warn!(error = %e, "namespace watch failed; retrying with backoff"),
        }
        publish(&index, &metrics);
    }
}

async fn policies(client: Client, index: SharedIndex, metrics: Arc<Metrics>) {
    let api: Api<netv1::NetworkPolicy> = Api::all(client);
    let mut stream = watcher(api).boxed();
    let mut initial = Vec::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => initial.clear(),
            Ok(Event::InitApply(np)) => initial.push(np),
            Ok(Event::InitDone) => {
                let rejected = index
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .reset_policies(&initial);
                for (key, errs) in &rejected {
                    metrics
                        .index_rejected
                        .get_or_create(&labels(&[("kind", "NetworkPolicy")]))
                        .inc();
                    warn!(policy = %key, errors = ?errs, "cannot read NetworkPolicy; it is left out of the index");
                }
                info!(policies = initial.len(), "network policies synced");
                initial.clear();
            }
            Ok(Event::Apply(np)) => {
                let res = index
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .apply_policy(&np);
                if let Err(errs) = res {
                    metrics
                        .index_rejected
                        .get_or_create(&labels(&[("kind", "NetworkPolicy")]))
                        .inc();
                    warn!(policy = ?np.metadata.name, errors = ?errs, "cannot read NetworkPolicy; it is left out of the index");
                }
            }
            Ok(Event::Delete(np)) => {
                if let (Some(ns), Some(name)) = (&np.metadata.namespace, &np.metadata.name) {
                    index
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .delete_policy(ns, name);
                }
            }
            Err(e) => warn!(error = %e, "network policy watch failed; retrying with backoff"),
        }
        publish(&index, &metrics);
    }
}

fn watcher<K>(api: Api<K>) -> impl futures::Stream<Item = Result<Event<K>, watcher::Error>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher::watcher(api, watcher::Config::default()).default_backoff()
}
