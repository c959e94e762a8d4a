//! The cluster index: namespaces and NetworkPolicies, kept current by
//! watches, read by the admission handlers.
//!
//! ```text
//!  kube watcher(Namespace) ───┐ apply / delete / reset
//!  kube watcher(NetworkPolicy)┴──────────► Index { State, synced flags }
//!                                              ▲ snapshot (RwLock held
//!                          /validate, /mutate ─┘  only for an O(1) clone)
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
use crate::engine::state::State;

/// The index shared by watches and handlers.
pub type SharedIndex = Arc<RwLock<Index>>;

/// Namespaces and policies, and whether their initial lists have synced.
#[derive(Debug, Default)]
pub struct Index {
    state: State,
    namespaces_synced: bool,
    policies_synced: bool,
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
        if let Some(n) = crate::model::namespace::convert(ns) {
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
        match crate::model::networkpolicy::convert(np, crate::world::DEFAULT_NAMESPACE) {
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
    pub fn reset_policies(
        &mut self,
        all: &[netv1::NetworkPolicy],
    ) -> BTreeMap<String, Vec<FieldError>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
    use std::collections::BTreeMap;

    fn ns(name: &str, labels: &[(&str, &str)]) -> corev1::Namespace {
        corev1::Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect::<BTreeMap<_, _>>(),
                ),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn np(ns: &str, name: &str, cidr: &str) -> netv1::NetworkPolicy {
        netv1::NetworkPolicy {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            spec: Some(netv1::NetworkPolicySpec {
                pod_selector: Some(LabelSelector::default()),
                ingress: Some(vec![netv1::NetworkPolicyIngressRule {
                    from: Some(vec![netv1::NetworkPolicyPeer {
                        ip_block: Some(netv1::IPBlock {
                            cidr: cidr.into(),
                            except: None,
                        }),
                        ..Default::default()
                    }]),
                    ports: None,
                }]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn apply_delete_and_reset() {
        let mut idx = Index::new();
        assert!(!idx.is_synced());
        idx.apply_namespace(&ns("a", &[("team", "x")]));
        idx.apply_namespace(&ns("a", &[("team", "y")]));
        assert_eq!(
            idx.state()
                .namespace("a")
                .and_then(|n| n.labels.get("team"))
                .map(String::as_str),
            Some("y")
        );
        assert_eq!(
            idx.state().namespaces_labelled("team", "x").count(),
            0,
            "relabel updates the label index"
        );
        idx.reset_namespaces(&[ns("b", &[])]);
        assert!(
            idx.state().namespace("a").is_none(),
            "reset drops what the list no longer has"
        );
        assert!(!idx.is_synced(), "policies have not synced yet");

        assert!(idx.apply_policy(&np("b", "p", "10.0.0.0/8")).is_ok());
        let rejected =
            idx.reset_policies(&[np("b", "q", "10.0.0.0/8"), np("b", "bad", "10.0.0.0/99")]);
        assert!(idx.is_synced());
        assert_eq!(rejected.keys().collect::<Vec<_>>(), ["b/bad"]);
        assert!(idx.state().policy("b", "p").is_none());
        assert!(idx.state().policy("b", "q").is_some());
        assert_eq!(idx.counts(), (1, 1));

        // A policy updated into something unreadable leaves the index rather than staying stale.
        assert!(idx.apply_policy(&np("b", "q", "nonsense")).is_err());
        assert!(idx.state().policy("b", "q").is_none());
        idx.apply_policy(&np("b", "q", "10.0.0.0/8"))
            .expect("valid");
        idx.delete_policy("b", "q");
        idx.delete_namespace("b");
        assert_eq!(idx.counts(), (0, 0));
    }
}
