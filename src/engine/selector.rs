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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

pub use super::solve::{Budget, DEFAULT_BUDGET, Exhausted, satisfiable, solve};

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
}
