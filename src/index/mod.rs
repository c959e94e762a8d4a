//! The cluster index: namespaces and NetworkPolicies, kept current by
//! watches, read by the admission handlers.
//!
//! ```text
//!  kube watcher(Namespace) ───┐ apply / delete / reset
//!  kube watcher(NetworkPolicy)┴──────────► Index { State, synced flags }
//!                                              ▲ read (RwLock)
//!                          /validate, /mutate ─┘
//! ```
//!
//! Only what the isolation check needs is kept: namespace names and labels,
//! validated policies. Pods are never cached, so memory is bounded by the
//! number of namespaces and policies.

mod watch;

pub use watch::{publish, run_watches};

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1 as corev1;
use k8s_openapi::api::networking::v1 as netv1;

use crate::engine::field::FieldError;
use crate::engine::policy::Policy;
use crate::engine::state::{Namespace, State};

/// The index shared by watches and handlers.
pub type SharedIndex = Arc<RwLock<Index>>;

/// Namespaces and policies, and whether their initial lists have synced.
#[derive(Debug, Default)]
pub struct Index {
    state: State,
    namespaces_synced: bool,
    policies_synced: bool,
}

/// Converts a Namespace object to the engine's form.
pub fn namespace_of(ns: &corev1::Namespace) -> Option<Namespace> {
    let name = ns.metadata.name.as_deref()?;
    Some(Namespace::new(name, ns.metadata.labels.clone().unwrap_or_default()))
}

/// Validates a NetworkPolicy object into the engine's form.
pub fn policy_of(np: &netv1::NetworkPolicy) -> Result<Policy, Vec<FieldError>> {
    Policy::from_k8s(np, "default")
}

// === impl Index ===

impl Index {
    /// An empty, unsynced index.
    pub fn new() -> Self {
        Self::default()
    }

    /// An index holding `state`, marked synced (offline use: `serve --world`).
    pub fn preloaded(state: State) -> Self {
        Self {
            state,
            namespaces_synced: true,
            policies_synced: true,
        }
    }

    /// The state the handlers judge against.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// True when both initial lists have been applied.
    pub fn is_synced(&self) -> bool {
        self.namespaces_synced && self.policies_synced
    }

    /// Adds or replaces a namespace.
    pub fn apply_namespace(&mut self, ns: &corev1::Namespace) {
        if let Some(n) = namespace_of(ns) {
            self.state.apply_namespace(n);
        }
    }

    /// Removes a namespace.
    pub fn delete_namespace(&mut self, name: &str) {
        self.state.delete_namespace(name);
    }

    /// Replaces every namespace (after a full list) and marks them synced.
    pub fn reset_namespaces(&mut self, all: &[corev1::Namespace]) {
        let old: Vec<String> = self.state.namespaces().map(|n| n.name.clone()).collect();
        for n in old {
            self.state.delete_namespace(&n);
        }
        for ns in all {
            self.apply_namespace(ns);
        }
        self.namespaces_synced = true;
    }

    /// Adds or replaces a policy. A policy tierguard cannot validate (the API
    /// server accepted it, so this means the two disagree) is removed from
    /// the index and reported.
    pub fn apply_policy(&mut self, np: &netv1::NetworkPolicy) -> Result<(), Vec<FieldError>> {
        match policy_of(np) {
            Ok(p) => {
                self.state.apply_policy(Arc::new(p));
                Ok(())
            }
            Err(e) => {
                if let (Some(ns), Some(name)) = (&np.metadata.namespace, &np.metadata.name) {
                    self.state.delete_policy(ns, name);
                }
                Err(e)
            }
        }
    }

    /// Removes a policy.
    pub fn delete_policy(&mut self, namespace: &str, name: &str) {
        self.state.delete_policy(namespace, name);
    }

    /// Replaces every policy (after a full list) and marks them synced.
    /// Returns the policies that could not be read, by `namespace/name`.
    pub fn reset_policies(&mut self, all: &[netv1::NetworkPolicy]) -> BTreeMap<String, Vec<FieldError>> {
        let old: Vec<(String, String)> = self
            .state
            .policies()
            .map(|p| (p.namespace.clone(), p.name.clone()))
            .collect();
        for (ns, name) in old {
            self.state.delete_policy(&ns, &name);
        }
        let mut rejected = BTreeMap::new();
        for np in all {
            if let Err(e) = self.apply_policy(np) {
                let key = format!(
                    "{}/{}",
                    np.metadata.namespace.as_deref().unwrap_or_default(),
                    np.metadata.name.as_deref().unwrap_or_default()
                );
                rejected.insert(key, e);
            }
        }
        self.policies_synced = true;
        rejected
    }

    /// Counts: (namespaces, policies).
    pub fn counts(&self) -> (usize, usize) {
        self.state.counts()
    }
}
