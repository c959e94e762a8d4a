//! The forbidden flows the cluster allows now, recounted every
//! [`EVERY`] and after each change of the isolation policy: the
//! `tierguard_violations_current` gauge, and the count an IsolationPolicy's
//! status shows.
//!
//! ```text
//!  every EVERY, or Live changed ─► index synced? ─► snapshot (cheap clone)
//!     ─► Checker::report on the blocking pool (the judgement `check` makes)
//!     ─► gauge {policy, from, to} (series for flows gone are removed)
//!        and its total {policy} (0 included: what alerts read)
//!     ─► Census::latest
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use tracing::warn;

use super::Live;
use crate::engine::isolation::Checker;
use crate::index::SharedIndex;
use crate::report::metric_class;
use crate::telemetry::{Metrics, labels};

/// How often the count is made without a change.
pub const EVERY: Duration = Duration::from_secs(10);

/// The latest count.
#[derive(Debug)]
pub struct Census {
    latest: AtomicI64,
}

impl Default for Census {
    fn default() -> Self {
        Self {
            latest: AtomicI64::new(-1),
        }
    }
}

/// `Census::latest` when the latest count could not be made, or the index
/// is no longer synced (-1 is "not counted yet").
const UNKNOWN: i64 = -2;

impl Census {
    /// The forbidden flows the cluster allowed at the latest count; None
    /// before the first (or when the latest could not be made).
    pub fn latest(&self) -> Option<i64> {
        let n = self.latest.load(Ordering::Relaxed);
        (n >= 0).then_some(n)
    }

    /// True when the latest count could not be made (its judgement failed)
    /// or a count made before no longer holds (the index lost its sync).
    pub fn is_stale(&self) -> bool {
        self.latest.load(Ordering::Relaxed) == UNKNOWN
    }

    fn lost(&self) {
        if self.latest.load(Ordering::Relaxed) != -1 {
            self.latest.store(UNKNOWN, Ordering::Relaxed);
        }
    }
}

/// Counts for as long as the process runs.
pub async fn run(live: Arc<Live>, index: SharedIndex, metrics: Arc<Metrics>, census: Arc<Census>) {
    let mut changes = Box::pin(live.changes());
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut series: Vec<Vec<(String, String)>> = Vec::new();
    let mut present: Option<Vec<(String, String)>> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            c = changes.next() => if c.is_none() { return },
        }
        let state = {
            let index = index.read().unwrap_or_else(|e| e.into_inner());
            index.is_synced().then(|| index.state().clone())
        };
        let Some(state) = state else {
            // Unsynced (or resyncing): nothing counted before still holds.
            forget(&metrics, present.take(), &mut series);
            census.lost();
            continue;
        };
        let policy = live.get();
        let counted = tokio::task::spawn_blocking(move || {
            let report = Checker::new(&policy, &state).report()?;
            let mut by: BTreeMap<(String, String), i64> = BTreeMap::new();
            for b in &report.flows {
                *by.entry((metric_class(&b.from), metric_class(&b.to)))
                    .or_default() += 1;
            }
            Ok::<_, crate::engine::solve::Exhausted>((policy.name.clone(), by))
        })
        .await;
        match counted {
            Ok(Ok((policy, by))) => {
                let mut total = 0i64;
                let mut now = Vec::with_capacity(by.len());
                for ((from, to), n) in by {
                    total = total.saturating_add(n);
                    let l = labels(&[("policy", &policy), ("from", &from), ("to", &to)]);
                    metrics.violations_current.get_or_create(&l).set(n);
                    now.push(l);
                }
                // Flows gone since the last count: their series go too.
                for gone in series.iter().filter(|l| !now.contains(l)) {
                    metrics.violations_current.remove(gone);
                }
                series = now;
                let l = labels(&[("policy", &policy)]);
                metrics.violations_present.get_or_create(&l).set(total);
                // A renamed policy: its old total goes.
                if let Some(old) = present.replace(l.clone())
                    && old != l
                {
                    metrics.violations_present.remove(&old);
                }
                census.latest.store(total, Ordering::Relaxed);
            }
            Ok(Err(e)) => {
                warn!(error = %e, "cannot count the current violations");
                failed(&metrics, &census, present.take(), &mut series);
            }
            Err(e) => {
                warn!(error = %e, "counting the current violations failed");
                failed(&metrics, &census, present.take(), &mut series);
            }
        }
    }
}

/// A count could not be made: no series says anything stale.
fn failed(
    metrics: &Metrics,
    census: &Census,
    present: Option<Vec<(String, String)>>,
    series: &mut Vec<Vec<(String, String)>>,
) {
    metrics.census_failures.inc();
    forget(metrics, present, series);
    census.latest.store(UNKNOWN, Ordering::Relaxed);
}

/// Removes the total's series and every per-flow series.
fn forget(
    metrics: &Metrics,
    present: Option<Vec<(String, String)>>,
    series: &mut Vec<Vec<(String, String)>>,
) {
    if let Some(p) = present {
        metrics.violations_present.remove(&p);
    }
    for l in series.drain(..) {
        metrics.violations_current.remove(&l);
    }
}
