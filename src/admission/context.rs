//! What every handler needs: the isolation policy, the index, metrics and
//! the limits, shared by the router, the reviews and the outcome.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::pool::JudgePool;
use crate::engine::tiers::IsolationPolicy;
use crate::index::SharedIndex;
use crate::telemetry::Metrics;

/// Everything a handler needs.
pub struct Ctx {
    /// The isolation policy (its mode already overridden by `--mode`).
    pub policy: IsolationPolicy,
    /// The cluster index.
    pub index: SharedIndex,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Per-request deadline.
    pub deadline: Duration,
    /// Body size limit in bytes.
    pub max_body: usize,
    /// Users allowed to change or delete managed baseline policies (the
    /// guard's own service account, plus `--baseline-editors`).
    pub baseline_editors: BTreeSet<String>,
    /// Refuse pods in tier namespaces whose baseline is not in place yet.
    pub pod_guard: bool,
    /// The bounded pool for judgements that walk the cluster.
    pub pool: JudgePool,
}
