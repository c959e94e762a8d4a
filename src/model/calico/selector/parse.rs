//! The tokenizer and the recursive-descent parser of Calico selectors.
//!
//! The grammar (precedence low to high):
//!
//! ```text
//! selector := ε | or
//! or       := and ( "||" and )*
//! and      := op ( "&&" op )*
//! op       := "!"* ( "has(" key ")" | "all()" | "global()" | "(" or ")"
//!                  | key ( "==" | "!=" | "contains" | "starts with" | "ends with" ) string
//!                  | key ( "in" | "not in" ) "{" ( string ( "," string )* ","? )? "}" )
//! ```
//!
//! As in Calico's tokenizer, the operator words are recognised only right
//! after a key, and `has(`, `all(` and `global(` only as written (no blank
//! before the parenthesis).

use std::collections::BTreeSet;
use std::fmt;

use super::{Expr, MAX_DEPTH, MAX_TERMS, MAX_VALUES, ParseError};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Key(String),
    Str(String),
    LBrace,
    RBrace,
    Comma,
    Eq,
    Ne,
    In,
    NotIn,
    Contains,
    StartsWith,
    EndsWith,
    Not,
    All,
    Global,
    Has(String),
    LParen,
    RParen,
    And,
    Or,
    End,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Key(k) => write!(f, "label {k}"),
            Tok::Str(s) => write!(f, "string {s:?}"),
            Tok::LBrace => f.write_str("'{'"),
            Tok::RBrace => f.write_str("'}'"),
            Tok::Comma => f.write_str("','"),
            Tok::Eq => f.write_str("'=='"),
            Tok::Ne => f.write_str("'!='"),
            Tok::In => f.write_str("'in'"),
            Tok::NotIn => f.write_str("'not in'"),
            Tok::Contains => f.write_str("'contains'"),
            Tok::StartsWith => f.write_str("'starts with'"),
            Tok::EndsWith => f.write_str("'ends with'"),
            Tok::Not => f.write_str("'!'"),
            Tok::All => f.write_str("all()"),
            Tok::Global => f.write_str("global()"),
            Tok::Has(k) => write!(f, "has({k})"),
            Tok::LParen => f.write_str("'('"),
            Tok::RParen => f.write_str("')'"),
            Tok::And => f.write_str("'&&'"),
            Tok::Or => f.write_str("'||'"),
            Tok::End => f.write_str("the end of the selector"),
        }
    }
}

/// A token and the byte offset where it starts.
type Token = (Tok, usize);

fn err(offset: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        offset,
        column: offset + 1,
        message: message.into(),
    }
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-')
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Calico's longest label key (libcalico-go's `MaxLabelLength`): a longer
/// one is a parse error there, and a GlobalNetworkPolicy whose
/// `namespaceSelector` does not parse loses it, so it must be one here too.
const MAX_KEY: usize = 512;

fn long_key(start: usize, end: usize) -> Result<(), ParseError> {
    if end - start > MAX_KEY {
        return Err(err(
            start,
            format!(
                "a label key of {} characters, longer than Calico's {MAX_KEY}",
                end - start
            ),
        ));
    }
    Ok(())
}

/// The tokens of `text`, ending with [`Tok::End`].
fn tokenize(text: &str) -> Result<Vec<Token>, ParseError> {
    let bytes = text.as_bytes();
    let mut toks: Vec<Token> = Vec::new();
    let mut i = 0;
    // Skips blanks from `j`.
    let blanks = |mut j: usize| {
        while j < bytes.len() && is_blank(bytes[j]) {
            j += 1;
        }
        j
    };
    // The end of the key starting at `j` (`j` when there is none).
    let key_end = |mut j: usize| {
        while j < bytes.len() && is_key_byte(bytes[j]) {
            j += 1;
        }
        j
    };
    // True when `word` stands at `j`.
    let at = |j: usize, word: &str| bytes[j..].starts_with(word.as_bytes());
    loop {
        i = blanks(i);
        let Some(&b) = bytes.get(i) else {
            toks.push((Tok::End, i));
            return Ok(toks);
        };
        let start = i;
        let after_key = matches!(toks.last(), Some((Tok::Key(_), _)));
        let single = match b {
            b'(' => Some(Tok::LParen),
            b')' => Some(Tok::RParen),
            b'{' => Some(Tok::LBrace),
            b'}' => Some(Tok::RBrace),
            b',' => Some(Tok::Comma),
            _ => None,
        };
        let tok = if let Some(t) = single {
            i += 1;
            t
        } else {
            match b {
                b'"' | b'\'' => {
                    let close = bytes[i + 1..]
                        .iter()
                        .position(|&c| c == b)
                        .ok_or_else(|| err(start, "unterminated string"))?;
                    let s = text[i + 1..i + 1 + close].to_string();
                    i += close + 2;
                    Tok::Str(s)
                }
                b'=' if at(i, "==") => {
                    i += 2;
                    Tok::Eq
                }
                b'=' => return Err(err(start, "expected '=='")),
                b'!' if at(i, "!=") => {
                    i += 2;
                    Tok::Ne
                }
                b'!' => {
                    i += 1;
                    Tok::Not
                }
                b'&' if at(i, "&&") => {
                    i += 2;
                    Tok::And
                }
                b'&' => return Err(err(start, "expected '&&'")),
                b'|' if at(i, "||") => {
                    i += 2;
                    Tok::Or
                }
                b'|' => return Err(err(start, "expected '||'")),
                _ if after_key => {
                    let (tok, next) = operator_word(i, &at, &blanks).ok_or_else(|| {
                        err(
                            start,
                            "expected an operator after the label (==, !=, in, not in, contains, starts with, ends with)",
                        )
                    })?;
                    i = next;
                    tok
                }
                _ if at(i, "has(") => {
                    let k0 = blanks(i + 4);
                    let k1 = key_end(k0);
                    if k1 == k0 {
                        return Err(err(k0, "expected a label name in has( )"));
                    }
                    long_key(k0, k1)?;
                    let close = blanks(k1);
                    if bytes.get(close) != Some(&b')') {
                        return Err(err(close, "expected ')' to close has("));
                    }
                    i = close + 1;
                    Tok::Has(text[k0..k1].to_string())
                }
                _ if at(i, "all(") || at(i, "global(") => {
                    let all = at(i, "all(");
                    let close = blanks(i + if all { 4 } else { 7 });
                    if bytes.get(close) != Some(&b')') {
                        let name = if all { "all(" } else { "global(" };
                        return Err(err(close, format!("expected ')' after {name}")));
                    }
                    i = close + 1;
                    if all { Tok::All } else { Tok::Global }
                }
                _ => {
                    let end = key_end(i);
                    if end == i {
                        let c = text[i..].chars().next().unwrap_or('?');
                        return Err(err(start, format!("unexpected character {c:?}")));
                    }
                    long_key(i, end)?;
                    let k = text[i..end].to_string();
                    i = end;
                    Tok::Key(k)
                }
            }
        };
        toks.push((tok, start));
    }
}

/// The operator word at `i` (right after a key) and where it ends.
fn operator_word(
    i: usize,
    at: &impl Fn(usize, &str) -> bool,
    blanks: &impl Fn(usize) -> usize,
) -> Option<(Tok, usize)> {
    // `starts with`, `ends with` and `not in` may have any blanks (or none)
    // between their words, as in Calico's tokenizer.
    let two = |first: &str, second: &str, tok: Tok| {
        let j = blanks(i + first.len());
        at(j, second).then(|| (tok, j + second.len()))
    };
    if at(i, "contains") {
        Some((Tok::Contains, i + "contains".len()))
    } else if at(i, "starts") {
        two("starts", "with", Tok::StartsWith)
    } else if at(i, "ends") {
        two("ends", "with", Tok::EndsWith)
    } else if at(i, "not") {
        two("not", "in", Tok::NotIn)
    } else if at(i, "in") {
        Some((Tok::In, i + 2))
    } else {
        None
    }
}

/// Parses a selector; an empty or blank one is `all()`.
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    parse_bytes(text).map_err(|mut e| {
        // Every offset an error carries is on a character boundary.
        e.column = text.get(..e.offset).map_or(e.offset, |t| t.chars().count()) + 1;
        e
    })
}

fn parse_bytes(text: &str) -> Result<Expr, ParseError> {
    let toks = tokenize(text)?;
    let mut p = Parser {
        toks: &toks,
        pos: 0,
        terms: 0,
    };
    if p.peek().0 == Tok::End {
        return Ok(Expr::All);
    }
    let e = p.or(0)?;
    match p.peek() {
        (Tok::End, _) => Ok(e),
        (t, at) => Err(err(
            *at,
            format!("unexpected {t} after a complete selector"),
        )),
    }
}

struct Parser<'a> {
    toks: &'a [Token],
    pos: usize,
    terms: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // The last token is always `End`, and nothing moves past it.
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if t.0 != Tok::End {
            self.pos += 1;
        }
        t
    }

    fn or(&mut self, depth: usize) -> Result<Expr, ParseError> {
        let mut es = vec![self.and(depth)?];
        while self.peek().0 == Tok::Or {
            self.next();
            es.push(self.and(depth)?);
        }
        Ok(if es.len() == 1 {
            es.remove(0)
        } else {
            Expr::Or(es)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Expr, ParseError> {
        let mut es = vec![self.op(depth)?];
        while self.peek().0 == Tok::And {
            self.next();
            es.push(self.op(depth)?);
        }
        Ok(if es.len() == 1 {
            es.remove(0)
        } else {
            Expr::And(es)
        })
    }

    fn term(&mut self, at: usize, e: Expr) -> Result<Expr, ParseError> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(err(
                at,
                format!("more than {MAX_TERMS} terms, more than tierguard judges (docs/limits.md)"),
            ));
        }
        Ok(e)
    }

    fn op(&mut self, depth: usize) -> Result<Expr, ParseError> {
        let mut negated = false;
        while self.peek().0 == Tok::Not {
            self.next();
            negated = !negated;
        }
        let (tok, at) = self.next();
        let e = match tok {
            Tok::Has(k) => self.term(at, Expr::Has(k))?,
            Tok::All => self.term(at, Expr::All)?,
            Tok::Global => self.term(at, Expr::Global)?,
            Tok::LParen => {
                if depth >= MAX_DEPTH {
                    return Err(err(
                        at,
                        format!(
                            "parentheses nested deeper than {MAX_DEPTH}, more than tierguard judges (docs/limits.md)"
                        ),
                    ));
                }
                let e = self.or(depth + 1)?;
                match self.next() {
                    (Tok::RParen, _) => e,
                    (t, at) => return Err(err(at, format!("expected ')', found {t}"))),
                }
            }
            Tok::Key(k) => {
                let e = self.comparison(k)?;
                self.term(at, e)?
            }
            t => {
                return Err(err(
                    at,
                    format!("expected a label, has(), all(), global(), '!' or '(', found {t}"),
                ));
            }
        };
        Ok(if negated { Expr::Not(Box::new(e)) } else { e })
    }

    /// The rest of a comparison after its key.
    fn comparison(&mut self, k: String) -> Result<Expr, ParseError> {
        let (op, at) = self.next();
        let make: fn(String, String) -> Expr = match op {
            Tok::Eq => Expr::Eq,
            Tok::Ne => Expr::Ne,
            Tok::Contains => Expr::Contains,
            Tok::StartsWith => Expr::StartsWith,
            Tok::EndsWith => Expr::EndsWith,
            Tok::In | Tok::NotIn => {
                let values = self.set()?;
                return Ok(if op == Tok::In {
                    Expr::In(k, values)
                } else {
                    Expr::NotIn(k, values)
                });
            }
            t => {
                return Err(err(
                    at,
                    format!("expected an operator after label {k}, found {t}"),
                ));
            }
        };
        match self.next() {
            (Tok::Str(v), _) => Ok(make(k, v)),
            (t, at) => Err(err(
                at,
                format!("expected a quoted string after {op}, found {t}"),
            )),
        }
    }

    /// A set literal, `{` already ahead.
    fn set(&mut self) -> Result<BTreeSet<String>, ParseError> {
        match self.next() {
            (Tok::LBrace, _) => {}
            (t, at) => {
                return Err(err(
                    at,
                    format!("expected a set such as {{'a', 'b'}}, found {t}"),
                ));
            }
        }
        let mut values = BTreeSet::new();
        while let (Tok::Str(v), at) = self.peek().clone() {
            self.next();
            values.insert(v);
            if values.len() > MAX_VALUES {
                return Err(err(
                    at,
                    format!(
                        "more than {MAX_VALUES} values in a set, more than tierguard judges (docs/limits.md)"
                    ),
                ));
            }
            if self.peek().0 != Tok::Comma {
                break;
            }
            self.next();
        }
        match self.next() {
            (Tok::RBrace, _) => Ok(values),
            (t, at) => Err(err(
                at,
                format!("expected a quoted string or '}}', found {t}"),
            )),
        }
    }
}
