//! Calico's label selector expressions (`selector`, `notSelector`,
//! `namespaceSelector`, `serviceAccountSelector`).
//!
//! The language, as Calico's own parser (libcalico-go
//! `lib/selector/{tokenizer,parser}`) reads and evaluates it; where its
//! documentation and that parser differ, tierguard follows the parser,
//! because Felix enforces what the parser builds:
//!
//! | expression | matches labels that |
//! |---|---|
//! | `all()`, or an empty or blank selector | any |
//! | `global()` | any (in a rule's `namespaceSelector` Calico reads it as "not namespaced": [`Expr::Global`]) |
//! | `has(k)` | have `k` |
//! | `k == 'v'` | have `k` set to `v` |
//! | `k != 'v'` | lack `k`, or have it set to another value (the documentation says "have `k`": the parser matches an absent `k` too) |
//! | `k in {'a', 'b'}` | have `k` set to a listed value |
//! | `k not in {'a', 'b'}` | lack `k`, or have it set to an unlisted value |
//! | `k contains 's'`, `k starts with 's'`, `k ends with 's'` | have `k` with such a value |
//! | `!e` | do not match `e` (any run of `!` counts by parity) |
//! | `a && b`, `a \|\| b`, `( e )` | `&&` binds tighter than `\|\|` |
//!
//! Lexically: keys are runs of `[A-Za-z0-9_./-]`; strings are quoted with
//! `'` or `"` and have no escapes; only spaces and tabs separate tokens; a
//! set may be empty and may end with a comma.
//!
//! tierguard adds limits of its own, so that a hostile selector cannot
//! stall or crash the guard ([`MAX_DEPTH`], [`MAX_TERMS`], [`MAX_VALUES`]);
//! over them the selector is an error, so the policy is not judged (and is
//! refused in enforce mode) rather than judged wrongly.

use std::collections::BTreeSet;
use std::fmt;

use crate::engine::selector::{Labels, Op, Requirement, Selector};

mod parse;
#[cfg(test)]
mod tests;

pub use self::parse::parse;

/// Parentheses nested deeper than this are an error.
pub const MAX_DEPTH: usize = 32;
/// The most terms (`has`, comparisons, `all()`, `global()`) in one
/// selector, and the most conjunctions its disjunctive form may have: the
/// same bound as a NetworkPolicy selector's requirements (docs/limits.md).
pub const MAX_TERMS: usize = 256;
/// The most values in one `in {…}` or `not in {…}` set.
pub const MAX_VALUES: usize = 10_000;

/// A parsed selector expression.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Expr {
    /// `all()`: everything.
    All,
    /// `global()`: everything on labels; in a rule's `namespaceSelector`
    /// Calico reads it as "endpoints in no namespace" (global network sets,
    /// host endpoints), so callers must look for it.
    Global,
    /// `has(k)`.
    Has(String),
    /// `k == 'v'`.
    Eq(String, String),
    /// `k != 'v'` (an absent key matches).
    Ne(String, String),
    /// `k in {…}`.
    In(String, BTreeSet<String>),
    /// `k not in {…}` (an absent key matches).
    NotIn(String, BTreeSet<String>),
    /// `k contains 's'`.
    Contains(String, String),
    /// `k starts with 's'`.
    StartsWith(String, String),
    /// `k ends with 's'`.
    EndsWith(String, String),
    /// `!e`.
    Not(Box<Expr>),
    /// `a && b && …` (two or more operands).
    And(Vec<Expr>),
    /// `a || b || …` (two or more operands).
    Or(Vec<Expr>),
}

/// A selector that cannot be parsed: where reading stopped, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid Calico selector at character {column}: {message}")]
pub struct ParseError {
    /// Byte offset of the offending token (the text's length at its end).
    pub offset: usize,
    /// The same place as a 1-based character count.
    pub column: usize,
    /// What was expected or what is wrong.
    pub message: String,
}

/// Why a parsed selector has no exact form in the engine's selectors.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unsupported {
    /// `contains`, `starts with` or `ends with`: the engine reasons about
    /// label values it can enumerate, and these match unnamed values.
    #[error("tierguard does not judge the {op} operator yet (on label {key})")]
    StringMatch {
        /// The operator as written.
        op: &'static str,
        /// Its label key.
        key: String,
    },
    /// `global()`, whose meaning depends on where the selector stands.
    #[error("global() selects endpoints in no namespace, which tierguard does not model here")]
    Global,
    /// The disjunctive form has more than [`MAX_TERMS`] conjunctions.
    #[error(
        "the selector expands to more than {MAX_TERMS} alternatives, more than tierguard judges (docs/limits.md)"
    )]
    TooComplex,
}

// === impl Expr ===

impl Expr {
    /// True when the labels satisfy the expression.
    pub fn matches(&self, labels: &Labels) -> bool {
        let get = |k: &String| labels.get(k).map(String::as_str);
        match self {
            Expr::All | Expr::Global => true,
            Expr::Has(k) => labels.contains_key(k),
            Expr::Eq(k, v) => get(k) == Some(v.as_str()),
            Expr::Ne(k, v) => get(k) != Some(v.as_str()),
            Expr::In(k, vs) => get(k).is_some_and(|x| vs.contains(x)),
            Expr::NotIn(k, vs) => !get(k).is_some_and(|x| vs.contains(x)),
            Expr::Contains(k, s) => get(k).is_some_and(|x| x.contains(s.as_str())),
            Expr::StartsWith(k, s) => get(k).is_some_and(|x| x.starts_with(s.as_str())),
            Expr::EndsWith(k, s) => get(k).is_some_and(|x| x.ends_with(s.as_str())),
            Expr::Not(e) => !e.matches(labels),
            Expr::And(es) => es.iter().all(|e| e.matches(labels)),
            Expr::Or(es) => es.iter().any(|e| e.matches(labels)),
        }
    }

    /// True when `global()` appears anywhere in the expression.
    pub fn mentions_global(&self) -> bool {
        match self {
            Expr::Global => true,
            Expr::Not(e) => e.mentions_global(),
            Expr::And(es) | Expr::Or(es) => es.iter().any(Expr::mentions_global),
            _ => false,
        }
    }

    /// The expression as a union of the engine's selectors, exactly: labels
    /// match the expression iff they match one of the selectors (none: the
    /// expression matches nothing). Conjunctions that cannot hold because
    /// they require a value from an empty set are left out.
    pub fn to_engine(&self) -> Result<Vec<Selector>, Unsupported> {
        Ok(dnf(self, false)?
            .into_iter()
            .map(Selector::from_requirements)
            .collect())
    }
}

/// A conjunction of requirements; a disjunction of them.
type Conj = Vec<Requirement>;

/// The disjunctive normal form of `e` (negated when `neg`).
fn dnf(e: &Expr, neg: bool) -> Result<Vec<Conj>, Unsupported> {
    let lit = |key: &str, op: Op, values: BTreeSet<String>| -> Vec<Conj> {
        match (op, values.is_empty()) {
            // `in {}` holds for no labels; `not in {}` for all.
            (Op::In, true) => Vec::new(),
            (Op::NotIn, true) => vec![Vec::new()],
            _ => vec![vec![Requirement {
                key: key.to_string(),
                op,
                values,
            }]],
        }
    };
    let one = |v: &str| BTreeSet::from([v.to_string()]);
    // `==` and `in` read as `In` (negated: `NotIn`), `!=` and `not in`
    // the other way round.
    let (same, flip) = if neg {
        (Op::NotIn, Op::In)
    } else {
        (Op::In, Op::NotIn)
    };
    Ok(match e {
        Expr::All => {
            if neg {
                Vec::new()
            } else {
                vec![Vec::new()]
            }
        }
        Expr::Global => return Err(Unsupported::Global),
        Expr::Has(k) => {
            let op = if neg { Op::DoesNotExist } else { Op::Exists };
            lit(k, op, BTreeSet::new())
        }
        Expr::Eq(k, v) => lit(k, same, one(v)),
        Expr::In(k, vs) => lit(k, same, vs.clone()),
        Expr::Ne(k, v) => lit(k, flip, one(v)),
        Expr::NotIn(k, vs) => lit(k, flip, vs.clone()),
        Expr::Contains(k, _) => return Err(string_match("contains", k)),
        Expr::StartsWith(k, _) => return Err(string_match("starts with", k)),
        Expr::EndsWith(k, _) => return Err(string_match("ends with", k)),
        Expr::Not(e) => dnf(e, !neg)?,
        // Not of a conjunction is the disjunction of the negations, and so
        // on: `neg` flips which of the two combinators applies.
        Expr::And(es) if !neg => product(es, neg)?,
        Expr::Or(es) if neg => product(es, neg)?,
        Expr::And(es) | Expr::Or(es) => {
            let mut out = Vec::new();
            for e in es {
                out.extend(dnf(e, neg)?);
                if out.len() > MAX_TERMS {
                    return Err(Unsupported::TooComplex);
                }
            }
            out
        }
    })
}

fn string_match(op: &'static str, key: &str) -> Unsupported {
    Unsupported::StringMatch {
        op,
        key: key.to_string(),
    }
}

/// The conjunction of the operands' forms (each negated when `neg`),
/// distributed into one disjunction.
fn product(es: &[Expr], neg: bool) -> Result<Vec<Conj>, Unsupported> {
    let mut acc: Vec<Conj> = vec![Vec::new()];
    for e in es {
        let alts = dnf(e, neg)?;
        if acc.len().saturating_mul(alts.len()) > MAX_TERMS {
            return Err(Unsupported::TooComplex);
        }
        acc = acc
            .iter()
            .flat_map(|a| {
                alts.iter().map(move |b| {
                    let mut c = a.clone();
                    c.extend(b.iter().cloned());
                    c
                })
            })
            .collect();
        if acc.iter().any(|c| c.len() > MAX_TERMS) {
            return Err(Unsupported::TooComplex);
        }
    }
    Ok(acc)
}

impl fmt::Display for Expr {
    /// Calico's syntax, reading back as the same expression: `&&` and
    /// `||` in parentheses, strings in `"` unless they hold one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::All => f.write_str("all()"),
            Expr::Global => f.write_str("global()"),
            Expr::Has(k) => write!(f, "has({k})"),
            Expr::Eq(k, v) => write!(f, "{k} == {}", Quoted(v)),
            Expr::Ne(k, v) => write!(f, "{k} != {}", Quoted(v)),
            Expr::In(k, vs) => write!(f, "{k} in {}", Set(vs)),
            Expr::NotIn(k, vs) => write!(f, "{k} not in {}", Set(vs)),
            Expr::Contains(k, v) => write!(f, "{k} contains {}", Quoted(v)),
            Expr::StartsWith(k, v) => write!(f, "{k} starts with {}", Quoted(v)),
            Expr::EndsWith(k, v) => write!(f, "{k} ends with {}", Quoted(v)),
            // `!!e` would read back as `e`.
            Expr::Not(e) if matches!(**e, Expr::Not(_)) => write!(f, "!({e})"),
            Expr::Not(e) => write!(f, "!{e}"),
            Expr::And(es) => join(f, es, " && "),
            Expr::Or(es) => join(f, es, " || "),
        }
    }
}

fn join(f: &mut fmt::Formatter<'_>, es: &[Expr], sep: &str) -> fmt::Result {
    f.write_str("(")?;
    for (i, e) in es.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        write!(f, "{e}")?;
    }
    f.write_str(")")
}

struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let q = if self.0.contains('"') { '\'' } else { '"' };
        write!(f, "{q}{}{q}", self.0)
    }
}

struct Set<'a>(&'a BTreeSet<String>);

impl fmt::Display for Set<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", Quoted(v))?;
        }
        f.write_str("}")
    }
}
