//! `tierguard check`, `query` and `baseline` as a new user runs them from the
//! README, against the bundled examples. Reports are compared with golden
//! files in `tests/golden/`; run with `UPDATE_GOLDEN=1` to rewrite them after
//! an intended change, and review the diff.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

mod common;

use common::{stderr, stdout, tierguard};

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing {}; run with UPDATE_GOLDEN=1", path.display()));
    assert_eq!(
        want,
        actual,
        "{} differs (UPDATE_GOLDEN=1 rewrites it)",
        path.display()
    );
}

#[test]
fn the_tutorial_as_tierguard_leaves_it_is_clean() {
    let o = tierguard(&["check", "-f", "examples/three-tier"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        stdout(&o),
        "ok: no forbidden flow allowed (isolation policy three-tier)\n"
    );
}

/// (case directory, a line the report must contain)
const VIOLATIONS: &[(&str, &str)] = &[
    (
        "01-database-open-to-frontend",
        "opens: tier frontend -> tier database on TCP/5432",
    ),
    (
        "02-allow-all-ingress-in-backend",
        "opens: outside the cluster -> tier backend on all ports",
    ),
    (
        "03-delete-database-default-deny",
        "opens: tier frontend -> tier database on all ports",
    ),
    (
        "04-namespace-claims-name-backend",
        "opens: namespace reporting (not in a tier) -> tier database on TCP/5432",
    ),
    (
        "05-database-open-to-internet",
        "opens: outside the cluster -> tier database on TCP/5432",
    ),
    (
        "06-frontend-to-database-pair",
        "breaks: frontend egress (tier frontend)",
    ),
    (
        "07-selector-on-unprotected-label",
        "opens: any namespace outside the tiers -> tier database on TCP/5432",
    ),
    (
        "08-named-port-opens-every-port",
        "opens: tier frontend -> tier backend on TCP/1-79, TCP/81-65535",
    ),
    (
        "09-admin-accept-frontend-to-database",
        "opens: tier frontend -> tier database on TCP/5432",
    ),
];

fn check_case(case: &str, extra: &[&str]) -> Output {
    let dir = format!("examples/three-tier-violations/{case}");
    let mut args = vec![
        "check",
        "--base",
        "examples/three-tier",
        "-f",
        "examples/three-tier",
    ];
    let apply = format!("{dir}/apply.yaml");
    let delete = format!("{dir}/delete.yaml");
    if Path::new(env!("CARGO_MANIFEST_DIR")).join(&apply).exists() {
        args.extend(["-f", &apply]);
    } else {
        args.extend(["--without", &delete]);
    }
    args.extend(extra);
    tierguard(&args)
}

#[test]
fn each_mistake_is_reported_with_the_flow_it_opens() {
    for (case, line) in VIOLATIONS {
        let o = check_case(case, &[]);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{case}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        let out = stdout(&o);
        assert!(
            out.lines().any(|l| l.trim() == *line),
            "{case}: no line {line:?} in\n{out}"
        );
        golden(&format!("violations/{case}.txt"), &out);
    }
}

#[test]
fn every_mistake_is_also_visible_without_a_base() {
    // The whole state with the mistake applied is not clean either.
    let o = tierguard(&[
        "check",
        "-f",
        "examples/three-tier",
        "-f",
        "examples/three-tier-violations/01-database-open-to-frontend/apply.yaml",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("tier frontend -> tier database on TCP/5432"));
}

#[test]
fn check_json_is_one_object_with_structured_flows() {
    let o = check_case("01-database-open-to-frontend", &["-o", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["clean"], false);
    assert_eq!(v["relativeToBase"], true);
    // Ends are structured, not prose.
    assert_eq!(
        v["flows"][0]["from"],
        serde_json::json!({"kind": "tier", "tier": "frontend", "namespace": "frontend"})
    );
    assert_eq!(v["flows"][0]["to"]["tier"], "database");
    assert_eq!(v["flows"][0]["wall"], "ingress");
    assert_eq!(v["flows"][0]["ports"], "TCP/5432");
    assert_eq!(
        v["flows"][0]["causes"][0][0]["rule"],
        "database/allow-frontend-to-database ingress[0]"
    );
    // Grouped by cause: one entry for the rule, naming what it opens.
    assert_eq!(v["byCause"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        v["byCause"][0]["cause"]["rule"],
        "database/allow-frontend-to-database ingress[0]"
    );
    assert_eq!(
        v["byCause"][0]["opens"][0]["description"],
        "tier frontend -> tier database"
    );
}

#[test]
fn query_explains_allowed_and_denied_connections() {
    let o = tierguard(&[
        "query",
        "-f",
        "examples/three-tier",
        "--from",
        "frontend/frontend-app",
        "--to",
        "backend/backend-app",
        "--port",
        "tcp/80",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    golden("query-frontend-backend.txt", &stdout(&o));

    let o = tierguard(&[
        "query",
        "-f",
        "examples/three-tier",
        "--from",
        "frontend/frontend-app",
        "--to",
        "database/database-app",
        "--port",
        "TCP/5432",
        "-o",
        "json",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "a denied connection is still an answer"
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["allowed"], false);
    assert_eq!(v["egress"]["allowed"], false);
    assert_eq!(
        v["ingress"]["isolatedBy"][0],
        "database/allow-backend-to-database"
    );

    let o = tierguard(&[
        "query",
        "-f",
        "examples/three-tier",
        "--from",
        "2001:db8::7",
        "--to",
        "frontend/frontend-app",
        "--port",
        "tcp/80",
        "-o",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["allowed"], true);
    assert_eq!(
        v["ingress"]["allowedBy"][0],
        "frontend/allow-external-to-frontend ingress[0]"
    );
}

#[test]
fn bad_input_is_an_error_with_exit_code_2() {
    let o = tierguard(&[
        "query",
        "-f",
        "examples/three-tier",
        "--from",
        "frontend/nope",
        "--to",
        "1.2.3.4",
        "--port",
        "tcp/80",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no Pod or workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob) named nope in namespace frontend"), "{}", stderr(&o));
    let o = tierguard(&[
        "query",
        "-f",
        "examples/three-tier",
        "--from",
        "1.2.3.4",
        "--to",
        "1.2.3.5",
        "--port",
        "icmp/1",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("protocol must be tcp, udp or sctp"));
    let o = tierguard(&["check", "-f", "examples/does-not-exist"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("examples/does-not-exist"));
    let o = tierguard(&[
        "check",
        "-f",
        "examples/three-tier",
        "--policy",
        "examples/three-tier/apps.yaml",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no IsolationPolicy document found"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn manifests_can_come_from_stdin() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tierguard"))
        .args([
            "check",
            "-f",
            "examples/three-tier",
            "-f",
            "-",
            "-o",
            "json",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let policy = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/three-tier-violations/02-allow-all-ingress-in-backend/apply.yaml"),
    )
    .expect("read");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&policy)
        .expect("write");
    let o = child.wait_with_output().expect("wait");
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(v["flows"].as_array().is_some_and(|f| !f.is_empty()));
}

#[test]
fn the_shipped_crd_is_what_tierguard_generates() {
    let o = tierguard(&["crd"]);
    assert_eq!(o.status.code(), Some(0));
    let crd = stdout(&o);
    for copy in [
        "deploy/crd/isolationpolicies.tierguard.io.yaml",
        "deploy/helm/tierguard/crds/isolationpolicies.tierguard.io.yaml",
    ] {
        let shipped = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(copy))
            .expect("read");
        assert_eq!(
            shipped, crd,
            "{copy} is stale: regenerate it with `tierguard crd > {copy}`"
        );
    }
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&crd).expect("yaml");
    assert_eq!(v["spec"]["scope"], "Cluster");
    assert_eq!(v["spec"]["versions"][0]["name"], "v1alpha1");
    assert_eq!(
        v["spec"]["versions"][0]["subresources"]["status"],
        serde_yaml_ng::Value::Mapping(Default::default())
    );
}

#[test]
fn every_policy_file_is_a_valid_isolation_policy_object() {
    // The file form and the object form are one schema: each policy in
    // policies/ converts to the CRD's type and validates the same way.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths: Vec<_> = std::fs::read_dir(root.join("policies"))
        .expect("policies/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    for e in std::fs::read_dir(root.join("examples")).expect("examples/") {
        paths.push(e.expect("entry").path().join("policy.yaml"));
    }
    paths.retain(|p| p.is_file());
    assert!(paths.len() > 1, "{paths:?}");
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("read");
        let file = tierguard::model::isolationpolicy::parse(&text, &path.display().to_string());
        let value: serde_json::Value = serde_yaml_ng::from_str(&text).expect("yaml");
        let object = tierguard::model::isolationpolicy::from_json(value);
        match (file, object) {
            (Ok(f), Ok(o)) => assert_eq!(f, o, "{}", path.display()),
            (f, o) => panic!(
                "{}: file {:?}, object {:?}",
                path.display(),
                f.err(),
                o.err()
            ),
        }
    }
}

#[test]
fn the_example_baseline_is_what_tierguard_generates() {
    let o = tierguard(&["baseline", "frontend", "backend", "database"]);
    assert_eq!(o.status.code(), Some(0));
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/three-tier/baseline.yaml"),
    )
    .expect("read");
    let body: String = example
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(body, stdout(&o));
}

#[test]
fn the_cluster_baseline_is_printed_and_check_judges_under_it() {
    let policy = "examples/three-tier-cluster-baseline/policy.yaml";
    let o = tierguard(&["baseline", "--policy", policy]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(
        out.matches("kind: ClusterNetworkPolicy").count(),
        13,
        "{out}"
    );
    assert!(
        !out.contains("kind: NetworkPolicy"),
        "no namespace named: {out}"
    );
    // An allow-all between pods in database, under the baseline the
    // controller keeps: shadowed, so clean; without it, a violation.
    let dir = std::env::temp_dir().join(format!("tierguard-cli-cnp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let baseline = dir.join("baseline.yaml");
    std::fs::write(&baseline, &out).expect("write");
    let open = dir.join("open.yaml");
    std::fs::write(
        &open,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: open, namespace: database}\nspec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {}}]}]}\n",
    )
    .expect("write");
    let (b, op) = (baseline.display().to_string(), open.display().to_string());
    let o = tierguard(&[
        "check",
        "--policy",
        policy,
        "-f",
        "examples/three-tier",
        "-f",
        &b,
        "-f",
        &op,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let o = tierguard(&[
        "check",
        "--policy",
        policy,
        "-f",
        "examples/three-tier",
        "-f",
        &op,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("tier frontend -> tier database"),
        "{}",
        stdout(&o)
    );
    // Without via: clusterNetworkPolicy a namespace must be named.
    let o = tierguard(&["baseline"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("spec.baseline.via is networkPolicy"),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn verbose_lists_skipped_kinds() {
    let o = tierguard(&["check", "-v", "-f", "examples/three-tier"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stderr(&o), "");
    let o = tierguard(&[
        "check",
        "-v",
        "-f",
        "examples/three-tier",
        "-f",
        "policies/three-tier.yaml",
    ]);
    assert!(
        stderr(&o).contains("skipped: tierguard.io/v1alpha1 IsolationPolicy three-tier"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_deployed_isolation_policy_is_the_repository_one() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped = std::fs::read_to_string(root.join("deploy/base/isolation-policy.yaml"))
        .expect("deploy copy");
    let source = std::fs::read_to_string(root.join("policies/three-tier.yaml")).expect("policy");
    assert_eq!(
        shipped, source,
        "copy policies/three-tier.yaml to deploy/base/isolation-policy.yaml"
    );
}

#[test]
fn query_exit_code_says_denied() {
    let q = |to: &str, port: &str, extra: &[&str]| {
        let mut a = vec![
            "query",
            "-f",
            "examples/three-tier",
            "--from",
            "frontend/frontend-app",
            "--to",
            to,
            "--port",
            port,
        ];
        a.extend_from_slice(extra);
        tierguard(&a).status.code()
    };
    assert_eq!(
        q("database/database-app", "tcp/5432", &["--exit-code"]),
        Some(1)
    );
    assert_eq!(
        q("backend/backend-app", "tcp/80", &["--exit-code"]),
        Some(0)
    );
    assert_eq!(
        q(
            "database/database-app",
            "tcp/5432",
            &["--exit-code", "-o", "json"]
        ),
        Some(1)
    );
    assert_eq!(q("database/database-app", "tcp/5432", &[]), Some(0));
    assert_eq!(q("database/nope", "tcp/5432", &["--exit-code"]), Some(2));
}

fn query(from: &str, to: &str, port: &str, extra: &[&str]) -> Output {
    let mut a = vec![
        "query",
        "-f",
        "tests/query-world",
        "--from",
        from,
        "--to",
        to,
        "--port",
        port,
    ];
    a.extend_from_slice(extra);
    tierguard(&a)
}

#[test]
fn query_port_can_be_a_named_container_port() {
    let o = query("app/client", "app/server", "TCP/http", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    golden("query-named-port.txt", &stdout(&o));
    let o = query("app/client", "app/server", "tcp/8080", &[]);
    assert!(stdout(&o).contains(": ALLOWED"), "{}", stdout(&o));
    // The name resolves with its protocol.
    let o = query("app/client", "app/server", "udp/http", &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(r#"--port "udp/http": app/server has no UDP container port named "http" (its named ports: TCP/http, UDP/dns)"#),
        "{}",
        stderr(&o)
    );
    let o = query("app/server", "203.0.113.9", "tcp/http", &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(r#"the named port "http" can only be resolved on a destination pod"#),
        "{}",
        stderr(&o)
    );
    let o = query("app/client", "app/server", "tcp/Not_A_Name", &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("a container port name"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_stray_json_file_in_a_directory_is_skipped_with_a_warning() {
    let o = query("app/client", "app/server", "tcp/8080", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "warning: tests/query-world/package.json (document 1): skipped: not a Kubernetes object (no apiVersion or kind)\n"
    );
}

#[test]
fn check_finds_its_policy_like_kubectl_finds_its_config_or_says_where_it_looked() {
    let dir = std::env::temp_dir().join(format!("tierguard-policy-{}", std::process::id()));
    let home = dir.join("home");
    std::fs::create_dir_all(&home).expect("mkdir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifests = root.join("examples/three-tier");
    let run = |cwd: &Path| {
        Command::new(env!("CARGO_BIN_EXE_tierguard"))
            .args(["check", "-f"])
            .arg(&manifests)
            .current_dir(cwd)
            .env_remove("TIERGUARD_POLICY")
            .env_remove("XDG_CONFIG_HOME")
            .env("HOME", &home)
            .output()
            .expect("runs")
    };
    let o = run(&dir);
    assert_eq!(o.status.code(), Some(2));
    let want = format!(
        "error: no isolation policy: --policy not given, TIERGUARD_POLICY not set, and none of tierguard.yaml, policies/three-tier.yaml, {} exists (pass --policy FILE)\n",
        home.join(".config/tierguard/policy.yaml").display()
    );
    assert_eq!(stderr(&o), want);
    let policy = std::fs::read(root.join("policies/three-tier.yaml")).expect("policy");
    std::fs::create_dir_all(home.join(".config/tierguard")).expect("mkdir");
    std::fs::write(home.join(".config/tierguard/policy.yaml"), &policy).expect("write");
    let o = run(&dir);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::write(dir.join("tierguard.yaml"), "not: a policy\n").expect("write");
    let o = run(&dir);
    assert_eq!(o.status.code(), Some(2), "./tierguard.yaml comes first");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn query_follows_the_exceptions_of_the_networkpolicy_reference() {
    // (from, to, port, golden): each DENIED by policies before, each an exception.
    let cases = [
        (
            "app/server",
            "app/server",
            "tcp/9999",
            "query-pod-to-itself.txt",
        ),
        (
            "192.168.1.10",
            "app/server",
            "tcp/9999",
            "query-from-local-node.txt",
        ),
        (
            "app/server",
            "192.168.1.10",
            "tcp/9999",
            "query-to-local-node.txt",
        ),
        (
            "10.244.2.7",
            "app/server",
            "tcp/http",
            "query-ip-of-a-pod.txt",
        ),
    ];
    for (from, to, port, name) in cases {
        let o = query(from, to, port, &["--exit-code"]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{from} -> {to}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        golden(name, &stdout(&o));
    }
    // Another node is not the pod's own: judged by ipBlocks, and denied here.
    for from in ["192.168.1.11", "192.168.1.12"] {
        let o = query(from, "app/server", "tcp/9999", &["--exit-code"]);
        assert_eq!(o.status.code(), Some(1), "{from}: {}", stdout(&o));
        assert!(
            stdout(&o).contains("the source is a node (no policy applies)"),
            "{}",
            stdout(&o)
        );
    }
    // Two pods of one workload are two pods: no exception.
    let o = query(
        "app/server-fleet",
        "app/server-fleet",
        "tcp/9999",
        &["--exit-code"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let o = query("10.244.2.7", "app/server", "tcp/http", &["-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["from"], "app/client");
    assert_eq!(
        v["notes"][0],
        "--from 10.244.2.7 is the IP of pod app/client: judged as that pod"
    );
}

#[test]
fn query_says_when_a_verdict_depends_on_an_unknown_address() {
    // worker has no status.podIP; its egress goes to 0.0.0.0/0 and ::/0,
    // which holds every address it could have: allowed, not denied.
    let o = query("app/worker", "203.0.113.9", "tcp/443", &["--exit-code"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let o = query("app/worker", "app/server", "tcp/8080", &["--exit-code"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "not allowed for certain: {out}");
    assert!(out.contains(": DEPENDS ON ADDRESS"), "{out}");
    assert!(
        out.contains("the address of app/worker is not known: allowed if it is in"),
        "{out}"
    );
    let o = query("app/worker", "app/server", "tcp/8080", &["-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["decision"], "dependsOnAddress");
    assert_eq!(v["allowed"], false);
    assert!(v["ingress"]["allowedIfAddressIn"][0].is_string(), "{v}");
}

#[test]
fn query_reads_an_address_in_node_cidrs_as_a_node() {
    // 192.168.7.7 is no Pod's and no Node object's: outside the cluster,
    // unless an isolation policy's cluster.nodeCIDRs hold it.
    let o = query("192.168.7.7", "app/server", "tcp/8080", &["-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["from"], "192.168.7.7 (outside the cluster)", "{v}");
    let dir = std::env::temp_dir().join(format!("tierguard-nodecidrs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let policy = dir.join("policy.yaml");
    let base = std::fs::read_to_string("policies/three-tier.yaml").expect("policy");
    let with_nodes = base.replace(
        "    serviceCIDRs: [10.96.0.0/12]",
        "    serviceCIDRs: [10.96.0.0/12]\n    nodeCIDRs: [192.168.0.0/16]",
    );
    assert_ne!(base, with_nodes, "the policy's cluster section moved");
    std::fs::write(&policy, with_nodes).expect("write");
    let p = policy.to_str().expect("utf-8 path");
    let o = query(
        "192.168.7.7",
        "app/server",
        "tcp/8080",
        &["--policy", p, "-o", "json"],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["from"], "192.168.7.7 (node)", "{v}");
    assert!(
        v["notes"][0]
            .as_str()
            .is_some_and(|n| n.contains("is in the isolation policy's nodeCIDRs: a node")),
        "{v}"
    );
    // A bad CIDR there is an error naming the field.
    std::fs::write(
        &policy,
        base.replace(
            "    serviceCIDRs: [10.96.0.0/12]",
            "    serviceCIDRs: [10.96.0.0/12]\n    nodeCIDRs: [10.0.0.0/33]",
        ),
    )
    .expect("write");
    let o = query("192.168.7.7", "app/server", "tcp/8080", &["--policy", p]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("spec.cluster.nodeCIDRs[0]"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn query_judges_any_pod_created_later_in_a_namespace() {
    // app/server admits app=client pods on 8080: some pods created in app
    // later are allowed (those labelled so), not all.
    let o = query("app/*", "app/server", "tcp/8080", &["--exit-code"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "not allowed for certain: {out}");
    assert!(
        out.contains("app/* (a pod created later) -> app/server on TCP/8080: DEPENDS ON THE POD"),
        "{out}"
    );
    assert!(
        out.contains("allowed for a pod with app=client; not for certain for one with"),
        "{out}"
    );
    let o = query("app/*", "app/server", "tcp/8080", &["-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["decision"], "dependsOnPod");
    assert_eq!(v["future"]["allowedWith"], "app=client");
    let o = query("nowhere/*", "app/server", "tcp/8080", &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("namespace nowhere is not in the manifests"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn query_answers_a_batch_in_order() {
    let dir = std::env::temp_dir().join(format!("tierguard-batch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let file = dir.join("questions.txt");
    std::fs::write(
        &file,
        "# the tutorial's checks\nfrontend/frontend-app backend/backend-app tcp/80\n\nfrontend/frontend-app database/database-app tcp/5432  # must fail\noutside frontend/frontend-app tcp/80\n",
    )
    .expect("write");
    let f = file.to_str().expect("utf-8 path");
    let o = tierguard(&[
        "query",
        "-f",
        "examples/three-tier",
        "--batch",
        f,
        "-o",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let got: Vec<&str> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|a| a["decision"].as_str().expect("decision"))
        .collect();
    assert_eq!(got, ["allowed", "denied", "allowed"]);
    let o = tierguard(&[
        "query",
        "-f",
        "examples/three-tier",
        "--batch",
        f,
        "--exit-code",
    ]);
    assert_eq!(o.status.code(), Some(1), "one question is denied");
    std::fs::write(&file, "frontend/frontend-app tcp/80\n").expect("write");
    let o = tierguard(&["query", "-f", "examples/three-tier", "--batch", f]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(":1: expected `FROM TO PROTO/PORT`"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn connectivity_matrix_in_every_format() {
    for (world, extra, name) in [
        ("examples/three-tier", &[][..], "tutorial"),
        ("tests/query-world", &[][..], "query-world"),
        (
            "tests/query-world",
            &["--explain"][..],
            "query-world-explain",
        ),
    ] {
        for (format, ext) in [
            ("text", "txt"),
            ("json", "json"),
            ("csv", "csv"),
            ("md", "md"),
            ("dot", "dot"),
        ] {
            let mut args = vec!["connectivity", "-f", world, "-o", format];
            args.extend_from_slice(extra);
            let o = tierguard(&args);
            assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
            golden(&format!("connectivity/{name}.{ext}"), &stdout(&o));
        }
    }
    // The tutorial's checks, read off the matrix.
    let o = tierguard(&["connectivity", "-f", "examples/three-tier", "-o", "csv"]);
    let csv = stdout(&o);
    for row in [
        "frontend/frontend-app (Deployment),backend/backend-app (Deployment),TCP/80,allowed,",
        "backend/backend-app (Deployment),database/database-app (Deployment),TCP/5432,allowed,",
        "outside,frontend/frontend-app (Deployment),TCP/80,allowed,",
        "frontend/frontend-app (Deployment),database/database-app (Deployment),TCP/5432,denied,",
    ] {
        assert!(csv.contains(row), "{row} missing from\n{csv}");
    }
    let o = tierguard(&["connectivity", "-f", "examples/three-tier", "-n", "nowhere"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--namespace nowhere"), "{}", stderr(&o));
}

#[test]
fn query_walks_through_the_cluster_tiers_side_by_side() {
    let o = tierguard(&[
        "query",
        "-f",
        "examples/three-tier",
        "-f",
        "examples/three-tier-violations/09-admin-accept-frontend-to-database/apply.yaml",
        "--from",
        "frontend/frontend-app",
        "--to",
        "database/database-app",
        "--port",
        "tcp/5432",
    ]);
    let out = stdout(&o);
    // frontend's own egress still denies; database's ingress is opened by
    // the Admin tier before any NetworkPolicy is consulted.
    assert!(out.contains("on TCP/5432: DENIED"), "{out}");
    assert!(out.contains("    Admin tier: no policy applies\n    NetworkPolicy tier: isolated by frontend/allow-frontend-egress-to-backend"), "{out}");
    assert!(out.contains("decided by: ClusterNetworkPolicy frontend-reads-database (Admin tier, priority 10) ingress[0] \"from-frontend\" Accept"), "{out}");
}

#[test]
fn check_prints_openreports_objects_for_the_state() {
    let o = tierguard(&[
        "check",
        "-f",
        "examples/three-tier",
        "-f",
        "examples/three-tier-violations/01-database-open-to-frontend/apply.yaml",
        "-o",
        "openreports",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let docs: Vec<serde_json::Value> = serde_yaml_ng::Deserializer::from_str(&stdout(&o))
        .map(|d| serde::Deserialize::deserialize(d).expect("a YAML document"))
        .collect();
    let kinds: Vec<(String, String)> = docs
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap_or_default().to_string(),
                d["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("Report".into(), "backend".into()),
            ("Report".into(), "database".into()),
            ("Report".into(), "frontend".into()),
            ("ClusterReport".to_string(), String::new()),
        ]
    );
    let db = &docs[1];
    assert_eq!(db["apiVersion"], "openreports.io/v1alpha1");
    assert_eq!(db["metadata"]["name"], "tierguard-three-tier");
    assert_eq!(db["summary"]["fail"], 1);
    assert_eq!(db["results"][0]["rule"], "database ingress");
    assert_eq!(
        db["results"][0]["resources"][0]["name"],
        "allow-frontend-to-database"
    );
    assert_eq!(docs[0]["summary"]["pass"], 1);
}

#[test]
fn cluster_flags_without_cluster_are_an_error() {
    let o = tierguard(&["check", "-f", "examples/three-tier", "--policy-object", "p"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("need --cluster"), "{}", stderr(&o));
    let o = tierguard(&[
        "check",
        "--base",
        "examples/three-tier",
        "-f",
        "examples/three-tier",
        "-o",
        "openreports",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("drop --base"), "{}", stderr(&o));
    let o = tierguard(&["check", "--cluster", "-f", "examples/three-tier"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
}
