//! ClusterNetworkPolicy (and AdminNetworkPolicy / BaselineAdminNetworkPolicy)
//! semantics, rule by rule of the API reference, through `tierguard query`'s
//! evaluator; the upstream conformance suite's expectations
//! (network-policy-api v0.3.0 `conformance/tests`) as cases over its own
//! fixture; the model's validation; and the isolation check's findings.

use tierguard::engine::isolation::{Cause, Checker, Note};
use tierguard::engine::ports::Protocol;
use tierguard::engine::reach::{Decision, Endpoint, evaluate};
use tierguard::model::isolationpolicy;
use tierguard::world::World;

use Protocol::{Sctp, Tcp, Udp};

/// The conformance suite's houses: one namespace each, two pods each with
/// the suite's ports (TCP 80 `web`, TCP 8080, UDP 53 `dns`, UDP 5353, SCTP
/// 9003, 9005).
fn houses() -> String {
    let mut out = String::new();
    let houses = [
        ("gryffindor", "harry-potter", "10.0.1"),
        ("slytherin", "draco-malfoy", "10.0.2"),
        ("hufflepuff", "cedric-diggory", "10.0.3"),
        ("ravenclaw", "luna-lovegood", "10.0.4"),
    ];
    for (house, pod, net) in houses {
        let ns = format!("network-policy-conformance-{house}");
        out.push_str(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}, labels: {{conformance-house: {house}}}}}\n---\n"
        ));
        for i in 0..2 {
            out.push_str(&format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}-{i}, namespace: {ns}, labels: {{conformance-house: {house}, statefulset.kubernetes.io/pod-name: {pod}-{i}}}}}\n\
                 spec: {{containers: [{{name: c, image: agnhost, ports: [{{name: web, containerPort: 80}}, {{containerPort: 8080}}, {{name: dns, containerPort: 53, protocol: UDP}}, {{containerPort: 5353, protocol: UDP}}, {{containerPort: 9003, protocol: SCTP}}, {{containerPort: 9005, protocol: SCTP}}]}}]}}\n\
                 status: {{podIP: {net}.{}}}\n---\n",
                i + 1
            ));
        }
    }
    out
}

/// `harry-0` → `network-policy-conformance-gryffindor/harry-potter-0`.
fn pod_ref(short: &str) -> String {
    let (name, i) = short.split_once('-').expect("name-index");
    let (house, full) = match name {
        "harry" => ("gryffindor", "harry-potter"),
        "draco" => ("slytherin", "draco-malfoy"),
        "cedric" => ("hufflepuff", "cedric-diggory"),
        "luna" => ("ravenclaw", "luna-lovegood"),
        other => panic!("unknown pod {other}"),
    };
    format!("network-policy-conformance-{house}/{full}-{i}")
}

fn ns(house: &str) -> String {
    format!("{{matchLabels: {{kubernetes.io/metadata.name: network-policy-conformance-{house}}}}}")
}

fn world(policies: &str) -> World {
    let text = format!("{}{policies}", houses());
    World::from_text(&text, "case").unwrap_or_else(|e| panic!("world: {e:#}"))
}

fn decide(w: &World, from: &str, to: &str, proto: Protocol, port: u16) -> Decision {
    let src = pod_ref(from);
    let dst = pod_ref(to);
    let (sn, sp) = src.split_once('/').expect("ns/name");
    let (dn, dp) = dst.split_once('/').expect("ns/name");
    let a = w.find_pod(sn, sp).expect("source pod");
    let b = w.find_pod(dn, dp).expect("destination pod");
    evaluate(&w.state, &Endpoint::Pod(a), &Endpoint::Pod(b), proto, port).decision
}

struct Case {
    name: &'static str,
    policies: String,
    /// (from, to, proto, port, allowed)
    expect: Vec<(&'static str, &'static str, Protocol, u16, bool)>,
}

fn cnp(name: &str, tier: &str, priority: u32, subject: &str, rules: &str) -> String {
    format!(
        "apiVersion: policy.networking.k8s.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {{name: {name}}}\n\
         spec: {{tier: {tier}, priority: {priority}, subject: {subject}, {rules}}}\n---\n"
    )
}

/// The suite's rule-ordering template for ingress into gryffindor (TCP):
/// Accept, Deny, Pass all of ravenclaw; Deny, Pass slytherin at TCP 80;
/// Accept hufflepuff at TCP 80; Deny hufflepuff.
fn ingress_tcp(order: [usize; 7]) -> String {
    let rules = [
        format!(
            "{{name: allow-from-ravenclaw-everything, action: Accept, from: [{{namespaces: {}}}]}}",
            ns("ravenclaw")
        ),
        format!(
            "{{name: deny-from-ravenclaw-everything, action: Deny, from: [{{namespaces: {}}}]}}",
            ns("ravenclaw")
        ),
        format!(
            "{{name: pass-from-ravenclaw-everything, action: Pass, from: [{{namespaces: {}}}]}}",
            ns("ravenclaw")
        ),
        format!(
            "{{name: deny-from-slytherin-at-port-80, action: Deny, from: [{{namespaces: {}}}], protocols: [{{tcp: {{destinationPort: {{number: 80}}}}}}]}}",
            ns("slytherin")
        ),
        format!(
            "{{name: pass-from-slytherin-at-port-80, action: Pass, from: [{{namespaces: {}}}], protocols: [{{tcp: {{destinationPort: {{number: 80}}}}}}]}}",
            ns("slytherin")
        ),
        format!(
            "{{name: allow-from-hufflepuff-at-port-80, action: Accept, from: [{{namespaces: {}}}], protocols: [{{tcp: {{destinationPort: {{number: 80}}}}}}]}}",
            ns("hufflepuff")
        ),
        format!(
            "{{name: deny-from-hufflepuff-everything-else, action: Deny, from: [{{namespaces: {}}}]}}",
            ns("hufflepuff")
        ),
    ];
    let ordered: Vec<&str> = order.iter().map(|i| rules[*i].as_str()).collect();
    cnp(
        "ingress-tcp",
        "Admin",
        3,
        &format!("{{namespaces: {}}}", ns("gryffindor")),
        &format!("ingress: [{}]", ordered.join(", ")),
    )
}

fn cases() -> Vec<Case> {
    let gryffindor_pods = "{pods: {namespaceSelector: {matchLabels: {conformance-house: gryffindor}}, podSelector: {matchLabels: {conformance-house: gryffindor}}}}";
    let slytherin_peer = "{pods: {namespaceSelector: {matchLabels: {conformance-house: slytherin}}, podSelector: {matchLabels: {conformance-house: slytherin}}}}";
    vec![
        Case {
            name: "CNPAdminTierIngressTCP S1/S2/S5: the first matching rule decides; no match is allowed",
            policies: ingress_tcp([0, 1, 2, 3, 4, 5, 6]),
            expect: vec![
                ("luna-0", "harry-0", Tcp, 80, true),
                ("luna-1", "harry-0", Tcp, 8080, true),
                ("cedric-0", "harry-1", Tcp, 80, true),
                ("cedric-1", "harry-1", Tcp, 8080, false),
                ("draco-0", "harry-0", Tcp, 80, false),
                ("draco-1", "harry-0", Tcp, 8080, true),
                // S3: no egress rules, egress unaffected.
                ("harry-0", "luna-0", Tcp, 80, true),
            ],
        },
        Case {
            name: "CNPAdminTierIngressTCP S4: Deny first",
            policies: ingress_tcp([1, 0, 2, 3, 4, 5, 6]),
            expect: vec![("luna-0", "harry-1", Tcp, 80, false), ("luna-1", "harry-1", Tcp, 8080, false)],
        },
        Case {
            name: "CNPAdminTierIngressTCP S6/S7: Pass with nothing after it is allowed",
            policies: ingress_tcp([2, 0, 1, 4, 3, 5, 6]),
            expect: vec![
                ("luna-0", "harry-0", Tcp, 80, true),
                ("luna-1", "harry-0", Tcp, 8080, true),
                ("draco-0", "harry-0", Tcp, 80, true),
                ("draco-1", "harry-0", Tcp, 8080, true),
            ],
        },
        Case {
            name: "CNPAdminTierPriorityField: lower priority first; Pass reaches the Baseline tier",
            policies: format!(
                "{}{}{}",
                cnp("priority-50-example", "Admin", 50, gryffindor_pods, &format!("ingress: [{{action: Deny, from: [{slytherin_peer}]}}], egress: [{{action: Deny, to: [{slytherin_peer}]}}]")),
                cnp("old-priority-60-new-priority-40-example", "Admin", 60, gryffindor_pods, &format!("ingress: [{{action: Pass, from: [{slytherin_peer}]}}], egress: [{{action: Pass, to: [{slytherin_peer}]}}]")),
                cnp("default", "Baseline", 10, gryffindor_pods, &format!("ingress: [{{action: Accept, from: [{slytherin_peer}]}}], egress: [{{action: Accept, to: [{slytherin_peer}]}}]")),
            ),
            expect: vec![
                ("draco-0", "harry-0", Tcp, 80, false),
                ("draco-1", "harry-0", Tcp, 8080, false),
                ("harry-0", "draco-0", Tcp, 80, false),
            ],
        },
        Case {
            name: "CNPAdminTierPriorityField S3: priority 40 passes before the Deny at 50",
            policies: format!(
                "{}{}{}",
                cnp("priority-50-example", "Admin", 50, gryffindor_pods, &format!("ingress: [{{action: Deny, from: [{slytherin_peer}]}}], egress: [{{action: Deny, to: [{slytherin_peer}]}}]")),
                cnp("old-priority-60-new-priority-40-example", "Admin", 40, gryffindor_pods, &format!("ingress: [{{action: Pass, from: [{slytherin_peer}]}}], egress: [{{action: Pass, to: [{slytherin_peer}]}}]")),
                cnp("default", "Baseline", 10, gryffindor_pods, &format!("ingress: [{{action: Accept, from: [{slytherin_peer}]}}], egress: [{{action: Accept, to: [{slytherin_peer}]}}]")),
            ),
            expect: vec![
                ("draco-0", "harry-0", Tcp, 80, true),
                ("draco-1", "harry-0", Tcp, 8080, true),
                ("harry-0", "draco-0", Tcp, 80, true),
                ("harry-1", "draco-0", Tcp, 8080, true),
            ],
        },
        Case {
            name: "CNPAdminTierIntegration S3: Pass leaves the pod to its NetworkPolicy",
            policies: format!(
                "{}{}",
                cnp("pass-example", "Admin", 10, "{namespaces: {matchLabels: {conformance-house: gryffindor}}}", "ingress: [{action: Pass, from: [{namespaces: {matchLabels: {conformance-house: slytherin}}}]}]"),
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: allow-gress-from-to-slytherin-to-gryffindor, namespace: network-policy-conformance-gryffindor}\n\
                 spec: {podSelector: {}, policyTypes: [Ingress, Egress], ingress: [{from: [{namespaceSelector: {matchLabels: {conformance-house: slytherin}}}]}], egress: [{to: [{namespaceSelector: {matchLabels: {conformance-house: slytherin}}}]}]}\n---\n",
            ) + &cnp("default", "Baseline", 10, "{namespaces: {matchLabels: {conformance-house: gryffindor}}}", "ingress: [{action: Deny, from: [{namespaces: {matchLabels: {conformance-house: slytherin}}}]}]"),
            expect: vec![
                ("draco-0", "harry-0", Tcp, 80, true),
                ("draco-1", "harry-0", Tcp, 8080, true),
                // The NetworkPolicy isolates egress too: only slytherin is allowed.
                ("harry-0", "luna-0", Tcp, 80, false),
            ],
        },
        Case {
            name: "CNPAdminTierIntegration S5: without the NetworkPolicy the Baseline Deny decides",
            policies: cnp("pass-example", "Admin", 10, "{namespaces: {matchLabels: {conformance-house: gryffindor}}}", "ingress: [{action: Pass, from: [{namespaces: {matchLabels: {conformance-house: slytherin}}}]}]")
                + &cnp("default", "Baseline", 10, "{namespaces: {matchLabels: {conformance-house: gryffindor}}}", "ingress: [{action: Deny, from: [{namespaces: {matchLabels: {conformance-house: slytherin}}}]}]"),
            expect: vec![("draco-0", "harry-0", Tcp, 80, false), ("draco-1", "harry-0", Tcp, 8080, false)],
        },
        Case {
            name: "CNPAdminTierEgressInlineCIDRPeers: networks match pods too",
            policies: cnp("inline-cidr-as-peers-example", "Admin", 85, gryffindor_pods, &format!("egress: [{{action: Accept, to: [{slytherin_peer}]}}, {{action: Deny, to: [{{networks: [0.0.0.0/0, '::/0']}}]}}]")),
            expect: vec![
                ("harry-1", "luna-0", Tcp, 80, false),
                ("harry-1", "cedric-0", Udp, 53, false),
                ("harry-1", "draco-0", Sctp, 9003, true),
            ],
        },
        Case {
            name: "CNPAdminTierEgressInlineCIDRPeers S2: a /32 Accept before the Deny",
            policies: cnp("inline-cidr-as-peers-example", "Admin", 85, gryffindor_pods, &format!("egress: [{{action: Accept, to: [{{networks: [10.0.4.1/32, 10.0.3.1/32]}}]}}, {{action: Accept, to: [{slytherin_peer}]}}, {{action: Deny, to: [{{networks: [0.0.0.0/0, '::/0']}}]}}]")),
            expect: vec![
                ("harry-1", "luna-0", Tcp, 80, true),
                ("harry-1", "cedric-0", Udp, 53, true),
                ("harry-1", "luna-1", Tcp, 80, false),
                ("harry-1", "cedric-1", Sctp, 9003, false),
            ],
        },
        Case {
            name: "CNPAdminTierPodSelector: subject and peers by pod labels, namespaceSelector omitted = every namespace",
            policies: cnp(
                "pod-selector-rules",
                "Admin",
                20,
                "{pods: {podSelector: {matchLabels: {conformance-house: gryffindor}}}}",
                "egress: [{action: Accept, to: [{pods: {namespaceSelector: {matchLabels: {conformance-house: ravenclaw}}, podSelector: {matchLabels: {statefulset.kubernetes.io/pod-name: luna-lovegood-0}}}}], protocols: [{tcp: {destinationPort: {number: 80}}}]}, {action: Deny, to: [{pods: {podSelector: {matchLabels: {conformance-house: ravenclaw}}}}]}], \
                 ingress: [{action: Accept, from: [{pods: {namespaceSelector: {matchLabels: {conformance-house: slytherin}}, podSelector: {matchLabels: {statefulset.kubernetes.io/pod-name: draco-malfoy-0}}}}]}, {action: Deny, from: [{pods: {podSelector: {matchLabels: {conformance-house: slytherin}}}}]}]",
            ),
            expect: vec![
                ("harry-0", "luna-0", Tcp, 8080, false),
                ("harry-0", "luna-0", Tcp, 80, true),
                ("harry-1", "luna-1", Tcp, 80, false),
                ("draco-1", "harry-1", Tcp, 80, false),
                ("draco-0", "harry-0", Tcp, 80, true),
                // Not a subject: draco's own egress is untouched.
                ("draco-0", "luna-1", Tcp, 80, true),
            ],
        },
        Case {
            name: "CNPAdminTierPortRange: ranges are inclusive",
            policies: cnp("port-range-rules", "Admin", 9, &format!("{{namespaces: {}}}", ns("gryffindor")),
                &format!("egress: [{{action: Accept, to: [{{namespaces: {}}}], protocols: [{{tcp: {{destinationPort: {{range: {{start: 80, end: 8080}}}}}}}}]}}, {{action: Accept, to: [{{namespaces: {}}}], protocols: [{{udp: {{destinationPort: {{range: {{start: 53, end: 5353}}}}}}}}]}}, {{action: Deny, to: [{{namespaces: {{matchExpressions: [{{key: conformance-house, operator: Exists}}]}}}}]}}]", ns("ravenclaw"), ns("hufflepuff"))),
            expect: vec![
                ("harry-0", "luna-0", Tcp, 80, true),
                ("harry-0", "luna-0", Tcp, 8080, true),
                ("harry-1", "luna-0", Udp, 53, false),
                ("harry-0", "cedric-0", Udp, 5353, true),
                ("harry-1", "cedric-0", Tcp, 80, false),
            ],
        },
        Case {
            name: "CNPAdminTierSamePriority: disjoint policies at one priority all apply",
            policies: cnp("same-priority-gryffindor-slytherin", "Admin", 15, &format!("{{namespaces: {}}}", ns("gryffindor")), &format!("ingress: [{{action: Deny, from: [{{namespaces: {}}}], protocols: [{{tcp: {{destinationPort: {{number: 80}}}}}}]}}]", ns("slytherin")))
                + &cnp("same-priority-gryffindor-hufflepuff", "Admin", 15, &format!("{{namespaces: {}}}", ns("gryffindor")), &format!("ingress: [{{action: Deny, from: [{{namespaces: {}}}], protocols: [{{tcp: {{destinationPort: {{number: 80}}}}}}]}}]", ns("hufflepuff"))),
            expect: vec![
                ("draco-0", "harry-0", Tcp, 80, false),
                ("cedric-0", "harry-0", Tcp, 80, false),
                ("draco-0", "harry-0", Tcp, 8080, true),
                ("luna-0", "harry-0", Tcp, 80, true),
            ],
        },
        Case {
            name: "CNPAdminTierIngressNamedPort: a named port matches the container port of that name, on its protocol",
            policies: cnp("named", "Admin", 4, &format!("{{namespaces: {}}}", ns("hufflepuff")), &format!("ingress: [{{action: Accept, from: [{{namespaces: {}}}], protocols: [{{destinationNamedPort: dns}}]}}, {{action: Deny, from: [{{namespaces: {}}}]}}]", ns("gryffindor"), ns("gryffindor"))),
            expect: vec![
                ("harry-0", "cedric-1", Udp, 53, true),
                ("harry-1", "cedric-1", Udp, 5353, false),
                ("harry-1", "cedric-1", Tcp, 53, false),
            ],
        },
        Case {
            name: "AdminNetworkPolicy and BaselineAdminNetworkPolicy: Allow, ports, the baseline after NetworkPolicies",
            policies: "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: a}\n\
                 spec: {priority: 3, subject: {namespaces: {matchLabels: {conformance-house: gryffindor}}}, ingress: [{action: Allow, from: [{namespaces: {matchLabels: {conformance-house: ravenclaw}}}], ports: [{portNumber: {port: 80}}, {portRange: {protocol: UDP, start: 53, end: 53}}]}]}\n---\n\
                 apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {name: default}\n\
                 spec: {subject: {namespaces: {}}, ingress: [{action: Deny, from: [{namespaces: {}}]}]}\n---\n".to_string(),
            expect: vec![
                ("luna-0", "harry-0", Tcp, 80, true),
                ("luna-0", "harry-0", Udp, 53, true),
                ("luna-0", "harry-0", Tcp, 8080, false),
                ("harry-0", "draco-0", Tcp, 80, false),
            ],
        },
    ]
}

#[test]
fn cluster_policy_semantics_and_the_conformance_suites_expectations() {
    for case in cases() {
        let w = world(&case.policies);
        for (from, to, proto, port, allowed) in &case.expect {
            let d = decide(&w, from, to, *proto, *port);
            let want = if *allowed {
                Decision::Allowed
            } else {
                Decision::Denied
            };
            assert_eq!(d, want, "{}: {from} -> {to} {proto}/{port}", case.name);
        }
    }
}

#[test]
fn the_walkthrough_names_tier_policy_priority_and_rule() {
    let w = world(&ingress_tcp([0, 1, 2, 3, 4, 5, 6]));
    let src = w
        .find_pod("network-policy-conformance-hufflepuff", "cedric-diggory-1")
        .expect("pod");
    let dst = w
        .find_pod("network-policy-conformance-gryffindor", "harry-potter-1")
        .expect("pod");
    let v = evaluate(
        &w.state,
        &Endpoint::Pod(src),
        &Endpoint::Pod(dst),
        Tcp,
        8080,
    );
    let ingress = v.ingress.expect("ingress side");
    let by = ingress.decided_by.expect("a rule decides");
    assert_eq!(
        by,
        "ClusterNetworkPolicy ingress-tcp (Admin tier, priority 3) ingress[6] \"deny-from-hufflepuff-everything-else\" Deny"
    );
    assert!(
        ingress.tiers[0].starts_with("Admin tier: "),
        "{:?}",
        ingress.tiers
    );
    // The egress side: no policy applies in any tier.
    let egress = v.egress.expect("egress side");
    assert_eq!(
        egress.tiers,
        [
            "Admin tier: no policy applies",
            "NetworkPolicy tier: no NetworkPolicy isolates the pod",
            "Baseline tier: no policy applies",
            "no tier decided: allowed"
        ]
    );
}

#[test]
fn an_unknown_address_that_a_deny_may_match_leaves_the_verdict_open() {
    let w = world(
        &(cnp(
            "deny-net",
            "Admin",
            1,
            &format!("{{namespaces: {}}}", ns("gryffindor")),
            "egress: [{action: Deny, to: [{networks: [192.0.2.0/24]}]}]",
        )),
    );
    let src = w
        .find_pod("network-policy-conformance-gryffindor", "harry-potter-0")
        .expect("pod");
    let v = evaluate(&w.state, &Endpoint::Pod(src), &Endpoint::Outside, Tcp, 443);
    assert_eq!(v.decision, Decision::DependsOnAddress);
    let v = evaluate(
        &w.state,
        &Endpoint::Pod(src),
        &Endpoint::External("192.0.2.9".parse().expect("ip")),
        Tcp,
        443,
    );
    assert_eq!(v.decision, Decision::Denied);
    let v = evaluate(
        &w.state,
        &Endpoint::Pod(src),
        &Endpoint::External("198.51.100.9".parse().expect("ip")),
        Tcp,
        443,
    );
    assert_eq!(v.decision, Decision::Allowed);
}

#[test]
fn pods_created_later_are_not_decided_under_cluster_tiers() {
    // Not judged tier by tier yet: said so, never a verdict that ignores the
    // tiers (here the Admin Deny would make "allowed" wrong).
    let w = world(&cnp(
        "deny-all",
        "Admin",
        1,
        &format!("{{namespaces: {}}}", ns("gryffindor")),
        "ingress: [{action: Deny, from: [{namespaces: {}}]}]",
    ));
    let src = w
        .find_pod("network-policy-conformance-slytherin", "draco-malfoy-0")
        .expect("pod");
    let v = evaluate(
        &w.state,
        &Endpoint::Pod(src),
        &Endpoint::Future {
            namespace: "network-policy-conformance-gryffindor",
        },
        Tcp,
        80,
    );
    assert!(!v.allowed);
    assert_eq!(v.decision, Decision::DependsOnPod);
    let why = v.future.and_then(|f| f.undecided).unwrap_or_default();
    assert!(why.contains("not yet judged tier by tier"), "{why}");
}

// === the model: validation with field paths ===

fn errors(doc: &str) -> String {
    match World::from_text(doc, "bad.yaml") {
        Ok(_) => String::new(),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn invalid_cluster_policies_are_refused_naming_the_field() {
    let head = "apiVersion: policy.networking.k8s.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {name: x}\n";
    let table: &[(&str, &str)] = &[
        (
            "spec: {priority: 1, subject: {namespaces: {}}}",
            "spec.tier: Required value",
        ),
        (
            "spec: {tier: Middle, priority: 1, subject: {namespaces: {}}}",
            "spec.tier: Unsupported value: \"Middle\"",
        ),
        (
            "spec: {tier: Admin, priority: 1001, subject: {namespaces: {}}}",
            "spec.priority: Invalid value: 1001",
        ),
        (
            "spec: {tier: Admin, priority: 1, subject: {}}",
            "spec.subject: Invalid value: exactly one of namespaces, pods",
        ),
        (
            "spec: {tier: Admin, priority: 1, subject: {namespaces: {}, pods: {podSelector: {}}}}",
            "spec.subject: Invalid value: only one of",
        ),
        (
            "spec: {tier: Admin, priority: 1, subject: {namespaces: {}}, ingress: [{action: Allow, from: [{namespaces: {}}]}]}",
            "spec.ingress[0].action: Unsupported value: \"Allow\"",
        ),
        (
            "spec: {tier: Admin, priority: 1, subject: {namespaces: {}}, ingress: [{action: Deny, from: []}]}",
            "spec.ingress[0].from: Invalid value: must have at least 1 item",
        ),
        (
            "spec: {tier: Admin, priority: 1, subject: {namespaces: {}}, ingress: [{action: Deny, from: [{networks: [10.0.0.0/8]}]}]}",
            "spec.ingress[0].from[0].networks: Invalid value: unknown field",
        ),
        (
            "spec: {tier: Admin, priority: 1, subject: {namespaces: {}}, egress: [{action: Deny, to: [{networks: [10.1.2.3/8]}]}]}",
            "spec.egress[0].to[0].networks[0]: Invalid value: \"10.1.2.3/8\": Invalid CIDR format provided",
        ),
        (
            "spec: {tier: Admin, priority: 1, subject: {namespaces: {}}, egress: [{action: Deny, to: [{namespaces: {}}], protocols: [{tcp: {destinationPort: {range: {start: 80, end: 80}}}}]}]}",
            "spec.egress[0].protocols[0].tcp.destinationPort.range: Invalid value: Start port must be less than End port",
        ),
        (
            "spec: {tier: Admin, priority: 1, subject: {namespaces: {}}, egress: [{action: Deny, to: [{namespaces: {}}], protocols: [{tcp: {}}]}]}",
            "spec.egress[0].protocols[0].tcp: Invalid value: must have at least 1 property",
        ),
        (
            "spec: {tier: Admin, priority: 1, subject: {namespaces: {}}, egress: [{action: Accept, to: [{networks: [10.0.0.0/8]}], protocols: [{destinationNamedPort: web}]}]}",
            "spec.egress[0]: Invalid value: networks/nodes/domainNames peer cannot be set with namedPorts",
        ),
        (
            "spec: {tier: Admin, priority: 1, subject: {namespaces: {}}, egress: [{action: Deny, to: [{domainNames: [example.com]}]}]}",
            "spec.egress[0].to[0].domainNames: Forbidden: domainNames is only supported for Accept rules",
        ),
        (
            "spec: {tier: Admin, priority: 1, subject: {namespaces: {matchLabels: {'bad key!': x}}}}",
            "spec.subject.namespaces.matchLabels",
        ),
        (
            "spec: {tier: Admin, priority: 1, subject: {namespaces: {}}, extra: 1}",
            "spec.extra: Invalid value: unknown field",
        ),
    ];
    for (spec, want) in table {
        let got = errors(&format!("{head}{spec}\n"));
        assert!(got.contains(want), "{spec}\nwant: {want}\ngot: {got}");
        assert!(got.contains("bad.yaml"), "names the file: {got}");
        assert!(
            got.contains("ClusterNetworkPolicy x"),
            "names the object: {got}"
        );
    }
    let banp = "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {name: other}\nspec: {subject: {namespaces: {}}, ingress: [{action: Pass, from: [{namespaces: {}}]}]}\n";
    let got = errors(banp);
    assert!(
        got.contains("metadata.name: Invalid value: \"other\""),
        "{got}"
    );
    assert!(
        got.contains("spec.ingress[0].action: Unsupported value: \"Pass\""),
        "{got}"
    );
    // An AdminNetworkPolicy range may be a single port (no start < end rule in v1alpha1).
    let anp = "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: a}\nspec: {priority: 1, subject: {namespaces: {}}, ingress: [{action: Allow, from: [{namespaces: {}}], ports: [{portRange: {start: 80, end: 80}}]}]}\n";
    assert_eq!(errors(anp), "");
}

// === the isolation check ===

const ISO: &str = "apiVersion: tierguard.io/v1alpha1\nkind: IsolationPolicy\nmetadata: {name: houses}\nspec:\n  tiers:\n  - {name: front, namespaces: [network-policy-conformance-gryffindor]}\n  - {name: data, namespaces: [network-policy-conformance-slytherin]}\n  baseline: {dns: {to: none}}\n  flows: []\n";

/// Every flow closed: a Baseline Deny for pods and networks, and a
/// NetworkPolicy default-deny for ingress in both tier namespaces (a
/// ClusterNetworkPolicy's ingress peers are pods only, so hosts outside the
/// cluster are closed by NetworkPolicy).
fn deny_all_baseline() -> String {
    let mut out = String::new();
    for house in ["gryffindor", "slytherin"] {
        out.push_str(&format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: deny-ingress, namespace: network-policy-conformance-{house}}}\nspec: {{podSelector: {{}}, policyTypes: [Ingress]}}\n---\n"
        ));
    }
    out + &cnp(
        "deny-all",
        "Baseline",
        1000,
        "{namespaces: {}}",
        "ingress: [{action: Deny, from: [{namespaces: {}}]}], egress: [{action: Deny, to: [{namespaces: {}}, {networks: [0.0.0.0/0, '::/0']}]}]",
    )
}

#[test]
fn an_admin_accept_is_reported_with_its_tier_priority_and_rule() {
    let iso = isolationpolicy::parse(ISO, "iso").expect("iso");
    let w = world(
        &(deny_all_baseline()
            + &cnp(
                "open-data",
                "Admin",
                7,
                &format!("{{namespaces: {}}}", ns("slytherin")),
                &format!(
                    "ingress: [{{name: from-front, action: Accept, from: [{{namespaces: {}}}], protocols: [{{tcp: {{destinationPort: {{number: 5432}}}}}}]}}]",
                    ns("gryffindor")
                ),
            )),
    );
    let report = Checker::new(&iso, &w.state).report().expect("budget");
    assert_eq!(report.flows.len(), 1, "{:#?}", report.flows);
    let b = &report.flows[0];
    assert_eq!(b.namespace, "network-policy-conformance-slytherin");
    assert_eq!(b.ports.to_string(), "TCP/5432");
    match &b.causes[0].0 {
        Cause::ClusterRule { rule, .. } => assert_eq!(
            rule.to_string(),
            "ClusterNetworkPolicy open-data (Admin tier, priority 7) ingress[0] \"from-front\" Accept"
        ),
        other => panic!("cause: {other:?}"),
    }
}

#[test]
fn an_admin_deny_shadows_a_networkpolicy_that_would_open_the_flow() {
    let iso = isolationpolicy::parse(ISO, "iso").expect("iso");
    let allow_all = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: allow-all, namespace: network-policy-conformance-slytherin}\nspec: {podSelector: {}, ingress: [{}]}\n---\n";
    let deny_front = cnp(
        "guard",
        "Admin",
        0,
        &format!("{{namespaces: {}}}", ns("slytherin")),
        &format!(
            "ingress: [{{action: Deny, from: [{{namespaces: {}}}]}}]",
            ns("gryffindor")
        ),
    );
    let front_to_data = |w: &World| {
        Checker::new(&iso, &w.state)
            .report()
            .expect("budget")
            .flows
            .into_iter()
            .filter(|b| {
                b.namespace == "network-policy-conformance-slytherin" && b.wall.field() == "ingress"
            })
            .filter(|b| format!("{:?}", b.from).contains("front"))
            .count()
    };
    let open = world(&(deny_all_baseline() + allow_all));
    assert_eq!(front_to_data(&open), 1, "the allow-all opens front -> data");
    let shadowed = world(&(deny_all_baseline() + allow_all + &deny_front));
    assert_eq!(front_to_data(&shadowed), 0, "the Admin Deny shadows it");
}

#[test]
fn policies_at_equal_priority_are_judged_in_every_order() {
    let iso = isolationpolicy::parse(ISO, "iso").expect("iso");
    let subject = format!("{{namespaces: {}}}", ns("slytherin"));
    let from_front = format!("[{{namespaces: {}}}]", ns("gryffindor"));
    let w = world(
        &(deny_all_baseline()
            + &cnp(
                "a-deny",
                "Admin",
                5,
                &subject,
                &format!("ingress: [{{action: Deny, from: {from_front}}}]"),
            )
            + &cnp(
                "b-accept",
                "Admin",
                5,
                &subject,
                &format!("ingress: [{{action: Accept, from: {from_front}}}]"),
            )),
    );
    let report = Checker::new(&iso, &w.state).report().expect("budget");
    let b = report
        .flows
        .iter()
        .find(|b| b.namespace == "network-policy-conformance-slytherin")
        .expect("the Accept may come first");
    assert!(
        b.notes
            .iter()
            .any(|n| matches!(n, Note::EqualPriority { priority: 5, .. })),
        "{:?}",
        b.notes
    );
    // Distinct priorities: the Deny first closes it.
    let w = world(
        &(deny_all_baseline()
            + &cnp(
                "a-deny",
                "Admin",
                4,
                &subject,
                &format!("ingress: [{{action: Deny, from: {from_front}}}]"),
            )
            + &cnp(
                "b-accept",
                "Admin",
                5,
                &subject,
                &format!("ingress: [{{action: Accept, from: {from_front}}}]"),
            )),
    );
    let report = Checker::new(&iso, &w.state).report().expect("budget");
    assert!(
        !report
            .flows
            .iter()
            .any(|b| b.namespace == "network-policy-conformance-slytherin"),
        "{:#?}",
        report.flows
    );
    // An AdminNetworkPolicy is not ordered against a ClusterNetworkPolicy,
    // whatever their priorities: its Allow at priority 50 may come before
    // the Deny at 4.
    let anp = format!(
        "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {{name: z-allow}}\n\
         spec: {{priority: 50, subject: {subject}, ingress: [{{action: Allow, from: {from_front}}}]}}\n---\n"
    );
    let w = world(
        &(deny_all_baseline()
            + &cnp(
                "a-deny",
                "Admin",
                4,
                &subject,
                &format!("ingress: [{{action: Deny, from: {from_front}}}]"),
            )
            + &anp),
    );
    let report = Checker::new(&iso, &w.state).report().expect("budget");
    let b = report
        .flows
        .iter()
        .find(|b| b.namespace == "network-policy-conformance-slytherin")
        .expect("the AdminNetworkPolicy's Allow may come first");
    assert!(
        b.notes.iter().any(|n| matches!(n, Note::EqualPriority { priority: 50, others, .. } if others.iter().any(|o| o.contains("a-deny")))),
        "{:?}",
        b.notes
    );
}
