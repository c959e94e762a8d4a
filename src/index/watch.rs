//! kube-rs watches that keep the index current.

mod cluster;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use futures::StreamExt;
use k8s_openapi::api::core::v1 as corev1;
use k8s_openapi::api::networking::v1 as netv1;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use super::{Index, SharedIndex, Watched};
use crate::engine::field::FieldError;
use crate::telemetry::{Metrics, labels};

/// Watches namespaces and NetworkPolicies, and the cluster policy kinds
/// discovery finds (every `discover_every`), until the streams end (they
/// retry with backoff, so only on shutdown).
pub async fn run_watches(
    client: Client,
    index: SharedIndex,
    metrics: Arc<Metrics>,
    discover_every: Duration,
) -> Result<()> {
    tokio::join!(
        watch::<corev1::Namespace>(client.clone(), index.clone(), metrics.clone()),
        watch::<netv1::NetworkPolicy>(client.clone(), index.clone(), metrics.clone()),
        cluster::discover(client, index, metrics, discover_every)
    );
    Ok(())
}

/// One full list of everything the index keeps (namespaces,
/// NetworkPolicies, each policy.networking.k8s.io kind served), read in
/// pages: a synced index of the cluster as it is now, for `tierguard check
/// --cluster`. Also returns each object tierguard cannot read, with why
/// (`<kind> <namespace/name>: <first error>`): those are left out of the
/// judgement, as `serve`'s index leaves them out.
pub async fn snapshot(client: &Client) -> Result<(Index, Vec<String>)> {
    let mut index = Index::new();
    let mut unreadable = Vec::new();
    let mut note = |kind: &str, rejected: BTreeMap<String, Vec<FieldError>>| {
        for (object, errs) in rejected {
            let first = errs.first().map(ToString::to_string).unwrap_or_default();
            unreadable.push(format!("{kind} {object}: {first}"));
        }
    };
    let namespaces: Vec<corev1::Namespace> = list_all(Api::all(client.clone())).await?;
    let r = <corev1::Namespace as Indexed>::reset(&mut index, &namespaces);
    note("Namespace", r);
    let policies: Vec<netv1::NetworkPolicy> = list_all(Api::all(client.clone())).await?;
    let r = <netv1::NetworkPolicy as Indexed>::reset(&mut index, &policies);
    note("NetworkPolicy", r);
    let served = cluster::served(client).await?;
    index.set_cluster_apis(&served.keys().copied().collect::<Vec<_>>());
    for (api, version) in served {
        let resource = kube::api::ApiResource {
            group: crate::model::clusterpolicy::GROUP.into(),
            version: version.clone(),
            api_version: format!("{}/{version}", crate::model::clusterpolicy::GROUP),
            kind: api.kind().into(),
            plural: api.plural().into(),
        };
        let objects: Vec<kube::api::DynamicObject> =
            list_all(Api::all_with(client.clone(), &resource)).await?;
        let json: Vec<serde_json::Value> = objects
            .iter()
            .map(|o| serde_json::to_value(o).unwrap_or(serde_json::Value::Null))
            .collect();
        let r = index.reset_cluster_policies(api, &json);
        // reset_cluster_policies names them "<Kind> <name>" already.
        for (object, errs) in r {
            let first = errs.first().map(ToString::to_string).unwrap_or_default();
            unreadable.push(format!("{object}: {first}"));
        }
    }
    Ok((index, unreadable))
}

/// Every object of `api`, listed in pages of 500.
async fn list_all<K>(api: Api<K>) -> Result<Vec<K>>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut out = Vec::new();
    let mut params = kube::api::ListParams::default().limit(500);
    loop {
        let page = api.list(&params).await?;
        out.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => params = params.continue_token(&c),
            None => return Ok(out),
        }
    }
}

/// Records the index's size, sync state, unreadable objects and staleness
/// in the metrics.
pub fn publish(index: &SharedIndex, metrics: &Metrics) {
    let idx = index.read().unwrap_or_else(|e| e.into_inner());
    let (ns, np) = idx.counts();
    metrics.index_synced.set(i64::from(idx.is_synced()));
    metrics.index_stale.set(i64::from(idx.stale().is_some()));
    metrics
        .index_unreadable
        .get_or_create(&labels(&[("kind", "NetworkPolicy")]))
        .set(i64::try_from(idx.unreadable_count()).unwrap_or(i64::MAX));
    metrics
        .index_objects
        .get_or_create(&labels(&[("kind", "Namespace")]))
        .set(i64::try_from(ns).unwrap_or(i64::MAX));
    metrics
        .index_objects
        .get_or_create(&labels(&[("kind", "NetworkPolicy")]))
        .set(i64::try_from(np).unwrap_or(i64::MAX));
    for api in crate::engine::cluster::Api::ALL {
        let n = idx
            .state()
            .cluster_policies()
            .filter(|p| p.api == api)
            .count();
        metrics
            .index_objects
            .get_or_create(&labels(&[("kind", api.kind())]))
            .set(i64::try_from(n).unwrap_or(i64::MAX));
        let bad = idx
            .unreadable_cluster_policies()
            .filter(|(a, _, _)| *a == api)
            .count();
        metrics
            .index_unreadable
            .get_or_create(&labels(&[("kind", api.kind())]))
            .set(i64::try_from(bad).unwrap_or(i64::MAX));
    }
}

/// A kind the index keeps, and how its watch events change the index.
trait Indexed:
    kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static
{
    /// Which kind it is.
    const WATCHED: Watched;
    /// `Namespace`, `NetworkPolicy`.
    const KIND: &'static str = Self::WATCHED.as_str();
    /// Replaces every object of the kind; returns those that cannot be read.
    fn reset(index: &mut Index, all: &[Self]) -> BTreeMap<String, Vec<FieldError>>;
    /// Adds or replaces one object.
    fn apply(index: &mut Index, obj: &Self) -> Result<(), Vec<FieldError>>;
    /// Removes one object.
    fn delete(index: &mut Index, obj: &Self);
}

impl Indexed for corev1::Namespace {
    const WATCHED: Watched = Watched::Namespace;
    fn reset(index: &mut Index, all: &[Self]) -> BTreeMap<String, Vec<FieldError>> {
        index.reset_namespaces(all);
        BTreeMap::new()
    }
    fn apply(index: &mut Index, obj: &Self) -> Result<(), Vec<FieldError>> {
        index.apply_namespace(obj);
        Ok(())
    }
    fn delete(index: &mut Index, obj: &Self) {
        if let Some(name) = &obj.metadata.name {
            index.delete_namespace(name);
        }
    }
}

impl Indexed for netv1::NetworkPolicy {
    const WATCHED: Watched = Watched::NetworkPolicy;
    fn reset(index: &mut Index, all: &[Self]) -> BTreeMap<String, Vec<FieldError>> {
        index.reset_policies(all)
    }
    fn apply(index: &mut Index, obj: &Self) -> Result<(), Vec<FieldError>> {
        index.apply_policy(obj)
    }
    fn delete(index: &mut Index, obj: &Self) {
        if let (Some(ns), Some(name)) = (&obj.metadata.namespace, &obj.metadata.name) {
            index.delete_policy(ns, name);
        }
    }
}

/// Keeps one kind of the index current: the initial list replaces what the
/// index holds, then each event applies; metrics are published after every
/// change. Every event marks the watch healthy, every error records a
/// failure (a streak of them past the bound makes the index stale).
async fn watch<K: Indexed>(client: Client, index: SharedIndex, metrics: Arc<Metrics>) {
    loop {
        let api: Api<K> = Api::all(client.clone());
        if follow(watcher(api), &index, &metrics).await == Ended::Stream {
            return;
        }
        // Gone at the start of a watch: kube's watcher would retry the same
        // resourceVersion forever, so a new watcher lists afresh.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// How [`follow`] ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// The stream ended (shutdown).
    Stream,
    /// A watch could not start: its resourceVersion is gone (HTTP 410); only
    /// a new list can go on.
    Gone,
}

/// What a watch error says about the events the index has seen.
#[derive(Debug, PartialEq, Eq)]
enum Missed {
    /// Nothing: a connection failed, the watch resumes where it was.
    Nothing,
    /// Events are gone (`410 Gone` in the watch): kube's watcher lists again.
    Relisting,
    /// Events are gone and the watch cannot start (HTTP 410): see
    /// [`Ended::Gone`].
    Restart,
}

/// What `e` says (see [`Missed`]).
fn missed(e: &watcher::Error) -> Missed {
    match e {
        watcher::Error::WatchError(status) if status.code == 410 => Missed::Relisting,
        watcher::Error::WatchStartFailed(kube::Error::Api(status)) if status.code == 410 => {
            Missed::Restart
        }
        _ => Missed::Nothing,
    }
}

/// Applies a watcher's events to the index until the stream ends, or until
/// only a new watcher can go on (see [`watch`]). A `410 Gone` unsyncs the
/// index at once, not when the relist begins after the watcher's backoff.
async fn follow<K: Indexed>(
    stream: impl futures::Stream<Item = Result<Event<K>, watcher::Error>> + Send,
    index: &SharedIndex,
    metrics: &Metrics,
) -> Ended {
    let mut stream = std::pin::pin!(stream);
    let mut initial = Vec::new();
    let write = || index.write().unwrap_or_else(|e| e.into_inner());
    while let Some(event) = stream.next().await {
        if event.is_ok() {
            write().watch_ok(K::WATCHED);
        }
        let rejected = match event {
            Ok(Event::Init) => {
                initial.clear();
                if write().listing(K::WATCHED) {
                    relisted(metrics, K::KIND);
                }
                publish(index, metrics);
                continue;
            }
            Ok(Event::InitApply(obj)) => {
                initial.push(obj);
                continue;
            }
            Ok(Event::InitDone) => {
                let rejected = K::reset(&mut write(), &initial);
                info!(kind = K::KIND, objects = initial.len(), "synced");
                initial.clear();
                rejected
            }
            Ok(Event::Apply(obj)) => match K::apply(&mut write(), &obj) {
                Ok(()) => BTreeMap::new(),
                Err(errs) => BTreeMap::from([(key(&obj), errs)]),
            },
            Ok(Event::Delete(obj)) => {
                K::delete(&mut write(), &obj);
                BTreeMap::new()
            }
            Err(e) => {
                let missed = missed(&e);
                {
                    let mut idx = write();
                    idx.watch_failed(K::WATCHED, Instant::now());
                    if missed != Missed::Nothing && idx.listing(K::WATCHED) {
                        relisted(metrics, K::KIND);
                    }
                }
                warn!(kind = K::KIND, error = %crate::report::clip(&e.to_string(), 512), "watch failed; retrying with backoff");
                publish(index, metrics);
                if missed == Missed::Restart {
                    return Ended::Gone;
                }
                continue;
            }
        };
        report_rejected(metrics, K::KIND, &rejected);
        publish(index, metrics);
    }
    Ended::Stream
}

/// Counts and logs a relist of `kind`: its watch missed events, so the
/// index is not synced until the list is applied.
fn relisted(metrics: &Metrics, kind: &str) {
    metrics
        .index_relists
        .get_or_create(&labels(&[("kind", kind)]))
        .inc();
    warn!(
        kind,
        "the watch missed events (410 Gone) and lists again; nothing is judged until the list is applied"
    );
}

/// Counts and logs the objects of `kind` the index could not read.
fn report_rejected(metrics: &Metrics, kind: &str, rejected: &BTreeMap<String, Vec<FieldError>>) {
    for (object, errs) in rejected {
        metrics
            .index_rejected
            .get_or_create(&labels(&[("kind", kind)]))
            .inc();
        let first = errs.first().map(ToString::to_string).unwrap_or_default();
        warn!(
            kind,
            object = %crate::report::clip(object, 256),
            errors = errs.len(),
            first = %crate::report::clip(&first, 512),
            "cannot read the object; changes it could affect are not judged until it is fixed or deleted"
        );
    }
}

/// `namespace/name` or `name`.
fn key<K: kube::Resource>(obj: &K) -> String {
    let meta = obj.meta();
    let name = meta.name.as_deref().unwrap_or_default();
    match meta.namespace.as_deref() {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

fn watcher<K>(api: Api<K>) -> impl futures::Stream<Item = Result<Event<K>, watcher::Error>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher::watcher(api, watcher::Config::default()).default_backoff()
}

#[cfg(test)]
mod tests;
