//! Calico NetworkPolicy and GlobalNetworkPolicy (`projectcalico.org/v3`,
//! stored as `crd.projectcalico.org/v1` with the same spec), read only as
//! far as the admission guard needs: which endpoints the policy applies to
//! and whether any rule can let traffic through.
//!
//! A rule lets traffic through when its action is `Allow`, or `Pass`:
//! `Pass` skips the rest of the tier, and from the `default` tier (where
//! Calico puts Kubernetes NetworkPolicies) it skips those too, down to the
//! namespace's profile, which allows everything. `Deny` and `Log` never
//! open a flow. The host-endpoint modes (`doNotTrack`, `preDNAT`,
//! `applyOnForward`) are out of tierguard's model and reported.

use serde_json::Value;

use super::selector::{Expr, parse};
use crate::engine::calico::CalicoPolicy;
use crate::engine::field::{Errors, FieldError, FieldPath};
use crate::engine::selector::Selector;
use crate::engine::state::METADATA_NAME_LABEL;

/// The namespace label Calico gives every namespace: its name.
const CALICO_NAME_LABEL: &str = "projectcalico.org/name";

/// The Calico API groups whose policies the guard reads.
pub const GROUPS: [&str; 2] = ["projectcalico.org", "crd.projectcalico.org"];

/// Which Calico policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A namespaced `NetworkPolicy`: its endpoints are its namespace's.
    NetworkPolicy,
    /// A `GlobalNetworkPolicy`: endpoints in any namespace, and host
    /// endpoints.
    GlobalNetworkPolicy,
}

// === impl Kind ===

impl Kind {
    /// The kind of a Calico `group` and `kind`, when the guard reads it.
    pub fn of(group: &str, kind: &str) -> Option<Self> {
        if !GROUPS.contains(&group) {
            return None;
        }
        match kind {
            "NetworkPolicy" => Some(Kind::NetworkPolicy),
            "GlobalNetworkPolicy" => Some(Kind::GlobalNetworkPolicy),
            _ => None,
        }
    }

    /// The kind as a metric label: `NetworkPolicy` would not tell it from
    /// Kubernetes' own.
    pub fn metric_label(self) -> &'static str {
        match self {
            Kind::NetworkPolicy => "CalicoNetworkPolicy",
            Kind::GlobalNetworkPolicy => "GlobalNetworkPolicy",
        }
    }

    /// The kind's name for people, which tells it from Kubernetes' own
    /// NetworkPolicy.
    pub fn display_name(self) -> &'static str {
        match self {
            Kind::NetworkPolicy => "Calico NetworkPolicy",
            Kind::GlobalNetworkPolicy => "Calico GlobalNetworkPolicy",
        }
    }
}

/// A rule whose action can let traffic through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opening {
    /// Its field path (`spec.ingress[0]`).
    pub path: String,
    /// `Allow` or `Pass`.
    pub action: &'static str,
}

/// What the guard reads of a Calico policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Which kind.
    pub kind: Kind,
    /// `spec.tier` (`default` when unset).
    pub tier: String,
    /// `spec.order`, when set.
    pub order: Option<f64>,
    /// `spec.selector` (`all()` when unset or blank).
    pub selector: Expr,
    /// `spec.namespaceSelector` of a GlobalNetworkPolicy, when set and not
    /// blank.
    pub namespace_selector: Option<Expr>,
    /// The rules that can let traffic through.
    pub openings: Vec<Opening>,
    /// The host-endpoint modes set to true.
    pub host_modes: Vec<&'static str>,
}

impl Policy {
    /// The policy in the engine's terms ([`crate::engine::calico::unjudged`]
    /// judges it).
    pub fn to_engine(&self) -> CalicoPolicy {
        let namespaces = match &self.namespace_selector {
            None => Ok(None),
            Some(e) => e
                .to_engine()
                .map(|union| Some(union.into_iter().map(as_namespace_selector).collect()))
                .map_err(|why| why.to_string()),
        };
        CalicoPolicy {
            global: self.kind == Kind::GlobalNetworkPolicy,
            tier: self.tier.clone(),
            order: self.order,
            namespaces,
            openings: self
                .openings
                .iter()
                .map(|o| format!("{} {}", o.path, o.action))
                .collect(),
            host_modes: self.host_modes.iter().map(|m| m.to_string()).collect(),
        }
    }
}

/// A Calico namespace selector in the engine's terms: Calico's
/// `projectcalico.org/name` label is the namespace's name, as
/// `kubernetes.io/metadata.name` is.
fn as_namespace_selector(sel: Selector) -> Selector {
    Selector::from_requirements(
        sel.requirements()
            .iter()
            .cloned()
            .map(|mut r| {
                if r.key == CALICO_NAME_LABEL {
                    r.key = METADATA_NAME_LABEL.to_string();
                }
                r
            })
            .collect(),
    )
}

/// Reads a Calico policy object; every error names its field.
pub fn read(kind: Kind, obj: &Value) -> Result<Policy, Vec<FieldError>> {
    let mut errs = Errors::default();
    let spec_path = FieldPath::root("spec");
    let empty = Value::Object(Default::default());
    let spec = match obj.get("spec") {
        None | Some(Value::Null) => &empty,
        Some(s @ Value::Object(_)) => s,
        Some(_) => {
            errs.push(&spec_path, "must be an object");
            &empty
        }
    };
    let text = |errs: &mut Errors, field: &str| -> Option<String> {
        match spec.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                errs.push(&spec_path.child(field), "must be a string");
                None
            }
        }
    };
    let selector_at = |errs: &mut Errors, field: &str| -> Option<Expr> {
        let s = text(errs, field)?;
        match parse(&s) {
            Ok(e) => Some(e),
            Err(e) => {
                errs.push(
                    &spec_path.child(field),
                    format!("Invalid value: {s:?}: {e}"),
                );
                None
            }
        }
    };
    let selector = selector_at(&mut errs, "selector").unwrap_or(Expr::All);
    let namespace_selector = match kind {
        Kind::GlobalNetworkPolicy => match text(&mut errs, "namespaceSelector") {
            Some(s) if !s.trim_matches([' ', '\t']).is_empty() => {
                selector_at(&mut errs, "namespaceSelector")
            }
            _ => None,
        },
        // A namespaced policy's endpoints are its namespace's; Calico's
        // schema has no namespaceSelector there.
        Kind::NetworkPolicy => {
            if spec.get("namespaceSelector").is_some_and(|v| !v.is_null()) {
                errs.push(
                    &spec_path.child("namespaceSelector"),
                    "Forbidden: a namespaced NetworkPolicy has no namespaceSelector",
                );
            }
            None
        }
    };
    let tier = text(&mut errs, "tier")
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "default".to_string());
    let order = match spec.get("order") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_f64() {
            Some(o) => Some(o),
            None => {
                errs.push(&spec_path.child("order"), "must be a number");
                None
            }
        },
    };
    let mut openings = Vec::new();
    for dir in ["ingress", "egress"] {
        let path = spec_path.child(dir);
        let rules = match spec.get(dir) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(r)) => r,
            Some(_) => {
                errs.push(&path, "must be a list of rules");
                continue;
            }
        };
        for (i, rule) in rules.iter().enumerate() {
            let at = path.index(i);
            match rule.get("action").and_then(Value::as_str) {
                Some(a @ ("Allow" | "Pass")) => openings.push(Opening {
                    path: at.to_string(),
                    action: if a == "Allow" { "Allow" } else { "Pass" },
                }),
                Some("Deny" | "Log") => {}
                Some(other) => errs.push(
                    &at.child("action"),
                    format!("Unsupported value: {other:?}: supported values: \"Allow\", \"Deny\", \"Log\", \"Pass\""),
                ),
                None => errs.push(&at.child("action"), "Required value"),
            }
        }
    }
    let mut host_modes = Vec::new();
    for mode in ["doNotTrack", "preDNAT", "applyOnForward"] {
        match spec.get(mode) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => {}
            Some(Value::Bool(true)) if kind == Kind::GlobalNetworkPolicy => host_modes.push(mode),
            Some(Value::Bool(true)) => errs.push(
                &spec_path.child(mode),
                "Forbidden: only a GlobalNetworkPolicy applies to host endpoints",
            ),
            Some(_) => errs.push(&spec_path.child(mode), "must be a boolean"),
        }
    }
    if errs.is_empty() {
        Ok(Policy {
            kind,
            tier,
            order,
            selector,
            namespace_selector,
            openings,
            host_modes,
        })
    } else {
        Err(errs.0)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_what_the_guard_needs() {
        let gnp = json!({"spec": {
            "tier": "security", "order": 10.5,
            "selector": "role == 'db'", "namespaceSelector": "has(team)",
            "ingress": [{"action": "Deny"}, {"action": "Allow", "source": {"selector": "all()"}}],
            "egress": [{"action": "Pass"}, {"action": "Log"}],
            "doNotTrack": true
        }});
        let p = read(Kind::GlobalNetworkPolicy, &gnp).expect("valid");
        assert_eq!(p.tier, "security");
        assert_eq!(p.order, Some(10.5));
        assert_eq!(p.selector, parse("role == 'db'").expect("parses"));
        assert_eq!(p.namespace_selector, Some(Expr::Has("team".into())));
        assert_eq!(
            p.openings,
            vec![
                Opening {
                    path: "spec.ingress[1]".into(),
                    action: "Allow"
                },
                Opening {
                    path: "spec.egress[0]".into(),
                    action: "Pass"
                }
            ]
        );
        assert_eq!(p.host_modes, vec!["doNotTrack"]);

        let bare = read(Kind::NetworkPolicy, &json!({})).expect("valid");
        assert_eq!(bare.tier, "default");
        assert_eq!(bare.selector, Expr::All);
        assert!(bare.openings.is_empty());
        let blank = read(
            Kind::GlobalNetworkPolicy,
            &json!({"spec": {"namespaceSelector": " "}}),
        )
        .expect("valid");
        assert_eq!(blank.namespace_selector, None);
    }

    #[test]
    fn errors_name_the_field() {
        let bad = json!({"spec": {
            "selector": "role = 'db'",
            "order": "first",
            "ingress": [{"action": "Allow"}, {"action": "allow"}, {}],
            "egress": {"action": "Allow"},
            "preDNAT": true
        }});
        let errs: Vec<String> = read(Kind::NetworkPolicy, &bad)
            .expect_err("invalid")
            .iter()
            .map(ToString::to_string)
            .collect();
        let want = [
            "spec.selector: Invalid value: \"role = 'db'\": invalid Calico selector at character 6: expected '=='",
            "spec.order: must be a number",
            "spec.ingress[1].action: Unsupported value: \"allow\"",
            "spec.ingress[2].action: Required value",
            "spec.egress: must be a list of rules",
            "spec.preDNAT: Forbidden: only a GlobalNetworkPolicy",
        ];
        for w in want {
            assert!(errs.iter().any(|e| e.starts_with(w)), "{w}\n{errs:#?}");
        }
        assert_eq!(errs.len(), want.len(), "{errs:#?}");
        assert_eq!(
            Kind::of("crd.projectcalico.org", "GlobalNetworkPolicy"),
            Some(Kind::GlobalNetworkPolicy)
        );
        assert_eq!(
            Kind::of("projectcalico.org", "NetworkPolicy"),
            Some(Kind::NetworkPolicy)
        );
        assert_eq!(Kind::of("networking.k8s.io", "NetworkPolicy"), None);
        assert_eq!(Kind::of("projectcalico.org", "Tier"), None);
    }
}
