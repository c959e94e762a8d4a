//! The hard shapes for the isolation check: one tier namespace holding
//! 1,000 NetworkPolicies of varied shapes, and a tier joined by label by 300
//! namespaces (each with the baseline tierguard injects).
//!
//! The world: the tutorial as tierguard leaves it (`examples/three-tier`);
//! `backend` also holds 1,000 policies (ingress from frontend on TCP/80 by
//! `name` or `kubernetes.io/metadata.name`, with `matchLabels`, `In` and
//! `Exists` pod selectors; egress to database on TCP/5432; ingress-only
//! deny-alls; egress to the cluster DNS; all within the flows, so the state
//! is clean), and `backend-0000` … `backend-0299` are in tier backend by the
//! tier label. Built deterministically.
//!
//! The `scale, one cluster policy` group judges the same world with one
//! ClusterNetworkPolicy that opens nothing, so every wall is judged tier by
//! tier.
//!
//! Run with `cargo bench --bench scale`; results in docs/benchmarks.md.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::{Value, json};
use tierguard::engine::isolation::{Change, Checker, check_change, check_namespace_change};
use tierguard::engine::policy::Policy;
use tierguard::engine::state::{Namespace, State};
use tierguard::engine::tiers::IsolationPolicy;
use tierguard::model::baseline::baseline_policies;
use tierguard::model::isolationpolicy;

const THREE_TIER: &str = include_str!("../policies/three-tier.yaml");
const TUTORIAL: [&str; 3] = [
    include_str!("../examples/three-tier/namespaces.yaml"),
    include_str!("../examples/three-tier/baseline.yaml"),
    include_str!("../examples/three-tier/flows.yaml"),
];
/// Policies added to `backend`.
const BACKEND_POLICIES: usize = 1_000;
/// Namespaces in tier backend by label.
const MEMBERS: usize = 300;
const TIER_LABEL: &str = "tierguard.io/tier";

fn policy(v: Value) -> Arc<Policy> {
    let np: NetworkPolicy = serde_json::from_value(v).expect("a NetworkPolicy");
    let ns = np.metadata.namespace.clone().expect("namespaced");
    Arc::new(tierguard::model::networkpolicy::convert(&np, &ns).expect("valid"))
}

fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The `k`th policy of `backend`: one of five shapes, all within the flows.
fn backend_policy(k: usize) -> Value {
    let app = format!("svc-{k}");
    let spec = match k % 5 {
        0 => json!({
            "podSelector": {"matchLabels": {"app": app}},
            "ingress": [{
                "from": [{"namespaceSelector": {"matchLabels": {"name": "frontend"}},
                          "podSelector": {"matchLabels": {"app": format!("web-{k}")}}}],
                "ports": [{"protocol": "TCP", "port": 80}],
            }],
        }),
        1 => json!({
            "podSelector": {"matchExpressions": [
                {"key": "app", "operator": "In", "values": [app, format!("svc-{}", k + 1)]}]},
            "policyTypes": ["Egress"],
            "egress": [{
                "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "database"}}}],
                "ports": [{"protocol": "TCP", "port": 5432}],
            }],
        }),
        2 => json!({
            "podSelector": {"matchLabels": {"role": format!("batch-{k}")}},
            "policyTypes": ["Ingress"],
        }),
        3 => json!({
            "podSelector": {"matchExpressions": [{"key": format!("shard-{k}"), "operator": "Exists"}]},
            "policyTypes": ["Egress"],
            "egress": [{
                "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            }],
        }),
        _ => json!({
            "podSelector": {"matchLabels": {"app": app, "track": "canary"}},
            "ingress": [{
                "from": [{"namespaceSelector": {"matchExpressions": [
                    {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["frontend"]}]}}],
                "ports": [{"protocol": "TCP", "port": 80}],
            }],
        }),
    };
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": format!("svc-{k}"), "namespace": "backend"},
        "spec": spec,
    })
}

fn world() -> (IsolationPolicy, State) {
    let iso = isolationpolicy::parse(THREE_TIER, "policies/three-tier.yaml").expect("policy");
    let text = TUTORIAL.join("\n---\n");
    let mut state = tierguard::world::World::from_text(&text, "examples/three-tier")
        .expect("the tutorial loads")
        .state;
    for k in 0..BACKEND_POLICIES {
        state.apply_policy(policy(backend_policy(k)));
    }
    for i in 0..MEMBERS {
        let name = format!("backend-{i:04}");
        state.apply_namespace(Namespace::new(
            &name,
            labels(&[("name", &name), (TIER_LABEL, "backend")]),
        ));
        for np in baseline_policies(&iso, &name) {
            let p = tierguard::model::networkpolicy::convert(&np, &name).expect("baseline");
            state.apply_policy(Arc::new(p));
        }
    }
    (iso, state)
}

fn benches(c: &mut Criterion) {
    let (iso, state) = world();
    // The tutorial's four (the baseline's two and two flow policies) and ours.
    assert_eq!(state.policies_in("backend").count(), BACKEND_POLICIES + 4);
    assert!(
        Checker::new(&iso, &state)
            .report()
            .expect("within the budget")
            .is_clean(),
        "the world is clean"
    );

    let admitted = Change::ApplyPolicy(policy(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "allow-frontend-new", "namespace": "backend"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "new"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"name": "frontend"}}}],
                         "ports": [{"protocol": "TCP", "port": 80}]}],
        },
    })));
    let rejected = Change::ApplyPolicy(policy(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "allow-database-in", "namespace": "backend"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "new"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"name": "database"}}}]}],
        },
    })));
    let replaced = Change::ApplyPolicy(policy(backend_policy(500)));
    let ns_create = Namespace::new("team-new", labels(&[("name", "team-new"), ("team", "t1")]));
    let ns_join = Namespace::new(
        "backend-new",
        labels(&[("name", "backend-new"), (TIER_LABEL, "backend")]),
    );
    let baseline = |ns: &str| -> Vec<Arc<Policy>> {
        baseline_policies(&iso, ns)
            .iter()
            .map(|np| Arc::new(tierguard::model::networkpolicy::convert(np, ns).expect("baseline")))
            .collect()
    };
    let join_baseline = baseline("backend-new");
    let create_baseline = baseline("team-new");
    let judge = |c: &Change| check_change(&iso, &state, c).expect("within the budget");
    assert!(judge(&admitted).is_empty());
    assert!(!judge(&rejected).is_empty());
    assert!(judge(&replaced).is_empty());
    assert!(
        check_namespace_change(&iso, &state, &ns_create, &create_baseline)
            .expect("within the budget")
            .is_empty()
    );
    assert!(
        check_namespace_change(&iso, &state, &ns_join, &join_baseline)
            .expect("within the budget")
            .is_empty()
    );

    const ADMITTED: &str = "create backend/allow-frontend-new, 1,004 policies there (admitted)";
    const REJECTED: &str = "create backend/allow-database-in, 1,004 policies there (rejected)";
    const JOIN: &str =
        "create namespace backend-new in tier backend, 303 tier namespaces (admitted)";
    time(
        c,
        ("scale", 30),
        (&iso, &state),
        &[
            (ADMITTED, &admitted),
            (REJECTED, &rejected),
            (
                "update backend/svc-500, 1,004 policies there (admitted)",
                &replaced,
            ),
        ],
        &[
            (
                "create namespace team-new, 303 tier namespaces (admitted)",
                &ns_create,
                &create_baseline,
            ),
            (JOIN, &ns_join, &join_baseline),
        ],
    );

    // The same world with one ClusterNetworkPolicy that opens nothing (an
    // Admin-tier Pass from `monitoring` to every namespace): every tier wall
    // is then judged tier by tier (the 300 label-made members of tier
    // backend still share a representative: no cluster rule names them).
    let mut tiered = state.clone();
    tiered.apply_cluster_policy(Arc::new(
        tierguard::model::clusterpolicy::convert(
            tierguard::engine::cluster::Api::ClusterNetworkPolicy,
            &json!({
                "apiVersion": "policy.networking.k8s.io/v1beta1", "kind": "ClusterNetworkPolicy",
                "metadata": {"name": "monitoring-pass"},
                "spec": {"tier": "Admin", "priority": 10, "subject": {"namespaces": {}},
                    "ingress": [{"name": "monitoring", "action": "Pass",
                        "from": [{"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]}]},
            }),
        )
        .expect("a valid ClusterNetworkPolicy"),
    ));
    let judge = |c: &Change| check_change(&iso, &tiered, c).expect("within the budget");
    assert!(judge(&admitted).is_empty());
    assert!(!judge(&rejected).is_empty());
    assert!(
        check_namespace_change(&iso, &tiered, &ns_join, &join_baseline)
            .expect("within the budget")
            .is_empty()
    );
    time(
        c,
        ("scale, one cluster policy", 10),
        (&iso, &tiered),
        &[(ADMITTED, &admitted), (REJECTED, &rejected)],
        &[(JOIN, &ns_join, &join_baseline)],
    );
}

/// Times each policy change and each Namespace change (with the baseline
/// its namespace gets) in one criterion group of `samples` samples.
fn time(
    c: &mut Criterion,
    (group, samples): (&str, usize),
    (iso, state): (&IsolationPolicy, &State),
    changes: &[(&str, &Change)],
    namespaces: &[(&str, &Namespace, &[Arc<Policy>])],
) {
    let mut g = c.benchmark_group(group);
    g.sample_size(samples);
    for (name, change) in changes {
        g.bench_function(*name, |b| {
            b.iter(|| check_change(black_box(iso), black_box(state), black_box(change)))
        });
    }
    for (name, ns, baseline) in namespaces {
        g.bench_function(*name, |b| {
            b.iter(|| {
                check_namespace_change(black_box(iso), black_box(state), black_box(ns), baseline)
            })
        });
    }
    g.finish();
}

criterion_group!(scale, benches);
criterion_main!(scale);
