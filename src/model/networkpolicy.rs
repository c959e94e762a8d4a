//! NetworkPolicy (`networking.k8s.io/v1`) into the engine's [`Policy`].
//!
//! [`convert`] applies the API server's defaulting and validation
//! (`networking/v1` `SetDefaults_NetworkPolicySpec`,
//! `ValidateNetworkPolicy`); every error names its field path.

use std::collections::BTreeSet;

use k8s_openapi::api::networking::v1 as netv1;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::engine::field::{Errors, FieldError, FieldPath};
use crate::engine::ipblock::{Cidr, IpBlock};
use crate::engine::names;
use crate::engine::policy::{Direction, Peer, Policy, Rule};
use crate::engine::ports::{PortMatch, PortNumbers, Protocol};
use crate::engine::selector::{Op, Requirement, Selector};

/// Validates and normalises a NetworkPolicy. `default_namespace` stands
/// in for a missing `metadata.namespace` (as kubectl's current namespace
/// does).
pub fn convert(
    np: &netv1::NetworkPolicy,
    default_namespace: &str,
) -> Result<Policy, Vec<FieldError>> {
    // Over tierguard's limits nothing else is looked at (docs/limits.md).
    let over = super::limits::check(np);
    if !over.is_empty() {
        return Err(over);
    }
    let mut errs = Errors::default();
    let meta = FieldPath::root("metadata");
    let name = np.metadata.name.clone().unwrap_or_default();
    if name.is_empty() {
        errs.push(
            &meta.child("name"),
            "Required value: name or generateName is required",
        );
    } else {
        errs.extend_msgs(&meta.child("name"), &name, names::dns1123_subdomain(&name));
    }
    let namespace = np
        .metadata
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| default_namespace.to_string());
    errs.extend_msgs(
        &meta.child("namespace"),
        &namespace,
        names::dns1123_label(&namespace),
    );

    let spec = np.spec.clone().unwrap_or_default();
    let sp = FieldPath::root("spec");
    let pod_selector = match &spec.pod_selector {
        Some(sel) => selector(sel, &sp.child("podSelector"), &mut errs),
        None => Selector::everything(),
    };

    // policyTypes: validated, then defaulted as the API server does.
    let mut types = BTreeSet::new();
    let tp = sp.child("policyTypes");
    match &spec.policy_types {
        Some(list) if list.len() > 2 => errs.push(
            &tp,
            "Invalid value: may not specify more than two policyTypes",
        ),
        Some(list) if !list.is_empty() => {
            for (i, t) in list.iter().enumerate() {
                match t.as_str() {
                    "Ingress" => {
                        types.insert(Direction::Ingress);
                    }
                    "Egress" => {
                        types.insert(Direction::Egress);
                    }
                    other => errs.push(
                        &tp.index(i),
                        format!("Unsupported value: {other:?}: supported values: \"Ingress\", \"Egress\""),
                    ),
                }
            }
        }
        _ => {
            types.insert(Direction::Ingress);
            if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) {
                types.insert(Direction::Egress);
            }
        }
    }

    let ingress_rules: Vec<Rule> = spec
        .ingress
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, r)| {
            let rp = sp.child("ingress").index(i);
            rule(
                i,
                r.from.as_deref(),
                r.ports.as_deref(),
                &rp,
                "from",
                &mut errs,
            )
        })
        .collect();
    let egress_rules: Vec<Rule> = spec
        .egress
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, r)| {
            let rp = sp.child("egress").index(i);
            rule(i, r.to.as_deref(), r.ports.as_deref(), &rp, "to", &mut errs)
        })
        .collect();

    if !errs.is_empty() {
        return Err(errs.0);
    }
    Ok(Policy {
        namespace,
        name,
        pod_selector,
        ingress: types.contains(&Direction::Ingress).then_some(ingress_rules),
        egress: types.contains(&Direction::Egress).then_some(egress_rules),
    })
}

fn rule(
    index: usize,
    peers: Option<&[netv1::NetworkPolicyPeer]>,
    ports: Option<&[netv1::NetworkPolicyPort]>,
    path: &FieldPath,
    peer_field: &str,
    errs: &mut Errors,
) -> Rule {
    let peers = peers.filter(|p| !p.is_empty()).map(|list| {
        list.iter()
            .enumerate()
            .filter_map(|(i, p)| peer(p, &path.child(peer_field).index(i), errs))
            .collect()
    });
    let ports = ports.filter(|p| !p.is_empty()).map(|list| {
        list.iter()
            .enumerate()
            .filter_map(|(i, p)| port(p, &path.child("ports").index(i), errs))
            .collect()
    });
    Rule {
        index,
        peers,
        ports,
    }
}

fn peer(p: &netv1::NetworkPolicyPeer, path: &FieldPath, errs: &mut Errors) -> Option<Peer> {
    let count = [
        p.pod_selector.is_some(),
        p.namespace_selector.is_some(),
        p.ip_block.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    let pods = p
        .pod_selector
        .as_ref()
        .map(|s| selector(s, &path.child("podSelector"), errs));
    let namespaces = p
        .namespace_selector
        .as_ref()
        .map(|s| selector(s, &path.child("namespaceSelector"), errs));
    let block = p
        .ip_block
        .as_ref()
        .and_then(|b| ip_block(b, &path.child("ipBlock"), errs));
    if count == 0 {
        errs.push(path, "Required value: must specify a peer");
        return None;
    }
    if count > 1 && p.ip_block.is_some() {
        errs.push(
            path,
            "Forbidden: may not specify both ipBlock and another peer",
        );
        return None;
    }
    match block {
        Some(b) => Some(Peer::IpBlock(b)),
        None if p.ip_block.is_some() => None,
        None => Some(Peer::Pods { namespaces, pods }),
    }
}

fn ip_block(b: &netv1::IPBlock, path: &FieldPath, errs: &mut Errors) -> Option<IpBlock> {
    let cp = path.child("cidr");
    if b.cidr.is_empty() {
        errs.push(&cp, "Required value");
        return None;
    }
    let cidr = match Cidr::parse(&b.cidr) {
        Ok(c) => c,
        Err(m) => {
            errs.push(&cp, format!("Invalid value: {:?}: {m}", b.cidr));
            return None;
        }
    };
    let mut except = Vec::new();
    for (i, e) in b.except.iter().flatten().enumerate() {
        let ep = path.child("except").index(i);
        match Cidr::parse(e) {
            Ok(ex) => {
                if !cidr.contains(ex.addr())
                    || cidr.prefix() >= ex.prefix()
                    || cidr.is_ipv4() != ex.is_ipv4()
                {
                    errs.push(
                        &ep,
                        format!("Invalid value: {e:?}: must be a strict subset of `cidr`"),
                    );
                } else {
                    except.push(ex);
                }
            }
            Err(m) => errs.push(&ep, format!("Invalid value: {e:?}: {m}")),
        }
    }
    Some(IpBlock { cidr, except })
}

fn port(p: &netv1::NetworkPolicyPort, path: &FieldPath, errs: &mut Errors) -> Option<PortMatch> {
    let before = errs.0.len();
    let protocol = match p.protocol.as_deref() {
        None => Protocol::Tcp,
        Some(s) => match Protocol::from_k8s(s) {
            Some(proto) => proto,
            None => {
                errs.push(
                    &path.child("protocol"),
                    format!(
                        "Unsupported value: {s:?}: supported values: \"SCTP\", \"TCP\", \"UDP\""
                    ),
                );
                Protocol::Tcp
            }
        },
    };
    let valid_port = |n: i32| (1..=65535).contains(&n);
    let numbers = match &p.port {
        None => {
            if let Some(end) = p.end_port {
                errs.push(
                    &path.child("endPort"),
                    format!(
                        "Invalid value: {end}: may not be specified when `port` is not specified"
                    ),
                );
            }
            PortNumbers::Any
        }
        Some(IntOrString::Int(n)) => {
            let n = *n;
            if !valid_port(n) {
                errs.push(
                    &path.child("port"),
                    format!("Invalid value: {n}: must be between 1 and 65535, inclusive"),
                );
            }
            let end = match p.end_port {
                None => n,
                Some(e) => {
                    if e < n {
                        errs.push(
                            &path.child("endPort"),
                            format!("Invalid value: {e}: must be greater than or equal to `port`"),
                        );
                    }
                    if !valid_port(e) {
                        errs.push(
                            &path.child("endPort"),
                            format!("Invalid value: {e}: must be between 1 and 65535, inclusive"),
                        );
                    }
                    e
                }
            };
            PortNumbers::Range(clamp_port(n), clamp_port(end))
        }
        Some(IntOrString::String(name)) => {
            if let Some(end) = p.end_port {
                errs.push(
                    &path.child("endPort"),
                    format!(
                        "Invalid value: {end}: may not be specified when `port` is non-numeric"
                    ),
                );
            }
            errs.extend_msgs(&path.child("port"), name, names::port_name(name));
            PortNumbers::Named(name.clone())
        }
    };
    (errs.0.len() == before).then_some(PortMatch { protocol, numbers })
}

fn clamp_port(n: i32) -> u16 {
    n.clamp(1, 65535) as u16
}

/// Validates a LabelSelector (keys, values, operators) into a [`Selector`].
pub fn selector(sel: &LabelSelector, path: &FieldPath, errs: &mut Errors) -> Selector {
    let mut reqs = Vec::new();
    let ml = path.child("matchLabels");
    for (k, v) in sel.match_labels.iter().flatten() {
        errs.extend_msgs(&ml, k, names::label_key(k));
        errs.extend_msgs(&ml.key(k), v, names::label_value(v));
        reqs.push(Requirement {
            key: k.clone(),
            op: Op::In,
            values: BTreeSet::from([v.clone()]),
        });
    }
    for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
        let ep = path.child("matchExpressions").index(i);
        errs.extend_msgs(&ep.child("key"), &e.key, names::label_key(&e.key));
        let values: Vec<String> = e.values.clone().unwrap_or_default();
        let op = match e.operator.as_str() {
            "In" => Op::In,
            "NotIn" => Op::NotIn,
            "Exists" => Op::Exists,
            "DoesNotExist" => Op::DoesNotExist,
            other => {
                errs.push(
                    &ep.child("operator"),
                    format!("Invalid value: {other:?}: not a valid selector operator"),
                );
                continue;
            }
        };
        match op {
            Op::In | Op::NotIn if values.is_empty() => errs.push(
                &ep.child("values"),
                "Required value: must be specified when `operator` is 'In' or 'NotIn'",
            ),
            Op::Exists | Op::DoesNotExist if !values.is_empty() => errs.push(
                &ep.child("values"),
                "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            ),
            _ => {}
        }
        for (j, v) in values.iter().enumerate() {
            errs.extend_msgs(&ep.child("values").index(j), v, names::label_value(v));
        }
        reqs.push(Requirement {
            key: e.key.clone(),
            op,
            values: values.into_iter().collect(),
        });
    }
    Selector::from_requirements(reqs)
}
