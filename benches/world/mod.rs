//! The benchmark world's namespaces outside the tiers and their policies,
//! shared by the criterion benchmark (`benches/isolation.rs`) and the load
//! generator (`examples/loadgen.rs`, which includes this file by path), so
//! the two judge the same world. Deterministic: arithmetic on indices.

use serde_json::{Value, json};

/// Namespaces in the world, tiers included.
pub const NAMESPACES: usize = 2_000;
/// NetworkPolicies in the world, the tiers' included.
pub const POLICIES: usize = 5_000;
/// The tier namespaces (as in `examples/three-tier`).
pub const TIERS: [&str; 3] = ["frontend", "backend", "database"];
/// A JSON label map.
fn json_labels(kv: &[(&str, &str)]) -> Value {
    Value::Object(
        kv.iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect(),
    )
}

/// The name of non-tier namespace number `i`.
pub fn other_namespace(i: usize) -> String {
    match i {
        0 => "kube-system".to_string(),
        1 => "ingress-nginx".to_string(),
        2 => "monitoring".to_string(),
        _ => format!("team-{i:04}"),
    }
}

/// The Namespace manifest of non-tier namespace number `i`: a `team` label,
/// `name=<namespace>` on two in three, `env=prod` on one in five.
pub fn namespace_manifest(i: usize) -> Value {
    let ns = other_namespace(i);
    let team = format!("t{}", i % 50);
    let mut kv = vec![("team", team.as_str())];
    if !i.is_multiple_of(3) {
        kv.push(("name", ns.as_str()));
    }
    if i.is_multiple_of(5) {
        kv.push(("env", "prod"));
    }
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": json_labels(&kv)}})
}

/// Policy number `k` (0, 1 or 2) of non-tier namespace number `i`.
pub fn team_policy(ns: &str, i: usize, k: usize) -> Value {
    let app = format!("app-{}", i % 7);
    let meta = |name: &str| json!({"name": name, "namespace": ns});
    let np = |name: &str, spec: Value| json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta(name), "spec": spec});
    match (k, i % 4) {
        (0, 0) | (0, 2) => np(
            "default-deny",
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        ),
        // Ingress controller to the app, by namespace name, on a named port and a number.
        (0, _) => np(
            "allow-ingress-controller",
            json!({
                "podSelector": {"matchLabels": {"app": app}},
                "ingress": [{
                    "from": [{
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
                        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx"}},
                    }],
                    "ports": [{"port": "http"}, {"protocol": "TCP", "port": 8443}],
                }],
            }),
        ),
        // Same namespace, plus monitoring by the `name` label on a port range.
        (1, _) => np(
            "allow-same-namespace-and-monitoring",
            json!({
                "podSelector": {"matchExpressions": [
                    {"key": "app", "operator": "In", "values": [app, "worker"]},
                ]},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {"from": [{"podSelector": {}}]},
                    {
                        "from": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
                        "ports": [{"protocol": "TCP", "port": 9000, "endPort": 9100}],
                    },
                ],
            }),
        ),
        // Partner addresses.
        (2, 0) | (2, 1) => np(
            "allow-partners",
            json!({
                "podSelector": {"matchLabels": {"app": app, "role": "api"}},
                "ingress": [{
                    "from": [{"ipBlock": {
                        "cidr": format!("203.0.{}.0/24", i % 256),
                        "except": [format!("203.0.{}.128/25", i % 256)],
                    }}],
                    "ports": [{"protocol": "TCP", "port": 443}],
                }],
            }),
        ),
        // Egress to a tier (backend's API) and to DNS anywhere in 10/8.
        (_, _) => np(
            "allow-egress-to-backend",
            json!({
                "podSelector": {"matchExpressions": [{"key": "team", "operator": "Exists"}]},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [{
                            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "backend"}},
                            "podSelector": {"matchLabels": {"app": "backend"}},
                        }],
                        "ports": [{"protocol": "TCP", "port": 80}],
                    },
                    {
                        "to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                    },
                ],
            }),
        ),
    }
}

/// The spec of the admitted request both benchmarks send: a new policy in
/// `database` allowing ingress from backend's workers on TCP/5432.
pub fn backend_workers_to_database() -> Value {
    json!({
        "podSelector": {"matchLabels": {"app": "database"}},
        "policyTypes": ["Ingress"],
        "ingress": [{
            "from": [{
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "backend"}},
                "podSelector": {"matchLabels": {"app": "worker"}},
            }],
            "ports": [{"protocol": "TCP", "port": 5432}],
        }],
    })
}

/// The spec of the refused request both benchmarks send: a new policy in
/// `database` allowing ingress from namespace `name=frontend` on TCP/5432.
pub fn frontend_to_database() -> Value {
    json!({
        "podSelector": {"matchLabels": {"app": "database"}},
        "policyTypes": ["Ingress"],
        "ingress": [{
            "from": [{"namespaceSelector": {"matchLabels": {"name": "frontend"}}}],
            "ports": [{"protocol": "TCP", "port": 5432}],
        }],
    })
}
