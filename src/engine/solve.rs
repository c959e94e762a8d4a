//! Selector questions over labels that may yet exist: do some labels satisfy
//! these selectors ([`satisfiable`], linear), and these but none of those
//! ([`solve`], satisfiability: searched within a [`Budget`]).
//!
//! ```text
//!  keys of every selector ─► candidates per key (values named, absent, "any other")
//!        filtered by `all` (requirements folded per key: one set test each)
//!  search: assign keys in order, explicit stack, undo log of ruled-out selectors
//!        every check spends one unit of the judgement's budget
//! ```

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::selector::{LabelSpace, LabelVal, Op, Requirement, Selector, Witness};

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
        for r in s.requirements() {
            positive.entry(&r.key).or_default().add(r);
            named
                .entry(&r.key)
                .or_default()
                .extend(r.values.iter().map(String::as_str));
        }
    }
    for s in none {
        for r in s.requirements() {
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
        for r in s.requirements() {
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
    use crate::engine::selector::{FreeLabels, Labels};

    fn req(key: &str, op: Op, values: &[&str]) -> Requirement {
        Requirement {
            key: key.to_string(),
            op,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
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
