//! The watch loop on scripted watcher events: a relist (kube's watcher
//! starts over after `410 Gone`) leaves the index unsynced until its list
//! is applied, and the list replaces what the gap left stale.

use std::sync::{Arc, RwLock};

use k8s_openapi::api::networking::v1 as netv1;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::runtime::watcher::Event;

use super::follow;
use crate::engine::state::State;
use crate::index::{Index, SharedIndex};
use crate::telemetry::Metrics;

/// A default-deny NetworkPolicy `name` in `ns`.
fn np(ns: &str, name: &str) -> netv1::NetworkPolicy {
    netv1::NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            resource_version: Some("1".into()),
            ..ObjectMeta::default()
        },
        spec: Some(netv1::NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Ingress".into()]),
            ..netv1::NetworkPolicySpec::default()
        }),
    }
}

/// Plays `events` through the watch loop, to the end of the stream.
async fn play(index: &SharedIndex, metrics: &Metrics, events: Vec<Event<netv1::NetworkPolicy>>) {
    follow(
        futures::stream::iter(events.into_iter().map(Ok)),
        index,
        metrics,
    )
    .await;
}

/// The policy names the index holds in `ns`.
fn names(index: &SharedIndex, ns: &str) -> Vec<String> {
    let idx = index.read().expect("index");
    idx.state()
        .policies_in(ns)
        .map(|p| p.name.clone())
        .collect()
}

fn relists(metrics: &Metrics) -> Option<String> {
    let text = metrics.render().expect("metrics render");
    text.lines()
        .find(|l| l.starts_with("tierguard_index_relists_total{kind=\"NetworkPolicy\"}"))
        .map(|l| l.rsplit(' ').next().unwrap_or_default().to_string())
}

/// An index with everything synced but NetworkPolicies, which have not
/// been listed yet (only their watch decides), and fresh metrics.
fn unlisted_policies() -> (SharedIndex, Metrics) {
    let mut fresh = Index::preloaded(State::default());
    fresh.listing(crate::index::Watched::NetworkPolicy);
    (Arc::new(RwLock::new(fresh)), Metrics::new())
}

#[tokio::test]
async fn a_relist_leaves_the_index_unsynced_until_its_list_replaces_the_old_state() {
    let (index, metrics) = unlisted_policies();
    let synced = |index: &SharedIndex| index.read().expect("index").is_synced();

    play(
        &index,
        &metrics,
        vec![
            Event::Init,
            Event::InitApply(np("db", "a")),
            Event::InitApply(np("db", "b")),
            Event::InitDone,
            Event::Apply(np("db", "c")),
        ],
    )
    .await;
    assert!(synced(&index), "the first list synced the index");
    assert_eq!(names(&index, "db"), ["a", "b", "c"]);
    assert_eq!(
        relists(&metrics).as_deref(),
        Some("0"),
        "a first list is no relist"
    );

    // The watch missed events and lists again; the list is half read.
    play(
        &index,
        &metrics,
        vec![Event::Init, Event::InitApply(np("db", "a"))],
    )
    .await;
    assert!(
        !synced(&index),
        "while the relist is read, nothing may be judged from the old state"
    );
    assert_eq!(
        names(&index, "db"),
        ["a", "b", "c"],
        "the old state stays until the list replaces it"
    );
    assert_eq!(relists(&metrics).as_deref(), Some("1"));

    // The relist, read to its end: b and c were deleted in the gap.
    play(
        &index,
        &metrics,
        vec![
            Event::Init,
            Event::InitApply(np("db", "a")),
            Event::InitDone,
        ],
    )
    .await;
    assert!(synced(&index), "the applied list syncs the index again");
    assert_eq!(names(&index, "db"), ["a"], "what the gap deleted is gone");
    assert_eq!(
        relists(&metrics).as_deref(),
        Some("1"),
        "a list started while unsynced is the same resync, not another"
    );
}

#[test]
fn listing_a_kind_for_the_first_time_is_no_relist() {
    let mut index = Index::new();
    assert!(!index.listing(crate::index::Watched::NetworkPolicy));
    assert!(!index.listing(crate::index::Watched::Namespace));
    let mut synced = Index::preloaded(State::default());
    assert!(synced.listing(crate::index::Watched::Namespace));
    assert!(!synced.is_synced());
    for api in crate::engine::cluster::Api::ALL {
        assert!(synced.listing_cluster_api(api), "{api:?} was synced");
        assert!(
            !synced.listing_cluster_api(api),
            "{api:?} is listing already"
        );
    }
}

/// A watch error carrying `410 Gone`, as the API server sends it in the
/// watch stream.
fn gone_in_watch() -> kube::runtime::watcher::Error {
    kube::runtime::watcher::Error::WatchError(
        kube::core::Status::failure("too old resource version: 210 (2230)", "Expired")
            .with_code(410)
            .boxed(),
    )
}

#[tokio::test]
async fn a_410_in_the_watch_unsyncs_the_index_before_the_relist_starts() {
    let (index, metrics) = unlisted_policies();
    let events = vec![
        Ok(Event::Init),
        Ok(Event::InitApply(np("db", "a"))),
        Ok(Event::InitDone),
        Err(gone_in_watch()),
    ];
    let ended = follow(futures::stream::iter(events), &index, &metrics).await;
    assert_eq!(
        ended,
        super::Ended::Stream,
        "kube's watcher relists by itself"
    );
    assert!(
        !index.read().expect("index").is_synced(),
        "unsynced from the 410 on, not only from the relist after the watcher's backoff"
    );
    assert_eq!(relists(&metrics).as_deref(), Some("1"));
}

#[tokio::test]
async fn a_watch_that_cannot_start_for_410_ends_for_a_new_watcher_to_list() {
    let (index, metrics) = unlisted_policies();
    let refused = kube::runtime::watcher::Error::WatchStartFailed(kube::Error::Api(
        kube::core::Status::failure("too old resource version", "Expired")
            .with_code(410)
            .boxed(),
    ));
    let events = vec![
        Ok(Event::Init),
        Ok(Event::InitDone),
        Err(refused),
        // Never reached: the loop has ended for a new watcher.
        Ok(Event::Apply(np("db", "late"))),
    ];
    let ended = follow(futures::stream::iter(events), &index, &metrics).await;
    assert_eq!(ended, super::Ended::Gone);
    assert!(!index.read().expect("index").is_synced());
    assert!(
        names(&index, "db").is_empty(),
        "nothing after the end was applied"
    );
}

#[tokio::test]
async fn a_failed_connection_leaves_the_index_synced() {
    let (index, metrics) = unlisted_policies();
    let events: Vec<Result<Event<netv1::NetworkPolicy>, _>> = vec![
        Ok(Event::Init),
        Ok(Event::InitDone),
        Err(kube::runtime::watcher::Error::WatchError(
            kube::core::Status::failure("internal error", "InternalError")
                .with_code(500)
                .boxed(),
        )),
    ];
    let ended = follow(futures::stream::iter(events), &index, &metrics).await;
    assert_eq!(ended, super::Ended::Stream);
    assert!(
        index.read().expect("index").is_synced(),
        "a watch that resumes where it was misses nothing"
    );
    assert_eq!(relists(&metrics).as_deref(), Some("0"));
}
