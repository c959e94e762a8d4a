//! Calico NetworkPolicy and GlobalNetworkPolicy: which ones tierguard cannot
//! judge. Their rules are not judged yet, so a policy that may apply to pods
//! of a tier namespace (or to host endpoints) and has a rule that can let
//! traffic through (`Allow`, `Pass`) is *unjudged*: the webhook refuses it in
//! enforce mode, `check` reports it. Anything else cannot open a forbidden
//! flow:
//!
//! - a policy that applies to no tier pod changes only the verdicts of the
//!   other end of a flow; the tier side's own policies (the baseline) still
//!   decide, and they are judged;
//! - `Deny` and `Log` rules never let anything through.
//!
//! No shortcut for a selector that seems to match nothing: Calico rewrites
//! `all()` inside a GlobalNetworkPolicy's combined selector (`!all()` then
//! matches host endpoints), so only the rules decide.

use super::isolation::Checker;
use super::selector::Selector;

/// What the engine needs of a Calico policy (`model::calico::policy`
/// reads it and converts it).
#[derive(Clone, Debug, PartialEq)]
pub struct CalicoPolicy {
    /// A GlobalNetworkPolicy (its namespaces come from `namespaces`), not a
    /// namespaced NetworkPolicy.
    pub global: bool,
    /// `spec.tier`.
    pub tier: String,
    /// `spec.order`, when set.
    pub order: Option<f64>,
    /// A GlobalNetworkPolicy's `namespaceSelector` as a union of namespace
    /// selectors: `Ok(None)` every namespace, `Err(why)` not readable exactly
    /// (then it may select any namespace).
    pub namespaces: Result<Option<Vec<Selector>>, String>,
    /// The rules that can let traffic through (`spec.ingress[0] Allow`).
    pub openings: Vec<String>,
    /// Host-endpoint modes it sets (`doNotTrack`, `preDNAT`, `applyOnForward`).
    pub host_modes: Vec<String>,
}

/// A Calico policy tierguard cannot judge, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unjudged {
    /// `Kind namespace/name`, with its tier and order (and, when its
    /// `namespaceSelector` could not be read exactly, that it is read as
    /// any namespace).
    pub object: String,
    /// The tier namespaces whose pods it may apply to (empty: host
    /// endpoints only).
    pub namespaces: Vec<String>,
    /// The rules that can let traffic through (`spec.ingress[0] Allow`).
    pub rules: Vec<String>,
    /// Host-endpoint modes it sets (`doNotTrack`, `preDNAT`,
    /// `applyOnForward`).
    pub host_modes: Vec<String>,
}

impl Unjudged {
    /// What it may apply to, for people: `pods of tier namespaces database`,
    /// `host endpoints (doNotTrack)`, or both.
    pub fn applies_to(&self) -> String {
        match (self.namespaces.is_empty(), self.host_modes.is_empty()) {
            (false, true) => format!("pods of tier namespaces {}", self.namespaces.join(", ")),
            (false, false) => format!(
                "pods of tier namespaces {} and host endpoints ({})",
                self.namespaces.join(", "),
                self.host_modes.join(", ")
            ),
            _ => format!("host endpoints ({})", self.host_modes.join(", ")),
        }
    }
}

/// Judges a Calico policy named `object` (`Kind namespace/name`).
/// `tier_namespace` is a namespaced NetworkPolicy's namespace when that is a
/// tier namespace (ignored for a GlobalNetworkPolicy, whose namespaces come
/// from its `namespaceSelector`). `None`: it cannot open a forbidden flow.
pub fn unjudged(
    checker: &Checker<'_>,
    object: &str,
    policy: &CalicoPolicy,
    tier_namespace: Option<&str>,
) -> Option<Unjudged> {
    if policy.openings.is_empty() {
        return None;
    }
    let mut caveat = String::new();
    let namespaces: Vec<String> = if !policy.global {
        tier_namespace.map(str::to_string).into_iter().collect()
    } else {
        let union = match &policy.namespaces {
            Ok(Some(union)) => union.clone(),
            Ok(None) => vec![Selector::everything()],
            Err(why) => {
                // A namespaceSelector tierguard cannot read exactly may
                // select any namespace.
                caveat = format!("; its spec.namespaceSelector is read as any namespace: {why}");
                vec![Selector::everything()]
            }
        };
        checker
            .tier_namespaces_matched(&union)
            .into_iter()
            .collect()
    };
    if namespaces.is_empty() && policy.host_modes.is_empty() {
        return None;
    }
    let place = match policy.order {
        Some(o) => format!("tier {}, order {o}", policy.tier),
        None => format!("tier {}", policy.tier),
    };
    Some(Unjudged {
        object: format!("{object} ({place}{caveat})"),
        namespaces,
        rules: policy.openings.clone(),
        host_modes: policy.host_modes.clone(),
    })
}
