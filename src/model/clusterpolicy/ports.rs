//! Ports of cluster policy rules: ClusterNetworkPolicy's `protocols`
//! (per protocol a `destinationPort` number or range, or a
//! `destinationNamedPort` for every protocol) and AdminNetworkPolicy's
//! `ports` (`portNumber`, `portRange`, `namedPort`).

use serde_json::Value;

use super::{one_of, unknown_fields};
use crate::engine::cluster::Api;
use crate::engine::field::{Errors, FieldPath};
use crate::engine::names;
use crate::engine::ports::{PortMatch, PortNumbers, Protocol};

/// A rule's port list at `path` (at most `max` entries), in `api`'s form.
pub(super) fn ports(
    api: Api,
    v: &Value,
    path: &FieldPath,
    max: usize,
    errs: &mut Errors,
) -> Option<Vec<PortMatch>> {
    let list = super::list(v, path, max, errs)?;
    let mut out = Vec::new();
    for (i, p) in list.iter().enumerate() {
        let entry = match api {
            Api::ClusterNetworkPolicy => protocol_entry(p, &path.index(i), errs),
            _ => anp_port(p, &path.index(i), errs),
        };
        match entry {
            // A named port carries no protocol: it matches the container
            // port of that name, whatever its protocol.
            Some(PortMatch {
                numbers: PortNumbers::Named(n),
                ..
            }) => out.extend(
                [Protocol::Tcp, Protocol::Udp, Protocol::Sctp].map(|protocol| PortMatch {
                    protocol,
                    numbers: PortNumbers::Named(n.clone()),
                }),
            ),
            Some(m) => out.push(m),
            None => {}
        }
    }
    Some(out)
}

/// `protocols[i]` of a ClusterNetworkPolicy: `tcp`/`udp`/`sctp` with a
/// `destinationPort` (a number or a range), or `destinationNamedPort`.
fn protocol_entry(v: &Value, path: &FieldPath, errs: &mut Errors) -> Option<PortMatch> {
    let (k, v) = one_of(
        Some(v),
        &["tcp", "udp", "sctp", "destinationNamedPort"],
        path,
        errs,
    )?;
    let p = path.child(k);
    let protocol = match k {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "sctp" => Protocol::Sctp,
        _ => return Some(named_port(v, &p, errs)),
    };
    let Some(m) = v.as_object() else {
        errs.push(&p, "Invalid value: must be an object");
        return None;
    };
    unknown_fields(m, &["destinationPort"], &p, errs);
    let Some(dp) = m.get("destinationPort") else {
        errs.push(&p, "Invalid value: must have at least 1 property");
        return None;
    };
    let dpp = p.child("destinationPort");
    let (k, v) = one_of(Some(dp), &["number", "range"], &dpp, errs)?;
    let numbers = match k {
        "number" => PortNumbers::Range(port_number(v, &dpp.child("number"), errs)?, 0),
        _ => range(v, &dpp.child("range"), true, errs)?,
    };
    let numbers = match numbers {
        PortNumbers::Range(n, 0) => PortNumbers::Range(n, n),
        n => n,
    };
    Some(PortMatch { protocol, numbers })
}

/// A named port (its protocol is the container port's: [`ports`] expands
/// it to every protocol).
fn named_port(v: &Value, path: &FieldPath, errs: &mut Errors) -> PortMatch {
    let name = v.as_str().unwrap_or_default();
    errs.extend_msgs(path, name, names::port_name(name));
    PortMatch {
        protocol: Protocol::Tcp,
        numbers: PortNumbers::Named(name.to_string()),
    }
}

/// `ports[i]` of an (Baseline)AdminNetworkPolicy: `portNumber`,
/// `namedPort` or `portRange` (protocol defaults to TCP).
fn anp_port(v: &Value, path: &FieldPath, errs: &mut Errors) -> Option<PortMatch> {
    let (k, v) = one_of(
        Some(v),
        &["portNumber", "namedPort", "portRange"],
        path,
        errs,
    )?;
    let p = path.child(k);
    if k == "namedPort" {
        return Some(named_port(v, &p, errs));
    }
    let Some(m) = v.as_object() else {
        errs.push(&p, "Invalid value: must be an object");
        return None;
    };
    let protocol = match m.get("protocol").and_then(Value::as_str) {
        None => Protocol::Tcp,
        Some(s) => match Protocol::from_k8s(s) {
            Some(pr) => pr,
            None => {
                errs.push(
                    &p.child("protocol"),
                    format!(
                        "Unsupported value: {s:?}: supported values: \"SCTP\", \"TCP\", \"UDP\""
                    ),
                );
                return None;
            }
        },
    };
    let numbers = if k == "portNumber" {
        unknown_fields(m, &["protocol", "port"], &p, errs);
        let n = port_number(
            m.get("port").unwrap_or(&Value::Null),
            &p.child("port"),
            errs,
        )?;
        PortNumbers::Range(n, n)
    } else {
        unknown_fields(m, &["protocol", "start", "end"], &p, errs);
        // v1alpha1 has no start < end rule: a range may be one port.
        range(v, &p, false, errs)?
    };
    Some(PortMatch { protocol, numbers })
}

fn port_number(v: &Value, path: &FieldPath, errs: &mut Errors) -> Option<u16> {
    match v.as_i64() {
        Some(n) if (1..=65535).contains(&n) => Some(n as u16),
        Some(n) => {
            errs.push(
                path,
                format!("Invalid value: {n}: must be between 1 and 65535"),
            );
            None
        }
        None if v.is_null() => {
            errs.push(path, "Required value");
            None
        }
        None => {
            errs.push(path, "Invalid value: must be an integer");
            None
        }
    }
}

/// `{start, end}`; `strict`: start < end (ClusterNetworkPolicy's rule),
/// else start <= end.
fn range(v: &Value, path: &FieldPath, strict: bool, errs: &mut Errors) -> Option<PortNumbers> {
    let Some(m) = v.as_object() else {
        errs.push(path, "Invalid value: must be an object");
        return None;
    };
    let field = |k: &str| m.get(k).unwrap_or(&Value::Null);
    let start = port_number(field("start"), &path.child("start"), errs);
    let end = port_number(field("end"), &path.child("end"), errs);
    let (start, end) = (start?, end?);
    if start > end || (strict && start == end) {
        errs.push(path, "Invalid value: Start port must be less than End port");
        return None;
    }
    Some(PortNumbers::Range(start, end))
}
