//! Baseline injection: every tier namespace gets the isolation policy's
//! baseline NetworkPolicies (default-deny, DNS), and keeps them.
//!
//! ```text
//!  watch Namespaces ──────────────────────┐
//!  watch NetworkPolicies (managed-by=tierguard) ─► namespace ─► reconcile(ns)
//!      reconcile: not a tier namespace ─► nothing (a namespace that leaves its
//!                                        tier keeps its policies)
//!                 missing ─► server-side apply (field manager "tierguard")
//!                 drifted (spec or labels edited) ─► replace with the baseline
//!                 every 5 minutes ─► again (backstop for missed events)
//!                 API error ─► retry after 1 s, 2 s, 4 s … 5 min (per namespace)
//! ```
//!
//! Only the leader (a coordination.k8s.io Lease, see [`leader`]) reconciles;
//! every replica serves the webhook. The webhook refuses pods in a tier
//! namespace until both baseline policies exist, so nothing runs unisolated
//! in the meantime.

pub mod leader;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1 as corev1;
use k8s_openapi::api::networking::v1 as netv1;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tracing::{info, instrument, warn};

use crate::guardpolicy::baseline::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use crate::guardpolicy::{IsolationPolicy, baseline_policies};
use crate::telemetry::{Metrics, labels};

/// The field manager of tierguard's server-side applies.
pub const FIELD_MANAGER: &str = "tierguard";
/// How often every namespace is reconciled even without events.
pub const RESYNC: Duration = Duration::from_secs(300);
/// How long to wait after the first failed reconcile; doubled per
/// consecutive failure of the same namespace, up to [`RETRY_MAX`].
pub const RETRY: Duration = Duration::from_secs(1);
/// The longest wait between retries.
pub const RETRY_MAX: Duration = Duration::from_secs(300);

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// What reconciles need.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// The isolation policy.
    pub policy: IsolationPolicy,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Delete the managed baseline of a namespace that leaves its tier.
    pub remove_on_leave: bool,
    /// Consecutive failures per namespace, for exponential backoff.
    pub failures: std::sync::Mutex<std::collections::HashMap<String, u32>>,
}

/// The wait before retry number `n` (1-based): 1 s, 2 s, 4 s, … up to 5 minutes.
pub fn backoff(n: u32) -> Duration {
    RETRY
        .saturating_mul(2u32.saturating_pow(n.saturating_sub(1)))
        .min(RETRY_MAX)
}

/// What happened to one baseline policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It was missing and has been created.
    Applied,
    /// It had been edited and has been restored.
    Repaired,
    /// It was in place.
    Unchanged,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Repaired => "repaired",
            Outcome::Unchanged => "unchanged",
        }
    }
}

fn is_tier(policy: &IsolationPolicy, ns: &corev1::Namespace) -> bool {
    policy
        .tier_of_namespace(&ns.name_any(), ns.labels())
        .is_some()
}

fn drifted(live: &netv1::NetworkPolicy, want: &netv1::NetworkPolicy) -> bool {
    let managed = live
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .is_some_and(|v| v == MANAGED_BY_VALUE);
    !managed || live.spec != want.spec
}

/// Makes one baseline policy match the isolation policy.
pub async fn ensure(
    api: &Api<netv1::NetworkPolicy>,
    want: &netv1::NetworkPolicy,
) -> Result<Outcome, Error> {
    let name = want.name_any();
    match api.get_opt(&name).await? {
        None => {
            api.patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(want),
            )
            .await?;
            Ok(Outcome::Applied)
        }
        Some(live) if drifted(&live, want) => {
            let mut fixed = want.clone();
            fixed.metadata.resource_version = live.metadata.resource_version.clone();
            api.replace(&name, &PostParams::default(), &fixed).await?;
            Ok(Outcome::Repaired)
        }
        Some(_) => Ok(Outcome::Unchanged),
    }
}

/// Reconciles one namespace.
#[instrument(skip_all, fields(namespace = %ns.name_any()))]
pub async fn reconcile(ns: Arc<corev1::Namespace>, ctx: Arc<Context>) -> Result<Action, Error> {
    if ns.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let api: Api<netv1::NetworkPolicy> = Api::namespaced(ctx.client.clone(), &name);
    if !is_tier(&ctx.policy, &ns) {
        if ctx.remove_on_leave {
            remove_managed(&api, &ctx).await?;
        }
        return Ok(Action::await_change());
    }
    for want in baseline_policies(&ctx.policy, &name) {
        let outcome = ensure(&api, &want).await?;
        ctx.metrics
            .reconciles
            .get_or_create(&labels(&[("result", outcome.as_str())]))
            .inc();
        if outcome != Outcome::Unchanged {
            info!(policy = %want.name_any(), result = outcome.as_str(), "baseline policy reconciled");
        }
    }
    ctx.failures
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&name);
    Ok(Action::requeue(RESYNC))
}

/// Deletes the managed baseline policies of a namespace outside the tiers.
async fn remove_managed(api: &Api<netv1::NetworkPolicy>, ctx: &Context) -> Result<(), Error> {
    for name in ctx.policy.baseline_names() {
        let Some(live) = api.get_opt(name).await? else {
            continue;
        };
        let managed = live
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(MANAGED_BY_LABEL))
            .is_some_and(|v| v == MANAGED_BY_VALUE);
        if managed {
            api.delete(name, &kube::api::DeleteParams::default())
                .await?;
            ctx.metrics
                .reconciles
                .get_or_create(&labels(&[("result", "removed")]))
                .inc();
            info!(
                policy = name,
                "namespace left its tier: baseline policy removed"
            );
        }
    }
    Ok(())
}

fn error_policy(ns: Arc<corev1::Namespace>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconciles
        .get_or_create(&labels(&[("result", "failed")]))
        .inc();
    let n = {
        let mut f = ctx.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = f.entry(ns.name_any()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    let wait = backoff(n);
    warn!(namespace = %ns.name_any(), error = %err, attempt = n, retry_in = ?wait, "baseline reconcile failed; backing off");
    Action::requeue(wait)
}

/// Runs the controller until `stop` completes.
pub async fn run(
    ctx: Arc<Context>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let namespaces: Api<corev1::Namespace> = Api::all(ctx.client.clone());
    let policies: Api<netv1::NetworkPolicy> = Api::all(ctx.client.clone());
    let managed =
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    info!("baseline controller running");
    Controller::new(namespaces, watcher::Config::default())
        .watches(policies, managed, |np: netv1::NetworkPolicy| {
            np.namespace()
                .map(|ns| ObjectRef::<corev1::Namespace>::new(&ns))
        })
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                warn!(error = %e, "controller event");
            }
        })
        .await;
    info!("baseline controller stopped");
}

/// Runs the controller whenever this replica holds the leader-election
/// Lease (see [`leader::lead`]), stopping it whenever the Lease is lost.
pub async fn lead(ctx: Arc<Context>, election: leader::Election) {
    let client = ctx.client.clone();
    leader::lead(&client, &election, |stop| {
        run(ctx.clone(), async move {
            let _ = stop.await;
        })
    })
    .await;
}

#[cfg(test)]
mod tests {
    //! The controller against a mocked API server (kube's `tower_test`
    //! pattern): each scenario asserts every request's method, path and body.

    use super::*;
    use http::{Method, Request, Response};
    use kube::client::Body;
    use std::collections::BTreeMap;

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    fn policy() -> IsolationPolicy {
        crate::guardpolicy::load_file(std::path::Path::new("policies/three-tier.yaml"))
            .expect("policy")
    }

    fn ctx() -> (Arc<Context>, Handle) {
        let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(svc, "default");
        (
            Arc::new(Context {
                client,
                policy: policy(),
                metrics: Arc::new(Metrics::new()),
                remove_on_leave: false,
                failures: Default::default(),
            }),
            handle,
        )
    }

    fn namespace(name: &str, labels: &[(&str, &str)]) -> Arc<corev1::Namespace> {
        let mut ns = corev1::Namespace::default();
        ns.metadata.name = Some(name.into());
        ns.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        );
        Arc::new(ns)
    }

    fn json<T: serde::Serialize>(status: u16, body: &T) -> Response<Body> {
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(body).expect("json")))
            .expect("response")
    }

    fn not_found() -> Response<Body> {
        json(
            404,
            &serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
        )
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
    }

    async fn serve(mut handle: Handle, ns: &'static str, steps: Vec<Step>) {
        let path = |name: &str| {
            format!("/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/{name}")
        };
        for step in steps {
            let (req, send) = handle
                .next_request()
                .await
                .expect("the controller made a request");
            let uri = req.uri().to_string();
            match step {
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
                    send.send_response(json(500, &serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "InternalError", "code": 500, "message": "etcd is down"})));
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
                    send.send_response(json(200, &serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})));
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
        server.await.expect("all requests seen");
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
        server.await.expect("all requests seen");
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
        server.await.expect("all requests seen");
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
            namespace("payments", &[("tierguard.io/tier", "backend")]),
            ctx.clone(),
        )
        .await
        .expect("reconciled");
        server.await.expect("all requests seen");
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
        let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let ctx = Arc::new(Context {
            client: Client::new(svc, "default"),
            policy: policy(),
            metrics: Arc::new(Metrics::new()),
            remove_on_leave: true,
            failures: Default::default(),
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
        server.await.expect("all requests seen");
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
        server.await.expect("request seen");
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
}
