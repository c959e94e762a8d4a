//! The `IsolationPolicy` object's schema: the spec as written (read by
//! [`super::parse`] and [`super::from_object`], which validate it) and the
//! status `serve` writes. kube's `CustomResource` derive makes the CRD
//! (`tierguard crd`) from these types.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An isolation policy: tiers of namespaces and the flows allowed into, out
/// of and between them; every other connection that touches a tier
/// namespace is forbidden. Validated by tierguard (`tierguard check`, and
/// its admission webhook for IsolationPolicy objects) with field paths;
/// docs/isolation-policy.md documents every field.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "tierguard.io",
    version = "v1alpha1",
    kind = "IsolationPolicy",
    root = "IsolationPolicyObject",
    status = "IsolationPolicyStatus",
    shortname = "isop",
    category = "tierguard",
    doc = "tierguard's isolation policy: tiers of namespaces and the flows allowed between them",
    label("app.kubernetes.io/name", "tierguard"),
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".status.mode"}"#,
    printcolumn = r#"{"name":"Tiers","type":"string","jsonPath":".status.tierNames"}"#,
    printcolumn = r#"{"name":"Violations","type":"integer","jsonPath":".status.violations"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IsolationPolicySpec {
    /// `enforce` (default) refuses a change that opens a forbidden flow;
    /// `audit` admits it with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `walls` (default): each tier's ingress and egress must hold on their
    /// own; `effective`: judge end-to-end connectivity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<String>,
    /// The namespace label that joins a namespace to a tier (default
    /// `tierguard.io/tier`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier_label: Option<String>,
    /// The tiers.
    #[serde(default)]
    pub tiers: Vec<TierSpec>,
    /// Who may join namespaces to tiers and change tier labels.
    #[serde(default)]
    pub membership: MembershipSpec,
    /// The cluster's address ranges.
    #[serde(default)]
    pub cluster: ClusterSpec,
    /// The policies tierguard keeps in every tier namespace.
    #[serde(default)]
    pub baseline: BaselineSpec,
    /// The allowed flows.
    #[serde(default)]
    pub flows: Vec<FlowSpec>,
}

/// One tier.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TierSpec {
    /// The tier's name (a label value).
    pub name: String,
    /// Namespaces in the tier by name (others join by the tier label).
    #[serde(default)]
    pub namespaces: Vec<String>,
}

/// Who may change tier membership.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MembershipSpec {
    /// Groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Users.
    #[serde(default)]
    pub users: Vec<String>,
    /// Service accounts, as NAMESPACE/NAME.
    #[serde(default)]
    pub service_accounts: Vec<String>,
}

/// The cluster's address ranges, to tell cluster peers from external ones.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// Pod CIDRs.
    #[serde(default, rename = "podCIDRs")]
    pub pod_cidrs: Vec<String>,
    /// Service CIDRs.
    #[serde(default, rename = "serviceCIDRs")]
    pub service_cidrs: Vec<String>,
    /// Node CIDRs.
    #[serde(default, rename = "nodeCIDRs")]
    pub node_cidrs: Vec<String>,
}

/// The baseline tierguard keeps in every tier namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BaselineSpec {
    /// Keep a default-deny policy (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_deny: Option<bool>,
    /// Its name (default `tierguard-default-deny`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_deny_name: Option<String>,
    /// The DNS egress policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsSpec>,
    /// `networkPolicy` (default) or `clusterNetworkPolicy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// The Admin-tier priority, with `via: clusterNetworkPolicy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
}

/// Where DNS egress goes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DnsSpec {
    /// `cluster-dns`, `any` or `none`.
    pub to: String,
    /// The DNS policy's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The DNS namespace (default kube-system).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The DNS pods' labels (default k8s-app=kube-dns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_labels: Option<BTreeMap<String, String>>,
}

/// One allowed flow.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowSpec {
    /// `tier:NAME`, `tier:*`, `namespace:NAME`, `external` or `any`.
    pub from: String,
    /// The same forms as `from`.
    pub to: String,
    /// PROTOCOL/PORT or PROTOCOL/FIRST-LAST; none: every port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<String>>,
    /// What the flow is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// What tierguard observed of an IsolationPolicy object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IsolationPolicyStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The generation in force (the last valid one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_generation: Option<i64>,
    /// `Accepted` (the spec is valid) and `Ready` (this generation is in force).
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The spec's mode (`serve --mode` may override it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The tiers of the generation in force, comma-separated (a printer column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier_names: Option<String>,
    /// The namespaces in each tier now, by name or label.
    #[serde(default)]
    pub tiers: Vec<TierStatus>,
    /// The forbidden flows the cluster allows now, as `tierguard check`
    /// counts them (under the generation in force).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violations: Option<i64>,
}

/// A condition, as in metav1.Condition.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Accepted` or `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase reason.
    pub reason: String,
    /// What happened, for people.
    pub message: String,
    /// The generation the condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
}

/// The namespaces of one tier.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct TierStatus {
    /// The tier.
    pub name: String,
    /// Its namespaces now.
    #[serde(default)]
    pub namespaces: Vec<String>,
}
