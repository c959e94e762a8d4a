//! Defence in depth: what slipped past the failurePolicy-Ignore Namespace
//! webhooks while tierguard was down (lying name labels, tier joins nobody
//! judged), against the same mocked API server as the baseline tests.

use super::*;

/// The baseline steps of a tier namespace that has none yet.
fn inject() -> Vec<Step> {
    vec![
        Step::Get("tierguard-default-deny", None),
        Step::Apply("tierguard-default-deny"),
        Step::Get("tierguard-allow-dns", None),
        Step::Apply("tierguard-allow-dns"),
    ]
}

fn defence_count(ctx: &Context, finding: &str) -> u64 {
    ctx.metrics
        .defence
        .get_or_create(&labels(&[("finding", finding)]))
        .get()
}

#[tokio::test]
async fn a_lying_or_missing_name_label_is_reset_on_every_namespace() {
    // Outside the tiers: the patch, then nothing (the mock is gone after
    // its steps, so any further request fails the reconcile).
    let (ctx, handle) = ctx();
    let liar = namespace("playground", &[("name", "backend")]);
    let server = tokio::spawn(serve(
        handle,
        "playground",
        vec![Step::PatchNamespace(
            serde_json::json!({"metadata": {"labels": {"name": "playground"}, "resourceVersion": "3"}}),
            namespace("playground", &[]),
        )],
    ));
    let action = reconcile(liar, ctx.clone()).await.expect("reconciled");
    assert_eq!(action, Action::await_change());
    timeout_after_1s(server).await;
    assert_eq!(defence_count(&ctx, "name-label-reset"), 1);
    // A tier namespace without one: the patch, then its baseline.
    let (ctx, handle) = super::tests::ctx();
    let server = tokio::spawn(serve(
        handle,
        "database",
        std::iter::once(Step::PatchNamespace(
            serde_json::json!({"metadata": {"labels": {"name": "database"}, "resourceVersion": "3"}}),
            namespace("database", &[]),
        ))
        .chain(inject())
        .collect(),
    ));
    reconcile(without(namespace("database", &[]), NAME_LABEL), ctx.clone())
        .await
        .expect("reconciled");
    timeout_after_1s(server).await;
    let m = ctx.metrics.render().expect("metrics");
    assert!(
        m.contains(r#"tierguard_defence_total{finding="name-label-reset"} 1"#),
        "{m}"
    );
    for finding in ["unjudged-join-reported", "unjudged-join-undone"] {
        assert!(
            m.contains(&format!(
                r#"tierguard_defence_total{{finding="{finding}"}} 0"#
            )),
            "{m}"
        );
    }
}

#[tokio::test]
async fn an_unjudged_join_is_reported_and_nothing_more_by_default() {
    // Joined backend with no stamp, and moved from frontend to backend: each
    // is reported and gets the baseline of the tier it is in; the namespace
    // is not patched.
    for ns in [
        namespace("analytics", &[("tierguard.io/tier", "backend")]),
        stamped(
            namespace("analytics", &[("tierguard.io/tier", "backend")]),
            "frontend",
        ),
    ] {
        let (ctx, handle) = ctx();
        let server = tokio::spawn(serve(handle, "analytics", inject()));
        let action = reconcile(ns, ctx.clone()).await.expect("reconciled");
        assert_eq!(action, Action::requeue(RESYNC));
        timeout_after_1s(server).await;
        assert_eq!(defence_count(&ctx, "unjudged-join-reported"), 1);
        assert_eq!(defence_count(&ctx, "unjudged-join-undone"), 0);
    }
    // A judged join (stamp = tier) and a tier by name (the policy's own
    // decision, whatever the label says) are not findings.
    for (name, ns) in [
        (
            "analytics",
            stamped(
                namespace("analytics", &[("tierguard.io/tier", "backend")]),
                "backend",
            ),
        ),
        (
            "database",
            namespace("database", &[("tierguard.io/tier", "database")]),
        ),
    ] {
        let (ctx, handle) = ctx();
        let server = tokio::spawn(serve(handle, name, inject()));
        reconcile(ns, ctx.clone()).await.expect("reconciled");
        timeout_after_1s(server).await;
        assert_eq!(defence_count(&ctx, "unjudged-join-reported"), 0, "{name}");
    }
}

#[tokio::test]
async fn undo_removes_an_unstamped_join_before_the_baseline() {
    // Labelled into backend with a lying name label while tierguard was
    // down: one patch fixes both, and the namespace, now in no tier, gets
    // no baseline.
    let (ctx, handle) = ctx_undoing(true);
    let slipped = namespace(
        "analytics",
        &[("tierguard.io/tier", "backend"), ("name", "backend")],
    );
    let server = tokio::spawn(serve(
        handle,
        "analytics",
        vec![Step::PatchNamespace(
            serde_json::json!({"metadata": {
                "labels": {"name": "analytics", "tierguard.io/tier": null},
                "resourceVersion": "3"
            }}),
            namespace("analytics", &[]),
        )],
    ));
    let action = reconcile(slipped, ctx.clone()).await.expect("reconciled");
    assert_eq!(
        action,
        Action::await_change(),
        "reconciled as out of the tiers"
    );
    timeout_after_1s(server).await;
    let m = ctx.metrics.render().expect("metrics");
    for finding in [
        "name-label-reset",
        "unjudged-join-reported",
        "unjudged-join-undone",
    ] {
        assert!(
            m.contains(&format!(
                r#"tierguard_defence_total{{finding="{finding}"}} 1"#
            )),
            "{finding}: {m}"
        );
    }
}

#[tokio::test]
async fn undo_restores_the_stamped_tier() {
    // Moved from frontend to backend: the label goes back to frontend, and
    // the namespace is reconciled as a frontend namespace.
    let (ctx, handle) = ctx_undoing(true);
    let moved = stamped(
        namespace("analytics", &[("tierguard.io/tier", "backend")]),
        "frontend",
    );
    let server = tokio::spawn(serve(
        handle,
        "analytics",
        std::iter::once(Step::PatchNamespace(
            serde_json::json!({"metadata": {
                "labels": {"tierguard.io/tier": "frontend"},
                "resourceVersion": "3"
            }}),
            stamped(
                namespace("analytics", &[("tierguard.io/tier", "frontend")]),
                "frontend",
            ),
        ))
        .chain(inject())
        .collect(),
    ));
    reconcile(moved, ctx.clone()).await.expect("reconciled");
    timeout_after_1s(server).await;
    assert_eq!(defence_count(&ctx, "unjudged-join-undone"), 1);
    assert_eq!(defence_count(&ctx, "name-label-reset"), 0);
    // A stamp naming no tier of the policy cannot be restored: the label
    // is removed.
    let (ctx, handle) = ctx_undoing(true);
    let server = tokio::spawn(serve(
        handle,
        "analytics",
        vec![Step::PatchNamespace(
            serde_json::json!({"metadata": {
                "labels": {"tierguard.io/tier": null},
                "resourceVersion": "3"
            }}),
            namespace("analytics", &[]),
        )],
    ));
    reconcile(
        stamped(
            namespace("analytics", &[("tierguard.io/tier", "backend")]),
            "retired-tier",
        ),
        ctx.clone(),
    )
    .await
    .expect("reconciled");
    timeout_after_1s(server).await;
    assert_eq!(defence_count(&ctx, "unjudged-join-undone"), 1);
}

#[tokio::test]
async fn a_refused_repair_fails_the_reconcile_before_the_baseline() {
    let (ctx, mut handle) = ctx_undoing(true);
    let server = tokio::spawn(async move {
        let (req, send) = handle.next_request().await.expect("a request");
        assert_eq!(req.method(), Method::PATCH);
        assert_eq!(req.uri().path(), "/api/v1/namespaces/analytics");
        send.send_response(failure(
            403,
            "Forbidden",
            "admission webhook denied the request",
        ));
    });
    let err = reconcile(
        namespace("analytics", &[("tierguard.io/tier", "backend")]),
        ctx.clone(),
    )
    .await
    .expect_err("the patch was refused");
    timeout_after_1s(server).await;
    assert!(err.to_string().contains("denied"), "{err}");
    assert_eq!(defence_count(&ctx, "unjudged-join-reported"), 1);
    assert_eq!(defence_count(&ctx, "unjudged-join-undone"), 0);
}

#[test]
fn log_values_are_bounded() {
    let long = "x".repeat(10_000);
    let b = bounded(&long);
    assert_eq!(b.chars().count(), LOG_VALUE_MAX + 1, "{b}");
    assert!(b.ends_with('…'));
    assert_eq!(bounded("backend"), "backend");
    let wide = "é".repeat(100);
    assert_eq!(bounded(&wide).chars().count(), LOG_VALUE_MAX + 1);
}
