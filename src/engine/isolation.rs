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
//! A change is judged by comparing the breaches before and after it: only
//! what the change adds is reported, with the rules that add it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::OnceLock;

use serde::Serialize;

use super::ipblock::IpSet;
use super::policy::{Direction, Peer, Policy};
use super::ports::{PortSet, possible_ports};
use super::selector::{FreeLabels, LabelSpace, LabelVal, Selector, describe_witness, solve};
use super::state::{METADATA_NAME_LABEL, Namespace, State};
use crate::guardpolicy::{IsolationPolicy, Judge, Party};

/// The `name` label tierguard keeps equal to the namespace's name.
pub const NAME_LABEL: &str = "name";

/// A proposed change to the state.
#[derive(Clone, Debug)]
pub enum Change {
    /// Create or update a NetworkPolicy.
    ApplyPolicy(std::sync::Arc<Policy>),
    /// Delete a NetworkPolicy.
    DeletePolicy {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// Create or relabel a namespace.
    ApplyNamespace(Namespace),
}

/// Why a wall lets a forbidden connection through.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Cause {
    /// A rule matches it.
    Rule {
        /// The rule.
        rule: String,
        /// The peer of the rule that matches (absent: the rule has none).
        peer: Option<String>,
    },
    /// Some pods are selected by no policy of this direction.
    Unisolated {
        /// Labels such pods can have.
        pods: String,
    },
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Rule {
                rule,
                peer: Some(p),
            } => write!(f, "{rule} ({p})"),
            Cause::Rule { rule, peer: None } => write!(f, "{rule} (no from/to: every peer)"),
            Cause::Unisolated { pods } => write!(
                f,
                "no policy isolates pods with {pods} (is the baseline default-deny missing?)"
            ),
        }
    }
}

/// The longest one-line summary: kubectl prints warnings up to this length
/// in full.
pub const SUMMARY_MAX: usize = 256;

/// Cuts `s` to at most `max` bytes on a character boundary, marking the cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A forbidden flow that a wall lets through.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// The tier namespace whose wall is breached.
    pub namespace: String,
    /// Its tier.
    pub tier: String,
    /// Which wall.
    pub direction: String,
    /// The source, for people (`tier frontend`, `outside the cluster`).
    pub from: String,
    /// The destination, for people.
    pub to: String,
    /// The forbidden ports it lets through.
    pub ports: String,
    /// What lets them through, each with the ports it contributes.
    pub causes: Vec<(Cause, String)>,
    /// A note for people (namespace labels that anyone can set, and so on).
    pub notes: Vec<String>,
    #[serde(skip)]
    port_set: PortSet,
    #[serde(skip)]
    other: Party,
    #[serde(skip)]
    classes: (String, String),
}

impl Finding {
    /// The forbidden ports as a set.
    pub fn port_set(&self) -> &PortSet {
        &self.port_set
    }

    /// The party at the other end of the wall.
    pub fn other(&self) -> &Party {
        &self.other
    }

    /// Bounded class names of the two ends, for metrics: `tier:frontend`,
    /// `namespace:kube-system`, `other`, `external`.
    pub fn classes(&self) -> (&str, &str) {
        (&self.classes.0, &self.classes.1)
    }

    /// The wall's direction.
    pub fn wall(&self) -> Direction {
        if self.direction == Direction::Ingress.field() {
            Direction::Ingress
        } else {
            Direction::Egress
        }
    }

    /// One line for kubectl: the flow, the ports and the first cause.
    pub fn summary(&self) -> String {
        let cause = self
            .causes
            .first()
            .map(|(c, _)| c.to_string())
            .unwrap_or_default();
        let more = if self.causes.len() > 1 {
            format!(" and {} more", self.causes.len() - 1)
        } else {
            String::new()
        };
        clip(
            &format!(
                "{} -> {} on {} is forbidden, but {}'s {} allows it via {cause}{more}",
                self.from, self.to, self.ports, self.namespace, self.direction
            ),
            SUMMARY_MAX,
        )
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} -> {} on {}", self.from, self.to, self.ports)?;
        writeln!(
            f,
            "  breaks: {} {} (tier {})",
            self.namespace, self.direction, self.tier
        )?;
        for (c, p) in &self.causes {
            writeln!(f, "  opened by: {c} on {p}")?;
        }
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        Ok(())
    }
}

/// A namespace whose protected labels are wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NamespaceFinding {
    /// The namespace.
    pub namespace: String,
    /// What is wrong.
    pub message: String,
}

/// Everything wrong with a state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Forbidden flows allowed.
    pub flows: Vec<Finding>,
    /// Namespaces with lying or conflicting protected labels.
    pub namespaces: Vec<NamespaceFinding>,
}

impl Report {
    /// True when nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.flows.is_empty() && self.namespaces.is_empty()
    }
}

// === the namespaces a selector can match ===

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum RepName {
    /// An existing namespace, or one that may be created with this name.
    Known(String),
    /// A namespace with a name nobody mentions, not created yet.
    Fresh,
}

/// A namespace, existing or possible, as far as selectors can tell.
#[derive(Clone, Debug)]
struct Rep {
    name: RepName,
    existing: bool,
    name_label: Vec<LabelVal>,
    tier_label: LabelVal,
    party: Party,
}

struct RepSpace<'a> {
    rep: &'a Rep,
    tier_label: &'a str,
}

impl LabelSpace for RepSpace<'_> {
    fn domain(&self, key: &str) -> Option<Vec<LabelVal>> {
        if key == METADATA_NAME_LABEL {
            return Some(vec![match &self.rep.name {
                RepName::Known(n) => LabelVal::Value(n.clone()),
                RepName::Fresh => LabelVal::Other,
            }]);
        }
        if key == NAME_LABEL {
            return Some(self.rep.name_label.clone());
        }
        if key == self.tier_label {
            return Some(vec![self.rep.tier_label.clone()]);
        }
        None
    }
}

/// Parties a peer matches, each with the namespace standing for it.
type Hits = Vec<(Party, Option<Rep>)>;

/// Breaches of one wall, keyed by the party at the other end.
type Breaches = BTreeMap<Party, Entry>;

#[derive(Clone, Debug, Default)]
struct Entry {
    ports: PortSet,
    causes: BTreeMap<Cause, CauseInfo>,
    examples: BTreeSet<String>,
}

#[derive(Clone, Debug, Default)]
struct CauseInfo {
    ports: PortSet,
    /// Existing namespaces at the other end through which the cause applies;
    /// `open` when a namespace without policies (not created yet) can be it.
    others: BTreeSet<String>,
    open: bool,
    notes: BTreeSet<String>,
}

/// Evaluates walls against an isolation policy.
pub struct Checker<'a> {
    iso: &'a IsolationPolicy,
    state: &'a State,
    cluster: Option<IpSet>,
    everything: OnceLock<Vec<Rep>>,
}

// === impl Checker ===

impl<'a> Checker<'a> {
    /// A checker over one state.
    pub fn new(iso: &'a IsolationPolicy, state: &'a State) -> Self {
        Self {
            iso,
            state,
            cluster: iso.cluster_addresses(),
            everything: OnceLock::new(),
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

    fn existing_rep(&self, ns: &Namespace) -> Rep {
        let mut name_label = vec![LabelVal::Absent, LabelVal::Value(ns.name.clone())];
        if let Some(v) = ns.labels.get(NAME_LABEL)
            && *v != ns.name
        {
            name_label.push(LabelVal::Value(v.clone()));
        }
        let tier_label = match ns.labels.get(&self.iso.tier_label) {
            Some(v) => LabelVal::Value(v.clone()),
            None => LabelVal::Absent,
        };
        Rep {
            name: RepName::Known(ns.name.clone()),
            existing: true,
            name_label,
            tier_label,
            party: self.iso.party(Some(&ns.name), self.tier_of(ns)),
        }
    }

    /// Tier-label values a namespace created later may carry without joining
    /// a tier: absent, any value the selector names that is not a tier, or
    /// any other value.
    fn future_tier_labels(&self, sel: &Selector) -> Vec<LabelVal> {
        let mut out = vec![LabelVal::Absent, LabelVal::Other];
        for r in sel
            .requirements()
            .iter()
            .filter(|r| r.key == self.iso.tier_label)
        {
            for v in &r.values {
                if self.iso.tier_index(v).is_none() {
                    out.push(LabelVal::Value(v.clone()));
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// The namespace called `name`: the existing one, or the ones that may be
    /// created with that name.
    fn named_reps(&self, name: &str, sel: &Selector, out: &mut Vec<Rep>) {
        if let Some(ns) = self.state.namespace(name) {
            out.push(self.existing_rep(ns));
            return;
        }
        let tier = self.iso.tier_by_name(name);
        for tl in self.future_tier_labels(sel) {
            out.push(Rep {
                name: RepName::Known(name.to_string()),
                existing: false,
                name_label: vec![LabelVal::Absent, LabelVal::Value(name.to_string())],
                tier_label: tl,
                party: self.iso.party(Some(name), tier),
            });
        }
    }

    /// Representatives of every namespace `sel` could match (not yet
    /// filtered by `sel`).
    fn candidate_reps(&self, sel: &Selector) -> Vec<Rep> {
        let mut out = Vec::new();
        let by_meta = sel.pinned_values(METADATA_NAME_LABEL);
        let by_name = sel.pinned_values(NAME_LABEL);
        if by_meta.is_some() || by_name.is_some() {
            let names: BTreeSet<String> = by_meta
                .into_iter()
                .chain(by_name.clone())
                .flatten()
                .collect();
            for n in &names {
                self.named_reps(n, sel, &mut out);
            }
            for v in by_name.into_iter().flatten() {
                for ns in self.state.namespaces_labelled(NAME_LABEL, &v) {
                    if !names.contains(&ns.name) {
                        out.push(self.existing_rep(ns));
                    }
                }
            }
            return out;
        }
        for tl in self.future_tier_labels(sel) {
            out.push(Rep {
                name: RepName::Fresh,
                existing: false,
                name_label: vec![LabelVal::Absent, LabelVal::Other],
                tier_label: tl,
                party: Party::Namespace {
                    tier: None,
                    named: None,
                },
            });
        }
        let special = self.iso.named_namespaces();
        for n in &special {
            self.named_reps(n, sel, &mut out);
        }
        // Names the selector mentions (NotIn can exclude them): members by
        // label with such a name are judged one by one.
        let mentioned: BTreeSet<&str> = sel
            .requirements()
            .iter()
            .filter(|r| r.key == METADATA_NAME_LABEL || r.key == NAME_LABEL)
            .flat_map(|r| r.values.iter().map(String::as_str))
            .collect();
        for t in &self.iso.tiers {
            // Other members by label that the isolation policy does not name
            // behave alike under a selector that pins no name, except for a
            // `name` label that lies: keep one plain member and every liar.
            let mut plain_seen = false;
            for ns in self
                .state
                .namespaces_labelled(&self.iso.tier_label, &t.name)
            {
                if special.contains(&ns.name) {
                    continue;
                }
                let lies = ns.labels.get(NAME_LABEL).is_some_and(|v| *v != ns.name);
                let named = mentioned.contains(ns.name.as_str());
                // In effective mode each member's own policies matter: keep all.
                if lies || named || !plain_seen || self.iso.judge == Judge::Effective {
                    out.push(self.existing_rep(ns));
                    plain_seen |= !lies && !named;
                }
            }
        }
        out
    }

    /// The namespaces `sel` matches, as representatives.
    fn matching_reps(&self, sel: &Selector) -> Vec<Rep> {
        self.candidate_reps(sel)
            .into_iter()
            .filter(|rep| {
                let space = RepSpace {
                    rep,
                    tier_label: &self.iso.tier_label,
                };
                solve(&[sel], &[], &space).is_some()
            })
            .collect()
    }

    fn every_namespace(&self) -> &[Rep] {
        self.everything
            .get_or_init(|| self.candidate_reps(&Selector::everything()))
    }

    /// Whether an ipBlock may match pods, and hosts outside the cluster.
    fn block_reach(&self, block: &super::ipblock::IpBlock) -> (bool, bool) {
        let set = block.to_set();
        match &self.cluster {
            None => (!set.is_empty(), !set.is_empty()),
            Some(c) => (set.overlaps(c), !set.difference(c).is_empty()),
        }
    }

    /// The parties (with the representative namespaces behind them) one
    /// peer of a rule in namespace `policy_ns` can match, and notes.
    fn peer_parties(
        &self,
        policy_ns: &str,
        peer: &Peer,
    ) -> (Vec<(Party, Option<Rep>)>, Vec<String>) {
        let mut notes = Vec::new();
        let mut out = Vec::new();
        match peer {
            Peer::Pods { namespaces, pods } => {
                if let Some(ps) = pods
                    && solve(&[ps], &[], &FreeLabels).is_none()
                {
                    return (out, notes);
                }
                match namespaces {
                    None => {
                        if let Some(ns) = self.state.namespace(policy_ns) {
                            let rep = self.existing_rep(ns);
                            out.push((rep.party.clone(), Some(rep)));
                        }
                    }
                    Some(sel) => {
                        let unprotected: Vec<&str> = sel
                            .requirements()
                            .iter()
                            .map(|r| r.key.as_str())
                            .filter(|k| {
                                *k != METADATA_NAME_LABEL
                                    && *k != NAME_LABEL
                                    && *k != self.iso.tier_label
                            })
                            .collect();
                        if !unprotected.is_empty() {
                            notes.push(format!(
                                "namespaceSelector {sel} uses label(s) {} that anyone who can edit a namespace can set, \
                                 so it may match any namespace; select by {METADATA_NAME_LABEL} or {}",
                                unprotected.join(", "),
                                self.iso.tier_label
                            ));
                        }
                        for rep in self.matching_reps(sel) {
                            out.push((rep.party.clone(), Some(rep)));
                        }
                    }
                }
            }
            Peer::IpBlock(b) => {
                let (pods, ext) = self.block_reach(b);
                if pods {
                    if self.cluster.is_some() {
                        notes.push(format!(
                            "{b} overlaps the cluster's pod or service CIDRs, so it matches any pod"
                        ));
                    } else {
                        notes.push(format!(
                            "{b} may match any pod: the isolation policy declares no cluster CIDRs (spec.cluster.podCIDRs)"
                        ));
                    }
                    for rep in self.every_namespace() {
                        out.push((rep.party.clone(), Some(rep.clone())));
                    }
                }
                if ext {
                    out.push((Party::External, None));
                }
            }
        }
        (out, notes)
    }

    fn everyone(&self) -> Hits {
        let mut out: Hits = self
            .every_namespace()
            .iter()
            .map(|r| (r.party.clone(), Some(r.clone())))
            .collect();
        out.push((Party::External, None));
        out
    }

    /// The breaches of one wall of tier namespace `ns`, given its policies.
    fn wall(&self, ns: &Namespace, policies: &[&Policy], dir: Direction) -> Breaches {
        let mut breaches = Breaches::new();
        let wall_rep = self.existing_rep(ns);
        let me = wall_rep.party.clone();
        let allowed = |other: &Party| match dir {
            Direction::Ingress => self.iso.allowed(other, &me),
            Direction::Egress => self.iso.allowed(&me, other),
        };
        let mut record =
            |other: Party, rep: Option<&Rep>, ports: &PortSet, cause: Cause, notes: &[String]| {
                let forbidden = ports.difference(&allowed(&other));
                if forbidden.is_empty() {
                    return;
                }
                let e = breaches.entry(other).or_default();
                e.ports = e.ports.union(&forbidden);
                let info = e.causes.entry(cause).or_default();
                info.ports = info.ports.union(&forbidden);
                info.notes.extend(notes.iter().cloned());
                match rep {
                    Some(r) if r.existing => {
                        if let RepName::Known(n) = &r.name {
                            info.others.insert(n.clone());
                            e.examples.insert(n.clone());
                        }
                    }
                    Some(r) => {
                        info.open = true;
                        if let RepName::Known(n) = &r.name {
                            e.examples.insert(n.clone());
                        }
                    }
                    None => info.open = true,
                }
            };

        let isolating: Vec<&Policy> = policies
            .iter()
            .copied()
            .filter(|p| p.rules(dir).is_some())
            .collect();
        let selectors: Vec<&Selector> = isolating.iter().map(|p| &p.pod_selector).collect();
        if let Some(w) = solve(&[], &selectors, &FreeLabels) {
            let cause = Cause::Unisolated {
                pods: describe_witness(&w),
            };
            for (party, rep) in self.everyone() {
                record(party, rep.as_ref(), &PortSet::all(), cause.clone(), &[]);
            }
        }
        for pol in isolating {
            if solve(&[&pol.pod_selector], &[], &FreeLabels).is_none() {
                continue;
            }
            for rule in pol.rules(dir).unwrap_or_default() {
                let rule_ref = pol.rule_ref(dir, rule.index).to_string();
                let pod_ports = possible_ports(rule.ports.as_deref(), true);
                // Egress to a host outside the cluster: named ports match nothing.
                let ext_ports = match dir {
                    Direction::Ingress => pod_ports.clone(),
                    Direction::Egress => possible_ports(rule.ports.as_deref(), false),
                };
                let hits: Vec<(Option<String>, Hits, Vec<String>)> = match &rule.peers {
                    None => vec![(None, self.everyone(), Vec::new())],
                    Some(peers) => peers
                        .iter()
                        .map(|p| {
                            let (parties, notes) = self.peer_parties(&pol.namespace, p);
                            (Some(p.to_string()), parties, notes)
                        })
                        .collect(),
                };
                for (peer_desc, parties, notes) in hits {
                    let cause = Cause::Rule {
                        rule: rule_ref.clone(),
                        peer: peer_desc,
                    };
                    for (party, rep) in parties {
                        let ports = if party == Party::External {
                            &ext_ports
                        } else {
                            &pod_ports
                        };
                        record(party, rep.as_ref(), ports, cause.clone(), &notes);
                    }
                }
            }
        }
        breaches
    }

    /// In effective mode: can the other end (`other`, an existing namespace)
    /// let through, towards tier namespace `ns`, any of `ports`? Over-approximates:
    /// `false` only when no rule and no unselected pod of `other` can.
    fn other_end_may_allow(
        &self,
        other: &str,
        ns: &Namespace,
        dir: Direction,
        ports: &PortSet,
    ) -> bool {
        let Some(other_ns) = self.state.namespace(other) else {
            return true;
        };
        let policies: Vec<&Policy> = self.state.policies_in(other).map(|p| p.as_ref()).collect();
        let opposite = match dir {
            Direction::Ingress => Direction::Egress,
            Direction::Egress => Direction::Ingress,
        };
        let isolating: Vec<&Policy> = policies
            .into_iter()
            .filter(|p| p.rules(opposite).is_some())
            .collect();
        let selectors: Vec<&Selector> = isolating.iter().map(|p| &p.pod_selector).collect();
        if solve(&[], &selectors, &FreeLabels).is_some() {
            return true;
        }
        let wall_rep = self.existing_rep(ns);
        let mut may = PortSet::none();
        for pol in isolating {
            if solve(&[&pol.pod_selector], &[], &FreeLabels).is_none() {
                continue;
            }
            for rule in pol.rules(opposite).unwrap_or_default() {
                let reaches = match &rule.peers {
                    None => true,
                    Some(peers) => peers.iter().any(|p| match p {
                        Peer::Pods { namespaces, pods } => {
                            let pods_ok = pods
                                .as_ref()
                                .is_none_or(|s| solve(&[s], &[], &FreeLabels).is_some());
                            let ns_ok = match namespaces {
                                None => other_ns.name == ns.name,
                                Some(sel) => {
                                    let space = RepSpace {
                                        rep: &wall_rep,
                                        tier_label: &self.iso.tier_label,
                                    };
                                    solve(&[sel], &[], &space).is_some()
                                }
                            };
                            pods_ok && ns_ok
                        }
                        Peer::IpBlock(b) => self.block_reach(b).0,
                    }),
                };
                if reaches {
                    may = may.union(&possible_ports(rule.ports.as_deref(), true));
                }
            }
        }
        !may.intersect(ports).is_empty()
    }

    /// Every breach of every wall of one tier namespace, with `policies`
    /// standing for its policies.
    fn namespace_breaches(
        &self,
        ns: &Namespace,
        policies: &[&Policy],
    ) -> Vec<(Direction, Breaches)> {
        [Direction::Ingress, Direction::Egress]
            .into_iter()
            .map(|dir| {
                let mut b = self.wall(ns, policies, dir);
                if self.iso.judge == Judge::Effective {
                    self.keep_effective(ns, dir, &mut b);
                }
                (dir, b)
            })
            .collect()
    }

    fn keep_effective(&self, ns: &Namespace, dir: Direction, breaches: &mut Breaches) {
        for entry in breaches.values_mut() {
            entry.causes.retain(|_, info| {
                if info.open {
                    return true;
                }
                info.others
                    .iter()
                    .any(|o| self.other_end_may_allow(o, ns, dir, &info.ports))
            });
            entry.ports = entry
                .causes
                .values()
                .fold(PortSet::none(), |acc, i| acc.union(&i.ports));
        }
        breaches.retain(|_, e| !e.ports.is_empty());
    }

    fn findings(
        &self,
        ns: &Namespace,
        dir: Direction,
        breaches: &Breaches,
        only: Option<&Breaches>,
    ) -> Vec<Finding> {
        let mut out = Vec::new();
        let tier_idx = self.tier_of(ns);
        let tier = tier_idx
            .map(|t| self.iso.tiers[t].name.clone())
            .unwrap_or_default();
        let here = if tier == ns.name {
            format!("tier {tier}")
        } else {
            format!("tier {tier} (namespace {})", ns.name)
        };
        for (party, e) in breaches {
            let ports = match only.and_then(|b| b.get(party)) {
                Some(before) => e.ports.difference(&before.ports),
                None => e.ports.clone(),
            };
            if ports.is_empty() {
                continue;
            }
            let example = match party {
                Party::Namespace { tier: Some(t), .. } => e
                    .examples
                    .iter()
                    .find(|n| **n == self.iso.tiers[*t].name)
                    .or_else(|| e.examples.iter().next())
                    .cloned(),
                // Outside the tiers: name the namespaces only when no namespace
                // yet to be created is among them.
                Party::Namespace {
                    tier: None,
                    named: None,
                } if e.causes.values().all(|i| !i.open) => (!e.examples.is_empty())
                    .then(|| e.examples.iter().cloned().collect::<Vec<_>>().join(", ")),
                Party::Namespace {
                    tier: None,
                    named: None,
                } => None,
                _ => e.examples.iter().next().cloned(),
            };
            let there = self.iso.describe(party, example.as_deref());
            let (from, to) = match dir {
                Direction::Ingress => (there, here.clone()),
                Direction::Egress => (here.clone(), there),
            };
            let mut notes = BTreeSet::new();
            let causes: Vec<(Cause, String)> = e
                .causes
                .iter()
                .filter_map(|(c, info)| {
                    let p = info.ports.intersect(&ports);
                    if p.is_empty() {
                        return None;
                    }
                    notes.extend(info.notes.iter().cloned());
                    Some((c.clone(), p.to_string()))
                })
                .collect();
            out.push(Finding {
                namespace: ns.name.clone(),
                tier: tier.clone(),
                direction: dir.field().to_string(),
                from,
                to,
                ports: ports.to_string(),
                causes,
                notes: notes.into_iter().collect(),
                port_set: ports,
                other: party.clone(),
                classes: match dir {
                    Direction::Ingress => (self.class_of(party), format!("tier:{tier}")),
                    Direction::Egress => (format!("tier:{tier}"), self.class_of(party)),
                },
            });
        }
        out
    }

    fn class_of(&self, p: &Party) -> String {
        match p {
            Party::External => "external".into(),
            Party::Namespace { tier: Some(t), .. } => format!("tier:{}", self.iso.tiers[*t].name),
            Party::Namespace { named: Some(n), .. } => format!("namespace:{n}"),
            Party::Namespace { .. } => "other".into(),
        }
    }

    /// Every forbidden flow the state allows, and every namespace whose
    /// protected labels are wrong.
    pub fn report(&self) -> Report {
        let mut report = Report::default();
        for ns in self.tier_namespaces() {
            let policies: Vec<&Policy> = self
                .state
                .policies_in(&ns.name)
                .map(|p| p.as_ref())
                .collect();
            for (dir, b) in self.namespace_breaches(ns, &policies) {
                report.flows.extend(self.findings(ns, dir, &b, None));
            }
        }
        report.namespaces = namespace_findings(self.iso, self.state.namespaces());
        report
    }
}

/// Namespaces whose `name` label lies or whose tier is ambiguous.
pub fn namespace_findings<'n>(
    iso: &IsolationPolicy,
    namespaces: impl Iterator<Item = &'n Namespace>,
) -> Vec<NamespaceFinding> {
    let mut out = Vec::new();
    for ns in namespaces {
        if let Some(v) = ns.labels.get(NAME_LABEL)
            && *v != ns.name
        {
            out.push(NamespaceFinding {
                namespace: ns.name.clone(),
                message: format!(
                    "namespace {} is labelled {NAME_LABEL}={v}: selectors for {v} match it; \
                     the {NAME_LABEL} label must equal the namespace's name",
                    ns.name
                ),
            });
        }
        if let Err(c) = iso.tier_of(&ns.name, ns.labels.get(&iso.tier_label).map(String::as_str)) {
            out.push(NamespaceFinding {
                namespace: ns.name.clone(),
                message: format!("namespace {}: {c}", ns.name),
            });
        }
    }
    out
}

/// The forbidden flows `change` opens in `state` (nothing already open is
/// reported again).
pub fn check_change(iso: &IsolationPolicy, state: &State, change: &Change) -> Vec<Finding> {
    match change {
        Change::ApplyPolicy(p) => policy_change(iso, state, &p.namespace, Some(p), &p.name),
        Change::DeletePolicy { namespace, name } => {
            policy_change(iso, state, namespace, None, name)
        }
        Change::ApplyNamespace(ns) => diff(iso, state, &with_namespace(state, ns)),
    }
}

/// The forbidden flows a namespace create or relabel opens, when tierguard
/// guarantees the baseline: a namespace that is (or becomes) a tier
/// namespace is judged with its baseline policies in place, because the
/// controller injects them and no pod is admitted there before they exist.
pub fn check_namespace_change(
    iso: &IsolationPolicy,
    state: &State,
    ns: &Namespace,
) -> Vec<Finding> {
    let mut after = with_namespace(state, ns);
    if iso.tier_of_namespace(&ns.name, &ns.labels).is_some() {
        for np in crate::guardpolicy::baseline_policies(iso, &ns.name) {
            if let Ok(p) = Policy::from_k8s(&np, &ns.name)
                && after.policy(&ns.name, &p.name).is_none()
            {
                after.apply_policy(std::sync::Arc::new(p));
            }
        }
    }
    diff(iso, state, &after)
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
    new: Option<&std::sync::Arc<Policy>>,
    name: &str,
) -> Vec<Finding> {
    if iso.judge == Judge::Effective {
        // In effective mode a policy also matters at the other end of a
        // connection: a change outside the tiers can turn a breach its own
        // namespace used to block into a real one. Judge the whole state.
        let mut after = state.clone();
        match new {
            // Replaces the policy of that name, if any.
            Some(p) => after.apply_policy(std::sync::Arc::clone(p)),
            None => {
                after.delete_policy(namespace, name);
            }
        }
        return diff(iso, state, &after);
    }
    let checker = Checker::new(iso, state);
    let Some(ns) = state.namespace(namespace) else {
        // A namespace no one has created yet holds no tier pods.
        return Vec::new();
    };
    if checker.tier_of(ns).is_none() {
        return Vec::new();
    }
    let before: Vec<&Policy> = state.policies_in(namespace).map(|p| p.as_ref()).collect();
    let mut after: Vec<&Policy> = before.iter().copied().filter(|p| p.name != name).collect();
    if let Some(p) = new {
        after.push(p.as_ref());
    }
    let a = checker.namespace_breaches(ns, &after);
    if a.iter().all(|(_, b)| b.is_empty()) {
        // Nothing is breached after the change, so nothing is opened by it
        // (the usual case in a guarded cluster: half the work).
        return Vec::new();
    }
    let b = checker.namespace_breaches(ns, &before);
    let mut out = Vec::new();
    for ((dir, after_b), (_, before_b)) in a.iter().zip(b.iter()) {
        out.extend(checker.findings(ns, *dir, after_b, Some(before_b)));
    }
    out
}

/// The forbidden flows `head` allows that `base` does not.
pub fn diff(iso: &IsolationPolicy, base: &State, head: &State) -> Vec<Finding> {
    let cb = Checker::new(iso, base);
    let ch = Checker::new(iso, head);
    let mut out = Vec::new();
    for ns in ch.tier_namespaces() {
        let after: Vec<&Policy> = head.policies_in(&ns.name).map(|p| p.as_ref()).collect();
        let a = ch.namespace_breaches(ns, &after);
        if a.iter().all(|(_, b)| b.is_empty()) {
            continue;
        }
        let b = match base.namespace(&ns.name) {
            Some(bns) if cb.tier_of(bns) == ch.tier_of(ns) => {
                let before: Vec<&Policy> = base.policies_in(&ns.name).map(|p| p.as_ref()).collect();
                cb.namespace_breaches(bns, &before)
            }
            // A namespace that joins a tier: everything it lets through is new.
            _ => Vec::new(),
        };
        for (dir, after_b) in &a {
            let before_b = b.iter().find(|(d, _)| d == dir).map(|(_, x)| x);
            out.extend(ch.findings(ns, *dir, after_b, before_b));
        }
    }
    out
}
