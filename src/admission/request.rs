//! An AdmissionReview body, parsed once into a typed [`Request`].
//!
//! ```text
//!  bytes ─► AdmissionReview<DynamicObject> ─► checks (version, request, uid)
//!        ─► Request { kind: Kind (matched on group and kind), operation, user, dry_run, objects }
//! ```
//!
//! Objects keep their parsed form: a resource is read from it with
//! [`typed`], which deserializes its fields from the parsed JSON by
//! reference and names the failing field.

use axum::http::StatusCode;
use k8s_openapi::api::core::v1 as corev1;
use k8s_openapi::api::networking::v1 as netv1;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionReview, Operation};
use serde::de::DeserializeOwned;
use serde_json::Value;

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
        match (group, kind) {
            ("", "Namespace") => Kind::Namespace,
            ("networking.k8s.io", "NetworkPolicy") => Kind::NetworkPolicy,
            ("", "Pod") => Kind::Pod,
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
            Kind::Other { kind, .. } => kind,
        }
    }

    /// The kind as a metric label: one of four values. The group and kind of
    /// an unexpected request come from its body, so naming them in a label
    /// would add a time series, kept for the life of the process, per
    /// distinct body (logs name them instead).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::NetworkPolicy => "NetworkPolicy",
            Kind::Pod => "Pod",
            Kind::Other { .. } => "other",
        }
    }
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
    pub inner: AdmissionRequest<DynamicObject>,
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
        let review: AdmissionReview<DynamicObject> = serde_json::from_slice(bytes)
            .map_err(|e| bad(format!("malformed AdmissionReview: {e}")))?;
        if review.types.api_version != ADMISSION_V1 || review.types.kind != "AdmissionReview" {
            return Err(bad(format!(
                "expected apiVersion {ADMISSION_V1} kind AdmissionReview, got {} {}",
                review.types.api_version, review.types.kind
            )));
        }
        let inner: AdmissionRequest<DynamicObject> = review
            .try_into()
            .map_err(|_| bad("AdmissionReview has no request"))?;
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
        typed(self.inner.object.as_ref(), "object")
    }

    /// The old object as a typed resource.
    pub fn old_object<T: FromObject>(&self) -> Result<T, String> {
        typed(self.inner.old_object.as_ref(), "old object")
    }

    /// The new object as parsed, if any.
    pub fn raw_object(&self) -> Option<&DynamicObject> {
        self.inner.object.as_ref()
    }
}

/// A resource tierguard reads from a request's object.
///
/// The AdmissionReview is parsed once: its object arrives as a
/// [`DynamicObject`] whose metadata is already typed and whose other fields
/// are parsed JSON. A resource takes the metadata as it is and deserializes
/// its other fields straight from that JSON, by reference, rather than
/// writing the object back out and parsing it again.
pub trait FromObject: Sized {
    /// The resource, or the path and reason of the field that cannot be read.
    fn from_object(obj: &DynamicObject) -> Result<Self, String>;
}

/// Field `key` of `obj` (absent or null: `None`), with the field path in the
/// error.
fn field<T: DeserializeOwned>(obj: &DynamicObject, key: &str) -> Result<Option<T>, String> {
    match obj.data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_path_to_error::deserialize(v).map(Some).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                format!("{key}: {}", e.inner())
            } else {
                format!("{key}.{path}: {}", e.inner())
            }
        }),
    }
}

impl FromObject for corev1::Namespace {
    fn from_object(obj: &DynamicObject) -> Result<Self, String> {
        Ok(Self {
            metadata: obj.metadata.clone(),
            spec: field(obj, "spec")?,
            status: field(obj, "status")?,
        })
    }
}

impl FromObject for netv1::NetworkPolicy {
    fn from_object(obj: &DynamicObject) -> Result<Self, String> {
        Ok(Self {
            metadata: obj.metadata.clone(),
            spec: field(obj, "spec")?,
        })
    }
}

/// The request's object (or old object) as a typed resource.
pub fn typed<T: FromObject>(obj: Option<&DynamicObject>, what: &str) -> Result<T, String> {
    let obj = obj.ok_or_else(|| format!("the request has no {what}"))?;
    T::from_object(obj).map_err(|e| format!("cannot read the {what}: {e}"))
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
        // The same kind name in another group is not a NetworkPolicy.
        let r =
            Request::parse(&body("NetworkPolicy", "crd.projectcalico.org", "u")).expect("parses");
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
