//! Calico selectors against brute force: random expressions over a small
//! alphabet of keys and values, printed and parsed back, and their engine
//! form compared with the expression on every labelling of those keys.
//!
//! `TIERGUARD_BRUTE_CASES` sets the number of cases (default 10,000).

mod common;

use common::brute_cases as cases;

use std::collections::BTreeSet;

use proptest::prelude::*;
use tierguard::engine::selector::Labels;
use tierguard::model::calico::selector::{Expr, Unsupported, parse};

const KEYS: [&str; 3] = ["app", "tier", "projectcalico.org/name"];
/// Values the expressions name; a labelling may also use [`OTHER`].
const VALUES: [&str; 4] = ["", "db", "web", "say \"hi\""];
/// A value no expression names (for the comparisons: the string operators
/// are not in the engine's form).
const OTHER: &str = "unnamed-value";

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(&KEYS[..]).prop_map(str::to_string)
}

fn value() -> impl Strategy<Value = String> {
    prop::sample::select(&VALUES[..]).prop_map(str::to_string)
}

/// Expressions without the string operators and `global()` when
/// `engine`, else with them.
fn expr(engine: bool) -> impl Strategy<Value = Expr> {
    let values = || prop::collection::btree_set(value(), 0..3);
    let mut leaves = vec![
        Just(Expr::All).boxed(),
        key().prop_map(Expr::Has).boxed(),
        (key(), value()).prop_map(|(k, v)| Expr::Eq(k, v)).boxed(),
        (key(), value()).prop_map(|(k, v)| Expr::Ne(k, v)).boxed(),
        (key(), values()).prop_map(|(k, v)| Expr::In(k, v)).boxed(),
        (key(), values())
            .prop_map(|(k, v)| Expr::NotIn(k, v))
            .boxed(),
    ];
    if !engine {
        leaves.extend([
            Just(Expr::Global).boxed(),
            (key(), value())
                .prop_map(|(k, v)| Expr::Contains(k, v))
                .boxed(),
            (key(), value())
                .prop_map(|(k, v)| Expr::StartsWith(k, v))
                .boxed(),
            (key(), value())
                .prop_map(|(k, v)| Expr::EndsWith(k, v))
                .boxed(),
        ]);
    }
    prop::strategy::Union::new(leaves).prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
            prop::collection::vec(inner, 2..4).prop_map(Expr::Or),
        ]
    })
}

/// Every labelling of [`KEYS`]: each absent, or set to a named value or
/// [`OTHER`].
fn labellings() -> Vec<Labels> {
    let choices: Vec<Option<&str>> = std::iter::once(None)
        .chain(VALUES.iter().copied().map(Some))
        .chain(std::iter::once(Some(OTHER)))
        .collect();
    let mut out = vec![Labels::new()];
    for k in KEYS {
        out = out
            .iter()
            .flat_map(|l| {
                choices.iter().map(move |c| {
                    let mut l = l.clone();
                    if let Some(v) = c {
                        l.insert(k.to_string(), v.to_string());
                    }
                    l
                })
            })
            .collect();
    }
    out
}

fn string_ops(e: &Expr) -> bool {
    match e {
        Expr::Contains(..) | Expr::StartsWith(..) | Expr::EndsWith(..) => true,
        Expr::Not(e) => string_ops(e),
        Expr::And(es) | Expr::Or(es) => es.iter().any(string_ops),
        _ => false,
    }
}

/// Pieces of selector text, valid and not, for the parser's robustness.
const PIECES: [&str; 24] = [
    "has(",
    "app",
    ")",
    "(",
    " ",
    "\t",
    "==",
    "!=",
    "!",
    "&&",
    "||",
    "'db'",
    "\"web\"",
    " in ",
    " not in ",
    "{",
    "}",
    ",",
    " contains ",
    " starts with ",
    "all()",
    "global()",
    "'",
    "é",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn the_engine_form_selects_exactly_what_the_expression_does(e in expr(true)) {
        let printed = e.to_string();
        prop_assert_eq!(parse(&printed), Ok(e.clone()), "{}", printed);
        let union = match e.to_engine() {
            Ok(u) => u,
            // Within these sizes (depth 4, 3 operands) the product stays
            // under the limit unless it is large; then it must say so.
            Err(Unsupported::TooComplex) => return Ok(()),
            Err(other) => panic!("{printed}: {other}"),
        };
        for labels in labellings() {
            let want = e.matches(&labels);
            let got = union.iter().any(|s| s.matches(&labels));
            prop_assert_eq!(got, want, "{} on {:?}: engine form {:?}", printed, labels,
                union.iter().map(ToString::to_string).collect::<Vec<_>>());
        }
    }

    #[test]
    fn every_expression_reads_back_and_string_matches_are_not_guessed(e in expr(false)) {
        let printed = e.to_string();
        prop_assert_eq!(parse(&printed), Ok(e.clone()), "{}", printed);
        match e.to_engine() {
            Ok(_) => prop_assert!(!string_ops(&e) && !e.mentions_global(), "{}", printed),
            Err(Unsupported::StringMatch { .. }) => prop_assert!(string_ops(&e), "{}", printed),
            Err(Unsupported::Global) => prop_assert!(e.mentions_global(), "{}", printed),
            Err(Unsupported::TooComplex) => {}
        }
    }

    #[test]
    fn any_text_parses_or_is_an_error_and_what_parses_reads_back(
        pieces in prop::collection::vec(prop::sample::select(&PIECES[..]), 0..16)
    ) {
        let text: String = pieces.concat();
        match parse(&text) {
            Ok(e) => {
                let printed = e.to_string();
                prop_assert_eq!(parse(&printed), Ok(e.clone()), "{:?} printed {:?}", text, printed);
            }
            Err(err) => {
                // The place is a character boundary of the text, counted
                // again as characters, and there is something to say.
                let before = text.get(..err.offset);
                prop_assert!(before.is_some(), "{:?}: offset {} off the text", text, err.offset);
                let chars = before.map_or(0, |t| t.chars().count());
                prop_assert_eq!(err.column, chars + 1, "{:?}: {}", text, err);
                prop_assert!(!err.message.is_empty(), "{:?}", text);
            }
        }
    }
}

#[test]
fn the_labellings_cover_every_combination() {
    let all = labellings();
    assert_eq!(all.len(), 6 * 6 * 6);
    let distinct: BTreeSet<Vec<(String, String)>> = all
        .iter()
        .map(|l| l.clone().into_iter().collect())
        .collect();
    assert_eq!(distinct.len(), all.len());
}
