//! The deployment when its parts fail under load (issue: replicas, API
//! server and etcd failing): a replica SIGKILLed mid-load, the leader
//! SIGKILLed, the kube-apiserver restarted with etcd's history compacted
//! (its watches resume into `410 Gone`), and etcd stopped (SIGSTOP) for
//! 30 s. Real etcd, kube-apiserver, haproxy and `tierguard serve`
//! processes; the figures each test prints are in docs/resilience.md.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{Cluster, Replica, Said, admin_get, readyz};
use crate::load::{Load, Pair};

/// The forbidden change the tests expect refused: every source into backend.
/// Created, not applied: `kubectl apply` reads the object first, a read
/// that waits on etcd.
const FORBIDDEN: &str = "examples/three-tier-violations/02-allow-all-ingress-in-backend/apply.yaml";

/// The value of the metric line `series` (name and labels, exactly) on the
/// admin listener at `port`.
fn metric(port: u16, series: &str) -> Option<f64> {
    let (status, body) = admin_get(port, "/metrics")?;
    (status == 200).then_some(())?;
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn sigkill(pid: u32) {
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -KILL {pid} failed");
}

/// The Lease's holder, or "" (none, or no Lease).
fn lease_holder(c: &Cluster) -> String {
    let out = c.kubectl(&[
        "get",
        "lease",
        "-n",
        "tierguard",
        "tierguard-controller",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn is_leader(r: &Replica) -> bool {
    metric(r.admin_port, "tierguard_controller_leader") == Some(1.0)
}

fn refused_forbidden(c: &Cluster, timeout: &str) -> (Said, Duration) {
    let t = Instant::now();
    let said: Said = c
        .kubectl(&[
            "create",
            &format!("--request-timeout={timeout}"),
            "-f",
            FORBIDDEN,
        ])
        .into();
    (said, t.elapsed())
}

/// Waits until tierguard refuses the forbidden policy (a server-side dry
/// run): its index holds the tier namespace.
fn until_judging(c: &Cluster) {
    c.eventually(30, "tierguard refusing the forbidden policy", || {
        let out: Said = c
            .kubectl(&["create", "--dry-run=server", "-f", FORBIDDEN])
            .into();
        !out.ok && out.stderr.contains("is forbidden")
    });
}

fn assert_refused_by_tierguard(said: &Said, what: &str) {
    assert!(!said.ok, "{what}: the forbidden policy was admitted");
    assert!(
        said.stderr.contains("denied the request") && said.stderr.contains("is forbidden"),
        "{what}: not tierguard's refusal:\n{}",
        said.stderr
    );
}

/// Concurrent clients in the SIGKILL test.
const KILL_CLIENTS: usize = 16;
/// What haproxy may take to see a killed replica gone (checks every 100 ms,
/// out after one failure) plus the API server's reconnect: failures after
/// this are the test's failure.
const KILL_WINDOW: f64 = 2.0;

#[test]
fn a_replica_killed_mid_load_fails_only_what_it_held_and_what_reached_it_before_its_health_check_failed()
 {
    let _serial = crate::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut pair) = Pair::start("sigkill", &[]) else {
        return;
    };
    let load = Load::start(&pair.cluster, "load", KILL_CLIENTS);
    std::thread::sleep(Duration::from_secs(3));
    let answered = |r: &Replica| r.admissions_answered().unwrap_or(0);
    let (victim, survivor) = pair.busier_first();
    let victim_before = answered(victim);
    let sent_before = load.sent();
    load.mark();
    sigkill(victim.pid().expect("victim running"));
    let _ = victim.child.as_mut().map(std::process::Child::wait);
    victim.child = None;
    let survivor_at_kill = answered(survivor);
    std::thread::sleep(Duration::from_secs(4));
    let survivor_after = answered(survivor).saturating_sub(survivor_at_kill);
    let (t, ran) = load.finish();
    let victim_name = victim.name.clone();
    eprintln!("[sigkill] haproxy: {}", pair.lb.sessions(&pair.cluster.dir));
    let last = t.failed.iter().map(|(at, _)| *at).fold(f64::NAN, f64::max);
    eprintln!(
        "[sigkill] {} creates in {:.1}s ({:.0}/s, {KILL_CLIENTS} clients; {sent_before} before the kill): \
         {} admitted, {} refused, {} failed (the last sent {last:+.2}s from the kill); replica {victim_name} had answered \
         {victim_before}; the other answered {survivor_after} after the kill",
        t.sent(),
        ran.as_secs_f64(),
        t.sent() as f64 / ran.as_secs_f64(),
        t.admitted,
        t.refused,
        t.failed.len(),
    );
    for (at, e) in t.failed.iter().take(5) {
        eprintln!("[sigkill]   sent {at:+.2}s from the SIGKILL, failed: {e}");
    }
    assert!(victim_before > 0, "the killed replica served nothing");
    assert!(
        survivor_after > 0,
        "the other replica served nothing after the kill"
    );
    // Times are when each failed create was sent: those in flight at the
    // kill were sent just before it.
    for (at, e) in &t.failed {
        assert!(
            (-1.0..=KILL_WINDOW).contains(at),
            "a create sent {at:+.2}s from the SIGKILL, outside [-1, {KILL_WINDOW}] s, failed: {e}"
        );
    }
    // In flight on the killed replica: at most one webhook call per client;
    // then what haproxy sent it before its check failed (the API server
    // reopens one HTTP/2 connection, so one or a few connections' worth).
    assert!(
        t.failed.len() <= 2 * KILL_CLIENTS,
        "{} creates failed: more than twice the {KILL_CLIENTS} in flight",
        t.failed.len()
    );
}

#[test]
fn the_leader_killed_its_lease_is_taken_over_and_the_controller_resumes() {
    let _serial = crate::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The deployment's defaults: a 15 s Lease renewed every 5 s, the
    // others looking every 2 s.
    let (lease, renew, retry) = (15.0, 5.0, 2.0);
    let Some(mut pair) = Pair::start("failover", &[]) else {
        return;
    };
    let c = &pair.cluster;
    c.eventually(30, "one replica leading", || {
        is_leader(&pair.a) || is_leader(&pair.b)
    });
    let (leader, other) = if is_leader(&pair.a) {
        (&mut pair.a, &mut pair.b)
    } else {
        (&mut pair.b, &mut pair.a)
    };
    let old_holder = lease_holder(c);
    assert!(!old_holder.is_empty(), "the Lease has a holder");
    let killed = Instant::now();
    sigkill(leader.pid().expect("leader running"));
    let _ = leader.child.as_mut().map(std::process::Child::wait);
    leader.child = None;
    // A new tier namespace while nobody leads: its baseline waits for the
    // next leader.
    let ns: Said = c.kubectl(&["create", "namespace", "frontend"]).into();
    assert!(ns.ok, "{}", ns.stderr);
    let (mut taken, mut baseline) = (None, None);
    let deadline = killed + Duration::from_secs(60);
    while (taken.is_none() || baseline.is_none()) && Instant::now() < deadline {
        if taken.is_none() {
            let holder = lease_holder(c);
            if !holder.is_empty() && holder != old_holder {
                taken = Some(killed.elapsed());
            }
        }
        if baseline.is_none() && c.has_policy("frontend", "tierguard-default-deny") {
            baseline = Some(killed.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "[failover] leader {} killed; Lease taken over after {taken:?}, the new tier namespace's baseline in place after {baseline:?} \
         (lease {lease}s, renew {renew}s, retry {retry}s)",
        leader.name
    );
    let taken = taken.expect("the other replica took the Lease within 60 s");
    let baseline = baseline.expect("the baseline was injected within 60 s");
    assert!(is_leader(other), "the survivor says it leads");
    // Expired `lease` s after the last renewal, which was before the kill;
    // noticed at the next try, `retry` s apart (+3 s for the try's own
    // requests and the polling here, on a noisy machine).
    assert!(
        taken.as_secs_f64() <= lease + retry + 3.0,
        "takeover took {taken:?}, over lease + retry"
    );
    assert!(
        baseline >= taken.saturating_sub(Duration::from_secs(1)),
        "the baseline ({baseline:?}) came before anyone led ({taken:?})"
    );
    assert!(
        baseline <= taken + Duration::from_secs(5),
        "the new leader's controller took {:?} after the takeover",
        baseline - taken
    );
}

/// The NetworkPolicies the index holds, from the replica's metrics.
fn indexed_policies(port: u16) -> Option<f64> {
    metric(port, "tierguard_index_objects{kind=\"NetworkPolicy\"}")
}

fn stored_policies(c: &Cluster) -> f64 {
    let out = c.kubectl(&["get", "networkpolicies", "-A", "--no-headers"]);
    String::from_utf8_lossy(&out.stdout).lines().count() as f64
}

#[test]
fn an_api_server_restart_into_410_gone_relists_the_index_and_judging_resumes() {
    let _serial = crate::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(c) = Cluster::start("apiserver-restart", &[], "") else {
        return;
    };
    for ns in ["load", "backend"] {
        let out: Said = c.kubectl(&["create", "namespace", ns]).into();
        assert!(out.ok, "{}", out.stderr);
    }
    let relists = |kind: &str| {
        metric(
            c.admin_port,
            &format!("tierguard_index_relists_total{{kind=\"{kind}\"}}"),
        )
        .unwrap_or(-1.0)
    };
    until_judging(&c);
    assert_eq!(relists("Namespace"), 0.0, "no relist before the restart");
    let load = Load::start(&c, "load", 8);
    std::thread::sleep(Duration::from_secs(2));
    let stopped = load.mark();
    c.apiserver("stop");
    let down = Instant::now();
    let revision = c.compact_etcd();
    // tierguard keeps its index and its readiness while the API server is
    // away (well inside --index-stale-after).
    let mut ready_while_down = Vec::new();
    while down.elapsed() < Duration::from_secs(3) {
        ready_while_down.push(readyz(c.admin_port));
        std::thread::sleep(Duration::from_millis(250));
    }
    c.apiserver("start");
    let back = stopped.elapsed();
    // Readiness and relists from the moment the API server is back.
    let mut not_ready = 0;
    let mut resynced = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if readyz(c.admin_port) != Some(200) {
            not_ready += 1;
        }
        // Namespaces have no events under the load: the Namespace watch
        // resumes from a resourceVersion the compaction removed. (The
        // NetworkPolicy watch may have seen the last revision and resume.)
        if relists("Namespace") >= 1.0 {
            resynced = Some(stopped.elapsed());
            if readyz(c.admin_port) == Some(200) {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let ready_at = stopped.elapsed();
    std::thread::sleep(Duration::from_secs(3));
    let (t, ran) = load.finish();
    let (refused, took) = refused_forbidden(&c, "10s");
    let last_failure = t.failed.iter().map(|(at, _)| *at).fold(f64::NAN, f64::max);
    eprintln!(
        "[apiserver-restart] stopped at +2s, etcd compacted at revision {revision}, back (ready) {:.1}s after the stop; \
         the Namespace watch relisted by +{:.1}s (NetworkPolicy relists: {}), tierguard ready again at +{:.1}s ({not_ready} not-ready polls after the API server was back); \
         readiness while down: {ready_while_down:?}; load: {} creates in {:.1}s, {} admitted, {} failed (the last sent {last_failure:+.1}s from the stop); \
         the forbidden policy refused in {took:?}",
        back.as_secs_f64(),
        resynced.map_or(f64::NAN, |d| d.as_secs_f64()),
        relists("NetworkPolicy"),
        ready_at.as_secs_f64(),
        t.sent(),
        ran.as_secs_f64(),
        t.admitted,
        t.failed.len(),
    );
    let resynced = resynced.unwrap_or_else(|| {
        panic!(
            "the Namespace watch did not relist after the compaction; log:\n{}",
            c.webhook_log()
        )
    });
    assert!(
        ready_while_down.iter().all(|r| *r == Some(200)),
        "tierguard left readiness while the API server was down: {ready_while_down:?}"
    );
    assert!(
        c.webhook_log().contains("lists again"),
        "no relist in tierguard's log"
    );
    assert!(
        resynced <= back + Duration::from_secs(40),
        "the index resynced {resynced:?} after the stop"
    );
    for (at, e) in &t.failed {
        assert!(
            *at >= -1.0 && *at <= ready_at.as_secs_f64() + 1.0,
            "a create sent {at:+.1}s from the stop, outside the outage, failed: {e}"
        );
    }
    assert!(t.admitted > 0, "nothing was admitted");
    assert_refused_by_tierguard(&refused, "after the restart");
    // Nothing the gap hid is missing from the index.
    c.eventually(30, "the index holding every stored NetworkPolicy", || {
        indexed_policies(c.admin_port) == Some(stored_policies(&c))
    });
}

#[test]
fn etcd_stopped_30s_tierguard_judges_from_its_index_steps_down_as_leader_and_recovers() {
    let _serial = crate::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(c) = Cluster::start("etcd-stop", &[], "") else {
        return;
    };
    let out: Said = c.kubectl(&["create", "namespace", "backend"]).into();
    assert!(out.ok, "{}", out.stderr);
    c.eventually(30, "tierguard leading", || {
        metric(c.admin_port, "tierguard_controller_leader") == Some(1.0)
    });
    until_judging(&c);
    c.eventually(30, "the baseline in backend", || {
        c.has_policy("backend", "tierguard-allow-dns")
    });
    let pid = c.webhook_pid().expect("tierguard runs");
    let answered = || {
        let (_, body) = admin_get(c.admin_port, "/metrics").unwrap_or_default();
        body.lines()
            .filter(|l| l.starts_with("tierguard_admission_requests_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };

    c.signal_control_plane("etcd", "STOP");
    let stopped = Instant::now();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // A forbidden change is refused by tierguard from its index: the
        // validating webhook answers before the API server would store.
        let (refused, refused_in) = refused_forbidden(&c, "20s");
        // An allowed one is admitted by tierguard and then waits on etcd.
        let before = answered();
        let allowed = c.kubectl_stdin(
            &["create", "--request-timeout=5s", "-n", "backend", "-f", "-"],
            &serde_json::to_string(&crate::load::policy("while-etcd-stopped")).expect("json"),
        );
        let judged = answered() - before;
        // Readiness and leadership through the rest of the 30 s.
        let mut ready = Vec::new();
        let mut stepped_down = None;
        while stopped.elapsed() < Duration::from_secs(30) {
            ready.push(readyz(c.admin_port));
            if stepped_down.is_none()
                && metric(c.admin_port, "tierguard_controller_leader") == Some(0.0)
            {
                stepped_down = Some(stopped.elapsed());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        (refused, refused_in, allowed, judged, ready, stepped_down)
    }));
    c.signal_control_plane("etcd", "CONT");
    let resumed = Instant::now();
    let (refused, refused_in, allowed, judged, ready, stepped_down) =
        result.unwrap_or_else(|e| std::panic::resume_unwind(e));

    // Back: leading again, an allowed change stored and in the index.
    let mut leads_again = None;
    let mut stored = None;
    let deadline = resumed + Duration::from_secs(60);
    while (leads_again.is_none() || stored.is_none()) && Instant::now() < deadline {
        if leads_again.is_none() && metric(c.admin_port, "tierguard_controller_leader") == Some(1.0)
        {
            leads_again = Some(resumed.elapsed());
        }
        if stored.is_none() {
            let out = c.kubectl_stdin(
                &["apply", "--request-timeout=5s", "-n", "backend", "-f", "-"],
                &serde_json::to_string(&crate::load::policy("after-etcd")).expect("json"),
            );
            if out.status.success() {
                stored = Some(resumed.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "[etcd-stop] etcd stopped 30 s: the forbidden policy refused in {refused_in:?}; an allowed create judged by tierguard \
         ({judged} admission answers) then {} ({}); readiness polls: {} of {} ready; stepped down as leader after {stepped_down:?}; \
         after etcd resumed: an allowed create stored after {stored:?}, leading again after {leads_again:?}",
        if allowed.status.success() {
            "stored"
        } else {
            "failed in the API server"
        },
        String::from_utf8_lossy(&allowed.stderr).trim(),
        ready.iter().filter(|r| **r == Some(200)).count(),
        ready.len(),
    );
    assert_refused_by_tierguard(&refused, "etcd stopped");
    assert!(
        refused_in < Duration::from_secs(5),
        "tierguard's refusal took {refused_in:?}"
    );
    assert!(judged >= 1.0, "tierguard did not answer the allowed create");
    assert!(
        ready.iter().all(|r| *r == Some(200)),
        "tierguard left readiness while etcd was stopped: {ready:?}"
    );
    // The Lease cannot be renewed: the leader stops within the renew
    // deadline (lease 15 s - renew 5 s), plus a renew period to notice.
    let stepped_down = stepped_down.expect("the leader stepped down while etcd was stopped");
    assert!(
        stepped_down <= Duration::from_secs(16),
        "stepped down only after {stepped_down:?}"
    );
    let stored = stored.expect("an allowed create was stored within 60 s of etcd resuming");
    leads_again.expect("tierguard leads again within 60 s of etcd resuming");
    assert_eq!(c.webhook_pid(), Some(pid), "tierguard was not restarted");
    let _ = stored;
    c.eventually(30, "the index holding every stored NetworkPolicy", || {
        indexed_policies(c.admin_port) == Some(stored_policies(&c))
    });
    let (refused, _) = refused_forbidden(&c, "10s");
    assert_refused_by_tierguard(&refused, "after etcd resumed");
}
