//! What every handler needs: the isolation policy, the index, metrics and
//! the limits, shared by the router, the reviews and the outcome.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::pool::JudgePool;
use crate::engine::tiers::IsolationPolicy;
use crate::index::SharedIndex;
use crate::live::Live;
use crate::telemetry::Metrics;

/// Everything a handler needs.
pub struct Ctx {
    /// The isolation policy in force (its mode already overridden by
    /// `--mode`); read it with [`Ctx::policy`].
    pub policy: Arc<Live>,
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
    /// Request bodies held at once, in KiB (see [`BodyBudget`]).
    pub bodies: BodyBudget,
}

impl Ctx {
    /// The isolation policy in force now: take it once per request.
    pub fn policy(&self) -> Arc<IsolationPolicy> {
        self.policy.get()
    }
}

/// A bound on the request bodies held in memory at once, summed over
/// requests: each body takes its size (in KiB, beyond its first 4 KiB) from
/// the budget as it arrives and gives it back when its response is written.
/// A body that would exceed it waits, within its request's deadline, so a
/// flood of large requests costs at most the budget (plus what each parse
/// adds, see docs/limits.md), never the flood's sum.
#[derive(Clone, Debug)]
pub struct BodyBudget {
    sem: std::sync::Arc<tokio::sync::Semaphore>,
    kib: u32,
}

impl BodyBudget {
    /// A budget of `bytes` (at least `min_bytes`: one body of the largest
    /// size must always fit).
    pub fn new(bytes: usize, min_bytes: usize) -> Self {
        let kib = u32::try_from(bytes.max(min_bytes).div_ceil(1024))
            .unwrap_or(u32::MAX)
            .min(u32::try_from(tokio::sync::Semaphore::MAX_PERMITS).unwrap_or(u32::MAX));
        Self {
            sem: std::sync::Arc::new(tokio::sync::Semaphore::new(kib as usize)),
            kib,
        }
    }

    /// The budget in KiB.
    pub fn kib(&self) -> u32 {
        self.kib
    }

    /// KiB free now.
    pub fn available_kib(&self) -> usize {
        self.sem.available_permits()
    }

    /// Takes `kib` more, waiting while the budget is spent; adds it to `held`.
    pub async fn take(&self, kib: u32, held: &mut Option<tokio::sync::OwnedSemaphorePermit>) {
        if kib == 0 {
            return;
        }
        let Ok(p) = self.sem.clone().acquire_many_owned(kib.min(self.kib)).await else {
            return; // never closed
        };
        match held {
            Some(h) => h.merge(p),
            None => *held = Some(p),
        }
    }
}
