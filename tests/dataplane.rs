//! Packets: tierguard's claims checked on a real NetworkPolicy data plane.
//!
//! These tests run kube-router's firewall in network namespaces on this
//! machine (`tests/dataplane/`: a node namespace with a real kube-apiserver
//! and etcd, pods as namespaces on veth pairs, real TCP and UDP
//! connections). They need root, iproute2, iptables, ipset and Go; without
//! them they skip with a loud message, and with `TIERGUARD_E2E=required`
//! (CI) they fail.
//!
//! - `tutorial_on_packets` runs `scripts/dataplane.sh` (`make dataplane`):
//!   the tutorial's namespaces labelled and given their baseline by
//!   tierguard, its checks as connections, its mistakes refused and their
//!   flows closed, and a pod of a new tier namespace closed once the
//!   firewall knows it (the window before that is measured, not asserted:
//!   it is the data plane's; docs/dataplane.md).
//! - `query_agrees_with_the_data_plane` is the differential test: random
//!   worlds from the brute-force tests' generators (`common::netpol_gen`),
//!   pods with IPs and named ports, every pair of pods (and a host outside the
//!   cluster) connected on every probed port, each result compared with
//!   `tierguard query`'s verdict for that connection; they must agree
//!   exactly. `TIERGUARD_DP_WORLDS` (default 6) and `TIERGUARD_DP_SEED`
//!   choose the worlds.
//! - `kube_router_shared_chain_deviation` and `kube_router_named_port_deviation`
//!   reproduce the three places kube-router v2.1.0 departs from the API
//!   reference (tests/dataplane/README.md), which the random worlds avoid.

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use common::netpol_gen::{namespace, policy};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// One data plane at a time: two would share the two cores and slow both.
static SERIAL: Mutex<()> = Mutex::new(());

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The host outside the cluster (inside the generators' 192.168.1.0/24).
const OUTSIDE: &str = "192.168.1.5";
const PROBED: [(&str, u16); 7] = [
    ("tcp", 1),
    ("tcp", 2),
    ("tcp", 3),
    ("tcp", 4),
    ("tcp", 9),
    ("udp", 1),
    ("udp", 4),
];

fn required() -> bool {
    std::env::var("TIERGUARD_E2E").is_ok_and(|v| v == "required")
}

/// Why this machine cannot run a data plane, if it cannot.
fn missing() -> Option<String> {
    let ok = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root (network namespaces and iptables need it)".into());
    }
    for (cmd, args) in [
        ("ip", &["netns", "list"][..]),
        ("iptables", &["--version"][..]),
        ("ipset", &["--version"][..]),
        ("go", &["version"][..]),
    ] {
        if !ok(cmd, args) {
            return Some(format!(
                "`{cmd}` missing (scripts/deps.sh installs it; Go by hand)"
            ));
        }
    }
    None
}

/// A data-plane test's start: `None` when this machine cannot run it
/// (skipped loudly, or a failure under `TIERGUARD_E2E=required`); else the
/// lock that keeps data planes one at a time.
fn start(test: &str) -> Option<std::sync::MutexGuard<'static, ()>> {
    can_run(test).then(|| SERIAL.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Skip loudly, or fail under `TIERGUARD_E2E=required`.
fn can_run(test: &str) -> bool {
    match missing() {
        None => true,
        Some(why) if required() => panic!("{test}: {why}, but TIERGUARD_E2E=required"),
        Some(why) => {
            eprintln!("\n*** SKIPPED {test}: {why} ***\n");
            false
        }
    }
}

#[test]
fn tutorial_on_packets() {
    let Some(_one) = start("tutorial_on_packets") else {
        return;
    };
    let out = Command::new(Path::new(ROOT).join("scripts/dataplane.sh"))
        .env("TIERGUARD_BIN", env!("CARGO_BIN_EXE_tierguard"))
        .current_dir(ROOT)
        .output()
        .expect("run scripts/dataplane.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/dataplane.sh failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // Every check printed a line; none failed; each kind of check ran.
    assert!(!stdout.contains("FAIL"), "{stdout}");
    for line in [
        "frontend-app -> database-app   tcp/5432 is closed",
        "frontend-app -> backend-app    tcp/80 is open",
        "backend-app  -> database-app   tcp/5432 is open",
        "outside      -> frontend-app   tcp/80 is open",
        "database-app -> coredns        dns/53 is open",
        "01-database-open-to-frontend refused",
        "03-delete-database-default-deny refused",
        "analytics-app -> outside tcp/80 closed once the firewall knows the pod",
        "every connection is as the tutorial says",
    ] {
        assert!(stdout.contains(line), "no `{line}` in:\n{stdout}");
    }
}

/// A pod of a generated world.
#[derive(Clone, Debug)]
struct Pod {
    namespace: String,
    name: String,
    ip: String,
    labels: &'static str,
    ports: &'static str,
}

/// A generated world: Namespace documents, NetworkPolicy documents (YAML, as
/// tierguard reads them), pods.
#[derive(Clone, Debug)]
struct World {
    namespaces: Vec<String>,
    policies: Vec<String>,
    pods: Vec<Pod>,
    /// Give the data plane the policies as they are: no split into
    /// single-direction halves, no shape left out (the deviations'
    /// reproducers).
    as_is: bool,
}

/// Pod labels over the generators' alphabet. `'y'` is quoted: kubectl reads
/// YAML 1.1, where a bare `y` is a boolean (tierguard reads YAML 1.2: a string).
const POD_LABELS: [&str; 6] = [
    "{}",
    "{a: x}",
    "{a: 'y', b: x}",
    "{a: 'y'}",
    "{b: x}",
    "{a: z, b: 'y'}",
];
/// Container ports: none, `web` on 2, `web` on 4 and `db` on 1, `db` on UDP 4.
const POD_PORTS: [&str; 4] = [
    "[]",
    "[{name: web, containerPort: 2}]",
    "[{name: web, containerPort: 4}, {name: db, containerPort: 1}]",
    "[{name: db, containerPort: 4, protocol: UDP}]",
];
const NAMES: [&str; 4] = ["ns-a", "ns-b", "ns-c", "ns-d"];

fn world() -> impl Strategy<Value = World> {
    let nss = (
        namespace("ns-a"),
        namespace("ns-b"),
        namespace("ns-c"),
        namespace("ns-d"),
    );
    let pols = (0usize..=4).prop_flat_map(|n| (0..n).map(policy).collect::<Vec<_>>());
    let pods = prop::collection::vec((0..POD_LABELS.len(), 0..POD_PORTS.len()), 8);
    (nss, pols, pods).prop_map(|((a, b, c, d), policies, picks)| {
        let mut namespaces = Vec::new();
        let mut pods = Vec::new();
        for (i, ns) in [a, b, c, d].into_iter().enumerate() {
            let Some(doc) = ns else { continue };
            namespaces.push(doc);
            // Two pods per namespace: one in 10.0.1.0/24, one in
            // 10.0.200.0/24 (regions the generated ipBlocks tell apart).
            for (j, net) in ["10.0.1", "10.0.200"].into_iter().enumerate() {
                let (l, p) = picks[2 * i + j];
                pods.push(Pod {
                    namespace: NAMES[i].to_string(),
                    name: format!("{}{}", &NAMES[i][3..], j + 1),
                    ip: format!("{net}.{}", 10 + i),
                    labels: POD_LABELS[l],
                    ports: POD_PORTS[p],
                });
            }
        }
        World {
            namespaces,
            policies,
            pods,
            as_is: false,
        }
    })
}

/// A YAML document as JSON (YAML 1.2, as tierguard reads it), for kubectl,
/// which reads YAML 1.1 (`y` would be a boolean there) but JSON exactly.
fn to_json(doc: &str) -> serde_json::Value {
    serde_yaml_ng::from_str(doc).expect("a generated document is YAML")
}

/// The policy types a NetworkPolicy has: `policyTypes`, or by default
/// Ingress, and Egress when it has egress rules.
fn policy_types(policy: &serde_json::Value) -> (bool, bool) {
    let spec = &policy["spec"];
    match spec["policyTypes"].as_array() {
        Some(types) => (
            types.iter().any(|t| t == "Ingress"),
            types.iter().any(|t| t == "Egress"),
        ),
        None => (
            true,
            spec["egress"].as_array().is_some_and(|e| !e.is_empty()),
        ),
    }
}

/// kube-router resolves a named port of an egress rule without `to` from the
/// pods of the policy's own namespace and applies the number to every
/// destination (`kube_router_named_port_deviation`): such a rule is left out
/// of the random worlds.
fn has_named_port_egress_to_anywhere(policy: &serde_json::Value) -> bool {
    policy["spec"]["egress"].as_array().is_some_and(|rules| {
        rules.iter().any(|r| {
            r["to"].as_array().is_none_or(|to| to.is_empty())
                && r["ports"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["port"].is_string()))
        })
    })
}

/// kube-router treats a rule whose ports are all named, none of them found on
/// the pods it resolves them on, as a rule without ports: every port
/// (`kube_router_named_port_deviation`, second world). Rules with only named
/// ports are left out of the random worlds.
fn has_rule_with_only_named_ports(policy: &serde_json::Value) -> bool {
    ["ingress", "egress"].iter().any(|dir| {
        policy["spec"][dir].as_array().is_some_and(|rules| {
            rules.iter().any(|r| {
                r["ports"]
                    .as_array()
                    .is_some_and(|ps| !ps.is_empty() && ps.iter().all(|p| p["port"].is_string()))
            })
        })
    })
}

/// What the data plane gets for policy `i`: `None` when left out; else files
/// and documents. A policy of both types becomes an Ingress-only and an
/// Egress-only half (the same under the API reference), so kube-router's one
/// chain per policy (`kube_router_shared_chain_deviation`) cannot mix them.
fn data_plane_policies(world: &World, i: usize) -> Option<Vec<(String, serde_json::Value)>> {
    let policy = to_json(&world.policies[i]);
    if world.as_is {
        return Some(vec![(format!("p{i}.json"), policy)]);
    }
    if has_named_port_egress_to_anywhere(&policy) || has_rule_with_only_named_ports(&policy) {
        return None;
    }
    let (ingress, egress) = policy_types(&policy);
    if !(ingress && egress) {
        return Some(vec![(format!("p{i}.json"), policy)]);
    }
    let half = |kind: &str, suffix: &str, drop: &str| {
        let mut h = policy.clone();
        let name = format!("{}-{suffix}", h["metadata"]["name"].as_str().unwrap_or("p"));
        h["metadata"]["name"] = name.into();
        h["spec"]["policyTypes"] = serde_json::json!([kind]);
        if let Some(spec) = h["spec"].as_object_mut() {
            spec.remove(drop);
        }
        (format!("p{i}-{suffix}.json"), h)
    };
    Some(vec![
        half("Ingress", "in", "egress"),
        half("Egress", "out", "ingress"),
    ])
}

/// The worlds of this run: `n` samples from a seeded generator.
fn worlds(seed: u64, n: usize) -> Vec<World> {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = world();
    (0..n)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .expect("sample a world")
                .current()
        })
        .collect()
}

/// Where a probe goes from or to: a pod (`ns/name`, its namespace's name)
/// or the outside host.
#[derive(Clone, Debug)]
enum End {
    Pod(Pod),
    Outside,
}

impl End {
    fn netns(&self) -> &str {
        match self {
            End::Pod(p) => &p.name,
            End::Outside => "outside",
        }
    }
    fn address(&self) -> &str {
        match self {
            End::Pod(p) => &p.ip,
            End::Outside => OUTSIDE,
        }
    }
    fn query(&self) -> String {
        match self {
            End::Pod(p) => format!("{}/{}", p.namespace, p.name),
            End::Outside => OUTSIDE.to_string(),
        }
    }
}

/// Every ordered pair of distinct ends (the outside host only with pods) on
/// every probed port. A pod reaching itself is left out: that traffic stays
/// on the pod's loopback, no firewall sees it, and tierguard always allows it.
fn probes(world: &World) -> Vec<(End, End, &'static str, u16)> {
    let mut ends: Vec<End> = world.pods.iter().cloned().map(End::Pod).collect();
    ends.push(End::Outside);
    let mut out = Vec::new();
    for from in &ends {
        for to in &ends {
            let same = match (from, to) {
                (End::Outside, End::Outside) => true,
                (End::Pod(a), End::Pod(b)) => a.name == b.name,
                _ => false,
            };
            if same {
                continue;
            }
            for (proto, port) in PROBED {
                out.push((from.clone(), to.clone(), proto, port));
            }
        }
    }
    out
}

fn write_world(dir: &Path, world: &World) {
    std::fs::create_dir_all(dir.join("policies")).expect("world dir");
    let list = serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": world.namespaces.iter().map(|d| to_json(d)).collect::<Vec<_>>(),
    });
    std::fs::write(dir.join("namespaces.json"), list.to_string()).expect("write");
    for i in 0..world.policies.len() {
        for (file, doc) in data_plane_policies(world, i).unwrap_or_default() {
            std::fs::write(dir.join("policies").join(file), doc.to_string()).expect("write");
        }
    }
    let mut pods = String::new();
    for p in &world.pods {
        let _ = writeln!(
            pods,
            "{}\t{}\t{}\t{}\t{}",
            p.namespace, p.name, p.ip, p.labels, p.ports
        );
    }
    std::fs::write(dir.join("pods.tsv"), pods).expect("write");
    let mut lines = String::new();
    for (from, to, proto, port) in probes(world) {
        let _ = writeln!(lines, "{}\t{proto}\t{}:{port}", from.netns(), to.address());
    }
    std::fs::write(dir.join("probes.tsv"), lines).expect("write");
}

/// The world as `tierguard query` reads it: the Namespaces, the policies the
/// API server accepted (a policy as generated when every half of it was, else
/// the halves that were), and the Pods with the IPs the data plane gave them.
fn judged_manifests(dir: &Path, world: &World) -> String {
    let applied = std::fs::read_to_string(dir.join("applied.txt")).expect("applied.txt");
    let applied: Vec<&str> = applied.lines().collect();
    let mut docs = world.namespaces.clone();
    for (i, p) in world.policies.iter().enumerate() {
        let Some(parts) = data_plane_policies(world, i) else {
            continue;
        };
        let taken: Vec<_> = parts
            .iter()
            .filter(|(file, _)| applied.contains(&file.as_str()))
            .collect();
        if taken.len() == parts.len() {
            docs.push(p.clone());
        } else {
            docs.extend(taken.iter().map(|(_, doc)| doc.to_string()));
        }
    }
    for p in &world.pods {
        docs.push(format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {}, namespace: {}, labels: {}}}\nspec: {{containers: [{{name: app, image: tierguard.test/peer, ports: {}}}]}}\nstatus: {{podIP: {}, podIPs: [{{ip: {}}}]}}\n",
            p.name, p.namespace, p.labels, p.ports, p.ip, p.ip
        ));
    }
    docs.join("---\n")
}

/// `tierguard query --batch` over the world: each probe's answer (JSON).
fn verdicts(dir: &Path, world: &World) -> Vec<serde_json::Value> {
    let manifests = dir.join("judged.yaml");
    std::fs::write(&manifests, judged_manifests(dir, world)).expect("write");
    let mut questions = String::new();
    for (from, to, proto, port) in probes(world) {
        let _ = writeln!(questions, "{} {} {proto}/{port}", from.query(), to.query());
    }
    let qfile = dir.join("questions.txt");
    std::fs::write(&qfile, questions).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_tierguard"))
        .args(["query", "-o", "json", "-f"])
        .arg(&manifests)
        .arg("--batch")
        .arg(&qfile)
        .output()
        .expect("run tierguard query");
    assert!(
        out.status.success(),
        "tierguard query failed on {}: {}",
        manifests.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: serde_json::Value = serde_json::from_slice(&out.stdout).expect("query JSON");
    answers.as_array().expect("a JSON array").clone()
}

/// kube-router v2.1.0 keeps one iptables chain per NetworkPolicy and runs it
/// for both the egress of the pods it selects and their ingress; the chain
/// holds the ingress rules (matched on the destination being selected) and
/// the egress rules (matched on the source being selected). So when one
/// policy selects both ends, its ingress rules also accept the source's
/// egress, and its egress rules the destination's ingress. The API reference
/// says a connection needs both the source's egress and the destination's
/// ingress to allow it; tierguard follows the reference. This names a
/// disagreement that deviation explains, from tierguard's own answer: one
/// side denied, the other allowed by a rule of a policy that also isolates
/// the denied side.
fn shared_chain_deviation(answer: &serde_json::Value) -> Option<String> {
    let names = |side: &str, key: &str| -> Vec<String> {
        answer[side][key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let allowed = |side: &str| answer[side]["allowed"].as_bool();
    let (denied, allowing) = match (allowed("egress"), allowed("ingress")) {
        (Some(false), Some(true)) => ("egress", "ingress"),
        (Some(true), Some(false)) => ("ingress", "egress"),
        _ => return None,
    };
    let isolating = names(denied, "isolatedBy");
    names(allowing, "allowedBy").into_iter().find_map(|rule| {
        let policy = rule.split(' ').next()?.to_string();
        isolating.contains(&policy).then(|| {
            format!("{rule} (policy {policy} selects both ends) also accepts the {denied}")
        })
    })
}

/// The outcome of comparing one world's observations with tierguard's answers.
#[derive(Default)]
struct Comparison {
    compared: usize,
    /// Disagreements the shared-chain deviation explains.
    deviations: Vec<String>,
    /// Disagreements nothing explains: failures.
    unexplained: Vec<String>,
}

fn compare(dir: &Path, world: &World, label: &str, out: &mut Comparison) {
    let observed = std::fs::read_to_string(dir.join("observed.tsv")).expect("observed.tsv");
    let observed: Vec<&str> = observed.lines().collect();
    let answers = verdicts(dir, world);
    let probes = probes(world);
    assert_eq!(
        observed.len(),
        probes.len(),
        "{}: one observation per probe",
        dir.display()
    );
    assert_eq!(
        answers.len(),
        probes.len(),
        "{}: one verdict per probe",
        dir.display()
    );
    for ((probe, seen), answer) in probes.iter().zip(&observed).zip(&answers) {
        out.compared += 1;
        let decision = answer["decision"].as_str().unwrap_or("?");
        let agree = match *seen {
            "open" => decision == "allowed",
            "closed" => decision == "denied",
            other => panic!("observation {other:?}"),
        };
        if agree {
            continue;
        }
        let (from, to, proto, port) = probe;
        let line = format!(
            "{label}: {} -> {} {proto}/{port}: data plane {seen}, tierguard query {decision}",
            from.query(),
            to.query()
        );
        match (*seen, shared_chain_deviation(answer)) {
            ("open", Some(why)) => out.deviations.push(format!("{line}: {why}")),
            _ => out.unexplained.push(line),
        }
    }
}

/// Runs tests/dataplane/diff.sh over the worlds (written under `base`).
fn run_data_plane(base: &Path, worlds: &[World]) {
    let _ = std::fs::remove_dir_all(base);
    for (i, w) in worlds.iter().enumerate() {
        write_world(&base.join(format!("{i:03}")), w);
    }
    let out = Command::new(Path::new(ROOT).join("tests/dataplane/diff.sh"))
        .arg(base)
        .env("TIERGUARD_BIN", env!("CARGO_BIN_EXE_tierguard"))
        .current_dir(ROOT)
        .output()
        .expect("run tests/dataplane/diff.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tests/dataplane/diff.sh failed ({}); worlds in {}:\n{stderr}",
        out.status,
        base.display()
    );
    for line in stderr.lines().filter(|l| l.starts_with("[dataplane] 0")) {
        eprintln!("{line}");
    }
}

/// Namespace `ns-a` with two pods without labels or named ports and one
/// policy (YAML flow style `spec` of the NetworkPolicy `name`), given to the
/// data plane as it is.
fn two_pod_world(name: &str, spec: &str) -> World {
    let pod = |name: &str, ip: &str| Pod {
        namespace: "ns-a".into(),
        name: name.into(),
        ip: ip.into(),
        labels: "{}",
        ports: "[]",
    };
    World {
        namespaces: vec!["apiVersion: v1\nkind: Namespace\nmetadata: {name: ns-a}\n".into()],
        policies: vec![format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: ns-a}}\nspec: {spec}\n"
        )],
        pods: vec![pod("a1", "10.0.1.10"), pod("a2", "10.0.200.10")],
        as_is: true,
    }
}

/// The minimal world of the shared-chain deviation: one policy selects every
/// pod of `ns-a`, admits TCP 4 in and lets nothing out.
fn shared_chain_world() -> World {
    two_pod_world(
        "in-4-out-none",
        "{podSelector: {}, policyTypes: [Ingress, Egress], ingress: [{ports: [{protocol: TCP, port: 4}]}]}",
    )
}

#[test]
fn kube_router_shared_chain_deviation() {
    let Some(_one) = start("kube_router_shared_chain_deviation") else {
        return;
    };
    let base = std::env::temp_dir().join(format!("tierguard-dpdev-{}", std::process::id()));
    let world = shared_chain_world();
    run_data_plane(&base, std::slice::from_ref(&world));
    let mut c = Comparison::default();
    compare(&base.join("000"), &world, "shared-chain", &mut c);
    assert!(c.unexplained.is_empty(), "{:#?}", c.unexplained);
    // Exactly the pod-to-pod TCP 4 connections: kube-router opens them, the
    // reference (and tierguard) does not; everything else agrees.
    let mut got: Vec<&str> = c
        .deviations
        .iter()
        .map(|d| d.split(": data plane").next().unwrap_or(""))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            "shared-chain: ns-a/a1 -> ns-a/a2 tcp/4",
            "shared-chain: ns-a/a2 -> ns-a/a1 tcp/4"
        ],
        "{:#?}",
        c.deviations
    );
    let _ = std::fs::remove_dir_all(&base);
}

/// The minimal world of the named-port deviation: `ns-a`'s only pod names
/// port 2 `web`, `ns-b`'s names port 4 so; `ns-a`'s policy lets egress out
/// to anywhere on `web`.
fn named_port_world() -> World {
    let pod = |ns: &str, name: &str, ip: &str, ports: &'static str| Pod {
        namespace: ns.into(),
        name: name.into(),
        ip: ip.into(),
        labels: "{}",
        ports,
    };
    World {
        namespaces: vec![
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: ns-a}\n".into(),
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: ns-b}\n".into(),
        ],
        policies: vec!["apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: egress-web, namespace: ns-a}\nspec: {podSelector: {}, policyTypes: [Egress], egress: [{ports: [{port: web}]}]}\n".into()],
        pods: vec![
            pod("ns-a", "a1", "10.0.1.10", "[{name: web, containerPort: 2}]"),
            pod("ns-b", "b1", "10.0.1.11", "[{name: web, containerPort: 4}]"),
        ],
        as_is: true,
    }
}

/// The minimal world of the unresolved named port: a rule allowing `web`
/// to pods none of which has a port of that name.
fn unresolved_named_port_world() -> World {
    two_pod_world(
        "egress-web-to-pods",
        "{podSelector: {}, policyTypes: [Egress], egress: [{to: [{podSelector: {}}], ports: [{port: web}]}]}",
    )
}

#[test]
fn kube_router_named_port_deviation() {
    let Some(_one) = start("kube_router_named_port_deviation") else {
        return;
    };
    let base = std::env::temp_dir().join(format!("tierguard-dpnamed-{}", std::process::id()));
    let worlds = [named_port_world(), unresolved_named_port_world()];
    run_data_plane(&base, &worlds);
    let found = |i: usize, label: &str| {
        let mut c = Comparison::default();
        compare(&base.join(format!("{i:03}")), &worlds[i], label, &mut c);
        let mut got = c.unexplained;
        got.extend(c.deviations);
        got.sort();
        got
    };
    // 1. kube-router reads `web` as 2 (ns-a's pods) for every destination;
    // the reference resolves it on each destination pod's own ports (b1: 4)
    // and a host outside the cluster has none.
    assert_eq!(
        found(0, "named-port"),
        [
            format!(
                "named-port: ns-a/a1 -> {OUTSIDE} tcp/2: data plane open, tierguard query denied"
            ),
            "named-port: ns-a/a1 -> ns-b/b1 tcp/2: data plane open, tierguard query denied"
                .to_string(),
            "named-port: ns-a/a1 -> ns-b/b1 tcp/4: data plane closed, tierguard query allowed"
                .to_string(),
        ]
    );
    // 2. `web` is on no pod: the reference allows nothing by that rule;
    // kube-router, left with no port, allows every port.
    let mut want = Vec::new();
    for (from, to) in [("a1", "a2"), ("a2", "a1")] {
        for (proto, port) in PROBED {
            want.push(format!(
                "unresolved: ns-a/{from} -> ns-a/{to} {proto}/{port}: data plane open, tierguard query denied"
            ));
        }
    }
    want.sort();
    assert_eq!(found(1, "unresolved"), want);
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn query_agrees_with_the_data_plane() {
    let Some(_one) = start("query_agrees_with_the_data_plane") else {
        return;
    };
    let n: usize = std::env::var("TIERGUARD_DP_WORLDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let seed: u64 = std::env::var("TIERGUARD_DP_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20261207);
    let base: PathBuf =
        std::env::temp_dir().join(format!("tierguard-dpdiff-{seed}-{}", std::process::id()));
    let worlds = worlds(seed, n);
    run_data_plane(&base, &worlds);
    let mut c = Comparison::default();
    let mut policies = 0;
    let left_out: usize = worlds
        .iter()
        .map(|w| {
            (0..w.policies.len())
                .filter(|&i| data_plane_policies(w, i).is_none())
                .count()
        })
        .sum();
    for (i, w) in worlds.iter().enumerate() {
        let dir = base.join(format!("{i:03}"));
        policies += std::fs::read_to_string(dir.join("applied.txt"))
            .map(|s| s.lines().count())
            .unwrap_or(0);
        compare(&dir, w, &format!("world {i:03}"), &mut c);
    }
    eprintln!(
        "differential test: seed {seed}, {n} worlds, {policies} policy files applied ({left_out} generated policies left out: named-port egress to anywhere, or a rule with only named ports), {} connections compared, {} explained by kube-router's shared-chain deviation, {} unexplained",
        c.compared,
        c.deviations.len(),
        c.unexplained.len()
    );
    for d in &c.deviations {
        eprintln!("  deviation: {d}");
    }
    // Policies of both types reach the data plane as single-direction
    // halves, so even the shared-chain deviation must not appear here.
    assert!(
        c.unexplained.is_empty() && c.deviations.is_empty(),
        "tierguard query and kube-router disagree (worlds in {}, judged.yaml each):\n{}\n{}",
        base.display(),
        c.unexplained.join("\n"),
        c.deviations.join("\n")
    );
    // Something was judged: the generator does produce policies the API server takes.
    assert!(policies > 0, "no policy was applied in {n} worlds");
    let _ = std::fs::remove_dir_all(&base);
}
