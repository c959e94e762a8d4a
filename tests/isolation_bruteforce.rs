//! The isolation check against brute force.
//!
//! proptest builds small random worlds (namespaces, NetworkPolicies, an
//! isolation policy) over a finite alphabet of label keys, values, names,
//! CIDRs and ports. The brute force then enumerates concrete hypothetical
//! pods — every label combination over the alphabet plus a value no selector
//! names, in every variant of every namespace that exists or could exist —
//! and asks the *concrete* evaluator (`reach::evaluate`, itself tested rule by
//! rule in `semantics.rs`) whether each wall lets each connection through.
//! The symbolic check must report exactly the same forbidden
//! (wall, other party, protocol, port) set: no miss (soundness) and no extra
//! (precision).
//!
//! Two monotone reductions keep the enumeration small, and neither can hide
//! a disagreement: a hypothetical pod carries every candidate pod IP at once
//! (an extra IP can only make more ipBlocks match), and binds every port name
//! to the port being tried (an extra binding can only make more named ports
//! match).

mod common;

use common::brute_cases as cases;
use common::netpol_gen::{namespace, namespace_selector, pod_selector, policy};

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use tierguard::engine::isolation::{Change, Checker, End, check_change, diff};
use tierguard::engine::policy::Direction;
use tierguard::engine::ports::{ContainerPort, Protocol};
use tierguard::engine::reach::{Decision, Endpoint, evaluate, side_allows};
use tierguard::engine::state::{Namespace, Pod, State};
use tierguard::engine::tiers::{IsolationPolicy, Judge, Party};
use tierguard::model::isolationpolicy;

const TIER_LABEL: &str = "tier";
/// Namespaces that may exist; `ns-e` may be created later, `fresh` stands for
/// any name nobody mentions.
const NAMES: [&str; 4] = ["ns-a", "ns-b", "ns-c", "ns-d"];
const HYPOTHETICAL: [&str; 2] = ["ns-e", "fresh-zz"];
/// Every port range the generators use starts or ends at one of these; 9
/// stands for every port none of them names.
const PORTS: [u16; 4] = [1, 2, 4, 9];
const PROTOS: [Protocol; 2] = [Protocol::Tcp, Protocol::Udp];
const PORT_NAMES: [&str; 2] = ["web", "db"];

// === generators ===

fn flow() -> impl Strategy<Value = String> {
    let end = prop::sample::select(vec![
        "tier:t1",
        "tier:t2",
        "tier:*",
        "namespace:ns-c",
        "namespace:ns-e",
        "external",
        "any",
    ]);
    let ports = prop_oneof![
        Just(""),
        Just(", ports: [TCP/1]"),
        Just(", ports: [TCP/2-4, UDP/1]"),
        Just(", ports: [UDP]"),
    ];
    (end.clone(), end, ports).prop_map(|(f, t, p)| format!("{{from: \"{f}\", to: \"{t}\"{p}}}"))
}

fn isolation(judge: &'static str) -> impl Strategy<Value = String> {
    let cidrs = prop_oneof![Just(""), Just("cluster: {podCIDRs: [10.0.0.0/16]}")];
    let t1_names = prop_oneof![Just("[ns-a]"), Just("[ns-a, ns-e]")];
    (cidrs, t1_names, prop::collection::vec(flow(), 0..=3)).prop_map(move |(c, t1, flows)| {
        format!(
            "apiVersion: tierguard.io/v1alpha1\nkind: IsolationPolicy\nmetadata: {{name: random}}\nspec:\n  judge: {judge}\n  tierLabel: {TIER_LABEL}\n  tiers: [{{name: t1, namespaces: {t1}}}, {{name: t2}}]\n  baseline: {{dns: {{to: none}}}}\n  {c}\n  flows: [{}]\n",
            flows.join(", ")
        )
    })
}

fn world() -> impl Strategy<Value = String> {
    let nss = (
        namespace("ns-a"),
        namespace("ns-b"),
        namespace("ns-c"),
        namespace("ns-d"),
    );
    let pols = prop::collection::vec(0usize..1, 0..=4).prop_flat_map(|v| {
        let strategies: Vec<_> = (0..v.len()).map(policy).collect();
        strategies
    });
    (nss, pols).prop_map(|((a, b, c, d), pols)| {
        let mut docs: Vec<String> = [a, b, c, d].into_iter().flatten().collect();
        docs.extend(pols);
        docs.join("---\n")
    })
}

// === brute force ===

/// Candidate addresses: every region the generated CIDRs can tell apart.
fn sample_ips() -> Vec<IpAddr> {
    [
        "10.0.1.5",
        "10.0.200.5",
        "10.1.0.5",
        "192.168.1.5",
        "8.8.8.8",
        "2001:db8::5",
        "fd00::5",
    ]
    .iter()
    .map(|s| s.parse().expect("sample ip"))
    .collect()
}

fn pod_label_sets() -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    for a in [None, Some("x"), Some("y"), Some("zz")] {
        for b in [None, Some("x"), Some("zz")] {
            let mut l = BTreeMap::new();
            if let Some(a) = a {
                l.insert("a".to_string(), a.to_string());
            }
            if let Some(b) = b {
                l.insert("b".to_string(), b.to_string());
            }
            out.push(l);
        }
    }
    out
}

/// Every variant of every namespace that exists or could: protected labels
/// as they are or may become, unprotected labels free.
fn namespace_variants(state: &State, iso: &IsolationPolicy) -> Vec<Namespace> {
    let mut out = Vec::new();
    let teams = [None, Some("x"), Some("zz")];
    for name in NAMES.iter().chain(HYPOTHETICAL.iter()) {
        let existing = state.namespace(name);
        let (name_labels, tier_labels): (Vec<Option<String>>, Vec<Option<String>>) = match existing
        {
            Some(ns) => {
                let mut nl = vec![None, Some(name.to_string())];
                if let Some(v) = ns.labels.get("name") {
                    nl.push(Some(v.clone()));
                }
                (nl, vec![ns.labels.get(TIER_LABEL).cloned()])
            }
            None => (
                vec![None, Some(name.to_string())],
                // A namespace created later joins no tier by label.
                [None, Some("legacy"), Some("zz")]
                    .into_iter()
                    .map(|v| v.map(str::to_string))
                    .collect(),
            ),
        };
        for nl in &name_labels {
            for tl in &tier_labels {
                if existing.is_none() && tl.as_deref().and_then(|v| iso.tier_index(v)).is_some() {
                    continue;
                }
                for team in teams {
                    let mut labels = BTreeMap::new();
                    if let Some(v) = nl {
                        labels.insert("name".to_string(), v.clone());
                    }
                    if let Some(v) = tl {
                        labels.insert(TIER_LABEL.to_string(), v.clone());
                    }
                    if let Some(v) = team {
                        labels.insert("team".to_string(), v.to_string());
                    }
                    out.push(Namespace::new(name, labels));
                }
            }
        }
    }
    out
}

fn party_of(iso: &IsolationPolicy, ns: &Namespace) -> Party {
    let tier = iso
        .tier_of(&ns.name, ns.labels.get(TIER_LABEL).map(String::as_str))
        .unwrap_or_else(|_| {
            iso.tiers
                .iter()
                .position(|t| t.namespaces.contains(&ns.name))
        });
    iso.party(Some(&ns.name), tier)
}

type Key = (String, Direction, Party, Protocol, u16);

fn pod(
    ns: &str,
    labels: &BTreeMap<String, String>,
    ips: &[IpAddr],
    proto: Protocol,
    port: u16,
) -> Pod {
    Pod {
        namespace: ns.to_string(),
        name: "p".into(),
        labels: labels.clone(),
        ports: PORT_NAMES
            .iter()
            .map(|n| ContainerPort {
                name: Some(n.to_string()),
                port,
                protocol: proto,
            })
            .collect(),
        ips: ips.to_vec(),
        workload: None,
    }
}

/// Hypothetical pods of one namespace: one per label set, per (protocol, port).
fn pods_of(ns: &str, labels: &[BTreeMap<String, String>], ips: &[IpAddr]) -> Vec<Vec<Pod>> {
    let mut out = Vec::new();
    for proto in PROTOS {
        for port in PORTS {
            out.push(
                labels
                    .iter()
                    .map(|l| pod(ns, l, ips, proto, port))
                    .collect(),
            );
        }
    }
    out
}

fn brute_force(iso: &IsolationPolicy, state: &State) -> BTreeSet<Key> {
    let cluster = iso.cluster_addresses();
    let samples = sample_ips();
    let pod_ips: Vec<IpAddr> = samples
        .iter()
        .copied()
        .filter(|ip| cluster.as_ref().is_none_or(|c| c.contains(*ip)))
        .collect();
    let external_ips: Vec<IpAddr> = samples
        .iter()
        .copied()
        .filter(|ip| cluster.as_ref().is_none_or(|c| !c.contains(*ip)))
        .collect();
    let checker = Checker::new(iso, state);
    let variants = namespace_variants(state, iso);
    let labels = pod_label_sets();
    let ports: Vec<(Protocol, u16)> = PROTOS
        .iter()
        .flat_map(|p| PORTS.iter().map(move |n| (*p, *n)))
        .collect();
    let mut out = BTreeSet::new();
    for wall_ns in checker.tier_namespaces() {
        let me = party_of(iso, wall_ns);
        let here_pods = pods_of(&wall_ns.name, &labels, &pod_ips);
        // Namespace variants are independent: judge them on both cores.
        let per_variant = |v: &Namespace| -> Vec<Key> {
            let mut found = Vec::new();
            let mut s = state.clone();
            s.apply_namespace(v.clone());
            let other = party_of(iso, v);
            let there_pods = pods_of(&v.name, &labels, &pod_ips);
            for (i, &(proto, port)) in ports.iter().enumerate() {
                let check_in = !iso.allowed(&other, &me).contains(proto, port);
                let check_out = !iso.allowed(&me, &other).contains(proto, port);
                let (mut found_in, mut found_out) = (false, false);
                for p_here in &here_pods[i] {
                    for p_there in &there_pods[i] {
                        if check_in && !found_in {
                            found_in = side_allows(
                                &s,
                                p_here,
                                Direction::Ingress,
                                &Endpoint::Pod(p_there),
                                proto,
                                port,
                                Some(&p_here.ports),
                            );
                        }
                        if check_out && !found_out {
                            found_out = side_allows(
                                &s,
                                p_here,
                                Direction::Egress,
                                &Endpoint::Pod(p_there),
                                proto,
                                port,
                                Some(&p_there.ports),
                            );
                        }
                    }
                }
                if found_in {
                    found.push((
                        wall_ns.name.clone(),
                        Direction::Ingress,
                        other.clone(),
                        proto,
                        port,
                    ));
                }
                if found_out {
                    found.push((
                        wall_ns.name.clone(),
                        Direction::Egress,
                        other.clone(),
                        proto,
                        port,
                    ));
                }
            }
            found
        };
        let (left, right) = variants.split_at(variants.len() / 2);
        std::thread::scope(|scope| {
            let handle = scope.spawn(|| left.iter().flat_map(per_variant).collect::<Vec<_>>());
            out.extend(right.iter().flat_map(per_variant));
            out.extend(handle.join().expect("brute-force thread"));
        });
        for ip in &external_ips {
            for (i, &(proto, port)) in ports.iter().enumerate() {
                for p_here in &here_pods[i] {
                    if side_allows(
                        state,
                        p_here,
                        Direction::Ingress,
                        &Endpoint::External(*ip),
                        proto,
                        port,
                        Some(&p_here.ports),
                    ) && !iso.allowed(&Party::External, &me).contains(proto, port)
                    {
                        out.insert((
                            wall_ns.name.clone(),
                            Direction::Ingress,
                            Party::External,
                            proto,
                            port,
                        ));
                    }
                    if side_allows(
                        state,
                        p_here,
                        Direction::Egress,
                        &Endpoint::External(*ip),
                        proto,
                        port,
                        None,
                    ) && !iso.allowed(&me, &Party::External).contains(proto, port)
                    {
                        out.insert((
                            wall_ns.name.clone(),
                            Direction::Egress,
                            Party::External,
                            proto,
                            port,
                        ));
                    }
                }
            }
        }
    }
    out
}

fn symbolic(iso: &IsolationPolicy, state: &State) -> BTreeSet<Key> {
    let mut out = BTreeSet::new();
    for f in Checker::new(iso, state)
        .report()
        .expect("within the budget")
        .flows
    {
        for proto in PROTOS {
            for port in PORTS {
                if f.ports.contains(proto, port) {
                    out.insert((f.namespace.clone(), f.wall, f.other.clone(), proto, port));
                }
            }
            // Ports no rule or flow names behave like port 9.
            assert_eq!(
                f.ports.contains(proto, 9),
                f.ports.contains(proto, 65535),
                "port 9 stands for every unnamed port"
            );
        }
    }
    out
}

fn load(world_yaml: &str, iso_yaml: &str) -> Option<(State, IsolationPolicy)> {
    let iso = isolationpolicy::parse(iso_yaml, "iso").expect("generated isolation policy is valid");
    let world = tierguard::world::World::from_text(world_yaml, "world").ok()?;
    Some((world.state, iso))
}

/// How many shrinking steps a failure gets (`TIERGUARD_BRUTE_SHRINK`, default
/// 2,000: each step runs the brute force).
fn shrink_iters() -> u32 {
    std::env::var("TIERGUARD_BRUTE_SHRINK")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: shrink_iters(), ..ProptestConfig::default() })]

    /// walls mode: exactly the brute-force set.
    #[test]
    fn walls_match_brute_force(world_yaml in world(), iso_yaml in isolation("walls")) {
        let Some((state, iso)) = load(&world_yaml, &iso_yaml) else { return Ok(()) };
        let want = brute_force(&iso, &state);
        let got = symbolic(&iso, &state);
        let missed: Vec<_> = want.difference(&got).collect();
        let extra: Vec<_> = got.difference(&want).collect();
        prop_assert!(missed.is_empty() && extra.is_empty(),
            "missed (unsound): {missed:?}\nextra (imprecise): {extra:?}\nworld:\n{world_yaml}\niso:\n{iso_yaml}");
    }
}

/// Effective mode: the connections brute force finds open end to end (both
/// sides allow, at least one end a tier namespace, forbidden by the flows),
/// each as the keys of the walls it may be reported on.
fn effective_brute_force(iso: &IsolationPolicy, state: &State) -> Vec<Vec<Key>> {
    let pod_ips: Vec<IpAddr> = sample_ips()
        .into_iter()
        .filter(|ip| iso.cluster_addresses().is_none_or(|c| c.contains(*ip)))
        .collect();
    let labels = pod_label_sets();
    let namespaces: Vec<Namespace> = state.namespaces().cloned().collect();
    let mut out = Vec::new();
    for src_ns in &namespaces {
        for dst_ns in &namespaces {
            let (sp, dp) = (party_of(iso, src_ns), party_of(iso, dst_ns));
            for proto in PROTOS {
                for port in PORTS {
                    if iso.allowed(&sp, &dp).contains(proto, port) {
                        continue;
                    }
                    let mut walls = Vec::new();
                    if IsolationPolicy::is_tier(&dp) {
                        walls.push((
                            dst_ns.name.clone(),
                            Direction::Ingress,
                            sp.clone(),
                            proto,
                            port,
                        ));
                    }
                    if IsolationPolicy::is_tier(&sp) {
                        walls.push((
                            src_ns.name.clone(),
                            Direction::Egress,
                            dp.clone(),
                            proto,
                            port,
                        ));
                    }
                    if walls.is_empty() {
                        continue;
                    }
                    // A connection the exceptions allow (a pod to itself)
                    // is no breach: no policy can close it. The destination
                    // is tried as the source itself (same name: loopback
                    // when in the same namespace) and as a twin.
                    let open = labels.iter().any(|sl| {
                        labels.iter().any(|dl| {
                            let s = pod(&src_ns.name, sl, &pod_ips, proto, port);
                            ["p", "twin"].iter().any(|name| {
                                let mut d = pod(&dst_ns.name, dl, &pod_ips, proto, port);
                                d.name = name.to_string();
                                let v = evaluate(
                                    state,
                                    &Endpoint::Pod(&s),
                                    &Endpoint::Pod(&d),
                                    proto,
                                    port,
                                );
                                v.allowed && v.exception.is_none()
                            })
                        })
                    });
                    if open {
                        out.push(walls);
                    }
                }
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// effective mode never misses an end-to-end forbidden flow, and reports
    /// nothing walls mode would not.
    #[test]
    fn effective_is_sound(world_yaml in world(), iso_yaml in isolation("effective")) {
        let Some((state, iso)) = load(&world_yaml, &iso_yaml) else { return Ok(()) };
        prop_assert_eq!(iso.judge, Judge::Effective);
        let got = symbolic(&iso, &state);
        let missed: Vec<Vec<Key>> = effective_brute_force(&iso, &state)
            .into_iter()
            .filter(|walls| !walls.iter().any(|k| got.contains(k)))
            .collect();
        prop_assert!(missed.is_empty(), "missed (unsound): {missed:?}\nworld:\n{world_yaml}\niso:\n{iso_yaml}");
        let mut walls_iso = iso.clone();
        walls_iso.judge = Judge::Walls;
        prop_assert!(got.is_subset(&symbolic(&walls_iso, &state)), "effective reports more than walls");
    }
}

#[test]
fn generated_policies_are_mostly_valid() {
    // Guard against a generator that only produces invalid worlds, which
    // would make the properties above vacuous.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = (world(), isolation("walls"));
    let mut loaded = 0;
    let mut with_findings = 0;
    for _ in 0..200 {
        let (w, i) = strategy.new_tree(&mut runner).expect("tree").current();
        if let Some((state, iso)) = load(&w, &i) {
            loaded += 1;
            if !symbolic(&iso, &state).is_empty() {
                with_findings += 1;
            }
        }
    }
    assert!(loaded > 150, "only {loaded}/200 generated worlds load");
    assert!(
        with_findings > 20,
        "only {with_findings}/200 generated worlds have findings"
    );
}

// === pods created later (engine::future) against brute force ===

/// Every concrete pod that may be created in `ns`, as far as the generated
/// policies can tell them apart: each label set, each candidate address,
/// and (as a destination, where named ports resolve) each binding of the
/// port names to the port tried.
fn future_candidates(ns: &str, as_dst: bool, proto: Protocol, port: u16) -> Vec<Pod> {
    let bindings: Vec<Vec<&str>> = if as_dst {
        vec![vec![], vec!["web"], vec!["db"], vec!["web", "db"]]
    } else {
        vec![vec![]]
    };
    let mut out = Vec::new();
    for labels in pod_label_sets() {
        for ip in sample_ips() {
            for names in &bindings {
                out.push(Pod {
                    namespace: ns.to_string(),
                    name: "created-later".into(),
                    labels: labels.clone(),
                    ports: names
                        .iter()
                        .map(|n| ContainerPort {
                            name: Some(n.to_string()),
                            port,
                            protocol: proto,
                        })
                        .collect(),
                    ips: vec![ip],
                    workload: None,
                });
            }
        }
    }
    out
}

/// The existing end: a pod of an existing namespace (one of a few label
/// sets, a known address, its port names bound to ports 1 and 2), or a
/// host outside the cluster.
fn existing_end(state: &State, pick: usize) -> Option<Pod> {
    let namespaces: Vec<&Namespace> = state.namespaces().collect();
    let labels = [
        BTreeMap::new(),
        BTreeMap::from([("a".to_string(), "x".to_string())]),
        BTreeMap::from([
            ("a".to_string(), "y".to_string()),
            ("b".to_string(), "x".to_string()),
        ]),
    ];
    let ns = namespaces.get(pick % (namespaces.len() + 1))?;
    Some(Pod {
        namespace: ns.name.clone(),
        name: "p".into(),
        labels: labels[pick / 7 % labels.len()].clone(),
        ports: vec![
            ContainerPort {
                name: Some("web".into()),
                port: 1,
                protocol: Protocol::Tcp,
            },
            ContainerPort {
                name: Some("db".into()),
                port: 2,
                protocol: Protocol::Udp,
            },
        ],
        ips: vec!["10.0.1.7".parse().expect("ip")],
        workload: None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases() / 4, ..ProptestConfig::default() })]

    /// A pod created later in a namespace: ALLOWED iff every concrete pod
    /// that could be created there is allowed, DENIED iff none is, DEPENDS
    /// ON THE POD otherwise; and its examples are such pods.
    #[test]
    fn pods_created_later_match_brute_force(
        world_yaml in world(),
        future_pick in 0usize..4,
        other_pick in 0usize..40,
        future_is_src in any::<bool>(),
    ) {
        let Ok(world) = tierguard::world::World::from_text(&world_yaml, "world") else { return Ok(()) };
        let state = world.state;
        let namespaces: Vec<String> = state.namespaces().map(|n| n.name.clone()).collect();
        let ns = &namespaces[future_pick % namespaces.len()];
        let existing = existing_end(&state, other_pick);
        let outside: IpAddr = "8.8.8.8".parse().expect("ip");
        let other = match &existing {
            Some(p) => Endpoint::Pod(p),
            None => Endpoint::External(outside),
        };
        let future = Endpoint::Future { namespace: ns };
        for proto in PROTOS {
            for port in PORTS {
                let (s, d) = if future_is_src { (&future, &other) } else { (&other, &future) };
                let got = evaluate(&state, s, d, proto, port);
                let candidates = future_candidates(ns, !future_is_src, proto, port);
                let allowed: Vec<bool> = candidates
                    .iter()
                    .map(|c| {
                        let c = Endpoint::Pod(c);
                        let (s, d) = if future_is_src { (&c, &other) } else { (&other, &c) };
                        evaluate(&state, s, d, proto, port).allowed
                    })
                    .collect();
                let want = if allowed.iter().all(|a| *a) {
                    Decision::Allowed
                } else if allowed.iter().any(|a| *a) {
                    Decision::DependsOnPod
                } else {
                    Decision::Denied
                };
                prop_assert_eq!(got.decision, want,
                    "{} -> {} on {}/{}: {:?}\nworld:\n{}", s, d, proto, port, got.future, world_yaml);
                let note = got.future.expect("a note about the pod created later");
                prop_assert!(note.undecided.is_none());
                // The examples' labels are labels such pods may carry, allowed
                // (when nothing else is needed) or not, as the note says.
                for (example, allowed_wanted) in [(&note.allowed_with, true), (&note.denied_with, false)] {
                    let Some(example) = example else { continue };
                    if allowed_wanted && note.if_address_port_or_node {
                        continue;
                    }
                    let fits = candidates.iter().zip(&allowed).any(|(c, a)| {
                        *a == allowed_wanted && describes(example, &c.labels)
                    });
                    prop_assert!(fits, "example {example:?} (allowed: {allowed_wanted}) fits no such pod");
                }
            }
        }
    }
}

/// Whether `labels` fit an example written by `describe_witness`.
fn describes(example: &str, labels: &BTreeMap<String, String>) -> bool {
    if example == "any labels" {
        return true;
    }
    example.split(", ").all(|part| {
        if let Some(k) = part.strip_prefix("no label ") {
            return !labels.contains_key(k);
        }
        let Some((k, v)) = part.split_once('=') else {
            return false;
        };
        match (v, labels.get(k)) {
            ("<any other value>", Some(got)) => got == "zz",
            (v, Some(got)) => got == v,
            (_, None) => false,
        }
    })
}

// === one change, judged alone, against the whole state's diff ===

/// A namespace as it may be created or relabelled: any of the names the
/// worlds use (existing or not, named by the isolation policy or not).
fn namespace_change() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        namespace("ns-a"),
        namespace("ns-b"),
        namespace("ns-c"),
        namespace("ns-d"),
        namespace("ns-e"),
        namespace("ns-f"),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases() / 2, ..ProptestConfig::default() })]

    /// `check_change` judges a NetworkPolicy write or delete by the changed
    /// policy's rules (and the pods left unselected), and skips namespace
    /// changes no wall can see; either way it finds exactly what diffing
    /// the whole state before and after the change finds.
    #[test]
    fn a_change_judged_alone_is_the_whole_diff(
        world_yaml in world(),
        iso_yaml in isolation("walls"),
        policy_yaml in policy(0),
        ns_yaml in namespace_change(),
        delete in any::<bool>(),
    ) {
        let Some((state, iso)) = load(&world_yaml, &iso_yaml) else { return Ok(()) };
        for change in changes_of(&policy_yaml, &ns_yaml, None, delete) {
            let (alone, whole) = alone_and_whole(&iso, &state, &change);
            prop_assert_eq!(alone, whole, "{:?}\nworld:\n{}\niso:\n{}", change, world_yaml, iso_yaml);
        }
    }
}

/// The changes a case's documents describe: a NetworkPolicy write (or, with
/// `delete`, the delete of a policy of that name), a namespace change, and a
/// cluster policy write or delete.
fn changes_of(
    policy_yaml: &str,
    ns_yaml: &Option<String>,
    cluster_yaml: Option<&str>,
    delete: bool,
) -> Vec<Change> {
    let mut changes = Vec::new();
    if let Ok(w) = tierguard::world::World::from_text(policy_yaml, "policy")
        && let Some(p) = w.state.policies().next()
    {
        changes.push(if delete {
            Change::DeletePolicy {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
            }
        } else {
            Change::ApplyPolicy(p.clone())
        });
    }
    if let Some(doc) = ns_yaml
        && let Ok(w) = tierguard::world::World::from_text(doc, "namespace")
        && let Some(ns) = w.state.namespaces().next()
    {
        changes.push(Change::ApplyNamespace(ns.clone()));
    }
    if let Some(doc) = cluster_yaml
        && let Ok(w) = tierguard::world::World::from_text(doc, "cluster policy")
        && let Some(p) = w.state.cluster_policies().next()
    {
        changes.push(if delete {
            Change::DeleteClusterPolicy {
                api: p.api,
                name: p.name.clone(),
            }
        } else {
            Change::ApplyClusterPolicy(p.clone())
        });
    }
    changes
}

/// What `check_change` finds for `change`, and what diffing the whole state
/// before and after it finds, comparable: sorted, and without the example
/// namespaces a breach names (judged alone, a change's breaches draw them
/// from the causes it adds only; the whole diff from every cause on that
/// wall).
fn alone_and_whole(
    iso: &IsolationPolicy,
    state: &State,
    change: &Change,
) -> (
    Vec<tierguard::engine::isolation::Breach>,
    Vec<tierguard::engine::isolation::Breach>,
) {
    let mut after = state.clone();
    match change {
        Change::ApplyPolicy(p) => after.apply_policy(p.clone()),
        Change::DeletePolicy { namespace, name } => {
            after.delete_policy(namespace, name);
        }
        Change::ApplyNamespace(ns) => after.apply_namespace(ns.clone()),
        Change::ApplyClusterPolicy(p) => after.apply_cluster_policy(p.clone()),
        Change::DeleteClusterPolicy { api, name } => {
            after.delete_cluster_policy(*api, name);
        }
    }
    let mut alone = check_change(iso, state, change).expect("within the budget");
    let mut whole = diff(iso, state, &after).expect("within the budget");
    for b in alone.iter_mut().chain(whole.iter_mut()) {
        for end in [&mut b.from, &mut b.to] {
            match end {
                End::Tier { namespace, .. } => *namespace = None,
                End::OtherNamespaces { examples } => examples.clear(),
                _ => {}
            }
        }
    }
    alone.sort_by_key(|b| format!("{b:?}"));
    whole.sort_by_key(|b| format!("{b:?}"));
    (alone, whole)
}

// === cluster-wide tiers ===

/// A peer of a cluster policy rule (egress also gets networks).
fn cluster_peer(egress: bool) -> impl Strategy<Value = String> {
    let networks = prop::sample::select(vec![
        "[10.0.0.0/16]",
        "[10.0.1.0/24]",
        "[0.0.0.0/0]",
        "[192.168.1.0/24, '2001:db8::/32']",
    ]);
    let w = if egress { 2 } else { 0 };
    prop_oneof![
        3 => namespace_selector().prop_map(|n| format!("{{namespaces: {n}}}")),
        3 => (namespace_selector(), pod_selector()).prop_map(|(n, p)| format!("{{pods: {{namespaceSelector: {n}, podSelector: {p}}}}}")),
        w => networks.prop_map(|n| format!("{{networks: {n}}}")),
    ]
}

/// `protocols` of a ClusterNetworkPolicy rule, or `ports` of an
/// AdminNetworkPolicy's (`anp`).
fn cluster_ports(anp: bool, named: bool) -> impl Strategy<Value = String> {
    let entry = prop_oneof![
        Just((
            "{tcp: {destinationPort: {number: 1}}}",
            "{portNumber: {port: 1}}"
        )),
        Just((
            "{udp: {destinationPort: {range: {start: 2, end: 4}}}}",
            "{portRange: {protocol: UDP, start: 2, end: 4}}"
        )),
        Just((
            "{tcp: {destinationPort: {number: 4}}}",
            "{portNumber: {protocol: TCP, port: 4}}"
        )),
        Just(("{destinationNamedPort: web}", "{namedPort: web}")),
        Just(("{destinationNamedPort: db}", "{namedPort: db}")),
    ];
    let list = prop::collection::vec(entry, 1..=2).prop_map(move |es| {
        let picked: Vec<&str> = es
            .iter()
            .filter(|(c, _)| named || !c.contains("Named"))
            .map(|(c, a)| if anp { *a } else { *c })
            .collect();
        picked.join(", ")
    });
    prop_oneof![1 => Just(String::new()), 2 => list]
}

fn cluster_rule(
    dir: &'static str,
    anp: bool,
    actions: &'static [&'static str],
) -> impl Strategy<Value = String> {
    let egress = dir == "egress";
    let peers = prop::collection::vec(cluster_peer(egress), 1..=2);
    let action = prop::sample::select(actions.to_vec());
    (action, peers, any::<bool>()).prop_flat_map(move |(a, ps, _)| {
        // Named ports cannot go with networks peers (the CRD's rule).
        let named = !ps.iter().any(|p| p.contains("networks"));
        let key = if egress { "to" } else { "from" };
        let ports_key = if anp { "ports" } else { "protocols" };
        cluster_ports(anp, named).prop_map(move |ports| {
            let mut s = format!("{{action: {a}, {key}: [{}]", ps.join(", "));
            if !ports.is_empty() {
                s.push_str(&format!(", {ports_key}: [{ports}]"));
            }
            s.push('}');
            s
        })
    })
}

/// A ClusterNetworkPolicy, an AdminNetworkPolicy or the
/// BaselineAdminNetworkPolicy; priorities are distinct within a tier (ties
/// have their own unit tests: the brute force evaluates one order).
fn cluster_policy(index: usize) -> impl Strategy<Value = String> {
    let kind = prop::sample::select(vec![0u8, 0, 0, 1, 2]);
    let subject = prop_oneof![
        namespace_selector().prop_map(|n| format!("{{namespaces: {n}}}")),
        (namespace_selector(), pod_selector())
            .prop_map(|(n, p)| format!("{{pods: {{namespaceSelector: {n}, podSelector: {p}}}}}")),
    ];
    let tier = prop::sample::select(vec!["Admin", "Baseline"]);
    (kind, subject, tier).prop_flat_map(move |(kind, subject, tier)| {
        let (api, k, actions): (&str, &str, &'static [&'static str]) = match kind {
            0 => (
                "policy.networking.k8s.io/v1beta1",
                "ClusterNetworkPolicy",
                &["Accept", "Deny", "Pass"],
            ),
            1 => (
                "policy.networking.k8s.io/v1alpha1",
                "AdminNetworkPolicy",
                &["Allow", "Deny", "Pass"],
            ),
            _ => (
                "policy.networking.k8s.io/v1alpha1",
                "BaselineAdminNetworkPolicy",
                &["Allow", "Deny"],
            ),
        };
        let anp = kind != 0;
        let ingress = prop::collection::vec(cluster_rule("ingress", anp, actions), 0..=2);
        let egress = prop::collection::vec(cluster_rule("egress", anp, actions), 0..=2);
        let subject = subject.clone();
        (ingress, egress).prop_map(move |(ing, eg)| {
            let name = if kind == 2 {
                "default".to_string()
            } else {
                format!("c{index}")
            };
            let mut spec = vec![format!("subject: {subject}")];
            match kind {
                0 => {
                    spec.push(format!("tier: {tier}"));
                    spec.push(format!("priority: {}", index * 10));
                }
                1 => spec.push(format!("priority: {}", index * 10 + 5)),
                _ => {}
            }
            if !ing.is_empty() {
                spec.push(format!("ingress: [{}]", ing.join(", ")));
            }
            if !eg.is_empty() {
                spec.push(format!("egress: [{}]", eg.join(", ")));
            }
            format!(
                "apiVersion: {api}\nkind: {k}\nmetadata: {{name: {name}}}\nspec: {{{}}}\n",
                spec.join(", ")
            )
        })
    })
}

fn world_with_cluster_policies() -> impl Strategy<Value = String> {
    let cps = prop::collection::vec(0usize..1, 1..=3).prop_flat_map(|v| {
        let strategies: Vec<_> = (0..v.len()).map(cluster_policy).collect();
        strategies
    });
    (world(), cps).prop_map(|(w, cps)| {
        // At most one BaselineAdminNetworkPolicy (it is a singleton), and
        // one API family per world: the APIs do not order a
        // ClusterNetworkPolicy against an AdminNetworkPolicy or
        // BaselineAdminNetworkPolicy, and the oracle evaluates one order
        // (tests/cluster.rs covers the unordered cases).
        let cnp = |c: &String| c.contains("kind: ClusterNetworkPolicy");
        let family = cps.first().is_some_and(cnp);
        let mut seen_banp = false;
        let cps: Vec<String> = cps
            .into_iter()
            .filter(|c| cnp(c) == family)
            .filter(|c| {
                let banp = c.contains("kind: BaselineAdminNetworkPolicy");
                let keep = !(banp && seen_banp);
                seen_banp |= banp;
                keep
            })
            .collect();
        format!("{w}---\n{}", cps.join("---\n"))
    })
}

/// True when some rule names a port.
fn state_uses_named_ports(state: &State) -> bool {
    use tierguard::engine::ports::PortNumbers;
    let named = |ports: &Option<Vec<tierguard::engine::ports::PortMatch>>| {
        ports
            .iter()
            .flatten()
            .any(|m| matches!(m.numbers, PortNumbers::Named(_)))
    };
    state.policies().any(|p| {
        [&p.ingress, &p.egress]
            .into_iter()
            .flatten()
            .flatten()
            .any(|r| named(&r.ports))
    }) || state
        .cluster_policies()
        .any(|p| p.ingress.iter().chain(&p.egress).any(|r| named(&r.ports)))
}

/// One pod label set per behaviour, and one address per behaviour: the
/// evaluator sees a pod's labels only through pod selectors and its
/// address only through ipBlocks and networks, so label sets that every
/// selector of the state treats alike (and addresses every set treats
/// alike) are interchangeable.
fn distinct_behaviours(
    state: &State,
    labels: Vec<BTreeMap<String, String>>,
    ips: Vec<IpAddr>,
) -> (Vec<BTreeMap<String, String>>, Vec<IpAddr>) {
    use tierguard::engine::cluster::{ClusterPeer, Subject};
    use tierguard::engine::ipblock::IpSet;
    use tierguard::engine::policy::Peer;
    use tierguard::engine::selector::Selector;
    let mut sels: Vec<&Selector> = Vec::new();
    let mut sets: Vec<IpSet> = Vec::new();
    for p in state.policies() {
        sels.push(&p.pod_selector);
        for r in [&p.ingress, &p.egress].into_iter().flatten().flatten() {
            for peer in r.peers.iter().flatten() {
                match peer {
                    Peer::Pods { pods: Some(s), .. } => sels.push(s),
                    Peer::Pods { .. } => {}
                    Peer::IpBlock(b) => sets.push(b.to_set()),
                }
            }
        }
    }
    for p in state.cluster_policies() {
        if let Subject::Pods { pods, .. } = &p.subject {
            sels.push(pods);
        }
        for r in p.ingress.iter().chain(&p.egress) {
            for peer in &r.peers {
                match peer {
                    ClusterPeer::Pods { pods, .. } => sels.push(pods),
                    ClusterPeer::Networks { set, .. } => sets.push(set.clone()),
                    _ => {}
                }
            }
        }
    }
    let mut seen = BTreeSet::new();
    let labels = labels
        .into_iter()
        .filter(|l| seen.insert(sels.iter().map(|s| s.matches(l)).collect::<Vec<_>>()))
        .collect();
    let mut seen = BTreeSet::new();
    let ips = ips
        .into_iter()
        .filter(|ip| seen.insert(sets.iter().map(|s| s.contains(*ip)).collect::<Vec<_>>()))
        .collect();
    (labels, ips)
}

/// One variant per behaviour of each namespace: a namespace's labels are
/// seen only through namespace selectors (its name and tier count apart).
fn distinct_namespaces(state: &State, variants: Vec<Namespace>) -> Vec<Namespace> {
    use tierguard::engine::cluster::{ClusterPeer, Subject};
    use tierguard::engine::policy::Peer;
    use tierguard::engine::selector::Selector;
    let mut sels: Vec<&Selector> = Vec::new();
    for p in state.policies() {
        for r in [&p.ingress, &p.egress].into_iter().flatten().flatten() {
            for peer in r.peers.iter().flatten() {
                if let Peer::Pods {
                    namespaces: Some(s),
                    ..
                } = peer
                {
                    sels.push(s);
                }
            }
        }
    }
    for p in state.cluster_policies() {
        match &p.subject {
            Subject::Namespaces(s) | Subject::Pods { namespaces: s, .. } => sels.push(s),
        }
        for r in p.ingress.iter().chain(&p.egress) {
            for peer in &r.peers {
                if let ClusterPeer::Namespaces(s) | ClusterPeer::Pods { namespaces: s, .. } = peer {
                    sels.push(s);
                }
            }
        }
    }
    let mut seen = BTreeSet::new();
    variants
        .into_iter()
        .filter(|v| {
            let tier = v.labels.get(TIER_LABEL).cloned();
            let sig: Vec<bool> = sels.iter().map(|s| s.matches(&v.labels)).collect();
            seen.insert((v.name.clone(), tier, sig))
        })
        .collect()
}

/// The brute force under cluster-wide tiers. The two monotone reductions of
/// the module docs do not hold when a rule can deny, so each pod has one
/// address, and a destination binds any subset of the port names: the wall's
/// pod varies its labels and bindings (its own address matters to no rule of
/// its own side), the other end its labels, its one address and, as a
/// destination, its bindings.
fn tiered_brute_force(iso: &IsolationPolicy, state: &State) -> BTreeSet<Key> {
    let cluster = iso.cluster_addresses();
    let samples = sample_ips();
    let pod_ips: Vec<IpAddr> = samples
        .iter()
        .copied()
        .filter(|ip| cluster.as_ref().is_none_or(|c| c.contains(*ip)))
        .collect();
    let external_ips: Vec<IpAddr> = samples
        .iter()
        .copied()
        .filter(|ip| cluster.as_ref().is_none_or(|c| !c.contains(*ip)))
        .collect();
    let named = state_uses_named_ports(state);
    let all_bindings: [&[&str]; 4] = [&["web", "db"], &["web"], &["db"], &[]];
    let bindings: &[&[&str]] = if named {
        &all_bindings
    } else {
        &all_bindings[..1]
    };
    let (labels, pod_ips) = distinct_behaviours(state, pod_label_sets(), pod_ips);
    let make = |ns: &str,
                l: &BTreeMap<String, String>,
                ip: Option<IpAddr>,
                names: &[&str],
                proto,
                port| {
        let mut p = pod(ns, l, &ip.into_iter().collect::<Vec<_>>(), proto, port);
        p.ports
            .retain(|cp| cp.name.as_deref().is_some_and(|n| names.contains(&n)));
        p
    };
    let checker = Checker::new(iso, state);
    let variants = distinct_namespaces(state, namespace_variants(state, iso));
    let ports: Vec<(Protocol, u16)> = PROTOS
        .iter()
        .flat_map(|p| PORTS.iter().map(move |n| (*p, *n)))
        .collect();
    let mut out = BTreeSet::new();
    // A cluster policy's subject sees the wall's own namespace labels, which
    // vary as every namespace's do (its protected ones stay).
    let walls: Vec<Namespace> = checker
        .tier_namespaces()
        .iter()
        .flat_map(|ns| variants.iter().filter(|v| v.name == ns.name).cloned())
        .collect();
    for wall_variant in &walls {
        let wall_ns = wall_variant;
        let mut wall_state = state.clone();
        wall_state.apply_namespace(wall_variant.clone());
        let state = &wall_state;
        let me = party_of(iso, wall_ns);
        let per_variant = |v: &Namespace| -> Vec<Key> {
            let mut found = Vec::new();
            if v.name == wall_ns.name && v != wall_ns {
                return found;
            }
            let mut s = state.clone();
            s.apply_namespace(v.clone());
            let other = party_of(iso, v);
            for &(proto, port) in &ports {
                let check_in = !iso.allowed(&other, &me).contains(proto, port);
                let check_out = !iso.allowed(&me, &other).contains(proto, port);
                if check_in {
                    let hit = labels.iter().any(|lh| {
                        bindings.iter().any(|b| {
                            let here = make(&wall_ns.name, lh, None, b, proto, port);
                            labels.iter().any(|lt| {
                                pod_ips.iter().any(|ip| {
                                    let there = make(&v.name, lt, Some(*ip), &[], proto, port);
                                    side_allows(
                                        &s,
                                        &here,
                                        Direction::Ingress,
                                        &Endpoint::Pod(&there),
                                        proto,
                                        port,
                                        Some(&here.ports),
                                    )
                                })
                            })
                        })
                    });
                    if hit {
                        found.push((
                            wall_ns.name.clone(),
                            Direction::Ingress,
                            other.clone(),
                            proto,
                            port,
                        ));
                    }
                }
                if check_out {
                    let hit = labels.iter().any(|lh| {
                        let here = make(&wall_ns.name, lh, None, &[], proto, port);
                        labels.iter().any(|lt| {
                            pod_ips.iter().any(|ip| {
                                bindings.iter().any(|b| {
                                    let there = make(&v.name, lt, Some(*ip), b, proto, port);
                                    side_allows(
                                        &s,
                                        &here,
                                        Direction::Egress,
                                        &Endpoint::Pod(&there),
                                        proto,
                                        port,
                                        Some(&there.ports),
                                    )
                                })
                            })
                        })
                    });
                    if hit {
                        found.push((
                            wall_ns.name.clone(),
                            Direction::Egress,
                            other.clone(),
                            proto,
                            port,
                        ));
                    }
                }
            }
            found
        };
        let (left, right) = variants.split_at(variants.len() / 2);
        std::thread::scope(|scope| {
            let handle = scope.spawn(|| left.iter().flat_map(per_variant).collect::<Vec<_>>());
            out.extend(right.iter().flat_map(per_variant));
            out.extend(handle.join().expect("brute-force thread"));
        });
        for &(proto, port) in &ports {
            for (dir, dst_here) in [(Direction::Ingress, true), (Direction::Egress, false)] {
                let allowed = match dir {
                    Direction::Ingress => iso.allowed(&Party::External, &me),
                    Direction::Egress => iso.allowed(&me, &Party::External),
                };
                if allowed.contains(proto, port) {
                    continue;
                }
                let hit = labels.iter().any(|lh| {
                    bindings.iter().any(|b| {
                        let here = make(&wall_ns.name, lh, None, b, proto, port);
                        let dst_ports = dst_here.then_some(here.ports.as_slice());
                        external_ips.iter().any(|ip| {
                            side_allows(
                                state,
                                &here,
                                dir,
                                &Endpoint::External(*ip),
                                proto,
                                port,
                                dst_ports,
                            )
                        })
                    })
                });
                if hit {
                    out.insert((wall_ns.name.clone(), dir, Party::External, proto, port));
                }
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: shrink_iters(), ..ProptestConfig::default() })]

    /// walls mode with ClusterNetworkPolicies, AdminNetworkPolicies and a
    /// BaselineAdminNetworkPolicy mixed with NetworkPolicies: exactly the
    /// brute-force set.
    #[test]
    fn walls_under_cluster_tiers_match_brute_force(
        world_yaml in world_with_cluster_policies(),
        iso_yaml in isolation("walls"),
    ) {
        let Some((state, iso)) = load(&world_yaml, &iso_yaml) else { return Ok(()) };
        prop_assume!(state.has_cluster_policies());
        let want = tiered_brute_force(&iso, &state);
        let got = symbolic(&iso, &state);
        let missed: Vec<_> = want.difference(&got).collect();
        let extra: Vec<_> = got.difference(&want).collect();
        prop_assert!(missed.is_empty() && extra.is_empty(),
            "missed (unsound): {missed:?}\nextra (imprecise): {extra:?}\nworld:\n{world_yaml}\niso:\n{iso_yaml}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases() / 4, ..ProptestConfig::default() })]

    /// Under cluster tiers, `check_change` on a NetworkPolicy write or
    /// delete (judged in its own namespace only), a namespace change, or a
    /// cluster policy create, update or delete finds exactly what diffing
    /// the whole state before and after finds.
    #[test]
    fn a_change_under_cluster_tiers_judged_alone_is_the_whole_diff(
        world_yaml in world_with_cluster_policies(),
        iso_yaml in isolation("walls"),
        policy_yaml in policy(0),
        ns_yaml in namespace_change(),
        cluster_yaml in cluster_policy(0),
        delete in any::<bool>(),
    ) {
        let Some((state, iso)) = load(&world_yaml, &iso_yaml) else { return Ok(()) };
        for change in changes_of(&policy_yaml, &ns_yaml, Some(&cluster_yaml), delete) {
            let (alone, whole) = alone_and_whole(&iso, &state, &change);
            prop_assert_eq!(alone, whole, "{:?}\nworld:\n{}\niso:\n{}", change, world_yaml, iso_yaml);
        }
    }
}

/// A wall that is the only label-made member kept for its tier must not
/// stand for the other members: a cluster policy whose subject is a free
/// label (`team`) would then be read with the wall's labels forced onto
/// the other end. ns-b labelled `team=y` reaches ns-d labelled `team=x`
/// (the Deny's subject is `team=x`, so it does not select ns-b).
#[test]
fn a_wall_does_not_stand_for_the_rest_of_its_tier_under_cluster_tiers() {
    let world = "\
apiVersion: v1
kind: Namespace
metadata: {name: ns-b, labels: {tier: t2}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ns-d, labels: {tier: t2}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: ns-b}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: ns-d}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: to-team-x, namespace: ns-b}
spec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{namespaceSelector: {matchLabels: {team: x}}}]}]}
---
apiVersion: policy.networking.k8s.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: c1}
spec: {subject: {namespaces: {matchLabels: {team: x}}}, tier: Admin, priority: 10, egress: [{action: Deny, to: [{namespaces: {matchLabels: {team: x}}}]}]}
";
    let iso = "\
apiVersion: tierguard.io/v1alpha1
kind: IsolationPolicy
metadata: {name: random}
spec:
  judge: walls
  tierLabel: tier
  tiers: [{name: t1, namespaces: [ns-a]}, {name: t2}]
  baseline: {dns: {to: none}}
  cluster: {podCIDRs: [10.0.0.0/16]}
  flows: [{from: \"tier:t1\", to: \"tier:t1\"}]
";
    let (state, iso) = load(world, iso).expect("the world loads");
    let want = tiered_brute_force(&iso, &state);
    let got = symbolic(&iso, &state);
    assert!(
        want.iter().any(|(ns, ..)| ns == "ns-b"),
        "brute force sees ns-b's egress: {want:?}"
    );
    assert_eq!(got, want, "symbolic and brute force differ");
}
