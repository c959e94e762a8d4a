//! The admission-time cost of the isolation check in a large cluster.
//!
//! The world: 2,000 namespaces, 5,000 NetworkPolicies and 20,000 pods, built
//! deterministically (arithmetic on indices, no randomness):
//! - the tier namespaces `frontend`, `backend` and `database` with the
//!   baseline tierguard injects and the tutorial's flow policies (as in
//!   `examples/three-tier`);
//! - 1,997 other namespaces (`kube-system` and `team-NNNN`), each with two or
//!   three policies of common shapes: default-deny, allow from the same
//!   namespace, from an ingress controller or monitoring namespace (by
//!   `kubernetes.io/metadata.name` or `name`), from an `ipBlock` with
//!   `except`, egress to a tier, on numbered ports, named ports and
//!   `endPort` ranges;
//! - 10 pods per namespace. The isolation check does not read pods (it
//!   quantifies over every pod that could exist); only `evaluate` (`query`)
//!   does.
//!
//! The `cluster tiers` group adds 200 ClusterNetworkPolicies at mixed
//! priorities (see `cluster_policy`); the `cluster baseline` group the
//! Admin-tier baseline of `via: clusterNetworkPolicy` instead.
//!
//! Run with `cargo bench --bench isolation`; results in docs/benchmarks.md.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::{Value, json};
use tierguard::engine::cluster::{Api, ClusterPolicy};
use tierguard::engine::isolation::{Change, Checker, check_change};
use tierguard::engine::policy::Policy;
use tierguard::engine::ports::{ContainerPort, Protocol};
use tierguard::engine::reach::{Endpoint, Unplaced, evaluate};
use tierguard::engine::state::{Namespace, Pod, State};
use tierguard::engine::tiers::IsolationPolicy;
use tierguard::model::baseline::baseline_policies;
use tierguard::model::clusterpolicy::convert;
use tierguard::model::isolationpolicy;
use tierguard::report::matrix::{Matrix, ports_that_matter};

mod world;
use world::{NAMESPACES, POLICIES, TIERS, namespace_manifest, other_namespace, team_policy};

const THREE_TIER: &str = include_str!("../policies/three-tier.yaml");
const CLUSTER_BASELINE: &str = include_str!("../examples/three-tier-cluster-baseline/policy.yaml");
const PODS_PER_NAMESPACE: usize = 10;

struct Cluster {
    iso: IsolationPolicy,
    state: State,
    pods: Vec<Pod>,
}

fn policy(v: Value) -> Arc<Policy> {
    let np: NetworkPolicy = serde_json::from_value(v).expect("a NetworkPolicy");
    let p =
        tierguard::model::networkpolicy::convert(&np, "default").expect("a valid NetworkPolicy");
    Arc::new(p)
}

fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The tutorial's flow policies (examples/three-tier/flows.yaml).
fn tutorial_flows() -> Vec<Value> {
    let pair = |ns: &str, name: &str, app: &str, dir: &str, peer_ns: &str, peer_app: &str, port| {
        let (types, rules, peers) = if dir == "ingress" {
            ("Ingress", "ingress", "from")
        } else {
            ("Egress", "egress", "to")
        };
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "podSelector": {"matchLabels": {"app": app}},
                "policyTypes": [types],
                rules: [{
                    peers: [{
                        "namespaceSelector": {"matchLabels": {"name": peer_ns}},
                        "podSelector": {"matchLabels": {"app": peer_app}},
                    }],
                    "ports": [{"protocol": "TCP", "port": port}],
                }],
            },
        })
    };
    vec![
        pair(
            "backend",
            "allow-frontend-to-backend",
            "backend",
            "ingress",
            "frontend",
            "frontend",
            80,
        ),
        pair(
            "frontend",
            "allow-frontend-egress-to-backend",
            "frontend",
            "egress",
            "backend",
            "backend",
            80,
        ),
        pair(
            "database",
            "allow-backend-to-database",
            "database",
            "ingress",
            "backend",
            "backend",
            5432,
        ),
        pair(
            "backend",
            "allow-backend-egress-to-database",
            "backend",
            "egress",
            "database",
            "database",
            5432,
        ),
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "allow-external-to-frontend", "namespace": "frontend"},
            "spec": {
                "podSelector": {"matchLabels": {"app": "frontend"}},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [], "ports": [{"protocol": "TCP", "port": 80}]}],
            },
        }),
    ]
}

fn pods_of(ns: &str, i: usize, app: &str) -> impl Iterator<Item = Pod> {
    (0..PODS_PER_NAMESPACE).map(move |j| {
        let n = i * PODS_PER_NAMESPACE + j;
        let (port, name) = match j % 3 {
            0 => (80, "http"),
            1 => (8080, "http"),
            _ => (5432, "postgres"),
        };
        Pod {
            namespace: ns.to_string(),
            name: format!("{app}-{j}"),
            labels: labels(&[("app", app), ("pod-template-hash", &format!("{:x}", n))]),
            ports: vec![
                ContainerPort {
                    name: Some(name.to_string()),
                    port,
                    protocol: Protocol::Tcp,
                },
                ContainerPort {
                    name: Some("metrics".to_string()),
                    port: 9090,
                    protocol: Protocol::Tcp,
                },
            ],
            ips: vec![IpAddr::V4(Ipv4Addr::new(
                192,
                168,
                (n / 250) as u8,
                (n % 250 + 1) as u8,
            ))],
            workload: None,
        }
    })
}

fn cluster() -> Cluster {
    let iso = isolationpolicy::parse(THREE_TIER, "policies/three-tier.yaml").expect("policy");
    let mut state = State::new();
    let mut pods = Vec::new();
    let mut count = 0;

    for (i, t) in TIERS.iter().enumerate() {
        state.apply_namespace(Namespace::new(t, labels(&[("name", t)])));
        for np in baseline_policies(&iso, t) {
            let p = tierguard::model::networkpolicy::convert(&np, t).expect("a valid baseline");
            state.apply_policy(Arc::new(p));
            count += 1;
        }
        pods.extend(pods_of(t, i, t));
    }
    for v in tutorial_flows() {
        state.apply_policy(policy(v));
        count += 1;
    }

    let others = NAMESPACES - TIERS.len();
    // Every namespace gets two policies; the first `extra` get a third.
    let extra = POLICIES - count - 2 * others;
    for i in 0..others {
        let ns = other_namespace(i);
        let manifest: k8s_openapi::api::core::v1::Namespace =
            serde_json::from_value(namespace_manifest(i)).expect("a Namespace");
        state.apply_namespace(tierguard::model::namespace::convert(&manifest).expect("named"));
        let n_policies = if i < extra { 3 } else { 2 };
        for k in 0..n_policies {
            state.apply_policy(policy(team_policy(&ns, i, k)));
        }
        pods.extend(pods_of(&ns, TIERS.len() + i, &format!("app-{}", i % 7)));
    }

    assert_eq!(state.counts(), (NAMESPACES, POLICIES));
    assert_eq!(pods.len(), NAMESPACES * PODS_PER_NAMESPACE);
    Cluster { iso, state, pods }
}

/// A new policy in `database`: ingress from backend on 5432 (admitted).
fn backend_to_database() -> Arc<Policy> {
    policy(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "allow-backend-workers", "namespace": "database"},
        "spec": world::backend_workers_to_database(),
    }))
}

/// A new policy in `database`: ingress from frontend on 5432 (rejected).
fn frontend_to_database() -> Arc<Policy> {
    policy(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "allow-frontend-to-database", "namespace": "database"},
        "spec": world::frontend_to_database(),
    }))
}

/// A new policy in a non-tier namespace (no tier wall to judge).
fn team_create() -> Arc<Policy> {
    policy(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "allow-from-frontend", "namespace": "team-1234"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "app-2"}},
            "ingress": [{
                "from": [{"namespaceSelector": {"matchLabels": {"name": "frontend"}}}],
                "ports": [{"protocol": "TCP", "port": 8080}],
            }],
        },
    }))
}

/// Cluster policies added for the `cluster tiers` group.
const CLUSTER_POLICIES: usize = 200;

/// Cluster policy number `k`, priority `k` (mixed shapes; within the flows,
/// so the world stays clean):
/// - one in ten: Admin tier, every namespace, egress Accept to the cluster
///   DNS pods on UDP/TCP 53 (an allowed flow);
/// - one in ten: Admin tier, every namespace, ingress Pass from the
///   monitoring namespace;
/// - one in ten: Baseline tier, every namespace, ingress Deny from every
///   namespace;
/// - the rest: Admin tier, one team namespace, ingress Accept from another
///   team namespace on TCP/8080.
fn cluster_policy(k: usize) -> Value {
    let all = json!({"namespaces": {}});
    let by_name = |ns: String| json!({"matchLabels": {"kubernetes.io/metadata.name": ns}});
    let spec = match k % 10 {
        0 => json!({"tier": "Admin", "priority": k, "subject": all,
            "egress": [{"name": "dns", "action": "Accept",
                "to": [{"pods": {"namespaceSelector": by_name("kube-system".into()),
                                 "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}}],
                "protocols": [{"udp": {"destinationPort": {"number": 53}}},
                              {"tcp": {"destinationPort": {"number": 53}}}]}]}),
        1 => json!({"tier": "Admin", "priority": k, "subject": all,
            "ingress": [{"name": "monitoring", "action": "Pass",
                "from": [{"namespaces": by_name("monitoring".into())}]}]}),
        2 => json!({"tier": "Baseline", "priority": k, "subject": all,
            "ingress": [{"name": "deny", "action": "Deny", "from": [{"namespaces": {}}]}]}),
        _ => json!({"tier": "Admin", "priority": k,
            "subject": {"namespaces": by_name(other_namespace(10 + k))},
            "ingress": [{"name": "peer", "action": "Accept",
                "from": [{"namespaces": by_name(other_namespace(500 + k))}],
                "protocols": [{"tcp": {"destinationPort": {"number": 8080}}}]}]}),
    };
    json!({"apiVersion": "policy.networking.k8s.io/v1beta1", "kind": "ClusterNetworkPolicy",
        "metadata": {"name": format!("cnp-{k:03}")}, "spec": spec})
}

fn cluster_policy_of(v: &Value) -> Arc<ClusterPolicy> {
    Arc::new(convert(Api::ClusterNetworkPolicy, v).expect("a valid ClusterNetworkPolicy"))
}

fn benches(c: &mut Criterion) {
    let Cluster { iso, state, pods } = cluster();

    let admitted = Change::ApplyPolicy(backend_to_database());
    let rejected = Change::ApplyPolicy(frontend_to_database());
    let elsewhere = Change::ApplyPolicy(team_create());
    assert!(
        check_change(&iso, &state, &admitted)
            .expect("within the budget")
            .is_empty()
    );
    assert!(
        !check_change(&iso, &state, &rejected)
            .expect("within the budget")
            .is_empty()
    );
    assert!(
        check_change(&iso, &state, &elsewhere)
            .expect("within the budget")
            .is_empty()
    );
    assert!(
        Checker::new(&iso, &state)
            .report()
            .expect("within the budget")
            .is_clean()
    );

    // Other admissions, for comparison: a policy DELETE in a tier namespace
    // and Namespace CREATE/UPDATE (which apply the change to a clone of the
    // state and judge every tier namespace).
    let delete = Change::DeletePolicy {
        namespace: "database".into(),
        name: "tierguard-default-deny".into(),
    };
    let ns_create = Change::ApplyNamespace(Namespace::new(
        "team-new",
        labels(&[("name", "team-new"), ("team", "t1")]),
    ));
    let ns_join = Change::ApplyNamespace(Namespace::new(
        "team-0005",
        labels(&[
            ("name", "team-0005"),
            ("team", "t5"),
            ("tierguard.io/tier", "backend"),
        ]),
    ));
    assert!(
        !check_change(&iso, &state, &delete)
            .expect("within the budget")
            .is_empty()
    );
    assert!(
        check_change(&iso, &state, &ns_create)
            .expect("within the budget")
            .is_empty()
    );
    assert!(
        !check_change(&iso, &state, &ns_join)
            .expect("within the budget")
            .is_empty()
    );
    let effective = isolationpolicy::parse(
        &THREE_TIER.replace("judge: walls", "judge: effective"),
        "three-tier (effective)",
    )
    .expect("policy");
    // Effective: frontend's own egress blocks the flow, so it is admitted.
    assert!(
        check_change(&effective, &state, &rejected)
            .expect("within the budget")
            .is_empty()
    );

    let mut g = c.benchmark_group("isolation");
    g.bench_function("create database/allow-backend (admitted)", |b| {
        b.iter(|| {
            check_change(black_box(&iso), black_box(&state), black_box(&admitted))
                .expect("within the budget")
        })
    });
    g.bench_function("create database/allow-frontend (rejected)", |b| {
        b.iter(|| {
            check_change(black_box(&iso), black_box(&state), black_box(&rejected))
                .expect("within the budget")
        })
    });
    g.bench_function("create team-1234/allow-from-frontend (non-tier)", |b| {
        b.iter(|| {
            check_change(black_box(&iso), black_box(&state), black_box(&elsewhere))
                .expect("within the budget")
        })
    });
    g.bench_function(
        "create database/allow-frontend (effective: admitted)",
        |b| {
            b.iter(|| {
                check_change(
                    black_box(&effective),
                    black_box(&state),
                    black_box(&rejected),
                )
                .expect("within the budget")
            })
        },
    );
    g.bench_function("delete database/tierguard-default-deny (rejected)", |b| {
        b.iter(|| {
            check_change(black_box(&iso), black_box(&state), black_box(&delete))
                .expect("within the budget")
        })
    });
    g.bench_function("create namespace team-new (non-tier)", |b| {
        b.iter(|| {
            check_change(black_box(&iso), black_box(&state), black_box(&ns_create))
                .expect("within the budget")
        })
    });
    g.bench_function("label team-0005 into tier backend (rejected)", |b| {
        b.iter(|| {
            check_change(black_box(&iso), black_box(&state), black_box(&ns_join))
                .expect("within the budget")
        })
    });
    g.bench_function("full report (3 tier namespaces)", |b| {
        b.iter(|| {
            Checker::new(black_box(&iso), black_box(&state))
                .report()
                .expect("within the budget")
        })
    });
    // What a snapshot of the index and every "after" state cost: the maps
    // are persistent, so this must not grow with the cluster.
    g.bench_function("State::clone (2,000 namespaces, 5,000 policies)", |b| {
        b.iter(|| black_box(&state).clone())
    });
    g.finish();

    // The same world with 200 ClusterNetworkPolicies at mixed priorities.
    let mut tiered = state.clone();
    for k in 0..CLUSTER_POLICIES {
        tiered.apply_cluster_policy(cluster_policy_of(&cluster_policy(k)));
    }
    assert!(
        Checker::new(&iso, &tiered)
            .report()
            .expect("within the budget")
            .is_clean(),
        "the world with cluster policies is clean"
    );
    let cnp_admitted = Change::ApplyClusterPolicy(cluster_policy_of(&json!({
        "apiVersion": "policy.networking.k8s.io/v1beta1", "kind": "ClusterNetworkPolicy",
        "metadata": {"name": "monitoring-pass"},
        "spec": {"tier": "Admin", "priority": 7, "subject": {"namespaces": {}},
            "ingress": [{"action": "Pass", "from": [{"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]}]},
    })));
    let cnp_rejected = Change::ApplyClusterPolicy(cluster_policy_of(&json!({
        "apiVersion": "policy.networking.k8s.io/v1beta1", "kind": "ClusterNetworkPolicy",
        "metadata": {"name": "frontend-reads-database"},
        "spec": {"tier": "Admin", "priority": 3,
            "subject": {"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": "database"}}},
            "ingress": [{"action": "Accept",
                "from": [{"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": "frontend"}}}],
                "protocols": [{"tcp": {"destinationPort": {"number": 5432}}}]}]},
    })));
    let judge = |c: &Change| check_change(&iso, &tiered, c).expect("within the budget");
    assert!(judge(&admitted).is_empty());
    assert!(!judge(&rejected).is_empty());
    assert!(judge(&cnp_admitted).is_empty());
    assert!(!judge(&cnp_rejected).is_empty());
    let mut g = c.benchmark_group("cluster tiers");
    g.sample_size(20);
    for (name, change) in [
        (
            "create database/allow-backend, 200 cluster policies (admitted)",
            &admitted,
        ),
        (
            "create database/allow-frontend, 200 cluster policies (rejected)",
            &rejected,
        ),
        (
            "create ClusterNetworkPolicy monitoring-pass, 200 others (admitted)",
            &cnp_admitted,
        ),
        (
            "create ClusterNetworkPolicy frontend-reads-database, 200 others (rejected)",
            &cnp_rejected,
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| check_change(black_box(&iso), black_box(&tiered), black_box(change)))
        });
    }
    g.finish();

    // The same world under the baseline no namespace owner can override
    // (`via: clusterNetworkPolicy`: the Admin-tier policies tierguard keeps).
    let guarded_iso = isolationpolicy::parse(CLUSTER_BASELINE, "cluster-baseline").expect("policy");
    let mut guarded = state.clone();
    for p in guarded_iso.cluster_baseline() {
        guarded.apply_cluster_policy(p.clone());
    }
    let shadowed = Change::ApplyPolicy(policy(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "open-to-pods", "namespace": "database"},
        "spec": {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}]}]},
    })));
    let to_the_internet = Change::ApplyPolicy(policy(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "open-to-the-internet", "namespace": "database"},
        "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
            "ports": [{"protocol": "TCP", "port": 5432}]}]},
    })));
    let judge = |c: &Change| check_change(&guarded_iso, &guarded, c).expect("within the budget");
    assert!(judge(&admitted).is_empty());
    assert!(
        judge(&rejected).is_empty(),
        "frontend's pods are denied by the baseline"
    );
    assert!(
        !judge(&to_the_internet).is_empty(),
        "hosts outside are NetworkPolicy's to isolate"
    );
    assert!(
        judge(&shadowed).is_empty(),
        "the baseline's Deny shadows it"
    );
    let mut g = c.benchmark_group("cluster baseline");
    g.sample_size(20);
    for (name, change) in [
        (
            "create database/allow-backend under the cluster baseline (admitted)",
            &admitted,
        ),
        (
            "create database/allow-frontend under the cluster baseline (shadowed, admitted)",
            &rejected,
        ),
        (
            "create database/open-to-pods under the cluster baseline (shadowed, admitted)",
            &shadowed,
        ),
        (
            "create database/open-to-the-internet under the cluster baseline (rejected)",
            &to_the_internet,
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                check_change(
                    black_box(&guarded_iso),
                    black_box(&guarded),
                    black_box(change),
                )
            })
        });
    }
    g.finish();

    let find = |ns: &str, name: &str| {
        pods.iter()
            .find(|p| p.namespace == ns && p.name == name)
            .expect("pod exists")
    };
    let backend = find("backend", "backend-0");
    let database = find("database", "database-2");
    let team = find("team-0100", "app-2-0");
    let src = Endpoint::Pod(backend);
    let dst = Endpoint::Pod(database);
    assert!(evaluate(&state, &src, &dst, Protocol::Tcp, 5432).allowed);
    let team_dst = Endpoint::Pod(team);
    let mut g = c.benchmark_group("query");
    g.bench_function("evaluate backend -> database TCP/5432", |b| {
        b.iter(|| {
            evaluate(
                black_box(&state),
                black_box(&src),
                black_box(&dst),
                Protocol::Tcp,
                5432,
            )
        })
    });
    g.bench_function("evaluate backend -> team-0100 TCP/80", |b| {
        b.iter(|| {
            evaluate(
                black_box(&state),
                black_box(&src),
                black_box(&team_dst),
                Protocol::Tcp,
                80,
            )
        })
    });
    g.finish();

    // The connectivity matrix of the tier namespaces' pods and the outside
    // world on the ports that matter, in the 2,000-namespace world.
    let tier_pods: Vec<Pod> = pods
        .iter()
        .filter(|p| TIERS.contains(&p.namespace.as_str()))
        .cloned()
        .collect();
    let ports = ports_that_matter(&state, &tier_pods);
    let ends = || -> Vec<Endpoint<'_>> {
        tier_pods
            .iter()
            .map(Endpoint::Pod)
            .chain([Endpoint::Outside])
            .collect()
    };
    let cells = ends().len() * ends().len() * ports.len();
    let mut g = c.benchmark_group("connectivity");
    g.sample_size(20);
    g.bench_function(
        format!(
            "matrix: tier pods and outside ({} ends x {} ports = {cells} cells)",
            ends().len(),
            ports.len()
        ),
        |b| {
            b.iter(|| {
                Matrix::compute(
                    black_box(&state),
                    &Unplaced,
                    ends(),
                    black_box(ports.clone()),
                )
            })
        },
    );
    g.finish();
}

criterion_group!(isolation, benches);
criterion_main!(isolation);
