//! proptest generators of NetworkPolicy worlds over a small alphabet (label
//! keys `a`, `b`, `name`, `tier`, `team`; namespaces `ns-a`..`ns-d`, `ns-e`
//! that may appear later; ports 1, 2-3, 4 and the names `web`, `db`; a few
//! CIDRs around 10.0.0.0/16), as YAML. Shared by the brute-force property
//! tests and the data-plane differential test, so both judge the same kinds
//! of policies.

use proptest::prelude::*;

/// A pod selector of the alphabet.
pub fn pod_selector() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{}".to_string()),
        Just("{matchLabels: {a: x}}".to_string()),
        Just("{matchLabels: {a: y, b: x}}".to_string()),
        Just("{matchExpressions: [{key: a, operator: In, values: [x, y]}]}".to_string()),
        Just("{matchExpressions: [{key: a, operator: NotIn, values: [x]}]}".to_string()),
        Just("{matchExpressions: [{key: a, operator: Exists}]}".to_string()),
        Just("{matchExpressions: [{key: b, operator: DoesNotExist}]}".to_string()),
        Just("{matchExpressions: [{key: a, operator: In, values: [x]}, {key: a, operator: NotIn, values: [x]}]}".to_string()),
    ]
}

/// A namespace selector of the alphabet.
/// Namespace `name` with some of the labels `name`, `tier`, `team`, or absent
/// (`ns-a` always exists).
pub fn namespace_selector() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{}".to_string()),
        Just("{matchLabels: {kubernetes.io/metadata.name: ns-a}}".to_string()),
        Just("{matchLabels: {name: ns-b}}".to_string()),
        Just("{matchLabels: {name: ns-a}}".to_string()),
        Just("{matchExpressions: [{key: name, operator: In, values: [ns-a, ns-e]}]}".to_string()),
        Just("{matchLabels: {kubernetes.io/metadata.name: ns-e}}".to_string()),
        Just("{matchLabels: {tier: t2}}".to_string()),
        Just("{matchExpressions: [{key: tier, operator: In, values: [legacy]}]}".to_string()),
        Just("{matchExpressions: [{key: tier, operator: Exists}]}".to_string()),
        Just("{matchExpressions: [{key: tier, operator: DoesNotExist}]}".to_string()),
        Just("{matchLabels: {team: x}}".to_string()),
        Just("{matchExpressions: [{key: name, operator: NotIn, values: [ns-a]}]}".to_string()),
        Just("{matchExpressions: [{key: name, operator: DoesNotExist}]}".to_string()),
        Just("{matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [ns-a, ns-c]}, {key: team, operator: DoesNotExist}]}".to_string()),
        // Names pinned and the tier label constrained: a relabel of the
        // tier label outside the tiers is seen by such a selector.
        Just("{matchLabels: {name: ns-b, tier: legacy}}".to_string()),
        Just("{matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [ns-b, ns-d]}, {key: tier, operator: DoesNotExist}]}".to_string()),
    ]
}

/// An ipBlock around 10.0.0.0/16, 192.168.1.0/24 and the whole address space.
pub fn ip_block() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{cidr: 10.0.0.0/16}".to_string()),
        Just("{cidr: 10.0.1.0/24}".to_string()),
        Just("{cidr: 10.0.0.0/8, except: [10.0.0.0/16]}".to_string()),
        Just("{cidr: 0.0.0.0/0, except: [10.0.0.0/8]}".to_string()),
        Just("{cidr: 192.168.1.0/24}".to_string()),
        Just("{cidr: '2001:db8::/32'}".to_string()),
        Just("{cidr: 10.0.0.0/16, except: [10.0.0.0/17, 10.0.128.0/17]}".to_string()),
        // Every address, in two peers or two rules.
        Just("{cidr: 0.0.0.0/0}".to_string()),
        Just("{cidr: '::/0'}".to_string()),
    ]
}

/// One peer of a rule.
pub fn peer() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => pod_selector().prop_map(|p| format!("{{podSelector: {p}}}")),
        3 => namespace_selector().prop_map(|n| format!("{{namespaceSelector: {n}}}")),
        3 => (namespace_selector(), pod_selector()).prop_map(|(n, p)| format!("{{namespaceSelector: {n}, podSelector: {p}}}")),
        2 => ip_block().prop_map(|b| format!("{{ipBlock: {b}}}")),
    ]
}

/// One `ports` entry: protocol, number, range or name.
pub fn port_entry() -> impl Strategy<Value = String> {
    let proto = prop_oneof![Just(""), Just("protocol: TCP, "), Just("protocol: UDP, ")];
    let numbers = prop_oneof![
        Just(String::new()),
        Just("port: 1".to_string()),
        Just("port: 2, endPort: 3".to_string()),
        Just("port: 4".to_string()),
        Just("port: web".to_string()),
        Just("port: db".to_string()),
    ];
    (proto, numbers).prop_map(|(p, n)| {
        let body = format!("{p}{n}");
        format!("{{{}}}", body.trim_end_matches(", "))
    })
}

/// One ingress (`from`) or egress (`to`) rule.
pub fn rule(peer_key: &'static str) -> impl Strategy<Value = String> {
    let peers = prop_oneof![
        1 => Just(String::new()),
        4 => prop::collection::vec(peer(), 1..=2).prop_map(move |ps| format!("{peer_key}: [{}]", ps.join(", "))),
    ];
    let ports = prop_oneof![
        1 => Just(String::new()),
        3 => prop::collection::vec(port_entry(), 1..=2).prop_map(|ps| format!("ports: [{}]", ps.join(", "))),
    ];
    (peers, ports).prop_map(|(a, b)| {
        let parts: Vec<String> = [a, b].into_iter().filter(|s| !s.is_empty()).collect();
        format!("{{{}}}", parts.join(", "))
    })
}

/// A NetworkPolicy named `p{index}` in one of `ns-a`..`ns-d`.
pub fn policy(index: usize) -> impl Strategy<Value = String> {
    let ns = prop::sample::select(vec!["ns-a", "ns-b", "ns-c", "ns-d"]);
    let types = prop_oneof![
        Just(""),
        Just("policyTypes: [Ingress]"),
        Just("policyTypes: [Egress]"),
        Just("policyTypes: [Ingress, Egress]"),
    ];
    let ingress = prop::collection::vec(rule("from"), 0..=2);
    let egress = prop::collection::vec(rule("to"), 0..=2);
    (ns, pod_selector(), types, ingress, egress).prop_map(move |(ns, sel, types, ing, eg)| {
        let mut spec = vec![format!("podSelector: {sel}")];
        if !types.is_empty() {
            spec.push(types.to_string());
        }
        if !ing.is_empty() {
            spec.push(format!("ingress: [{}]", ing.join(", ")));
        }
        if !eg.is_empty() {
            spec.push(format!("egress: [{}]", eg.join(", ")));
        }
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p{index}, namespace: {ns}}}\nspec: {{{}}}\n",
            spec.join(", ")
        )
    })
}

/// Namespace `name` with some of the labels `name`, `tier`, `team`, or absent
/// (`ns-a` always exists).
pub fn namespace(name: &'static str) -> impl Strategy<Value = Option<String>> {
    let name_label = prop_oneof![
        Just(None),
        Just(Some(name.to_string())),
        Just(Some("ns-a".to_string()))
    ];
    let tier = prop_oneof![
        Just(None),
        Just(Some("t2")),
        Just(Some("legacy")),
        Just(Some("t1"))
    ];
    let team = prop_oneof![Just(None), Just(Some("x"))];
    (any::<bool>(), name_label, tier, team).prop_map(move |(exists, nl, tier, team)| {
        if !exists && name != "ns-a" {
            return None;
        }
        let mut labels = Vec::new();
        if let Some(v) = nl {
            labels.push(format!("name: {v}"));
        }
        if let Some(t) = tier {
            labels.push(format!("tier: {t}"));
        }
        if let Some(t) = team {
            labels.push(format!("team: {t}"));
        }
        Some(format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}, labels: {{{}}}}}\n",
            labels.join(", ")
        ))
    })
}
