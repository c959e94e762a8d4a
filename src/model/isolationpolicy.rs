//! The `IsolationPolicy` document (tierguard's configuration, kept in
//! `policies/`) into the engine's [`IsolationPolicy`]: parsed, validated
//! with field paths, and its implied flows added.
//!
//! ```yaml
//! apiVersion: tierguard.io/v1alpha1
//! kind: IsolationPolicy
//! metadata: {name: three-tier}
//! spec:
//!   mode: enforce                 # or audit
//!   judge: walls                  # or effective
//!   tierLabel: tierguard.io/tier  # namespaces join a tier by this label...
//!   tiers:
//!   - name: database
//!     namespaces: [database]      # ...or by name
//!   membership: {groups: [system:masters]}
//!   cluster: {podCIDRs: [10.244.0.0/16], serviceCIDRs: [10.96.0.0/12]}
//!   baseline: {defaultDeny: true, dns: {to: cluster-dns}}  # via: clusterNetworkPolicy adds
//!                                 # an Admin-tier baseline (model::clusterbaseline)
//!   flows:
//!   - {from: "tier:backend", to: "tier:database", ports: [TCP/5432]}
//! ```
//!
//! A flow's ends are `tier:NAME`, `tier:*` (every tier), `namespace:NAME`
//! (a namespace by name), `external` (outside the cluster) or `any`. A
//! connection into, out of or between tier namespaces is allowed iff some
//! flow (declared, or implied by the baseline's DNS setting) covers it;
//! connections between two non-tier namespaces are not governed.
//! docs/isolation-policy.md documents every field.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use serde::Deserialize;

use super::clusterbaseline;
use super::documents::parse_documents;
use crate::engine::field::{Errors, FieldPath};
use crate::engine::ipblock::Cidr;
use crate::engine::names;
use crate::engine::ports::{PortSet, Protocol, parse_port_spec};
use crate::engine::state::{METADATA_NAME_LABEL, NAME_LABEL};
use crate::engine::tiers::{
    Baseline, Dns, Flow, FlowEnd, IsolationPolicy, Judge, Membership, Mode, Tier, Via,
};

/// The API version of the isolation policy kind.
pub const API_VERSION: &str = "tierguard.io/v1alpha1";
/// The kind.
pub const KIND: &str = "IsolationPolicy";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Raw {
    api_version: String,
    kind: String,
    metadata: RawMeta,
    spec: IsolationPolicySpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeta {
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    #[allow(dead_code)]
    annotations: BTreeMap<String, String>,
}

mod crd;

pub use crd::{
    BaselineSpec, ClusterSpec, Condition, DnsSpec, FlowSpec, IsolationPolicyObject,
    IsolationPolicySpec, IsolationPolicyStatus, MembershipSpec, TierSpec, TierStatus,
};

/// Reads an isolation policy from a file.
pub fn load_file(path: &Path) -> Result<IsolationPolicy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    parse(&text, &path.display().to_string())
}

/// Parses an isolation policy; errors name `origin`, the document and the
/// field.
pub fn parse(text: &str, origin: &str) -> Result<IsolationPolicy> {
    let docs = parse_documents(text, origin)?;
    let mut found = Vec::new();
    for doc in docs {
        let kind = doc
            .value
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default();
        if kind == KIND {
            found.push(doc);
        }
    }
    let doc = match found.len() {
        1 => found.remove(0),
        0 => return Err(anyhow!("{origin}: no {KIND} document found")),
        n => return Err(anyhow!("{origin}: {n} {KIND} documents; give exactly one")),
    };
    let raw: Raw = serde_path_to_error::deserialize(doc.value)
        .map_err(|e| anyhow!("{origin}{}: {}: {}", doc.where_, e.path(), e.inner()))?;
    let name = raw.metadata.name.clone();
    validate(raw).map_err(|errs| {
        let lines: Vec<String> = errs.0.iter().map(|e| format!("  {e}")).collect();
        anyhow!(
            "{origin}{}: {KIND} {name} is invalid:\n{}",
            doc.where_,
            lines.join("\n")
        )
    })
}

fn validate(raw: Raw) -> Result<IsolationPolicy, Errors> {
    let mut errs = Errors::default();
    if raw.api_version != API_VERSION {
        errs.push(
            &FieldPath::root("apiVersion"),
            format!(
                "Unsupported value: {:?}: supported values: {API_VERSION:?}",
                raw.api_version
            ),
        );
    }
    if raw.kind != KIND {
        errs.push(&FieldPath::root("kind"), format!("must be {KIND}"));
    }
    validate_spec(raw.metadata.name, raw.spec, errs)
}

/// Validates the spec of an IsolationPolicy object (the CRD form; the
/// API server has checked its shape against the CRD's schema) into the
/// engine's policy; errors carry field paths from `spec`.
pub fn from_object(obj: &IsolationPolicyObject) -> Result<IsolationPolicy, Errors> {
    validate_spec(
        kube::ResourceExt::name_any(obj),
        obj.spec.clone(),
        Errors::default(),
    )
}

/// Reads an IsolationPolicy object as JSON (an admission request's
/// object) and validates it: the shape with the path of the first field
/// that does not fit, then every semantic error with its path.
pub fn from_json(value: serde_json::Value) -> Result<IsolationPolicy, Vec<String>> {
    let obj: IsolationPolicyObject = serde_path_to_error::deserialize(value)
        .map_err(|e| vec![format!("{}: {}", e.path(), e.inner())])?;
    from_object(&obj).map_err(|errs| errs.0.iter().map(|e| e.to_string()).collect())
}

fn validate_spec(
    name: String,
    spec: IsolationPolicySpec,
    mut errs: Errors,
) -> Result<IsolationPolicy, Errors> {
    let sp = FieldPath::root("spec");

    let mode = match spec.mode.as_deref() {
        None | Some("enforce") => Mode::Enforce,
        Some("audit") => Mode::Audit,
        Some(other) => {
            errs.push(
                &sp.child("mode"),
                format!("Unsupported value: {other:?}: supported values: \"enforce\", \"audit\""),
            );
            Mode::Enforce
        }
    };
    let judge = match spec.judge.as_deref() {
        None | Some("walls") => Judge::Walls,
        Some("effective") => Judge::Effective,
        Some(other) => {
            errs.push(
                &sp.child("judge"),
                format!("Unsupported value: {other:?}: supported values: \"walls\", \"effective\""),
            );
            Judge::Walls
        }
    };
    let tier_label = spec
        .tier_label
        .unwrap_or_else(|| "tierguard.io/tier".to_string());
    errs.extend_msgs(
        &sp.child("tierLabel"),
        &tier_label,
        names::label_key(&tier_label),
    );
    if tier_label == NAME_LABEL || tier_label == METADATA_NAME_LABEL {
        errs.push(
            &sp.child("tierLabel"),
            format!("Invalid value: {tier_label:?}: must not be a name label"),
        );
    }

    let mut tiers: Vec<Tier> = Vec::new();
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    for (i, t) in spec.tiers.iter().enumerate() {
        let tp = sp.child("tiers").index(i);
        errs.extend_msgs(&tp.child("name"), &t.name, names::label_value(&t.name));
        if t.name.is_empty() || t.name == "*" {
            errs.push(&tp.child("name"), "Required value: a tier needs a name");
        }
        if tiers.iter().any(|o| o.name == t.name) {
            errs.push(&tp.child("name"), format!("Duplicate value: {:?}", t.name));
        }
        for (j, ns) in t.namespaces.iter().enumerate() {
            let np = tp.child("namespaces").index(j);
            errs.extend_msgs(&np, ns, names::dns1123_label(ns));
            if let Some(prev) = owner.insert(ns.clone(), t.name.clone()) {
                errs.push(
                    &np,
                    format!("Duplicate value: {ns:?} is already in tier {prev:?}"),
                );
            }
        }
        tiers.push(Tier {
            name: t.name.clone(),
            namespaces: t.namespaces.iter().cloned().collect(),
        });
    }
    if tiers.is_empty() {
        errs.push(&sp.child("tiers"), "Required value: at least one tier");
    }

    let mut membership = Membership {
        groups: spec.membership.groups.iter().cloned().collect(),
        users: spec.membership.users.iter().cloned().collect(),
    };
    for (i, sa) in spec.membership.service_accounts.iter().enumerate() {
        match sa.split_once('/') {
            Some((ns, name))
                if names::dns1123_label(ns).is_empty()
                    && names::dns1123_subdomain(name).is_empty() =>
            {
                membership
                    .users
                    .insert(format!("system:serviceaccount:{ns}:{name}"));
            }
            _ => errs.push(
                &sp.child("membership").child("serviceAccounts").index(i),
                format!("Invalid value: {sa:?}: must be NAMESPACE/NAME"),
            ),
        }
    }

    let cidrs = |list: &[String], field: &str, errs: &mut Errors| -> Vec<Cidr> {
        list.iter()
            .enumerate()
            .filter_map(|(i, c)| match Cidr::parse(c) {
                Ok(c) => Some(c),
                Err(m) => {
                    errs.push(
                        &sp.child("cluster").child(field).index(i),
                        format!("Invalid value: {c:?}: {m}"),
                    );
                    None
                }
            })
            .collect()
    };
    let pod_cidrs = cidrs(&spec.cluster.pod_cidrs, "podCIDRs", &mut errs);
    let service_cidrs = cidrs(&spec.cluster.service_cidrs, "serviceCIDRs", &mut errs);
    let node_cidrs = cidrs(&spec.cluster.node_cidrs, "nodeCIDRs", &mut errs);
    if pod_cidrs.is_empty() && !service_cidrs.is_empty() {
        errs.push(
            &sp.child("cluster").child("podCIDRs"),
            "Required value: give the pod CIDRs too, or neither",
        );
    }

    let bp = sp.child("baseline");
    let default_deny_name = spec
        .baseline
        .default_deny_name
        .unwrap_or_else(|| "tierguard-default-deny".to_string());
    errs.extend_msgs(
        &bp.child("defaultDenyName"),
        &default_deny_name,
        names::dns1123_subdomain(&default_deny_name),
    );
    let (dns, dns_name) = match spec.baseline.dns {
        None => (
            Dns::ClusterDns {
                namespace: "kube-system".into(),
                pod_labels: BTreeMap::from([("k8s-app".to_string(), "kube-dns".to_string())]),
            },
            "tierguard-allow-dns".to_string(),
        ),
        Some(d) => {
            let dp = bp.child("dns");
            let name = d.name.unwrap_or_else(|| "tierguard-allow-dns".to_string());
            errs.extend_msgs(&dp.child("name"), &name, names::dns1123_subdomain(&name));
            let dns = match d.to.as_str() {
                "cluster-dns" => {
                    let namespace = d.namespace.unwrap_or_else(|| "kube-system".into());
                    errs.extend_msgs(
                        &dp.child("namespace"),
                        &namespace,
                        names::dns1123_label(&namespace),
                    );
                    let pod_labels = d.pod_labels.unwrap_or_else(|| {
                        BTreeMap::from([("k8s-app".to_string(), "kube-dns".to_string())])
                    });
                    for (k, v) in &pod_labels {
                        errs.extend_msgs(&dp.child("podLabels"), k, names::label_key(k));
                        errs.extend_msgs(&dp.child("podLabels").key(k), v, names::label_value(v));
                    }
                    Dns::ClusterDns {
                        namespace,
                        pod_labels,
                    }
                }
                "anywhere" => Dns::Anywhere,
                "none" => Dns::None,
                other => {
                    errs.push(
                        &dp.child("to"),
                        format!(
                            "Unsupported value: {other:?}: supported values: \"cluster-dns\", \"anywhere\", \"none\""
                        ),
                    );
                    Dns::None
                }
            };
            (dns, name)
        }
    };
    let via = match (spec.baseline.via.as_deref(), spec.baseline.priority) {
        (None | Some("networkPolicy"), None) => Some(Via::NetworkPolicy),
        (None | Some("networkPolicy"), Some(_)) => {
            errs.push(
                &bp.child("priority"),
                "Forbidden: only with via: clusterNetworkPolicy",
            );
            None
        }
        (Some("clusterNetworkPolicy"), p) => match p.unwrap_or(0) {
            p if (0..=i64::from(clusterbaseline::MAX_PRIORITY)).contains(&p) => {
                Some(Via::ClusterNetworkPolicy {
                    priority: p as i32,
                    policies: Vec::new(),
                })
            }
            p => {
                errs.push(
                    &bp.child("priority"),
                    format!(
                        "Invalid value: {p}: must be between 0 and {} (the baseline uses four priorities from it)",
                        clusterbaseline::MAX_PRIORITY
                    ),
                );
                None
            }
        },
        (Some(other), _) => {
            errs.push(
                &bp.child("via"),
                format!(
                    "Unsupported value: {other:?}: supported values: \"networkPolicy\", \"clusterNetworkPolicy\""
                ),
            );
            None
        }
    };
    let baseline = Baseline {
        default_deny: spec.baseline.default_deny.unwrap_or(true),
        default_deny_name,
        dns,
        dns_name,
        via: via.unwrap_or(Via::NetworkPolicy),
    };

    let tier_names: BTreeSet<&str> = tiers.iter().map(|t| t.name.as_str()).collect();
    let mut flows = Vec::new();
    for (i, f) in spec.flows.iter().enumerate() {
        let fp = sp.child("flows").index(i);
        let from = flow_end(&f.from, &fp.child("from"), &tiers, &tier_names, &mut errs);
        let to = flow_end(&f.to, &fp.child("to"), &tiers, &tier_names, &mut errs);
        let ports = match &f.ports {
            None => PortSet::all(),
            Some(list) if list.is_empty() => {
                errs.push(
                    &fp.child("ports"),
                    "Required value: leave ports out to allow every port",
                );
                PortSet::none()
            }
            Some(list) => {
                let mut set = PortSet::none();
                for (j, s) in list.iter().enumerate() {
                    match parse_port_spec(s) {
                        Ok(p) => set = set.union(&p),
                        Err(m) => {
                            errs.push(&fp.child("ports").index(j), format!("Invalid value: {m}"))
                        }
                    }
                }
                set
            }
        };
        if let (Some(from), Some(to)) = (from, to) {
            flows.push(Flow {
                from,
                to,
                ports,
                origin: fp.to_string(),
            });
        }
    }
    let dns_ports = PortSet::single(Protocol::Udp, 53).union(&PortSet::single(Protocol::Tcp, 53));
    match &baseline.dns {
        Dns::ClusterDns { namespace, .. } => flows.push(Flow {
            from: FlowEnd::AnyTier,
            to: FlowEnd::Namespace(namespace.clone()),
            ports: dns_ports,
            origin: "spec.baseline.dns".into(),
        }),
        Dns::Anywhere => flows.push(Flow {
            from: FlowEnd::AnyTier,
            to: FlowEnd::Any,
            ports: dns_ports,
            origin: "spec.baseline.dns".into(),
        }),
        Dns::None => {}
    }
    if let Dns::ClusterDns { namespace, .. } = &baseline.dns
        && owner.contains_key(namespace)
    {
        errs.push(
            &bp.child("dns").child("namespace"),
            format!("Invalid value: {namespace:?}: the DNS namespace cannot be in a tier"),
        );
    }

    if !errs.is_empty() {
        return Err(errs);
    }
    let mut policy = IsolationPolicy {
        name,
        mode,
        judge,
        tier_label,
        tiers,
        membership,
        pod_cidrs,
        service_cidrs,
        node_cidrs,
        baseline,
        flows,
    };
    if let Via::ClusterNetworkPolicy { priority, .. } = policy.baseline.via {
        match clusterbaseline::engine_policies(&policy, priority) {
            Ok(policies) => policy.baseline.via = Via::ClusterNetworkPolicy { priority, policies },
            Err(msgs) => {
                for m in msgs {
                    errs.push(
                        &bp.child("via"),
                        format!("Invalid value: the baseline cannot be written: {m}"),
                    );
                }
                return Err(errs);
            }
        }
    }
    Ok(policy)
}

fn flow_end(
    s: &str,
    path: &FieldPath,
    tiers: &[Tier],
    tier_names: &BTreeSet<&str>,
    errs: &mut Errors,
) -> Option<FlowEnd> {
    match s {
        "any" => return Some(FlowEnd::Any),
        "external" => return Some(FlowEnd::External),
        "tier:*" => return Some(FlowEnd::AnyTier),
        _ => {}
    }
    if let Some(t) = s.strip_prefix("tier:") {
        if tier_names.contains(t) {
            return tiers.iter().position(|x| x.name == t).map(FlowEnd::Tier);
        }
        errs.push(path, format!("Invalid value: {s:?}: no tier named {t:?}"));
        return None;
    }
    if let Some(n) = s.strip_prefix("namespace:") {
        let msgs = names::dns1123_label(n);
        if msgs.is_empty() {
            return Some(FlowEnd::Namespace(n.to_string()));
        }
        errs.extend_msgs(path, s, msgs);
        return None;
    }
    errs.push(
        path,
        format!("Invalid value: {s:?}: must be tier:NAME, tier:*, namespace:NAME, external or any"),
    );
    None
}
