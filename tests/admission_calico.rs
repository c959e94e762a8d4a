//! The webhook on Calico NetworkPolicy and GlobalNetworkPolicy requests
//! (both API groups): refused in enforce mode when they may apply to tier
//! pods with a rule that can let traffic through, admitted otherwise.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::*;
use serde_json::{Value, json};
use tierguard::admission::Ctx;
use tierguard::engine::state::Namespace;
use tierguard::engine::tiers::Mode;

const GNP: (&str, &str, &str) = ("crd.projectcalico.org", "v1", "GlobalNetworkPolicy");
const GNP_V3: (&str, &str, &str) = ("projectcalico.org", "v3", "GlobalNetworkPolicy");
const CALICO_NP: (&str, &str, &str) = ("crd.projectcalico.org", "v1", "NetworkPolicy");

fn calico(kind: &str, ns: Option<&str>, name: &str, spec: Value) -> Value {
    let mut meta = json!({"name": name});
    if let Some(ns) = ns {
        meta["namespace"] = json!(ns);
    }
    json!({"apiVersion": "crd.projectcalico.org/v1", "kind": kind, "metadata": meta, "spec": spec})
}

fn enforce() -> Arc<Ctx> {
    TestCtx::three_tier().mode(Mode::Enforce).build()
}

#[tokio::test]
async fn an_allow_all_global_policy_is_refused_naming_the_tiers_and_rules() {
    let spec = json!({"order": 10, "selector": "all()",
        "ingress": [{"action": "Allow"}], "egress": [{"action": "Allow"}]});
    for kind in [GNP, GNP_V3] {
        let obj = calico("GlobalNetworkPolicy", None, "allow-all", spec.clone());
        let r = validate(enforce(), Review::create(kind, "allow-all", obj).json()).await;
        assert_eq!(r["allowed"], false, "{r}");
        let msg = message(&r);
        for part in [
            "tierguard does not judge Calico policies' rules yet",
            "Calico GlobalNetworkPolicy allow-all (tier default, order 10)",
            "pods of tier namespaces backend, database, frontend",
            "spec.ingress[0] Allow, spec.egress[0] Allow",
        ] {
            assert!(msg.contains(part), "{part}\n{msg}");
        }
    }
    // Audit mode admits it with a warning.
    let obj = calico("GlobalNetworkPolicy", None, "allow-all", spec);
    let audit = TestCtx::three_tier().mode(Mode::Audit).build();
    let r = validate(audit, Review::create(GNP, "allow-all", obj).json()).await;
    assert_eq!(r["allowed"], true, "{r}");
    assert!(
        r["warnings"].to_string().contains("does not judge Calico"),
        "{r}"
    );
}

#[tokio::test]
async fn a_global_policy_is_judged_by_the_namespaces_it_may_select() {
    let allow = |ns_sel: &str| {
        json!({"selector": "all()", "namespaceSelector": ns_sel,
            "ingress": [{"action": "Deny"}, {"action": "Pass"}]})
    };
    // (namespaceSelector, refused, the tiers named)
    let table = [
        ("projectcalico.org/name == 'monitoring'", false, ""),
        (
            "kubernetes.io/metadata.name in {'shop', 'kube-system'}",
            false,
            "",
        ),
        ("projectcalico.org/name == 'database'", true, "database"),
        (
            "name == 'frontend' || name == 'backend'",
            true,
            "backend, frontend",
        ),
        // Future namespaces the isolation policy names are tier pods too.
        (
            "has(team)",
            true,
            "backend, database, frontend, future members of tier backend, future members of tier database, future members of tier frontend",
        ),
        // Only namespaces that join a tier by label later: refused now.
        (
            "tierguard.io/tier == 'frontend'",
            true,
            "future members of tier frontend",
        ),
        ("!has(projectcalico.org/name)", false, ""),
    ];
    for (sel, refused, tiers) in table {
        let obj = calico("GlobalNetworkPolicy", None, "g", allow(sel));
        let r = validate(enforce(), Review::create(GNP, "g", obj).json()).await;
        assert_eq!(r["allowed"], !refused, "{sel}: {r}");
        if refused {
            let msg = message(&r);
            assert!(
                msg.contains(&format!("tier namespaces {tiers} ")),
                "{sel}: {msg}"
            );
            assert!(msg.contains("spec.ingress[1] Pass"), "{sel}: {msg}");
        }
    }
    // A tier namespace the isolation policy lists but that does not exist
    // yet is tier pods too, under every alternative that may name it.
    let mut state = three_tier_state();
    state.delete_namespace("database");
    let without_database = || {
        TestCtx::three_tier()
            .mode(Mode::Enforce)
            .state(state.clone())
            .build()
    };
    for (sel, refused) in [
        ("projectcalico.org/name == 'database'", true),
        (
            "name == 'monitoring' || kubernetes.io/metadata.name == 'database'",
            true,
        ),
        ("projectcalico.org/name == 'monitoring'", false),
    ] {
        let obj = calico("GlobalNetworkPolicy", None, "g", allow(sel));
        let r = validate(without_database(), Review::create(GNP, "g", obj).json()).await;
        assert_eq!(r["allowed"], !refused, "{sel}: {r}");
        if refused {
            assert!(
                message(&r).contains("tier namespaces database "),
                "{sel}: {r}"
            );
        }
    }
    // A namespaceSelector tierguard cannot read exactly is any namespace.
    let obj = calico(
        "GlobalNetworkPolicy",
        None,
        "g",
        allow("team starts with 'pay'"),
    );
    let r = validate(enforce(), Review::create(GNP, "g", obj).json()).await;
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        message(&r)
            .contains("read as any namespace: tierguard does not judge the starts with operator"),
        "{r}"
    );
}

#[tokio::test]
async fn a_namespaced_policy_is_refused_only_in_a_tier_namespace() {
    let spec = json!({"selector": "role == 'db'",
        "ingress": [{"action": "Allow", "source": {"namespaceSelector": "all()"}}]});
    let in_ns = |ns: &str| {
        Review::create(
            CALICO_NP,
            "open",
            calico("NetworkPolicy", Some(ns), "open", spec.clone()),
        )
        .ns(ns)
        .json()
    };
    let mut state = three_tier_state();
    state.apply_namespace(Namespace::new(
        "shop",
        BTreeMap::from([("name".to_string(), "shop".to_string())]),
    ));
    let enforce = || {
        TestCtx::three_tier()
            .mode(Mode::Enforce)
            .state(state.clone())
            .build()
    };
    let r = validate(enforce(), in_ns("database")).await;
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        message(&r).contains("Calico NetworkPolicy database/open (tier default) may apply to pods of tier namespaces database"),
        "{r}"
    );
    let r = validate(enforce(), in_ns("shop")).await;
    assert_eq!(r["allowed"], true, "{r}");
    // Not in the index yet: retry.
    let r = validate(enforce(), in_ns("nowhere")).await;
    assert_eq!(r["allowed"], false, "{r}");
    assert!(message(&r).contains("not in tierguard's index yet"), "{r}");
}

#[tokio::test]
async fn policies_that_cannot_let_traffic_through_are_admitted() {
    let cases = [
        // Deny and Log only.
        json!({"selector": "all()", "ingress": [{"action": "Deny"}, {"action": "Log"}],
               "egress": [{"action": "Deny"}]}),
        // No rules at all (selected endpoints are denied at the tier's end).
        json!({"selector": "all()", "types": ["Ingress"]}),
    ];
    for spec in cases {
        let obj = calico("NetworkPolicy", Some("database"), "p", spec.clone());
        let r = validate(
            enforce(),
            Review::create(CALICO_NP, "p", obj).ns("database").json(),
        )
        .await;
        assert_eq!(r["allowed"], true, "{spec}: {r}");
    }
    // A DELETE removes rules.
    let old = calico(
        "NetworkPolicy",
        Some("database"),
        "p",
        json!({"ingress": [{"action": "Allow"}]}),
    );
    let r = validate(
        enforce(),
        Review::delete(CALICO_NP, "p", old).ns("database").json(),
    )
    .await;
    assert_eq!(r["allowed"], true, "{r}");
}

#[tokio::test]
async fn a_selector_that_seems_to_match_nothing_is_no_way_out() {
    // Calico rewrites `all()` in a GlobalNetworkPolicy's combined selector
    // when namespaceSelector is set: `!all()` then matches host endpoints.
    let spec = json!({"selector": "!all()", "namespaceSelector": "!has(x)",
        "applyOnForward": true, "doNotTrack": true, "ingress": [{"action": "Allow"}]});
    let obj = calico("GlobalNetworkPolicy", None, "nothing", spec);
    let r = validate(enforce(), Review::create(GNP, "nothing", obj).json()).await;
    assert_eq!(r["allowed"], false, "{r}");
    let spec = json!({"selector": "app in {}", "ingress": [{"action": "Allow"}]});
    let obj = calico("NetworkPolicy", Some("database"), "nothing", spec);
    let r = validate(
        enforce(),
        Review::create(CALICO_NP, "nothing", obj)
            .ns("database")
            .json(),
    )
    .await;
    assert_eq!(r["allowed"], false, "{r}");
}

#[tokio::test]
async fn host_endpoint_modes_and_unreadable_policies_are_refused() {
    let host = json!({"selector": "has(host)", "namespaceSelector": "global()",
        "doNotTrack": true, "applyOnForward": true, "ingress": [{"action": "Allow"}]});
    let obj = calico("GlobalNetworkPolicy", None, "h", host);
    let r = validate(enforce(), Review::create(GNP, "h", obj).json()).await;
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        message(&r).contains("host endpoints (doNotTrack, applyOnForward)"),
        "{r}"
    );

    let bad = json!({"selector": "role = 'db'", "ingress": [{"action": "allow"}]});
    let obj = calico("NetworkPolicy", Some("shop"), "bad", bad);
    let r = validate(
        enforce(),
        Review::create(CALICO_NP, "bad", obj).ns("shop").json(),
    )
    .await;
    assert_eq!(r["allowed"], false, "{r}");
    let msg = message(&r);
    assert!(
        msg.contains(
            "spec.selector: Invalid value: \"role = 'db'\": invalid Calico selector at character 6"
        ),
        "{msg}"
    );
    assert!(
        msg.contains("spec.ingress[0].action: Unsupported value: \"allow\""),
        "{msg}"
    );
}
