//! The Helm chart (`deploy/helm/tierguard`), with helm v4 built from the Go
//! module proxy by `tests/tools/build.sh`:
//! - `helm lint --strict` passes and the schema refuses bad values;
//! - `helm template` with the defaults renders the objects `deploy/base`
//!   renders (labels aside), plus the serving certificate;
//! - `helm install` into a real kube-apiserver, then `tierguard serve` run
//!   with what the chart installed — its Secret's certificate, its
//!   ConfigMap's policy, its Deployment's environment, its service
//!   account's token (so only the chart's RBAC) — is reached through the
//!   chart's Service and webhook configurations, and acts; `helm upgrade`
//!   keeps the certificate; `helm uninstall` takes the webhooks away.
//!
//! The API server reaches the Service's endpoints itself
//! (`--enable-aggregator-routing`), from an EndpointSlice this test writes
//! (no kubelet runs the Deployment's pods), on this machine's first global
//! IPv4 address (endpoints may not be loopback).

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output};

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use super::harness::{self, Cluster, REPO, Replica};
use super::{SERIAL, expect_ok, expect_refused, said};

const CHART: &str = "deploy/helm/tierguard";

fn helm() -> Option<String> {
    harness::go_tool("helm")
}

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .current_dir(REPO)
        .output()
        .unwrap_or_else(|e| panic!("{bin} runs: {e}"))
}

/// Every document of a multi-document YAML stream, as JSON values.
fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).expect("rendered YAML parses"))
        .filter(|v| !v.is_null())
        .collect()
}

fn key(obj: &Value) -> String {
    format!(
        "{} {}/{}",
        obj["kind"].as_str().unwrap_or_default(),
        obj["metadata"]["namespace"].as_str().unwrap_or_default(),
        obj["metadata"]["name"].as_str().unwrap_or_default()
    )
}

fn replace_strings(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::String(s) if s == from => *s = to.to_string(),
        Value::Array(items) => items.iter_mut().for_each(|i| replace_strings(i, from, to)),
        Value::Object(map) => map.values_mut().for_each(|i| replace_strings(i, from, to)),
        _ => {}
    }
}

/// The objects by kind/namespace/name, made comparable: labels and
/// annotations set aside (returned apart), the policy file parsed, the
/// webhooks' caBundle and the pod template's annotations dropped.
fn comparable(objects: Vec<Value>) -> BTreeMap<String, (Value, Value)> {
    objects
        .into_iter()
        .map(|mut obj| {
            let labels = obj["metadata"]["labels"].take();
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("labels");
                m.remove("annotations");
            }
            if obj["kind"] == "ConfigMap"
                && let Some(text) = obj["data"]["isolation-policy.yaml"].as_str()
            {
                let parsed: Value = serde_yaml_ng::from_str(text).expect("the policy parses");
                obj["data"]["isolation-policy.yaml"] = parsed;
            }
            if obj["kind"] == "Deployment"
                && let Some(m) = obj["spec"]["template"]["metadata"].as_object_mut()
            {
                m.remove("annotations");
            }
            if let Some(hooks) = obj["webhooks"].as_array_mut() {
                for h in hooks {
                    if let Some(c) = h["clientConfig"].as_object_mut() {
                        c.remove("caBundle");
                    }
                }
            }
            (key(&obj), (obj, labels))
        })
        .collect()
}

#[test]
fn helm_chart_renders_what_deploy_base_does() {
    let Some(helm) = helm() else { return };
    let Some(kubectl) = harness::kubectl_binary() else {
        assert!(
            !harness::required(),
            "no kubectl, but TIERGUARD_E2E=required"
        );
        return;
    };
    let lint = said(run(&helm, &["lint", "--strict", CHART]));
    expect_ok(&lint, "helm lint --strict");
    // The schema refuses what tierguard would refuse at start.
    for (set, fragment) in [
        ("mode=audti", "/mode"),
        ("certificates.source=vault", "/certificates/source"),
        ("failurePolicy.pods=Open", "/failurePolicy/pods"),
        ("replicaz=2", "replicaz"),
    ] {
        let out = said(run(&helm, &["template", "tierguard", CHART, "--set", set]));
        assert!(!out.ok, "helm template --set {set} rendered");
        assert!(out.stderr.contains(fragment), "--set {set}: {}", out.stderr);
    }

    // deploy/base's image is tierguard:latest (set with `kustomize edit set
    // image`); the chart's defaults to its appVersion.
    let template = |extra: &[&str]| {
        let mut args = vec!["template", "tierguard", CHART, "--namespace", "tierguard"];
        args.extend(extra);
        said(run(&helm, &args))
    };
    let rendered = template(&["--set", "image.tag=latest", "--include-crds"]);
    expect_ok(&rendered, "helm template");
    // policySource=object renders the same policy as an object, valid and
    // equal to the ConfigMap's file, and no ConfigMap.
    let as_object = template(&["--set", "policySource=object"]);
    expect_ok(&as_object, "helm template --set policySource=object");
    let objects = documents(&as_object.stdout);
    assert!(
        !objects.iter().any(|o| o["kind"] == "ConfigMap"),
        "a ConfigMap with policySource=object"
    );
    let isop = objects
        .iter()
        .find(|o| o["kind"] == "IsolationPolicy")
        .cloned()
        .expect("the chart renders the IsolationPolicy");
    let file = documents(&rendered.stdout)
        .into_iter()
        .find(|o| o["kind"] == "ConfigMap")
        .and_then(|o| {
            o["data"]["isolation-policy.yaml"]
                .as_str()
                .map(str::to_string)
        })
        .expect("the policy ConfigMap");
    assert_eq!(
        tierguard::model::isolationpolicy::from_json(isop).expect("a valid object"),
        tierguard::model::isolationpolicy::parse(&file, "ConfigMap").expect("a valid file"),
    );
    let kustomized = said(run(&kubectl, &["kustomize", "deploy/base"]));
    expect_ok(&kustomized, "kubectl kustomize deploy/base");

    let mut from_helm = documents(&rendered.stdout);
    let mut from_base = documents(&kustomized.stdout);
    // The chart generates the serving certificate; deploy/base leaves it to
    // an overlay or `tierguard certs`.
    let secret = from_helm
        .iter()
        .position(|o| o["kind"] == "Secret")
        .map(|i| from_helm.remove(i))
        .expect("the chart renders the serving certificate");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    for k in ["tls.crt", "tls.key", "ca.crt"] {
        assert!(
            secret["data"][k].as_str().is_some_and(|s| !s.is_empty()),
            "Secret lacks {k}"
        );
    }
    // Helm installs into the release namespace (--create-namespace).
    from_base.retain(|o| o["kind"] != "Namespace");
    // kustomize's configMapGenerator suffixes a content hash.
    let hashed = from_base
        .iter()
        .find(|o| o["kind"] == "ConfigMap")
        .and_then(|o| o["metadata"]["name"].as_str())
        .expect("deploy/base has the policy ConfigMap")
        .to_string();
    assert!(hashed.starts_with("tierguard-policy-"), "{hashed}");
    for o in &mut from_base {
        replace_strings(o, &hashed, "tierguard-policy");
    }
    // Both sides' caBundle is set apart: the chart's is its CA.
    let ca = secret["data"]["ca.crt"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for o in &from_helm {
        for h in o["webhooks"].as_array().into_iter().flatten() {
            assert_eq!(
                h["clientConfig"]["caBundle"],
                Value::String(ca.clone()),
                "{}",
                h["name"]
            );
        }
    }

    let helm_objects = comparable(from_helm);
    let base_objects = comparable(from_base);
    let helm_keys: BTreeSet<_> = helm_objects.keys().collect();
    let base_keys: BTreeSet<_> = base_objects.keys().collect();
    assert_eq!(
        helm_keys, base_keys,
        "the chart and deploy/base render different objects"
    );
    for (k, (base, base_labels)) in &base_objects {
        let (chart, chart_labels) = &helm_objects[k];
        assert!(
            base == chart,
            "{k} differs:\n--- deploy/base\n{}\n--- chart\n{}",
            serde_json::to_string_pretty(base).unwrap_or_default(),
            serde_json::to_string_pretty(chart).unwrap_or_default()
        );
        for (l, v) in base_labels.as_object().into_iter().flatten() {
            assert_eq!(&chart_labels[l], v, "{k}: label {l}");
        }
    }
}

/// This machine's first global IPv4 address (an EndpointSlice may not
/// point at loopback).
fn host_ip() -> Option<String> {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let mut words = l.split_whitespace();
        words.find(|w| *w == "inet")?;
        Some(words.next()?.split('/').next()?.to_string())
    })
}

fn json(c: &Cluster, args: &[&str]) -> Value {
    let out = said(c.kubectl(args));
    expect_ok(&out, &args.join(" "));
    serde_json::from_str(&out.stdout).expect("kubectl -o json")
}

/// `kubectl get KIND NAME [-n NAMESPACE] -o json`.
fn object(c: &Cluster, kind: &str, name: &str, namespace: Option<&str>) -> Value {
    let mut args = vec!["get", kind, name, "-o", "json"];
    if let Some(ns) = namespace {
        args.extend(["-n", ns]);
    }
    json(c, &args)
}

fn b64(s: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s.as_str().unwrap_or_default())
        .expect("base64")
}

/// The series names a `/metrics` page can have: from its `# TYPE` lines,
/// with the suffixes of each type.
fn exported(metrics: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in metrics.lines() {
        let mut w = line.split_whitespace();
        if (w.next(), w.next()) != (Some("#"), Some("TYPE")) {
            continue;
        }
        let (Some(name), Some(kind)) = (w.next(), w.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

#[test]
fn helm_install_guards_a_real_api_server() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(helm) = helm() else { return };
    let Some(ip) = host_ip() else {
        assert!(
            !harness::required(),
            "no global IPv4 address for the webhook's endpoint"
        );
        eprintln!("\n!!!!!!!! HELM INSTALL TEST SKIPPED: no global IPv4 address !!!!!!!!\n");
        return;
    };
    let Some(c) = Cluster::start_control_plane("helm", &[], "--enable-aggregator-routing=true")
    else {
        return;
    };
    let kubeconfig = c.kubeconfig.display().to_string();
    let helm_cmd = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--namespace", "tierguard", "--kubeconfig", &kubeconfig]);
        said(run(&helm, &all))
    };

    let install = helm_cmd(&["install", "tierguard", CHART, "--create-namespace"]);
    expect_ok(&install, "helm install");
    assert!(
        install
            .stdout
            .contains("guards the tiers of isolation policy three-tier in enforce mode"),
        "{}",
        install.stdout
    );
    for obj in [
        "deployment/tierguard",
        "service/tierguard",
        "poddisruptionbudget/tierguard",
        "serviceaccount/tierguard",
        "secret/tierguard-tls",
        "configmap/tierguard-policy",
        "role/tierguard-leader-election",
    ] {
        expect_ok(&said(c.kubectl(&["get", "-n", "tierguard", obj])), obj);
    }

    // What the chart installed, as a pod of its Deployment would see it.
    let secret = object(&c, "secret", "tierguard-tls", Some("tierguard"));
    let vwc = object(&c, "validatingwebhookconfiguration", "tierguard", None);
    for h in vwc["webhooks"].as_array().expect("webhooks") {
        assert_eq!(
            h["clientConfig"]["caBundle"], secret["data"]["ca.crt"],
            "{}: caBundle is not the Secret's CA",
            h["name"]
        );
        assert_eq!(h["clientConfig"]["service"]["name"], "tierguard");
    }
    // The OpenReports CRDs, so the replica publishes (with the chart's RBAC).
    c.install_openreports_crds();
    let dir = c.dir.join("helm-pod");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("tls.crt"), b64(&secret["data"]["tls.crt"])).expect("tls.crt");
    std::fs::write(dir.join("tls.key"), b64(&secret["data"]["tls.key"])).expect("tls.key");
    let cm = object(&c, "configmap", "tierguard-policy", Some("tierguard"));
    std::fs::write(
        dir.join("isolation-policy.yaml"),
        cm["data"]["isolation-policy.yaml"]
            .as_str()
            .expect("policy in the ConfigMap"),
    )
    .expect("policy");
    // The service account's own token: the replica has the chart's RBAC only.
    let token = said(c.kubectl(&[
        "create",
        "token",
        "tierguard",
        "-n",
        "tierguard",
        "--duration",
        "1h",
    ]));
    expect_ok(&token, "kubectl create token");
    let admin: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&c.kubeconfig).expect("kubeconfig"))
            .expect("kubeconfig parses");
    let cluster = &admin["clusters"][0]["cluster"];
    let sa_kubeconfig = serde_json::json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "sa", "user": {"token": token.stdout.trim()}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa"}}],
    });
    std::fs::write(dir.join("kubeconfig"), sa_kubeconfig.to_string()).expect("kubeconfig");
    let deployment = object(&c, "deployment", "tierguard", Some("tierguard"));
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let webhook_port = harness::free_port();
    let admin_port = harness::free_port();
    let log = dir.join("tierguard.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tierguard"));
    cmd.current_dir(REPO)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for e in container["env"].as_array().expect("env") {
        if let (Some(k), Some(v)) = (e["name"].as_str(), e["value"].as_str()) {
            cmd.env(k, v);
        }
    }
    // The downward API's values, and the mounts at their paths here.
    cmd.env("TIERGUARD_LEADER_ELECTION_NAMESPACE", "tierguard")
        .env("POD_NAME", "tierguard-0")
        .env("TIERGUARD_TLS_CERT", dir.join("tls.crt"))
        .env("TIERGUARD_TLS_KEY", dir.join("tls.key"))
        .env("TIERGUARD_POLICY", dir.join("isolation-policy.yaml"))
        .env("RUST_LOG", "info");
    let args: Vec<String> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    assert_eq!(args, ["serve"]);
    cmd.args(&args)
        .arg("--listen")
        .arg(format!("{ip}:{webhook_port}"))
        .arg("--admin-listen")
        .arg(format!("127.0.0.1:{admin_port}"))
        .arg("--kubeconfig")
        .arg(dir.join("kubeconfig"))
        .arg("--discovery-interval-seconds")
        .arg("1");
    let file = std::fs::File::create(&log).expect("log");
    cmd.stdout(file.try_clone().expect("log")).stderr(file);
    let replica = Replica {
        name: "helm".into(),
        child: Some(cmd.spawn().expect("tierguard serve starts")),
        webhook_port,
        admin_port,
        log: log.clone(),
    };
    harness::wait_ready(admin_port, &log);
    // The Service's endpoint: what the endpoints controller would write for
    // a ready pod of the Deployment.
    let slice = format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: tierguard-helm\n  namespace: tierguard\n  labels: {{kubernetes.io/service-name: tierguard}}\naddressType: IPv4\nendpoints:\n- addresses: [\"{ip}\"]\n  conditions: {{ready: true}}\nports:\n- {{name: webhook, port: {webhook_port}, protocol: TCP}}\n"
    );
    expect_ok(
        &said(c.kubectl_stdin(&["apply", "-f", "-"], &slice)),
        "the EndpointSlice",
    );

    // The API server learns the endpoint from its informer: wait until a
    // dry run reaches tierguard.
    c.eventually(30, "the API server routes the Service to tierguard", || {
        let _ = c.kubectl(&["create", "namespace", "probe", "--dry-run=server"]);
        replica.admissions_answered().unwrap_or_default() > 0
    });

    // The webhooks act, through the Service.
    expect_ok(
        &said(c.kubectl(&["create", "namespace", "database"])),
        "create database",
    );
    let name_label = said(c.kubectl(&[
        "get",
        "namespace",
        "database",
        "-o",
        "jsonpath={.metadata.labels.name}",
    ]));
    assert_eq!(
        name_label.stdout,
        "database",
        "the mutating webhook did not set the name label; log:\n{}",
        replica.log()
    );
    // The baseline controller, with the chart's RBAC only, injects the baseline.
    c.eventually(30, "the baseline in database", || {
        c.has_policy("database", "tierguard-default-deny")
            && c.has_policy("database", "tierguard-allow-dns")
    });
    expect_refused(
        &said(c.kubectl(&[
            "apply",
            "-f",
            "examples/three-tier-violations/01-database-open-to-frontend/apply.yaml",
        ])),
        "database opened to frontend",
        "admission webhook \"networkpolicies.validate.tierguard.io\" denied the request: tierguard: NetworkPolicy database/allow-frontend-to-database would open 1 forbidden flow",
    );
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: db, namespace: database}\nspec: {containers: [{name: c, image: postgres:16}]}\n";
    expect_ok(
        &said(c.kubectl_stdin(&["apply", "-f", "-"], pod)),
        "a pod once the baseline is in place",
    );
    // The leader publishes database's Report with the chart's RBAC only.
    c.eventually(30, "database's OpenReports Report", || {
        let out = said(c.kubectl(&[
            "get",
            "reports.openreports.io",
            "tierguard-three-tier",
            "-n",
            "database",
            "-o",
            "jsonpath={.summary.pass}",
        ]));
        out.ok && out.stdout == "1"
    });
    assert!(
        !replica.log().contains("cannot write a report"),
        "{}",
        replica.log()
    );

    // Every metric deploy/monitoring's alerts and dashboard name is one serve exports.
    // The census's total appears at its first count (seconds after sync).
    let used = super::monitoring::metric_names();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (status, metrics) = loop {
        let got = harness::admin_get(admin_port, "/metrics").expect("/metrics answers");
        if used.is_subset(&exported(&got.1)) || std::time::Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert_eq!(status, 200);
    let have = exported(&metrics);
    assert!(
        used.len() >= 10,
        "deploy/monitoring names too few metrics: {used:?}"
    );
    let missing: Vec<_> = used.difference(&have).collect();
    assert!(
        missing.is_empty(),
        "deploy/monitoring names metrics serve does not export: {missing:?}\nexported: {have:?}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l == "tierguard_controller_leader 1"),
        "this replica should lead:\n{metrics}"
    );

    // An upgrade keeps the certificate (the chart reads it back) and rolls
    // the pods for the changed policy.
    let checksum = |d: &Value| {
        d["spec"]["template"]["metadata"]["annotations"]["tierguard.io/policy-checksum"].clone()
    };
    let before = checksum(&deployment);
    let upgrade = helm_cmd(&["upgrade", "tierguard", CHART, "--set", "mode=audit"]);
    expect_ok(&upgrade, "helm upgrade --set mode=audit");
    let after_secret = object(&c, "secret", "tierguard-tls", Some("tierguard"));
    assert_eq!(
        after_secret["data"], secret["data"],
        "helm upgrade replaced the serving certificate"
    );
    let after_vwc = object(&c, "validatingwebhookconfiguration", "tierguard", None);
    assert_eq!(
        after_vwc["webhooks"][0]["clientConfig"]["caBundle"],
        secret["data"]["ca.crt"]
    );
    let after = object(&c, "deployment", "tierguard", Some("tierguard"));
    assert_ne!(
        checksum(&after),
        before,
        "the policy changed but the pod template did not"
    );
    let cm = object(&c, "configmap", "tierguard-policy", Some("tierguard"));
    assert!(
        cm["data"]["isolation-policy.yaml"]
            .as_str()
            .unwrap_or_default()
            .contains("mode: audit")
    );

    // policySource=object: the policy becomes an IsolationPolicy object (its
    // CRD came from the chart's crds/), serve is pointed at it, and the
    // chart's webhook has tierguard validate edits to it.
    let upgrade = helm_cmd(&[
        "upgrade",
        "tierguard",
        CHART,
        "--set",
        "mode=audit",
        "--set",
        "policySource=object",
    ]);
    expect_ok(&upgrade, "helm upgrade --set policySource=object");
    let isop = object(&c, "isolationpolicy", "three-tier", None);
    assert_eq!(isop["spec"]["mode"], "audit");
    assert_eq!(
        isop["metadata"]["labels"]["app.kubernetes.io/instance"],
        "tierguard"
    );
    let env = object(&c, "deployment", "tierguard", Some("tierguard"))["spec"]["template"]["spec"]
        ["containers"][0]["env"]
        .clone();
    let names: Vec<&str> = env
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(
        names.contains(&"TIERGUARD_POLICY_OBJECT") && !names.contains(&"TIERGUARD_POLICY"),
        "{names:?}"
    );
    assert!(
        !c.kubectl(&["get", "configmap", "tierguard-policy", "-n", "tierguard"])
            .status
            .success(),
        "the policy ConfigMap outlived policySource=object"
    );
    let bad = said(c.kubectl(&[
        "patch",
        "isolationpolicy",
        "three-tier",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"judge":"loose"}}"#,
    ]));
    expect_refused(
        &bad,
        "an invalid IsolationPolicy through the chart's webhook",
        "spec.judge: Unsupported value",
    );

    // Uninstalled, tierguard is no longer asked.
    expect_ok(&helm_cmd(&["uninstall", "tierguard"]), "helm uninstall");
    assert!(
        !c.kubectl(&["get", "validatingwebhookconfiguration", "tierguard"])
            .status
            .success()
    );
    let answered = replica.admissions_answered().unwrap_or_default();
    expect_ok(
        &said(c.kubectl(&[
            "apply",
            "-f",
            "examples/three-tier-violations/01-database-open-to-frontend/apply.yaml",
        ])),
        "the same change without tierguard",
    );
    assert_eq!(
        replica.admissions_answered().unwrap_or_default(),
        answered,
        "tierguard was still asked"
    );

    // A fresh install with policySource=object, while no tierguard runs:
    // the policy object is written although its webhook cannot be reached
    // (failurePolicy Ignore; with Fail no first policy could ever be
    // written, since serve waits for it before it listens).
    drop(replica);
    let fresh = helm_cmd(&[
        "install",
        "tierguard",
        CHART,
        "--set",
        "policySource=object",
    ]);
    expect_ok(
        &fresh,
        "helm install --set policySource=object with no tierguard running",
    );
    assert_eq!(
        object(&c, "isolationpolicy", "three-tier", None)["spec"]["mode"],
        "enforce"
    );
    expect_ok(&helm_cmd(&["uninstall", "tierguard"]), "helm uninstall");
}
