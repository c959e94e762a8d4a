//! The webhook on ClusterNetworkPolicy and AdminNetworkPolicy requests, and
//! on NetworkPolicy and Namespace requests in a cluster that holds them:
//! AdmissionReviews in the API server's shape through the router.

mod common;

use std::sync::Arc;

use common::*;
use serde_json::{Value, json};
use tierguard::admission::Ctx;
use tierguard::engine::cluster::Api;
use tierguard::engine::tiers::Mode;

/// An Admin-tier policy on database's pods with one ingress rule.
fn admin_on_database(action: &str, from_ns: &str, port: u16) -> Value {
    json!({
        "tier": "Admin", "priority": 10,
        "subject": {"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": "database"}}},
        "ingress": [{"name": "r", "action": action,
            "from": [{"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": from_ns}}}],
            "protocols": [{"tcp": {"destinationPort": {"number": port}}}]}]
    })
}

/// The tutorial's state with `obj` stored as a cluster policy of `api`.
fn state_with(api: Api, obj: &Value) -> tierguard::engine::state::State {
    let mut s = three_tier_state();
    let p = tierguard::model::clusterpolicy::convert(api, obj).expect("valid");
    s.apply_cluster_policy(Arc::new(p));
    s
}

#[tokio::test]
async fn an_admin_accept_opening_a_forbidden_flow_is_refused_naming_tier_priority_and_rule() {
    let obj = cnp("oops", admin_on_database("Accept", "frontend", 5432));
    let r = validate(
        TestCtx::three_tier().build(),
        Review::create(CNP, "oops", obj.clone()).json(),
    )
    .await;
    assert_eq!(r["allowed"], false, "{r}");
    let msg = message(&r);
    assert!(
        msg.starts_with("tierguard: ClusterNetworkPolicy oops would open 1 forbidden flow:"),
        "{msg}"
    );
    assert!(
        msg.contains("tier frontend -> tier database on TCP/5432 is forbidden"),
        "{msg}"
    );
    assert!(
        msg.contains("ClusterNetworkPolicy oops (Admin tier, priority 10) ingress[0] \"r\" Accept"),
        "{msg}"
    );
    // Dry runs and updates are judged the same; an update to an allowed peer passes.
    let r = validate(
        TestCtx::three_tier().build(),
        Review::create(CNP, "oops", obj.clone()).dry_run().json(),
    )
    .await;
    assert_eq!(r["allowed"], false, "{r}");
    let fine = cnp("oops", admin_on_database("Accept", "backend", 5432));
    let r = validate(
        TestCtx::three_tier()
            .state(state_with(Api::ClusterNetworkPolicy, &fine))
            .build(),
        Review::update(CNP, "oops", obj.clone(), fine.clone()).json(),
    )
    .await;
    assert_eq!(
        r["allowed"], false,
        "backend -> database is allowed, frontend is not: {r}"
    );
    let r = validate(
        TestCtx::three_tier()
            .state(state_with(Api::ClusterNetworkPolicy, &obj))
            .build(),
        Review::update(CNP, "oops", fine, obj).json(),
    )
    .await;
    assert_eq!(r["allowed"], true, "{r}");
}

#[tokio::test]
async fn a_deny_or_a_rule_reaching_only_isolated_pods_is_admitted() {
    // Admin Deny opens nothing.
    let deny = cnp("deny", admin_on_database("Deny", "frontend", 5432));
    let r = validate(
        TestCtx::three_tier().build(),
        Review::create(CNP, "deny", deny).json(),
    )
    .await;
    assert_eq!(r["allowed"], true, "{r}");
    // A Baseline Accept reaches pods no NetworkPolicy isolates; database's
    // default-deny isolates all of its pods, so it opens nothing.
    let mut spec = admin_on_database("Accept", "frontend", 5432);
    spec["tier"] = json!("Baseline");
    let r = validate(
        TestCtx::three_tier().build(),
        Review::create(CNP, "late", cnp("late", spec.clone())).json(),
    )
    .await;
    assert_eq!(r["allowed"], true, "{r}");
    // Without database's NetworkPolicies, and with a Baseline Deny of every
    // namespace into database after it, the same rule opens the flow to
    // database's unisolated pods.
    let mut wall = admin_on_database("Deny", "frontend", 5432);
    wall["tier"] = json!("Baseline");
    wall["priority"] = json!(100);
    wall["ingress"][0]["from"] = json!([{"namespaces": {}}]);
    wall["ingress"][0]
        .as_object_mut()
        .expect("rule")
        .remove("protocols");
    let mut state = state_with(Api::ClusterNetworkPolicy, &cnp("baseline-wall", wall));
    for p in [
        "tierguard-default-deny",
        "tierguard-allow-dns",
        "allow-backend-to-database",
    ] {
        assert!(state.delete_policy("database", p).is_some(), "{p}");
    }
    let r = validate(
        TestCtx::three_tier().state(state).build(),
        Review::create(CNP, "late", cnp("late", spec)).json(),
    )
    .await;
    assert_eq!(
        r["allowed"], false,
        "database's pods are unisolated, the Baseline Accept lets frontend in: {r}"
    );
    let msg = message(&r);
    assert!(
        msg.contains("tier frontend -> tier database on TCP/5432 is forbidden"),
        "{msg}"
    );
    assert!(
        msg.contains("ClusterNetworkPolicy late (Baseline tier, priority 10) ingress[0]"),
        "{msg}"
    );
}

#[tokio::test]
async fn deleting_an_admin_deny_that_shadows_an_allow_is_refused() {
    // An allow-all NetworkPolicy in database, shadowed by an Admin Deny of
    // everything into database.
    let deny = cnp(
        "wall",
        json!({"tier": "Admin", "priority": 1,
            "subject": {"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": "database"}}},
            "ingress": [{"action": "Deny", "from": [{"namespaces": {}}]}]}),
    );
    let mut state = state_with(Api::ClusterNetworkPolicy, &deny);
    let allow_all = netpol(
        "database",
        "allow-all",
        json!({"podSelector": {}, "ingress": [{}]}),
    );
    let p = tierguard::model::networkpolicy::convert(
        &serde_json::from_value(allow_all).expect("np"),
        "default",
    )
    .expect("valid");
    state.apply_policy(Arc::new(p));
    let r = validate(
        TestCtx::three_tier().state(state).build(),
        Review::delete(CNP, "wall", deny).json(),
    )
    .await;
    assert_eq!(r["allowed"], false, "{r}");
    let msg = message(&r);
    assert!(
        msg.starts_with(
            "tierguard: Deleting ClusterNetworkPolicy wall would open 5 forbidden flows"
        ),
        "{msg}"
    );
    assert!(msg.contains("tier frontend -> tier database"), "{msg}");
}

#[tokio::test]
async fn an_invalid_cluster_policy_is_refused_with_its_field_path() {
    let mut spec = admin_on_database("Allow", "frontend", 5432);
    spec["priority"] = json!(1001);
    let r = validate(
        TestCtx::three_tier().build(),
        Review::create(CNP, "bad", cnp("bad", spec)).json(),
    )
    .await;
    assert_eq!(r["allowed"], false, "{r}");
    let msg = message(&r);
    assert!(msg.contains("ClusterNetworkPolicy bad is invalid"), "{msg}");
    assert!(msg.contains("spec.priority"), "{msg}");
    assert!(msg.contains("spec.ingress[0].action"), "{msg}");
}

#[tokio::test]
async fn admin_network_policies_are_judged_too() {
    let anp = json!({"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy",
        "metadata": {"name": "anp"},
        "spec": {"priority": 5,
            "subject": {"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": "database"}}},
            "ingress": [{"name": "r", "action": "Allow",
                "from": [{"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": "frontend"}}}],
                "ports": [{"portNumber": {"protocol": "TCP", "port": 5432}}]}]}});
    let r = validate(
        TestCtx::three_tier().build(),
        Review::create(ANP, "anp", anp).json(),
    )
    .await;
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        message(&r)
            .contains("AdminNetworkPolicy anp (Admin tier, priority 5) ingress[0] \"r\" Allow"),
        "{}",
        message(&r)
    );
}

#[tokio::test]
async fn audit_mode_admits_with_a_warning_and_counts_the_kind() {
    let c = TestCtx::three_tier().mode(Mode::Audit).build();
    let obj = cnp("oops", admin_on_database("Accept", "frontend", 5432));
    let r = validate(c.clone(), Review::create(CNP, "oops", obj).json()).await;
    assert_eq!(r["allowed"], true, "{r}");
    let w = r["warnings"][0].as_str().unwrap_or_default();
    assert!(
        w.starts_with("tierguard (audit): tier frontend -> tier database on TCP/5432"),
        "{w}"
    );
    let metrics = c.metrics.render().expect("metrics");
    assert!(
        metrics.contains(r#"kind="ClusterNetworkPolicy",operation="Create",verdict="warned""#),
        "{metrics}"
    );
}

#[tokio::test]
async fn unreadable_cluster_policies_make_changes_they_could_affect_unjudgeable() {
    let ctx = TestCtx::three_tier().build();
    // Stored while tierguard was down, and invalid to it.
    let mut bad = admin_on_database("Accept", "frontend", 5432);
    bad["priority"] = json!(-1);
    let bad = cnp("bad", bad);
    assert!(
        ctx.index
            .write()
            .expect("index")
            .apply_cluster_policy(Api::ClusterNetworkPolicy, &bad)
            .is_err()
    );
    let r = validate(ctx.clone(), deny_all_create("backend", "fine").json()).await;
    assert_eq!(r["allowed"], false, "{r}");
    let msg = message(&r);
    assert!(
        msg.contains("cluster policies tierguard cannot read (ClusterNetworkPolicy bad; first:"),
        "{msg}"
    );
    assert!(msg.contains("spec.priority"), "{msg}");
    // Another cluster policy is not judged either; replacing the unreadable
    // one itself is.
    let deny = cnp("deny", admin_on_database("Deny", "frontend", 5432));
    let r = validate(
        ctx.clone(),
        Review::create(CNP, "deny", deny.clone()).json(),
    )
    .await;
    assert_eq!(r["allowed"], false, "{r}");
    let r = validate(
        ctx.clone(),
        Review::update(
            CNP,
            "bad",
            cnp("bad", admin_on_database("Deny", "frontend", 5432)),
            bad,
        )
        .json(),
    )
    .await;
    assert_eq!(r["allowed"], true, "{r}");
    // Once it is replaced by a readable one, judging resumes.
    let fixed = cnp("bad", admin_on_database("Deny", "frontend", 5432));
    assert!(
        ctx.index
            .write()
            .expect("index")
            .apply_cluster_policy(Api::ClusterNetworkPolicy, &fixed)
            .is_ok()
    );
    let r = validate(ctx, deny_all_create("backend", "fine").json()).await;
    assert_eq!(r["allowed"], true, "{r}");
}

#[tokio::test]
async fn a_network_policy_is_judged_under_the_cluster_tiers() {
    // An Admin Deny of frontend into database shadows a NetworkPolicy that
    // allows it: the NetworkPolicy opens nothing and is admitted.
    let deny = cnp("wall", admin_on_database("Deny", "frontend", 5432));
    let np = netpol(
        "database",
        "oops",
        json!({
        "podSelector": {}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "frontend"}}}], "ports": [{"protocol": "TCP", "port": 5432}]}]}),
    );
    let r = validate(
        TestCtx::three_tier()
            .state(state_with(Api::ClusterNetworkPolicy, &deny))
            .build(),
        Review::create(NP, "oops", np.clone()).ns("database").json(),
    )
    .await;
    assert_eq!(r["allowed"], true, "{r}");
    // A Pass does not shadow it.
    let pass = cnp("pass", admin_on_database("Pass", "frontend", 5432));
    let r = validate(
        TestCtx::three_tier()
            .state(state_with(Api::ClusterNetworkPolicy, &pass))
            .build(),
        Review::create(NP, "oops", np).ns("database").json(),
    )
    .await;
    assert_eq!(r["allowed"], false, "{r}");
}

#[tokio::test]
async fn a_kind_the_index_does_not_hold_yet_is_not_admitted() {
    // A CRD installed a moment ago: the webhook's rule sends its writes at
    // once, discovery has not found the kind yet.
    let mut index = tierguard::index::Index::new();
    index.reset_namespaces(&[]);
    index.reset_policies(&[]);
    index.set_cluster_apis(&[]);
    let ctx = TestCtx::three_tier().build();
    *ctx.index.write().expect("index") = index;
    let deny = cnp("deny", admin_on_database("Deny", "frontend", 5432));
    let r = validate(
        ctx.clone(),
        Review::create(CNP, "deny", deny.clone()).json(),
    )
    .await;
    assert_eq!(r["allowed"], false, "{r}");
    let msg = message(&r);
    assert!(
        msg.contains("does not watch ClusterNetworkPolicy yet"),
        "{msg}"
    );
    // Found and listed: judged.
    {
        let mut idx = ctx.index.write().expect("index");
        idx.set_cluster_apis(&[Api::ClusterNetworkPolicy]);
        idx.reset_cluster_policies(Api::ClusterNetworkPolicy, &[]);
    }
    let r = validate(ctx, Review::create(CNP, "deny", deny).json()).await;
    assert_eq!(r["allowed"], true, "{r}");
}

#[tokio::test]
async fn a_policy_over_the_rule_term_limit_is_refused_naming_the_field() {
    let peers: Vec<Value> = (0..25)
        .map(|i| json!({"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": format!("ns-{i}")}}}))
        .collect();
    let rule = json!({"action": "Deny", "from": peers,
        "protocols": (1..=20).map(|p| json!({"tcp": {"destinationPort": {"number": p}}})).collect::<Vec<_>>()});
    let spec =
        json!({"tier": "Admin", "priority": 1, "subject": {"namespaces": {}}, "ingress": [rule]});
    let r = validate(
        TestCtx::three_tier().build(),
        Review::create(CNP, "big", cnp("big", spec)).json(),
    )
    .await;
    assert_eq!(r["allowed"], false, "{r}");
    let msg = message(&r);
    assert!(
        msg.contains("spec.ingress: Too many: 500 rule terms"),
        "{msg}"
    );
}

// === the baseline tierguard keeps (`via: clusterNetworkPolicy`) ===

fn cluster_baseline_policy() -> tierguard::engine::tiers::IsolationPolicy {
    tierguard::model::isolationpolicy::load_file(std::path::Path::new(
        "examples/three-tier-cluster-baseline/policy.yaml",
    ))
    .expect("policy")
}

/// The tutorial's state, with the baseline ClusterNetworkPolicies stored
/// (all of them, or all but `but`).
fn with_cluster_baseline(but: Option<&str>) -> tierguard::engine::state::State {
    let mut s = three_tier_state();
    for c in cluster_baseline_policy().cluster_baseline() {
        if Some(c.name.as_str()) != but {
            s.apply_cluster_policy(c.clone());
        }
    }
    s
}

fn cluster_baseline_ctx(state: tierguard::engine::state::State) -> Arc<Ctx> {
    TestCtx::three_tier()
        .policy(|p| *p = cluster_baseline_policy())
        .state(state)
        .build()
}

#[tokio::test]
async fn under_the_cluster_baseline_a_shadowed_allow_all_is_admitted() {
    let from_every_pod = netpol(
        "database",
        "open",
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"namespaceSelector": {}}]}],
            "egress": [{"to": [{"namespaceSelector": {}}]}]}),
    );
    let review = Review::create(NP, "open", from_every_pod)
        .ns("database")
        .json();
    let r = validate(
        cluster_baseline_ctx(with_cluster_baseline(None)),
        review.clone(),
    )
    .await;
    assert_eq!(r["allowed"], true, "the baseline's Deny shadows it: {r}");
    // Until the baseline is stored, the policy is judged without it.
    let r = validate(cluster_baseline_ctx(three_tier_state()), review.clone()).await;
    assert_eq!(r["allowed"], false, "{r}");
    let r = validate(
        cluster_baseline_ctx(with_cluster_baseline(Some(
            "tierguard-baseline-database-by-name",
        ))),
        review,
    )
    .await;
    assert_eq!(
        r["allowed"], false,
        "database's own baseline policy is missing: {r}"
    );
    // Hosts outside the cluster are NetworkPolicy's to isolate.
    let from_everywhere = netpol(
        "database",
        "open",
        json!({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]}),
    );
    let r = validate(
        cluster_baseline_ctx(with_cluster_baseline(None)),
        Review::create(NP, "open", from_everywhere)
            .ns("database")
            .json(),
    )
    .await;
    assert_eq!(r["allowed"], false, "{r}");
    let msg = message(&r);
    assert!(
        msg.contains("outside the cluster -> tier database"),
        "{msg}"
    );
    assert!(!msg.contains("tier frontend -> tier database"), "{msg}");
}

#[tokio::test]
async fn tier_pods_wait_for_the_cluster_baseline() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "database"}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
    let review = Review::create(POD, "p", pod).ns("database").json();
    let missing = "tierguard-baseline-database-by-name";
    let r = validate(
        cluster_baseline_ctx(with_cluster_baseline(Some(missing))),
        review.clone(),
    )
    .await;
    assert_eq!(r["allowed"], false, "{r}");
    let msg = message(&r);
    assert!(
        msg.contains(&format!("ClusterNetworkPolicy {missing}")),
        "{msg}"
    );
    assert_eq!(
        r["status"]["reason"], "ServiceUnavailable",
        "retriable: {r}"
    );
    // Another tier's policy does not hold database's pods back.
    let r = validate(
        cluster_baseline_ctx(with_cluster_baseline(Some(
            "tierguard-baseline-frontend-by-name",
        ))),
        review.clone(),
    )
    .await;
    assert_eq!(r["allowed"], true, "{r}");
    let r = validate(cluster_baseline_ctx(with_cluster_baseline(None)), review).await;
    assert_eq!(r["allowed"], true, "{r}");
}

#[tokio::test]
async fn the_cluster_baseline_is_left_to_the_guard() {
    let iso = cluster_baseline_policy();
    let name = "tierguard-baseline-database-by-name";
    let objects = tierguard::model::clusterbaseline::objects(&iso, 0);
    let live = objects
        .iter()
        .find(|o| o["metadata"]["name"] == name)
        .expect("generated")
        .clone();
    let ctx = || cluster_baseline_ctx(with_cluster_baseline(None));
    let r = validate(ctx(), Review::delete(CNP, name, live.clone()).json()).await;
    assert_eq!(r["allowed"], false, "{r}");
    let msg = message(&r);
    assert!(msg.contains("is tierguard's baseline"), "{msg}");
    assert!(msg.contains("user alice may not change it"), "{msg}");
    let mut edited = live.clone();
    let last = edited["spec"]["ingress"].as_array().expect("ingress").len() - 1;
    assert_eq!(edited["spec"]["ingress"][last]["action"], "Deny");
    edited["spec"]["ingress"][last]["action"] = json!("Accept");
    let r = validate(
        ctx(),
        Review::update(CNP, name, edited.clone(), live.clone()).json(),
    )
    .await;
    assert_eq!(r["allowed"], false, "{r}");
    // An update that leaves the spec alone (a label added) is judged as any.
    let mut labelled = live.clone();
    labelled["metadata"]["labels"]["team"] = json!("net");
    let r = validate(
        ctx(),
        Review::update(CNP, name, labelled, live.clone()).json(),
    )
    .await;
    assert_eq!(r["allowed"], true, "{r}");
    // The guard's own edit is judged on what it opens: the last rule made
    // an Accept opens database to every pod.
    let r = validate(
        ctx(),
        Review::update(CNP, name, edited, live.clone())
            .by(GUARD)
            .json(),
    )
    .await;
    assert_eq!(r["allowed"], false, "{r}");
    assert!(message(&r).contains("would open"), "{}", message(&r));
    // Deleting it opens nothing while the NetworkPolicy baseline holds.
    let r = validate(ctx(), Review::delete(CNP, name, live).by(GUARD).json()).await;
    assert_eq!(r["allowed"], true, "{r}");
}
