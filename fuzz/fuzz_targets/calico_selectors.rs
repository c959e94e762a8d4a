//! Calico selector text → `model::calico::selector::parse`.
//!
//! Invariants:
//! 1. Nothing panics or overflows the stack, whatever the nesting.
//! 2. An error points inside the text (or at its end).
//! 3. A parsed expression prints as text that parses back to it.
//! 4. Its engine form, when it has one, selects exactly what the
//!    expression does on labellings built from the keys and values it names
//!    (each key absent, set to a named value, or to one no term names).

#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use tierguard::engine::selector::Labels;
use tierguard::model::calico::selector::{Expr, parse};

/// The keys and values an expression names.
fn named(e: &Expr, keys: &mut BTreeSet<String>, values: &mut BTreeSet<String>) {
    match e {
        Expr::All | Expr::Global => {}
        Expr::Has(k) => {
            keys.insert(k.clone());
        }
        Expr::Eq(k, v)
        | Expr::Ne(k, v)
        | Expr::Contains(k, v)
        | Expr::StartsWith(k, v)
        | Expr::EndsWith(k, v) => {
            keys.insert(k.clone());
            values.insert(v.clone());
        }
        Expr::In(k, vs) | Expr::NotIn(k, vs) => {
            keys.insert(k.clone());
            values.extend(vs.iter().cloned());
        }
        Expr::Not(e) => named(e, keys, values),
        Expr::And(es) | Expr::Or(es) => es.iter().for_each(|e| named(e, keys, values)),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let e = match parse(text) {
        Ok(e) => e,
        Err(err) => {
            assert!(err.offset <= text.len(), "{text:?}: {err}");
            return;
        }
    };
    let printed = e.to_string();
    assert_eq!(parse(&printed).as_ref(), Ok(&e), "{text:?} printed {printed:?}");
    let Ok(union) = e.to_engine() else {
        return;
    };
    let (mut keys, mut values) = (BTreeSet::new(), BTreeSet::new());
    named(&e, &mut keys, &mut values);
    // A bounded sample of labellings: the first key takes each choice in
    // turn, the others follow a rotating pattern.
    let choices: Vec<Option<&str>> = std::iter::once(None)
        .chain(values.iter().map(|v| Some(v.as_str())))
        .chain(std::iter::once(Some("\u{1}unnamed")))
        .collect();
    let keys: Vec<&String> = keys.iter().take(8).collect();
    for round in 0..choices.len().min(64) {
        let mut labels = Labels::new();
        for (i, k) in keys.iter().enumerate() {
            if let Some(v) = choices[(round + i * 7) % choices.len()] {
                labels.insert((*k).clone(), v.to_string());
            }
        }
        let got = union.iter().any(|s| s.matches(&labels));
        assert_eq!(got, e.matches(&labels), "{printed} on {labels:?}");
    }
});
