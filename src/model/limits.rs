//! The sizes tierguard judges. The API server accepts any NetworkPolicy up to
//! its object size limit, and some shapes within it cost far more to judge
//! than any real policy needs; over these limits a policy is not judged
//! (the webhook refuses it in enforce mode, naming the field and the limit).
//!
//! Each limit leaves room: real policies have a handful of requirements per
//! selector, tens of rules and peers, and at most a few hundred values in an
//! `In` list (generated policies listing namespaces). docs/limits.md lists
//! them with how the judging budget was measured.

use k8s_openapi::api::networking::v1 as netv1;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::engine::field::{FieldError, FieldPath};

/// Requirements (`matchLabels` entries plus `matchExpressions`) in one selector.
pub const MAX_REQUIREMENTS: usize = 256;
/// Values in one `matchExpressions` entry.
pub const MAX_VALUES: usize = 10_000;
/// Rules in one direction (`ingress` or `egress`).
pub const MAX_RULES: usize = 1_000;
/// Peers (`from`/`to`) in one rule.
pub const MAX_PEERS: usize = 1_000;
/// Ports in one rule.
pub const MAX_PORTS: usize = 1_000;
/// `except` entries in one ipBlock.
pub const MAX_EXCEPT: usize = 1_000;
/// Peers and ports across the whole policy.
pub const MAX_TOTAL: usize = 20_000;

fn too_many(errs: &mut Vec<FieldError>, path: &FieldPath, n: usize, max: usize, what: &str) {
    if n > max {
        errs.push(FieldError::new(
            path,
            format!("Too many: {n}: tierguard judges at most {max} {what} here (docs/limits.md)"),
        ));
    }
}

/// The limits one selector exceeds, at `path`.
pub fn selector_limits(path: &FieldPath, sel: &LabelSelector) -> Vec<FieldError> {
    let mut errs = Vec::new();
    selector(&mut errs, path, sel);
    errs
}

fn selector(errs: &mut Vec<FieldError>, path: &FieldPath, sel: &LabelSelector) {
    let labels = sel.match_labels.as_ref().map_or(0, |m| m.len());
    let exprs = sel.match_expressions.as_deref().unwrap_or_default();
    too_many(
        errs,
        path,
        labels + exprs.len(),
        MAX_REQUIREMENTS,
        "requirements in a selector",
    );
    for (i, e) in exprs.iter().enumerate() {
        too_many(
            errs,
            &path.child("matchExpressions").index(i).child("values"),
            e.values.as_ref().map_or(0, Vec::len),
            MAX_VALUES,
            "values in a requirement",
        );
    }
}

/// The limits `np` exceeds, each at its field; empty when it fits.
pub fn check(np: &netv1::NetworkPolicy) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(spec) = &np.spec else {
        return errs;
    };
    let sp = FieldPath::root("spec");
    if let Some(sel) = &spec.pod_selector {
        selector(&mut errs, &sp.child("podSelector"), sel);
    }
    let mut total = 0usize;
    let ingress = spec.ingress.as_deref().unwrap_or_default();
    let egress = spec.egress.as_deref().unwrap_or_default();
    let rules = ingress
        .iter()
        .map(|r| (r.from.as_deref(), r.ports.as_deref()))
        .enumerate()
        .map(|(i, r)| (sp.child("ingress").index(i), "from", r))
        .chain(
            egress
                .iter()
                .map(|r| (r.to.as_deref(), r.ports.as_deref()))
                .enumerate()
                .map(|(i, r)| (sp.child("egress").index(i), "to", r)),
        );
    too_many(
        &mut errs,
        &sp.child("ingress"),
        ingress.len(),
        MAX_RULES,
        "rules",
    );
    too_many(
        &mut errs,
        &sp.child("egress"),
        egress.len(),
        MAX_RULES,
        "rules",
    );
    for (rp, peers_field, (peers, ports)) in rules {
        let peers = peers.unwrap_or_default();
        let ports = ports.unwrap_or_default();
        total += peers.len() + ports.len();
        too_many(
            &mut errs,
            &rp.child(peers_field),
            peers.len(),
            MAX_PEERS,
            "peers in a rule",
        );
        too_many(
            &mut errs,
            &rp.child("ports"),
            ports.len(),
            MAX_PORTS,
            "ports in a rule",
        );
        for (j, p) in peers.iter().enumerate() {
            let pp = rp.child(peers_field).index(j);
            if let Some(s) = &p.namespace_selector {
                selector(&mut errs, &pp.child("namespaceSelector"), s);
            }
            if let Some(s) = &p.pod_selector {
                selector(&mut errs, &pp.child("podSelector"), s);
            }
            if let Some(b) = &p.ip_block {
                too_many(
                    &mut errs,
                    &pp.child("ipBlock").child("except"),
                    b.except.as_ref().map_or(0, Vec::len),
                    MAX_EXCEPT,
                    "except entries",
                );
            }
        }
        if errs.len() > 20 {
            break; // enough to act on; the rest would only lengthen the message
        }
    }
    too_many(
        &mut errs,
        &sp,
        total,
        MAX_TOTAL,
        "peers and ports in one policy",
    );
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn exists(n: usize) -> LabelSelector {
        LabelSelector {
            match_expressions: Some(
                (0..n)
                    .map(|i| LabelSelectorRequirement {
                        key: format!("k{i}"),
                        operator: "Exists".into(),
                        values: None,
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn policy(sel: LabelSelector) -> netv1::NetworkPolicy {
        netv1::NetworkPolicy {
            spec: Some(netv1::NetworkPolicySpec {
                pod_selector: Some(sel),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_selector_at_the_limit_fits_and_one_over_is_named() {
        assert!(check(&policy(exists(MAX_REQUIREMENTS))).is_empty());
        let errs = check(&policy(exists(6_000)));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].path.to_string(), "spec.podSelector");
        assert!(
            errs[0].message.contains("6000") && errs[0].message.contains("at most 256"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn many_values_in_one_requirement_are_named_at_the_requirement() {
        let sel = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "app".into(),
                operator: "NotIn".into(),
                values: Some((0..MAX_VALUES + 1).map(|i| i.to_string()).collect()),
            }]),
            ..Default::default()
        };
        let errs = check(&policy(sel));
        assert_eq!(
            errs.iter().map(|e| e.path.to_string()).collect::<Vec<_>>(),
            ["spec.podSelector.matchExpressions[0].values"]
        );
    }
}
