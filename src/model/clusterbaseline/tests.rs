use super::*;
use crate::model::isolationpolicy::parse;

fn policy(spec: &str) -> IsolationPolicy {
    let text = format!(
        "apiVersion: tierguard.io/v1alpha1\nkind: IsolationPolicy\nmetadata: {{name: t}}\nspec:\n{spec}"
    );
    parse(&text, "t").unwrap_or_else(|e| panic!("{e:#}"))
}

const THREE: &str = "  tiers:\n  - {name: frontend, namespaces: [frontend]}\n  - {name: backend}\n  - {name: database}\n  baseline: {via: clusterNetworkPolicy, priority: 5}\n  flows:\n  - {from: external, to: 'tier:frontend', ports: [TCP/80]}\n  - {from: 'tier:frontend', to: 'tier:backend', ports: [TCP/80]}\n  - {from: 'tier:backend', to: 'tier:database', ports: [TCP/5432]}\n  - {from: 'namespace:monitoring', to: 'tier:*', ports: [TCP/9090]}\n";

#[test]
fn the_tutorials_flows_become_passes_ahead_of_the_denies() {
    let p = policy(THREE);
    let names: Vec<&str> = p
        .cluster_baseline()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            // The DNS flow names kube-system: passed, should it join a tier.
            "tierguard-baseline-ns-kube-system",
            "tierguard-baseline-ns-monitoring",
            "tierguard-baseline-frontend",
            "tierguard-baseline-frontend-by-name",
            "tierguard-baseline-backend",
            "tierguard-baseline-database",
            "tierguard-baseline-frontend-hosts",
            "tierguard-baseline-frontend-by-name-hosts",
            "tierguard-baseline-backend-hosts",
            "tierguard-baseline-database-hosts",
        ]
    );
    let prio: Vec<i32> = p.cluster_baseline().iter().map(|c| c.priority).collect();
    assert_eq!(prio, [5, 5, 6, 6, 6, 6, 8, 8, 8, 8]);
    let objs = objects(&p, 5);
    let db = objs
        .iter()
        .find(|o| o["metadata"]["name"] == "tierguard-baseline-database")
        .expect("database policy");
    assert!(is_managed(db));
    assert_eq!(
        db["spec"]["subject"]["namespaces"]["matchLabels"]["tierguard.io/tier"],
        "database"
    );
    let ingress = db["spec"]["ingress"].as_array().expect("ingress");
    // backend on 5432; monitoring's 9090 is passed by its own policy.
    assert_eq!(ingress.len(), 3, "{ingress:#?}");
    assert_eq!(ingress[0]["action"], "Pass");
    assert_eq!(
        ingress[0]["protocols"][0]["tcp"]["destinationPort"]["number"],
        5432
    );
    assert_eq!(ingress[2]["action"], "Deny");
    assert_eq!(ingress[2]["from"][0]["namespaces"], json!({}));
    // The database's egress: only DNS (to kube-system on 53), then deny.
    let egress = db["spec"]["egress"].as_array().expect("egress");
    assert_eq!(egress.len(), 2, "{egress:#?}");
    assert_eq!(
        egress[0]["to"][0]["namespaces"]["matchLabels"]["kubernetes.io/metadata.name"],
        "kube-system"
    );
    let monitoring = &objs[1];
    assert_eq!(
        monitoring["spec"]["subject"]["namespaces"]["matchExpressions"][0]["key"],
        "tierguard.io/tier",
        "a named flow end is selected only while it is a tier namespace"
    );
}

#[test]
fn too_many_distinct_port_sets_for_one_policy_is_an_error_naming_it() {
    let mut spec = String::from(
        "  tiers:\n  - {name: a}\n  - {name: b}\n  baseline: {via: clusterNetworkPolicy}\n  flows:\n",
    );
    for port in 1000..1030 {
        spec.push_str(&format!(
            "  - {{from: 'tier:a', to: 'tier:b', ports: [TCP/{port}, UDP/{port}]}}\n"
        ));
    }
    let text = format!(
        "apiVersion: tierguard.io/v1alpha1\nkind: IsolationPolicy\nmetadata: {{name: t}}\nspec:\n{spec}"
    );
    let err = format!("{:#}", parse(&text, "t").expect_err("too many rules"));
    assert!(
        err.contains("spec.baseline.via")
            && err.contains("ClusterNetworkPolicy tierguard-baseline-"),
        "{err}"
    );
}

#[test]
fn priority_is_checked_and_needs_the_cluster_baseline() {
    let bad = |baseline: &str, want: &str| {
        let text = format!(
            "apiVersion: tierguard.io/v1alpha1\nkind: IsolationPolicy\nmetadata: {{name: t}}\nspec:\n  tiers: [{{name: a}}]\n  baseline: {baseline}\n"
        );
        let err = format!("{:#}", parse(&text, "t").expect_err(baseline));
        assert!(err.contains(want), "{baseline}: {err}");
    };
    bad("{priority: 3}", "spec.baseline.priority: Forbidden");
    bad(
        "{via: clusterNetworkPolicy, priority: 998}",
        "spec.baseline.priority: Invalid value: 998",
    );
    bad(
        "{via: calico}",
        "spec.baseline.via: Unsupported value: \"calico\"",
    );
    let p = policy("  tiers: [{name: a}]\n  baseline: {dns: {to: none}}\n");
    assert!(
        p.cluster_baseline().is_empty(),
        "networkPolicy is the default"
    );
}
