//! The controller against a mocked API server (kube's `tower_test`
//! pattern): each scenario asserts every request's method, path and body.
//! Every mocked API server runs under [`timeout_after_1s`], so code that
//! makes fewer requests than the scenario expects fails the test instead of
//! hanging it. Leader election: [`leader`]; what slipped past the
//! failurePolicy-Ignore Namespace webhooks: [`defence`].

mod defence;
mod leader;

use super::*;
use crate::engine::state::ADMITTED_TIER_ANNOTATION;
use http::{Method, Request, Response};
use kube::client::Body;
use std::collections::BTreeMap;
use tokio::task::JoinHandle;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// Waits for a mocked API server's scenario to finish, failing the test if
/// it has not after a second (kube-rs's `timeout_after_1s`): a scenario only
/// finishes once every request it expects has been made.
async fn timeout_after_1s<T>(server: JoinHandle<T>) -> T {
    tokio::time::timeout(Duration::from_secs(1), server)
        .await
        .expect("the mocked API server saw every expected request within 1 s")
        .expect("the scenario's assertions held")
}

/// A kube client talking to a mocked API server, and the server's handle.
fn mock_client() -> (Client, Handle) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(svc, "default"), handle)
}

/// A `Status` failure as the API server sends it.
fn failure(code: u16, reason: &str, message: &str) -> Response<Body> {
    json(
        code,
        &serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code, "message": message}),
    )
}

fn policy() -> IsolationPolicy {
    crate::model::isolationpolicy::load_file(std::path::Path::new("policies/three-tier.yaml"))
        .expect("policy")
}

fn ctx() -> (Arc<Context>, Handle) {
    ctx_undoing(false)
}

/// A context whose `--undo-unjudged-joins` is `undo`.
fn ctx_undoing(undo: bool) -> (Arc<Context>, Handle) {
    let (client, handle) = mock_client();
    (
        Arc::new(Context {
            client,
            policy: crate::live::Live::fixed(policy()),
            metrics: Arc::new(Metrics::new()),
            remove_on_leave: false,
            undo_unjudged_joins: undo,
            failures: Default::default(),
            reports: None,
        }),
        handle,
    )
}

/// A namespace as tierguard's webhook stores it: `name=<name>` unless
/// `labels` say otherwise.
fn namespace(name: &str, labels: &[(&str, &str)]) -> Arc<corev1::Namespace> {
    let mut all = BTreeMap::from([(NAME_LABEL.to_string(), name.to_string())]);
    all.extend(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let mut ns = corev1::Namespace::default();
    ns.metadata.name = Some(name.into());
    ns.metadata.resource_version = Some("3".into());
    ns.metadata.labels = Some(all);
    Arc::new(ns)
}

/// `ns` with the tier stamp `stamp`.
fn stamped(ns: Arc<corev1::Namespace>, stamp: &str) -> Arc<corev1::Namespace> {
    let mut ns = (*ns).clone();
    ns.metadata.annotations = Some(BTreeMap::from([(
        ADMITTED_TIER_ANNOTATION.to_string(),
        stamp.to_string(),
    )]));
    Arc::new(ns)
}

/// `ns` without label `key`.
fn without(ns: Arc<corev1::Namespace>, key: &str) -> Arc<corev1::Namespace> {
    let mut ns = (*ns).clone();
    if let Some(l) = ns.metadata.labels.as_mut() {
        l.remove(key);
    }
    Arc::new(ns)
}

fn json<T: serde::Serialize>(status: u16, body: &T) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Body::from(serde_json::to_vec(body).expect("json")))
        .expect("response")
}

fn not_found() -> Response<Body> {
    failure(404, "NotFound", "not found")
}

/// What the mocked API server sees, in order.
enum Step {
    /// GET the policy; answer with it, or 404.
    Get(&'static str, Option<Box<netv1::NetworkPolicy>>),
    /// Server-side apply of the policy.
    Apply(&'static str),
    /// Replace (PUT) of the policy.
    Replace(&'static str),
    /// GET failing with a server error.
    GetFails(&'static str),
    /// DELETE of the policy.
    Delete(&'static str),
    /// A JSON merge patch of the Namespace itself, equal to the first;
    /// answered with the second.
    PatchNamespace(serde_json::Value, Arc<corev1::Namespace>),
}

async fn serve(mut handle: Handle, ns: &'static str, steps: Vec<Step>) {
    let path =
        |name: &str| format!("/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/{name}");
    for step in steps {
        let (req, send) = handle
            .next_request()
            .await
            .expect("the controller made a request");
        let uri = req.uri().to_string();
        match step {
            Step::PatchNamespace(want, answer) => {
                assert_eq!(req.method(), Method::PATCH, "{uri}");
                assert_eq!(req.uri().path(), format!("/api/v1/namespaces/{ns}"));
                assert!(uri.contains("fieldManager=tierguard"), "{uri}");
                assert_eq!(
                    req.headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok()),
                    Some("application/merge-patch+json")
                );
                let body = req.into_body().collect_bytes().await.expect("body");
                let sent: serde_json::Value = serde_json::from_slice(&body).expect("json");
                assert_eq!(sent, want, "the namespace patch");
                send.send_response(json(200, &*answer));
            }
            Step::Get(name, answer) => {
                assert_eq!(req.method(), Method::GET);
                assert_eq!(req.uri().path(), path(name));
                send.send_response(match answer {
                    Some(p) => json(200, &*p),
                    None => not_found(),
                });
            }
            Step::GetFails(name) => {
                assert_eq!(req.uri().path(), path(name));
                send.send_response(failure(500, "InternalError", "etcd is down"));
            }
            Step::Apply(name) => {
                assert_eq!(req.method(), Method::PATCH);
                assert_eq!(req.uri().path(), path(name));
                assert!(
                    uri.contains("fieldManager=tierguard") && uri.contains("force=true"),
                    "{uri}"
                );
                assert_eq!(
                    req.headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok()),
                    Some("application/apply-patch+yaml")
                );
                let body = req.into_body().collect_bytes().await.expect("body");
                let sent: netv1::NetworkPolicy =
                    serde_json::from_slice(&body).expect("a NetworkPolicy");
                assert_eq!(sent.metadata.name.as_deref(), Some(name));
                assert_eq!(
                    sent.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(MANAGED_BY_LABEL))
                        .map(String::as_str),
                    Some(MANAGED_BY_VALUE)
                );
                send.send_response(json(200, &sent));
            }
            Step::Delete(name) => {
                assert_eq!(req.method(), Method::DELETE);
                assert_eq!(req.uri().path(), path(name));
                send.send_response(json(
                    200,
                    &serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                ));
            }
            Step::Replace(name) => {
                assert_eq!(req.method(), Method::PUT);
                assert_eq!(req.uri().path(), path(name));
                let body = req.into_body().collect_bytes().await.expect("body");
                let sent: netv1::NetworkPolicy =
                    serde_json::from_slice(&body).expect("a NetworkPolicy");
                assert_eq!(
                    sent.metadata.resource_version.as_deref(),
                    Some("7"),
                    "replace carries the live resourceVersion"
                );
                send.send_response(json(200, &sent));
            }
        }
    }
}

fn live(name: &str, ns: &str) -> Box<netv1::NetworkPolicy> {
    let mut p = baseline_policies(&policy(), ns)
        .into_iter()
        .find(|p| p.metadata.name.as_deref() == Some(name))
        .expect("a baseline policy");
    p.metadata.resource_version = Some("7".into());
    Box::new(p)
}

#[tokio::test]
async fn a_new_tier_namespace_gets_its_baseline() {
    let (ctx, handle) = ctx();
    let server = tokio::spawn(serve(
        handle,
        "database",
        vec![
            Step::Get("tierguard-default-deny", None),
            Step::Apply("tierguard-default-deny"),
            Step::Get("tierguard-allow-dns", None),
            Step::Apply("tierguard-allow-dns"),
        ],
    ));
    let action = reconcile(namespace("database", &[]), ctx.clone())
        .await
        .expect("reconciled");
    assert_eq!(action, Action::requeue(RESYNC));
    timeout_after_1s(server).await;
    let m = ctx.metrics.render().expect("metrics");
    assert!(
        m.contains(r#"tierguard_baseline_reconciles_total{result="applied"} 2"#),
        "{m}"
    );
}

#[tokio::test]
async fn drift_is_repaired_and_a_baseline_in_place_is_left_alone() {
    let (ctx, handle) = ctx();
    let mut edited = live("tierguard-default-deny", "backend");
    if let Some(spec) = edited.spec.as_mut() {
        spec.ingress = Some(vec![netv1::NetworkPolicyIngressRule::default()]);
    }
    let server = tokio::spawn(serve(
        handle,
        "backend",
        vec![
            Step::Get("tierguard-default-deny", Some(edited)),
            Step::Replace("tierguard-default-deny"),
            Step::Get(
                "tierguard-allow-dns",
                Some(live("tierguard-allow-dns", "backend")),
            ),
        ],
    ));
    reconcile(namespace("backend", &[]), ctx.clone())
        .await
        .expect("reconciled");
    timeout_after_1s(server).await;
    let m = ctx.metrics.render().expect("metrics");
    assert!(
        m.contains(r#"result="repaired"} 1"#) && m.contains(r#"result="unchanged"} 1"#),
        "{m}"
    );
}

#[tokio::test]
async fn an_unlabelled_copy_counts_as_drift() {
    let (ctx, handle) = ctx();
    let mut unlabelled = live("tierguard-allow-dns", "frontend");
    unlabelled.metadata.labels = None;
    let server = tokio::spawn(serve(
        handle,
        "frontend",
        vec![
            Step::Get(
                "tierguard-default-deny",
                Some(live("tierguard-default-deny", "frontend")),
            ),
            Step::Get("tierguard-allow-dns", Some(unlabelled)),
            Step::Replace("tierguard-allow-dns"),
        ],
    ));
    reconcile(namespace("frontend", &[]), ctx)
        .await
        .expect("reconciled");
    timeout_after_1s(server).await;
}

#[tokio::test]
async fn relabel_into_a_tier_injects_and_out_of_a_tier_changes_nothing() {
    let (ctx, handle) = ctx();
    let server = tokio::spawn(serve(
        handle,
        "payments",
        vec![
            Step::Get("tierguard-default-deny", None),
            Step::Apply("tierguard-default-deny"),
            Step::Get("tierguard-allow-dns", None),
            Step::Apply("tierguard-allow-dns"),
        ],
    ));
    reconcile(
        stamped(
            namespace("payments", &[("tierguard.io/tier", "backend")]),
            "backend",
        ),
        ctx.clone(),
    )
    .await
    .expect("reconciled");
    timeout_after_1s(server).await;
    // Out of the tier: no request at all (the policies stay), wait for a change.
    // A request would make reconcile wait for the mock's answer, so race
    // the two: any request fails the test, as does not finishing.
    let (ctx, mut handle) = super::tests::ctx();
    let reconciled = reconcile(namespace("payments", &[("team", "x")]), ctx);
    tokio::pin!(reconciled);
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        tokio::select! {
            biased;
            action = &mut reconciled => action.expect("reconciled"),
            Some((req, _)) = handle.next_request() => {
                panic!("no request expected for a namespace outside the tiers, got {} {}", req.method(), req.uri())
            }
        }
    })
    .await
    .expect("reconcile finished");
    assert_eq!(outcome, Action::await_change());
}

#[tokio::test]
async fn leaving_a_tier_removes_the_baseline_only_when_asked() {
    let (client, handle) = mock_client();
    let ctx = Arc::new(Context {
        client,
        policy: crate::live::Live::fixed(policy()),
        metrics: Arc::new(Metrics::new()),
        remove_on_leave: true,
        undo_unjudged_joins: false,
        failures: Default::default(),
        reports: None,
    });
    let server = tokio::spawn(serve(
        handle,
        "payments",
        vec![
            Step::Get(
                "tierguard-default-deny",
                Some(live("tierguard-default-deny", "payments")),
            ),
            Step::Delete("tierguard-default-deny"),
            Step::Get("tierguard-allow-dns", None),
        ],
    ));
    let action = reconcile(namespace("payments", &[]), ctx)
        .await
        .expect("reconciled");
    assert_eq!(action, Action::await_change());
    timeout_after_1s(server).await;
}

#[tokio::test]
async fn api_errors_fail_the_reconcile_and_retry() {
    let (ctx, handle) = ctx();
    let server = tokio::spawn(serve(
        handle,
        "database",
        vec![Step::GetFails("tierguard-default-deny")],
    ));
    let ns = namespace("database", &[]);
    let err = reconcile(ns.clone(), ctx.clone())
        .await
        .expect_err("the API failed");
    timeout_after_1s(server).await;
    assert!(err.to_string().contains("etcd is down"), "{err}");
    assert_eq!(
        error_policy(ns.clone(), &err, ctx.clone()),
        Action::requeue(Duration::from_secs(1))
    );
    assert_eq!(
        error_policy(ns.clone(), &err, ctx.clone()),
        Action::requeue(Duration::from_secs(2))
    );
    assert_eq!(
        error_policy(ns, &err, ctx.clone()),
        Action::requeue(Duration::from_secs(4))
    );
    assert_eq!(backoff(30), RETRY_MAX);
    assert!(
        ctx.metrics
            .render()
            .expect("metrics")
            .contains(r#"result="failed"} 3"#)
    );
}
