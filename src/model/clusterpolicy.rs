//! ClusterNetworkPolicy (`policy.networking.k8s.io/v1beta1`, and `v1alpha2`
//! with the same schema), AdminNetworkPolicy and BaselineAdminNetworkPolicy
//! (`policy.networking.k8s.io/v1alpha1`) into the engine's
//! [`ClusterPolicy`].
//!
//! [`convert`] applies the CRDs' validation (network-policy-api v0.3.0:
//! required fields, enums, "exactly one field" peers and subjects, item
//! limits, CIDRs, port ranges, the named-port rules) plus tierguard's own
//! selector limits (docs/limits.md); every error names its field path. A
//! field the schema does not know is an error too: the API server would
//! prune it, and a rule read without it may mean something else.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Map, Value};

mod ports;

use self::ports::ports;
use super::limits;
use super::networkpolicy::selector;
use crate::engine::cluster::{Action, Api, ClusterPeer, ClusterPolicy, ClusterRule, Subject, Tier};
use crate::engine::field::{Errors, FieldError, FieldPath};
use crate::engine::ipblock::{Cidr, IpSet};
use crate::engine::names;
use crate::engine::policy::Direction;
use crate::engine::ports::PortNumbers;
use crate::engine::selector::Selector;

/// The most rule terms (a peer and a port entry of one rule) a cluster
/// policy may have per direction: the walls check meets each term with every
/// earlier one, so this bounds its work per policy.
pub const MAX_RULE_TERMS: usize = 400;

/// The API group of all three kinds.
pub const GROUP: &str = "policy.networking.k8s.io";

/// The API a `group/version` and kind name, when tierguard reads it.
pub fn api_of(api_version: &str, kind: &str) -> Option<Api> {
    match (api_version, kind) {
        (
            "policy.networking.k8s.io/v1beta1" | "policy.networking.k8s.io/v1alpha2",
            "ClusterNetworkPolicy",
        ) => Some(Api::ClusterNetworkPolicy),
        ("policy.networking.k8s.io/v1alpha1", "AdminNetworkPolicy") => {
            Some(Api::AdminNetworkPolicy)
        }
        ("policy.networking.k8s.io/v1alpha1", "BaselineAdminNetworkPolicy") => {
            Some(Api::BaselineAdminNetworkPolicy)
        }
        _ => None,
    }
}

/// Validates and normalises one object of `api`.
pub fn convert(api: Api, obj: &Value) -> Result<ClusterPolicy, Vec<FieldError>> {
    let mut errs = Errors::default();
    let root = obj.as_object();
    let Some(root) = root else {
        return Err(vec![FieldError::new(
            &FieldPath::root("<object>"),
            "Invalid value: not an object",
        )]);
    };
    let meta = FieldPath::root("metadata");
    let name = root
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        errs.push(
            &meta.child("name"),
            "Required value: name or generateName is required",
        );
    } else {
        errs.extend_msgs(&meta.child("name"), &name, names::dns1123_subdomain(&name));
    }
    if api == Api::BaselineAdminNetworkPolicy && !name.is_empty() && name != "default" {
        errs.push(
            &meta.child("name"),
            format!(
                "Invalid value: {name:?}: Only one baseline admin network policy with \
                 metadata.name=\"default\" can be created in the cluster"
            ),
        );
    }
    let sp = FieldPath::root("spec");
    let spec = match root.get("spec") {
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(vec![FieldError::new(
                &sp,
                "Invalid value: must be an object",
            )]);
        }
        None => return Err(vec![FieldError::new(&sp, "Required value")]),
    };
    let known: &[&str] = match api {
        Api::ClusterNetworkPolicy => &["tier", "priority", "subject", "ingress", "egress"],
        Api::AdminNetworkPolicy => &["priority", "subject", "ingress", "egress"],
        Api::BaselineAdminNetworkPolicy => &["subject", "ingress", "egress"],
    };
    unknown_fields(spec, known, &sp, &mut errs);
    let tier = match api {
        Api::ClusterNetworkPolicy => {
            match spec.get("tier").and_then(Value::as_str) {
                Some("Admin") => Tier::Admin,
                Some("Baseline") => Tier::Baseline,
                Some(other) => {
                    errs.push(
                    &sp.child("tier"),
                    format!("Unsupported value: {other:?}: supported values: \"Admin\", \"Baseline\""),
                );
                    Tier::Admin
                }
                None => {
                    errs.push(&sp.child("tier"), "Required value");
                    Tier::Admin
                }
            }
        }
        Api::AdminNetworkPolicy => Tier::Admin,
        Api::BaselineAdminNetworkPolicy => Tier::Baseline,
    };
    let priority = match api {
        Api::BaselineAdminNetworkPolicy => 0,
        _ => match spec.get("priority").map(Value::as_i64) {
            Some(Some(p)) if (0..=1000).contains(&p) => p as i32,
            Some(Some(p)) => {
                errs.push(
                    &sp.child("priority"),
                    format!("Invalid value: {p}: must be between 0 and 1000"),
                );
                0
            }
            Some(None) => {
                errs.push(&sp.child("priority"), "Invalid value: must be an integer");
                0
            }
            None => {
                errs.push(&sp.child("priority"), "Required value");
                0
            }
        },
    };
    let subject = subject(spec.get("subject"), &sp.child("subject"), &mut errs);
    let max_rules = if api == Api::ClusterNetworkPolicy {
        25
    } else {
        100
    };
    let mut gress = |dir: Direction| -> Vec<ClusterRule> {
        let path = sp.child(dir.field());
        let Some(v) = spec.get(dir.field()) else {
            return Vec::new();
        };
        let Some(list) = v.as_array() else {
            errs.push(&path, "Invalid value: must be a list");
            return Vec::new();
        };
        if list.len() > max_rules {
            errs.push(
                &path,
                format!(
                    "Too many: {}: must have at most {max_rules} items",
                    list.len()
                ),
            );
            return Vec::new();
        }
        list.iter()
            .enumerate()
            .filter_map(|(i, r)| rule(api, dir, i, r, &path.index(i), &mut errs))
            .collect()
    };
    let ingress = gress(Direction::Ingress);
    let egress = gress(Direction::Egress);
    for (key, rules) in [("ingress", &ingress), ("egress", &egress)] {
        // tierguard's own limit: each rule is judged as one term per peer
        // and port entry, and each term meets every earlier one.
        let terms: usize = rules
            .iter()
            .map(|r| r.peers.len().max(1) * r.ports.as_ref().map_or(1, |p| p.len().max(1)))
            .sum();
        if terms > MAX_RULE_TERMS {
            errs.push(
                &sp.child(key),
                format!(
                    "Too many: {terms} rule terms (peers × port entries, summed over rules; a \
                     named port counts once per protocol): must have at most {MAX_RULE_TERMS} \
                     (tierguard's limit, docs/limits.md)"
                ),
            );
        }
    }
    if !errs.0.is_empty() {
        return Err(errs.0);
    }
    Ok(ClusterPolicy {
        api,
        name,
        tier,
        priority,
        subject: subject.unwrap_or(Subject::Namespaces(Selector::everything())),
        ingress,
        egress,
    })
}

fn unknown_fields(m: &Map<String, Value>, known: &[&str], path: &FieldPath, errs: &mut Errors) {
    for k in m.keys() {
        if !known.contains(&k.as_str()) {
            errs.push(&path.child(k), "Invalid value: unknown field");
        }
    }
}

/// The one field of an "exactly one field" object, with its name.
fn one_of<'v>(
    v: Option<&'v Value>,
    known: &[&str],
    path: &FieldPath,
    errs: &mut Errors,
) -> Option<(&'v str, &'v Value)> {
    let Some(v) = v else {
        errs.push(path, "Required value");
        return None;
    };
    let Some(m) = v.as_object() else {
        errs.push(path, "Invalid value: must be an object");
        return None;
    };
    unknown_fields(m, known, path, errs);
    let set: Vec<(&String, &Value)> = m
        .iter()
        .filter(|(k, _)| known.contains(&k.as_str()))
        .collect();
    match set.as_slice() {
        [(k, v)] => Some((k.as_str(), v)),
        [] => {
            errs.push(
                path,
                format!(
                    "Invalid value: exactly one of {} must be set",
                    known.join(", ")
                ),
            );
            None
        }
        _ => {
            errs.push(
                path,
                format!("Invalid value: only one of {} may be set", known.join(", ")),
            );
            None
        }
    }
}

fn label_selector(v: &Value, path: &FieldPath, errs: &mut Errors) -> Option<Selector> {
    let sel: LabelSelector = match serde_json::from_value(v.clone()) {
        Ok(s) => s,
        Err(e) => {
            errs.push(path, format!("Invalid value: not a label selector: {e}"));
            return None;
        }
    };
    let over = limits::selector_limits(path, &sel);
    if !over.is_empty() {
        errs.0.extend(over);
        return None;
    }
    let before = errs.0.len();
    let s = selector(&sel, path, errs);
    (errs.0.len() == before).then_some(s)
}

fn namespaced_pod(v: &Value, path: &FieldPath, errs: &mut Errors) -> Option<(Selector, Selector)> {
    let Some(m) = v.as_object() else {
        errs.push(path, "Invalid value: must be an object");
        return None;
    };
    unknown_fields(m, &["namespaceSelector", "podSelector"], path, errs);
    let ns = match m.get("namespaceSelector") {
        Some(s) => label_selector(s, &path.child("namespaceSelector"), errs)?,
        None => Selector::everything(),
    };
    let Some(pods) = m.get("podSelector") else {
        errs.push(&path.child("podSelector"), "Required value");
        return None;
    };
    let pods = label_selector(pods, &path.child("podSelector"), errs)?;
    Some((ns, pods))
}

fn subject(v: Option<&Value>, path: &FieldPath, errs: &mut Errors) -> Option<Subject> {
    let (k, v) = one_of(v, &["namespaces", "pods"], path, errs)?;
    let p = path.child(k);
    match k {
        "namespaces" => label_selector(v, &p, errs).map(Subject::Namespaces),
        _ => {
            namespaced_pod(v, &p, errs).map(|(namespaces, pods)| Subject::Pods { namespaces, pods })
        }
    }
}

fn rule(
    api: Api,
    dir: Direction,
    index: usize,
    v: &Value,
    path: &FieldPath,
    errs: &mut Errors,
) -> Option<ClusterRule> {
    let Some(m) = v.as_object() else {
        errs.push(path, "Invalid value: must be an object");
        return None;
    };
    let before = errs.0.len();
    let (peers_key, ports_key) = match (dir, api) {
        (Direction::Ingress, Api::ClusterNetworkPolicy) => ("from", "protocols"),
        (Direction::Egress, Api::ClusterNetworkPolicy) => ("to", "protocols"),
        (Direction::Ingress, _) => ("from", "ports"),
        (Direction::Egress, _) => ("to", "ports"),
    };
    unknown_fields(m, &["name", "action", peers_key, ports_key], path, errs);
    let name = match m.get("name") {
        None => None,
        Some(Value::String(s)) if s.chars().count() > 100 => {
            errs.push(
                &path.child("name"),
                "Too long: may not be more than 100 characters",
            );
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errs.push(&path.child("name"), "Invalid value: must be a string");
            None
        }
    };
    let (actions, allowed): (&[(&str, Action)], &str) = match api {
        Api::ClusterNetworkPolicy => (
            &[
                ("Accept", Action::Accept),
                ("Deny", Action::Deny),
                ("Pass", Action::Pass),
            ],
            "\"Accept\", \"Deny\", \"Pass\"",
        ),
        Api::AdminNetworkPolicy => (
            &[
                ("Allow", Action::Accept),
                ("Deny", Action::Deny),
                ("Pass", Action::Pass),
            ],
            "\"Allow\", \"Deny\", \"Pass\"",
        ),
        Api::BaselineAdminNetworkPolicy => (
            &[("Allow", Action::Accept), ("Deny", Action::Deny)],
            "\"Allow\", \"Deny\"",
        ),
    };
    let action = match m.get("action").and_then(Value::as_str) {
        Some(a) => match actions.iter().find(|(n, _)| *n == a) {
            Some((_, act)) => Some(*act),
            None => {
                errs.push(
                    &path.child("action"),
                    format!("Unsupported value: {a:?}: supported values: {allowed}"),
                );
                None
            }
        },
        None => {
            errs.push(&path.child("action"), "Required value");
            None
        }
    };
    let max = if api == Api::ClusterNetworkPolicy {
        25
    } else {
        100
    };
    let pp = path.child(peers_key);
    let mut peers = Vec::new();
    match m.get(peers_key).and_then(Value::as_array) {
        None => errs.push(&pp, "Required value"),
        Some(list) if list.is_empty() => errs.push(&pp, "Invalid value: must have at least 1 item"),
        Some(list) if list.len() > max => errs.push(
            &pp,
            format!("Too many: {}: must have at most {max} items", list.len()),
        ),
        Some(list) => {
            for (i, p) in list.iter().enumerate() {
                if let Some(peer) = peer(api, dir, action, p, &pp.index(i), errs) {
                    peers.push(peer);
                }
            }
        }
    }
    let ports = match m.get(ports_key) {
        None => None,
        Some(v) => ports(api, v, &path.child(ports_key), max, errs),
    };
    let named = ports
        .iter()
        .flatten()
        .any(|p| matches!(p.numbers, PortNumbers::Named(_)));
    if named
        && peers.iter().any(|p| {
            matches!(
                p,
                ClusterPeer::Networks { .. } | ClusterPeer::Nodes(_) | ClusterPeer::DomainNames(_)
            )
        })
    {
        errs.push(
            path,
            "Invalid value: networks/nodes/domainNames peer cannot be set with namedPorts since \
             there are no namedPorts for networks/nodes/domainNames",
        );
    }
    if errs.0.len() != before {
        return None;
    }
    Some(ClusterRule {
        index,
        name,
        action: action?,
        peers,
        ports,
    })
}

fn peer(
    api: Api,
    dir: Direction,
    action: Option<Action>,
    v: &Value,
    path: &FieldPath,
    errs: &mut Errors,
) -> Option<ClusterPeer> {
    let known: &[&str] = match (dir, api) {
        (Direction::Ingress, _) => &["namespaces", "pods"],
        (Direction::Egress, Api::BaselineAdminNetworkPolicy) => {
            &["namespaces", "pods", "nodes", "networks"]
        }
        (Direction::Egress, _) => &["namespaces", "pods", "nodes", "networks", "domainNames"],
    };
    let (k, v) = one_of(Some(v), known, path, errs)?;
    let p = path.child(k);
    match k {
        "namespaces" => label_selector(v, &p, errs).map(ClusterPeer::Namespaces),
        "pods" => namespaced_pod(v, &p, errs)
            .map(|(namespaces, pods)| ClusterPeer::Pods { namespaces, pods }),
        "nodes" => label_selector(v, &p, errs).map(ClusterPeer::Nodes),
        "networks" => {
            let list = strings(v, &p, 25, errs)?;
            let mut cidrs = Vec::new();
            for (i, s) in list.iter().enumerate() {
                match Cidr::parse(s) {
                    Ok(c) if c.to_string() == *s => cidrs.push(c),
                    Ok(c) => errs.push(
                        &p.index(i),
                        format!("Invalid value: {s:?}: Invalid CIDR format provided (masked: {c})"),
                    ),
                    Err(m) => errs.push(&p.index(i), format!("Invalid value: {s:?}: {m}")),
                }
            }
            let set = IpSet::from_cidrs(&cidrs);
            Some(ClusterPeer::Networks { cidrs, set })
        }
        _ => {
            if action.is_some_and(|a| a != Action::Accept) {
                errs.push(
                    &p,
                    "Forbidden: domainNames is only supported for Accept rules",
                );
            }
            let list = strings(v, &p, 25, errs)?;
            for (i, d) in list.iter().enumerate() {
                if !domain_name(d) {
                    errs.push(
                        &p.index(i),
                        format!("Invalid value: {d:?}: not a domain name"),
                    );
                }
            }
            Some(ClusterPeer::DomainNames(list))
        }
    }
}

/// The CRD's domain-name pattern: labels of letters, digits, `-` and `_`
/// (not at either end), at least two, an optional `*.` prefix and an
/// optional trailing dot.
fn domain_name(d: &str) -> bool {
    let d = d.strip_prefix("*.").unwrap_or(d);
    let d = d.strip_suffix('.').unwrap_or(d);
    let labels: Vec<&str> = d.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && l.starts_with(|c: char| c.is_ascii_alphanumeric())
                && l.ends_with(|c: char| c.is_ascii_alphanumeric())
        })
}

/// The list at `path`: present, with 1 to `max` items.
fn list<'v>(v: &'v Value, path: &FieldPath, max: usize, errs: &mut Errors) -> Option<&'v [Value]> {
    let Some(list) = v.as_array() else {
        errs.push(path, "Invalid value: must be a list");
        return None;
    };
    if list.is_empty() {
        errs.push(path, "Invalid value: must have at least 1 item");
        return None;
    }
    if list.len() > max {
        errs.push(
            path,
            format!("Too many: {}: must have at most {max} items", list.len()),
        );
        return None;
    }
    Some(list)
}

fn strings(v: &Value, path: &FieldPath, max: usize, errs: &mut Errors) -> Option<Vec<String>> {
    let list = list(v, path, max, errs)?;
    let mut out = Vec::new();
    for (i, s) in list.iter().enumerate() {
        match s.as_str() {
            Some(s) if out.iter().any(|o: &String| o == s) => {
                errs.push(&path.index(i), format!("Duplicate value: {s:?}"))
            }
            Some(s) => out.push(s.to_string()),
            None => errs.push(&path.index(i), "Invalid value: must be a string"),
        }
    }
    Some(out)
}
