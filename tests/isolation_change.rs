//! `check_change`: the forbidden flows one change opens — what the webhook
//! asks for every NetworkPolicy and namespace request.

use std::collections::BTreeMap;
use std::sync::Arc;

use tierguard::engine::isolation::{Breach, Cause, Change, Checker, check_change};
use tierguard::engine::policy::Policy;
use tierguard::engine::policy::{Direction, RuleRef};
use tierguard::engine::ports::{PortSet, Protocol};
use tierguard::engine::state::{Namespace, State};
use tierguard::engine::tiers::{IsolationPolicy, Judge};
use tierguard::model::isolationpolicy;
use tierguard::report::kubectl::Refusal;
use tierguard::world::World;

fn three_tier() -> (IsolationPolicy, State) {
    let iso = isolationpolicy::load_file(std::path::Path::new("policies/three-tier.yaml"))
        .expect("policy");
    let world = World::load(&["examples/three-tier".into()]).expect("examples");
    (iso, world.state)
}

fn policy(yaml: &str) -> Arc<Policy> {
    let text = format!("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n{yaml}");
    let w = World::from_text(&text, "test").expect("valid policy");
    w.state.policies().next().cloned().expect("one policy")
}

fn flows(findings: &[Breach]) -> Vec<String> {
    findings
        .iter()
        .map(|f| {
            format!(
                "{} ({})",
                tierguard::report::flow(&f.from, &f.to, &f.ports),
                f.wall
            )
        })
        .collect()
}

/// The lines kubectl shows for these breaches.
fn kubectl_lines(breaches: &[Breach]) -> Vec<String> {
    Refusal {
        kind: "NetworkPolicy".into(),
        object: "database/oops".into(),
        delete: false,
        problems: Vec::new(),
        breaches: breaches.to_vec(),
        policy: "three-tier".into(),
    }
    .lines()
}

#[test]
fn an_allowed_flow_is_admitted() {
    let (iso, state) = three_tier();
    let p = policy(
        "metadata: {name: backend-metrics, namespace: database}\nspec:\n  podSelector: {}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {name: backend}}}], ports: [{port: 5432}]}]",
    );
    assert_eq!(
        check_change(&iso, &state, &Change::ApplyPolicy(p)).expect("within the budget"),
        Vec::<Breach>::new()
    );
}

#[test]
fn a_forbidden_flow_is_named_with_the_rule_that_opens_it() {
    let (iso, state) = three_tier();
    let p = policy(
        "metadata: {name: oops, namespace: database}\nspec:\n  podSelector: {matchLabels: {app: database}}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {name: backend}}}]\n    ports: [{port: 5432}]\n  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: frontend}}}]\n    ports: [{port: 5432}, {port: 22}]",
    );
    let f = check_change(&iso, &state, &Change::ApplyPolicy(p)).expect("within the budget");
    assert_eq!(
        flows(&f),
        ["tier frontend -> tier database on TCP/22, TCP/5432 (ingress)"]
    );
    assert_eq!(
        f[0].causes,
        vec![(
            Cause::Rule {
                rule: RuleRef {
                    namespace: "database".into(),
                    policy: "oops".into(),
                    direction: Direction::Ingress,
                    index: 1
                },
                peer: Some("namespaceSelector kubernetes.io/metadata.name=frontend".into())
            },
            PortSet::single(Protocol::Tcp, 22).union(&PortSet::single(Protocol::Tcp, 5432))
        )]
    );
    let lines = kubectl_lines(&f);
    assert!(lines[0].len() <= 256, "{}", lines[0]);
    assert!(
        lines[0].contains("database/oops ingress[1]"),
        "{}",
        lines[0]
    );
}

#[test]
fn deleting_the_default_deny_opens_the_wall() {
    let (iso, state) = three_tier();
    let change = Change::DeletePolicy {
        namespace: "backend".into(),
        name: "tierguard-default-deny".into(),
    };
    let f = check_change(&iso, &state, &change).expect("within the budget");
    assert!(!f.is_empty());
    assert!(
        f.iter().all(|f| f.wall == Direction::Ingress),
        "egress stays isolated by the DNS policy: {:?}",
        flows(&f)
    );
    assert!(
        f.iter()
            .all(|f| matches!(f.causes[0].0, Cause::Unisolated { .. }))
    );
    assert!(
        flows(&f).contains(&"tier database -> tier backend on all ports (ingress)".to_string()),
        "{:?}",
        flows(&f)
    );
}

#[test]
fn narrowing_the_last_isolating_policy_opens_the_pods_it_no_longer_selects() {
    let (iso, mut state) = three_tier();
    state.delete_policy("database", "tierguard-default-deny");
    state.apply_policy(policy("metadata: {name: deny, namespace: database}\nspec: {podSelector: {}, policyTypes: [Ingress]}"));
    assert!(
        Checker::new(&iso, &state)
            .report()
            .expect("within the budget")
            .is_clean()
    );
    let narrowed = policy(
        "metadata: {name: deny, namespace: database}\nspec: {podSelector: {matchLabels: {app: database}}, policyTypes: [Ingress]}",
    );
    let f = check_change(&iso, &state, &Change::ApplyPolicy(narrowed)).expect("within the budget");
    assert!(!f.is_empty());
    match &f[0].causes[0].0 {
        Cause::Unisolated { pods } => assert!(pods.contains("app"), "{pods}"),
        c => panic!("unexpected cause {c:?}"),
    }
}

#[test]
fn a_change_that_opens_nothing_new_is_not_flagged() {
    let (iso, mut state) = three_tier();
    let hole = "metadata: {name: hole, namespace: database}\nspec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {matchLabels: {name: frontend}}}], ports: [{port: 5432}]}]}";
    state.apply_policy(policy(hole));
    // The same hole again, under another name: already open, nothing new.
    let again = policy(&hole.replace("name: hole", "name: hole-2"));
    assert_eq!(
        check_change(&iso, &state, &Change::ApplyPolicy(again)).expect("within the budget"),
        Vec::<Breach>::new()
    );
    // Closing it is fine too.
    let close = Change::DeletePolicy {
        namespace: "database".into(),
        name: "hole".into(),
    };
    assert_eq!(
        check_change(&iso, &state, &close).expect("within the budget"),
        Vec::<Breach>::new()
    );
}

#[test]
fn policies_outside_the_tiers_are_not_governed() {
    let (iso, state) = three_tier();
    let p = policy(
        "metadata: {name: anything, namespace: playground}\nspec: {podSelector: {}, ingress: [{}], egress: [{}]}",
    );
    assert_eq!(
        check_change(&iso, &state, &Change::ApplyPolicy(p)).expect("within the budget"),
        Vec::<Breach>::new()
    );
}

#[test]
fn joining_a_tier_is_judged() {
    let (iso, mut state) = three_tier();
    state.apply_namespace(Namespace::new("legacy-db", BTreeMap::new()));
    state.apply_policy(policy(
        "metadata: {name: open, namespace: legacy-db}\nspec: {podSelector: {}, ingress: [{}]}",
    ));
    assert!(
        Checker::new(&iso, &state)
            .report()
            .expect("within the budget")
            .is_clean(),
        "not a tier yet: not governed"
    );
    let relabel = Namespace::new(
        "legacy-db",
        BTreeMap::from([("tierguard.io/tier".to_string(), "database".to_string())]),
    );
    let f =
        check_change(&iso, &state, &Change::ApplyNamespace(relabel)).expect("within the budget");
    assert!(
        flows(&f).contains(
            &"tier frontend -> tier database (namespace legacy-db) on all ports (ingress)"
                .to_string()
        ),
        "{:?}",
        flows(&f)
    );
    // An unprotected label changes nothing: it was already assumed free.
    let team = Namespace::new(
        "legacy-db",
        BTreeMap::from([("team".to_string(), "payments".to_string())]),
    );
    assert_eq!(
        check_change(&iso, &state, &Change::ApplyNamespace(team)).expect("within the budget"),
        Vec::<Breach>::new()
    );
}

#[test]
fn a_namespace_that_claims_another_name_is_judged() {
    let (iso, state) = three_tier();
    let liar = Namespace::new(
        "reporting",
        BTreeMap::from([("name".to_string(), "backend".to_string())]),
    );
    let f = check_change(&iso, &state, &Change::ApplyNamespace(liar)).expect("within the budget");
    assert!(
        flows(&f).contains(
            &"namespace reporting (not in a tier) -> tier database on TCP/5432 (ingress)"
                .to_string()
        ),
        "{:?}",
        flows(&f)
    );
}

#[test]
fn effective_mode_ignores_holes_the_other_end_blocks() {
    let (mut iso, state) = three_tier();
    // frontend may send to the database on 5432; the database's ingress refuses.
    let p = policy(
        "metadata: {name: egress-db, namespace: frontend}\nspec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{namespaceSelector: {matchLabels: {name: database}}}], ports: [{port: 5432}]}]}",
    );
    let walls =
        check_change(&iso, &state, &Change::ApplyPolicy(p.clone())).expect("within the budget");
    assert_eq!(
        flows(&walls),
        ["tier frontend -> tier database on TCP/5432 (egress)"]
    );
    iso.judge = Judge::Effective;
    assert_eq!(
        check_change(&iso, &state, &Change::ApplyPolicy(p)).expect("within the budget"),
        Vec::<Breach>::new()
    );
    // ... but egress to a namespace nobody has created yet is open at its end.
    let p = policy(
        "metadata: {name: egress-any, namespace: frontend}\nspec: {podSelector: {}, policyTypes: [Egress], egress: [{ports: [{port: 5432}]}]}",
    );
    let f = check_change(&iso, &state, &Change::ApplyPolicy(p)).expect("within the budget");
    assert!(
        flows(&f).contains(
            &"tier frontend -> any namespace outside the tiers on TCP/5432 (egress)".to_string()
        ),
        "{:?}",
        flows(&f)
    );
    assert!(
        !flows(&f).iter().any(|l| l.contains("-> tier database")),
        "{:?}",
        flows(&f)
    );
}

#[test]
fn effective_mode_judges_changes_at_the_other_end() {
    let (mut iso, mut state) = three_tier();
    iso.judge = Judge::Effective;
    state.apply_namespace(Namespace::new("monitoring", BTreeMap::new()));
    state.apply_policy(policy("metadata: {name: deny, namespace: monitoring}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}"));
    state.apply_policy(policy("metadata: {name: from-monitoring, namespace: database}\nspec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}], ports: [{port: 5432}]}]}"));
    assert!(
        Checker::new(&iso, &state)
            .report()
            .expect("within the budget")
            .flows
            .is_empty(),
        "monitoring's egress blocks the hole"
    );
    let open = policy(
        "metadata: {name: allow-all-egress, namespace: monitoring}\nspec: {podSelector: {}, policyTypes: [Egress], egress: [{}]}",
    );
    let f = check_change(&iso, &state, &Change::ApplyPolicy(open)).expect("within the budget");
    assert_eq!(
        flows(&f),
        ["namespace monitoring (not in a tier) -> tier database on TCP/5432 (ingress)"]
    );
}

/// Policies whose pod selectors encode random 3-SAT clauses near the phase
/// transition, in a tier namespace without its default-deny: "is some pod
/// selected by none of them?" is then hard, and must end in the budget.
#[test]
fn a_satisfiability_puzzle_is_answered_within_the_budget() {
    let (iso, mut state) = three_tier();
    state.delete_policy("database", "tierguard-default-deny");
    let mut x: u64 = 7;
    let mut next = || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) as usize
    };
    for c in 0..119 {
        let mut exprs = Vec::new();
        let mut keys = Vec::new();
        while exprs.len() < 3 {
            let k = next() % 28;
            if keys.contains(&k) {
                continue;
            }
            keys.push(k);
            let op = if next() % 2 == 0 { "In" } else { "NotIn" };
            exprs.push(format!("{{key: x{k}, operator: {op}, values: [t]}}"));
        }
        state.apply_policy(policy(&format!(
            "metadata: {{name: clause-{c}, namespace: database}}\nspec:\n  podSelector: {{matchExpressions: [{}]}}\n  ingress: []",
            exprs.join(", ")
        )));
    }
    let p = policy(
        "metadata: {name: one-more, namespace: database}\nspec:\n  podSelector: {matchLabels: {app: x}}\n  ingress: []",
    );
    let started = std::time::Instant::now();
    let answer = check_change(&iso, &state, &Change::ApplyPolicy(p));
    assert!(
        matches!(answer, Err(tierguard::engine::selector::Exhausted { .. })),
        "{answer:?}"
    );
    // Not a timing assertion on speed, only that it ended: the budget did it.
    eprintln!("answered in {:?}", started.elapsed());
}
