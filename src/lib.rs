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
//!  manifests, AdmissionReviews, watches          policies/*.yaml
//!        │ Kubernetes objects                          │
//!        ▼                                             ▼
//!  model/  one converter per kind ──────────► engine::tiers::IsolationPolicy
//!        │ engine types (Namespace, Policy)            │
//!        ▼                                             │
//!  engine::state::State (persistent maps; index/ keeps the live one)
//!        │                                             │
//!        ├─► engine::reach     one connection ─► verdict + deciding rules (query)
//!        └─► engine::isolation every present and future pod ─► Breach values
//!                                      │ (and what a change costs: in place or pool)
//!                                      ▼
//!  report/  the only writer of text: check text/JSON, kubectl messages,
//!           warnings, audit annotations, grouped by cause
//!
//!  admission/ request ─► validate ─► outcome ─► AdmissionResponse + metrics
//!  server (HTTPS, connection limits, drain) and admin (/healthz, /readyz, /metrics)
//!  controller/ baseline injection under a Lease; cli/ the commands
//! ```
//!
//! Dependencies point one way: `engine` imports nothing else of the crate;
//! `model` and `report` import only `engine`; the edges (`admission`,
//! `index`, `controller`, `cli`, `world`) use all three; `server` and `admin`
//! know nothing of admission beyond the routers they serve.

#![warn(missing_docs)]

pub mod admin;
pub mod admission;
pub mod certs;
pub mod cli;
pub mod controller;
pub mod engine;
pub mod index;
pub mod live;
pub mod model;
pub mod report;
pub mod server;
pub mod telemetry;
pub mod tls;
pub mod world;
