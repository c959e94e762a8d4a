//! Bad input gets the API server's verdict, naming the file, the object and
//! the field; never a panic.

use tierguard::model::isolationpolicy;
use tierguard::world::World;

fn policy(spec: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: bad, namespace: shop}}\nspec: {spec}\n"
    )
}

fn load_err(text: &str) -> String {
    match World::from_text(text, "manifests/bad.yaml") {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => format!("{e:#}"),
    }
}

/// (spec, field path, message fragment)
const INVALID_SPECS: &[(&str, &str, &str)] = &[
    (
        "{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/33}}]}]}",
        "spec.ingress[0].from[0].ipBlock.cidr",
        "must be a valid CIDR",
    ),
    (
        "{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: banana}}]}]}",
        "spec.ingress[0].from[0].ipBlock.cidr",
        "must be a valid CIDR",
    ),
    (
        "{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}}]}]}",
        "spec.ingress[0].from[0].ipBlock.except[0]",
        "strict subset",
    ),
    (
        "{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.0.0/16]}}]}]}",
        "spec.ingress[0].from[0].ipBlock.except[0]",
        "strict subset",
    ),
    (
        "{podSelector: {}, egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: ['fd00::/8']}}]}]}",
        "spec.egress[0].to[0].ipBlock.except[0]",
        "strict subset",
    ),
    (
        "{podSelector: {}, ingress: [{ports: [{port: 0}]}]}",
        "spec.ingress[0].ports[0].port",
        "between 1 and 65535",
    ),
    (
        "{podSelector: {}, ingress: [{ports: [{port: 70000}]}]}",
        "spec.ingress[0].ports[0].port",
        "between 1 and 65535",
    ),
    (
        "{podSelector: {}, ingress: [{ports: [{port: 80}, {port: 90, endPort: 80}]}]}",
        "spec.ingress[0].ports[1].endPort",
        "greater than or equal to `port`",
    ),
    (
        "{podSelector: {}, ingress: [{ports: [{port: 80, endPort: 70000}]}]}",
        "spec.ingress[0].ports[0].endPort",
        "between 1 and 65535",
    ),
    (
        "{podSelector: {}, ingress: [{ports: [{port: http, endPort: 90}]}]}",
        "spec.ingress[0].ports[0].endPort",
        "non-numeric",
    ),
    (
        "{podSelector: {}, ingress: [{ports: [{endPort: 90}]}]}",
        "spec.ingress[0].ports[0].endPort",
        "`port` is not specified",
    ),
    (
        "{podSelector: {}, ingress: [{ports: [{port: HTTP}]}]}",
        "spec.ingress[0].ports[0].port",
        "alpha-numeric",
    ),
    (
        "{podSelector: {}, ingress: [{ports: [{protocol: ICMP}]}]}",
        "spec.ingress[0].ports[0].protocol",
        "Unsupported value: \"ICMP\"",
    ),
    (
        "{podSelector: {}, ingress: [{ports: [{protocol: tcp}]}]}",
        "spec.ingress[0].ports[0].protocol",
        "Unsupported value: \"tcp\"",
    ),
    (
        "{podSelector: {}, policyTypes: [Ingress, Sideways]}",
        "spec.policyTypes[1]",
        "Unsupported value: \"Sideways\"",
    ),
    (
        "{podSelector: {}, policyTypes: [Ingress, Egress, Ingress]}",
        "spec.policyTypes",
        "more than two",
    ),
    (
        "{podSelector: {matchExpressions: [{key: app, operator: Near, values: [x]}]}}",
        "spec.podSelector.matchExpressions[0].operator",
        "not a valid selector operator",
    ),
    (
        "{podSelector: {matchExpressions: [{key: app, operator: In}]}}",
        "spec.podSelector.matchExpressions[0].values",
        "must be specified when `operator` is 'In' or 'NotIn'",
    ),
    (
        "{podSelector: {matchExpressions: [{key: app, operator: NotIn, values: []}]}}",
        "spec.podSelector.matchExpressions[0].values",
        "must be specified",
    ),
    (
        "{podSelector: {matchExpressions: [{key: app, operator: Exists, values: [x]}]}}",
        "spec.podSelector.matchExpressions[0].values",
        "may not be specified when `operator` is 'Exists'",
    ),
    (
        "{podSelector: {matchLabels: {'bad key!': x}}}",
        "spec.podSelector.matchLabels",
        "name part must consist",
    ),
    (
        "{podSelector: {matchLabels: {app: 'bad value!'}}}",
        "spec.podSelector.matchLabels[app]",
        "a valid label",
    ),
    (
        "{podSelector: {}, ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: -x, operator: Exists}]}}]}]}",
        "spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].key",
        "name part must consist",
    ),
    (
        "{podSelector: {}, ingress: [{from: [{podSelector: {}, ipBlock: {cidr: 10.0.0.0/8}}]}]}",
        "spec.ingress[0].from[0]",
        "may not specify both ipBlock and another peer",
    ),
    (
        "{podSelector: {}, ingress: [{from: [{}]}]}",
        "spec.ingress[0].from[0]",
        "must specify a peer",
    ),
    (
        "{podSelector: {}, ingress: [{ports: [{port: true}]}]}",
        "spec.ingress[0].ports[0].port",
        "invalid type",
    ),
    (
        "{podSelector: {}, egress: [{to: 7}]}",
        "spec.egress[0].to",
        "invalid type",
    ),
];

#[test]
fn invalid_network_policies_name_file_object_and_field() {
    let mut failures = Vec::new();
    for (spec, path, fragment) in INVALID_SPECS {
        let err = load_err(&policy(spec));
        let want_object = "manifests/bad.yaml (document 1, line 1): NetworkPolicy shop/bad";
        if !err.contains(want_object)
            || !err.contains(&format!("{path}:"))
            || !err.contains(fragment)
        {
            failures.push(format!(
                "{spec}\n  want {want_object} / {path}: ...{fragment}...\n  got  {err}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_error_is_reported_at_once() {
    let err = load_err(&policy(
        "{podSelector: {}, ingress: [{ports: [{port: 0}, {protocol: ICMP}]}]}",
    ));
    assert!(err.contains("spec.ingress[0].ports[0].port"), "{err}");
    assert!(err.contains("spec.ingress[0].ports[1].protocol"), "{err}");
}

#[test]
fn missing_and_invalid_names() {
    let err = load_err(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {namespace: shop}\nspec: {podSelector: {}}\n",
    );
    assert!(err.contains("metadata.name: Required value"), "{err}");
    let err = load_err(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: Bad_Name}\nspec: {}\n",
    );
    assert!(
        err.contains("NetworkPolicy default/Bad_Name")
            && err.contains("metadata.name: Invalid value"),
        "{err}"
    );
    let err = load_err("apiVersion: v1\nkind: Namespace\nmetadata: {name: UPPER}\n");
    assert!(err.contains("Namespace UPPER: metadata.name"), "{err}");
}

#[test]
fn malformed_yaml_names_file_and_line() {
    let err = load_err(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: [unclosed\n",
    );
    assert!(err.starts_with("manifests/bad.yaml: line "), "{err}");
    assert!(err.contains("invalid YAML"), "{err}");
    let err = match World::from_text("{\"kind\": \"Namespace\",\n \"metadata\": {", "x.json") {
        Ok(_) => panic!("truncated JSON loads"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.starts_with("x.json: line 2, column"), "{err}");
}

#[test]
fn documents_without_kind_or_object_shape_are_errors() {
    assert!(load_err("apiVersion: v1\nmetadata: {name: x}\n").contains("kind: Required value"));
    assert!(load_err("- just\n- a list\n").contains("expected an object, found a list"));
}

#[test]
fn mappings_that_are_not_kubernetes_objects_are_skipped_with_a_warning() {
    let text = "{\"name\": \"my-app\", \"version\": \"1.0.0\"}\n";
    let w =
        World::from_text(text, "dir/package.json").expect("a package.json does not abort the load");
    assert_eq!(
        w.warnings,
        ["dir/package.json (document 1): skipped: not a Kubernetes object (no apiVersion or kind)"]
    );
    let text = "foo: 1\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n";
    let w = World::from_text(text, "m.yaml").expect("loads");
    assert_eq!(w.warnings.len(), 1, "{:?}", w.warnings);
    assert!(
        w.warnings[0].starts_with("m.yaml (document 1, line 1): skipped"),
        "{:?}",
        w.warnings
    );
    assert!(w.state.namespace("ok").is_some());
    // Something meant as an object but invalid still errors, naming file and field.
    let err = load_err("kind: Namespace\nmetadata: {name: Bad_Name}\n");
    assert!(err.contains("metadata.name: Invalid value"), "{err}");
    // Inside a List, an item without kind is an error, not a stray file.
    let err = load_err("apiVersion: v1\nkind: List\nitems:\n- {foo: 1}\n");
    assert!(err.contains("items[0]: kind: Required value"), "{err}");
}

#[test]
fn lists_and_workloads_load_and_unknown_kinds_are_skipped() {
    let text = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata: {name: shop, labels: {team: a}}
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicyList
  items:
  - apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: p, namespace: shop}
    spec: {podSelector: {}}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: jobs}
spec:
  schedule: "0 0 * * *"
  jobTemplate:
    spec:
      template:
        metadata: {labels: {app: nightly}}
        spec: {containers: [{name: c, image: x, ports: [{name: metrics, containerPort: 9090}]}], restartPolicy: Never}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
"#;
    let w = World::from_text(text, "list.yaml").expect("loads");
    let shop = w.state.namespace("shop").expect("declared namespace");
    assert_eq!(
        shop.labels
            .get("kubernetes.io/metadata.name")
            .map(String::as_str),
        Some("shop")
    );
    assert_eq!(shop.labels.get("team").map(String::as_str), Some("a"));
    assert!(w.state.policy("shop", "p").is_some());
    let jobs = w
        .state
        .namespace("jobs")
        .expect("referenced namespace exists");
    assert_eq!(
        jobs.labels.len(),
        1,
        "a referenced namespace has only its name label"
    );
    let cron = w
        .find_pod("jobs", "nightly")
        .expect("CronJob stands for its pods");
    assert_eq!(cron.workload.as_deref(), Some("CronJob/nightly"));
    assert_eq!(cron.labels.get("app").map(String::as_str), Some("nightly"));
    assert_eq!(cron.ports.len(), 1);
    assert_eq!(w.skipped.len(), 1);
    assert!(
        w.skipped[0].contains("ConfigMap settings"),
        "{:?}",
        w.skipped
    );
}

/// (isolation policy spec fragment, field path, message fragment)
const INVALID_ISOLATION: &[(&str, &str, &str)] = &[
    (
        "mode: loud\n  tiers: [{name: a}]",
        "spec.mode",
        "Unsupported value: \"loud\"",
    ),
    (
        "judge: vibes\n  tiers: [{name: a}]",
        "spec.judge",
        "Unsupported value",
    ),
    ("tiers: []", "spec.tiers", "at least one tier"),
    (
        "tiers: [{name: a}, {name: a}]",
        "spec.tiers[1].name",
        "Duplicate value",
    ),
    (
        "tiers: [{name: a, namespaces: [x]}, {name: b, namespaces: [x]}]",
        "spec.tiers[1].namespaces[0]",
        "already in tier",
    ),
    (
        "tiers: [{name: a, namespaces: [Bad]}]",
        "spec.tiers[0].namespaces[0]",
        "RFC 1123",
    ),
    (
        "tiers: [{name: a}]\n  flows: [{from: 'tier:zz', to: any}]",
        "spec.flows[0].from",
        "no tier named \"zz\"",
    ),
    (
        "tiers: [{name: a}]\n  flows: [{from: everywhere, to: any}]",
        "spec.flows[0].from",
        "must be tier:NAME",
    ),
    (
        "tiers: [{name: a}]\n  flows: [{from: any, to: 'tier:a', ports: [TCP/0]}]",
        "spec.flows[0].ports[0]",
        "1 to 65535",
    ),
    (
        "tiers: [{name: a}]\n  flows: [{from: any, to: 'tier:a', ports: []}]",
        "spec.flows[0].ports",
        "leave ports out",
    ),
    (
        "tiers: [{name: a}]\n  cluster: {podCIDRs: [10.0.0.0/99]}",
        "spec.cluster.podCIDRs[0]",
        "prefix length",
    ),
    (
        "tiers: [{name: a}]\n  baseline: {dns: {to: somewhere}}",
        "spec.baseline.dns.to",
        "Unsupported value",
    ),
    (
        "tiers: [{name: a}]\n  membership: {serviceAccounts: [justaname]}",
        "spec.membership.serviceAccounts[0]",
        "NAMESPACE/NAME",
    ),
    (
        "tiers: [{name: a}]\n  tierLabel: name",
        "spec.tierLabel",
        "must not be a name label",
    ),
    (
        "tiers: [{name: a}]\n  surprise: true",
        "spec",
        "unknown field `surprise`",
    ),
];

#[test]
fn invalid_isolation_policies_name_the_field() {
    let mut failures = Vec::new();
    for (spec, path, fragment) in INVALID_ISOLATION {
        let text = format!(
            "apiVersion: tierguard.io/v1alpha1\nkind: IsolationPolicy\nmetadata: {{name: t}}\nspec:\n  {spec}\n"
        );
        match isolationpolicy::parse(&text, "policies/t.yaml") {
            Ok(_) => failures.push(format!("{spec}: accepted")),
            Err(e) => {
                let e = format!("{e:#}");
                if !e.contains("policies/t.yaml") || !e.contains(path) || !e.contains(fragment) {
                    failures.push(format!(
                        "{spec}\n  want {path}: ...{fragment}...\n  got  {e}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_shipped_isolation_policy_loads() {
    let iso = isolationpolicy::load_file(std::path::Path::new("policies/three-tier.yaml"))
        .expect("valid");
    assert_eq!(
        iso.tiers
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        ["frontend", "backend", "database"]
    );
    assert!(
        iso.membership
            .users
            .contains("system:serviceaccount:tierguard:tierguard")
    );
}
