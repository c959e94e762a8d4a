//! tierguard makes Kubernetes network isolation automatic and impossible to
//! break by accident.
//!
//! An isolation policy (`policies/`) says which namespaces form tiers and
//! which flows between tiers, other namespaces and the outside world are
//! allowed. The [`engine`] computes, from namespaces and NetworkPolicies
//! alone, every forbidden flow a state allows for every pod that exists or
//! could exist, and which flows a change would open. The command line
//! ([`cli`]) exposes it offline as `check` and `query`.
//!
//! ```text
//!  manifests ──► world::World ──► engine::state::State ─┐
//!                                                       ├─► engine::isolation ─► findings
//!  policies/*.yaml ──► model::isolationpolicy ─► engine::tiers::IsolationPolicy ─┘
//!  query: engine::reach::evaluate(src, dst, port) ─► verdict + the rules that decided
//! ```

#![warn(missing_docs)]

pub mod admission;
pub mod certs;
pub mod cli;
pub mod controller;
pub mod engine;
pub mod index;
pub mod model;
pub mod report;
pub mod server;
pub mod telemetry;
pub mod tls;
pub mod world;
