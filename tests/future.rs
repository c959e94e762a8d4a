//! Pods created later (`engine::future`), judged on small hand-checked
//! worlds through the public API.

use tierguard::engine::ports::Protocol;
use tierguard::engine::reach::{Decision, Verdict, evaluate};
use tierguard::world::World;

/// `db` admits `app=api` pods of `api` on 5432 (named `pg` on the db
/// pod); `api`'s pods labelled `app=api` may reach `db`, others nothing.
const WORLD: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: api}
---
apiVersion: v1
kind: Namespace
metadata: {name: db}
---
apiVersion: v1
kind: Pod
metadata: {name: pg, namespace: db, labels: {app: pg}}
spec: {containers: [{name: c, ports: [{containerPort: 5432, name: pg}]}]}
status: {podIP: 10.0.0.9}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: api, labels: {app: api}}
spec: {containers: [{name: c}]}
status: {podIP: 10.0.0.8}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-api, namespace: db}
spec:
  podSelector: {}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: api}}, podSelector: {matchLabels: {app: api}}}]
    ports: [{port: pg}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress, namespace: api}
spec:
  podSelector: {matchExpressions: [{key: app, operator: Exists}]}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: db}}}]
  - to: [{ipBlock: {cidr: 10.0.0.0/8}}]
    ports: [{port: 53, protocol: UDP}]
";

/// (from, to, proto, port, decision, allowed example, denied example,
/// whether the allowed example needs more than its labels)
type Case = (
    &'static str,
    &'static str,
    Protocol,
    u16,
    Decision,
    Option<&'static str>,
    Option<&'static str>,
    bool,
);

fn judged(src: &str, dst: &str, proto: Protocol, port: u16) -> Verdict {
    let w = World::from_text(WORLD, "w").expect("loads");
    let (s, _) = w.endpoint(src, "from").expect("src");
    let (d, _) = w.endpoint(dst, "to").expect("dst");
    evaluate(&w.state, &s, &d, proto, port)
}

#[test]
fn decisions_and_examples() {
    use Decision::*;
    let table: &[Case] = &[
        // Only api pods labelled app=api pass db's ingress.
        (
            "api/*",
            "db/pg",
            Protocol::Tcp,
            5432,
            DependsOnPod,
            Some("app=api"),
            Some("no label app"),
            false,
        ),
        // The named port resolves on db/pg: 5433 is no one's.
        (
            "api/*",
            "db/pg",
            Protocol::Tcp,
            5433,
            Denied,
            None,
            None,
            false,
        ),
        // db's pods created later are isolated and admit api pods on
        // their port named pg, if they bind it.
        (
            "api/web",
            "db/*",
            Protocol::Tcp,
            5432,
            DependsOnPod,
            Some("any labels"),
            Some("any labels"),
            true,
        ),
        // api's ingress is open: every pod created there admits db/pg.
        (
            "db/pg",
            "api/*",
            Protocol::Tcp,
            80,
            Allowed,
            None,
            None,
            false,
        ),
        // Egress to 10.0.0.5 on UDP/53: by ipBlock for pods with an app
        // label, and pods without one are not isolated.
        (
            "api/*",
            "10.0.0.5",
            Protocol::Udp,
            53,
            Allowed,
            None,
            None,
            false,
        ),
        // TCP/80 to that host: only pods without an app label.
        (
            "api/*",
            "10.0.0.5",
            Protocol::Tcp,
            80,
            DependsOnPod,
            Some("no label app"),
            Some("app=<any other value>"),
            false,
        ),
    ];
    for &(src, dst, proto, port, want, allowed, denied, also) in table {
        let v = judged(src, dst, proto, port);
        let n = v.future.clone().expect("a note");
        let what = format!("{src} -> {dst} {proto}/{port}: {n}");
        assert_eq!(v.decision, want, "{what}");
        assert_eq!(v.allowed, want == Allowed, "{what}");
        if want == DependsOnPod {
            assert_eq!(n.allowed_with.as_deref(), allowed, "{what}");
            assert_eq!(n.denied_with.as_deref(), denied, "{what}");
            assert_eq!(n.if_address_port_or_node, also, "{what}");
        }
    }
}

#[test]
fn two_pods_created_later_are_not_judged_against_each_other() {
    let v = judged("api/*", "db/*", Protocol::Tcp, 5432);
    assert_eq!(v.decision, Decision::DependsOnPod);
    let why = v.future.and_then(|n| n.undecided).expect("undecided");
    assert!(why.contains("both ends are pods created later"), "{why}");
}

#[test]
fn a_namespace_without_a_manifest_is_refused() {
    let w = World::from_text(WORLD, "w").expect("loads");
    let e = w
        .endpoint("nowhere/*", "from")
        .expect_err("unknown")
        .to_string();
    assert!(
        e.contains("namespace nowhere is not in the manifests"),
        "{e}"
    );
}

#[test]
fn blocks_of_several_peers_that_hold_every_address_allow_for_certain() {
    // web's egress reaches 0.0.0.0/0 and ::/0 (two peers) on TCP/443: any
    // pod created in `ext` (no policies) is reached, whatever its address.
    let world = "
apiVersion: v1
kind: Namespace
metadata: {name: api}
---
apiVersion: v1
kind: Namespace
metadata: {name: ext}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: api, labels: {app: api}}
spec: {containers: [{name: c}]}
status: {podIP: 10.0.0.8}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: anywhere, namespace: api}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 0.0.0.0/0}}, {ipBlock: {cidr: '::/0'}}]
    ports: [{port: 443}]
";
    let w = World::from_text(world, "w").expect("loads");
    let (s, _) = w.endpoint("api/web", "from").expect("src");
    let (d, _) = w.endpoint("ext/*", "to").expect("dst");
    let v = evaluate(&w.state, &s, &d, Protocol::Tcp, 443);
    assert_eq!(v.decision, Decision::Allowed, "{:?}", v.future);
    let v = evaluate(&w.state, &s, &d, Protocol::Tcp, 80);
    assert_eq!(v.decision, Decision::Denied, "{:?}", v.future);
}
