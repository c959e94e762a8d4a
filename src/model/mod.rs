//! The model layer: every Kubernetes-shaped document tierguard reads is
//! converted here, once, one module per kind, into the engine's types. The
//! engine never sees a Kubernetes object; the webhook, the index, the
//! command line and the controller all convert through these modules.
//!
//! ```text
//!  text ──► documents (YAML/JSON splitter) ──► serde values
//!  Namespace           ──► namespace::convert      ──► engine::state::Namespace
//!  NetworkPolicy       ──► limits::check, networkpolicy::convert ──► engine::policy::Policy  (field-path errors)
//!  ClusterNetworkPolicy, (Baseline)AdminNetworkPolicy ──► clusterpolicy::convert ──► engine::cluster::ClusterPolicy
//!  IsolationPolicy doc ──► isolationpolicy::parse  ──► engine::tiers::IsolationPolicy
//!  engine::tiers::IsolationPolicy ──► baseline ──► the NetworkPolicies tierguard injects
//!                                 ──► clusterbaseline ──► its Admin-tier ClusterNetworkPolicies
//! ```
//!
//! A new policy kind (ClusterNetworkPolicy, Calico's) is one more module
//! here plus its semantics in the engine.

pub mod baseline;
pub mod calico;
pub mod clusterbaseline;
pub mod clusterpolicy;
pub mod documents;
pub mod isolationpolicy;
pub mod limits;
pub mod namespace;
pub mod networkpolicy;
