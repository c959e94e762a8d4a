//! Structure-aware: arbitrary label selectors (many keys, In/NotIn/Exists/
//! DoesNotExist, many values, large counts) for the solver
//! (`engine::solve::{satisfiable, solve}`), and arbitrary policies built
//! from them in the three-tier example world's tier namespaces, judged by
//! the engine (`Checker::report`, `check_change`, `check_namespace_change`;
//! `judge: walls` and `effective`). The solver gets the default budget on
//! the oracle's small inputs and every other judgement a budget of
//! `FUZZ_BUDGET` steps: running out is answered the same at any budget, and
//! the default's 5,000,000 steps on a huge input cost up to a second.
//!
//! Invariants:
//! 1. Nothing panics; every judgement ends within its budget (spending no
//!    more than it, all of it when it answers `Err(Exhausted)`, whose limit
//!    is the budget's; `Err(Exhausted)` is an answer).
//! 2. A witness `solve` returns satisfies every selector of `all` and none
//!    of `none`.
//! 3. On small inputs (at most 6 keys, at most 3 values named per key),
//!    `satisfiable` and `solve` agree with a brute-force enumeration of every
//!    labelling (each key absent, set to a named value, or to one value no
//!    requirement names).

#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tierguard::engine::isolation::{
    Change, Checker, check_change_within, check_namespace_change_within,
};
use tierguard::engine::policy::{Peer, Policy, Rule};
use tierguard::engine::ports::{PortMatch, PortNumbers, Protocol};
use tierguard::engine::selector::{
    Budget, DEFAULT_BUDGET, Exhausted, FreeLabels, LabelVal, Labels, Op, Requirement, Selector,
    satisfiable, solve,
};
use tierguard::engine::state::{Namespace, State};
use tierguard::engine::tiers::{IsolationPolicy, Judge};
use tierguard::model::isolationpolicy;
use tierguard::world::World;

const THREE_TIER: &str = include_str!("../../policies/three-tier.yaml");
const EXAMPLE: [&str; 4] = [
    include_str!("../../examples/three-tier/namespaces.yaml"),
    include_str!("../../examples/three-tier/baseline.yaml"),
    include_str!("../../examples/three-tier/flows.yaml"),
    include_str!("../../examples/three-tier/apps.yaml"),
];

struct Fixture {
    walls: IsolationPolicy,
    effective: IsolationPolicy,
    state: State,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let walls = isolationpolicy::parse(THREE_TIER, "three-tier.yaml").expect("policy");
        let mut effective = walls.clone();
        effective.judge = Judge::Effective;
        let state = World::from_text(&EXAMPLE.join("\n---\n"), "examples/three-tier")
            .expect("examples/three-tier loads")
            .state;
        Fixture {
            walls,
            effective,
            state,
        }
    })
}

// === selectors ===

/// Keys: a few the isolation policy protects or the world uses, and many
/// more by number.
const KEYS: [&str; 8] = [
    "app",
    "role",
    "name",
    "kubernetes.io/metadata.name",
    "tierguard.io/tier",
    "k8s-app",
    "team",
    "env",
];
const VALUES: [&str; 8] = [
    "frontend",
    "backend",
    "database",
    "kube-system",
    "kube-dns",
    "a",
    "b",
    "web",
];

#[derive(Arbitrary, Debug)]
struct ReqIn {
    key: u16,
    op: u8,
    values: Vec<u16>,
}

impl ReqIn {
    fn get(&self) -> Requirement {
        let op = [Op::In, Op::NotIn, Op::Exists, Op::DoesNotExist][usize::from(self.op % 4)];
        let values: BTreeSet<String> = match op {
            // Valid shapes only (validation rejects the others before the
            // engine sees them): a listed operator names at least one value.
            Op::In | Op::NotIn => {
                let mut v: BTreeSet<String> = self.values.iter().map(|&i| value(i)).collect();
                if v.is_empty() {
                    v.insert(value(0));
                }
                v
            }
            Op::Exists | Op::DoesNotExist => BTreeSet::new(),
        };
        Requirement {
            key: key(self.key),
            op,
            values,
        }
    }
}

fn key(i: u16) -> String {
    match KEYS.get(usize::from(i)) {
        Some(k) => (*k).to_string(),
        None => format!("k{i}"),
    }
}

fn value(i: u16) -> String {
    match VALUES.get(usize::from(i)) {
        Some(v) => (*v).to_string(),
        None => format!("v{i}"),
    }
}

#[derive(Arbitrary, Debug)]
enum SelIn {
    Reqs(Vec<ReqIn>),
    /// `count` requirements on keys `k<first>`.., each with `values` values:
    /// huge selectors from a few bytes.
    Huge {
        count: u16,
        values: u16,
        op: u8,
        first: u8,
    },
}

impl SelIn {
    fn get(&self) -> Selector {
        match self {
            SelIn::Reqs(r) => Selector::from_requirements(r.iter().map(ReqIn::get).collect()),
            SelIn::Huge {
                count,
                values,
                op,
                first,
            } => {
                let op = [Op::In, Op::NotIn, Op::Exists, Op::DoesNotExist][usize::from(op % 4)];
                // Up to 300 requirements (past the 256 of docs/limits.md) and
                // 300 values, one time in eight; fewer than 16 otherwise:
                // larger shapes only cost time per input.
                let n = scaled(*values, 300) + 1;
                let vals: BTreeSet<String> = match op {
                    Op::In | Op::NotIn => (0..n).map(value).collect(),
                    _ => BTreeSet::new(),
                };
                let reqs = (0..scaled(*count, 301))
                    .map(|i| Requirement {
                        key: key(u16::from(*first).saturating_add(i)),
                        op,
                        values: if i == 0 {
                            vals.clone()
                        } else {
                            vals.iter().take(2).cloned().collect()
                        },
                    })
                    .collect();
                Selector::from_requirements(reqs)
            }
        }
    }
}

/// A count below `max` from `x`: one in eight anywhere below `max`, the
/// rest below 16.
fn scaled(x: u16, max: u16) -> u16 {
    let n = x >> 3;
    if x % 8 == 0 { n % max } else { n % 16 }
}

// === brute force ===

/// The keys and, per key, the values named, when the selectors are small
/// enough to enumerate.
fn small(sels: &[&Selector]) -> Option<Vec<(String, Vec<String>)>> {
    let mut named: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for s in sels {
        for r in s.requirements() {
            named
                .entry(&r.key)
                .or_default()
                .extend(r.values.iter().map(String::as_str));
        }
    }
    let reqs: usize = sels.iter().map(|s| s.requirements().len()).sum();
    (named.len() <= 6 && named.values().all(|v| v.len() <= 3) && reqs <= 32).then(|| {
        named
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.into_iter().map(str::to_string).collect()))
            .collect()
    })
}

/// A value no requirement names.
const UNNAMED: &str = "\u{1}unnamed";

/// One requirement over key and value indices: `(key, op, values)`.
type Compiled = Vec<(usize, Op, Vec<usize>)>;

fn compile(keys: &[(String, Vec<String>)], s: &Selector) -> Compiled {
    s.requirements()
        .iter()
        .map(|r| {
            let k = keys
                .iter()
                .position(|(key, _)| *key == r.key)
                .expect("every key is listed");
            let vals = &keys[k].1;
            let v = r
                .values
                .iter()
                .map(|x| {
                    vals.iter()
                        .position(|y| y == x)
                        .expect("every value is listed")
                })
                .collect();
            (k, r.op, v)
        })
        .collect()
}

/// A labelling's digit per key: 0 absent, 1 a value no requirement names,
/// `2 + i` the key's `i`th named value. The API reference's rules, directly.
fn holds(c: &Compiled, digits: &[usize]) -> bool {
    c.iter().all(|(k, op, vals)| {
        let d = digits[*k];
        let listed = d >= 2 && vals.contains(&(d - 2));
        match op {
            Op::In => listed,
            Op::NotIn => !listed,
            Op::Exists => d != 0,
            Op::DoesNotExist => d == 0,
        }
    })
}

fn labels_of(keys: &[(String, Vec<String>)], digits: &[usize]) -> Labels {
    let mut labels = Labels::new();
    for ((k, vals), &d) in keys.iter().zip(digits) {
        match d {
            0 => {}
            1 => {
                labels.insert(k.clone(), UNNAMED.to_string());
            }
            d => {
                labels.insert(k.clone(), vals[d - 2].clone());
            }
        }
    }
    labels
}

/// True when some labelling satisfies every selector of `all` and none of
/// `none`: every key absent, set to one of its named values, or unnamed.
fn brute_force(keys: &[(String, Vec<String>)], all: &[&Selector], none: &[&Selector]) -> bool {
    let all_c: Vec<Compiled> = all.iter().map(|s| compile(keys, s)).collect();
    let none_c: Vec<Compiled> = none.iter().map(|s| compile(keys, s)).collect();
    let radix: Vec<usize> = keys.iter().map(|(_, v)| v.len() + 2).collect();
    let mut digits = vec![0usize; keys.len()];
    loop {
        if all_c.iter().all(|c| holds(c, &digits)) && !none_c.iter().any(|c| holds(c, &digits)) {
            // The enumeration's own check, against the engine's matching.
            let labels = labels_of(keys, &digits);
            assert!(all.iter().all(|s| s.matches(&labels)), "{labels:?}");
            assert!(!none.iter().any(|s| s.matches(&labels)), "{labels:?}");
            return true;
        }
        // Next labelling (mixed radix); done after the last.
        let mut i = 0;
        loop {
            if i == digits.len() {
                return false;
            }
            digits[i] += 1;
            if digits[i] < radix[i] {
                break;
            }
            digits[i] = 0;
            i += 1;
        }
    }
}

/// Labels for a witness (`Other` as a value no requirement names).
fn concrete(w: &BTreeMap<String, LabelVal>) -> Labels {
    w.iter()
        .filter_map(|(k, v)| match v {
            LabelVal::Absent => None,
            LabelVal::Value(x) => Some((k.clone(), x.clone())),
            LabelVal::Other => Some((k.clone(), UNNAMED.to_string())),
        })
        .collect()
}

// === policies ===

#[derive(Arbitrary, Debug)]
struct PeerIn {
    namespaces: Option<SelIn>,
    pods: Option<SelIn>,
}

#[derive(Arbitrary, Debug)]
struct RuleIn {
    peers: Option<Vec<PeerIn>>,
    ports: Option<Vec<(u8, u16, u8)>>,
}

#[derive(Arbitrary, Debug)]
struct PolicyIn {
    namespace: u8,
    name: u8,
    pod_selector: SelIn,
    ingress: Option<Vec<RuleIn>>,
    egress: Option<Vec<RuleIn>>,
}

const NAMESPACES: [&str; 5] = ["frontend", "backend", "database", "kube-system", "shop"];
const NAMES: [&str; 4] = [
    "tierguard-default-deny",
    "tierguard-allow-dns",
    "allow-frontend",
    "fuzz",
];

fn rules(rules: &Option<Vec<RuleIn>>) -> Option<Vec<Rule>> {
    rules.as_ref().map(|rs| {
        rs.iter()
            .enumerate()
            .map(|(index, r)| Rule {
                index,
                peers: r.peers.as_ref().filter(|p| !p.is_empty()).map(|ps| {
                    ps.iter()
                        .map(|p| Peer::Pods {
                            namespaces: p.namespaces.as_ref().map(SelIn::get),
                            pods: p.pods.as_ref().map(SelIn::get),
                        })
                        .collect()
                }),
                ports: r.ports.as_ref().filter(|p| !p.is_empty()).map(|ps| {
                    ps.iter()
                        .map(|&(proto, port, kind)| PortMatch {
                            protocol: [Protocol::Tcp, Protocol::Udp, Protocol::Sctp]
                                [usize::from(proto % 3)],
                            numbers: match kind % 3 {
                                0 => PortNumbers::Any,
                                1 => {
                                    let p = port.max(1);
                                    PortNumbers::Range(p, p.saturating_add(u16::from(kind)))
                                }
                                _ => PortNumbers::Named(value(port % 10)),
                            },
                        })
                        .collect()
                }),
            })
            .collect()
    })
}

impl PolicyIn {
    fn get(&self) -> Policy {
        Policy {
            namespace: NAMESPACES[usize::from(self.namespace) % NAMESPACES.len()].into(),
            name: NAMES[usize::from(self.name) % NAMES.len()].into(),
            pod_selector: self.pod_selector.get(),
            ingress: rules(&self.ingress),
            egress: rules(&self.egress),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    all: Vec<SelIn>,
    none: Vec<SelIn>,
    policies: Vec<PolicyIn>,
    namespace: Option<(u8, Vec<(u16, u16)>)>,
    effective: bool,
    /// Whether to run the full report too (it judges every tier namespace:
    /// most of an input's time when it runs for every input).
    report: bool,
}

/// The budget of every judgement but the small solver inputs': running out
/// is handled the same at any budget (`Err(Exhausted)`), and the default
/// 5,000,000 steps would cost up to a second per huge input.
const FUZZ_BUDGET: u64 = 2_000;

fn within_budget<T>(budget: &Budget, limit: u64, r: &Result<T, Exhausted>) {
    assert!(budget.spent() <= limit, "spent {}", budget.spent());
    if let Err(e) = r {
        assert_eq!(e.limit, limit);
        assert_eq!(budget.spent(), limit, "an exhausted budget is all spent");
    }
}

fuzz_target!(|input: Input| {
    // The solver.
    let all: Vec<Selector> = input.all.iter().map(SelIn::get).collect();
    let none: Vec<Selector> = input.none.iter().map(SelIn::get).collect();
    let all: Vec<&Selector> = all.iter().collect();
    let none: Vec<&Selector> = none.iter().collect();
    let sat = satisfiable(&all, &FreeLabels);
    let both: Vec<&Selector> = all.iter().chain(&none).copied().collect();
    let keys = small(&both);
    // Small inputs (the oracle's) with the default budget, so that the
    // oracle is checked against the answer realistic policies get.
    let limit = if keys.is_some() {
        DEFAULT_BUDGET
    } else {
        FUZZ_BUDGET
    };
    let budget = Budget::new(limit);
    let solved = solve(&all, &none, &FreeLabels, &budget);
    within_budget(&budget, limit, &solved);
    if let Ok(Some(w)) = &solved {
        let labels = concrete(w);
        assert!(all.iter().all(|s| s.matches(&labels)), "{w:?}");
        assert!(!none.iter().any(|s| s.matches(&labels)), "{w:?}");
        assert!(
            sat,
            "solve found labels for selectors satisfiable() rejects"
        );
    }
    if let Some(keys) = keys {
        assert_eq!(sat, brute_force(&keys, &all, &[]), "satisfiable");
        if let Ok(got) = &solved {
            assert_eq!(got.is_some(), brute_force(&keys, &all, &none), "solve");
        }
    }

    // The engine, over the three-tier world with the policies applied.
    let f = fixture();
    let iso = if input.effective {
        &f.effective
    } else {
        &f.walls
    };
    let policies: Vec<Arc<Policy>> = input
        .policies
        .iter()
        .take(4)
        .map(|p| Arc::new(p.get()))
        .collect();
    if policies.is_empty() && input.namespace.is_none() {
        // The world's own report is the same for every input.
        return;
    }
    let mut state = f.state.clone();
    for p in &policies {
        let budget = Budget::new(FUZZ_BUDGET);
        let r = check_change_within(iso, &state, &Change::ApplyPolicy(Arc::clone(p)), &budget);
        within_budget(&budget, FUZZ_BUDGET, &r);
        state.apply_policy(Arc::clone(p));
    }
    if !policies.is_empty() && input.report {
        let budget = Budget::new(FUZZ_BUDGET);
        let report = Checker::within(iso, &state, &budget).report();
        within_budget(&budget, FUZZ_BUDGET, &report);
    }
    if let Some(p) = policies.first() {
        let budget = Budget::new(FUZZ_BUDGET);
        let r = check_change_within(
            iso,
            &state,
            &Change::DeletePolicy {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
            },
            &budget,
        );
        within_budget(&budget, FUZZ_BUDGET, &r);
    }
    if let Some((ns, labels)) = &input.namespace {
        let name = NAMESPACES[usize::from(*ns) % NAMESPACES.len()];
        let labels: Labels = labels
            .iter()
            .take(16)
            .map(|&(k, v)| (key(k % 16), value(v % 16)))
            .collect();
        let ns = Namespace::new(name, labels);
        let baseline = tierguard::model::baseline::engine_policies(iso, name);
        let budget = Budget::new(FUZZ_BUDGET);
        let r = check_namespace_change_within(iso, &state, &ns, &baseline, &budget);
        within_budget(&budget, FUZZ_BUDGET, &r);
    }
});
