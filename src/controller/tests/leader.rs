//! Leader election against a mocked API server: each scenario lists the
//! Lease requests expected, in order, asserting method and path; the bodies
//! written (POST and PUT) are handed back for the test to assert on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use super::{Handle, failure, json, mock_client, not_found, timeout_after_1s};
use crate::controller::leader::{self, Election};

const NAMESPACE: &str = "tierguard";
const NAME: &str = "tierguard-controller";
const ME: &str = "tierguard-0";
const OTHER: &str = "tierguard-1";
/// The resourceVersion of every Lease the mock hands out.
const VERSION: &str = "42";

fn election(renew: Duration) -> Election {
    Election {
        namespace: NAMESPACE.into(),
        name: NAME.into(),
        identity: ME.into(),
        lease: Duration::from_secs(15),
        renew,
        retry: renew.min(Duration::from_secs(2)),
    }
}

/// A moment `secs` seconds ago, in whole seconds (so that it survives the
/// API's microsecond precision unchanged).
fn ago(secs: i64) -> MicroTime {
    MicroTime(
        Timestamp::from_second(Timestamp::now().as_second() - secs).expect("a representable time"),
    )
}

/// A Lease time, for comparisons.
fn at(t: &Option<MicroTime>) -> Option<Timestamp> {
    t.as_ref().map(|t| t.0)
}

/// A Lease as the API server returns it.
fn lease(holder: Option<&str>, acquired: i64, renewed: i64, transitions: i32) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(NAMESPACE.into()),
            resource_version: Some(VERSION.into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: holder.map(String::from),
            lease_duration_seconds: Some(15),
            acquire_time: Some(ago(acquired)),
            renew_time: Some(ago(renewed)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }),
    }
}

/// What the mocked API server sees, in order.
enum Step {
    /// GET the Lease; answer with it, or 404.
    Get(Option<Box<Lease>>),
    /// POST a new Lease; answered 201 with what was sent.
    Create,
    /// PUT the Lease; answered 200 with what was sent.
    Replace,
    /// PUT the Lease; answered 409 (someone else wrote it first).
    ReplaceConflict,
}

/// Plays `steps`, logging each request's method in `log`; returns the
/// Leases written by POST and PUT, in order.
async fn serve(mut handle: Handle, steps: Vec<Step>, log: Arc<Mutex<Vec<String>>>) -> Vec<Lease> {
    let collection = format!("/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases");
    let item = format!("{collection}/{NAME}");
    let mut written = Vec::new();
    for step in steps {
        let (req, send) = handle
            .next_request()
            .await
            .expect("the leader election made a request");
        log.lock()
            .expect("log")
            .push(req.method().as_str().to_owned());
        let (method, path) = match step {
            Step::Get(_) => (Method::GET, &item),
            Step::Create => (Method::POST, &collection),
            Step::Replace | Step::ReplaceConflict => (Method::PUT, &item),
        };
        assert_eq!(req.method(), method);
        assert_eq!(req.uri().path(), path.as_str());
        match step {
            Step::Get(Some(l)) => send.send_response(json(200, &l)),
            Step::Get(None) => send.send_response(not_found()),
            Step::Create | Step::Replace | Step::ReplaceConflict => {
                let body = req.into_body().collect_bytes().await.expect("body");
                let sent: Lease = serde_json::from_slice(&body).expect("a Lease");
                send.send_response(match step {
                    Step::Create => json(201, &sent),
                    Step::ReplaceConflict => {
                        failure(409, "Conflict", "the object has been modified")
                    }
                    _ => json(200, &sent),
                });
                written.push(sent);
            }
        }
    }
    written
}

/// Starts the mocked API server on `steps`; the client talks to it.
fn scenario(steps: Vec<Step>) -> (kube::Client, tokio::task::JoinHandle<Vec<Lease>>) {
    let (client, handle) = mock_client();
    let server = tokio::spawn(serve(handle, steps, Arc::default()));
    (client, server)
}

fn spec(l: &Lease) -> &LeaseSpec {
    l.spec.as_ref().expect("a Lease spec")
}

#[tokio::test]
async fn a_missing_lease_is_created_with_this_replica_as_holder() {
    let (client, server) = scenario(vec![Step::Get(None), Step::Create]);
    let held = election(Duration::from_secs(5)).try_hold(&client).await;
    assert!(held.expect("no API error"), "the new Lease is ours");
    let written = timeout_after_1s(server).await;
    let created = spec(&written[0]);
    assert_eq!(written[0].metadata.name.as_deref(), Some(NAME));
    assert_eq!(written[0].metadata.namespace.as_deref(), Some(NAMESPACE));
    assert_eq!(created.holder_identity.as_deref(), Some(ME));
    assert_eq!(created.lease_duration_seconds, Some(15));
    assert_eq!(created.lease_transitions, Some(0));
    assert!(created.acquire_time.is_some() && created.renew_time.is_some());
}

#[tokio::test]
async fn the_holder_renews_keeping_acquire_time_and_transitions() {
    let held = lease(Some(ME), 100, 3, 2);
    let (client, server) = scenario(vec![Step::Get(Some(Box::new(held.clone()))), Step::Replace]);
    let renewed = election(Duration::from_secs(5)).try_hold(&client).await;
    assert!(renewed.expect("no API error"), "still ours");
    let written = timeout_after_1s(server).await;
    let (before, after) = (spec(&held), spec(&written[0]));
    assert_eq!(after.holder_identity.as_deref(), Some(ME));
    assert_eq!(after.acquire_time, before.acquire_time, "acquireTime kept");
    assert_eq!(after.lease_transitions, Some(2), "no transition");
    assert!(
        at(&after.renew_time) > at(&before.renew_time),
        "renewTime moves on"
    );
    assert_eq!(
        written[0].metadata.resource_version.as_deref(),
        Some(VERSION),
        "the renewal is conditional on the Lease read"
    );
}

#[tokio::test]
async fn a_conflicting_renewal_loses_leadership() {
    let (client, server) = scenario(vec![
        Step::Get(Some(Box::new(lease(Some(ME), 100, 3, 2)))),
        Step::ReplaceConflict,
    ]);
    let election = election(Duration::from_millis(10));
    // hold() renews after one period and returns once a renewal fails.
    tokio::time::timeout(Duration::from_secs(1), election.hold(&client))
        .await
        .expect("hold gave up the lead on the conflict");
    timeout_after_1s(server).await;

    let (client, server) = scenario(vec![
        Step::Get(Some(Box::new(lease(Some(ME), 100, 3, 2)))),
        Step::ReplaceConflict,
    ]);
    let held = election.try_hold(&client).await;
    assert!(!held.expect("a conflict is no error"), "not held");
    timeout_after_1s(server).await;
}

#[tokio::test]
async fn a_lease_another_replica_holds_and_renews_is_left_alone() {
    // Only the GET: a write would find no scripted step, fail, and make
    // try_hold return an error.
    let (client, server) = scenario(vec![Step::Get(Some(Box::new(lease(
        Some(OTHER),
        100,
        3,
        2,
    ))))]);
    let held = election(Duration::from_secs(5)).try_hold(&client).await;
    assert!(!held.expect("no API error"), "not ours");
    timeout_after_1s(server).await;
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_as_a_transition() {
    let stale = lease(Some(OTHER), 100, 60, 2);
    let (client, server) = scenario(vec![
        Step::Get(Some(Box::new(stale.clone()))),
        Step::Replace,
    ]);
    let held = election(Duration::from_secs(5)).try_hold(&client).await;
    assert!(held.expect("no API error"), "taken over");
    let written = timeout_after_1s(server).await;
    let (before, after) = (spec(&stale), spec(&written[0]));
    assert_eq!(after.holder_identity.as_deref(), Some(ME));
    assert_eq!(after.lease_transitions, Some(3), "one more transition");
    assert_eq!(after.lease_duration_seconds, Some(15));
    assert!(
        at(&after.acquire_time) > at(&before.acquire_time),
        "acquired now"
    );
    assert_eq!(
        written[0].metadata.resource_version.as_deref(),
        Some(VERSION)
    );
}

#[tokio::test]
async fn a_released_lease_is_taken_at_once() {
    let mut released = lease(None, 1, 0, 2);
    if let Some(s) = released.spec.as_mut() {
        s.lease_duration_seconds = Some(1);
    }
    let (client, server) = scenario(vec![Step::Get(Some(Box::new(released))), Step::Replace]);
    let held = election(Duration::from_secs(5)).try_hold(&client).await;
    assert!(
        held.expect("no API error"),
        "a Lease without holder is free"
    );
    let written = timeout_after_1s(server).await;
    assert_eq!(spec(&written[0]).holder_identity.as_deref(), Some(ME));
    assert_eq!(spec(&written[0]).lease_transitions, Some(3));
    assert_eq!(spec(&written[0]).lease_duration_seconds, Some(15));
}

#[tokio::test]
async fn shutdown_stops_the_leader_then_releases_its_lease() {
    let (client, handle) = mock_client();
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let server = tokio::spawn(serve(
        handle,
        vec![
            // Acquire: the Lease is ours from before a restart; renew it.
            Step::Get(Some(Box::new(lease(Some(ME), 100, 3, 2)))),
            Step::Replace,
            // Release.
            Step::Get(Some(Box::new(lease(Some(ME), 100, 0, 2)))),
            Step::Replace,
        ],
        log.clone(),
    ));
    let shutdown = CancellationToken::new();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let mut started_tx = Some(started_tx);
    // Renewals are an hour apart: the only writes are acquire and release.
    let election = election(Duration::from_secs(3600));
    let leading = leader::lead(&client, &election, shutdown.clone(), |stop| {
        let (log, started) = (log.clone(), started_tx.take());
        async move {
            log.lock().expect("log").push("started".into());
            if let Some(s) = started {
                let _ = s.send(());
            }
            let _ = stop.await;
            log.lock().expect("log").push("stopped".into());
        }
    });
    let cancel = async {
        started_rx.await.expect("the leader started its task");
        shutdown.cancel();
    };
    tokio::time::timeout(
        Duration::from_secs(1),
        futures::future::join(leading, cancel),
    )
    .await
    .expect("lead returned after shutdown");
    let written = timeout_after_1s(server).await;
    assert_eq!(
        *log.lock().expect("log"),
        ["GET", "PUT", "started", "stopped", "GET", "PUT"],
        "the task stops before the Lease is released"
    );
    let released = &written[1];
    assert_eq!(spec(released).holder_identity, None, "no holder");
    assert_eq!(spec(released).lease_duration_seconds, Some(1));
    assert_eq!(
        spec(released).lease_transitions,
        Some(2),
        "transitions kept"
    );
    assert_eq!(
        released.metadata.resource_version.as_deref(),
        Some(VERSION),
        "conditional on still holding it"
    );
}

#[tokio::test]
async fn release_leaves_alone_a_lease_another_replica_took() {
    // Taken over before the release: GET only, no write.
    let (client, server) = scenario(vec![Step::Get(Some(Box::new(lease(Some(OTHER), 1, 0, 3))))]);
    let released = election(Duration::from_secs(5)).release(&client).await;
    assert!(!released.expect("no API error"), "nothing to release");
    timeout_after_1s(server).await;
    // Taken over between the GET and the PUT: the conflict is the answer.
    let (client, server) = scenario(vec![
        Step::Get(Some(Box::new(lease(Some(ME), 100, 3, 2)))),
        Step::ReplaceConflict,
    ]);
    let released = election(Duration::from_secs(5)).release(&client).await;
    assert!(
        !released.expect("a conflict is no error"),
        "not ours any more"
    );
    timeout_after_1s(server).await;
}

#[tokio::test]
async fn shutdown_before_leading_makes_no_request() {
    let (client, server) = scenario(vec![]);
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    let election = election(Duration::from_secs(5));
    let led = Arc::new(AtomicBool::new(false));
    tokio::time::timeout(
        Duration::from_secs(1),
        leader::lead(&client, &election, shutdown, |_stop| {
            let led = led.clone();
            async move { led.store(true, Ordering::SeqCst) }
        }),
    )
    .await
    .expect("lead returned at once");
    assert!(!led.load(Ordering::SeqCst), "never led");
    assert!(timeout_after_1s(server).await.is_empty());
}

/// An election with a 2 s Lease renewed every 500 ms: a renew deadline of
/// 1.5 s.
fn short_election() -> Election {
    Election {
        lease: Duration::from_secs(2),
        ..election(Duration::from_millis(500))
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_renewal_is_retried_and_the_lead_kept() {
    let (client, mut handle) = mock_client();
    let server = tokio::spawn(async move {
        // The first renewal's GET fails; the retry renews.
        let (_, send) = handle.next_request().await.expect("a renewal");
        send.send_response(failure(503, "ServiceUnavailable", "etcd is down"));
        serve(
            handle,
            vec![
                Step::Get(Some(Box::new(lease(Some(ME), 100, 0, 2)))),
                Step::Replace,
            ],
            Arc::default(),
        )
        .await
    });
    let election = short_election();
    // Leading continues past the deadline measured from the start, because
    // the retry renewed; the hold ends only when the mock has nothing more.
    let kept = tokio::time::timeout(Duration::from_millis(1900), election.hold(&client)).await;
    let written = timeout_after_1s(server).await;
    assert_eq!(written.len(), 1, "the retry renewed the Lease");
    assert!(kept.is_err(), "still leading 1.9 s on: the lead was kept");
}

/// Holds [`short_election`]'s lead on `client` until it steps down (at
/// most 10 s of paused time); returns how long it held.
async fn hold_until_stepping_down(client: &kube::Client) -> Duration {
    let start = tokio::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(10), short_election().hold(client))
        .await
        .expect("hold stepped down");
    start.elapsed()
}

#[tokio::test(start_paused = true)]
async fn renewals_that_keep_failing_step_down_before_the_lease_runs_out() {
    let (client, mut handle) = mock_client();
    let attempts = Arc::new(Mutex::new(0_u32));
    let seen = attempts.clone();
    tokio::spawn(async move {
        while let Some((_, send)) = handle.next_request().await {
            *seen.lock().expect("count") += 1;
            send.send_response(failure(503, "ServiceUnavailable", "etcd is down"));
        }
    });
    let held = hold_until_stepping_down(&client).await;
    assert!(
        held >= Duration::from_millis(1500) && held < Duration::from_secs(2),
        "stepped down after {held:?}: at the renew deadline, before the 2 s Lease ran out"
    );
    assert!(
        *attempts.lock().expect("count") >= 2,
        "failed renewals were retried"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hanging_renewal_is_cut_off_at_the_renew_deadline() {
    let (client, mut handle) = mock_client();
    // Takes each request and never answers it.
    let server = tokio::spawn(async move {
        let mut pending = Vec::new();
        while let Some(request) = handle.next_request().await {
            pending.push(request);
        }
    });
    let held = hold_until_stepping_down(&client).await;
    assert!(
        held >= Duration::from_millis(1500) && held < Duration::from_secs(2),
        "stepped down after {held:?}: the renewal hung and was cut off"
    );
    server.abort();
}
