//! The forbidden flows the cluster allows now, recounted soon after each
//! change of the index or of the isolation policy, and every [`EVERY`]
//! besides: the `tierguard_violations_current` gauge, the count an
//! IsolationPolicy's status shows, and the report the leader publishes
//! (`live::reports`).
//!
//! ```text
//!  every POLL: index changed and then quiet for a POLL (or changing for
//!  MAX_DELAY), or Live changed, or EVERY passed ─► index synced?
//!     ─► snapshot (cheap clone)
//!     ─► Checker::report on the blocking pool (the judgement `check` makes)
//!     ─► gauge {policy, from, to} (series for flows gone are removed)
//!        and its total {policy} (0 included: what alerts read)
//!     ─► Census::latest, Census::subscribe (the whole report)
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use tokio::sync::watch;
use tracing::warn;

use super::Live;
use crate::engine::isolation::{Checker, Report};
use crate::engine::tiers::IsolationPolicy;
use crate::index::SharedIndex;
use crate::report::metric_class;
use crate::telemetry::{Metrics, labels};

/// How often the count is made when nothing changes.
pub const EVERY: Duration = Duration::from_secs(60);
/// How often the index is looked at for changes; a change is counted once
/// the index has been quiet this long.
pub const POLL: Duration = Duration::from_secs(1);
/// The longest a change waits while the index keeps changing.
pub const MAX_DELAY: Duration = Duration::from_secs(5);

/// One count: the report it was made from.
#[derive(Debug)]
pub struct Counted {
    /// The isolation policy judged.
    pub policy: Arc<IsolationPolicy>,
    /// The tier namespaces that exist, in name order.
    pub tier_namespaces: Vec<String>,
    /// Everything wrong with the state.
    pub report: Report,
    /// When the count was made.
    pub at: SystemTime,
}

/// The latest count.
#[derive(Debug)]
pub struct Census {
    latest: AtomicI64,
    counted: watch::Sender<Option<Arc<Counted>>>,
}

impl Default for Census {
    fn default() -> Self {
        Self {
            latest: AtomicI64::new(-1),
            counted: watch::Sender::new(None),
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

    /// The latest count's report, as it changes: None while there is none
    /// that holds (not counted yet, the index unsynced, a count failed).
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Counted>>> {
        self.counted.subscribe()
    }

    fn lost(&self) {
        if self.latest.load(Ordering::Relaxed) != -1 {
            self.latest.store(UNKNOWN, Ordering::Relaxed);
        }
        self.counted.send_if_modified(|c| c.take().is_some());
    }
}

/// When to count: soon after the index changes (once it has been quiet for
/// a [`POLL`], or after [`MAX_DELAY`] of steady change), at once after the
/// policy changes, and every [`EVERY`] regardless. What "the index" is
/// comes as a key `K` that differs whenever a count could differ: `run`
/// passes the change number and whether the index is synced (it can sync,
/// or lose its sync, with no change to the state).
#[derive(Debug)]
struct Schedule<K> {
    /// The index's key at the latest count.
    counted: Option<K>,
    /// The first poll that saw an uncounted change, and the key it saw at
    /// the latest poll.
    pending: Option<(Instant, K)>,
    last_count: Option<Instant>,
}

impl<K: Copy + PartialEq> Schedule<K> {
    fn new() -> Self {
        Self {
            counted: None,
            pending: None,
            last_count: None,
        }
    }

    /// Whether to count now, given the index's key and whether the policy
    /// changed since the last poll. A yes is taken as the count being made.
    fn due(&mut self, now: Instant, changes: K, policy_changed: bool) -> bool {
        let periodic = self
            .last_count
            .is_none_or(|t| now.saturating_duration_since(t) >= EVERY);
        let index = match (self.counted, self.pending) {
            (Some(c), _) if c == changes => {
                self.pending = None;
                false
            }
            (_, None) => {
                self.pending = Some((now, changes));
                false
            }
            (_, Some((since, seen))) => {
                let quiet = seen == changes;
                self.pending = Some((since, changes));
                quiet || now.saturating_duration_since(since) >= MAX_DELAY
            }
        };
        let due = periodic || policy_changed || index;
        if due {
            self.counted = Some(changes);
            self.pending = None;
            self.last_count = Some(now);
        }
        due
    }
}

/// The gauge series the census has set: those it must remove when the
/// flows they count are gone, the policy is renamed, or a count no longer
/// holds.
#[derive(Debug, Default)]
struct Series {
    /// `tierguard_violations_current` {policy, from, to}.
    flows: Vec<Vec<(String, String)>>,
    /// `tierguard_violations_present` {policy}.
    total: Option<Vec<(String, String)>>,
}

impl Series {
    /// Sets the gauges to a count of `policy`'s flows by (from, to) class;
    /// returns their total.
    fn record(
        &mut self,
        metrics: &Metrics,
        policy: &str,
        by: BTreeMap<(String, String), i64>,
    ) -> i64 {
        let mut total = 0i64;
        let mut now = Vec::with_capacity(by.len());
        for ((from, to), n) in by {
            total = total.saturating_add(n);
            let l = labels(&[("policy", policy), ("from", &from), ("to", &to)]);
            metrics.violations_current.get_or_create(&l).set(n);
            now.push(l);
        }
        // Flows gone since the last count: their series go too.
        for gone in self.flows.iter().filter(|l| !now.contains(l)) {
            metrics.violations_current.remove(gone);
        }
        self.flows = now;
        let l = labels(&[("policy", policy)]);
        metrics.violations_present.get_or_create(&l).set(total);
        // A renamed policy: its old total goes.
        if let Some(old) = self.total.replace(l.clone())
            && old != l
        {
            metrics.violations_present.remove(&old);
        }
        total
    }

    /// Removes the total's series and every per-flow series.
    fn forget(&mut self, metrics: &Metrics) {
        if let Some(p) = self.total.take() {
            metrics.violations_present.remove(&p);
        }
        for l in self.flows.drain(..) {
            metrics.violations_current.remove(&l);
        }
    }
}

/// Counts for as long as the process runs.
pub async fn run(live: Arc<Live>, index: SharedIndex, metrics: Arc<Metrics>, census: Arc<Census>) {
    let mut changes = Box::pin(live.changes());
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut series = Series::default();
    let mut schedule = Schedule::new();
    loop {
        let policy_changed = tokio::select! {
            _ = tick.tick() => false,
            c = changes.next() => if c.is_none() { return } else { true },
        };
        let state = {
            let index = index.read().unwrap_or_else(|e| e.into_inner());
            let key = (index.changes(), index.is_synced());
            if !schedule.due(Instant::now(), key, policy_changed) {
                continue;
            }
            index.is_synced().then(|| index.state().clone())
        };
        let Some(state) = state else {
            // Unsynced (or resyncing): nothing counted before still holds.
            series.forget(&metrics);
            census.lost();
            continue;
        };
        let policy = live.get();
        let counted = tokio::task::spawn_blocking(move || count(policy, &state)).await;
        match counted {
            Ok(Ok((counted, by))) => {
                let total = series.record(&metrics, &counted.policy.name, by);
                metrics.census_counts.inc();
                census.latest.store(total, Ordering::Relaxed);
                census.counted.send_replace(Some(Arc::new(counted)));
            }
            Ok(Err(e)) => {
                warn!(error = %e, "cannot count the current violations");
                failed(&metrics, &census, &mut series);
            }
            Err(e) => {
                warn!(error = %e, "counting the current violations failed");
                failed(&metrics, &census, &mut series);
            }
        }
    }
}

/// One count: the report, and its flows by (from, to) class.
type Count = (Counted, BTreeMap<(String, String), i64>);

/// Judges `state` under `policy`.
fn count(
    policy: Arc<IsolationPolicy>,
    state: &crate::engine::state::State,
) -> Result<Count, crate::engine::solve::Exhausted> {
    let checker = Checker::new(&policy, state);
    let report = checker.report()?;
    let tier_namespaces = checker
        .tier_namespaces()
        .iter()
        .map(|n| n.name.clone())
        .collect();
    let mut by: BTreeMap<(String, String), i64> = BTreeMap::new();
    for b in &report.flows {
        *by.entry((metric_class(&b.from), metric_class(&b.to)))
            .or_default() += 1;
    }
    let counted = Counted {
        policy: policy.clone(),
        tier_namespaces,
        report,
        at: SystemTime::now(),
    };
    Ok((counted, by))
}

/// A count could not be made: no series says anything stale.
fn failed(metrics: &Metrics, census: &Census, series: &mut Series) {
    metrics.census_failures.inc();
    series.forget(metrics);
    census.latest.store(UNKNOWN, Ordering::Relaxed);
    census.counted.send_if_modified(|c| c.take().is_some());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_poll_counts_then_a_change_waits_for_a_quiet_poll() {
        let t0 = Instant::now();
        let mut s = Schedule::new();
        assert!(s.due(t0, 7, false), "nothing counted yet");
        assert!(!s.due(t0 + POLL, 7, false), "nothing changed");
        assert!(!s.due(t0 + 2 * POLL, 9, false), "changed: wait a poll");
        assert!(s.due(t0 + 3 * POLL, 9, false), "quiet for a poll");
        assert!(!s.due(t0 + 4 * POLL, 9, false), "counted already");
    }

    #[test]
    fn a_steady_stream_of_changes_is_counted_after_the_longest_delay() {
        let t0 = Instant::now();
        let mut s = Schedule::new();
        assert!(s.due(t0, 0, false));
        let mut n = 0;
        let mut t = t0;
        let mut counted_at = None;
        for _ in 0..20 {
            n += 1;
            t += POLL;
            if s.due(t, n, false) {
                counted_at = Some(t);
                break;
            }
        }
        let at = counted_at.expect("counted while the index kept changing");
        let waited = at - (t0 + POLL);
        assert!(
            waited >= MAX_DELAY && waited <= MAX_DELAY + POLL,
            "{waited:?}"
        );
    }

    #[test]
    fn a_policy_change_counts_at_once_and_time_alone_counts_every_period() {
        let t0 = Instant::now();
        let mut s = Schedule::new();
        assert!(s.due(t0, 0, false));
        assert!(s.due(t0 + POLL, 0, true), "the policy changed");
        assert!(!s.due(t0 + 2 * POLL, 0, false));
        assert!(!s.due(t0 + POLL + EVERY - POLL, 0, false));
        assert!(s.due(t0 + POLL + EVERY, 0, false), "the period passed");
    }

    #[test]
    fn syncing_or_losing_the_sync_without_a_change_is_counted_soon() {
        let t0 = Instant::now();
        let mut s = Schedule::new();
        assert!(s.due(t0, (5, false), false), "the first poll (unsynced)");
        assert!(!s.due(t0 + POLL, (5, true), false), "synced: wait a poll");
        assert!(
            s.due(t0 + 2 * POLL, (5, true), false),
            "counted within 2 polls, not EVERY"
        );
        assert!(!s.due(t0 + 3 * POLL, (5, false), false));
        assert!(
            s.due(t0 + 4 * POLL, (5, false), false),
            "the lost sync is seen"
        );
    }

    #[test]
    fn a_count_made_for_another_reason_covers_a_pending_change() {
        let t0 = Instant::now();
        let mut s = Schedule::new();
        assert!(s.due(t0, 0, false));
        assert!(!s.due(t0 + POLL, 3, false), "pending");
        assert!(s.due(t0 + 2 * POLL, 4, true), "the policy changed");
        assert!(
            !s.due(t0 + 3 * POLL, 4, false),
            "the change was counted with it"
        );
    }

    fn by(flows: &[(&str, &str, i64)]) -> BTreeMap<(String, String), i64> {
        flows
            .iter()
            .map(|(f, t, n)| ((f.to_string(), t.to_string()), *n))
            .collect()
    }

    /// The violation gauges' sample lines, as /metrics shows them.
    fn gauges(m: &Metrics) -> Vec<String> {
        m.render()
            .expect("renders")
            .lines()
            .filter(|l| {
                l.starts_with("tierguard_violations_current{")
                    || l.starts_with("tierguard_violations_present{")
            })
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn series_follow_the_counts_and_go_when_a_count_no_longer_holds() {
        let m = Metrics::new();
        let mut s = Series::default();
        let total = s.record(
            &m,
            "p",
            by(&[("tier:a", "tier:b", 2), ("other", "tier:b", 1)]),
        );
        assert_eq!(total, 3);
        let g = gauges(&m);
        assert_eq!(g.len(), 3, "{g:?}");
        assert!(
            g.iter()
                .any(|l| l.contains("from=\"tier:a\"") && l.ends_with(" 2")),
            "{g:?}"
        );
        assert!(
            g.contains(&"tierguard_violations_present{policy=\"p\"} 3".to_string()),
            "{g:?}"
        );

        // A flow gone: its series goes; the total stays, now 1.
        assert_eq!(s.record(&m, "p", by(&[("other", "tier:b", 1)])), 1);
        let g = gauges(&m);
        assert!(!g.iter().any(|l| l.contains("from=\"tier:a\"")), "{g:?}");
        assert!(
            g.contains(&"tierguard_violations_present{policy=\"p\"} 1".to_string()),
            "{g:?}"
        );

        // Clean: no per-flow series, the total at 0.
        assert_eq!(s.record(&m, "p", by(&[])), 0);
        assert_eq!(gauges(&m), ["tierguard_violations_present{policy=\"p\"} 0"]);

        // Renamed: the old total goes.
        s.record(&m, "q", by(&[("external", "tier:b", 4)]));
        let g = gauges(&m);
        assert!(!g.iter().any(|l| l.contains("policy=\"p\"")), "{g:?}");
        assert_eq!(g.len(), 2, "{g:?}");

        // Unsynced or failed: nothing says anything stale.
        s.forget(&m);
        assert!(gauges(&m).is_empty(), "{:?}", gauges(&m));
        let census = Census::default();
        s.record(&m, "q", by(&[("external", "tier:b", 4)]));
        census.latest.store(4, Ordering::Relaxed);
        failed(&m, &census, &mut s);
        assert!(gauges(&m).is_empty());
        assert!(census.is_stale());
        assert_eq!(census.latest(), None);
        assert!(
            m.render()
                .expect("renders")
                .contains("tierguard_census_failures_total 1")
        );
    }
}
