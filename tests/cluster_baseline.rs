//! The ClusterNetworkPolicy baseline (`spec.baseline.via:
//! clusterNetworkPolicy`) against brute force.
//!
//! proptest builds random isolation policies (tiers joined by label or by
//! name, flows over every kind of end, port sets, each DNS setting) and
//! random namespaces. With the generated policies in the world:
//!
//! 1. and an allow-all NetworkPolicy in every namespace, the concrete
//!    evaluator lets through exactly the flows the isolation policy allows
//!    (every pod pair, protocol and port of the alphabet, and egress to a
//!    host outside the cluster); connections from outside are left to
//!    NetworkPolicy (a ClusterNetworkPolicy's ingress peers are pods only);
//! 2. and random NetworkPolicies, the walls check finds no breach but one
//!    from outside the cluster into a tier namespace.

mod common;

use common::brute_cases as cases;

use proptest::prelude::*;
use tierguard::engine::isolation::Checker;
use tierguard::engine::policy::Direction;
use tierguard::engine::ports::Protocol;
use tierguard::engine::reach::{Decision, Endpoint, evaluate};
use tierguard::engine::tiers::{IsolationPolicy, Party};
use tierguard::model::{clusterbaseline, isolationpolicy};
use tierguard::world::World;

/// Namespaces of every world: `na`/`nb` may be named by tiers, `mon` and
/// `n1` by flows.
const NAMESPACES: [&str; 5] = ["na", "nb", "n1", "n2", "mon"];
const ENDS: [&str; 7] = [
    "tier:a",
    "tier:b",
    "tier:*",
    "namespace:mon",
    "namespace:n1",
    "external",
    "any",
];
const PORTS: [u16; 4] = [53, 80, 1500, 5432];
const OUTSIDE: &str = "203.0.113.9";

fn ports() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just(""),
        Just(", ports: [TCP/80]"),
        Just(", ports: [TCP/80, UDP/53]"),
        Just(", ports: [TCP/1000-2000]"),
        Just(", ports: [UDP/1-100, TCP/5432]"),
    ]
}

fn flow() -> impl Strategy<Value = String> {
    (0..ENDS.len(), 0..ENDS.len(), ports())
        .prop_map(|(f, t, p)| format!("  - {{from: '{}', to: '{}'{p}}}\n", ENDS[f], ENDS[t]))
}

/// An isolation policy: tiers `a` and `b`, each naming `na`/`nb` or not.
fn isolation() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        any::<bool>(),
        prop_oneof![Just("none"), Just("anywhere"), Just("cluster-dns")],
        prop::collection::vec(flow(), 0..5),
    )
        .prop_map(|(name_a, name_b, dns, flows)| {
            let named = |yes: bool, ns: &str| if yes { format!(", namespaces: [{ns}]") } else { String::new() };
            format!(
                "apiVersion: tierguard.io/v1alpha1\nkind: IsolationPolicy\nmetadata: {{name: p}}\nspec:\n  tierLabel: tier\n  tiers:\n  - {{name: a{}}}\n  - {{name: b{}}}\n  baseline: {{via: clusterNetworkPolicy, priority: 3, dns: {{to: {dns}}}}}\n  flows:{}",
                named(name_a, "na"),
                named(name_b, "nb"),
                if flows.is_empty() { " []\n".to_string() } else { format!("\n{}", flows.concat()) },
            )
        })
}

/// Each namespace's tier label: none, `a` or `b`.
fn labels() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0..3usize, NAMESPACES.len())
}

/// A NetworkPolicy a namespace owner might write (index into the list).
fn owner_policy() -> impl Strategy<Value = usize> {
    0..6usize
}

fn owner_policy_text(i: usize, ns: &str) -> String {
    let spec = match i {
        0 => return String::new(),
        1 => "{podSelector: {}, policyTypes: [Ingress, Egress], ingress: [{}], egress: [{}]}",
        2 => "{podSelector: {}, ingress: [{from: [{namespaceSelector: {}}]}]}",
        3 => {
            "{podSelector: {}, policyTypes: [Egress], egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0}}]}]}"
        }
        4 => {
            "{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0}}], ports: [{port: 80}]}]}"
        }
        _ => "{podSelector: {}, policyTypes: [Ingress, Egress]}",
    };
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: owner, namespace: {ns}}}\nspec: {spec}\n---\n"
    )
}

/// The world: the namespaces (with `tier` labels), two pods each, the DNS
/// pods, the generated baseline and `extra` policies per namespace.
fn world(iso: &IsolationPolicy, tiers: &[usize], extra: impl Fn(&str) -> String) -> World {
    let mut text = String::new();
    let mut pod = |ns: &str, name: &str, ip: String, labels: &str| {
        text.push_str(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}, labels: {{{labels}}}}}\nspec: {{containers: [{{name: c, image: i}}]}}\nstatus: {{podIP: {ip}}}\n---\n"
        ));
    };
    for (i, ns) in NAMESPACES.iter().enumerate() {
        for p in 0..2 {
            pod(
                ns,
                &format!("p{p}"),
                format!("10.0.{i}.{}", p + 1),
                "app: x",
            );
        }
    }
    pod("kube-system", "dns", "10.0.9.1".into(), "k8s-app: kube-dns");
    pod("kube-system", "other", "10.0.9.2".into(), "app: x");
    for (i, ns) in NAMESPACES.iter().enumerate() {
        let label = match tiers[i] {
            1 => ", tier: a",
            2 => ", tier: b",
            _ => "",
        };
        // A namespace named by one tier does not carry the other's label.
        let label = match iso.tier_by_name(ns) {
            Some(_) => "",
            None => label,
        };
        text.push_str(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}, labels: {{kubernetes.io/metadata.name: {ns}{label}}}}}\n---\n"
        ));
        text.push_str(&extra(ns));
    }
    text.push_str("apiVersion: v1\nkind: Namespace\nmetadata: {name: kube-system, labels: {kubernetes.io/metadata.name: kube-system}}\n---\n");
    text.push_str(&extra("kube-system"));
    for obj in clusterbaseline::objects(iso, 3) {
        text.push_str(&obj.to_string());
        text.push_str("\n---\n");
    }
    World::from_text(&text, "case").unwrap_or_else(|e| panic!("world: {e:#}\n{text}"))
}

fn party(iso: &IsolationPolicy, w: &World, ns: &str) -> Party {
    let labels = w
        .state
        .namespace(ns)
        .map(|n| n.labels.clone())
        .unwrap_or_default();
    iso.party(Some(ns), iso.tier_of_namespace(ns, &labels))
}

fn allow_all(ns: &str) -> String {
    owner_policy_text(1, ns)
}

fn decided(d: Decision) -> bool {
    match d {
        Decision::Allowed => true,
        Decision::Denied => false,
        other => panic!("undecided: {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn the_cluster_baseline_passes_exactly_the_allowed_flows(iso in isolation(), tiers in labels()) {
        let iso = isolationpolicy::parse(&iso, "p").unwrap_or_else(|e| panic!("{e:#}\n{iso}"));
        let w = world(&iso, &tiers, allow_all);
        let pods = &w.pods;
        let outside = Endpoint::External(OUTSIDE.parse().expect("ip"));
        for a in pods {
            let pa = party(&iso, &w, &a.namespace);
            for proto in [Protocol::Tcp, Protocol::Udp] {
                for port in PORTS {
                    for b in pods {
                        if a.namespace == b.namespace && a.name == b.name {
                            continue;
                        }
                        let pb = party(&iso, &w, &b.namespace);
                        let governed = IsolationPolicy::is_tier(&pa) || IsolationPolicy::is_tier(&pb);
                        let want = !governed || iso.allowed(&pa, &pb).contains(proto, port);
                        let got = decided(evaluate(&w.state, &Endpoint::Pod(a), &Endpoint::Pod(b), proto, port).decision);
                        prop_assert_eq!(got, want, "{}/{} -> {}/{} {}/{}", a.namespace, a.name, b.namespace, b.name, proto, port);
                    }
                    let want = !IsolationPolicy::is_tier(&pa) || iso.allowed(&pa, &Party::External).contains(proto, port);
                    let got = decided(evaluate(&w.state, &Endpoint::Pod(a), &outside, proto, port).decision);
                    prop_assert_eq!(got, want, "{}/{} -> outside {}/{}", a.namespace, a.name, proto, port);
                    let got = decided(evaluate(&w.state, &outside, &Endpoint::Pod(a), proto, port).decision);
                    prop_assert!(got, "outside -> {}/{} is NetworkPolicy's to decide", a.namespace, a.name);
                }
            }
        }
    }

    #[test]
    fn under_the_cluster_baseline_only_hosts_outside_can_be_let_in(
        iso in isolation(),
        tiers in labels(),
        owners in prop::collection::vec(owner_policy(), NAMESPACES.len() + 1),
    ) {
        let iso = isolationpolicy::parse(&iso, "p").unwrap_or_else(|e| panic!("{e:#}\n{iso}"));
        let w = world(&iso, &tiers, |ns| {
            let i = NAMESPACES.iter().position(|n| *n == ns).unwrap_or(NAMESPACES.len());
            owner_policy_text(owners[i], ns)
        });
        let report = Checker::new(&iso, &w.state).report().expect("budget");
        for b in &report.flows {
            prop_assert!(
                b.wall == Direction::Ingress && b.other == Party::External,
                "{b:#?}"
            );
        }
    }
}
