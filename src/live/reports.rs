//! The leader's OpenReports: every count of the census, published as a
//! `Report` per tier namespace and a `ClusterReport`
//! (`report::openreports` builds them), written only when they differ from
//! what the API server holds.
//!
//! ```text
//!  leading ─► list our reports (label managed-by=tierguard)   not served ─► wait, look again
//!     └─ each new count ─► build (timestamps kept) ─► apply what differs (paced)
//!                                               └─► delete ours no longer wanted
//!        a failed write ─► retry after RETRY; a failed list ─► list again
//! ```
//!
//! While the census has no count that holds (index unsynced, a count
//! failed), the reports stay as they were: a report is removed only when
//! a count shows it is no longer wanted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, Error};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::census::{Census, Counted};
use super::object::FIELD_MANAGER;
use crate::model::baseline::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use crate::report::openreports::{self, GROUP, ReportBody, Reports, VERSION, report_name};
use crate::telemetry::{Metrics, labels as metric_labels};

/// How long a failed write or list waits before it is tried again.
pub const RETRY: Duration = Duration::from_secs(5);
/// How often the API server is asked again whether it serves OpenReports.
pub const LOOK_AGAIN: Duration = Duration::from_secs(60);
/// How often the reports are listed again (someone else may have edited
/// or deleted one).
pub const RELIST: Duration = Duration::from_secs(600);
/// The pause after each write: at most 50 writes a second, so a first
/// publish into a large cluster does not crowd out other clients.
pub const WRITE_GAP: Duration = Duration::from_millis(20);

/// `Report` (namespaced) or `ClusterReport`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Report,
    ClusterReport,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Report => "Report",
            Kind::ClusterReport => "ClusterReport",
        }
    }

    fn resource(self) -> ApiResource {
        let (kind, plural) = match self {
            Kind::Report => ("Report", "reports"),
            Kind::ClusterReport => ("ClusterReport", "clusterreports"),
        };
        ApiResource {
            group: GROUP.into(),
            version: VERSION.into(),
            api_version: format!("{GROUP}/{VERSION}"),
            kind: kind.into(),
            plural: plural.into(),
        }
    }
}

/// Which object: kind, namespace (Report only), name.
type Key = (Kind, Option<String>, String);

/// What the API server holds of ours, as far as tierguard knows: None for
/// an object it could not read (it is rewritten).
type Held = BTreeMap<Key, Option<ReportBody>>;

/// Publishes until `stop` is cancelled.
pub async fn run(
    client: Client,
    census: Arc<Census>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut counts = census.subscribe();
    let mut held: Option<Held> = None;
    let mut said_unserved = false;
    let mut listed_at = Instant::now();
    // Failures in a row (a list, or a publish with a failed write).
    let mut failures: u32 = 0;
    loop {
        if listed_at.elapsed() >= RELIST {
            held = None;
        }
        if held.is_none() {
            let listed = tokio::select! {
                () = stop.cancelled() => return,
                l = list(&client) => l,
            };
            match listed {
                Ok(Some(h)) => {
                    if said_unserved || listed_at.elapsed() < RELIST {
                        info!(reports = h.len(), "publishing OpenReports");
                    }
                    said_unserved = false;
                    listed_at = Instant::now();
                    held = Some(h);
                }
                Ok(None) => {
                    if !said_unserved {
                        info!(
                            "the API server does not serve {GROUP}/{VERSION} Reports: none are published (install the OpenReports CRDs to have them)"
                        );
                        said_unserved = true;
                    }
                    if pause(&stop, LOOK_AGAIN).await {
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    metrics.report_failures.inc();
                    failures = failures.saturating_add(1);
                    warn!(error = %e, retry_in = ?backoff(failures), "cannot list the published reports");
                    if pause(&stop, backoff(failures)).await {
                        return;
                    }
                    continue;
                }
            }
        }
        let latest = counts.borrow_and_update().clone();
        if let (Some(counted), Some(h)) = (latest, held.as_mut()) {
            match publish(&client, h, &counted, &metrics, &stop).await {
                Ok(()) => failures = 0,
                Err(Failed::Stopped) => return,
                Err(Failed::Unserved) => {
                    held = None;
                    if pause(&stop, RETRY).await {
                        return;
                    }
                    continue;
                }
                Err(Failed::Write) => {
                    failures = failures.saturating_add(1);
                    if pause(&stop, backoff(failures)).await {
                        return;
                    }
                    continue;
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            changed = counts.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(RELIST) => {}
        }
    }
}

/// The wait after `n` failures in a row: [`RETRY`], doubling, at most
/// 5 minutes.
fn backoff(n: u32) -> Duration {
    RETRY
        .saturating_mul(2u32.saturating_pow(n.saturating_sub(1).min(16)))
        .min(Duration::from_secs(300))
}

/// Sleeps `d`; true when stopped meanwhile.
async fn pause(stop: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(d) => false,
    }
}

/// The reports tierguard wrote, by the managed-by label; None when the
/// API server does not serve the kinds.
async fn list(client: &Client) -> Result<Option<Held>, Error> {
    let params = ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    let mut held = Held::new();
    for kind in [Kind::Report, Kind::ClusterReport] {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.resource());
        let objects = match api.list(&params).await {
            Ok(l) => l.items,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        for o in objects {
            let Some(name) = o.metadata.name.clone() else {
                continue;
            };
            let ns = o.metadata.namespace.clone();
            let body = serde_json::from_value::<ReportBody>(o.data).ok();
            held.insert((kind, ns, name), body);
        }
    }
    Ok(Some(held))
}

fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::Api(s) if s.code == 404)
}

/// Why a publish stopped short.
enum Failed {
    /// Told to stop (leadership lost, or shutdown).
    Stopped,
    /// The kinds are no longer served.
    Unserved,
    /// Some write failed (the rest were made).
    Write,
}

/// The reports `held` says exist for `policy`, as the builder's
/// "previous" (for the timestamps).
fn previous(held: &Held, policy: &str) -> Reports {
    let name = report_name(policy);
    let mut out = Reports {
        policy: policy.to_string(),
        ..Reports::default()
    };
    for ((kind, ns, n), body) in held {
        let Some(body) = body else { continue };
        if *n != name {
            continue;
        }
        match (kind, ns) {
            (Kind::Report, Some(ns)) => {
                out.namespaced.insert(ns.clone(), body.clone());
            }
            (Kind::ClusterReport, None) => out.cluster = Some(body.clone()),
            _ => {}
        }
    }
    out
}

/// What should exist after `counted`: every report of its policy.
fn wanted(held: &Held, counted: &Counted) -> BTreeMap<Key, ReportBody> {
    let policy = &counted.policy.name;
    let built = openreports::build(
        policy,
        &counted.tier_namespaces,
        &counted.report,
        &previous(held, policy),
        counted.at,
    );
    let name = report_name(policy);
    let mut out: BTreeMap<Key, ReportBody> = built
        .namespaced
        .into_iter()
        .map(|(ns, b)| ((Kind::Report, Some(ns), name.clone()), b))
        .collect();
    if let Some(c) = built.cluster {
        out.insert((Kind::ClusterReport, None, name), c);
    }
    out
}

/// The writes that bring `held` to `want`: (key, Some(body) to apply, None
/// to delete), applies first.
fn plan(held: &Held, want: &BTreeMap<Key, ReportBody>) -> Vec<(Key, Option<ReportBody>)> {
    let mut out: Vec<(Key, Option<ReportBody>)> = want
        .iter()
        .filter(|(k, b)| held.get(*k) != Some(&Some((*b).clone())))
        .map(|(k, b)| (k.clone(), Some(b.clone())))
        .collect();
    out.extend(
        held.keys()
            .filter(|k| !want.contains_key(*k))
            .map(|k| (k.clone(), None)),
    );
    out
}

/// Writes what differs; `held` follows each write that succeeds.
async fn publish(
    client: &Client,
    held: &mut Held,
    counted: &Counted,
    metrics: &Metrics,
    stop: &CancellationToken,
) -> Result<(), Failed> {
    let want = wanted(held, counted);
    let writes = plan(held, &want);
    if writes.is_empty() {
        return Ok(());
    }
    debug!(writes = writes.len(), "publishing reports");
    let mut failed = false;
    for ((kind, ns, name), body) in writes {
        if stop.is_cancelled() {
            return Err(Failed::Stopped);
        }
        let api: Api<DynamicObject> = match &ns {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &kind.resource()),
            None => Api::all_with(client.clone(), &kind.resource()),
        };
        let key = (kind, ns.clone(), name.clone());
        let params = PatchParams::apply(FIELD_MANAGER)
            .force()
            .validation_strict();
        let (op, done) = match &body {
            Some(b) => {
                let obj = openreports::manifest(
                    kind.name(),
                    ns.as_deref(),
                    &name,
                    &counted.policy.name,
                    b,
                );
                let patch = Patch::Apply(&obj);
                let write = api.patch(&name, &params, &patch);
                tokio::select! {
                    () = stop.cancelled() => return Err(Failed::Stopped),
                    r = write => ("apply", r.map(|_| ())),
                }
            }
            None => {
                let dp = DeleteParams::default();
                let write = api.delete(&name, &dp);
                tokio::select! {
                    () = stop.cancelled() => return Err(Failed::Stopped),
                    r = write => ("delete", r.map(|_| ())),
                }
            }
        };
        match done {
            Ok(()) => {
                metrics
                    .report_writes
                    .get_or_create(&metric_labels(&[("kind", kind.name()), ("op", op)]))
                    .inc();
                match body {
                    Some(b) => held.insert(key, Some(b)),
                    None => held.remove(&key),
                };
            }
            // Deleting what is gone, or writing into a namespace that is
            // gone: nothing to do.
            Err(e) if is_not_found(&e) && body.is_none() => {
                held.remove(&key);
            }
            Err(e) if ns.as_deref().is_some_and(|n| is_namespace_gone(&e, n)) => {
                debug!(namespace = ?ns, "the namespace is gone: no report");
            }
            Err(e) if is_not_found(&e) => return Err(Failed::Unserved),
            Err(e) if is_terminating(&e) => {
                debug!(namespace = ?ns, "the namespace is terminating: no report");
            }
            Err(e) => {
                metrics.report_failures.inc();
                warn!(error = %e, kind = kind.name(), namespace = ?ns, name = %name, op, "cannot write a report");
                failed = true;
            }
        }
        tokio::time::sleep(WRITE_GAP).await;
    }
    if failed { Err(Failed::Write) } else { Ok(()) }
}

/// A 404 about the namespace `ns` (`namespaces "ns" not found`), not the
/// kind.
fn is_namespace_gone(e: &Error, ns: &str) -> bool {
    matches!(e, Error::Api(s) if s.code == 404 && s.message.contains(&format!("namespaces \"{ns}\" not found")))
}

/// Writing into a namespace being deleted (the API server's
/// NamespaceLifecycle: `... because it is being terminated`).
fn is_terminating(e: &Error) -> bool {
    matches!(e, Error::Api(s) if s.code == 403 && s.message.contains("because it is being terminated"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::isolation::Report;
    use std::time::{SystemTime, UNIX_EPOCH};

    fn counted(policy: &str, tiers: &[&str]) -> Counted {
        let mut iso = crate::model::isolationpolicy::load_file(std::path::Path::new(
            "policies/three-tier.yaml",
        ))
        .expect("the repository's policy");
        iso.name = policy.to_string();
        Counted {
            policy: Arc::new(iso),
            tier_namespaces: tiers.iter().map(ToString::to_string).collect(),
            report: Report::default(),
            at: UNIX_EPOCH + Duration::from_secs(100),
        }
    }

    /// What `list` would read back after `writes`: each applied object
    /// through JSON, as the API server stores and returns it.
    fn applied(held: &mut Held, writes: &[(Key, Option<ReportBody>)]) {
        for (k, b) in writes {
            match b {
                Some(b) => {
                    let obj = openreports::manifest(k.0.name(), k.1.as_deref(), &k.2, "p", b);
                    let text = serde_json::to_string(&obj).expect("serializes");
                    let o: DynamicObject = serde_json::from_str(&text).expect("an object");
                    let read = serde_json::from_value::<ReportBody>(o.data).ok();
                    held.insert(k.clone(), read)
                }
                None => held.remove(k),
            };
        }
    }

    #[test]
    fn the_first_publish_writes_every_report_and_the_next_writes_nothing() {
        let mut held = Held::new();
        let c = counted("p", &["a", "b"]);
        let w = plan(&held, &wanted(&held, &c));
        assert_eq!(w.len(), 3, "two Reports and the ClusterReport");
        assert!(w.iter().all(|(_, b)| b.is_some()));
        applied(&mut held, &w);
        let mut later = counted("p", &["a", "b"]);
        later.at = SystemTime::now();
        assert!(plan(&held, &wanted(&held, &later)).is_empty());
    }

    #[test]
    fn a_namespace_leaving_the_tiers_loses_its_report_and_unreadable_ones_are_rewritten() {
        let mut held = Held::new();
        let c = counted("p", &["a", "b"]);
        let w = plan(&held, &wanted(&held, &c));
        applied(&mut held, &w);
        held.insert((Kind::Report, Some("a".into()), "tierguard-p".into()), None);
        let w = plan(&held, &wanted(&held, &counted("p", &["a"])));
        let keys: Vec<_> = w
            .iter()
            .map(|((k, ns, _), b)| (*k, ns.clone(), b.is_some()))
            .collect();
        assert_eq!(
            keys,
            [
                (Kind::Report, Some("a".into()), true),
                (Kind::Report, Some("b".into()), false)
            ]
        );
    }

    #[test]
    fn a_renamed_policy_replaces_its_reports() {
        let mut held = Held::new();
        let w = plan(&held, &wanted(&held, &counted("old", &["a"])));
        applied(&mut held, &w);
        let w = plan(&held, &wanted(&held, &counted("new", &["a"])));
        let applies = w.iter().filter(|(_, b)| b.is_some()).count();
        let deletes: Vec<_> = w
            .iter()
            .filter(|(_, b)| b.is_none())
            .map(|((_, _, n), _)| n.as_str())
            .collect();
        assert_eq!(applies, 2);
        assert_eq!(deletes, ["tierguard-old", "tierguard-old"]);
    }

    #[test]
    fn the_applied_object_is_the_body_with_its_metadata() {
        let c = counted("p", &["a"]);
        let held = Held::new();
        let want = wanted(&held, &c);
        let (key, body) = want.iter().next().expect("a report");
        let o = openreports::manifest(key.0.name(), key.1.as_deref(), &key.2, "p", body);
        assert_eq!(o["apiVersion"], "openreports.io/v1alpha1");
        assert_eq!(o["kind"], "Report");
        assert_eq!(o["metadata"]["namespace"], "a");
        assert_eq!(o["metadata"]["labels"][MANAGED_BY_LABEL], MANAGED_BY_VALUE);
        assert_eq!(o["results"][0]["result"], "pass");
        let back: ReportBody = serde_json::from_value(o).expect("reads back");
        assert_eq!(&back, body);
    }
}
