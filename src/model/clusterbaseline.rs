//! The baseline a namespace owner cannot override (`spec.baseline.via:
//! clusterNetworkPolicy`): Admin-tier ClusterNetworkPolicies that pass the
//! isolation policy's allowed flows to the NetworkPolicy tier and deny every
//! other flow of tier pods that a ClusterNetworkPolicy can name.
//!
//! ```text
//!  priority P    tierguard-baseline-ns-<n>         Pass: flows naming namespace n (pods)
//!  priority P+1  tierguard-baseline-<tier>         Pass: the tier's flows (pods), then Deny all pods
//!  priority P+2  tierguard-baseline-ns-<n>-hosts   Pass: n's flows to hosts (egress)
//!  priority P+3  tierguard-baseline-<tier>-hosts   Pass: the tier's flows to hosts, then Deny all hosts
//! ```
//!
//! A tier's policies select its namespaces by the tier label; a tier that
//! also names namespaces gets a second pair (`…-<tier>-by-name`) selecting
//! them by `kubernetes.io/metadata.name`. A `namespace:NAME` flow end gets the
//! `ns-` pair, selecting that namespace only while it is a tier namespace.
//! Pods are decided at P or P+1, before any `networks` rule (which matches
//! pod addresses too), so a flow to outside the cluster never passes a pod.
//!
//! What a ClusterNetworkPolicy cannot name stays with the NetworkPolicy
//! baseline: its ingress peers are pods only, so connections from hosts
//! outside the cluster are judged (and isolated) by NetworkPolicy alone.
//! Flows with the same ports share a rule; every object is checked by
//! [`super::clusterpolicy::convert`] when the isolation policy loads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Value, json};

use super::baseline::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use crate::engine::cluster::{Api, ClusterPolicy};
use crate::engine::field::FieldError;
use crate::engine::ports::{PortSet, Protocol};
use crate::engine::state::METADATA_NAME_LABEL;
use crate::engine::tiers::{FlowEnd, IsolationPolicy};

/// The prefix of every generated policy's name.
pub const PREFIX: &str = "tierguard-baseline";
/// The API version the policies are written in.
pub const API_VERSION: &str = "policy.networking.k8s.io/v1beta1";
/// The highest base priority: the four levels end at 1000.
pub const MAX_PRIORITY: i32 = 997;

/// One policy to write.
struct Target {
    name: String,
    priority: i32,
    subject: Value,
    ingress: Vec<Value>,
    egress: Vec<Value>,
}

/// The generated policies as API objects, in a stable order (empty when
/// the isolation policy has no flows and no tiers).
pub fn objects(policy: &IsolationPolicy, priority: i32) -> Vec<Value> {
    let mut pods = Vec::new();
    let mut hosts = Vec::new();
    for (n, subject) in named_ends(policy) {
        let is = |e: &FlowEnd| matches!(e, FlowEnd::Namespace(x) if *x == n);
        let name = format!("{PREFIX}-ns-{n}");
        pods.push(Target {
            name: name.clone(),
            priority,
            subject: subject.clone(),
            ingress: passes(policy, is, Side::Ingress),
            egress: passes(policy, is, Side::EgressPods),
        });
        hosts.push(Target {
            name: format!("{name}-hosts"),
            priority: priority + 2,
            subject,
            ingress: Vec::new(),
            egress: passes(policy, is, Side::EgressHosts),
        });
    }
    let mut tiers = Vec::new();
    let mut tier_hosts = Vec::new();
    for (i, tier) in policy.tiers.iter().enumerate() {
        let is = |e: &FlowEnd| matches!(e, FlowEnd::Tier(t) if *t == i) || covers_every_tier(e);
        let mut subjects = vec![(
            format!("{PREFIX}-{}", tier.name),
            json!({"matchLabels": {policy.tier_label.clone(): tier.name}}),
        )];
        if !tier.namespaces.is_empty() {
            subjects.push((
                format!("{PREFIX}-{}-by-name", tier.name),
                names_in(&tier.namespaces),
            ));
        }
        // The rules depend on the tier only: built once for its subjects.
        let mut ingress = passes(policy, is, Side::Ingress);
        ingress.push(rule("deny-other-pods", "Deny", "from", every_pod(), None));
        let mut egress_pods = passes(policy, is, Side::EgressPods);
        egress_pods.push(rule("deny-other-pods", "Deny", "to", every_pod(), None));
        let mut egress_hosts = passes(policy, is, Side::EgressHosts);
        egress_hosts.push(rule("deny-other-hosts", "Deny", "to", every_host(), None));
        for (name, subject) in subjects {
            tiers.push(Target {
                name: name.clone(),
                priority: priority + 1,
                subject: subject.clone(),
                ingress: ingress.clone(),
                egress: egress_pods.clone(),
            });
            tier_hosts.push(Target {
                name: format!("{name}-hosts"),
                priority: priority + 3,
                subject,
                ingress: Vec::new(),
                egress: egress_hosts.clone(),
            });
        }
    }
    pods.into_iter()
        .chain(tiers)
        .chain(hosts)
        .chain(tier_hosts)
        .filter(|t| !t.ingress.is_empty() || !t.egress.is_empty())
        .map(object)
        .collect()
}

/// The generated policies in the engine's form, or the errors of the first
/// one the API would refuse (too many rules for one policy, a tier name
/// that cannot name an object), each naming the object.
pub fn engine_policies(
    policy: &IsolationPolicy,
    priority: i32,
) -> Result<Vec<Arc<ClusterPolicy>>, Vec<String>> {
    let mut out = Vec::new();
    for obj in objects(policy, priority) {
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match super::clusterpolicy::convert(Api::ClusterNetworkPolicy, &obj) {
            Ok(p) => out.push(Arc::new(p)),
            Err(errs) => {
                return Err(errs
                    .iter()
                    .map(|e: &FieldError| format!("ClusterNetworkPolicy {name}: {e}"))
                    .collect());
            }
        }
    }
    Ok(out)
}

/// True when a ClusterNetworkPolicy object carries tierguard's managed-by
/// label.
pub fn is_managed(obj: &Value) -> bool {
    obj["metadata"]["labels"][MANAGED_BY_LABEL].as_str() == Some(MANAGED_BY_VALUE)
}

fn object(t: Target) -> Value {
    let mut spec = json!({
        "tier": "Admin",
        "priority": t.priority,
        "subject": {"namespaces": t.subject},
    });
    if !t.ingress.is_empty() {
        spec["ingress"] = Value::Array(t.ingress);
    }
    if !t.egress.is_empty() {
        spec["egress"] = Value::Array(t.egress);
    }
    json!({
        "apiVersion": API_VERSION,
        "kind": "ClusterNetworkPolicy",
        "metadata": {"name": t.name, "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE}},
        "spec": spec,
    })
}

/// The namespaces flow ends name, each with the subject that selects it
/// only while it is a tier namespace.
fn named_ends(policy: &IsolationPolicy) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for f in &policy.flows {
        for end in [&f.from, &f.to] {
            if let FlowEnd::Namespace(n) = end {
                let subject = if policy.tier_by_name(n).is_some() {
                    json!({"matchLabels": {METADATA_NAME_LABEL: n}})
                } else {
                    json!({
                        "matchLabels": {METADATA_NAME_LABEL: n},
                        "matchExpressions": [in_tiers(policy)],
                    })
                };
                out.insert(n.clone(), subject);
            }
        }
    }
    out
}

fn covers_every_tier(e: &FlowEnd) -> bool {
    matches!(e, FlowEnd::AnyTier | FlowEnd::Any)
}

fn in_tiers(policy: &IsolationPolicy) -> Value {
    let tiers: Vec<&str> = policy.tiers.iter().map(|t| t.name.as_str()).collect();
    json!({"key": policy.tier_label, "operator": "In", "values": tiers})
}

fn names_in<'a>(names: impl IntoIterator<Item = &'a String>) -> Value {
    let names: BTreeSet<&String> = names.into_iter().collect();
    json!({"matchExpressions": [{"key": METADATA_NAME_LABEL, "operator": "In", "values": names}]})
}

fn every_pod() -> Vec<Value> {
    vec![json!({"namespaces": {}})]
}

fn every_host() -> Vec<Value> {
    vec![json!({"networks": ["0.0.0.0/0", "::/0"]})]
}

/// Which rules [`passes`] writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    /// From the pods of the flows' sources.
    Ingress,
    /// To the pods of the flows' destinations.
    EgressPods,
    /// To hosts, for flows whose destination includes them.
    EgressHosts,
}

/// The Pass rules of the flows whose end on the subject's side `is` the
/// subject's, one per distinct port set.
fn passes(policy: &IsolationPolicy, is: impl Fn(&FlowEnd) -> bool, side: Side) -> Vec<Value> {
    let mut by_ports: BTreeMap<PortSet, BTreeMap<String, Value>> = BTreeMap::new();
    for f in &policy.flows {
        let (mine, other) = match side {
            Side::Ingress => (&f.to, &f.from),
            Side::EgressPods | Side::EgressHosts => (&f.from, &f.to),
        };
        if !is(mine) || f.ports.is_empty() {
            continue;
        }
        let peers = match side {
            Side::Ingress | Side::EgressPods => pod_peers(policy, other),
            Side::EgressHosts if matches!(other, FlowEnd::External | FlowEnd::Any) => every_host(),
            Side::EgressHosts => Vec::new(),
        };
        let entry = by_ports.entry(f.ports.clone()).or_default();
        for p in peers {
            entry.insert(p.to_string(), p);
        }
    }
    let key = if side == Side::Ingress { "from" } else { "to" };
    by_ports
        .into_iter()
        .filter(|(_, peers)| !peers.is_empty())
        .enumerate()
        .map(|(i, (ports, peers))| {
            let name = match side {
                Side::Ingress | Side::EgressPods => format!("allowed-pods-{i}"),
                Side::EgressHosts => format!("allowed-hosts-{i}"),
            };
            rule(
                &name,
                "Pass",
                key,
                peers.into_values().collect(),
                Some(&ports),
            )
        })
        .collect()
}

/// The peers that are the pods of a flow end (none for `external`).
fn pod_peers(policy: &IsolationPolicy, end: &FlowEnd) -> Vec<Value> {
    let tier_peers = |label: Value, names: &BTreeSet<String>| {
        let mut v = vec![json!({"namespaces": label})];
        if !names.is_empty() {
            v.push(json!({"namespaces": names_in(names)}));
        }
        v
    };
    match end {
        FlowEnd::Tier(i) => policy.tiers.get(*i).map_or_else(Vec::new, |t| {
            tier_peers(
                json!({"matchLabels": {policy.tier_label.clone(): t.name}}),
                &t.namespaces,
            )
        }),
        FlowEnd::AnyTier => {
            let named: BTreeSet<String> = policy
                .tiers
                .iter()
                .flat_map(|t| t.namespaces.iter().cloned())
                .collect();
            tier_peers(json!({"matchExpressions": [in_tiers(policy)]}), &named)
        }
        FlowEnd::Namespace(n) => {
            vec![json!({"namespaces": {"matchLabels": {METADATA_NAME_LABEL: n}}})]
        }
        FlowEnd::Any => every_pod(),
        FlowEnd::External => Vec::new(),
    }
}

fn rule(name: &str, action: &str, key: &str, peers: Vec<Value>, ports: Option<&PortSet>) -> Value {
    let mut r = json!({"name": name, "action": action, key: peers});
    if let Some(ports) = ports.filter(|p| **p != PortSet::all()) {
        r["protocols"] = Value::Array(protocols(ports));
    }
    r
}

/// A port set as ClusterNetworkPolicy `protocols` entries.
fn protocols(ports: &PortSet) -> Vec<Value> {
    let mut out = Vec::new();
    for proto in Protocol::ALL {
        let key = proto.as_str().to_ascii_lowercase();
        for &(lo, hi) in ports.ports(proto).spans() {
            let dest = if lo == hi {
                json!({"number": lo})
            } else {
                json!({"range": {"start": lo, "end": hi}})
            };
            out.push(json!({key.clone(): {"destinationPort": dest}}));
        }
    }
    out
}

#[cfg(test)]
mod tests;
