//! Shared builders for the test suites: the webhook's context over the
//! tutorial's cluster, and AdmissionReviews in the exact shape the API
//! server sends (`admission.k8s.io/v1`, `oldObject` on UPDATE and DELETE,
//! `dryRun`, `userInfo`).
//!
//! ```ignore
//! let ctx = TestCtx::three_tier().mode(Mode::Audit).build();
//! let body = Review::create(NP, "oops", policy).ns("database").by("alice").dry_run().json();
//! ```

#![allow(dead_code)]

pub mod netpol_gen;

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{Value, json};
use tierguard::admission::pool::JudgePool;
use tierguard::admission::{Ctx, DEFAULT_MAX_BODY};
use tierguard::engine::state::State;
use tierguard::engine::tiers::{IsolationPolicy, Mode};
use tierguard::index::Index;
use tierguard::model::isolationpolicy;
use tierguard::telemetry::Metrics;
use tierguard::world::World;

/// The guard's own service account.
pub const GUARD: &str = "system:serviceaccount:tierguard:tierguard";
/// The uid every built review carries.
pub const UID: &str = "705ab4f5-6393-11e8-b7cc-42010a800002";

/// `(group, version, kind)` of a Namespace.
pub const NS: (&str, &str, &str) = ("", "v1", "Namespace");
/// `(group, version, kind)` of a NetworkPolicy.
pub const NP: (&str, &str, &str) = ("networking.k8s.io", "v1", "NetworkPolicy");
/// `(group, version, kind)` of a ClusterNetworkPolicy.
pub const CNP: (&str, &str, &str) = (
    "policy.networking.k8s.io",
    "v1beta1",
    "ClusterNetworkPolicy",
);
/// `(group, version, kind)` of an AdminNetworkPolicy.
pub const ANP: (&str, &str, &str) = ("policy.networking.k8s.io", "v1alpha1", "AdminNetworkPolicy");
/// `(group, version, kind)` of a Pod.
pub const POD: (&str, &str, &str) = ("", "v1", "Pod");
/// tierguard's own IsolationPolicy.
pub const ISOP: (&str, &str, &str) = ("tierguard.io", "v1alpha1", "IsolationPolicy");

/// The repository's isolation policy.
pub fn three_tier_policy() -> IsolationPolicy {
    isolationpolicy::load_file(std::path::Path::new("policies/three-tier.yaml")).expect("policy")
}

/// The tutorial's cluster as tierguard leaves it.
pub fn three_tier_state() -> State {
    World::load(&["examples/three-tier".into()])
        .expect("examples")
        .state
}

/// Builds a webhook context.
pub struct TestCtx {
    policy: IsolationPolicy,
    state: Option<State>,
    editors: BTreeSet<String>,
    pod_guard: bool,
    deadline: Duration,
    max_body: usize,
    inflight: usize,
    watched: bool,
}

impl TestCtx {
    /// The repository's policy over the tutorial's cluster, synced, enforcing.
    pub fn three_tier() -> Self {
        Self {
            policy: three_tier_policy(),
            state: Some(three_tier_state()),
            editors: BTreeSet::from([GUARD.to_string()]),
            pod_guard: true,
            deadline: Duration::from_secs(2),
            max_body: DEFAULT_MAX_BODY,
            inflight: tierguard::admission::DEFAULT_MAX_INFLIGHT_BODY,
            watched: false,
        }
    }

    /// Another state.
    pub fn state(mut self, state: State) -> Self {
        self.state = Some(state);
        self
    }

    /// An index that has not synced yet.
    pub fn unsynced(mut self) -> Self {
        self.state = None;
        self
    }

    /// Another mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.policy.mode = mode;
        self
    }

    /// Changes the policy.
    pub fn policy(mut self, f: impl FnOnce(&mut IsolationPolicy)) -> Self {
        f(&mut self.policy);
        self
    }

    /// No baseline editors at all.
    pub fn no_editors(mut self) -> Self {
        self.editors.clear();
        self
    }

    /// Turns the pod guard off.
    pub fn no_pod_guard(mut self) -> Self {
        self.pod_guard = false;
        self
    }

    /// Another per-request deadline.
    pub fn deadline(mut self, d: Duration) -> Self {
        self.deadline = d;
        self
    }

    /// Another body limit.
    pub fn max_body(mut self, n: usize) -> Self {
        self.max_body = n;
        self
    }

    /// Another bound on bodies held at once.
    pub fn inflight(mut self, n: usize) -> Self {
        self.inflight = n;
        self
    }

    /// The index stands for a watched one (as `serve` keeps it), not a
    /// `serve --world` one: a namespace it lacks may be on its way.
    pub fn watched(mut self) -> Self {
        self.watched = true;
        self
    }

    /// The context.
    pub fn build(self) -> Arc<Ctx> {
        let index = match self.state {
            Some(s) if self.watched => Index::preloaded(s).watched(),
            Some(s) => Index::preloaded(s),
            None => Index::new(),
        };
        Arc::new(Ctx {
            policy: tierguard::live::Live::fixed(self.policy),
            index: Arc::new(RwLock::new(index)),
            metrics: Arc::new(Metrics::new()),
            deadline: self.deadline,
            max_body: self.max_body,
            baseline_editors: self.editors,
            pod_guard: self.pod_guard,
            pool: JudgePool::new(2),
            bodies: tierguard::admission::BodyBudget::new(self.inflight, self.max_body),
        })
    }
}

/// An AdmissionReview as the API server sends it.
#[derive(Clone, Debug)]
pub struct Review {
    kind: (&'static str, &'static str, &'static str),
    op: &'static str,
    ns: Option<String>,
    name: String,
    object: Value,
    old: Value,
    user: String,
    groups: Vec<String>,
    dry_run: bool,
}

impl Review {
    /// Any operation.
    pub fn new(
        kind: (&'static str, &'static str, &'static str),
        op: &'static str,
        name: &str,
        object: Value,
    ) -> Self {
        Self {
            kind,
            op,
            ns: None,
            name: name.to_string(),
            object,
            old: Value::Null,
            user: "alice".into(),
            groups: Vec::new(),
            dry_run: false,
        }
    }

    /// A CREATE by an ordinary user (alice), not a dry run.
    pub fn create(
        kind: (&'static str, &'static str, &'static str),
        name: &str,
        object: Value,
    ) -> Self {
        Self::new(kind, "CREATE", name, object)
    }

    /// An UPDATE from `old` to `object`.
    pub fn update(
        kind: (&'static str, &'static str, &'static str),
        name: &str,
        object: Value,
        old: Value,
    ) -> Self {
        Self::new(kind, "UPDATE", name, object).old(old)
    }

    /// A DELETE of `old`.
    pub fn delete(
        kind: (&'static str, &'static str, &'static str),
        name: &str,
        old: Value,
    ) -> Self {
        Self::new(kind, "DELETE", name, Value::Null).old(old)
    }

    /// In this namespace.
    pub fn ns(mut self, ns: &str) -> Self {
        self.ns = Some(ns.to_string());
        self
    }

    /// With this old object.
    pub fn old(mut self, old: Value) -> Self {
        self.old = old;
        self
    }

    /// Sent by this user.
    pub fn by(mut self, user: &str) -> Self {
        self.user = user.to_string();
        self
    }

    /// The user is in these groups.
    pub fn groups(mut self, groups: &[&str]) -> Self {
        self.groups = groups.iter().map(|g| g.to_string()).collect();
        self
    }

    /// A dry run.
    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }

    /// The review as JSON.
    pub fn json(&self) -> Value {
        let (group, version, k) = self.kind;
        let resource = match k {
            "Namespace" => "namespaces",
            "NetworkPolicy" => "networkpolicies",
            "Pod" => "pods",
            "ClusterNetworkPolicy" => "clusternetworkpolicies",
            "AdminNetworkPolicy" => "adminnetworkpolicies",
            "BaselineAdminNetworkPolicy" => "baselineadminnetworkpolicies",
            "IsolationPolicy" => "isolationpolicies",
            _ => "others",
        };
        let options = match self.op {
            "CREATE" => "CreateOptions",
            "UPDATE" => "UpdateOptions",
            _ => "DeleteOptions",
        };
        let mut req = json!({
            "uid": UID,
            "kind": {"group": group, "version": version, "kind": k},
            "resource": {"group": group, "version": version, "resource": resource},
            "requestKind": {"group": group, "version": version, "kind": k},
            "requestResource": {"group": group, "version": version, "resource": resource},
            "name": self.name,
            "operation": self.op,
            "userInfo": {"username": self.user, "uid": "u-1", "groups": self.groups},
            "object": self.object,
            "oldObject": self.old,
            "dryRun": self.dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": options}
        });
        if let Some(ns) = &self.ns {
            req["namespace"] = json!(ns);
        }
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req})
    }
}

/// A Namespace object with these labels.
pub fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
}

/// `obj` with the tier stamp (`tierguard.io/admitted-tier`) `tier`, as
/// tierguard's mutating webhook leaves it.
pub fn stamped(mut obj: Value, tier: &str) -> Value {
    obj["metadata"]["annotations"] = json!({ "tierguard.io/admitted-tier": tier });
    obj
}

/// A Namespace object without labels.
pub fn namespace_no_labels(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

/// A NetworkPolicy object.
pub fn netpol(ns: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": ns, "uid": "x", "resourceVersion": "1"}, "spec": spec})
}

/// A ClusterNetworkPolicy object.
pub fn cnp(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "policy.networking.k8s.io/v1beta1", "kind": "ClusterNetworkPolicy", "metadata": {"name": name, "uid": "c", "resourceVersion": "1"}, "spec": spec})
}

/// A fresh directory under the system's temporary directory.
pub fn tempdir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tierguard-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).expect("tempdir");
    dir
}

/// `review` as the API server writes it: `request.uid` first (its Go
/// struct's field order), which is what lets tierguard answer a body it
/// cannot finish reading as an AdmissionReview.
pub fn api_server_bytes(review: &Value) -> Vec<u8> {
    let uid = review["request"]["uid"].as_str().unwrap_or(UID).to_string();
    let mut request = review["request"].clone();
    if let Some(m) = request.as_object_mut() {
        m.remove("uid");
    }
    let rest = serde_json::to_string(&request).expect("json");
    format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"{uid}",{}}}"#,
        &rest[1..]
    )
    .into_bytes()
}

/// A CREATE of NetworkPolicy `ns/name` that selects every pod and allows nothing.
pub fn deny_all_create(ns: &str, name: &str) -> Review {
    Review::create(NP, name, netpol(ns, name, json!({"podSelector": {}}))).ns(ns)
}

/// Posts a review to `/validate` through the real router and returns its
/// `response`, checked to answer the review's uid.
pub async fn validate(ctx: Arc<Ctx>, review: Value) -> Value {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let resp = tierguard::admission::router(ctx, true)
        .oneshot(
            axum::http::Request::post("/validate")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(
                    serde_json::to_vec(&review).expect("json"),
                ))
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(resp.status(), axum::http::StatusCode::OK);
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let v: Value = serde_json::from_slice(&bytes).expect("review");
    assert_eq!(v["response"]["uid"], UID);
    v["response"].clone()
}

/// A response's `status.message` (empty when admitted).
pub fn message(r: &Value) -> String {
    r["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The cases of a brute-force property: `TIERGUARD_BRUTE_CASES`, default
/// 10,000.
pub fn brute_cases() -> u32 {
    std::env::var("TIERGUARD_BRUTE_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000)
}

/// Runs the `tierguard` binary from the repository root, as a user would
/// from the README (with no `TIERGUARD_POLICY` from the environment).
pub fn tierguard(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tierguard"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("TIERGUARD_POLICY")
        .output()
        .expect("tierguard runs")
}

/// A command's standard output.
pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A command's standard error.
pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
