//! Namespace (`v1`) into the engine's [`Namespace`]: its name and labels
//! (the API server's `kubernetes.io/metadata.name` label is added by
//! [`Namespace::new`]).

use k8s_openapi::api::core::v1 as corev1;

use crate::engine::state::Namespace;

/// The namespace in the engine's form, or `None` when it has no name.
pub fn convert(ns: &corev1::Namespace) -> Option<Namespace> {
    let name = ns.metadata.name.as_deref()?;
    Some(Namespace::new(
        name,
        ns.metadata.labels.clone().unwrap_or_default(),
    ))
}
