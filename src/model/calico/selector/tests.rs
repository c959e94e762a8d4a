use std::collections::BTreeSet;

use super::*;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn set(vs: &[&str]) -> BTreeSet<String> {
    vs.iter().map(|v| v.to_string()).collect()
}

fn s(x: &str) -> String {
    x.to_string()
}

#[test]
fn parses_the_language() {
    use Expr::*;
    let table: Vec<(&str, Expr)> = vec![
        ("", All),
        ("  \t ", All),
        ("all()", All),
        ("all( )", All),
        ("global()", Global),
        ("has(app)", Has(s("app"))),
        (
            "has( projectcalico.org/name )",
            Has(s("projectcalico.org/name")),
        ),
        ("role == 'db'", Eq(s("role"), s("db"))),
        ("role==\"db\"", Eq(s("role"), s("db"))),
        ("role != 'db'", Ne(s("role"), s("db"))),
        ("role == ''", Eq(s("role"), s(""))),
        ("x == 'say \"hi\"'", Eq(s("x"), s("say \"hi\""))),
        ("k in {'b', 'a', 'b'}", In(s("k"), set(&["a", "b"]))),
        ("k in {}", In(s("k"), set(&[]))),
        ("k in {'a',}", In(s("k"), set(&["a"]))),
        ("k in{'a'}", In(s("k"), set(&["a"]))),
        ("k not in {'a'}", NotIn(s("k"), set(&["a"]))),
        ("k notin {'a'}", NotIn(s("k"), set(&["a"]))),
        ("k contains 'x'", Contains(s("k"), s("x"))),
        ("k starts with 'x'", StartsWith(s("k"), s("x"))),
        ("k startswith 'x'", StartsWith(s("k"), s("x"))),
        ("k ends  with 'x'", EndsWith(s("k"), s("x"))),
        ("!has(a)", Not(Box::new(Has(s("a"))))),
        ("!!has(a)", Has(s("a"))),
        ("!!!has(a)", Not(Box::new(Has(s("a"))))),
        ("!(!has(a))", Not(Box::new(Not(Box::new(Has(s("a"))))))),
        (
            "has(a) && has(b) || has(c)",
            Or(vec![And(vec![Has(s("a")), Has(s("b"))]), Has(s("c"))]),
        ),
        (
            "has(a) && (has(b) || has(c))",
            And(vec![Has(s("a")), Or(vec![Has(s("b")), Has(s("c"))])]),
        ),
        (
            "has(a)&&has(b)&&has(c)",
            And(vec![Has(s("a")), Has(s("b")), Has(s("c"))]),
        ),
        ("((has(a)))", Has(s("a"))),
        // Keywords are keys where a key is expected.
        ("has == 'x'", Eq(s("has"), s("x"))),
        ("in == 'x'", Eq(s("in"), s("x"))),
        ("all == 'x'", Eq(s("all"), s("x"))),
        ("0-a_b.c/d == 'x'", Eq(s("0-a_b.c/d"), s("x"))),
    ];
    for (text, want) in table {
        assert_eq!(parse(text), Ok(want.clone()), "{text:?}");
        // What is printed reads back as the same expression.
        let printed = want.to_string();
        assert_eq!(parse(&printed), Ok(want), "{text:?} printed as {printed:?}");
    }
}

#[test]
fn errors_name_the_position() {
    // (selector, 1-based character, part of the message)
    let table = [
        ("role = 'db'", 6, "expected '=='"),
        ("role == db", 9, "expected a quoted string after '=='"),
        ("role == 'db", 9, "unterminated string"),
        ("role", 5, "expected an operator after label role"),
        (
            "role 'db'",
            6,
            "expected an operator after label role, found string",
        ),
        ("role is 'db'", 6, "expected an operator after the label"),
        (
            "has(a) has(b)",
            8,
            "unexpected has(b) after a complete selector",
        ),
        ("has(a) & has(b)", 8, "expected '&&'"),
        ("has(a) | has(b)", 8, "expected '||'"),
        ("has(a) &&", 10, "found the end of the selector"),
        (
            "has ( a )",
            5,
            "expected an operator after label has, found '('",
        ),
        ("has()", 5, "expected a label name"),
        ("has(a", 6, "expected ')' to close has("),
        ("all(x)", 5, "expected ')' after all("),
        ("(has(a)", 8, "expected ')', found the end"),
        ("has(a))", 7, "unexpected ')'"),
        ("k in 'a'", 6, "expected a set"),
        ("k in {'a' 'b'}", 11, "expected a quoted string or '}'"),
        ("k in {,}", 7, "expected a quoted string or '}'"),
        ("k starts 'x'", 3, "expected an operator after the label"),
        ("a == 'x'\nb", 9, "unexpected character '\\n'"),
        ("!", 2, "found the end of the selector"),
        ("é == 'x'", 1, "unexpected character 'é'"),
        // Characters, not bytes: `é` is two bytes.
        ("a == 'é' ^", 10, "unexpected character '^'"),
    ];
    for (text, col, part) in table {
        let e = parse(text).expect_err(text);
        assert_eq!(e.column, col, "{text:?}: {e}");
        assert!(e.to_string().contains(part), "{text:?}: {e}");
        assert!(
            e.to_string()
                .starts_with(&format!("invalid Calico selector at character {col}: ")),
            "{e}"
        );
    }
}

#[test]
fn limits_are_errors_not_stack_overflows() {
    let deep = format!("{}has(a){}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert_eq!(parse(&deep), Ok(Expr::Has(s("a"))));
    let deeper = format!("({deep})");
    let e = parse(&deeper).expect_err("too deep");
    assert!(e.to_string().contains("nested deeper than 32"), "{e}");
    let hostile = "(".repeat(100_000);
    assert!(parse(&hostile).is_err());

    let terms = |n: usize| vec!["has(a)"; n].join(" && ");
    assert!(parse(&terms(MAX_TERMS)).is_ok());
    let e = parse(&terms(MAX_TERMS + 1)).expect_err("too many terms");
    assert!(e.to_string().contains("more than 256 terms"), "{e}");

    // Calico's parser refuses keys over 512 bytes (and a GlobalNetworkPolicy
    // whose namespaceSelector it cannot parse loses that selector).
    let key = "a".repeat(512);
    assert!(parse(&format!("has({key}) && {key} == 'x'")).is_ok());
    for text in [format!("has({key}b)"), format!("{key}b == 'x'")] {
        let e = parse(&text).expect_err("too long");
        assert!(e.to_string().contains("longer than Calico's 512"), "{e}");
    }

    let values: Vec<String> = (0..=MAX_VALUES).map(|i| format!("'{i}'")).collect();
    let e = parse(&format!("k in {{{}}}", values.join(","))).expect_err("too many values");
    assert!(e.to_string().contains("more than 10000 values"), "{e}");
}

#[test]
fn evaluates_as_calico_does() {
    let pod = labels(&[("role", "db"), ("tier", "backend-v2")]);
    let table = [
        ("", true),
        ("all()", true),
        ("global()", true),
        ("has(role)", true),
        ("has(app)", false),
        ("!has(app)", true),
        ("role == 'db'", true),
        ("role == 'web'", false),
        ("app == ''", false),
        ("role != 'web'", true),
        ("role != 'db'", false),
        // An absent key matches != and not in (Calico's parser; its
        // documentation says otherwise).
        ("app != 'web'", true),
        ("app not in {'web'}", true),
        ("app in {'web'}", false),
        ("role in {'db', 'web'}", true),
        ("role not in {'db'}", false),
        ("role in {}", false),
        ("role not in {}", true),
        ("tier contains 'end'", true),
        ("tier starts with 'back'", true),
        ("tier ends with 'v2'", true),
        ("tier ends with 'v1'", false),
        ("app contains ''", false),
        ("role == 'db' && has(app)", false),
        ("role == 'db' || has(app)", true),
        ("!(role == 'db' && tier starts with 'x')", true),
    ];
    for (text, want) in table {
        let e = parse(text).expect(text);
        assert_eq!(e.matches(&pod), want, "{text:?}");
    }
}

#[test]
fn converts_to_engine_selectors_exactly() {
    let conv = |t: &str| {
        parse(t)
            .expect(t)
            .to_engine()
            .map(|v| v.iter().map(ToString::to_string).collect::<Vec<_>>())
    };
    let strs = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(conv(""), Ok(strs(&["{}"])));
    assert_eq!(conv("!all()"), Ok(strs(&[])));
    assert_eq!(conv("k in {}"), Ok(strs(&[])));
    assert_eq!(conv("!(k not in {})"), Ok(strs(&[])));
    assert_eq!(conv("k not in {}"), Ok(strs(&["{}"])));
    assert_eq!(conv("a == 'x'"), Ok(strs(&["a=x"])));
    assert_eq!(conv("a != 'x'"), Ok(strs(&["a notin (x)"])));
    assert_eq!(conv("!(a != 'x')"), Ok(strs(&["a=x"])));
    assert_eq!(
        conv("!has(a) && b in {'1','2'}"),
        Ok(strs(&["!a,b in (1,2)"]))
    );
    assert_eq!(
        conv("!(has(a) && b == 'x')"),
        Ok(strs(&["!a", "b notin (x)"]))
    );
    assert_eq!(
        conv("(has(a) || has(b)) && (has(c) || has(d))"),
        Ok(strs(&["a,c", "a,d", "b,c", "b,d"]))
    );
    assert_eq!(
        conv("a contains 'x'"),
        Err(Unsupported::StringMatch {
            op: "contains",
            key: s("a")
        })
    );
    assert_eq!(conv("has(a) || global()"), Err(Unsupported::Global));
    // 2^9 = 512 alternatives.
    let wide: Vec<String> = (0..9)
        .map(|i| format!("(has(a{i}) || has(b{i}))"))
        .collect();
    assert_eq!(conv(&wide.join(" && ")), Err(Unsupported::TooComplex));
    assert!(parse("global()").expect("parses").mentions_global());
    assert!(!parse("has(global)").expect("parses").mentions_global());
}
