//! `serve --policy-object NAME`: the isolation policy is the cluster's
//! IsolationPolicy object NAME, watched.
//!
//! ```text
//!  watch isolationpolicies.tierguard.io (metadata.name=NAME)
//!     applied ─► valid?  yes ─► Live::set (in force within the watch's latency)
//!                        no  ─► the last valid generation stays in force
//!     deleted ─► the last valid generation stays in force (logged)
//!     every change, and every STATUS_EVERY ─► status, written when it differs:
//!        observedGeneration, activeGeneration, conditions Accepted/Ready,
//!        mode, tiers and the namespaces in each tier now, and the number
//!        of forbidden flows the cluster allows now (`violations`, from
//!        the census)
//! ```
//!
//! Every replica watches and writes the same status (a server-side apply
//! that changes nothing is no write). A replica that starts while the
//! object is missing or invalid waits ([`first`]) before it listens at all,
//! so it never serves with no policy: its webhooks fail closed meanwhile,
//! and in a pod the liveness probe restarts it until the object is valid.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use tracing::{info, warn};

use super::Live;
use super::census::Census;
use crate::engine::state::State;
use crate::engine::tiers::{IsolationPolicy, Mode};
use crate::index::SharedIndex;
use crate::model::isolationpolicy::{
    self, Condition, IsolationPolicyObject, IsolationPolicyStatus, TierStatus,
};

/// The field manager of status writes.
pub const FIELD_MANAGER: &str = "tierguard";
/// How often the status is looked at without a change (tier membership
/// follows namespaces).
pub const STATUS_EVERY: Duration = Duration::from_secs(10);
/// The wait between attempts while the object is missing or invalid at start.
pub const RETRY: Duration = Duration::from_secs(2);

/// What one generation of the object is.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Valid: the engine's policy.
    Valid(Box<IsolationPolicy>),
    /// Invalid: each error with its field path.
    Invalid(Vec<String>),
}

/// Validates one object.
pub fn judge(obj: &IsolationPolicyObject) -> Verdict {
    match isolationpolicy::from_object(obj) {
        Ok(p) => Verdict::Valid(Box::new(p)),
        Err(errs) => Verdict::Invalid(errs.0.iter().map(|e| e.to_string()).collect()),
    }
}

/// Waits for the first valid generation of IsolationPolicy `name`, writing
/// the status of every invalid one it sees; returns it in force.
pub async fn first(client: &Client, name: &str, mode: Option<Mode>) -> (Arc<Live>, i64) {
    let api: Api<IsolationPolicyObject> = Api::all(client.clone());
    let mut logged = false;
    loop {
        match api.get_opt(name).await {
            Ok(Some(obj)) => match judge(&obj) {
                Verdict::Valid(p) => {
                    let generation = obj.metadata.generation.unwrap_or(0);
                    let live = Live::new(*p, mode);
                    return (live, generation);
                }
                Verdict::Invalid(errors) => {
                    if !logged {
                        warn!(isolation_policy = name, errors = ?errors, "IsolationPolicy is invalid: waiting for a valid generation");
                    }
                    let status = status(&obj, &Verdict::Invalid(errors), None, None, now());
                    let _ = write_status(&api, &obj, status).await;
                }
            },
            Ok(None) => {
                // A missing CRD reads as a missing object (404) too.
                if !logged {
                    warn!(
                        isolation_policy = name,
                        "IsolationPolicy not found (is its CRD installed? `tierguard crd | kubectl apply -f -`): waiting for it"
                    );
                }
            }
            Err(e) => {
                warn!(isolation_policy = name, error = %e, "cannot read the IsolationPolicy; retrying");
            }
        }
        logged = true;
        tokio::time::sleep(RETRY).await;
    }
}

/// Watches IsolationPolicy `name` for as long as the process runs: puts
/// each valid generation in force and keeps its status.
pub async fn run(
    client: Client,
    name: String,
    live: Arc<Live>,
    active: i64,
    index: SharedIndex,
    census: Arc<Census>,
) {
    let api: Api<IsolationPolicyObject> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher::watcher(api.clone(), config)
        .default_backoff()
        .boxed();
    let mut active = Some(active);
    let mut last: Option<IsolationPolicyObject> = None;
    let mut listed = false;
    let mut tick = tokio::time::interval(STATUS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(Event::Apply(obj) | Event::InitApply(obj))) => {
                    listed = true;
                    let verdict = judge(&obj);
                    let generation = obj.metadata.generation.unwrap_or(0);
                    match &verdict {
                        Verdict::Valid(p) => {
                            if live.set((**p).clone()) {
                                info!(isolation_policy = %name, generation, "isolation policy in force");
                            }
                            active = Some(generation);
                        }
                        Verdict::Invalid(errors) => {
                            warn!(isolation_policy = %name, generation, active = ?active, errors = ?errors,
                                  "IsolationPolicy generation is invalid: the last valid one stays in force");
                        }
                    }
                    last = Some(obj);
                }
                Some(Ok(Event::Delete(_))) => {
                    warn!(isolation_policy = %name, "IsolationPolicy deleted: its last valid generation stays in force until restart");
                    last = None;
                }
                Some(Ok(Event::Init)) => {
                    listed = false;
                    continue;
                }
                // A deletion during a relist comes as its absence.
                Some(Ok(Event::InitDone)) => {
                    if !listed && last.take().is_some() {
                        warn!(isolation_policy = %name, "IsolationPolicy deleted: its last valid generation stays in force until restart");
                    }
                    continue;
                }
                Some(Err(e)) => {
                    warn!(isolation_policy = %name, error = %e, "IsolationPolicy watch failed; retrying");
                    continue;
                }
                None => return,
            },
            _ = tick.tick() => {}
        }
        if let Some(obj) = &last {
            let verdict = judge(obj);
            let policy = live.get();
            let tiers = {
                let index = index.read().unwrap_or_else(|e| e.into_inner());
                index
                    .is_synced()
                    .then(|| tier_namespaces(&policy, index.state()))
            };
            let mut status = status(obj, &verdict, active, tiers, now());
            // Counted: the count. Not counted yet: what is stored (another
            // replica's count). Stale: none, rather than an old number.
            if let Some(n) = census.latest() {
                status.violations = Some(n);
            } else if census.is_stale() {
                status.violations = None;
            }
            if let Some(written) = write_status(&api, obj, status).await {
                // What the API server now holds, so the next look compares
                // with it rather than with a status the watch has not
                // delivered yet.
                last = Some(written);
            }
        }
    }
}

fn now() -> String {
    let t = Timestamp::now();
    Timestamp::from_second(t.as_second())
        .unwrap_or(t)
        .to_string()
}

/// The namespaces of each tier of `policy` in `state`.
pub fn tier_namespaces(policy: &IsolationPolicy, state: &State) -> Vec<TierStatus> {
    let mut out: Vec<TierStatus> = policy
        .tiers
        .iter()
        .map(|t| TierStatus {
            name: t.name.clone(),
            namespaces: Vec::new(),
        })
        .collect();
    for ns in state.namespaces() {
        if let Some(i) = policy.tier_of_namespace(&ns.name, &ns.labels)
            && let Some(t) = out.get_mut(i)
        {
            t.namespaces.push(ns.name.clone());
        }
    }
    for t in &mut out {
        t.namespaces.sort();
    }
    out
}

/// The status of `obj`: `verdict` is its current generation's, `active`
/// the generation in force (None: the stored one), `tiers` the namespaces per tier (None: not
/// known yet, the stored ones are kept). A condition keeps its stored
/// transition time while its status stays.
pub fn status(
    obj: &IsolationPolicyObject,
    verdict: &Verdict,
    active: Option<i64>,
    tiers: Option<Vec<TierStatus>>,
    now: String,
) -> IsolationPolicyStatus {
    let stored = obj.status.clone().unwrap_or_default();
    let generation = obj.metadata.generation;
    // A replica that has put no generation in force (one waiting at start)
    // keeps what another recorded, so replicas write the same status.
    let active = active.or(stored.active_generation);
    let condition = |type_: &str, ok: bool, reason: &str, message: String| {
        let status = if ok { "True" } else { "False" };
        let since = stored
            .conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message,
            observed_generation: generation,
            last_transition_time: since,
        }
    };
    let (accepted, ready, mode, tier_names) = match verdict {
        Verdict::Valid(p) => (
            condition("Accepted", true, "Valid", "the spec is valid".into()),
            condition(
                "Ready",
                true,
                "InForce",
                "this generation is in force".into(),
            ),
            Some(p.mode),
            Some(
                p.tiers
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ),
        Verdict::Invalid(errors) => (
            condition("Accepted", false, "Invalid", errors.join("; ")),
            condition(
                "Ready",
                false,
                if active.is_some() {
                    "LastValidInForce"
                } else {
                    "NoValidGeneration"
                },
                match active {
                    Some(g) => format!("generation {g} stays in force"),
                    None => "no generation of this IsolationPolicy is in force".into(),
                },
            ),
            None,
            None,
        ),
    };
    let valid = matches!(verdict, Verdict::Valid(_));
    IsolationPolicyStatus {
        observed_generation: generation,
        active_generation: if valid { generation } else { active },
        conditions: vec![accepted, ready],
        mode: mode
            .map(|m| match m {
                Mode::Enforce => "enforce".to_string(),
                Mode::Audit => "audit".to_string(),
            })
            .or(stored.mode),
        tier_names: tier_names.or(stored.tier_names),
        tiers: tiers.unwrap_or(stored.tiers),
        violations: stored.violations,
    }
}

/// Writes `status` when it differs from the stored one; returns the object
/// as written.
async fn write_status(
    api: &Api<IsolationPolicyObject>,
    obj: &IsolationPolicyObject,
    status: IsolationPolicyStatus,
) -> Option<IsolationPolicyObject> {
    if obj.status.as_ref() == Some(&status) {
        return None;
    }
    let patch = serde_json::json!({
        "apiVersion": isolationpolicy::API_VERSION,
        "kind": isolationpolicy::KIND,
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match api
        .patch_status(&obj.name_any(), &params, &Patch::Apply(&patch))
        .await
    {
        Ok(written) => Some(written),
        Err(e) => {
            warn!(isolation_policy = %obj.name_any(), error = %e, "cannot write the IsolationPolicy's status");
            None
        }
    }
}

#[cfg(test)]
mod tests;
