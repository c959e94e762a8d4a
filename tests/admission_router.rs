//! The webhook router, request by request (`tower::ServiceExt::oneshot`),
//! over AdmissionReviews in the exact shape the API server sends:
//! `admission.k8s.io/v1`, `oldObject` on UPDATE and DELETE, `dryRun`,
//! `userInfo`.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tierguard::admin::{self, AdminState};
use tierguard::admission::{Ctx, router};
use tierguard::engine::tiers::Mode;
use tower::ServiceExt;

async fn call(ctx: Arc<Ctx>, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let resp = router(ctx, true)
        .oneshot(
            Request::post(path)
                .header("content-type", "application/json")
                .body(Body::from(body))
                .expect("request"),
        )
        .await
        .expect("infallible");
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    (status, bytes)
}

/// Posts a review; returns the `response` object.
async fn post(ctx: Arc<Ctx>, path: &str, review: Value) -> Value {
    let (status, body) = call(ctx, path, serde_json::to_vec(&review).expect("json")).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).expect("review json");
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(v["kind"], "AdmissionReview");
    assert_eq!(v["response"]["uid"], UID);
    v["response"].clone()
}

fn patch_of(resp: &Value) -> Option<Value> {
    let b64 = resp["patch"]
        .as_array()
        .map(|bytes| {
            bytes
                .iter()
                .map(|b| b.as_u64().unwrap_or(0) as u8)
                .collect::<Vec<u8>>()
        })
        .or_else(|| resp["patch"].as_str().map(decode_base64))?;
    serde_json::from_slice(&b64).ok()
}

fn decode_base64(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
}

// === mutation ===

#[tokio::test]
async fn mutation_adds_the_name_label_minimally() {
    // No labels at all: the labels map is created with only name.
    let r = post(
        TestCtx::three_tier().build(),
        "/mutate",
        Review::create(NS, "shop", namespace_no_labels("shop")).json(),
    )
    .await;
    assert_eq!(r["allowed"], true);
    assert_eq!(r["patchType"], "JSONPatch");
    assert_eq!(
        patch_of(&r),
        Some(json!([{"op": "add", "path": "/metadata/labels", "value": {"name": "shop"}}]))
    );
    // Other labels: only the one label is added.
    let r = post(
        TestCtx::three_tier().build(),
        "/mutate",
        Review::create(NS, "shop", namespace("shop", json!({"team": "a"}))).json(),
    )
    .await;
    assert_eq!(
        patch_of(&r),
        Some(json!([{"op": "add", "path": "/metadata/labels/name", "value": "shop"}]))
    );
    // Already there (reinvocation): no patch.
    let r = post(
        TestCtx::three_tier().build(),
        "/mutate",
        Review::new(
            NS,
            "UPDATE",
            "shop",
            namespace("shop", json!({"name": "shop"})),
        )
        .old(namespace("shop", json!({})))
        .json(),
    )
    .await;
    assert_eq!(r["allowed"], true);
    assert!(
        r.get("patch").is_none() && r.get("patchType").is_none(),
        "{r}"
    );
    // Other kinds pass untouched.
    let r = post(
        TestCtx::three_tier().build(),
        "/mutate",
        Review::create(NP, "p", netpol("backend", "p", json!({"podSelector": {}})))
            .ns("backend")
            .json(),
    )
    .await;
    assert!(r.get("patch").is_none());
}

/// The patch /mutate answers for a Namespace `obj` (CREATE), or `None`.
async fn mutation_of(obj: Value) -> Option<Value> {
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let r = post(
        TestCtx::three_tier().build(),
        "/mutate",
        Review::create(NS, &name, obj).json(),
    )
    .await;
    assert_eq!(r["allowed"], true, "{r}");
    patch_of(&r)
}

#[tokio::test]
async fn mutation_stamps_the_label_made_tier() {
    let joined = namespace(
        "analytics",
        json!({"name": "analytics", "tierguard.io/tier": "backend"}),
    );
    // No annotations: the map is created with only the stamp.
    assert_eq!(
        mutation_of(joined.clone()).await,
        Some(json!([{"op": "add", "path": "/metadata/annotations",
                     "value": {"tierguard.io/admitted-tier": "backend"}}]))
    );
    // Other annotations: only the stamp is added (RFC 6901 escaping).
    let mut annotated = joined.clone();
    annotated["metadata"]["annotations"] = json!({"team": "a"});
    assert_eq!(
        mutation_of(annotated).await,
        Some(
            json!([{"op": "add", "path": "/metadata/annotations/tierguard.io~1admitted-tier",
                     "value": "backend"}])
        )
    );
    // A stamp of another tier (a copied annotation) is overwritten.
    assert_eq!(
        mutation_of(stamped(joined.clone(), "frontend")).await,
        Some(
            json!([{"op": "add", "path": "/metadata/annotations/tierguard.io~1admitted-tier",
                     "value": "backend"}])
        )
    );
    // Stamped right (reinvocation): no patch.
    assert_eq!(mutation_of(stamped(joined, "backend")).await, None);
    // In no label-made tier: no stamp, and a stale one is removed. A tier by
    // name is the policy's decision, not a join: no stamp either.
    assert_eq!(
        mutation_of(namespace("shop", json!({"name": "shop"}))).await,
        None
    );
    let remove = Some(json!([{"op": "remove",
                              "path": "/metadata/annotations/tierguard.io~1admitted-tier"}]));
    assert_eq!(
        mutation_of(stamped(
            namespace("shop", json!({"name": "shop"})),
            "backend"
        ))
        .await,
        remove
    );
    assert_eq!(
        mutation_of(stamped(
            namespace(
                "backend",
                json!({"name": "backend", "tierguard.io/tier": "backend"})
            ),
            "backend"
        ))
        .await,
        remove
    );
    // A label naming no tier is no join.
    assert_eq!(
        mutation_of(namespace(
            "shop",
            json!({"name": "shop", "tierguard.io/tier": "nope"})
        ))
        .await,
        None
    );
}

#[tokio::test]
async fn mutation_is_idempotent_on_reinvocation() {
    // Both patches at once, applied, then mutated again: nothing more.
    for obj in [
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": "analytics", "labels": {"tierguard.io/tier": "backend"}}}),
        stamped(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "analytics"}}),
            "frontend",
        ),
        namespace_no_labels("analytics"),
    ] {
        let patch = mutation_of(obj.clone()).await.expect("a patch");
        let mut patched = obj.clone();
        let ops: json_patch::Patch = serde_json::from_value(patch.clone()).expect("a JSON patch");
        json_patch::patch(&mut patched, &ops).expect("the patch applies");
        assert_eq!(
            patched["metadata"]["labels"]["name"], "analytics",
            "{patch}"
        );
        assert_eq!(mutation_of(patched.clone()).await, None, "{patched}");
    }
}

#[tokio::test]
async fn a_stamp_that_disagrees_with_the_tier_is_refused() {
    // Past mutation (the object as sent, not as mutated): a join with no
    // stamp, a copied stamp of another tier, a stamp on no tier.
    for (obj, stamp, tier) in [
        (
            namespace(
                "analytics",
                json!({"name": "analytics", "tierguard.io/tier": "backend"}),
            ),
            "<absent>",
            "backend",
        ),
        (
            stamped(
                namespace(
                    "analytics",
                    json!({"name": "analytics", "tierguard.io/tier": "backend"}),
                ),
                "frontend",
            ),
            "frontend",
            "backend",
        ),
        (
            stamped(
                namespace("analytics", json!({"name": "analytics"})),
                "backend",
            ),
            "backend",
            "none",
        ),
    ] {
        let r = post(
            TestCtx::three_tier().build(),
            "/validate",
            Review::new(NS, "CREATE", "analytics", obj)
                .by("admin")
                .groups(&["system:masters"])
                .json(),
        )
        .await;
        assert_eq!(r["allowed"], false, "{r}");
        let msg = r["status"]["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains(&format!(
                "annotation tierguard.io/admitted-tier={stamp} does not match the tier its label places it in ({tier})"
            )),
            "{msg}"
        );
        assert!(
            msg.contains("Leave the tierguard.io/admitted-tier annotation to tierguard"),
            "{msg}"
        );
    }
}

// === namespaces ===

#[tokio::test]
async fn a_lying_name_label_is_refused() {
    let r = post(
        TestCtx::three_tier().build(),
        "/validate",
        Review::new(
            NS,
            "CREATE",
            "reporting",
            namespace("reporting", json!({"name": "backend"})),
        )
        .groups(&["system:authenticated"])
        .json(),
    )
    .await;
    assert_eq!(r["allowed"], false);
    let msg = r["status"]["message"].as_str().expect("message");
    assert!(
        msg.contains("label name=backend must equal the namespace's name"),
        "{msg}"
    );
    assert!(
        msg.contains("namespace reporting (not in a tier) -> tier database on TCP/5432"),
        "{msg}"
    );
    assert!(
        msg.contains("Leave the name label to tierguard"),
        "the advice for the problem: {msg}"
    );
}

#[tokio::test]
async fn joining_a_tier_needs_membership_rights() {
    // Stamped, as mutation leaves it.
    let obj = stamped(
        namespace(
            "analytics",
            json!({"name": "analytics", "tierguard.io/tier": "backend"}),
        ),
        "backend",
    );
    let old = namespace("analytics", json!({"name": "analytics"}));
    let r = post(
        TestCtx::three_tier().build(),
        "/validate",
        Review::new(NS, "UPDATE", "analytics", obj.clone())
            .old(old.clone())
            .groups(&["system:authenticated"])
            .json(),
    )
    .await;
    assert_eq!(r["allowed"], false);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("changes tier membership"),
        "{r}"
    );
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Ask a user listed in spec.membership of three-tier"),
        "{r}"
    );
    let r = post(
        TestCtx::three_tier().build(),
        "/validate",
        Review::new(NS, "UPDATE", "analytics", obj)
            .old(old)
            .by("admin")
            .groups(&["system:masters", "system:authenticated"])
            .json(),
    )
    .await;
    assert_eq!(r["allowed"], true, "{r}");
}

#[tokio::test]
async fn a_tier_conflict_is_refused_even_for_admins() {
    let obj = namespace(
        "database",
        json!({"name": "database", "tierguard.io/tier": "frontend"}),
    );
    let r = post(
        TestCtx::three_tier().build(),
        "/validate",
        Review::new(NS, "UPDATE", "database", obj)
            .old(namespace("database", json!({"name": "database"})))
            .by("admin")
            .groups(&["system:masters"])
            .json(),
    )
    .await;
    assert_eq!(r["allowed"], false);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains(
                "its name places it in tier database but its label places it in tier frontend"
            ),
        "{r}"
    );
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("A namespace belongs to one tier"),
        "{r}"
    );
}

// === network policies ===

/// Posts the CREATE of `frontend_to_database()` in `database` to /validate.
async fn post_oops(ctx: Arc<Ctx>) -> Value {
    post(
        ctx,
        "/validate",
        Review::create(NP, "oops", frontend_to_database())
            .ns("database")
            .json(),
    )
    .await
}

fn frontend_to_database() -> Value {
    netpol(
        "database",
        "oops",
        json!({
            "podSelector": {"matchLabels": {"app": "database"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"name": "frontend"}}}], "ports": [{"protocol": "TCP", "port": 5432}]}]
        }),
    )
}

#[tokio::test]
async fn a_policy_opening_a_forbidden_flow_is_refused_with_the_flow_and_rule() {
    let r = post_oops(TestCtx::three_tier().build()).await;
    assert_eq!(r["allowed"], false);
    let msg = r["status"]["message"].as_str().expect("message");
    assert!(
        msg.starts_with("tierguard: NetworkPolicy database/oops would open 1 forbidden flow:"),
        "{msg}"
    );
    assert!(msg.contains("tier frontend -> tier database on TCP/5432 is forbidden, but database's ingress allows it via database/oops ingress[0]"), "{msg}");
    assert!(msg.contains("spec.flows"), "{msg}");
    for line in msg.lines() {
        assert!(line.len() <= 260, "line too long for kubectl: {line}");
    }
    assert_eq!(r["auditAnnotations"]["verdict"], "refused");
    let flows: Value =
        serde_json::from_str(r["auditAnnotations"]["flows"].as_str().expect("flows"))
            .expect("json");
    assert_eq!(flows[0]["causes"][0][0]["rule"], "database/oops ingress[0]");
}

#[tokio::test]
async fn effective_mode_is_judged_on_the_blocking_pool_with_its_own_semantics() {
    // Walls: the database wall lets frontend in, refused.
    let refused = post_oops(TestCtx::three_tier().build()).await;
    assert_eq!(refused["allowed"], false, "{refused}");
    // Effective: frontend's own egress policies block the flow, so nothing
    // is opened; the judgement runs off the request threads and answers.
    let c = TestCtx::three_tier()
        .policy(|p| p.judge = tierguard::engine::tiers::Judge::Effective)
        .build();
    let admitted = post_oops(c).await;
    assert_eq!(admitted["allowed"], true, "{admitted}");
}

#[tokio::test]
async fn an_allowed_policy_is_admitted_and_dry_run_is_judged_the_same() {
    let ok = netpol(
        "database",
        "fine",
        json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "backend"}}}], "ports": [{"port": 5432}]}]}),
    );
    let r = post(
        TestCtx::three_tier().build(),
        "/validate",
        Review::create(NP, "fine", ok).ns("database").json(),
    )
    .await;
    assert_eq!(r["allowed"], true, "{r}");
    let r = post(
        TestCtx::three_tier().build(),
        "/validate",
        Review::new(NP, "CREATE", "oops", frontend_to_database())
            .ns("database")
            .dry_run()
            .json(),
    )
    .await;
    assert_eq!(r["allowed"], false, "dry-run is judged too");
}

#[tokio::test]
async fn updates_are_judged_against_the_old_version() {
    let old = netpol(
        "backend",
        "allow-frontend-to-backend",
        json!({"podSelector": {"matchLabels": {"app": "backend"}}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"name": "frontend"}}, "podSelector": {"matchLabels": {"app": "frontend"}}}], "ports": [{"protocol": "TCP", "port": 80}]}]}),
    );
    let widened = netpol(
        "backend",
        "allow-frontend-to-backend",
        json!({"podSelector": {"matchLabels": {"app": "backend"}}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"name": "frontend"}}}]}]}),
    );
    let r = post(
        TestCtx::three_tier().build(),
        "/validate",
        Review::new(NP, "UPDATE", "allow-frontend-to-backend", widened)
            .ns("backend")
            .old(old)
            .json(),
    )
    .await;
    assert_eq!(r["allowed"], false);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("TCP/1-79, TCP/81-65535"),
        "{r}"
    );
}

#[tokio::test]
async fn deleting_the_baseline_is_refused_but_the_guard_may_manage_it() {
    let old = netpol(
        "database",
        "tierguard-default-deny",
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
    );
    let mut managed = old.clone();
    managed["metadata"]["labels"] = json!({"app.kubernetes.io/managed-by": "tierguard"});
    let r = post(
        TestCtx::three_tier().build(),
        "/validate",
        Review::new(NP, "DELETE", "tierguard-default-deny", Value::Null)
            .ns("database")
            .old(managed.clone())
            .json(),
    )
    .await;
    assert_eq!(r["allowed"], false);
    let msg = r["status"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(
            "deleting database/tierguard-default-deny is refused: it is part of the baseline"
        ),
        "{msg}"
    );
    assert!(msg.contains("spec.baseline"), "{msg}");
    // An unmanaged policy of another name: judged by the flows it opens.
    let r = post(
        TestCtx::three_tier().build(),
        "/validate",
        Review::new(NP, "DELETE", "allow-backend-to-database", Value::Null)
            .ns("database")
            .old(netpol(
                "database",
                "allow-backend-to-database",
                json!({"podSelector": {}}),
            ))
            .json(),
    )
    .await;
    assert_eq!(
        r["allowed"], true,
        "removing an allow rule opens nothing: {r}"
    );
    // The guard re-applying the same spec (server-side apply) is fine.
    let r = post(
        TestCtx::three_tier().build(),
        "/validate",
        Review::new(NP, "UPDATE", "tierguard-default-deny", managed.clone())
            .ns("database")
            .old(managed.clone())
            .by(GUARD)
            .json(),
    )
    .await;
    assert_eq!(r["allowed"], true, "{r}");
    // A changed spec (one that opens nothing): refused for a user, admitted
    // for a baseline editor (the guard).
    let mut changed = managed.clone();
    changed["spec"]["ingress"] = json!([]);
    let update_by = |user: &'static str| {
        Review::new(NP, "UPDATE", "tierguard-default-deny", changed.clone())
            .ns("database")
            .old(managed.clone())
            .by(user)
            .json()
    };
    let r = post(
        TestCtx::three_tier().build(),
        "/validate",
        update_by("alice"),
    )
    .await;
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("changing database/tierguard-default-deny is refused"),
        "{r}"
    );
    let r = post(TestCtx::three_tier().build(), "/validate", update_by(GUARD)).await;
    assert_eq!(r["allowed"], true, "a baseline editor may change it: {r}");
}

#[tokio::test]
async fn an_invalid_policy_is_refused_with_the_field_path() {
    let bad = netpol(
        "database",
        "bad",
        json!({"podSelector": {}, "ingress": [{"ports": [{"port": 80, "endPort": 70}]}]}),
    );
    let r = post(
        TestCtx::three_tier().build(),
        "/validate",
        Review::create(NP, "bad", bad).ns("database").json(),
    )
    .await;
    assert_eq!(r["allowed"], false);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("spec.ingress[0].ports[0].endPort"),
        "{r}"
    );
}

// === audit mode ===

#[tokio::test]
async fn audit_mode_admits_with_warnings_and_annotations() {
    let c = TestCtx::three_tier().mode(Mode::Audit).build();
    let r = post_oops(c.clone()).await;
    assert_eq!(r["allowed"], true);
    let warnings = r["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1);
    let w = warnings[0].as_str().unwrap_or_default();
    assert!(
        w.starts_with("tierguard (audit): tier frontend -> tier database on TCP/5432"),
        "{w}"
    );
    assert!(w.len() <= 256);
    assert_eq!(r["auditAnnotations"]["verdict"], "warned");
    let metrics = c.metrics.render().expect("metrics");
    assert!(
        metrics.contains(
            r#"tierguard_violations_total{from="tier:frontend",to="tier:database",mode="audit"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains(r#"verdict="warned""#), "{metrics}");
}

/// Found by fuzz/fuzz_targets/admission.rs (the metrics grew past 256 KiB):
/// the `kind` label named an unexpected request's kind as its body spelt
/// it, so each distinct kind kept a time series for the life of the process.
#[tokio::test]
async fn unexpected_kinds_share_one_metric_label() {
    let c = TestCtx::three_tier().build();
    for i in 0..50 {
        let kind = format!("Fuzzed{i}");
        let kind: &'static str = Box::leak(kind.into_boxed_str());
        let obj = json!({"apiVersion": "example.com/v1", "kind": kind, "metadata": {"name": "x"}});
        let r = post(
            c.clone(),
            "/validate",
            Review::create(("example.com", "v1", kind), "x", obj)
                .ns("frontend")
                .json(),
        )
        .await;
        assert_eq!(r["allowed"], false, "an unexpected kind is not judged: {r}");
    }
    let metrics = c.metrics.render().expect("metrics");
    assert!(!metrics.contains("Fuzzed"), "{metrics}");
    let series = metrics
        .lines()
        .filter(|l| l.starts_with("tierguard_admission_requests_total{"))
        .count();
    assert_eq!(series, 1, "{metrics}");
    assert!(
        metrics.contains(r#"tierguard_admission_requests_total{kind="other",operation="Create",verdict="refused",endpoint="validate"} 50"#),
        "{metrics}"
    );
}

// === not synced, pods ===

#[tokio::test]
async fn an_unsynced_index_refuses_with_a_retriable_reason() {
    let r = post_oops(TestCtx::three_tier().mode(Mode::Enforce).unsynced().build()).await;
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 503);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not synced"),
        "{r}"
    );
    let r = post_oops(TestCtx::three_tier().mode(Mode::Audit).unsynced().build()).await;
    assert_eq!(r["allowed"], true, "audit mode never refuses");
}

fn pod(ns: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": ns}, "spec": {"containers": [{"name": "c", "image": "x"}]}})
}

#[tokio::test]
async fn pods_wait_for_the_baseline_in_tier_namespaces() {
    let c = TestCtx::three_tier().build();
    let r = post(
        c.clone(),
        "/validate",
        Review::create(POD, "p", pod("database"))
            .ns("database")
            .json(),
    )
    .await;
    assert_eq!(r["allowed"], true, "database has its baseline: {r}");
    c.index
        .write()
        .expect("lock")
        .delete_policy("database", "tierguard-allow-dns");
    let r = post(
        c.clone(),
        "/validate",
        Review::create(POD, "p", pod("database"))
            .ns("database")
            .json(),
    )
    .await;
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 503);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("baseline (tierguard-allow-dns) is not in place yet"),
        "{r}"
    );
    let r = post(
        c,
        "/validate",
        Review::create(POD, "p", pod("frontend"))
            .ns("frontend")
            .json(),
    )
    .await;
    assert_eq!(r["allowed"], true);
}

// === bad requests ===

#[tokio::test]
async fn malformed_requests_get_a_clear_4xx() {
    let cases: Vec<(Vec<u8>, StatusCode, &str)> =
        vec![
        (
            b"{not json".to_vec(),
            StatusCode::BAD_REQUEST,
            "malformed AdmissionReview",
        ),
        (
            br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":null}"#
                .to_vec(),
            StatusCode::BAD_REQUEST,
            "expected apiVersion admission.k8s.io/v1",
        ),
        (
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "has no request",
        ),
        (
            serde_json::to_vec(&{
                let mut r = Review::new(NS, "CREATE", "x", namespace_no_labels("x")).by("a").json();
                r["request"]["uid"] = json!("");
                r
            })
            .expect("json"),
            StatusCode::BAD_REQUEST,
            "no uid",
        ),
        (
            vec![b' '; tierguard::admission::DEFAULT_MAX_BODY + 10],
            StatusCode::PAYLOAD_TOO_LARGE,
            "over 3145728 bytes",
        ),
    ];
    for (body, status, fragment) in cases {
        let (got, text) = call(TestCtx::three_tier().build(), "/validate", body).await;
        let text = String::from_utf8_lossy(&text);
        assert_eq!(got, status, "{text}");
        assert!(text.contains(fragment), "{text}");
    }
}

#[tokio::test]
async fn requests_it_cannot_judge_are_refused_with_a_reason() {
    // No object on CREATE.
    let r = post(
        TestCtx::three_tier().build(),
        "/validate",
        Review::new(NP, "CREATE", "x", Value::Null)
            .ns("database")
            .json(),
    )
    .await;
    assert_eq!(r["allowed"], false);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("the request has no object"),
        "{r}"
    );
    // An unexpected kind.
    let r = post(
        TestCtx::three_tier().build(),
        "/validate",
        Review::new(
            ("apps", "v1", "Deployment"),
            "CREATE",
            "d",
            json!({"kind": "Deployment"}),
        )
        .ns("database")
        .json(),
    )
    .await;
    assert_eq!(r["allowed"], false);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not apps/Deployment"),
        "{r}"
    );
    // An object of the wrong shape.
    let r = post(TestCtx::three_tier().build(), "/validate", Review::create(NP, "x", json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "x"}, "spec": {"ingress": "everything"}})).ns("database").json()).await;
    assert_eq!(r["allowed"], false);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("cannot read the object: spec.ingress: invalid type"),
        "{r}"
    );
    // The path goes down to the field.
    let r = post(TestCtx::three_tier().build(), "/validate", Review::create(NP, "x", json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "x"}, "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 80, "protocol": 6}]}]}})).ns("database").json()).await;
    assert_eq!(r["allowed"], false);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("spec.ingress[0].ports[0].protocol: invalid type"),
        "{r}"
    );
}

#[tokio::test]
async fn a_stalled_body_hits_the_deadline() {
    let c = TestCtx::three_tier()
        .deadline(std::time::Duration::from_millis(200))
        .build();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    tx.send(Ok(b"{\"apiVersion\":".to_vec()))
        .await
        .expect("send");
    let body = Body::from_stream(tokio_stream_from(rx));
    let started = std::time::Instant::now();
    let resp = router(c, false)
        .oneshot(Request::post("/validate").body(body).expect("request"))
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    drop(tx);
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

// === admin ===

#[tokio::test]
async fn readiness_follows_the_index_and_metrics_are_prometheus_text() {
    let get = |c: Arc<Ctx>, path: &'static str| async move {
        let state = AdminState {
            index: c.index.clone(),
            metrics: c.metrics.clone(),
            shutdown: tokio_util::sync::CancellationToken::new(),
        };
        let resp = admin::router(Arc::new(state))
            .oneshot(Request::get(path).body(Body::empty()).expect("req"))
            .await
            .expect("infallible");
        let status = resp.status();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    assert_eq!(
        get(
            TestCtx::three_tier().mode(Mode::Enforce).unsynced().build(),
            "/readyz"
        )
        .await
        .0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        get(TestCtx::three_tier().build(), "/readyz").await.0,
        StatusCode::OK
    );
    assert_eq!(
        get(TestCtx::three_tier().build(), "/healthz").await.0,
        StatusCode::OK
    );
    let c = TestCtx::three_tier().build();
    let _ = post_oops(c.clone()).await;
    let (status, text) = get(c, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains(r#"tierguard_admission_requests_total{kind="NetworkPolicy",operation="Create",verdict="refused",endpoint="validate"} 1"#), "{text}");
    assert!(
        text.contains("tierguard_admission_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("# EOF"));
}

// === hostile input ===

fn exists_selector(keys: usize) -> Value {
    let exprs: Vec<Value> = (0..keys)
        .map(|i| json!({"key": format!("k{i}"), "operator": "Exists"}))
        .collect();
    json!({"matchExpressions": exprs})
}

#[tokio::test]
async fn a_selector_over_the_limit_is_refused_naming_field_and_limit() {
    // Once a stack overflow that killed the process (6,000 keys).
    let big = netpol(
        "database",
        "huge",
        json!({"podSelector": exists_selector(6_000), "ingress": [{}]}),
    );
    let ctx = TestCtx::three_tier().build();
    let r = post(
        ctx.clone(),
        "/validate",
        Review::create(NP, "huge", big).ns("database").json(),
    )
    .await;
    assert_eq!(r["allowed"], false, "{r}");
    let msg = r["status"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("exceeds tierguard's limits: spec.podSelector: Too many: 6000"),
        "{msg}"
    );
    // The guard is still there and judging.
    let r = post_oops(ctx).await;
    assert_eq!(r["allowed"], false, "{r}");
}

#[tokio::test]
async fn many_requirements_on_one_key_are_refused_at_once() {
    // Once 40,000 NotIn requirements pinned a worker for seconds.
    let exprs: Vec<Value> = (0..40_000)
        .map(|i| json!({"key": "app", "operator": "NotIn", "values": [i.to_string()]}))
        .collect();
    let np = netpol(
        "database",
        "notin",
        json!({"podSelector": {"matchExpressions": exprs}, "ingress": [{}]}),
    );
    let r = post(
        TestCtx::three_tier().build(),
        "/validate",
        Review::create(NP, "notin", np).ns("database").json(),
    )
    .await;
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Too many: 40000"),
        "{r}"
    );
}

// === nothing admitted unjudged ===

fn refused_without_judgement(r: &Value) -> String {
    assert_eq!(r["allowed"], false, "{r}");
    let msg = r["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(msg.starts_with("tierguard cannot judge"), "{msg}");
    msg
}

#[tokio::test]
async fn a_namespace_update_without_its_old_object_is_not_admitted() {
    // Leaving tier database: without oldObject the change cannot be seen.
    let r = post(
        TestCtx::three_tier().build(),
        "/validate",
        Review::update(
            NS,
            "database",
            namespace("database", json!({"name": "database"})),
            Value::Null,
        )
        .json(),
    )
    .await;
    let msg = refused_without_judgement(&r);
    assert!(msg.contains("the request has no old object"), "{msg}");
}

#[tokio::test]
async fn deleting_a_baseline_policy_without_its_old_object_is_not_admitted() {
    let r = post(
        TestCtx::three_tier().build(),
        "/validate",
        Review::delete(NP, "tierguard-default-deny", Value::Null)
            .ns("database")
            .json(),
    )
    .await;
    refused_without_judgement(&r);
}

#[tokio::test]
async fn connect_on_a_network_policy_is_not_admitted() {
    let r = post(
        TestCtx::three_tier().build(),
        "/validate",
        Review::new(NP, "CONNECT", "p", Value::Null)
            .ns("database")
            .json(),
    )
    .await;
    let msg = refused_without_judgement(&r);
    assert!(
        msg.contains("does not judge Connect on NetworkPolicy"),
        "{msg}"
    );
}

#[tokio::test]
async fn an_oversized_review_from_the_api_server_is_answered_as_a_review() {
    // A body over the limit whose first bytes carry the review's uid gets an
    // AdmissionReview (HTTP 200, allowed: false), not a 413 that a webhook
    // with failurePolicy Ignore would turn into an admission.
    let ctx = TestCtx::three_tier().max_body(64 * 1024).build();
    let mut review = deny_all_create("database", "big").json();
    review["request"]["object"]["metadata"]["annotations"] =
        json!({"padding": "x".repeat(100_000)});
    let body = api_server_bytes(&review);
    let (status, bytes) = call(ctx.clone(), "/validate", body.clone()).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    let v: Value = serde_json::from_slice(&bytes).expect("review");
    assert_eq!(v["response"]["uid"], UID);
    assert_eq!(v["response"]["allowed"], false);
    assert!(
        v["response"]["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("over 65536 bytes"),
        "{v}"
    );
    // In audit mode: admitted, with a warning.
    let audit = TestCtx::three_tier()
        .mode(Mode::Audit)
        .max_body(64 * 1024)
        .build();
    let (_, bytes) = call(audit, "/validate", body).await;
    let v: Value = serde_json::from_slice(&bytes).expect("review");
    assert_eq!(v["response"]["allowed"], true);
    assert!(
        v["response"]["warnings"][0]
            .as_str()
            .unwrap_or_default()
            .contains("cannot judge")
    );
}

// === what the index does not know ===

#[tokio::test]
async fn a_stale_index_refuses_in_enforce_and_fails_readiness() {
    use std::time::{Duration, Instant};
    use tierguard::index::Watched;
    let ctx = TestCtx::three_tier().build();
    {
        let mut index = ctx.index.write().expect("index");
        // Failing every 30 s (kube's longest backoff) for the last 120 s.
        let now = Instant::now();
        for ago in [120, 90, 60, 30, 0] {
            let at = now.checked_sub(Duration::from_secs(ago)).expect("uptime");
            index.watch_failed(Watched::NetworkPolicy, at);
        }
    }
    let r = post(
        ctx.clone(),
        "/validate",
        deny_all_create("database", "fine").json(),
    )
    .await;
    let msg = refused_without_judgement(&r);
    assert!(
        msg.contains("NetworkPolicy watch has been failing for 120 s"),
        "{msg}"
    );
    assert_eq!(r["status"]["code"], 503, "retriable");
    let state = AdminState {
        index: ctx.index.clone(),
        metrics: ctx.metrics.clone(),
        shutdown: tokio_util::sync::CancellationToken::new(),
    };
    let resp = admin::router(Arc::new(state))
        .oneshot(Request::get("/readyz").body(Body::empty()).expect("req"))
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("index stale"),
        "{body:?}"
    );
    // An event of the kind: fresh again.
    ctx.index
        .write()
        .expect("index")
        .watch_ok(Watched::NetworkPolicy);
    let r = post(ctx, "/validate", deny_all_create("database", "fine").json()).await;
    assert_eq!(r["allowed"], true, "{r}");
}

#[tokio::test]
async fn unreadable_stored_policies_make_their_namespace_unjudgeable() {
    let ctx = TestCtx::three_tier().build();
    // Stored while tierguard was down: over its limit of requirements.
    let huge: k8s_openapi::api::networking::v1::NetworkPolicy = serde_json::from_value(netpol(
        "database",
        "huge",
        json!({"podSelector": exists_selector(300)}),
    ))
    .expect("np");
    assert!(
        ctx.index
            .write()
            .expect("index")
            .apply_policy(&huge)
            .is_err()
    );
    let create = |ns: &str, name: &str| deny_all_create(ns, name).json();
    let r = post(ctx.clone(), "/validate", create("database", "fine")).await;
    let msg = refused_without_judgement(&r);
    assert!(
        msg.contains(
            "namespace database holds NetworkPolicies tierguard cannot read (huge; first:"
        ),
        "{msg}"
    );
    assert!(msg.contains("spec.podSelector: Too many: 300"), "{msg}");
    // Relabelling the namespace is not judged either.
    let r = post(
        ctx.clone(),
        "/validate",
        Review::update(
            NS,
            "database",
            namespace("database", json!({"name": "database", "x": "y"})),
            namespace("database", json!({"name": "database"})),
        )
        .json(),
    )
    .await;
    refused_without_judgement(&r);
    // Other namespaces are judged as before.
    let r = post(ctx.clone(), "/validate", create("backend", "fine")).await;
    assert_eq!(r["allowed"], true, "{r}");
    // Replacing or deleting the unreadable policy itself is judged.
    let r = post(ctx.clone(), "/validate", create("database", "huge")).await;
    assert_eq!(r["allowed"], true, "{r}");
    let r = post(
        ctx.clone(),
        "/validate",
        Review::delete(
            NP,
            "huge",
            netpol("database", "huge", json!({"podSelector": {}})),
        )
        .ns("database")
        .json(),
    )
    .await;
    assert_eq!(r["allowed"], true, "{r}");
    // Audit mode admits with the reason.
    let audit = TestCtx::three_tier().mode(Mode::Audit).build();
    assert!(
        audit
            .index
            .write()
            .expect("index")
            .apply_policy(&huge)
            .is_err()
    );
    let r = post(audit, "/validate", create("database", "fine")).await;
    assert_eq!(r["allowed"], true, "{r}");
    assert!(r["warnings"].to_string().contains("cannot read"), "{r}");
}

#[tokio::test]
async fn a_body_stalling_after_its_uid_is_answered_as_a_review() {
    let c = TestCtx::three_tier()
        .deadline(std::time::Duration::from_millis(200))
        .build();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let head = format!(
        r#"{{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{{"uid":"{UID}","kind":"#
    );
    tx.send(Ok(head.into_bytes())).await.expect("send");
    let body = Body::from_stream(tokio_stream_from(rx));
    let resp = router(c, false)
        .oneshot(Request::post("/validate").body(body).expect("request"))
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let v: Value = serde_json::from_slice(&bytes).expect("review");
    assert_eq!(v["response"]["uid"], UID);
    let msg = refused_without_judgement(&v["response"]);
    assert!(msg.contains("did not complete within 200 ms"), "{msg}");
    drop(tx);
}

// === IsolationPolicy objects ===

/// The repository's policy as the API server stores it (defaults filled
/// in, server-set metadata, a status).
fn isolation_policy_object(edit: impl FnOnce(&mut Value)) -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/three-tier.yaml"
    ))
    .expect("policy");
    let mut obj: Value = serde_yaml_ng::from_str(&text).expect("yaml");
    obj["metadata"]["uid"] = json!("0c1e2f");
    obj["metadata"]["generation"] = json!(4);
    obj["metadata"]["managedFields"] = json!([{"manager": "kubectl", "operation": "Apply"}]);
    obj["spec"]["membership"]["users"] = json!([]);
    obj["status"] = json!({"observedGeneration": 3, "conditions": []});
    edit(&mut obj);
    obj
}

#[tokio::test]
async fn isolation_policies_are_validated_with_field_paths_in_every_mode() {
    for mode in [Mode::Enforce, Mode::Audit] {
        let ctx = || TestCtx::three_tier().mode(mode).build();
        let good = isolation_policy_object(|_| {});
        let r = post(
            ctx(),
            "/validate",
            Review::create(ISOP, "three-tier", good.clone()).json(),
        )
        .await;
        assert_eq!(r["allowed"], true, "{mode:?}: {r}");

        let bad = isolation_policy_object(|o| {
            o["spec"]["mode"] = json!("strict");
            o["spec"]["flows"][1]["to"] = json!("tier:nowhere");
        });
        let r = post(
            ctx(),
            "/validate",
            Review::update(ISOP, "three-tier", bad, good.clone()).json(),
        )
        .await;
        assert_eq!(
            r["allowed"], false,
            "{mode:?}: an invalid policy admitted: {r}"
        );
        assert_eq!(r["status"]["code"], 422);
        let msg = r["status"]["message"].as_str().unwrap_or_default();
        assert!(
            msg.starts_with("IsolationPolicy three-tier is invalid:"),
            "{msg}"
        );
        assert!(
            msg.contains("spec.mode: Unsupported value: \"strict\""),
            "{msg}"
        );
        assert!(
            msg.contains("spec.flows[1].to: Invalid value: \"tier:nowhere\""),
            "{msg}"
        );

        // A field outside the schema names its path.
        let odd = isolation_policy_object(|o| o["spec"]["tiers"][0]["label"] = json!("x"));
        let r = post(
            ctx(),
            "/validate",
            Review::create(ISOP, "three-tier", odd).json(),
        )
        .await;
        assert_eq!(r["allowed"], false, "{r}");
        let msg = r["status"]["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("spec.tiers[0]") && msg.contains("label"),
            "{msg}"
        );

        // Unreadable: refused too, audit mode or not.
        let r = post(
            ctx(),
            "/validate",
            Review::create(ISOP, "three-tier", Value::Null).json(),
        )
        .await;
        assert_eq!(
            r["allowed"], false,
            "{mode:?}: an unreadable policy admitted: {r}"
        );

        // Deleting is not judged.
        let r = post(
            ctx(),
            "/validate",
            Review::delete(ISOP, "three-tier", good).json(),
        )
        .await;
        assert_eq!(r["allowed"], true, "{r}");
    }
}

#[tokio::test]
async fn a_policy_in_a_namespace_the_index_has_not_seen_is_refused_for_retry() {
    // The three-tier world holds frontend, backend and database; "staging"
    // was just created, and its watch event has not reached the index.
    let open = netpol(
        "staging",
        "open",
        json!({"podSelector": {}, "ingress": [{}]}),
    );
    let review = Review::create(NP, "open", open).ns("staging").json();
    let r = post(
        TestCtx::three_tier().watched().build(),
        "/validate",
        review.clone(),
    )
    .await;
    assert_eq!(r["allowed"], false, "{r}");
    let msg = r["status"]["message"].as_str().expect("message");
    assert!(
        msg.contains("namespace staging is not in tierguard's index yet"),
        "{msg}"
    );
    // Retriable: 503 ServiceUnavailable, as while tierguard starts.
    assert_eq!(r["status"]["code"], 503, "{r}");
    assert_eq!(r["status"]["reason"], "ServiceUnavailable", "{r}");
    // A world loaded by `serve --world` has no watches: a namespace it does
    // not declare exists with its automatic label only, in no tier.
    let r = post(TestCtx::three_tier().build(), "/validate", review).await;
    assert_eq!(r["allowed"], true, "{r}");
}
