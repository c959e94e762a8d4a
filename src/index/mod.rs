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
//!
//! The index also knows what it does not know, so judgements fail closed:
//! - policies the API server stored but tierguard cannot read (over its
//!   limits, or invalid to it) are kept by name per namespace
//!   ([`Index::unreadable_in`]); changes in that namespace are "cannot judge";
//! - cluster policies (ClusterNetworkPolicy, AdminNetworkPolicy,
//!   BaselineAdminNetworkPolicy) are watched only while discovery finds their
//!   kinds served; until a served kind has synced the index is not synced,
//!   and one tierguard cannot read makes every change it could affect
//!   "cannot judge" ([`Index::unreadable_cluster_policies`]);
//! - a watch that keeps failing makes the index stale ([`Index::stale`]):
//!   `/readyz` fails and judgements refuse until it recovers.

mod watch;

pub use watch::{publish, run_watches, snapshot};

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1 as corev1;
use k8s_openapi::api::networking::v1 as netv1;

use crate::engine::cluster::Api;
use crate::engine::field::FieldError;
use crate::engine::state::State;

/// The index shared by watches and handlers.
pub type SharedIndex = Arc<RwLock<Index>>;

/// How long a watch may keep failing before the index is stale, unless
/// `serve --index-stale-after` says otherwise.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(60);

/// How long a failing watch may go without reporting another error before
/// it counts as recovered. kube's watcher retries with backoff up to 30 s
/// (with jitter) and reports every failed attempt, but reports nothing when
/// a resumed watch succeeds and nothing changes; a failing watch therefore
/// reports again within this window, a recovered one does not.
pub const RECOVERED_AFTER_QUIET: Duration = Duration::from_secs(45);

/// The kinds the index watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watched {
    /// core/v1 Namespace.
    Namespace,
    /// networking.k8s.io/v1 NetworkPolicy.
    NetworkPolicy,
    /// The policy.networking.k8s.io kinds the API server serves
    /// (ClusterNetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy),
    /// and their discovery.
    ClusterPolicy,
}

impl Watched {
    /// The kind's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Watched::Namespace => "Namespace",
            Watched::NetworkPolicy => "NetworkPolicy",
            Watched::ClusterPolicy => "cluster policy",
        }
    }

    fn slot(self) -> usize {
        match self {
            Watched::Namespace => 0,
            Watched::NetworkPolicy => 1,
            Watched::ClusterPolicy => 2,
        }
    }
}

/// The cluster policy kinds, as discovery and their watches know them.
#[derive(Debug, Default)]
struct ClusterKinds {
    /// Discovery has answered at least once.
    discovered: bool,
    /// Served kinds → whether their initial list has been applied.
    served: BTreeMap<Api, bool>,
    /// Served kinds the last discovery did not find (dropped if the next
    /// does not either).
    missing: std::collections::BTreeSet<Api>,
    /// (kind, name) → why it cannot be read.
    unreadable: BTreeMap<(Api, String), String>,
}

/// A streak of watch failures not yet followed by a success.
#[derive(Clone, Copy, Debug, Default)]
struct Health {
    /// The first failure of the streak.
    failing_since: Option<Instant>,
    /// The latest failure.
    last_failure: Option<Instant>,
}

/// Why the index is stale: a watch has been failing for longer than the bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stale {
    /// The kind whose watch fails.
    pub kind: Watched,
    /// How long it has been failing.
    pub failing_for: Duration,
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the {} watch has been failing for {} s",
            self.kind.as_str(),
            self.failing_for.as_secs()
        )
    }
}

/// Namespaces and policies, whether their initial lists have synced, the
/// policies that could not be read and the watches' health.
#[derive(Debug)]
pub struct Index {
    state: State,
    /// Bumped by every change of `state` (see [`Index::changes`]).
    changes: u64,
    namespaces_synced: bool,
    policies_synced: bool,
    /// namespace → policy name → why it cannot be read.
    unreadable: BTreeMap<String, BTreeMap<String, String>>,
    /// The cluster policy kinds discovery found served, whether each has
    /// synced, and those of their objects tierguard cannot read.
    cluster: ClusterKinds,
    health: [Health; 3],
    stale_after: Duration,
    /// False for a preloaded index (`serve --world`): no watch keeps it.
    watched: bool,
}

impl Default for Index {
    fn default() -> Self {
        Self {
            state: State::default(),
            changes: 0,
            namespaces_synced: false,
            policies_synced: false,
            unreadable: BTreeMap::new(),
            cluster: ClusterKinds::default(),
            health: [Health::default(); 3],
            stale_after: DEFAULT_STALE_AFTER,
            watched: true,
        }
    }
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
            watched: false,
            // The world holds whatever cluster policies it has: every
            // kind counts as served and listed.
            cluster: ClusterKinds {
                discovered: true,
                served: Api::ALL.into_iter().map(|a| (a, true)).collect(),
                ..ClusterKinds::default()
            },
            ..Self::default()
        }
    }

    /// Sets how long a watch may keep failing before the index is stale.
    pub fn with_stale_after(mut self, bound: Duration) -> Self {
        self.stale_after = bound;
        self
    }

    /// Records a failed watch attempt of `kind` at `at`.
    pub fn watch_failed(&mut self, kind: Watched, at: Instant) {
        let h = &mut self.health[kind.slot()];
        let recovered = h
            .last_failure
            .is_some_and(|last| at.saturating_duration_since(last) >= RECOVERED_AFTER_QUIET);
        if h.failing_since.is_none() || recovered {
            h.failing_since = Some(at);
        }
        h.last_failure = Some(at);
    }

    /// Records an event of `kind`: its watch works.
    pub fn watch_ok(&mut self, kind: Watched) {
        self.health[kind.slot()] = Health::default();
    }

    /// The stale watch, if one has been failing for longer than the bound
    /// at `now` (and has not gone quiet since, see [`RECOVERED_AFTER_QUIET`]).
    pub fn stale_at(&self, now: Instant) -> Option<Stale> {
        [
            Watched::Namespace,
            Watched::NetworkPolicy,
            Watched::ClusterPolicy,
        ]
        .into_iter()
        .find_map(|kind| {
            let h = self.health[kind.slot()];
            let (since, last) = (h.failing_since?, h.last_failure?);
            let failing_for = now.saturating_duration_since(since);
            let quiet = now.saturating_duration_since(last);
            (failing_for >= self.stale_after && quiet < RECOVERED_AFTER_QUIET)
                .then_some(Stale { kind, failing_for })
        })
    }

    /// [`Index::stale_at`] now.
    pub fn stale(&self) -> Option<Stale> {
        self.stale_at(Instant::now())
    }

    /// The policies of `namespace` tierguard cannot read, with why, by name.
    pub fn unreadable_in(&self, namespace: &str) -> impl Iterator<Item = (&str, &str)> {
        self.unreadable
            .get(namespace)
            .into_iter()
            .flatten()
            .map(|(n, e)| (n.as_str(), e.as_str()))
    }

    /// How many stored NetworkPolicies tierguard cannot read.
    pub fn unreadable_count(&self) -> usize {
        self.unreadable.values().map(BTreeMap::len).sum()
    }

    fn forget_unreadable(&mut self, namespace: &str, name: &str) {
        if let Some(m) = self.unreadable.get_mut(namespace) {
            m.remove(name);
            if m.is_empty() {
                self.unreadable.remove(namespace);
            }
        }
    }

    /// The state the handlers judge against.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// How many times the state has changed: equal numbers, the same state
    /// (a relist counts as changes even when it brings nothing new).
    pub fn changes(&self) -> u64 {
        self.changes
    }

    fn state_mut(&mut self) -> &mut State {
        self.changes = self.changes.wrapping_add(1);
        &mut self.state
    }

    /// True when every initial list has been applied: namespaces,
    /// NetworkPolicies, and, once discovery has run, each cluster policy
    /// kind the API server serves.
    pub fn is_synced(&self) -> bool {
        self.namespaces_synced
            && self.policies_synced
            && self.cluster.discovered
            && self.cluster.missing.is_empty()
            && self.cluster.served.values().all(|synced| *synced)
    }

    /// Marks the index as kept by watches (a preloaded index is not): a
    /// namespace missing from it may not have arrived yet.
    pub fn watched(mut self) -> Self {
        self.watched = true;
        self
    }

    /// True when watches keep the index (false for [`Index::preloaded`]):
    /// a namespace it lacks may only not have arrived yet.
    pub fn is_watched(&self) -> bool {
        self.watched
    }

    /// A watch of `kind` starts listing: the first time, or again after
    /// it missed events (kube's watcher relists after `410 Gone`). Until the
    /// list is applied the index is not synced, so nothing is judged from a
    /// state that may lack changes made in the gap; what it held stays, for
    /// the list to replace. True when the kind had synced (a relist).
    pub fn listing(&mut self, kind: Watched) -> bool {
        let synced = match kind {
            Watched::Namespace => &mut self.namespaces_synced,
            Watched::NetworkPolicy => &mut self.policies_synced,
            // Each cluster kind has its own flag: see listing_cluster_api.
            Watched::ClusterPolicy => return false,
        };
        std::mem::replace(synced, false)
    }

    /// [`Index::listing`] for one cluster policy kind (while it is served).
    pub fn listing_cluster_api(&mut self, api: Api) -> bool {
        self.cluster
            .served
            .get_mut(&api)
            .is_some_and(|synced| std::mem::replace(synced, false))
    }

    /// Adds or replaces a namespace.
    pub fn apply_namespace(&mut self, ns: &corev1::Namespace) {
        if let Some(n) = crate::model::namespace::convert(ns) {
            self.state_mut().apply_namespace(n);
        }
    }

    /// Removes a namespace.
    pub fn delete_namespace(&mut self, name: &str) {
        self.state_mut().delete_namespace(name);
    }

    /// Replaces every namespace (after a full list) and marks them synced.
    pub fn reset_namespaces(&mut self, all: &[corev1::Namespace]) {
        let old: Vec<String> = self.state.namespaces().map(|n| n.name.clone()).collect();
        for n in old {
            self.state_mut().delete_namespace(&n);
        }
        for ns in all {
            self.apply_namespace(ns);
        }
        self.namespaces_synced = true;
    }

    /// Adds or replaces a policy. A policy tierguard cannot validate (the API
    /// server accepted it, so this means the two disagree, or it is over
    /// tierguard's limits) is removed from the judged state, remembered as
    /// unreadable in its namespace, and reported.
    pub fn apply_policy(&mut self, np: &netv1::NetworkPolicy) -> Result<(), Vec<FieldError>> {
        let ns = np.metadata.namespace.as_deref().unwrap_or_default();
        let name = np.metadata.name.as_deref().unwrap_or_default();
        match crate::model::networkpolicy::convert(np, crate::world::DEFAULT_NAMESPACE) {
            Ok(p) => {
                self.forget_unreadable(ns, name);
                self.state_mut().apply_policy(Arc::new(p));
                Ok(())
            }
            Err(e) => {
                self.state_mut().delete_policy(ns, name);
                let why = e.first().map(ToString::to_string).unwrap_or_default();
                self.unreadable
                    .entry(ns.to_string())
                    .or_default()
                    .insert(name.to_string(), crate::report::clip(&why, 200));
                Err(e)
            }
        }
    }

    /// Removes a policy.
    pub fn delete_policy(&mut self, namespace: &str, name: &str) {
        self.forget_unreadable(namespace, name);
        self.state_mut().delete_policy(namespace, name);
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
            self.state_mut().delete_policy(&ns, &name);
        }
        self.unreadable.clear();
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

    /// Records what discovery found: the cluster policy kinds served now.
    /// A kind that is new must sync before the index is synced again; the
    /// objects of a kind no longer served leave the judged state (the API
    /// server no longer has them, so the data plane is not told them
    /// either).
    ///
    /// A kind missing from one discovery is not dropped at once (an API
    /// server restarting or lagging behind a load balancer may omit a
    /// group): its objects stay and the index is not synced until a second
    /// discovery in a row confirms it gone, or the next one finds it again.
    pub fn set_cluster_apis(&mut self, served: &[Api]) {
        let missing: Vec<Api> = self
            .cluster
            .served
            .keys()
            .filter(|a| !served.contains(a))
            .copied()
            .collect();
        for api in missing {
            if self.cluster.missing.insert(api) {
                continue;
            }
            self.cluster.missing.remove(&api);
            self.cluster.served.remove(&api);
            self.drop_cluster_objects(api);
        }
        for api in served {
            // Back after a miss: its watch was stopped, so it lists again.
            if self.cluster.missing.remove(api) {
                self.cluster.served.insert(*api, false);
            }
            self.cluster.served.entry(*api).or_insert(false);
        }
        self.cluster.discovered = true;
    }

    /// Forgets `api` at once (its watch restarts at another version): its
    /// objects leave the judged state and it must sync again.
    pub fn restart_cluster_api(&mut self, api: Api) {
        self.cluster.missing.remove(&api);
        self.cluster.served.insert(api, false);
        self.drop_cluster_objects(api);
    }

    /// True when `api` is served and its list is in: its writes can be
    /// judged.
    pub fn cluster_api_synced(&self, api: Api) -> bool {
        self.cluster.served.get(&api) == Some(&true) && !self.cluster.missing.contains(&api)
    }

    /// The cluster policy kinds served, as discovery last found them.
    pub fn cluster_apis(&self) -> impl Iterator<Item = Api> + '_ {
        self.cluster.served.keys().copied()
    }

    fn drop_cluster_objects(&mut self, api: Api) {
        let names: Vec<String> = self
            .state
            .cluster_policies()
            .filter(|p| p.api == api)
            .map(|p| p.name.clone())
            .collect();
        for n in names {
            self.state_mut().delete_cluster_policy(api, &n);
        }
        self.cluster.unreadable.retain(|(a, _), _| *a != api);
    }

    /// Adds or replaces a cluster policy, given as JSON. One tierguard cannot
    /// read leaves the judged state and is remembered: every judgement that
    /// it could change is then "cannot judge" (a cluster policy may select
    /// any namespace).
    pub fn apply_cluster_policy(
        &mut self,
        api: Api,
        obj: &serde_json::Value,
    ) -> Result<(), Vec<FieldError>> {
        let name = obj
            .pointer("/metadata/name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string();
        match crate::model::clusterpolicy::convert(api, obj) {
            Ok(p) => {
                self.cluster.unreadable.remove(&(api, name));
                self.state_mut().apply_cluster_policy(Arc::new(p));
                Ok(())
            }
            Err(e) => {
                self.state_mut().delete_cluster_policy(api, &name);
                let why = e.first().map(ToString::to_string).unwrap_or_default();
                self.cluster
                    .unreadable
                    .insert((api, name), crate::report::clip(&why, 200));
                Err(e)
            }
        }
    }

    /// Removes a cluster policy.
    pub fn delete_cluster_policy(&mut self, api: Api, name: &str) {
        self.cluster.unreadable.remove(&(api, name.to_string()));
        self.state_mut().delete_cluster_policy(api, name);
    }

    /// Replaces every object of `api` (after a full list) and marks the kind
    /// synced. Returns those that could not be read, by name.
    pub fn reset_cluster_policies(
        &mut self,
        api: Api,
        all: &[serde_json::Value],
    ) -> BTreeMap<String, Vec<FieldError>> {
        self.drop_cluster_objects(api);
        let mut rejected = BTreeMap::new();
        for obj in all {
            if let Err(e) = self.apply_cluster_policy(api, obj) {
                let name = obj
                    .pointer("/metadata/name")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default();
                rejected.insert(format!("{} {name}", api.kind()), e);
            }
        }
        if let Some(synced) = self.cluster.served.get_mut(&api) {
            *synced = true;
        }
        rejected
    }

    /// The cluster policies tierguard cannot read: (kind, name, why).
    pub fn unreadable_cluster_policies(&self) -> impl Iterator<Item = (Api, &str, &str)> {
        self.cluster
            .unreadable
            .iter()
            .map(|((a, n), why)| (*a, n.as_str(), why.as_str()))
    }

    /// Counts: (namespaces, policies).
    pub fn counts(&self) -> (usize, usize) {
        self.state.counts()
    }
}

#[cfg(test)]
mod tests;
