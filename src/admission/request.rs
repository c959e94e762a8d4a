//! An AdmissionReview body, parsed once into a typed [`Request`].
//!
//! ```text
//!  bytes ─► Review { request: Wire { uid, kind, operation, user, object: raw JSON, … } }
//!        ─► checks (version, request, uid)
//!        ─► Request { kind: Kind (matched on group and kind), operation, user, dry_run, objects }
//! ```
//!
//! Memory stays proportional to what tierguard reads, whatever the body
//! holds: the review's fields tierguard does not use (`options`,
//! `requestKind`, unknown ones) are skipped without being built, and the
//! objects are kept as their raw JSON text (one copy of their bytes), read
//! into typed resources on demand by [`Request::object`], which names the
//! failing field. A body of a few MiB of `[0,0,…]` therefore costs its own
//! size, not the ~30 bytes per element a parsed JSON tree would.

use axum::http::StatusCode;
use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::api::core::v1 as corev1;
use k8s_openapi::api::networking::v1 as netv1;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::TypeMeta;
use kube::core::admission::{AdmissionResponse, Operation};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::engine::cluster::Api;
use crate::model::clusterpolicy::GROUP;

/// The API version tierguard speaks.
pub const ADMISSION_V1: &str = "admission.k8s.io/v1";

/// The kinds the webhook judges, matched on group and kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `v1` Namespace.
    Namespace,
    /// `networking.k8s.io` NetworkPolicy.
    NetworkPolicy,
    /// `v1` Pod.
    Pod,
    /// `policy.networking.k8s.io` ClusterNetworkPolicy, AdminNetworkPolicy
    /// or BaselineAdminNetworkPolicy.
    ClusterPolicy(Api),
    /// Calico's NetworkPolicy or GlobalNetworkPolicy (`projectcalico.org`
    /// or `crd.projectcalico.org`).
    Calico(crate::model::calico::policy::Kind),
    /// `tierguard.io` IsolationPolicy (tierguard's own configuration).
    IsolationPolicy,
    /// Anything else (the webhook's rules should not send it).
    Other {
        /// Its group.
        group: String,
        /// Its kind.
        kind: String,
    },
}

impl Kind {
    fn of(group: &str, kind: &str) -> Self {
        if let Some(api) = Api::of_kind(kind).filter(|_| group == GROUP) {
            return Kind::ClusterPolicy(api);
        }
        if let Some(k) = crate::model::calico::policy::Kind::of(group, kind) {
            return Kind::Calico(k);
        }
        match (group, kind) {
            ("", "Namespace") => Kind::Namespace,
            ("networking.k8s.io", "NetworkPolicy") => Kind::NetworkPolicy,
            ("", "Pod") => Kind::Pod,
            ("tierguard.io", "IsolationPolicy") => Kind::IsolationPolicy,
            (group, kind) => Kind::Other {
                group: group.to_string(),
                kind: kind.to_string(),
            },
        }
    }

    /// The kind's name, as the API server spells it.
    pub fn name(&self) -> &str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::NetworkPolicy => "NetworkPolicy",
            Kind::Pod => "Pod",
            Kind::ClusterPolicy(api) => api.kind(),
            Kind::Calico(k) => k.display_name(),
            Kind::IsolationPolicy => "IsolationPolicy",
            Kind::Other { kind, .. } => kind,
        }
    }

    /// The kind as a metric label: one of ten values. The group and kind of
    /// an unexpected request come from its body, so naming them in a label
    /// would add a time series, kept for the life of the process, per
    /// distinct body (logs name them instead).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::NetworkPolicy => "NetworkPolicy",
            Kind::Pod => "Pod",
            Kind::ClusterPolicy(api) => api.kind(),
            Kind::Calico(k) => k.metric_label(),
            Kind::IsolationPolicy => "IsolationPolicy",
            Kind::Other { .. } => "other",
        }
    }
}

/// The envelope: `apiVersion`, `kind` and the request; anything else
/// (`response`, unknown fields) is skipped unbuilt.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Review {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    request: Option<Wire>,
}

/// The group and kind of the object.
#[derive(Debug, Default, Deserialize)]
pub struct GroupKind {
    /// The API group (empty for core).
    #[serde(default)]
    pub group: String,
    /// The kind.
    #[serde(default)]
    pub kind: String,
}

/// The fields of an AdmissionReview's `request` that tierguard reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Wire {
    /// The request's uid, copied into the response.
    #[serde(default)]
    pub uid: String,
    /// The object's group and kind.
    pub kind: GroupKind,
    /// The object's name.
    #[serde(default)]
    pub name: String,
    /// Its namespace (none for cluster-scoped objects).
    #[serde(default)]
    pub namespace: Option<String>,
    /// CREATE, UPDATE, DELETE or CONNECT.
    pub operation: Operation,
    /// Who asks.
    #[serde(default)]
    pub user_info: UserInfo,
    /// The new object, as raw JSON.
    #[serde(default)]
    pub object: Option<Box<RawValue>>,
    /// The old object (UPDATE, DELETE), as raw JSON.
    #[serde(default)]
    pub old_object: Option<Box<RawValue>>,
    /// True for a dry run.
    #[serde(default)]
    pub dry_run: bool,
}

/// A request as the handlers see it.
#[derive(Debug)]
pub struct Request {
    /// The kind, matched once.
    pub kind: Kind,
    /// The user who asks.
    pub user: String,
    /// The user's groups.
    pub groups: Vec<String>,
    /// `namespace/name` or `name`.
    pub object_key: String,
    /// The review's request, for the response (uid) and the objects.
    pub inner: Wire,
}

/// Why a body is not a request tierguard can answer.
#[derive(Debug, PartialEq, Eq)]
pub struct BadRequest {
    /// The HTTP status to answer with.
    pub status: StatusCode,
    /// What is wrong.
    pub message: String,
}

fn bad(message: impl Into<String>) -> BadRequest {
    BadRequest {
        status: StatusCode::BAD_REQUEST,
        message: message.into(),
    }
}

impl Request {
    /// Parses a body into a request.
    pub fn parse(bytes: &[u8]) -> Result<Request, BadRequest> {
        let review: Review = serde_json::from_slice(bytes)
            .map_err(|e| bad(format!("malformed AdmissionReview: {e}")))?;
        if review.api_version != ADMISSION_V1 || review.kind != "AdmissionReview" {
            return Err(bad(format!(
                "expected apiVersion {ADMISSION_V1} kind AdmissionReview, got {} {}",
                review.api_version, review.kind
            )));
        }
        let inner = review
            .request
            .ok_or_else(|| bad("AdmissionReview has no request"))?;
        if inner.uid.is_empty() {
            return Err(bad("AdmissionReview request has no uid"));
        }
        let object_key = match &inner.namespace {
            Some(ns) if !ns.is_empty() => format!("{ns}/{}", inner.name),
            _ => inner.name.clone(),
        };
        Ok(Request {
            kind: Kind::of(&inner.kind.group, &inner.kind.kind),
            user: inner.user_info.username.clone().unwrap_or_default(),
            groups: inner.user_info.groups.clone().unwrap_or_default(),
            object_key,
            inner,
        })
    }

    /// An admitting response to this request (its uid, `admission.k8s.io/v1`).
    pub fn response(&self) -> AdmissionResponse {
        response_for(&self.inner.uid)
    }

    /// The operation.
    pub fn operation(&self) -> &Operation {
        &self.inner.operation
    }

    /// The operation's name, for labels and logs.
    pub fn operation_name(&self) -> &'static str {
        match self.inner.operation {
            Operation::Create => "Create",
            Operation::Update => "Update",
            Operation::Delete => "Delete",
            Operation::Connect => "Connect",
        }
    }

    /// The request's namespace (empty for cluster-scoped objects).
    pub fn namespace(&self) -> &str {
        self.inner.namespace.as_deref().unwrap_or_default()
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// True for a dry run.
    pub fn dry_run(&self) -> bool {
        self.inner.dry_run
    }

    /// The new object as a typed resource.
    pub fn object<T: FromObject>(&self) -> Result<T, String> {
        typed(self.inner.object.as_deref(), "object")
    }

    /// The old object as a typed resource.
    pub fn old_object<T: FromObject>(&self) -> Result<T, String> {
        typed(self.inner.old_object.as_deref(), "old object")
    }

    /// The new object's metadata, if it has a readable one.
    pub fn object_meta(&self) -> Option<ObjectMeta> {
        #[derive(Deserialize)]
        struct Meta {
            #[serde(default)]
            metadata: ObjectMeta,
        }
        let raw = self.inner.object.as_deref()?;
        serde_json::from_str::<Option<Meta>>(raw.get())
            .ok()
            .flatten()
            .map(|m| m.metadata)
    }
}

/// An admitting response with `uid`, as `admission.k8s.io/v1`.
pub fn response_for(uid: &str) -> AdmissionResponse {
    let mut resp = AdmissionResponse::invalid("");
    resp.types = TypeMeta {
        api_version: ADMISSION_V1.into(),
        kind: "AdmissionReview".into(),
    };
    resp.uid = uid.to_string();
    resp.allowed = true;
    resp.result = Default::default();
    resp
}

/// A resource tierguard reads from a request's object: the fields it needs,
/// deserialized straight from the object's raw JSON through its
/// [`FromObject::Shape`] (`apiVersion`, `kind` and unknown fields are
/// skipped unbuilt).
pub trait FromObject: Sized {
    /// What is deserialized.
    type Shape: DeserializeOwned;
    /// The resource from its shape.
    fn from_shape(shape: Self::Shape) -> Self;
}

/// A cluster policy is read as JSON: its model walks the fields itself, with
/// their paths ([`crate::model::clusterpolicy::convert`]).
impl FromObject for serde_json::Value {
    type Shape = serde_json::Value;
    fn from_shape(v: serde_json::Value) -> Self {
        v
    }
}

/// A Namespace as tierguard reads it.
#[derive(Deserialize)]
pub struct NamespaceShape {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<corev1::NamespaceSpec>,
    #[serde(default)]
    status: Option<corev1::NamespaceStatus>,
}

impl FromObject for corev1::Namespace {
    type Shape = NamespaceShape;
    fn from_shape(n: NamespaceShape) -> Self {
        Self {
            metadata: n.metadata,
            spec: n.spec,
            status: n.status,
        }
    }
}

/// A NetworkPolicy as tierguard reads it.
#[derive(Deserialize)]
pub struct NetworkPolicyShape {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<netv1::NetworkPolicySpec>,
}

impl FromObject for netv1::NetworkPolicy {
    type Shape = NetworkPolicyShape;
    fn from_shape(n: NetworkPolicyShape) -> Self {
        Self {
            metadata: n.metadata,
            spec: n.spec,
        }
    }
}

/// The request's object (or old object) as a typed resource.
pub fn typed<T: FromObject>(raw: Option<&RawValue>, what: &str) -> Result<T, String> {
    let raw = raw.ok_or_else(|| format!("the request has no {what}"))?;
    let mut de = serde_json::Deserializer::from_str(raw.get());
    match serde_path_to_error::deserialize::<_, Option<T::Shape>>(&mut de) {
        Ok(Some(t)) => Ok(T::from_shape(t)),
        Ok(None) => Err(format!("the request has no {what}")),
        Err(e) => {
            let path = e.path().to_string();
            Err(if path == "." || path.is_empty() {
                format!("cannot read the {what}: {}", e.inner())
            } else {
                format!("cannot read the {what}: {path}: {}", e.inner())
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(kind: &str, group: &str, uid: &str) -> Vec<u8> {
        serde_json::json!({
            "apiVersion": ADMISSION_V1, "kind": "AdmissionReview",
            "request": {
                "uid": uid, "kind": {"group": group, "version": "v1", "kind": kind},
                "resource": {"group": group, "version": "v1", "resource": "x"},
                "operation": "CREATE", "name": "n", "namespace": "ns",
                "userInfo": {"username": "alice", "groups": ["dev"]}, "dryRun": true,
                "object": {"apiVersion": "v1", "kind": kind, "metadata": {"name": "n"}}
            }
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn kinds_are_matched_on_group_and_kind() {
        let r = Request::parse(&body("NetworkPolicy", "networking.k8s.io", "u")).expect("parses");
        assert_eq!(r.kind, Kind::NetworkPolicy);
        assert_eq!(
            (r.user.as_str(), r.groups.as_slice()),
            ("alice", &["dev".to_string()][..])
        );
        assert_eq!(r.object_key, "ns/n");
        assert!(r.dry_run());
        // The same kind name in another group is Calico's.
        let r =
            Request::parse(&body("NetworkPolicy", "crd.projectcalico.org", "u")).expect("parses");
        assert_eq!(
            r.kind,
            Kind::Calico(crate::model::calico::policy::Kind::NetworkPolicy)
        );
        let r = Request::parse(&body("Tier", "crd.projectcalico.org", "u")).expect("parses");
        assert!(
            matches!(r.kind, Kind::Other { ref group, .. } if group == "crd.projectcalico.org")
        );
    }

    #[test]
    fn a_request_without_uid_or_of_another_version_is_bad() {
        let e = Request::parse(&body("Pod", "", "")).expect_err("no uid");
        assert!(e.message.contains("no uid"), "{e:?}");
        let e = Request::parse(
            br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#,
        )
        .expect_err("v1beta1");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("expected apiVersion"), "{e:?}");
    }
}
