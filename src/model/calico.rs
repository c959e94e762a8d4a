//! Calico's own policy language (`projectcalico.org/v3`, stored as
//! `crd.projectcalico.org/v1`).
//!
//! Read so far: its selector language ([`selector`]: the parser,
//! evaluation on labels and the conversion into the engine's selectors),
//! and of NetworkPolicy and GlobalNetworkPolicy what the admission guard
//! needs ([`policy`]: the endpoints a policy applies to, and whether a rule
//! can let traffic through). Their rules, tiers and network sets are not
//! judged yet (docs/calico.md says what is and is not done).

pub mod policy;
pub mod selector;
