use super::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use std::collections::BTreeMap;

fn ns(name: &str, labels: &[(&str, &str)]) -> corev1::Namespace {
    corev1::Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn np(ns: &str, name: &str, cidr: &str) -> netv1::NetworkPolicy {
    netv1::NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        spec: Some(netv1::NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            ingress: Some(vec![netv1::NetworkPolicyIngressRule {
                from: Some(vec![netv1::NetworkPolicyPeer {
                    ip_block: Some(netv1::IPBlock {
                        cidr: cidr.into(),
                        except: None,
                    }),
                    ..Default::default()
                }]),
                ports: None,
            }]),
            ..Default::default()
        }),
    }
}

#[test]
fn apply_delete_and_reset() {
    let mut idx = Index::new();
    assert!(!idx.is_synced());
    idx.apply_namespace(&ns("a", &[("team", "x")]));
    idx.apply_namespace(&ns("a", &[("team", "y")]));
    assert_eq!(
        idx.state()
            .namespace("a")
            .and_then(|n| n.labels.get("team"))
            .map(String::as_str),
        Some("y")
    );
    assert_eq!(
        idx.state().namespaces_labelled("team", "x").count(),
        0,
        "relabel updates the label index"
    );
    idx.reset_namespaces(&[ns("b", &[])]);
    assert!(
        idx.state().namespace("a").is_none(),
        "reset drops what the list no longer has"
    );
    assert!(!idx.is_synced(), "policies have not synced yet");

    assert!(idx.apply_policy(&np("b", "p", "10.0.0.0/8")).is_ok());
    let rejected = idx.reset_policies(&[np("b", "q", "10.0.0.0/8"), np("b", "bad", "10.0.0.0/99")]);
    assert!(!idx.is_synced(), "discovery has not answered yet");
    idx.set_cluster_apis(&[]);
    assert!(idx.is_synced(), "no cluster policy kind is served");
    assert_eq!(rejected.keys().collect::<Vec<_>>(), ["b/bad"]);
    assert!(idx.state().policy("b", "p").is_none());
    assert!(idx.state().policy("b", "q").is_some());
    assert_eq!(idx.counts(), (1, 1));

    // A policy updated into something unreadable leaves the index rather than staying stale.
    assert!(idx.apply_policy(&np("b", "q", "nonsense")).is_err());
    assert!(idx.state().policy("b", "q").is_none());
    idx.apply_policy(&np("b", "q", "10.0.0.0/8"))
        .expect("valid");
    idx.delete_policy("b", "q");
    idx.delete_namespace("b");
    assert_eq!(idx.counts(), (0, 0));
}

#[test]
fn a_watch_failing_past_the_bound_makes_the_index_stale_until_it_recovers() {
    let bound = Duration::from_secs(60);
    let mut idx = Index::new().with_stale_after(bound);
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    assert_eq!(idx.stale_at(t0), None);
    // Failures every 30 s (kube's longest backoff): stale once 60 s have passed.
    for s in [0, 1, 3, 7, 15, 31, 59] {
        idx.watch_failed(Watched::NetworkPolicy, at(s));
    }
    assert_eq!(idx.stale_at(at(59)), None, "not yet past the bound");
    idx.watch_failed(Watched::NetworkPolicy, at(61));
    assert_eq!(
        idx.stale_at(at(61)),
        Some(Stale {
            kind: Watched::NetworkPolicy,
            failing_for: Duration::from_secs(61)
        })
    );
    // The other kind's success does not clear this one.
    idx.watch_ok(Watched::Namespace);
    assert!(idx.stale_at(at(62)).is_some());
    // An event of the kind clears it at once.
    idx.watch_ok(Watched::NetworkPolicy);
    assert_eq!(idx.stale_at(at(62)), None);
    // A resumed watch reports nothing: quiet for 45 s counts as recovered,
    // and a failure after that starts a new streak.
    idx.watch_failed(Watched::Namespace, at(100));
    idx.watch_failed(Watched::Namespace, at(170));
    assert!(
        idx.stale_at(at(171)).is_none(),
        "quiet from 100 to 170: a new streak"
    );
    idx.watch_failed(Watched::Namespace, at(200));
    idx.watch_failed(Watched::Namespace, at(230));
    assert!(idx.stale_at(at(231)).is_some(), "failing since 170");
    assert!(idx.stale_at(at(276)).is_none(), "quiet since 230");
}

#[test]
fn unreadable_policies_are_remembered_per_namespace_until_fixed_or_deleted() {
    let mut idx = Index::new();
    assert!(idx.apply_policy(&np("a", "bad", "not-a-cidr")).is_err());
    assert!(idx.apply_policy(&np("a", "worse", "10.0.0.0/33")).is_err());
    assert!(idx.apply_policy(&np("b", "good", "10.0.0.0/8")).is_ok());
    let names: Vec<&str> = idx.unreadable_in("a").map(|(n, _)| n).collect();
    assert_eq!(names, ["bad", "worse"]);
    assert!(
        idx.unreadable_in("a").all(|(_, why)| why.contains("cidr")),
        "{:?}",
        idx.unreadable_in("a").collect::<Vec<_>>()
    );
    assert_eq!(idx.unreadable_in("b").count(), 0);
    assert_eq!(idx.unreadable_count(), 2);
    // Fixed: readable again.
    assert!(idx.apply_policy(&np("a", "bad", "10.1.0.0/16")).is_ok());
    // Deleted.
    idx.delete_policy("a", "worse");
    assert_eq!(idx.unreadable_count(), 0);
    // A readable policy that turns unreadable leaves the judged state.
    assert!(idx.apply_policy(&np("b", "good", "nonsense")).is_err());
    assert_eq!(idx.counts().1, 1, "only a/bad is judged");
    // A full list starts over.
    let rejected = idx.reset_policies(&[np("c", "x", "bad")]);
    assert_eq!(rejected.len(), 1);
    assert_eq!(idx.unreadable_count(), 1);
    assert_eq!(idx.unreadable_in("c").count(), 1);
}

fn cnp(name: &str, priority: i64) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "policy.networking.k8s.io/v1beta1", "kind": "ClusterNetworkPolicy",
        "metadata": {"name": name},
        "spec": {"tier": "Admin", "priority": priority,
            "subject": {"namespaces": {}},
            "ingress": [{"action": "Deny", "from": [{"namespaces": {}}]}]}
    })
}

#[test]
fn cluster_policy_kinds_sync_when_served_and_leave_when_gone() {
    let mut idx = Index::new();
    idx.reset_namespaces(&[]);
    idx.reset_policies(&[]);
    idx.set_cluster_apis(&[Api::ClusterNetworkPolicy]);
    assert!(!idx.is_synced(), "a served kind must sync first");
    let rejected = idx.reset_cluster_policies(
        Api::ClusterNetworkPolicy,
        &[cnp("good", 10), cnp("bad", -1)],
    );
    assert!(idx.is_synced());
    assert_eq!(
        rejected.keys().collect::<Vec<_>>(),
        ["ClusterNetworkPolicy bad"]
    );
    assert_eq!(idx.state().cluster_policies().count(), 1);
    let bad: Vec<_> = idx.unreadable_cluster_policies().collect();
    assert_eq!(bad.len(), 1);
    assert_eq!((bad[0].0, bad[0].1), (Api::ClusterNetworkPolicy, "bad"));
    assert!(bad[0].2.contains("spec.priority"), "{}", bad[0].2);
    // Fixed by an update: readable again.
    assert!(
        idx.apply_cluster_policy(Api::ClusterNetworkPolicy, &cnp("bad", 5))
            .is_ok()
    );
    assert_eq!(idx.unreadable_cluster_policies().count(), 0);
    assert_eq!(idx.state().cluster_policies().count(), 2);
    // Updated into something unreadable: it leaves the judged state.
    assert!(
        idx.apply_cluster_policy(Api::ClusterNetworkPolicy, &cnp("good", 1001))
            .is_err()
    );
    assert!(
        idx.state()
            .cluster_policy(Api::ClusterNetworkPolicy, "good")
            .is_none()
    );
    idx.delete_cluster_policy(Api::ClusterNetworkPolicy, "good");
    assert_eq!(idx.unreadable_cluster_policies().count(), 0);
    // A second kind appears: unsynced until its list is in.
    idx.set_cluster_apis(&[Api::ClusterNetworkPolicy, Api::AdminNetworkPolicy]);
    assert!(!idx.is_synced());
    idx.reset_cluster_policies(Api::AdminNetworkPolicy, &[]);
    assert!(idx.is_synced());
    assert_eq!(
        idx.cluster_apis().collect::<Vec<_>>(),
        [Api::ClusterNetworkPolicy, Api::AdminNetworkPolicy]
    );
    // Missing from one discovery (an API server restarting, say): kept,
    // but not synced; found again, it lists again.
    idx.set_cluster_apis(&[Api::AdminNetworkPolicy]);
    assert_eq!(idx.state().cluster_policies().count(), 1);
    assert!(!idx.is_synced());
    assert!(!idx.cluster_api_synced(Api::ClusterNetworkPolicy));
    idx.set_cluster_apis(&[Api::ClusterNetworkPolicy, Api::AdminNetworkPolicy]);
    assert!(!idx.is_synced(), "its watch restarted: it lists again");
    idx.reset_cluster_policies(Api::ClusterNetworkPolicy, &[cnp("bad", 5)]);
    assert!(idx.is_synced());
    assert!(idx.cluster_api_synced(Api::ClusterNetworkPolicy));
    // Missing from two discoveries in a row: the CRD is gone, and its
    // objects leave the judged state.
    idx.set_cluster_apis(&[Api::AdminNetworkPolicy]);
    idx.set_cluster_apis(&[Api::AdminNetworkPolicy]);
    assert_eq!(idx.state().cluster_policies().count(), 0);
    assert!(idx.is_synced());
    assert!(!idx.cluster_api_synced(Api::ClusterNetworkPolicy));
}

#[test]
fn every_change_of_the_state_is_counted_and_reads_are_not() {
    let mut idx = Index::new();
    assert_eq!(idx.changes(), 0);
    idx.apply_namespace(&ns("a", &[]));
    let after_ns = idx.changes();
    assert!(after_ns > 0);
    let _ = idx.state().namespace("a");
    let _ = idx.is_synced();
    assert_eq!(idx.changes(), after_ns, "reads change nothing");
    let _ = idx.apply_policy(&np("a", "p", "10.0.0.0/8"));
    let after_np = idx.changes();
    assert!(after_np > after_ns);
    idx.delete_policy("a", "p");
    assert!(idx.changes() > after_np);
    // Discovery that finds nothing new leaves the state alone.
    idx.set_cluster_apis(&[]);
    let before = idx.changes();
    idx.set_cluster_apis(&[]);
    assert_eq!(idx.changes(), before);
}
