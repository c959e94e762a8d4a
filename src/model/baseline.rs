//! The NetworkPolicies injected into every tier namespace.
//!
//! ```text
//!   <defaultDenyName>: podSelector {}, policyTypes [Ingress, Egress], no rules
//!   <dns.name>:        podSelector {}, policyTypes [Egress],
//!                      egress to the DNS pods (or anywhere) on UDP/53 and TCP/53
//! ```
//!
//! Generated policies select namespaces by `kubernetes.io/metadata.name`,
//! which the API server sets and nobody can change.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1 as netv1;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::engine::state::METADATA_NAME_LABEL;
use crate::engine::tiers::{Dns, IsolationPolicy};

/// Label marking a policy as managed by tierguard.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGED_BY_VALUE: &str = "tierguard";

/// True when a NetworkPolicy carries tierguard's managed-by label.
pub fn is_managed(np: &netv1::NetworkPolicy) -> bool {
    np.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .is_some_and(|v| v == MANAGED_BY_VALUE)
}

fn meta(name: &str, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        labels: Some(BTreeMap::from([(
            MANAGED_BY_LABEL.to_string(),
            MANAGED_BY_VALUE.to_string(),
        )])),
        ..ObjectMeta::default()
    }
}

fn dns_port(protocol: &str) -> netv1::NetworkPolicyPort {
    netv1::NetworkPolicyPort {
        protocol: Some(protocol.to_string()),
        port: Some(IntOrString::Int(53)),
        end_port: None,
    }
}

/// The baseline policies for one tier namespace, in a stable order.
pub fn baseline_policies(policy: &IsolationPolicy, namespace: &str) -> Vec<netv1::NetworkPolicy> {
    let mut out = Vec::new();
    let b = &policy.baseline;
    if b.default_deny {
        out.push(netv1::NetworkPolicy {
            metadata: meta(&b.default_deny_name, namespace),
            spec: Some(netv1::NetworkPolicySpec {
                pod_selector: Some(LabelSelector::default()),
                policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
                ..Default::default()
            }),
        });
    }
    let to = match &b.dns {
        Dns::None => return out,
        Dns::Anywhere => None,
        Dns::ClusterDns {
            namespace: dns_ns,
            pod_labels,
        } => Some(vec![netv1::NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    METADATA_NAME_LABEL.to_string(),
                    dns_ns.clone(),
                )])),
                match_expressions: None,
            }),
            pod_selector: Some(LabelSelector {
                match_labels: Some(pod_labels.clone()),
                match_expressions: None,
            }),
            ip_block: None,
        }]),
    };
    out.push(netv1::NetworkPolicy {
        metadata: meta(&b.dns_name, namespace),
        spec: Some(netv1::NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Egress".into()]),
            egress: Some(vec![netv1::NetworkPolicyEgressRule {
                to,
                ports: Some(vec![dns_port("UDP"), dns_port("TCP")]),
            }]),
            ingress: None,
        }),
    });
    out
}

/// The baseline of `namespace` in the engine's form, as the isolation check
/// assumes it when a namespace joins a tier.
pub fn engine_policies(
    policy: &IsolationPolicy,
    namespace: &str,
) -> Vec<std::sync::Arc<crate::engine::policy::Policy>> {
    baseline_policies(policy, namespace)
        .iter()
        .filter_map(|np| super::networkpolicy::convert(np, namespace).ok())
        .map(std::sync::Arc::new)
        .collect()
}
