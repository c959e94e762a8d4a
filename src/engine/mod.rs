//! The engine: pure, synchronous NetworkPolicy semantics. No kube client, no
//! async; the webhook and the command line call into it.
//!
//! ```text
//!  names ── selector ── policy ◄── ports, ipblock, intervals
//!               └── solve (satisfiability within a budget)
//!                          │
//!                        state (namespaces + policies, indexed)
//!                        /    \
//!                   reach      isolation ◄── tiers (the judged isolation policy)
//!          (one connection,    (every pod that could exist:
//!           concrete pods)      which forbidden flows are open)
//! ```

pub mod calico;
pub mod cluster;
pub mod field;
pub mod future;
pub mod intervals;
pub mod ipblock;
pub mod isolation;
pub mod names;
pub mod ordered;
pub mod policy;
pub mod ports;
pub mod reach;
pub mod selector;
pub mod solve;
pub mod state;
pub mod tiers;
