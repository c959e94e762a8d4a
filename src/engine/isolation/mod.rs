//! The guard's question: which flows that the isolation policy forbids does
//! this state allow, and which does this change open?
//!
//! # What is judged
//!
//! Each tier namespace has two walls: its ingress and its egress. In `walls`
//! mode (the default) each wall stands alone: a wall is breached when it
//! would let through, for **some** pod of the namespace, a connection the
//! flows forbid, as if the other end allowed everything. `effective` mode
//! keeps a breach only when the other end may allow it too.
//!
//! # What is quantified over
//!
//! Every pod that exists or could exist, with any labels and any named
//! ports, in every namespace that exists or could exist. Only namespaces and
//! policies are inputs. This is finite because of three facts:
//!
//! 1. **Rules are a union.** A wall lets a connection through iff the pod is
//!    selected by no policy of that direction, or some rule of some policy
//!    selecting it matches. So a breach has one cause: either "some pod is
//!    selected by no policy" ([`solve`] finds such labels, or proves there are
//!    none), or a single rule whose policy can select some pod. Rules are
//!    judged one at a time, and the pod's other labels do not matter.
//! 2. **Labels have finitely many behaviours.** Under a set of selectors a
//!    key's value behaves like one of the values they name, "absent", or one
//!    value none names; [`solve`] tries exactly those.
//! 3. **Namespaces fall into finitely many kinds.** A namespace is known only
//!    by the labels tierguard protects: `kubernetes.io/metadata.name`, `name`
//!    (which must equal the namespace's name) and the tier label (privileged).
//!    Every other namespace label is free: any namespace may carry any value.
//!    So a namespace selector is matched against:
//!    - when it pins names (`In` on a name label): exactly those namespaces,
//!      existing or yet to be created, and namespaces whose `name` label
//!      claims one of them;
//!    - otherwise: the namespaces the isolation policy names (tier members by
//!      name, flow ends), members of a tier joined by label whose names the
//!      selector mentions (a `NotIn` may exclude them), one other member of
//!      each tier joined by label, and one namespace nobody has created yet
//!      (a fresh name; tier label absent, a value the selector names that is
//!      not a tier, or any other value).
//!      Any other namespace behaves like one of these under that selector,
//!      so the cost does not grow with unrelated namespaces.
//!
//!    A namespace that does not exist yet joins a tier only by its name:
//!    joining by label is a privileged change, judged when it happens.
//!
//! An `ipBlock` that may overlap the cluster's pod or service CIDRs (or any
//! `ipBlock`, when none are declared) may match any pod; the part outside
//! them matches hosts outside the cluster. A named port matches any number
//! on a pod (some future pod may bind the name to it) and nothing outside the
//! cluster.
//!
//! 4. **Under cluster tiers a breach is one of three shapes.** When a
//!    ClusterNetworkPolicy, AdminNetworkPolicy or BaselineAdminNetworkPolicy
//!    may select the wall's pods, rules are no longer a union: the first
//!    matching rule of the Admin tier decides (`Pass` hands over to the
//!    NetworkPolicies), then the NetworkPolicies, then the Baseline tier,
//!    then "allowed". A breach is then (A) an Admin `Accept` that matches
//!    while no earlier Admin rule does, (B) the Admin tier passing and one
//!    NetworkPolicy rule allowing, or (C) the Admin tier passing, no
//!    NetworkPolicy isolating the pod, and the Baseline tier accepting or
//!    passing. Each shape is a conjunction of selector, address and port
//!    literals with one clause (a negated rule) per earlier rule, over five
//!    label sets (the pod, its namespace, the other end's pod, namespace and
//!    node). Facts 2 and 3 still bound the labels and namespaces
//!    (representatives now also cover every namespace a cluster rule names),
//!    addresses and ports fall into finitely many atoms of the sets the
//!    literals name, so `ordered.rs` searches finitely many branches,
//!    within the budget. Policies of one tier at equal priority are not
//!    ordered by the API: a rule is only preceded by rules of policies with
//!    a lower priority (and its own policy's earlier rules), so every order
//!    an implementation may pick is judged, and the finding says so.
//!
//! A change is judged by comparing the breaches before and after it: only
//! what the change adds is reported, with the rules that add it.
//!
//! # Layout
//!
//! ```text
//!  mod.rs        the API: Checker::report, check_change, diff, what a change costs
//!  reps.rs       the namespaces a selector can match, as representatives (fact 3)
//!  walls.rs      one wall's breaches: unisolated pods and rule by rule (fact 1)
//!  ordered.rs    one wall under cluster tiers: shapes A, B, C (fact 4);
//!    ordered/shapes.rs   each shape's term and clauses, from the rules
//!    ordered/frame.rs    literals, the search frame, port and address atoms
//!  effective.rs  `judge: effective`: keep a breach only if the other end may allow it
//!  breach.rs     the typed results (Breach, End, Cause, Note, NamespaceProblem)
//! ```

mod breach;
mod effective;
mod ordered;
mod reps;
mod walls;

pub use breach::{Breach, Cause, End, NamespaceProblem, Note, Report};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use super::cluster::{Api, ClusterPolicy};
use super::ipblock::IpSet;
use super::policy::Policy;
use super::selector::{Budget, Exhausted};
use super::state::{NAME_LABEL, Namespace, State};
use super::tiers::{IsolationPolicy, Judge};
use reps::Rep;

/// A proposed change to the state.
#[derive(Clone, Debug)]
pub enum Change {
    /// Create or update a NetworkPolicy.
    ApplyPolicy(Arc<Policy>),
    /// Delete a NetworkPolicy.
    DeletePolicy {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// Create or relabel a namespace.
    ApplyNamespace(Namespace),
    /// Create or update a ClusterNetworkPolicy, AdminNetworkPolicy or
    /// BaselineAdminNetworkPolicy.
    ApplyClusterPolicy(Arc<ClusterPolicy>),
    /// Delete one.
    DeleteClusterPolicy {
        /// Its API.
        api: Api,
        /// Its name.
        name: String,
    },
}

/// What judging a change costs, so the caller can choose where to run it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cost {
    /// Bounded by one namespace's walls and policies (a NetworkPolicy change
    /// in walls mode): cheap enough to judge in place.
    Namespace,
    /// Walks every tier namespace (a namespace change, or any policy change
    /// in effective mode): grows with the cluster.
    Cluster,
}

impl Cost {
    /// What judging a namespace create or relabel costs: every tier
    /// namespace may gain or lose it as a peer.
    pub fn of_namespace_change() -> Cost {
        Cost::Cluster
    }

    /// What judging a NetworkPolicy create, update or delete costs: walls
    /// mode judges the policy's own namespace only.
    pub fn of_policy_change(iso: &IsolationPolicy) -> Cost {
        match iso.judge {
            Judge::Walls => Cost::Namespace,
            Judge::Effective => Cost::Cluster,
        }
    }
}

impl Change {
    /// What judging this change under `iso` costs.
    pub fn cost(&self, iso: &IsolationPolicy) -> Cost {
        match self {
            // A cluster policy's subject may be any namespace.
            Change::ApplyNamespace(_)
            | Change::ApplyClusterPolicy(_)
            | Change::DeleteClusterPolicy { .. } => Cost::Cluster,
            Change::ApplyPolicy(_) | Change::DeletePolicy { .. } => Cost::of_policy_change(iso),
        }
    }
}

/// Evaluates walls against an isolation policy.
pub struct Checker<'a> {
    iso: &'a IsolationPolicy,
    state: &'a State,
    cluster: Option<IpSet>,
    everything: OnceLock<Vec<Rep>>,
    cluster_names: OnceLock<BTreeSet<String>>,
    budget: Spend<'a>,
}

/// The budget a checker spends: its own, or one shared by the checkers of
/// one judgement (a diff has two).
enum Spend<'a> {
    Own(Budget),
    Shared(&'a Budget),
}

impl std::ops::Deref for Spend<'_> {
    type Target = Budget;
    fn deref(&self) -> &Budget {
        match self {
            Spend::Own(b) => b,
            Spend::Shared(b) => b,
        }
    }
}

// === impl Checker ===

impl<'a> Checker<'a> {
    /// A checker over one state, with the default [`Budget`].
    pub fn new(iso: &'a IsolationPolicy, state: &'a State) -> Self {
        Self::build(iso, state, Spend::Own(Budget::default()))
    }

    /// A checker that spends `budget`.
    pub fn within(iso: &'a IsolationPolicy, state: &'a State, budget: &'a Budget) -> Self {
        Self::build(iso, state, Spend::Shared(budget))
    }

    fn build(iso: &'a IsolationPolicy, state: &'a State, budget: Spend<'a>) -> Self {
        Self {
            iso,
            state,
            cluster: iso.cluster_addresses(),
            everything: OnceLock::new(),
            cluster_names: OnceLock::new(),
            budget,
        }
    }

    /// The tier of an existing namespace (the name wins over a conflicting
    /// label; conflicts are reported separately).
    pub fn tier_of(&self, ns: &Namespace) -> Option<usize> {
        self.iso.tier_of_namespace(&ns.name, &ns.labels)
    }

    /// Existing tier namespaces, in name order.
    pub fn tier_namespaces(&self) -> Vec<&'a Namespace> {
        let mut out: BTreeMap<&str, &Namespace> = BTreeMap::new();
        for t in &self.iso.tiers {
            for n in &t.namespaces {
                if let Some(ns) = self.state.namespace(n) {
                    out.insert(&ns.name, ns);
                }
            }
            for ns in self
                .state
                .namespaces_labelled(&self.iso.tier_label, &t.name)
            {
                out.insert(&ns.name, ns);
            }
        }
        out.into_values().collect()
    }

    /// Every forbidden flow the state allows, and every namespace whose
    /// protected labels are wrong; [`Exhausted`] when deciding it would take
    /// more than the budget.
    pub fn report(&self) -> Result<Report, Exhausted> {
        let mut report = Report::default();
        for ns in self.tier_namespaces() {
            let policies: Vec<&Policy> = self
                .state
                .policies_in(&ns.name)
                .map(|p| p.as_ref())
                .collect();
            for (dir, b) in self.namespace_breaches(ns, &policies)? {
                report.flows.extend(self.breaches(ns, dir, &b, None));
            }
        }
        report.namespaces = namespace_problems(self.iso, self.state.namespaces());
        Ok(report)
    }
}

/// Namespaces whose `name` label lies or whose tier is ambiguous.
pub fn namespace_problems<'n>(
    iso: &IsolationPolicy,
    namespaces: impl Iterator<Item = &'n Namespace>,
) -> Vec<NamespaceProblem> {
    let mut out = Vec::new();
    for ns in namespaces {
        if let Some(v) = ns.labels.get(NAME_LABEL)
            && *v != ns.name
        {
            out.push(NamespaceProblem::NameLabelLies {
                namespace: ns.name.clone(),
                value: v.clone(),
            });
        }
        if let Err(conflict) =
            iso.tier_of(&ns.name, ns.labels.get(&iso.tier_label).map(String::as_str))
        {
            out.push(NamespaceProblem::TierConflict {
                namespace: ns.name.clone(),
                conflict,
            });
        }
    }
    out
}

/// The forbidden flows `change` opens in `state` (nothing already open is
/// reported again), within the default [`Budget`].
pub fn check_change(
    iso: &IsolationPolicy,
    state: &State,
    change: &Change,
) -> Result<Vec<Breach>, Exhausted> {
    check_change_within(iso, state, change, &Budget::default())
}

/// [`check_change`], spending `budget`.
pub fn check_change_within(
    iso: &IsolationPolicy,
    state: &State,
    change: &Change,
    budget: &Budget,
) -> Result<Vec<Breach>, Exhausted> {
    match change {
        Change::ApplyPolicy(p) => policy_change(iso, state, &p.namespace, Some(p), &p.name, budget),
        Change::DeletePolicy { namespace, name } => {
            policy_change(iso, state, namespace, None, name, budget)
        }
        Change::ApplyNamespace(ns) if unseen_by_walls(iso, state, ns) => Ok(Vec::new()),
        Change::ApplyNamespace(ns) => diff_within(iso, state, &with_namespace(state, ns), budget),
        Change::ApplyClusterPolicy(p) => {
            let mut after = state.clone();
            after.apply_cluster_policy(Arc::clone(p));
            diff_within(iso, state, &after, budget)
        }
        Change::DeleteClusterPolicy { api, name } => {
            let mut after = state.clone();
            after.delete_cluster_policy(*api, name);
            diff_within(iso, state, &after, budget)
        }
    }
}

/// A namespace create or relabel that no wall can see (walls mode): the
/// namespace is in no tier before or after it, the isolation policy does not
/// name it, its `name` label is absent or its name before and after, and
/// either it is new (any namespace not created yet is already one of the
/// representatives a selector is matched against: fact 3) or its tier label
/// is as it was (an honest `name` label and none behave alike: selectors see
/// a namespace as possibly carrying either). Every wall's breaches are then
/// what they were, so the change opens nothing, whatever the number of tier
/// namespaces.
fn unseen_by_walls(iso: &IsolationPolicy, state: &State, ns: &Namespace) -> bool {
    let honest = |n: &Namespace| n.labels.get(NAME_LABEL).is_none_or(|v| *v == n.name);
    iso.judge == Judge::Walls
        && iso.tier_of_namespace(&ns.name, &ns.labels).is_none()
        && honest(ns)
        && !iso.named_namespaces().contains(&ns.name)
        && state.namespace(&ns.name).is_none_or(|old| {
            iso.tier_of_namespace(&old.name, &old.labels).is_none()
                && honest(old)
                && old.labels.get(&iso.tier_label) == ns.labels.get(&iso.tier_label)
        })
}

/// The forbidden flows a namespace create or relabel opens, when tierguard
/// guarantees the baseline: a namespace that is (or becomes) a tier
/// namespace is judged with `baseline` (its baseline policies) in place,
/// because the controller injects them and no pod is admitted there before
/// they exist.
pub fn check_namespace_change(
    iso: &IsolationPolicy,
    state: &State,
    ns: &Namespace,
    baseline: &[Arc<Policy>],
) -> Result<Vec<Breach>, Exhausted> {
    check_namespace_change_within(iso, state, ns, baseline, &Budget::default())
}

/// [`check_namespace_change`], spending `budget`.
pub fn check_namespace_change_within(
    iso: &IsolationPolicy,
    state: &State,
    ns: &Namespace,
    baseline: &[Arc<Policy>],
    budget: &Budget,
) -> Result<Vec<Breach>, Exhausted> {
    if unseen_by_walls(iso, state, ns) {
        return Ok(Vec::new());
    }
    let mut after = with_namespace(state, ns);
    if iso.tier_of_namespace(&ns.name, &ns.labels).is_some() {
        for p in baseline {
            if after.policy(&ns.name, &p.name).is_none() {
                after.apply_policy(Arc::clone(p));
            }
        }
    }
    diff_within(iso, state, &after, budget)
}

/// `state` with `ns` created or relabelled (a cheap copy: the maps are shared).
fn with_namespace(state: &State, ns: &Namespace) -> State {
    let mut after = state.clone();
    after.apply_namespace(ns.clone());
    after
}

/// A NetworkPolicy only governs pods of its own namespace, so in walls mode
/// only that namespace's walls are judged.
fn policy_change(
    iso: &IsolationPolicy,
    state: &State,
    namespace: &str,
    new: Option<&Arc<Policy>>,
    name: &str,
    budget: &Budget,
) -> Result<Vec<Breach>, Exhausted> {
    if Cost::of_policy_change(iso) == Cost::Cluster {
        // In effective mode a policy also matters at the other end of a
        // connection: a change outside the tiers can turn a breach its own
        // namespace used to block into a real one. Judge the whole state.
        let mut after = state.clone();
        match new {
            // Replaces the policy of that name, if any.
            Some(p) => after.apply_policy(Arc::clone(p)),
            None => {
                after.delete_policy(namespace, name);
            }
        }
        return diff_within(iso, state, &after, budget);
    }
    let checker = Checker::within(iso, state, budget);
    let Some(ns) = state.namespace(namespace) else {
        // A namespace no one has created yet holds no tier pods.
        return Ok(Vec::new());
    };
    if checker.tier_of(ns).is_none() {
        return Ok(Vec::new());
    }
    let before: Vec<&Policy> = state.policies_in(namespace).map(|p| p.as_ref()).collect();
    let mut after: Vec<&Policy> = before.iter().copied().filter(|p| p.name != name).collect();
    if let Some(p) = new {
        after.push(p.as_ref());
    }
    // Rules are a union and isolation only ever narrows, so all the change
    // can add are the pods the namespace's policies leave unselected after
    // it and the rules of the policy it writes: every other rule was there
    // before. Judging just these keeps the rule work to the changed policy
    // (the usual case in a guarded cluster: they open nothing forbidden, and
    // the judgement ends here). The unselected-pods search still sees every
    // selector of the namespace, but stops at the first `{}` one, which the
    // baseline default-deny provides; without it, it scans them all.
    let changed: Vec<&Policy> = new.map(|p| p.as_ref()).into_iter().collect();
    let added = checker.namespace_breaches_of(ns, &after, &changed)?;
    if added.iter().all(|(_, b)| b.is_empty()) {
        return Ok(Vec::new());
    }
    let b = checker.namespace_breaches(ns, &before)?;
    let mut out = Vec::new();
    for ((dir, added_b), (_, before_b)) in added.iter().zip(b.iter()) {
        out.extend(checker.breaches(ns, *dir, added_b, Some(before_b)));
    }
    Ok(out)
}

/// The forbidden flows `head` allows that `base` does not, within the
/// default [`Budget`].
pub fn diff(iso: &IsolationPolicy, base: &State, head: &State) -> Result<Vec<Breach>, Exhausted> {
    diff_within(iso, base, head, &Budget::default())
}

fn diff_within(
    iso: &IsolationPolicy,
    base: &State,
    head: &State,
    budget: &Budget,
) -> Result<Vec<Breach>, Exhausted> {
    let cb = Checker::within(iso, base, budget);
    let ch = Checker::within(iso, head, budget);
    let mut out = Vec::new();
    for ns in ch.tier_namespaces() {
        let after: Vec<&Policy> = head.policies_in(&ns.name).map(|p| p.as_ref()).collect();
        let a = ch.namespace_breaches(ns, &after)?;
        if a.iter().all(|(_, b)| b.is_empty()) {
            continue;
        }
        let b = match base.namespace(&ns.name) {
            Some(bns) if cb.tier_of(bns) == ch.tier_of(ns) => {
                let before: Vec<&Policy> = base.policies_in(&ns.name).map(|p| p.as_ref()).collect();
                cb.namespace_breaches(bns, &before)?
            }
            // A namespace that joins a tier: everything it lets through is new.
            _ => Vec::new(),
        };
        for (dir, after_b) in &a {
            let before_b = b.iter().find(|(d, _)| d == dir).map(|(_, x)| x);
            out.extend(ch.breaches(ns, *dir, after_b, before_b));
        }
    }
    Ok(out)
}
