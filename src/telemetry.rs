//! Logs (plain or JSON, through `tracing`) and Prometheus metrics.

use std::sync::atomic::AtomicU64;

use anyhow::{Result, anyhow};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Plain,
    /// One JSON object per line.
    Json,
}

/// Installs the global tracing subscriber (`RUST_LOG` filters, default
/// `info`). Calling it twice is harmless.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
}

type Labels = Vec<(String, String)>;

/// Every metric tierguard exports.
pub struct Metrics {
    registry: Registry,
    /// Admission requests by kind, operation and verdict.
    pub requests: Family<Labels, Counter>,
    /// Forbidden flows found, by source and destination class and mode.
    pub violations: Family<Labels, Counter>,
    /// Forbidden flows the cluster allows now, by isolation policy, source
    /// and destination class (recounted every few seconds; no series while
    /// there are none).
    pub violations_current: Family<Labels, Gauge>,
    /// The total of `violations_current` by isolation policy, 0 included:
    /// one series per policy from its first count on (the per-flow family
    /// has none while the cluster is clean, so alerts read this one).
    pub violations_present: Family<Labels, Gauge>,
    /// Counts of the current violations that could not be made (the
    /// judgement ran out of its budget, or its task failed); while they
    /// fail, or while the index is not synced, neither violations gauge has
    /// series.
    pub census_failures: Counter,
    /// Counts of the current violations made (each after a change, or
    /// periodically).
    pub census_counts: Counter,
    /// Reports the leader wrote, by kind (Report, ClusterReport) and
    /// operation (apply, delete); unchanged reports are not written.
    pub report_writes: Family<Labels, Counter>,
    /// Report writes (or the list of existing reports) that failed; they
    /// are retried.
    pub report_failures: Counter,
    /// Time to judge one admission request, in seconds.
    pub latency: Histogram,
    /// 1 when the index has synced namespaces and policies.
    pub index_synced: Gauge,
    /// Objects in the index, by kind.
    pub index_objects: Family<Labels, Gauge>,
    /// Objects the index could not read (invalid by tierguard's validation), by kind.
    pub index_rejected: Family<Labels, Counter>,
    /// Lists a watch made again after it had synced (kube's watcher relists
    /// after `410 Gone`: it missed events), by kind; the index is not synced
    /// until the list is applied.
    pub index_relists: Family<Labels, Counter>,
    /// Stored objects tierguard cannot read now, by kind (changes in their
    /// namespace are "cannot judge").
    pub index_unreadable: Family<Labels, Gauge>,
    /// 1 while a watch has been failing past `--index-stale-after`.
    pub index_stale: Gauge,
    /// The serving certificate's expiry, as a Unix timestamp.
    pub cert_expiry: Gauge<f64, AtomicU64>,
    /// Certificate reloads, by result.
    pub cert_reloads: Family<Labels, Counter>,
    /// Baseline reconciles, by result (applied, repaired, unchanged, failed).
    pub reconciles: Family<Labels, Counter>,
    /// What the baseline controller found slipped past the Namespace
    /// webhooks, by finding (name-label-reset, unjudged-join-reported,
    /// unjudged-join-undone).
    pub defence: Family<Labels, Counter>,
    /// Requests tierguard could not judge (refused in enforce mode, warned
    /// in audit mode), by kind and whether retrying may help.
    pub cannot_judge: Family<Labels, Counter>,
    /// 1 while this replica holds the leader-election Lease and runs the
    /// baseline controller.
    pub controller_leader: Gauge,
    /// Webhook connections open now (each holds one of `--max-connections`).
    pub connections_open: Gauge,
    /// Webhook connections closed right after accept because
    /// `--max-connections` were open.
    pub connections_rejected: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tierguard");
        let requests = Family::<Labels, Counter>::default();
        registry.register(
            "admission_requests",
            "Admission requests by kind, operation and verdict",
            requests.clone(),
        );
        let violations = Family::<Labels, Counter>::default();
        registry.register(
            "violations",
            "Forbidden flows found, by source and destination class and mode",
            violations.clone(),
        );
        let violations_current = Family::<Labels, Gauge>::default();
        registry.register(
            "violations_current",
            "Forbidden flows the cluster allows now, by isolation policy, source and destination class",
            violations_current.clone(),
        );
        let violations_present = Family::<Labels, Gauge>::default();
        registry.register(
            "violations_present",
            "Forbidden flows the cluster allows now, by isolation policy (0 when there are none)",
            violations_present.clone(),
        );
        let census_failures = Counter::default();
        registry.register(
            "census_failures",
            "Counts of the current violations that could not be made",
            census_failures.clone(),
        );
        let census_counts = Counter::default();
        registry.register(
            "census_counts",
            "Counts of the current violations made",
            census_counts.clone(),
        );
        let report_writes = Family::<Labels, Counter>::default();
        registry.register(
            "report_writes",
            "OpenReports objects written by the leader, by kind and operation",
            report_writes.clone(),
        );
        let report_failures = Counter::default();
        registry.register(
            "report_failures",
            "OpenReports writes or lists that failed (retried)",
            report_failures.clone(),
        );
        let latency = Histogram::new([
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0,
        ]);
        registry.register(
            "admission_duration_seconds",
            "Time to judge one admission request",
            latency.clone(),
        );
        let index_synced = Gauge::default();
        registry.register(
            "index_synced",
            "1 when namespaces and policies have synced",
            index_synced.clone(),
        );
        let index_objects = Family::<Labels, Gauge>::default();
        registry.register(
            "index_objects",
            "Objects in the index by kind",
            index_objects.clone(),
        );
        let index_rejected = Family::<Labels, Counter>::default();
        registry.register(
            "index_rejected",
            "Objects the index could not read, by kind",
            index_rejected.clone(),
        );
        let index_relists = Family::<Labels, Counter>::default();
        registry.register(
            "index_relists",
            "Lists a watch made again after it had synced (it missed events: 410 Gone), by kind; nothing is judged until the list is applied",
            index_relists.clone(),
        );
        let index_unreadable = Family::<Labels, Gauge>::default();
        registry.register(
            "index_unreadable",
            "Stored objects tierguard cannot read now, by kind; changes in their namespace are not judged",
            index_unreadable.clone(),
        );
        let index_stale = Gauge::default();
        registry.register(
            "index_stale",
            "1 while a watch has been failing for longer than --index-stale-after",
            index_stale.clone(),
        );
        let cert_expiry = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "Expiry of the serving certificate (Unix time)",
            cert_expiry.clone(),
        );
        let cert_reloads = Family::<Labels, Counter>::default();
        registry.register(
            "certificate_reloads",
            "Certificate reloads by result",
            cert_reloads.clone(),
        );
        let reconciles = Family::<Labels, Counter>::default();
        registry.register(
            "baseline_reconciles",
            "Baseline reconciles by result",
            reconciles.clone(),
        );
        let defence = Family::<Labels, Counter>::default();
        registry.register(
            "defence",
            "What the baseline controller found past the failurePolicy-Ignore Namespace webhooks, by finding: \
             name-label-reset, unjudged-join-reported, unjudged-join-undone",
            defence.clone(),
        );
        let cannot_judge = Family::<Labels, Counter>::default();
        registry.register(
            "cannot_judge",
            "Requests tierguard could not judge (refused in enforce mode, warned in audit mode), by kind and retriable",
            cannot_judge.clone(),
        );
        let controller_leader = Gauge::default();
        registry.register(
            "controller_leader",
            "1 while this replica holds the leader-election Lease and runs the baseline controller",
            controller_leader.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "connections_open",
            "Webhook connections open now",
            connections_open.clone(),
        );
        let connections_rejected = Counter::default();
        registry.register(
            "connections_rejected",
            "Webhook connections closed at accept because --max-connections were open",
            connections_rejected.clone(),
        );
        // Series with known labels start at 0, so they are exported (and
        // `increase()` sees their first event) before anything happens.
        for result in ["reloaded", "error"] {
            let _ = cert_reloads.get_or_create(&labels(&[("result", result)]));
        }
        for result in ["applied", "repaired", "unchanged", "failed"] {
            let _ = reconciles.get_or_create(&labels(&[("result", result)]));
        }
        for finding in [
            "name-label-reset",
            "unjudged-join-reported",
            "unjudged-join-undone",
        ] {
            let _ = defence.get_or_create(&labels(&[("finding", finding)]));
        }
        for kind in ["Namespace", "NetworkPolicy", "Pod"] {
            let _ = index_rejected.get_or_create(&labels(&[("kind", kind)]));
            if kind != "Pod" {
                let _ = index_relists.get_or_create(&labels(&[("kind", kind)]));
            }
            for retriable in ["true", "false"] {
                let _ = cannot_judge
                    .get_or_create(&labels(&[("kind", kind), ("retriable", retriable)]));
            }
        }
        Self {
            registry,
            requests,
            violations,
            violations_current,
            violations_present,
            census_failures,
            census_counts,
            report_writes,
            report_failures,
            latency,
            index_synced,
            index_objects,
            index_rejected,
            index_relists,
            index_unreadable,
            index_stale,
            cert_expiry,
            cert_reloads,
            reconciles,
            defence,
            cannot_judge,
            controller_leader,
            connections_open,
            connections_rejected,
        }
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> Result<String> {
        let mut out = String::new();
        encode(&mut out, &self.registry).map_err(|e| anyhow!("encoding metrics: {e}"))?;
        Ok(out)
    }
}

/// A label set.
pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A bound on how many lines one call site logs per second, so a flood of
/// bad or refused requests cannot flood the log: past `per_second` lines in
/// one second the rest are counted, and the next line written says how
/// many were suppressed.
///
/// ```
/// use tierguard::telemetry::LogLimiter;
/// static LIMIT: LogLimiter = LogLimiter::new(2);
/// let written = (0..10).filter(|_| LIMIT.allow().is_some()).count();
/// assert_eq!(written, 2);
/// ```
#[derive(Debug)]
pub struct LogLimiter {
    per_second: u32,
    /// The second (since the process's first use of a limiter) counted in.
    window: AtomicU64,
    count: std::sync::atomic::AtomicU32,
    suppressed: AtomicU64,
}

fn process_second() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs()
}

impl LogLimiter {
    /// At most `per_second` lines per second.
    pub const fn new(per_second: u32) -> Self {
        Self {
            per_second,
            window: AtomicU64::new(0),
            count: std::sync::atomic::AtomicU32::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(lines suppressed since the last line written)` when a line may
    /// be written now, `None` when it is to be suppressed.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(process_second())
    }

    /// [`LogLimiter::allow`] in second `now`.
    pub fn allow_at(&self, now: u64) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        let w = self.window.load(Relaxed);
        if w != now
            && self
                .window
                .compare_exchange(w, now, Relaxed, Relaxed)
                .is_ok()
        {
            self.count.store(0, Relaxed);
        }
        if self.count.fetch_add(1, Relaxed) < self.per_second {
            Some(self.suppressed.swap(0, Relaxed))
        } else {
            self.suppressed.fetch_add(1, Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod limiter_tests {
    use super::LogLimiter;

    #[test]
    fn lines_past_the_rate_are_counted_and_reported_with_the_next_line() {
        let l = LogLimiter::new(3);
        let second0: Vec<Option<u64>> = (0..5).map(|_| l.allow_at(7)).collect();
        assert_eq!(second0, [Some(0), Some(0), Some(0), None, None]);
        assert_eq!(l.allow_at(8), Some(2), "the next second reports the two");
        assert_eq!(l.allow_at(8), Some(0));
    }
}
