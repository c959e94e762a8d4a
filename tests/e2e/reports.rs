//! OpenReports on a real kube-apiserver: the OpenReports project's own CRDs
//! (`github.com/openreports/reports-api` v0.2.1, fetched from the Go module
//! proxy) installed, `serve` in audit mode. A Report per tier namespace and
//! a ClusterReport appear; a violating change admitted in audit mode shows
//! up within seconds in the breached namespace's Report, naming the policy
//! that opens it; nothing else is rewritten; fixed, it passes again; a
//! namespace leaving its tier loses its Report; a restart rewrites nothing.

use std::collections::BTreeMap;

use serde_json::Value;

use super::harness::Cluster;
use super::{SERIAL, VIOLATIONS, expect_ok, said, tutorial};

const NAME: &str = "tierguard-three-tier";

/// Every Report of tierguard's, by namespace.
fn reports(c: &Cluster) -> BTreeMap<String, Value> {
    let out = said(c.kubectl(&[
        "get",
        "reports.openreports.io",
        "-A",
        "-l",
        "app.kubernetes.io/managed-by=tierguard",
        "-o",
        "json",
    ]));
    expect_ok(&out, "kubectl get reports");
    let list: Value = serde_json::from_str(&out.stdout).expect("json");
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            assert_eq!(r["metadata"]["name"], NAME, "{r}");
            let ns = r["metadata"]["namespace"].as_str().unwrap_or_default();
            (ns.to_string(), r.clone())
        })
        .collect()
}

fn cluster_report(c: &Cluster) -> Option<Value> {
    let out = said(c.kubectl(&["get", "clusterreports.openreports.io", NAME, "-o", "json"]));
    out.ok
        .then(|| serde_json::from_str(&out.stdout).expect("json"))
}

fn summary(r: &Value) -> (i64, i64) {
    (
        r["summary"]["pass"].as_i64().unwrap_or(-1),
        r["summary"]["fail"].as_i64().unwrap_or(-1),
    )
}

fn versions(c: &Cluster) -> BTreeMap<String, String> {
    let mut v: BTreeMap<String, String> = reports(c)
        .into_iter()
        .map(|(ns, r)| {
            (
                ns,
                r["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    if let Some(cr) = cluster_report(c) {
        v.insert(
            "(cluster)".into(),
            cr["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    v
}

/// `tierguard_census_counts_total`.
fn counts(c: &Cluster) -> u64 {
    let (_, m) = super::harness::admin_get(c.admin_port, "/metrics").expect("/metrics");
    m.lines()
        .find(|l| l.starts_with("tierguard_census_counts_total "))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// `tierguard_report_writes_total`, summed over its series.
fn writes(c: &Cluster) -> u64 {
    let (_, m) = super::harness::admin_get(c.admin_port, "/metrics").expect("/metrics");
    m.lines()
        .filter(|l| l.starts_with("tierguard_report_writes_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// `tierguard check --cluster` against the cluster.
fn check_cluster(c: &Cluster, policy: &[&str], output: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tierguard"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["check", "--cluster", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .args(policy)
        .args(["-o", output])
        .output()
        .expect("tierguard check runs")
}

/// Results without their timestamps (`check` stamps them now).
fn untimed(results: &Value) -> Value {
    let mut r = results.clone();
    for x in r.as_array_mut().into_iter().flatten() {
        if let Some(o) = x.as_object_mut() {
            o.remove("timestamp");
        }
    }
    r
}

fn apply(c: &Cluster, example: &str) {
    let f = format!("{VIOLATIONS}/{example}/apply.yaml");
    expect_ok(&said(c.kubectl(&["apply", "-f", &f])), &f);
}

#[test]
fn reports_follow_the_cluster_within_seconds_and_unchanged_ones_are_not_rewritten() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut c) = Cluster::start_control_plane("reports", &["--mode", "audit"], "") else {
        return;
    };
    c.guard_namespace();
    c.install_openreports_crds();
    c.start_webhook();
    c.register();
    tutorial(&c);

    // One passing Report per tier namespace, and the ClusterReport.
    c.eventually(30, "a passing Report in each tier namespace", || {
        let r = reports(&c);
        r.keys().map(String::as_str).collect::<Vec<_>>() == ["backend", "database", "frontend"]
            && r.values().all(|r| summary(r) == (1, 0))
    });
    c.eventually(10, "a passing ClusterReport", || {
        cluster_report(&c).is_some_and(|r| summary(&r) == (1, 0))
    });
    let db = &reports(&c)["database"];
    assert_eq!(db["source"], "tierguard");
    assert_eq!(db["scope"]["kind"], "Namespace");
    assert_eq!(db["scope"]["name"], "database");
    assert_eq!(db["results"][0]["policy"], "three-tier");
    assert_eq!(db["results"][0]["result"], "pass");
    let table = said(c.kubectl(&["get", "reports.openreports.io", "-n", "database"]));
    expect_ok(&table, "kubectl get reports");
    assert!(table.stdout.contains("PASS"), "{}", table.stdout);

    // A change that opens nothing: recounted, nothing rewritten.
    let before = versions(&c);
    let written = writes(&c);
    let counted = counts(&c);
    expect_ok(
        &said(c.kubectl(&["create", "namespace", "scratch"])),
        "create namespace scratch",
    );
    c.eventually(15, "a recount after the change", || counts(&c) > counted);
    // The publisher acts on the count it is told of.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(versions(&c), before, "an unchanged report was rewritten");
    assert_eq!(writes(&c), written, "writes without a change");

    // A second replica counts too, but only the leader writes.
    let other = c.start_replica("follower", &[]);
    let metrics_of = |port: u16| {
        super::harness::admin_get(port, "/metrics")
            .map(|(_, m)| m)
            .unwrap_or_default()
    };

    // A violation admitted in audit mode: within seconds, in database's Report.
    let t0 = std::time::Instant::now();
    apply(&c, "01-database-open-to-frontend");
    c.eventually(15, "the violation in database's Report", || {
        summary(&reports(&c)["database"]).1 > 0
    });
    eprintln!("violation reported after {:?}", t0.elapsed());
    let db = &reports(&c)["database"];
    let fail = db["results"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["properties"]["from"] == "tier:frontend")
        .unwrap_or_else(|| panic!("frontend -> database not reported: {db}"));
    assert_eq!(fail["result"], "fail");
    assert_eq!(fail["rule"], "database ingress");
    assert_eq!(fail["severity"], "high");
    assert!(
        fail["message"]
            .as_str()
            .is_some_and(|m| m.contains("tier frontend -> tier database on TCP/5432")),
        "{fail}"
    );
    assert!(
        fail["resources"].as_array().into_iter().flatten().any(|o| {
            o["kind"] == "NetworkPolicy"
                && o["namespace"] == "database"
                && o["name"] == "allow-frontend-to-database"
        }),
        "{fail}"
    );
    c.eventually(15, "the follower counts the violation", || {
        metrics_of(other.admin_port).lines().any(|l| {
            l.starts_with("tierguard_violations_present{policy=\"three-tier\"} ")
                && !l.ends_with(" 0")
        })
    });
    let m = metrics_of(other.admin_port);
    assert!(
        m.lines().any(|l| l == "tierguard_controller_leader 0"),
        "{m}"
    );
    assert!(
        !m.lines()
            .any(|l| l.starts_with("tierguard_report_writes_total{")),
        "the follower wrote reports:\n{m}"
    );
    drop(other);

    // `check --cluster` prints the same report, under the file or the
    // cluster's IsolationPolicy object.
    expect_ok(&said(c.kubectl(&["apply", "-k", "deploy/crd"])), "the CRD");
    c.wait_established("tierguard.io", &["isolationpolicies"]);
    expect_ok(
        &said(c.kubectl(&["apply", "-f", "policies/three-tier.yaml"])),
        "the policy as an object",
    );
    let published = reports(&c);
    for policy in [
        &["--policy", "policies/three-tier.yaml"][..],
        &["--policy-object", "three-tier"],
    ] {
        let o = check_cluster(&c, policy, "openreports");
        assert_eq!(
            o.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let docs: Vec<Value> =
            serde_yaml_ng::Deserializer::from_str(&String::from_utf8_lossy(&o.stdout))
                .map(|d| serde::Deserialize::deserialize(d).expect("a YAML document"))
                .collect();
        for d in docs.iter().filter(|d| d["kind"] == "Report") {
            let ns = d["metadata"]["namespace"].as_str().unwrap_or_default();
            let p = published
                .get(ns)
                .unwrap_or_else(|| panic!("{ns} not published"));
            assert_eq!(untimed(&d["results"]), untimed(&p["results"]), "{ns}");
            assert_eq!(d["summary"], p["summary"], "{ns}");
        }
        assert_eq!(
            docs.iter().filter(|d| d["kind"] == "Report").count(),
            published.len()
        );
        let cr = cluster_report(&c).expect("the ClusterReport");
        let printed = docs
            .iter()
            .find(|d| d["kind"] == "ClusterReport")
            .expect("check prints the ClusterReport");
        assert_eq!(untimed(&printed["results"]), untimed(&cr["results"]));
        assert_eq!(printed["scope"], cr["scope"]);
    }
    let o = check_cluster(&c, &[], "text");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("tier frontend -> tier database on TCP/5432"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    let after = versions(&c);
    for ns in ["backend", "frontend", "(cluster)"] {
        assert_eq!(after[ns], before[ns], "{ns}'s report was rewritten");
    }

    // A namespace whose name and tier label disagree (admitted in audit
    // mode): the ClusterReport.
    expect_ok(
        &said(c.kubectl(&[
            "label",
            "namespace",
            "database",
            "tierguard.io/tier=frontend",
        ])),
        "label database into frontend",
    );
    c.eventually(15, "the conflict in the ClusterReport", || {
        cluster_report(&c).is_some_and(|r| {
            summary(&r).1 == 1
                && r["results"][0]["resources"][0]
                    == serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "name": "database"})
        })
    });
    expect_ok(
        &said(c.kubectl(&["label", "namespace", "database", "tierguard.io/tier-"])),
        "unlabel database",
    );
    c.eventually(15, "the ClusterReport passes again", || {
        cluster_report(&c).is_some_and(|r| summary(&r) == (1, 0))
    });

    // Fixed: database passes again.
    expect_ok(
        &said(c.kubectl(&[
            "delete",
            "-f",
            &format!("{VIOLATIONS}/01-database-open-to-frontend/apply.yaml"),
        ])),
        "delete the violating policy",
    );
    c.eventually(15, "database passes again", || {
        summary(&reports(&c)["database"]) == (1, 0)
    });

    // A namespace joined by label gets a Report, and loses it on leaving.
    expect_ok(
        &said(c.kubectl(&["create", "namespace", "shop"])),
        "create namespace shop",
    );
    expect_ok(
        &said(c.kubectl(&["label", "namespace", "shop", "tierguard.io/tier=backend"])),
        "join shop to backend",
    );
    c.eventually(15, "shop's Report", || reports(&c).contains_key("shop"));
    expect_ok(
        &said(c.kubectl(&["label", "namespace", "shop", "tierguard.io/tier-"])),
        "shop leaves backend",
    );
    c.eventually(15, "shop's Report removed", || {
        !reports(&c).contains_key("shop")
    });

    // A restart keeps the findings' times: nothing is rewritten.
    c.eventually(15, "quiet", || {
        let v = versions(&c);
        std::thread::sleep(std::time::Duration::from_secs(3));
        versions(&c) == v
    });
    let before = versions(&c);
    c.stop_webhook();
    c.start_webhook();
    c.eventually(60, "the restarted replica leads, lists and counts", || {
        c.webhook_log().contains("publishing OpenReports")
            && super::harness::admin_get(c.admin_port, "/metrics").is_some_and(|(_, m)| {
                m.contains("tierguard_violations_present{policy=\"three-tier\"} 0")
            })
    });
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(versions(&c), before, "the restart rewrote reports");
    assert_eq!(writes(&c), 0, "the restarted replica wrote");
}
