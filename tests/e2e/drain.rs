//! A rolling update drops no admission: two `tierguard serve` replicas
//! behind haproxy (the Service), the real kube-apiserver as the admission
//! client (its webhook client: HTTP/2 over TLS, a new connection when the
//! server closes one), NetworkPolicy creates (`failurePolicy: Fail`) from
//! concurrent clients; one replica gets SIGTERM mid-load. Every create must
//! get tierguard's answer, the replica must exit 0 within its grace period,
//! and the other must carry the load after it.
//!
//! `TIERGUARD_DRAIN_TEST_SECONDS` sets both replicas' `--drain-seconds`
//! (default 2); with 0 the same test sees failed admissions
//! (docs/rolling-updates.md).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::Replica;
use crate::load::{Load, Pair, apiserver_webhook_call_errors, wait_exit};

/// Concurrent clients creating NetworkPolicies.
const CLIENTS: usize = 16;
/// Load before the SIGTERM, and after the replica has exited.
const BEFORE: Duration = Duration::from_secs(3);
const AFTER: Duration = Duration::from_secs(3);
/// After `--drain-seconds`, what shutdown may take at most: in-flight
/// requests finishing (10 s) and the controller stepping down (5 s) — the
/// deployment's grace period without its preStop sleep and margin.
const SHUTDOWN_AFTER_DRAIN: Duration = Duration::from_secs(15);

fn drain_seconds() -> u64 {
    std::env::var("TIERGUARD_DRAIN_TEST_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

#[test]
fn rolling_update_drops_no_admission() {
    let _serial = crate::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let drain = drain_seconds();
    let started = Instant::now();
    let drain_flag = drain.to_string();
    let Some(mut pair) = Pair::start("drain", &["--drain-seconds", drain_flag.as_str()]) else {
        return;
    };
    let setup = started.elapsed();
    let load = Load::start(&pair.cluster, "load", CLIENTS);
    std::thread::sleep(BEFORE);

    // The replica the API server's connections reach most is terminated.
    let answered = |r: &Replica| r.admissions_answered().unwrap_or(0);
    let (victim, survivor) = pair.busier_first();
    let victim_before = answered(victim);
    let other_before = answered(survivor);
    let pid = victim.pid().expect("victim running");
    let sigterm = load.mark();
    let kill = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success(), "kill -TERM {pid} failed");
    let grace = Duration::from_secs(drain) + SHUTDOWN_AFTER_DRAIN;
    let status = wait_exit(victim, grace);
    let exited_after = sigterm.elapsed();
    let survivor_at_exit = answered(survivor);
    std::thread::sleep(AFTER);
    let survivor_end = answered(survivor);
    let (t, load_time) = load.finish();
    let (victim_name, survivor_name) = (victim.name.clone(), survivor.name.clone());
    let victim_log = victim.log();
    let call_errors = apiserver_webhook_call_errors(&pair.cluster);
    eprintln!("[drain] haproxy: {}", pair.lb.sessions(&pair.cluster.dir));

    let sent = t.sent();
    eprintln!(
        "[drain] --drain-seconds {drain}: setup {:.1}s; {sent} creates in {:.1}s ({:.0}/s, {CLIENTS} clients): \
         {} admitted, {} refused, {} failed; replica {victim_name} (answered {victim_before} before SIGTERM, the other {other_before}) exited {status:?} \
         after {:.2}s (grace {}s); replica {survivor_name} answered {} after that exit; kube-apiserver webhook call errors: {call_errors}",
        setup.as_secs_f64(),
        load_time.as_secs_f64(),
        sent as f64 / load_time.as_secs_f64(),
        t.admitted,
        t.refused,
        t.failed.len(),
        exited_after.as_secs_f64(),
        grace.as_secs(),
        survivor_end.saturating_sub(survivor_at_exit),
    );
    for (at, e) in t.failed.iter().take(10) {
        eprintln!("[drain]   sent {at:+.2}s from the SIGTERM, failed: {e}");
    }

    assert!(victim_before > 0, "the terminated replica served nothing");
    assert_eq!(
        t.failed.len(),
        0,
        "admissions failed during the rolling update"
    );
    assert_eq!(call_errors, 0, "the API server saw failed webhook calls");
    let status = status.unwrap_or_else(|| {
        panic!("replica did not exit within its grace period {grace:?}; log:\n{victim_log}")
    });
    assert!(
        status.success(),
        "replica exited with {status}; log:\n{victim_log}"
    );
    assert!(
        survivor_end > survivor_at_exit,
        "the remaining replica served nothing after the other exited"
    );
}
