//! Calico NetworkPolicy and GlobalNetworkPolicy manifests: read (every
//! error names the file, the object and the field), kept for `check` to
//! report the ones tierguard cannot judge.

use serde_json::Value;

use super::Loader;
use crate::model::calico::policy::{Kind, Policy, read};

/// A Calico policy from the manifests.
#[derive(Clone, Debug)]
pub struct CalicoObject {
    /// `Calico NetworkPolicy namespace/name` or `Calico GlobalNetworkPolicy
    /// name`: its identity (`--without` removes by it).
    pub object: String,
    /// A NetworkPolicy's namespace (`None` for a GlobalNetworkPolicy).
    pub namespace: Option<String>,
    /// What tierguard reads of it.
    pub policy: Policy,
}

impl Loader {
    /// Reads one Calico policy `v` of `group` and `kind` (which
    /// [`Kind::of`] knows); `namespace` is its `metadata.namespace` or the
    /// default, `label` names it in errors.
    pub(super) fn calico(
        &mut self,
        v: &Value,
        group: &str,
        kind: &str,
        namespace: &str,
        label: &str,
    ) {
        let Some(kind) = Kind::of(group, kind) else {
            return;
        };
        let name = v
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if name.is_empty() {
            self.errors
                .push(format!("{label}: metadata.name: Required value"));
            return;
        }
        let (object, namespace) = match kind {
            Kind::NetworkPolicy => (
                format!("{} {namespace}/{name}", kind.display_name()),
                Some(namespace.to_string()),
            ),
            Kind::GlobalNetworkPolicy => (format!("{} {name}", kind.display_name()), None),
        };
        match read(kind, v) {
            Ok(policy) => {
                if let Some(ns) = &namespace {
                    self.reference(ns);
                }
                self.world.calico.push(CalicoObject {
                    object,
                    namespace,
                    policy,
                });
            }
            Err(errs) => {
                for e in errs {
                    self.errors.push(format!("{label}: {e}"));
                }
            }
        }
    }
}
