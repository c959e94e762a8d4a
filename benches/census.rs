//! What the census costs: the full report `serve` recounts after each
//! change (the judgement `tierguard check` makes over the whole state), and
//! the OpenReports objects built from it, over the size of cluster issue 15
//! §4 names.
//!
//! The world: the tutorial as tierguard leaves it (`examples/three-tier`);
//! 297 more namespaces in the three tiers by the tier label (99 each), each
//! with the baseline tierguard injects and one policy within the flows; and
//! 9,700 namespaces outside the tiers (labelled `team=t<n>`, 50 teams), each
//! with five NetworkPolicies (an ingress default-deny, same-namespace
//! ingress, ingress from another team on TCP/8080, egress to the cluster
//! DNS, egress anywhere on TCP/443): 10,000 namespaces, 300 of them tier
//! namespaces, ~49,000 NetworkPolicies. One isolation policy
//! (`policies/three-tier.yaml`; several at once are not supported yet).
//! The state is clean. Built deterministically.
//!
//! Run with `cargo bench --bench census`; results in docs/benchmarks.md.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::SystemTime;

use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::{Value, json};
use tierguard::engine::isolation::Checker;
use tierguard::engine::policy::Policy;
use tierguard::engine::state::{Namespace, State};
use tierguard::engine::tiers::IsolationPolicy;
use tierguard::model::baseline::baseline_policies;
use tierguard::model::isolationpolicy;
use tierguard::report::openreports::{self, Reports};

const THREE_TIER: &str = include_str!("../policies/three-tier.yaml");
const TUTORIAL: [&str; 3] = [
    include_str!("../examples/three-tier/namespaces.yaml"),
    include_str!("../examples/three-tier/baseline.yaml"),
    include_str!("../examples/three-tier/flows.yaml"),
];
const TIERS: [&str; 3] = ["frontend", "backend", "database"];
/// Namespaces joined to each tier by label.
const MEMBERS_PER_TIER: usize = 99;
/// Namespaces outside the tiers.
const TEAMS: usize = 9_700;
const TIER_LABEL: &str = "tierguard.io/tier";

fn policy(v: Value) -> Arc<Policy> {
    let np: NetworkPolicy = serde_json::from_value(v).expect("a NetworkPolicy");
    let ns = np.metadata.namespace.clone().expect("namespaced");
    Arc::new(tierguard::model::networkpolicy::convert(&np, &ns).expect("valid"))
}

fn np(ns: &str, name: &str, spec: Value) -> Arc<Policy> {
    policy(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }))
}

fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The one flow policy a label-made member of `tier` holds.
fn member_flow(tier: &str) -> Value {
    match tier {
        "frontend" => json!({
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": {"matchLabels": {TIER_LABEL: "backend"}}}],
                        "ports": [{"protocol": "TCP", "port": 80}]}],
        }),
        "backend" => json!({
            "podSelector": {"matchLabels": {"app": "api"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"name": "frontend"}}}],
                         "ports": [{"protocol": "TCP", "port": 80}]}],
        }),
        _ => json!({
            "podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {TIER_LABEL: "backend"}}}],
                         "ports": [{"protocol": "TCP", "port": 5432}]}],
        }),
    }
}

/// The five policies of team namespace `i`.
fn team_policies(ns: &str, i: usize) -> Vec<Arc<Policy>> {
    let other = format!("t{}", (i + 1) % 50);
    vec![
        np(
            ns,
            "default-deny-ingress",
            json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        ),
        np(
            ns,
            "same-namespace",
            json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}),
        ),
        np(
            ns,
            "from-other-team",
            json!({
                "podSelector": {"matchLabels": {"app": format!("svc-{}", i % 7)}},
                "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": other}}}],
                             "ports": [{"protocol": "TCP", "port": 8080}]}],
            }),
        ),
        np(
            ns,
            "dns",
            json!({
                "podSelector": {}, "policyTypes": ["Egress"],
                "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}],
            }),
        ),
        np(
            ns,
            "https-out",
            json!({
                "podSelector": {}, "policyTypes": ["Egress"],
                "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
                            "ports": [{"protocol": "TCP", "port": 443}]}],
            }),
        ),
    ]
}

fn world() -> (IsolationPolicy, State) {
    let iso = isolationpolicy::parse(THREE_TIER, "policies/three-tier.yaml").expect("policy");
    let text = TUTORIAL.join("\n---\n");
    let mut state = tierguard::world::World::from_text(&text, "examples/three-tier")
        .expect("the tutorial loads")
        .state;
    for tier in TIERS {
        for i in 0..MEMBERS_PER_TIER {
            let name = format!("{tier}-{i:03}");
            state.apply_namespace(Namespace::new(
                &name,
                labels(&[("name", &name), (TIER_LABEL, tier)]),
            ));
            for b in baseline_policies(&iso, &name) {
                let p = tierguard::model::networkpolicy::convert(&b, &name).expect("baseline");
                state.apply_policy(Arc::new(p));
            }
            state.apply_policy(np(&name, "flow", member_flow(tier)));
        }
    }
    for i in 0..TEAMS {
        let name = format!("team-{i:04}");
        let team = format!("t{}", i % 50);
        state.apply_namespace(Namespace::new(
            &name,
            labels(&[("name", &name), ("team", &team)]),
        ));
        for p in team_policies(&name, i) {
            state.apply_policy(p);
        }
    }
    (iso, state)
}

fn benches(c: &mut Criterion) {
    let (iso, state) = world();
    let checker = Checker::new(&iso, &state);
    let tiers: Vec<String> = checker
        .tier_namespaces()
        .iter()
        .map(|n| n.name.clone())
        .collect();
    let (namespaces, policies) = state.counts();
    assert_eq!(namespaces, 3 + 3 * MEMBERS_PER_TIER + TEAMS);
    assert_eq!(tiers.len(), 3 + 3 * MEMBERS_PER_TIER);
    let report = checker.report().expect("within the budget");
    assert!(
        report.is_clean(),
        "the world is clean: {:?}",
        report.flows.first()
    );
    let built = openreports::build(
        &iso.name,
        &tiers,
        &report,
        &Reports::default(),
        SystemTime::now(),
    );
    assert_eq!(built.namespaced.len(), tiers.len());

    let mut g = c.benchmark_group(format!(
        "census, {namespaces} namespaces, {policies} policies, {} tier namespaces",
        tiers.len()
    ));
    g.sample_size(10);
    g.bench_function("full report (Checker::report)", |b| {
        b.iter(|| Checker::new(black_box(&iso), black_box(&state)).report())
    });
    g.bench_function("OpenReports objects from the report (build)", |b| {
        b.iter(|| {
            openreports::build(
                black_box(&iso.name),
                &tiers,
                black_box(&report),
                &built,
                SystemTime::now(),
            )
        })
    });
    g.bench_function("snapshot the state (what the census clones)", |b| {
        b.iter(|| black_box(&state).clone())
    });

    // The same world with 30 backend members open to every source (an
    // allow-all ingress, as while debugging): violations to find and
    // report.
    let mut dirty = state.clone();
    for i in 0..30 {
        let ns = format!("backend-{i:03}");
        dirty.apply_policy(np(
            &ns,
            "debug-allow-all",
            json!({"podSelector": {}, "ingress": [{}]}),
        ));
    }
    let dirty_report = Checker::new(&iso, &dirty)
        .report()
        .expect("within the budget");
    assert!(
        dirty_report.flows.len() >= 30,
        "{}",
        dirty_report.flows.len()
    );
    let dirty_built = openreports::build(
        &iso.name,
        &tiers,
        &dirty_report,
        &Reports::default(),
        SystemTime::now(),
    );
    let fails: u32 = dirty_built
        .namespaced
        .values()
        .map(|b| b.summary.fail)
        .sum();
    assert_eq!(fails as usize, dirty_report.flows.len());
    g.bench_function(
        format!(
            "full report, 30 namespaces open ({} forbidden flows)",
            dirty_report.flows.len()
        ),
        |b| b.iter(|| Checker::new(black_box(&iso), black_box(&dirty)).report()),
    );
    g.bench_function("OpenReports objects, 30 namespaces open", |b| {
        b.iter(|| {
            openreports::build(
                black_box(&iso.name),
                &tiers,
                black_box(&dirty_report),
                &dirty_built,
                SystemTime::now(),
            )
        })
    });
    g.finish();
}

criterion_group!(census, benches);
criterion_main!(census);
