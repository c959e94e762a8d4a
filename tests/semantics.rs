//! NetworkPolicy v1 semantics, rule by rule, through `tierguard query`'s
//! evaluator. Each case is a set of policies over one fixed cluster and the
//! connections it must allow or deny.

use tierguard::engine::ports::Protocol;
use tierguard::engine::reach::{Endpoint, evaluate};
use tierguard::world::World;

/// Namespaces a (team=x) and b (team=y); pods with labels, named ports, IPs.
const CLUSTER: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: a, labels: {team: x}}
---
apiVersion: v1
kind: Namespace
metadata: {name: b, labels: {team: y}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: a, labels: {app: web, role: front}}
spec:
  containers:
  - name: c
    image: x
    ports:
    - {name: http, containerPort: 8080}
    - {name: dns, containerPort: 53, protocol: UDP}
    - {name: sig, containerPort: 7000, protocol: SCTP}
status: {podIP: 10.0.0.1, podIPs: [{ip: 10.0.0.1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: a, labels: {app: db}}
spec: {containers: [{name: c, image: x}]}
status: {podIP: 10.0.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: b, labels: {app: client}}
spec: {containers: [{name: c, image: x}]}
status: {podIP: 10.0.1.1}
---
apiVersion: v1
kind: Pod
metadata: {name: bare, namespace: b}
spec: {containers: [{name: c, image: x}]}
status: {podIPs: [{ip: "fd00::1"}]}
"#;

struct Case {
    name: &'static str,
    policies: &'static str,
    /// (from, to, proto, port, allowed)
    expect: &'static [(&'static str, &'static str, Protocol, u16, bool)],
}

use Protocol::{Sctp, Tcp, Udp};

const CASES: &[Case] = &[
    Case {
        name: "no policy: everything is allowed",
        policies: "",
        expect: &[
            ("b/client", "a/web", Tcp, 80, true),
            ("a/web", "203.0.113.1", Udp, 9, true),
        ],
    },
    Case {
        name: "ingress: [] isolates and allows nothing; pods not selected stay open",
        policies: "metadata: {name: p, namespace: a}\nspec: {podSelector: {matchLabels: {app: web}}, ingress: []}",
        expect: &[
            ("b/client", "a/web", Tcp, 8080, false),
            ("b/client", "a/db", Tcp, 8080, true),
            ("a/web", "b/client", Tcp, 8080, true),
        ],
    },
    Case {
        name: "policyTypes defaults to Ingress (and Egress only with egress rules)",
        policies: "metadata: {name: p, namespace: a}\nspec: {podSelector: {}, egress: [{ports: [{port: 53, protocol: UDP}]}]}",
        expect: &[
            ("b/client", "a/web", Tcp, 80, false),
            ("a/web", "b/client", Udp, 53, true),
            ("a/web", "b/client", Tcp, 80, false),
        ],
    },
    Case {
        name: "explicit policyTypes [Egress] ignores ingress rules and leaves ingress open",
        policies: "metadata: {name: p, namespace: a}\nspec: {podSelector: {}, policyTypes: [Egress], ingress: [{from: [{podSelector: {matchLabels: {app: nobody}}}]}]}",
        expect: &[
            ("b/client", "a/web", Tcp, 80, true),
            ("a/web", "b/client", Tcp, 80, false),
        ],
    },
    Case {
        name: "ingress: [{}] allows everything, outside the cluster included",
        policies: "metadata: {name: p, namespace: a}\nspec: {podSelector: {}, ingress: [{}]}",
        expect: &[
            ("b/client", "a/web", Sctp, 1, true),
            ("198.51.100.7", "a/db", Udp, 5, true),
        ],
    },
    Case {
        name: "policies are a union; a connection needs egress AND ingress",
        policies: "metadata: {name: deny, namespace: a}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: allow-in, namespace: a}\nspec: {podSelector: {matchLabels: {app: db}}, ingress: [{from: [{podSelector: {matchLabels: {app: web}}}]}]}",
        expect: &[
            // db's ingress allows web, but web's egress is isolated by deny.
            ("a/web", "a/db", Tcp, 5432, false),
            // From b, web's egress is not involved: only db's ingress, which allows only web.
            ("b/client", "a/db", Tcp, 5432, false),
        ],
    },
    Case {
        name: "union across policies selecting the same pod",
        policies: "metadata: {name: one, namespace: a}\nspec: {podSelector: {matchLabels: {app: db}}, ingress: [{ports: [{port: 1}]}]}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: two, namespace: a}\nspec: {podSelector: {}, ingress: [{ports: [{port: 2}]}]}",
        expect: &[
            ("b/client", "a/db", Tcp, 1, true),
            ("b/client", "a/db", Tcp, 2, true),
            ("b/client", "a/db", Tcp, 3, false),
            ("b/client", "a/web", Tcp, 1, false),
        ],
    },
    Case {
        name: "absent ports match every port and protocol; a port defaults to TCP",
        policies: "metadata: {name: p, namespace: a}\nspec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {}}]}, {ports: [{port: 80}]}]}",
        expect: &[
            ("b/client", "a/web", Sctp, 9, true),
            ("198.51.100.7", "a/web", Tcp, 80, true),
            ("198.51.100.7", "a/web", Udp, 80, false),
        ],
    },
    Case {
        name: "a protocol alone matches every port of it; endPort ranges; SCTP",
        policies: "metadata: {name: p, namespace: a}\nspec: {podSelector: {}, ingress: [{ports: [{protocol: UDP}, {port: 8000, endPort: 8010}, {protocol: SCTP, port: 7000}]}]}",
        expect: &[
            ("b/client", "a/web", Udp, 65535, true),
            ("b/client", "a/web", Tcp, 8000, true),
            ("b/client", "a/web", Tcp, 8010, true),
            ("b/client", "a/web", Tcp, 8011, false),
            ("b/client", "a/web", Udp, 8005, true),
            ("b/client", "a/web", Sctp, 7000, true),
            ("b/client", "a/web", Sctp, 7001, false),
        ],
    },
    Case {
        name: "podSelector alone selects pods of the policy's namespace only",
        policies: "metadata: {name: p, namespace: a}\nspec: {podSelector: {matchLabels: {app: db}}, ingress: [{from: [{podSelector: {}}]}]}",
        expect: &[
            ("a/web", "a/db", Tcp, 1, true),
            ("b/client", "a/db", Tcp, 1, false),
            ("198.51.100.7", "a/db", Tcp, 1, false),
        ],
    },
    Case {
        name: "namespaceSelector alone selects every pod of matching namespaces; {} is all namespaces but no outside IP",
        policies: "metadata: {name: p, namespace: a}\nspec: {podSelector: {matchLabels: {app: db}}, ingress: [{from: [{namespaceSelector: {matchLabels: {team: y}}}]}]}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: q, namespace: a}\nspec: {podSelector: {matchLabels: {app: web}}, ingress: [{from: [{namespaceSelector: {}}]}]}",
        expect: &[
            ("b/client", "a/db", Tcp, 1, true),
            ("b/bare", "a/db", Tcp, 1, true),
            ("a/web", "a/db", Tcp, 1, false),
            ("a/db", "a/web", Tcp, 1, true),
            ("b/bare", "a/web", Tcp, 1, true),
            ("198.51.100.7", "a/web", Tcp, 1, false),
        ],
    },
    Case {
        name: "namespaceSelector and podSelector in one peer AND; separate peers OR",
        policies: "metadata: {name: and, namespace: a}\nspec: {podSelector: {matchLabels: {app: db}}, ingress: [{from: [{namespaceSelector: {matchLabels: {team: y}}, podSelector: {matchLabels: {app: client}}}]}]}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: or, namespace: a}\nspec: {podSelector: {matchLabels: {app: web}}, ingress: [{from: [{namespaceSelector: {matchLabels: {team: y}}}, {podSelector: {matchLabels: {app: db}}}]}]}",
        expect: &[
            ("b/client", "a/db", Tcp, 1, true),
            ("b/bare", "a/db", Tcp, 1, false),
            ("b/bare", "a/web", Tcp, 1, true),
            ("a/db", "a/web", Tcp, 1, true),
        ],
    },
    Case {
        name: "ipBlock with except; IPv4 never matches IPv6; ipBlock matches pod IPs",
        policies: "metadata: {name: p, namespace: a}\nspec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0, except: [198.51.100.0/24]}}]}]}",
        expect: &[
            ("203.0.113.1", "a/web", Tcp, 1, true),
            ("198.51.100.7", "a/web", Tcp, 1, false),
            ("2001:db8::1", "a/web", Tcp, 1, false),
            ("b/client", "a/web", Tcp, 1, true),
            ("b/bare", "a/web", Tcp, 1, false),
        ],
    },
    Case {
        name: "IPv6 ipBlock",
        policies: "metadata: {name: p, namespace: a}\nspec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 'fd00::/8'}}]}]}",
        expect: &[
            ("b/bare", "a/web", Tcp, 1, true),
            ("b/client", "a/web", Tcp, 1, false),
            ("fd12::1", "a/db", Tcp, 1, true),
        ],
    },
    Case {
        name: "named ports resolve on the destination: name AND protocol; unknown names match nothing",
        policies: "metadata: {name: p, namespace: a}\nspec: {podSelector: {}, ingress: [{ports: [{port: http}, {port: dns, protocol: UDP}, {port: dns}, {port: nope}]}]}",
        expect: &[
            ("b/client", "a/web", Tcp, 8080, true),
            ("b/client", "a/web", Udp, 8080, false),
            ("b/client", "a/web", Udp, 53, true),
            ("b/client", "a/web", Tcp, 53, false),
            ("b/client", "a/db", Tcp, 8080, false),
        ],
    },
    Case {
        name: "egress named ports resolve on the destination pod, never outside the cluster",
        policies: "metadata: {name: p, namespace: b}\nspec: {podSelector: {}, policyTypes: [Egress], egress: [{ports: [{port: http}]}]}",
        expect: &[
            ("b/client", "a/web", Tcp, 8080, true),
            ("b/client", "a/db", Tcp, 8080, false),
            ("b/client", "203.0.113.1", Tcp, 8080, false),
        ],
    },
    Case {
        name: "NotIn and DoesNotExist match pods lacking the key; Exists and In do not",
        policies: "metadata: {name: p, namespace: a}\nspec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {}, podSelector: {matchExpressions: [{key: app, operator: NotIn, values: [client]}]}}]}, {from: [{namespaceSelector: {}, podSelector: {matchExpressions: [{key: role, operator: DoesNotExist}, {key: app, operator: In, values: [db]}]}}], ports: [{port: 9}]}]}",
        expect: &[
            ("b/bare", "a/web", Tcp, 1, true),
            ("b/client", "a/web", Tcp, 1, false),
            ("a/db", "a/web", Tcp, 9, true),
            ("a/web", "a/db", Tcp, 9, true),
        ],
    },
    Case {
        name: "egress to: [] matches every destination, outside included",
        policies: "metadata: {name: p, namespace: a}\nspec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [], ports: [{port: 53, protocol: UDP}]}]}",
        expect: &[
            ("a/web", "203.0.113.1", Udp, 53, true),
            ("a/web", "b/client", Udp, 53, true),
            ("a/web", "b/client", Tcp, 53, false),
        ],
    },
];

fn world(policies: &str) -> World {
    let mut text = CLUSTER.to_string();
    for doc in policies.split("\n---\n").filter(|d| !d.trim().is_empty()) {
        let doc = if doc.starts_with("apiVersion") {
            doc.to_string()
        } else {
            format!("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n{doc}")
        };
        text.push_str("\n---\n");
        text.push_str(&doc);
    }
    World::from_text(&text, "case").unwrap_or_else(|e| panic!("case world invalid: {e:#}"))
}

fn endpoint<'w>(w: &'w World, s: &str) -> Endpoint<'w> {
    match s.parse() {
        Ok(ip) => Endpoint::External(ip),
        Err(_) => {
            let (ns, name) = s.split_once('/').expect("ns/name");
            Endpoint::Pod(w.find_pod(ns, name).unwrap_or_else(|| panic!("no pod {s}")))
        }
    }
}

#[test]
fn network_policy_semantics() {
    let mut failures = Vec::new();
    for case in CASES {
        let w = world(case.policies);
        for (from, to, proto, port, want) in case.expect {
            let v = evaluate(
                &w.state,
                &endpoint(&w, from),
                &endpoint(&w, to),
                *proto,
                *port,
            );
            if v.allowed != *want {
                failures.push(format!(
                    "{}: {from} -> {to} {proto}/{port}: want {want}, got {} ({v:?})",
                    case.name, v.allowed
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn verdicts_name_the_policies_and_rules_that_decide() {
    let w = world(CASES[6].policies);
    let v = evaluate(
        &w.state,
        &endpoint(&w, "b/client"),
        &endpoint(&w, "a/db"),
        Tcp,
        1,
    );
    let ingress = v.ingress.expect("db is a pod");
    assert!(ingress.isolated);
    assert_eq!(ingress.isolated_by, vec!["a/one", "a/two"]);
    assert_eq!(ingress.allowed_by, vec!["a/one ingress[0]"]);
    let egress = v.egress.expect("client is a pod");
    assert!(!egress.isolated && egress.allowed && egress.allowed_by.is_empty());
}
