//! The cluster state the engine reasons about: namespaces with their labels,
//! and validated NetworkPolicies grouped by namespace.
//!
//! It is an index in linkerd's sense: `apply` and `delete` keep it current
//! (from manifests offline, from watches in the webhook), and readers borrow
//! it. Pods are not part of it: the isolation check quantifies over every pod
//! that could exist, so only `query` needs concrete pods (see [`Pod`]).

use std::net::IpAddr;
use std::sync::Arc;

use imbl::{OrdMap, OrdSet};

use super::cluster::{Api, ClusterPolicy};
use super::policy::Policy;
use super::ports::ContainerPort;
use super::selector::Labels;

/// The label the API server puts on every namespace, equal to its name.
pub const METADATA_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The `name` label tierguard keeps equal to the namespace's name.
pub const NAME_LABEL: &str = "name";

/// The annotation tierguard's mutating webhook keeps equal to the tier a
/// namespace is in by its tier label (absent when it is in none): the tier
/// join that was judged. The baseline controller reports (or undoes) a
/// label-made tier that differs from it, a join nobody judged.
pub const ADMITTED_TIER_ANNOTATION: &str = "tierguard.io/admitted-tier";

/// A namespace and its labels (always including [`METADATA_NAME_LABEL`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`, with the automatic name label added.
    pub labels: Labels,
}

impl Namespace {
    /// A namespace with the given labels plus the automatic name label.
    pub fn new(name: &str, labels: Labels) -> Self {
        let mut labels = labels;
        labels.insert(METADATA_NAME_LABEL.to_string(), name.to_string());
        Self {
            name: name.to_string(),
            labels,
        }
    }
}

/// A pod (or a workload standing for its pods).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pod {
    /// Its namespace.
    pub namespace: String,
    /// Its name (for a workload, the workload's name).
    pub name: String,
    /// Its labels (for a workload, the pod template's).
    pub labels: Labels,
    /// Container ports, for named-port resolution.
    pub ports: Vec<ContainerPort>,
    /// Pod IPs from status (a workload's pods have none known).
    pub ips: Vec<IpAddr>,
    /// `Deployment/frontend-app` when this stands for a workload's pods.
    pub workload: Option<String>,
}

/// Label value → the namespaces carrying it (for one label key).
type ByValue = OrdMap<Arc<str>, OrdSet<Arc<str>>>;

/// Namespaces and policies, indexed for the isolation check.
///
/// The maps are persistent (structurally shared, from `imbl`): a clone costs
/// a few reference counts whatever the size, and a change to a clone copies
/// only the path to what changed. So a handler can take a snapshot of the
/// index without holding its lock while it judges, and a change can be judged
/// by applying it to a clone ("after") and comparing with the original
/// ("before"), in time that does not grow with the cluster.
#[derive(Clone, Debug, Default)]
pub struct State {
    namespaces: OrdMap<Arc<str>, Arc<Namespace>>,
    /// namespace → policy name → policy.
    policies: OrdMap<Arc<str>, OrdMap<Arc<str>, Arc<Policy>>>,
    /// label key → value → namespaces carrying it.
    by_label: OrdMap<Arc<str>, ByValue>,
    /// Cluster-wide policies by API and name.
    cluster: OrdMap<(Api, Arc<str>), Arc<ClusterPolicy>>,
}

// === impl State ===

impl State {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a namespace.
    pub fn apply_namespace(&mut self, ns: Namespace) {
        self.delete_namespace(&ns.name);
        let name: Arc<str> = Arc::from(ns.name.as_str());
        for (k, v) in &ns.labels {
            self.by_label
                .entry(Arc::from(k.as_str()))
                .or_default()
                .entry(Arc::from(v.as_str()))
                .or_default()
                .insert(name.clone());
        }
        self.namespaces.insert(name, Arc::new(ns));
    }

    /// Removes a namespace (its policies stay until deleted themselves, as
    /// watch events for them arrive separately).
    pub fn delete_namespace(&mut self, name: &str) {
        let Some(old) = self.namespaces.remove(name) else {
            return;
        };
        for (k, v) in &old.labels {
            let Some(values) = self.by_label.get_mut(k.as_str()) else {
                continue;
            };
            if let Some(set) = values.get_mut(v.as_str()) {
                set.remove(name);
                if set.is_empty() {
                    values.remove(v.as_str());
                }
            }
            if values.is_empty() {
                self.by_label.remove(k.as_str());
            }
        }
    }

    /// Adds or replaces a policy.
    pub fn apply_policy(&mut self, policy: Arc<Policy>) {
        self.policies
            .entry(Arc::from(policy.namespace.as_str()))
            .or_default()
            .insert(Arc::from(policy.name.as_str()), policy);
    }

    /// Removes a policy; returns it if it was there.
    pub fn delete_policy(&mut self, namespace: &str, name: &str) -> Option<Arc<Policy>> {
        let ns = self.policies.get_mut(namespace)?;
        let old = ns.remove(name);
        if ns.is_empty() {
            self.policies.remove(namespace);
        }
        old
    }

    /// A namespace by name.
    pub fn namespace(&self, name: &str) -> Option<&Namespace> {
        self.namespaces.get(name).map(Arc::as_ref)
    }

    /// Every namespace, by name.
    pub fn namespaces(&self) -> impl Iterator<Item = &Namespace> {
        self.namespaces.values().map(Arc::as_ref)
    }

    /// Namespaces whose label `key` equals `value`.
    pub fn namespaces_labelled(&self, key: &str, value: &str) -> impl Iterator<Item = &Namespace> {
        self.by_label
            .get(key)
            .and_then(|values| values.get(value))
            .into_iter()
            .flatten()
            .filter_map(|n| self.namespace(n))
    }

    /// The policies of one namespace, by name.
    pub fn policies_in(&self, namespace: &str) -> impl Iterator<Item = &Arc<Policy>> {
        self.policies
            .get(namespace)
            .into_iter()
            .flat_map(|m| m.values())
    }

    /// One policy.
    pub fn policy(&self, namespace: &str, name: &str) -> Option<&Arc<Policy>> {
        self.policies.get(namespace)?.get(name)
    }

    /// Every policy.
    pub fn policies(&self) -> impl Iterator<Item = &Arc<Policy>> {
        self.policies.values().flat_map(|m| m.values())
    }

    /// Namespaces that hold policies, in order.
    pub fn namespaces_with_policies(&self) -> impl Iterator<Item = &str> {
        self.policies.keys().map(AsRef::as_ref)
    }

    /// Adds or replaces a cluster policy.
    pub fn apply_cluster_policy(&mut self, policy: Arc<ClusterPolicy>) {
        self.cluster
            .insert((policy.api, Arc::from(policy.name.as_str())), policy);
    }

    /// Removes a cluster policy; returns it if it was there.
    pub fn delete_cluster_policy(&mut self, api: Api, name: &str) -> Option<Arc<ClusterPolicy>> {
        self.cluster.remove(&(api, Arc::from(name)))
    }

    /// One cluster policy.
    pub fn cluster_policy(&self, api: Api, name: &str) -> Option<&Arc<ClusterPolicy>> {
        self.cluster.get(&(api, Arc::from(name)))
    }

    /// Every cluster policy, by API and name.
    pub fn cluster_policies(&self) -> impl Iterator<Item = &Arc<ClusterPolicy>> {
        self.cluster.values()
    }

    /// True when some cluster policy exists (the judgement is ordered by
    /// tiers only then).
    pub fn has_cluster_policies(&self) -> bool {
        !self.cluster.is_empty()
    }

    /// Counts: (namespaces, policies).
    pub fn counts(&self) -> (usize, usize) {
        (
            self.namespaces.len(),
            self.policies.values().map(OrdMap::len).sum(),
        )
    }
}
