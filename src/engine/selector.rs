//! Label selectors, evaluated on concrete labels and solved over labels that
//! are not known yet.
//!
//! Matching rules (apimachinery `labels.Selector`, as NetworkPolicy uses it):
//! 1. A selector is a conjunction of requirements; `matchLabels: {k: v}` is
//!    the requirement `k In (v)`.
//! 2. `In`: the key is present and its value is listed.
//! 3. `NotIn`: the key is absent, or its value is not listed.
//! 4. `Exists`: the key is present. `DoesNotExist`: the key is absent.
//! 5. An empty selector (`{}`) selects everything. A nil selector (the field
//!    left out) selects nothing; callers model it as `Option<Selector>`.
//!
//! # Solving
//!
//! The isolation check must ask "is there *some* pod (or namespace) whose
//! labels satisfy these selectors and none of those?". Labels a user controls
//! are free; labels tierguard protects have a known set of possible values.
//! Only finitely many values need to be tried per key: every value some
//! requirement on that key names, plus "absent", plus one value no requirement
//! names ([`LabelVal::Other`]): any other value behaves exactly like that one
//! under every requirement. [`solve`] searches these assignments key by key,
//! pruning as soon as a negated selector is certainly false or a positive one
//! certainly fails, and returns a witness.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Labels of an object.
pub type Labels = BTreeMap<String, String>;

/// A selector operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// Present with a listed value.
    In,
    /// Absent, or present with an unlisted value.
    NotIn,
    /// Present.
    Exists,
    /// Absent.
    DoesNotExist,
}

/// One requirement on one key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// The operator.
    pub op: Op,
    /// The values, sorted and deduplicated (empty for Exists/DoesNotExist).
    pub values: BTreeSet<String>,
}

/// A possible value of one label key, for solving.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LabelVal {
    /// The key is not set.
    Absent,
    /// The key is set to this value.
    Value(String),
    /// The key is set to a value that no requirement under consideration
    /// names.
    Other,
}

impl fmt::Display for LabelVal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelVal::Absent => f.write_str("(absent)"),
            LabelVal::Value(v) => f.write_str(v),
            LabelVal::Other => f.write_str("(any other value)"),
        }
    }
}

// === impl Requirement ===

impl Requirement {
    /// Evaluates the requirement on a key's value (`None` = absent).
    pub fn matches_value(&self, value: Option<&str>) -> bool {
        match (self.op, value) {
            (Op::In, Some(v)) => self.values.contains(v),
            (Op::In, None) => false,
            (Op::NotIn, Some(v)) => !self.values.contains(v),
            (Op::NotIn, None) => true,
            (Op::Exists, v) => v.is_some(),
            (Op::DoesNotExist, v) => v.is_none(),
        }
    }

    /// Evaluates the requirement on a symbolic value. `Other` names no value
    /// of this requirement by construction.
    pub fn matches_sym(&self, value: &LabelVal) -> bool {
        match value {
            LabelVal::Absent => self.matches_value(None),
            LabelVal::Value(v) => self.matches_value(Some(v)),
            LabelVal::Other => match self.op {
                Op::In | Op::DoesNotExist => false,
                Op::NotIn | Op::Exists => true,
            },
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let vals = || self.values.iter().cloned().collect::<Vec<_>>().join(",");
        match self.op {
            Op::In if self.values.len() == 1 => write!(f, "{}={}", self.key, vals()),
            Op::In => write!(f, "{} in ({})", self.key, vals()),
            Op::NotIn => write!(f, "{} notin ({})", self.key, vals()),
            Op::Exists => write!(f, "{}", self.key),
            Op::DoesNotExist => write!(f, "!{}", self.key),
        }
    }
}

/// A validated label selector. The empty selector selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Selector {
    reqs: Vec<Requirement>,
}

// === impl Selector ===

impl Selector {
    /// The empty selector, which selects everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// A selector from requirements (sorted for stable output).
    pub fn from_requirements(mut reqs: Vec<Requirement>) -> Self {
        reqs.sort();
        reqs.dedup();
        Self { reqs }
    }

    /// `matchLabels` alone.
    pub fn from_match_labels<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self::from_requirements(
            labels
                .into_iter()
                .map(|(k, v)| Requirement {
                    key: k.to_string(),
                    op: Op::In,
                    values: BTreeSet::from([v.to_string()]),
                })
                .collect(),
        )
    }

    /// The requirements (a conjunction).
    pub fn requirements(&self) -> &[Requirement] {
        &self.reqs
    }

    /// True for `{}`, which selects everything.
    pub fn is_everything(&self) -> bool {
        self.reqs.is_empty()
    }

    /// True when the labels satisfy every requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.reqs
            .iter()
            .all(|r| r.matches_value(labels.get(&r.key).map(String::as_str)))
    }

    /// The values an `In` requirement on `key` pins it to, intersected over
    /// all such requirements; `None` when no `In` requirement names the key.
    pub fn pinned_values(&self, key: &str) -> Option<BTreeSet<String>> {
        self.reqs
            .iter()
            .filter(|r| r.key == key && r.op == Op::In)
            .map(|r| r.values.clone())
            .reduce(|a, b| a.intersection(&b).cloned().collect())
    }
}

impl fmt::Display for Selector {
    /// kubectl's selector syntax; `{}` for the empty selector.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reqs.is_empty() {
            return f.write_str("{}");
        }
        let parts: Vec<String> = self.reqs.iter().map(Requirement::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// The values a key may take, for [`solve`].
pub trait LabelSpace {
    /// `Some(values)` when the key's value is restricted to those
    /// possibilities; `None` when the key is free (any value or absent).
    fn domain(&self, key: &str) -> Option<Vec<LabelVal>>;
}

/// Every key free: labels of a pod that may yet be created.
pub struct FreeLabels;

impl LabelSpace for FreeLabels {
    fn domain(&self, _key: &str) -> Option<Vec<LabelVal>> {
        None
    }
}

/// A satisfying assignment: the value chosen for each key that mattered.
pub type Witness = BTreeMap<String, LabelVal>;

/// Renders a witness as `app=<any other value>, no label role`, or `any
/// labels` when no key mattered.
pub fn describe_witness(w: &Witness) -> String {
    if w.is_empty() {
        return "any labels".into();
    }
    w.iter()
        .map(|(k, v)| match v {
            LabelVal::Absent => format!("no label {k}"),
            LabelVal::Value(x) => format!("{k}={x}"),
            LabelVal::Other => format!("{k}=<any other value>"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The work a judgement may spend deciding selector questions, in units of
/// one selector's requirements on one key checked against one candidate
/// value. Deciding whether
/// some labels escape a set of selectors is satisfiability (NP-complete in
/// general), so hard inputs get a budget rather than hope: a judgement that
/// spends it all answers [`Exhausted`], which the webhook turns into
/// "cannot judge" (refused in enforce mode).
#[derive(Debug)]
pub struct Budget {
    left: Cell<u64>,
    limit: u64,
}

/// The default budget of one judgement (docs/limits.md: what it costs and
/// what realistic policies need).
pub const DEFAULT_BUDGET: u64 = 5_000_000;

/// A judgement spent its whole [`Budget`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exhausted {
    /// The budget it had.
    pub limit: u64,
}

impl fmt::Display for Exhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "deciding which pods the selectors leave out took more than tierguard's budget of {} steps",
            self.limit
        )
    }
}

impl std::error::Error for Exhausted {}

impl Budget {
    /// A budget of `limit` units.
    pub fn new(limit: u64) -> Self {
        Self {
            left: Cell::new(limit),
            limit,
        }
    }

    /// Spends `n` units, or says the budget is gone.
    pub fn spend(&self, n: u64) -> Result<(), Exhausted> {
        match self.left.get().checked_sub(n) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => {
                self.left.set(0);
                Err(Exhausted { limit: self.limit })
            }
        }
    }

    /// Units spent so far.
    pub fn spent(&self) -> u64 {
        self.limit - self.left.get()
    }
}

impl Default for Budget {
    fn default() -> Self {
        Self::new(DEFAULT_BUDGET)
    }
}

/// What the requirements of `all` on one key allow, folded so that each
/// candidate value is checked in logarithmic time however many requirements
/// name the key.
#[derive(Default)]
struct Allowed<'a> {
    /// The intersection of the `In` lists (`None`: no `In`).
    within: Option<BTreeSet<&'a str>>,
    /// The union of the `NotIn` lists.
    excluded: BTreeSet<&'a str>,
    present: bool,
    absent: bool,
}

impl<'a> Allowed<'a> {
    fn add(&mut self, r: &'a Requirement) {
        match r.op {
            Op::In => {
                let vals: BTreeSet<&str> = r.values.iter().map(String::as_str).collect();
                self.within = Some(match self.within.take() {
                    None => vals,
                    Some(w) => w.intersection(&vals).copied().collect(),
                });
            }
            Op::NotIn => self.excluded.extend(r.values.iter().map(String::as_str)),
            Op::Exists => self.present = true,
            Op::DoesNotExist => self.absent = true,
        }
    }

    fn admits(&self, v: &LabelVal) -> bool {
        match v {
            LabelVal::Absent => self.within.is_none() && !self.present,
            LabelVal::Other => self.within.is_none() && !self.absent,
            LabelVal::Value(x) => {
                !self.absent
                    && self.within.as_ref().is_none_or(|w| w.contains(x.as_str()))
                    && !self.excluded.contains(x.as_str())
            }
        }
    }
}

/// Candidate values per key (sorted keys of `all` and `none`), already
/// filtered by `all`; `None` when some key has no candidate left.
fn candidates<'s>(
    all: &[&'s Selector],
    none: &[&'s Selector],
    space: &dyn LabelSpace,
) -> Option<(Vec<&'s str>, Vec<Vec<LabelVal>>)> {
    // Requirements by key, in one pass.
    let mut positive: BTreeMap<&str, Allowed<'_>> = BTreeMap::new();
    let mut named: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for s in all {
        for r in &s.reqs {
            positive.entry(&r.key).or_default().add(r);
            named
                .entry(&r.key)
                .or_default()
                .extend(r.values.iter().map(String::as_str));
        }
    }
    for s in none {
        for r in &s.reqs {
            named
                .entry(&r.key)
                .or_default()
                .extend(r.values.iter().map(String::as_str));
        }
    }
    let keys: Vec<&str> = named.keys().copied().collect();
    let mut cands = Vec::with_capacity(keys.len());
    for key in &keys {
        let base = match space.domain(key) {
            Some(d) => d,
            None => {
                let mut v = vec![LabelVal::Absent, LabelVal::Other];
                v.extend(named[key].iter().map(|s| LabelVal::Value((*s).to_string())));
                v
            }
        };
        let filtered: Vec<LabelVal> = match positive.get(key) {
            Some(allowed) => base.into_iter().filter(|v| allowed.admits(v)).collect(),
            None => base,
        };
        if filtered.is_empty() {
            return None;
        }
        cands.push(filtered);
    }
    Some((keys, cands))
}

/// True when some labels (from `space`) satisfy every selector in `all`.
/// Without negations every key is decided on its own, so this never needs
/// a budget.
pub fn satisfiable(all: &[&Selector], space: &dyn LabelSpace) -> bool {
    candidates(all, &[], space).is_some()
}

/// Finds labels (from `space`) that satisfy every selector in `all` and none
/// of the selectors in `none`; `Ok(None)` when no such labels exist.
///
/// The search assigns keys in order with an explicit stack (its depth is the
/// number of keys, which inputs control, so it does not recurse) and spends
/// `budget` on every requirement it checks.
pub fn solve(
    all: &[&Selector],
    none: &[&Selector],
    space: &dyn LabelSpace,
    budget: &Budget,
) -> Result<Option<Witness>, Exhausted> {
    // An empty selector in `none` matches everything: nothing escapes it.
    if none.iter().any(|s| s.is_everything()) {
        return Ok(None);
    }
    let Some((keys, cands)) = candidates(all, none, space) else {
        return Ok(None);
    };
    budget.spend(keys.len() as u64)?;
    let key_index = |k: &str| keys.binary_search(&k).unwrap_or(0);
    // For each key, the negated selectors with requirements on it; and for
    // each negated selector the index of its last key: once that key is
    // assigned with all its requirements still true, the selector matches.
    // A selector's requirements on one key are folded into one check.
    let mut on_key: Vec<Vec<(usize, Allowed<'_>)>> = (0..keys.len()).map(|_| Vec::new()).collect();
    let mut last_key = vec![0usize; none.len()];
    for (i, s) in none.iter().enumerate() {
        let mut by_key: BTreeMap<usize, Allowed<'_>> = BTreeMap::new();
        for r in &s.reqs {
            by_key.entry(key_index(&r.key)).or_default().add(r);
        }
        last_key[i] = by_key.keys().next_back().copied().unwrap_or(0);
        for (k, allowed) in by_key {
            on_key[k].push((i, allowed));
        }
    }

    let mut alive = vec![true; none.len()]; // still possibly matching
    let mut assignment: Vec<usize> = Vec::with_capacity(keys.len());
    // One frame per assigned key: the next candidate to try, and the
    // selectors its current candidate ruled out (undone on backtrack).
    let mut frames: Vec<(usize, Vec<usize>)> = vec![(0, Vec::new())];
    while let Some(depth) = frames.len().checked_sub(1) {
        if depth == keys.len() {
            let witness = keys
                .iter()
                .zip(&assignment)
                .zip(&cands)
                .map(|((k, &c), vals)| (k.to_string(), vals[c].clone()))
                .collect();
            return Ok(Some(witness));
        }
        let (next, killed) = &mut frames[depth];
        for &i in killed.iter() {
            alive[i] = true;
        }
        killed.clear();
        if *next == cands[depth].len() {
            frames.pop();
            assignment.pop();
            continue;
        }
        let choice = *next;
        *next += 1;
        let val = &cands[depth][choice];
        let mut ok = true;
        for (i, allowed) in &on_key[depth] {
            if !alive[*i] {
                continue;
            }
            budget.spend(1)?;
            if !allowed.admits(val) {
                alive[*i] = false; // can no longer match: its negation holds
                killed.push(*i);
            } else if last_key[*i] == depth {
                ok = false; // every requirement held: the negated selector matches
                break;
            }
        }
        if ok {
            assignment.truncate(depth);
            assignment.push(choice);
            frames.push((0, Vec::new()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solved(all: &[&Selector], none: &[&Selector], space: &dyn LabelSpace) -> Option<Witness> {
        solve(all, none, space, &Budget::default()).expect("within the budget")
    }

    fn req(key: &str, op: Op, values: &[&str]) -> Requirement {
        Requirement {
            key: key.into(),
            op,
            values: values.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn labels(kv: &[(&str, &str)]) -> Labels {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn operators_match_as_the_api_reference_says() {
        let pod = labels(&[("app", "db"), ("tier", "data")]);
        let cases = [
            (req("app", Op::In, &["db", "web"]), true),
            (req("app", Op::In, &["web"]), false),
            (req("missing", Op::In, &["x"]), false),
            (req("app", Op::NotIn, &["web"]), true),
            (req("app", Op::NotIn, &["db"]), false),
            (req("missing", Op::NotIn, &["x"]), true),
            (req("app", Op::Exists, &[]), true),
            (req("missing", Op::Exists, &[]), false),
            (req("missing", Op::DoesNotExist, &[]), true),
            (req("app", Op::DoesNotExist, &[]), false),
        ];
        for (r, want) in cases {
            let s = Selector::from_requirements(vec![r.clone()]);
            assert_eq!(s.matches(&pod), want, "{r}");
        }
        assert!(Selector::everything().matches(&Labels::new()));
    }

    #[test]
    fn solve_finds_labels_outside_every_selector() {
        let app_db = Selector::from_match_labels([("app", "db")]);
        let app_exists = Selector::from_requirements(vec![req("app", Op::Exists, &[])]);
        let w = solved(&[], &[&app_db], &FreeLabels).expect("a pod without app=db exists");
        assert!(!app_db.requirements()[0].matches_sym(&w["app"]));
        // app=db, plus "app exists", leaves pods without app.
        let w = solved(&[], &[&app_db, &app_exists], &FreeLabels).expect("pods lacking app");
        assert_eq!(w["app"], LabelVal::Absent);
        // ... and adding "app does not exist" covers everything.
        let no_app = Selector::from_requirements(vec![req("app", Op::DoesNotExist, &[])]);
        assert_eq!(solved(&[], &[&app_exists, &no_app], &FreeLabels), None);
        assert_eq!(solved(&[], &[&Selector::everything()], &FreeLabels), None);
    }

    #[test]
    fn solve_detects_contradictions() {
        let contradiction = Selector::from_requirements(vec![
            req("app", Op::In, &["db"]),
            req("app", Op::NotIn, &["db"]),
        ]);
        assert_eq!(solved(&[&contradiction], &[], &FreeLabels), None);
        let a = Selector::from_match_labels([("app", "a")]);
        let b = Selector::from_match_labels([("app", "b")]);
        assert_eq!(solved(&[&a, &b], &[], &FreeLabels), None);
        assert!(solved(&[&a], &[&b], &FreeLabels).is_some());
    }

    struct Fixed;
    impl LabelSpace for Fixed {
        fn domain(&self, key: &str) -> Option<Vec<LabelVal>> {
            (key == "name").then(|| vec![LabelVal::Value("backend".into())])
        }
    }

    #[test]
    fn solve_respects_restricted_domains() {
        let frontend = Selector::from_match_labels([("name", "frontend")]);
        let backend = Selector::from_match_labels([("name", "backend")]);
        assert_eq!(solved(&[&frontend], &[], &Fixed), None);
        assert!(solved(&[&backend], &[], &Fixed).is_some());
        let team = Selector::from_match_labels([("team", "x")]);
        assert!(
            solved(&[&team, &backend], &[], &Fixed).is_some(),
            "free keys stay free"
        );
    }

    // === hostile shapes: no recursion, no quadratic folding, a budget ===

    fn exists_keys(n: usize) -> Selector {
        Selector::from_requirements(
            (0..n)
                .map(|i| req(&format!("k{i}"), Op::Exists, &[]))
                .collect(),
        )
    }

    #[test]
    fn thousands_of_keys_are_searched_without_recursion() {
        // The search once recursed once per key: 6,000 keys overflowed a
        // worker's stack. Run it on a deliberately small stack.
        let answer = std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(|| {
                let many = exists_keys(6_000);
                solve(&[], &[&many], &FreeLabels, &Budget::default())
            })
            .expect("thread")
            .join()
            .expect("no stack overflow");
        let w = answer
            .expect("within the budget")
            .expect("escapes: one key absent");
        assert_eq!(w.get("k0"), Some(&LabelVal::Absent));
    }

    #[test]
    fn many_requirements_on_one_key_cost_one_step_per_candidate() {
        // 40,000 NotIn requirements on one key once cost values × requirements.
        let reqs: Vec<Requirement> = (0..40_000)
            .map(|i| req("app", Op::NotIn, &[&i.to_string()]))
            .collect();
        let sel = Selector::from_requirements(reqs);
        let budget = Budget::default();
        assert!(satisfiable(&[&sel], &FreeLabels));
        let w = solve(&[], &[&sel], &FreeLabels, &budget)
            .expect("within the budget")
            .expect("app=<one of the listed values> escapes it");
        assert!(matches!(w.get("app"), Some(LabelVal::Value(_))), "{w:?}");
        assert!(budget.spent() < 100, "spent {}", budget.spent());
    }

    /// Random 3-SAT clauses as selectors: a pod escapes clause (a ∨ ¬b ∨ c)'s
    /// selector `a notin (t), b in (t), c notin (t)` iff it satisfies the clause.
    fn three_sat(keys: usize, clauses: usize, seed: u64) -> Vec<Selector> {
        let mut x = seed;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as usize
        };
        (0..clauses)
            .map(|_| {
                let mut reqs = Vec::new();
                while reqs.len() < 3 {
                    let k = format!("x{}", next() % keys);
                    if reqs.iter().any(|r: &Requirement| r.key == k) {
                        continue;
                    }
                    let op = if next() % 2 == 0 { Op::In } else { Op::NotIn };
                    reqs.push(req(&k, op, &["t"]));
                }
                Selector::from_requirements(reqs)
            })
            .collect()
    }

    #[test]
    fn hard_satisfiability_ends_within_its_budget() {
        // Near the 3-SAT phase transition (4.26 clauses per variable), where
        // backtracking is exponential: the answer is a result or Exhausted,
        // never a hang, and a small budget is honoured to the unit.
        for seed in 0..8 {
            let clauses = three_sat(28, 119, seed);
            let refs: Vec<&Selector> = clauses.iter().collect();
            let small = Budget::new(10_000);
            match solve(&[], &refs, &FreeLabels, &small) {
                Err(e) => assert_eq!(e, Exhausted { limit: 10_000 }),
                Ok(Some(w)) => {
                    // A claimed escape really escapes every selector.
                    let labels: Labels = w
                        .iter()
                        .filter_map(|(k, v)| match v {
                            LabelVal::Value(x) => Some((k.clone(), x.clone())),
                            LabelVal::Other => Some((k.clone(), "other".into())),
                            LabelVal::Absent => None,
                        })
                        .collect();
                    assert!(refs.iter().all(|s| !s.matches(&labels)), "seed {seed}");
                }
                Ok(None) => {}
            }
            assert!(small.spent() <= 10_000);
        }
    }

    #[test]
    fn the_search_agrees_with_brute_force_on_small_instances() {
        // Every assignment of 8 keys over {absent, t, other}, against the
        // solver, on random clause sets of every density.
        for seed in 0..40 {
            let clauses = three_sat(8, 4 + (seed as usize % 40), seed);
            let refs: Vec<&Selector> = clauses.iter().collect();
            let got = solve(&[], &refs, &FreeLabels, &Budget::default()).expect("small");
            let mut any = false;
            for code in 0..3usize.pow(8) {
                let mut labels = Labels::new();
                let mut c = code;
                for k in 0..8 {
                    match c % 3 {
                        1 => {
                            labels.insert(format!("x{k}"), "t".into());
                        }
                        2 => {
                            labels.insert(format!("x{k}"), "other".into());
                        }
                        _ => {}
                    }
                    c /= 3;
                }
                if refs.iter().all(|s| !s.matches(&labels)) {
                    any = true;
                    break;
                }
            }
            assert_eq!(got.is_some(), any, "seed {seed}");
        }
    }
}
