//! The namespaces a selector can match, existing or yet to be created, as
//! finitely many representatives (fact 3 of the module docs): a namespace is
//! known to selectors only by its protected labels, so every other namespace
//! behaves like one of these.

use std::collections::BTreeSet;

use super::Checker;
use crate::engine::cluster::ClusterPeer;
use crate::engine::selector::{LabelSpace, LabelVal, Selector, satisfiable};
use crate::engine::state::{METADATA_NAME_LABEL, NAME_LABEL, Namespace};
use crate::engine::tiers::{Judge, Party};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum RepName {
    /// An existing namespace, or one that may be created with this name.
    Known(String),
    /// A namespace with a name nobody mentions, not created yet.
    Fresh,
}

/// A namespace, existing or possible, as far as selectors can tell.
#[derive(Clone, Debug)]
pub(super) struct Rep {
    pub(super) name: RepName,
    pub(super) existing: bool,
    pub(super) name_label: Vec<LabelVal>,
    pub(super) tier_label: LabelVal,
    pub(super) party: Party,
}

pub(super) struct RepSpace<'a> {
    pub(super) rep: &'a Rep,
    pub(super) tier_label: &'a str,
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

// === impl Checker: representatives ===

impl Checker<'_> {
    pub(super) fn existing_rep(&self, ns: &Namespace) -> Rep {
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
            // Under cluster tiers keep two: a cluster policy's subject may
            // select the wall itself by its free labels, so when the wall is
            // the plain member kept, it must not stand for the rest of its
            // tier (the other end would carry the wall's labels).
            let plain_wanted = if self.state.has_cluster_policies() {
                2
            } else {
                1
            };
            let mut plain = 0usize;
            for ns in self
                .state
                .namespaces_labelled(&self.iso.tier_label, &t.name)
            {
                if special.contains(&ns.name) {
                    continue;
                }
                let lies = ns.labels.get(NAME_LABEL).is_some_and(|v| *v != ns.name);
                // Under cluster tiers a rule of another policy (not `sel`)
                // may name a member, a Deny `name: ns-b` say: the one kept
                // for the rest must not stand for it.
                let named = mentioned.contains(ns.name.as_str())
                    || self.cluster_names().contains(ns.name.as_str());
                // In effective mode each member's own policies matter: keep all.
                if lies || named || plain < plain_wanted || self.iso.judge == Judge::Effective {
                    out.push(self.existing_rep(ns));
                    plain += usize::from(!lies && !named);
                }
            }
        }
        out
    }

    /// The namespace names any cluster policy's namespace selectors mention
    /// (by `kubernetes.io/metadata.name` or `name`, in any requirement,
    /// subjects and peers): the only namespaces the ordered tiers can tell
    /// apart from others with the same protected labels.
    pub(super) fn cluster_names(&self) -> &BTreeSet<String> {
        self.cluster_names.get_or_init(|| {
            let mut names = BTreeSet::new();
            for p in self.state.cluster_policies() {
                let peers = p.ingress.iter().chain(&p.egress).flat_map(|r| &r.peers);
                let selectors =
                    std::iter::once(p.subject_selectors().0).chain(peers.filter_map(|peer| {
                        match peer {
                            ClusterPeer::Namespaces(s)
                            | ClusterPeer::Pods { namespaces: s, .. } => Some(s),
                            _ => None,
                        }
                    }));
                for s in selectors {
                    for r in s.requirements() {
                        if r.key == METADATA_NAME_LABEL || r.key == NAME_LABEL {
                            names.extend(r.values.iter().cloned());
                        }
                    }
                }
            }
            names
        })
    }

    /// The namespaces a selector names (by `kubernetes.io/metadata.name` or
    /// `name`, in any requirement, `NotIn` too), and the existing ones whose
    /// `name` label claims a name it mentions: the namespaces a selector may
    /// fail to match while one like them matches (what a `Deny` that must
    /// not apply needs, [`super::ordered`]).
    pub(super) fn mentioned_reps(&self, sel: &Selector) -> Vec<Rep> {
        let mut out = Vec::new();
        let mut names = BTreeSet::new();
        for r in sel.requirements() {
            if r.key == METADATA_NAME_LABEL || r.key == NAME_LABEL {
                names.extend(r.values.iter().cloned());
            }
        }
        for n in &names {
            self.named_reps(n, sel, &mut out);
            for ns in self.state.namespaces_labelled(NAME_LABEL, n) {
                if ns.name != *n {
                    out.push(self.existing_rep(ns));
                }
            }
        }
        out
    }

    /// The namespaces `sel` matches, as representatives.
    pub(super) fn matching_reps(&self, sel: &Selector) -> Vec<Rep> {
        self.candidate_reps(sel)
            .into_iter()
            .filter(|rep| {
                let space = RepSpace {
                    rep,
                    tier_label: &self.iso.tier_label,
                };
                satisfiable(&[sel], &space)
            })
            .collect()
    }

    pub(super) fn every_namespace(&self) -> &[Rep] {
        self.everything
            .get_or_init(|| self.candidate_reps(&Selector::everything()))
    }
}

// === impl Checker: questions from outside the walls check ===

impl Checker<'_> {
    /// The tier namespaces the union of `sels` may match: every existing
    /// one it matches, each not yet created under a name the isolation
    /// policy lists, and `future members of tier T` when a namespace created
    /// later with the tier label `T` would match. (An existing namespace
    /// outside the tiers that joins one later is judged when it joins.)
    pub fn tier_namespaces_matched(&self, sels: &[Selector]) -> BTreeSet<String> {
        let matches = |rep: &Rep| {
            let space = RepSpace {
                rep,
                tier_label: &self.iso.tier_label,
            };
            sels.iter().any(|s| satisfiable(&[s], &space))
        };
        let mut out = BTreeSet::new();
        for ns in self.tier_namespaces() {
            if matches(&self.existing_rep(ns)) {
                out.insert(ns.name.clone());
            }
        }
        for (i, t) in self.iso.tiers.iter().enumerate() {
            for n in &t.namespaces {
                if self.state.namespace(n).is_some() {
                    continue;
                }
                let mut reps = Vec::new();
                for s in sels {
                    self.named_reps(n, s, &mut reps);
                }
                if reps.iter().any(matches) {
                    out.insert(n.clone());
                }
            }
            let member = Rep {
                name: RepName::Fresh,
                existing: false,
                name_label: vec![LabelVal::Absent, LabelVal::Other],
                tier_label: LabelVal::Value(t.name.clone()),
                party: self.iso.party(None, Some(i)),
            };
            if matches(&member) {
                out.insert(format!("future members of tier {}", t.name));
            }
        }
        out
    }
}
