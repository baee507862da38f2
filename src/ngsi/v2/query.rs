//! Orion's Simple Query Language (the `q` of `GET /v2/entities` and of `/v2/op/query` `expression`), over the v2
//! view of an entity: statements joined by `;` (all must hold); `attr` (exists), `!attr` (does not exist),
//! `attr==v` / `attr:v` (equal; `v` may be a list `a,b,c` or a range `a..b`), `attr!=v` (the negation, the
//! attribute must exist), `>`, `>=`, `<`, `<=` (numbers, or strings such as ISO 8601 dates, compared in order),
//! `attr~=regex` (string values). Values in single quotes are strings; otherwise numbers, `true`, `false` and
//! `null` are those, and anything else is a string. `attr.sub.path` looks into structured values.
//!
//! Bounded: at most [`MAX_Q_LEN`] bytes and [`MAX_STATEMENTS`] statements; regexes are size-capped.

use regex::{Regex, RegexBuilder};
use serde_json::Value;

use super::value_of;
use crate::ngsi::limits::{MAX_PATTERN_LEN, MAX_REGEX_SIZE};
use crate::ngsi::v1::ContextElement;
use crate::ngsi::ParseError;

/// Longest `q` accepted, in bytes.
pub const MAX_Q_LEN: usize = 2048;
/// Most statements in one `q`.
pub const MAX_STATEMENTS: usize = 64;

/// A literal of a statement.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    /// A number, with its text (it also matches a string holding that text, as Orion does).
    Number(f64, String),
    /// A string.
    Text(String),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

#[derive(Debug, Clone)]
enum Test {
    Exists,
    Missing,
    Equal(Vec<Literal>),
    Range(Literal, Literal),
    Unequal(Box<Test>),
    Greater(Literal, bool),
    Less(Literal, bool),
    Matches(Regex),
}

#[derive(Debug, Clone)]
struct Statement {
    path: Vec<String>,
    test: Test,
}

/// A compiled `q`.
#[derive(Debug, Clone)]
pub struct Query {
    statements: Vec<Statement>,
}

/// Splits on `separator` outside single quotes.
fn split_unquoted(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (index, c) in text.char_indices() {
        if c == '\'' {
            quoted = !quoted;
        } else if c == separator && !quoted {
            parts.push(&text[start..index]);
            start = index + c.len_utf8();
        }
    }
    parts.push(&text[start..]);
    parts
}

fn literal(text: &str) -> Result<Literal, ParseError> {
    let text = text.trim();
    if text.len() >= 2 && text.starts_with('\'') && text.ends_with('\'') {
        return Ok(Literal::Text(text[1..text.len() - 1].to_string()));
    }
    if text.contains('\'') {
        return Err(ParseError::new(format!("unbalanced quote in q value `{text}`")));
    }
    Ok(match text {
        "true" => Literal::Bool(true),
        "false" => Literal::Bool(false),
        "null" => Literal::Null,
        _ => match text.parse::<f64>() {
            Ok(number) if number.is_finite() => Literal::Number(number, text.to_string()),
            _ => Literal::Text(text.to_string()),
        },
    })
}

/// The operator of a statement: its position, length and kind, the first one outside quotes.
fn operator(statement: &str) -> Option<(usize, &'static str)> {
    let mut quoted = false;
    for (index, c) in statement.char_indices() {
        if c == '\'' {
            quoted = !quoted;
            continue;
        }
        if quoted {
            continue;
        }
        let rest = &statement[index..];
        for op in ["==", "!=", ">=", "<=", "~=", ">", "<", ":"] {
            if rest.starts_with(op) {
                return Some((index, op));
            }
        }
    }
    None
}

fn path(text: &str) -> Result<Vec<String>, ParseError> {
    let text = text.trim();
    let parts: Vec<String> = text.split('.').map(str::to_string).collect();
    for part in &parts {
        super::check_identifier("attribute name in q", part)?;
    }
    Ok(parts)
}

fn statement(text: &str) -> Result<Statement, ParseError> {
    let text = text.trim();
    let Some((at, op)) = operator(text) else {
        return match text.strip_prefix('!') {
            Some(name) => Ok(Statement { path: path(name)?, test: Test::Missing }),
            None => Ok(Statement { path: path(text)?, test: Test::Exists }),
        };
    };
    let path = path(&text[..at])?;
    let value = text[at + op.len()..].trim();
    if value.is_empty() {
        return Err(ParseError::new(format!("q statement `{text}` has no value")));
    }
    let equal = || -> Result<Test, ParseError> {
        let items = split_unquoted(value, ',');
        if items.len() == 1 {
            if let Some((low, high)) = value.split_once("..").filter(|_| !value.starts_with('\'')) {
                return Ok(Test::Range(literal(low)?, literal(high)?));
            }
        }
        Ok(Test::Equal(items.into_iter().map(literal).collect::<Result<_, _>>()?))
    };
    let test = match op {
        "==" | ":" => equal()?,
        "!=" => Test::Unequal(Box::new(equal()?)),
        ">" => Test::Greater(literal(value)?, false),
        ">=" => Test::Greater(literal(value)?, true),
        "<" => Test::Less(literal(value)?, false),
        "<=" => Test::Less(literal(value)?, true),
        _ => {
            let pattern = value.trim_matches('\'');
            if pattern.len() > MAX_PATTERN_LEN {
                return Err(ParseError::new(format!("q pattern is longer than {MAX_PATTERN_LEN} bytes")));
            }
            let regex = RegexBuilder::new(pattern)
                .size_limit(MAX_REGEX_SIZE)
                .build()
                .map_err(|error| ParseError::new(format!("invalid q pattern `{pattern}`: {error}")))?;
            Test::Matches(regex)
        }
    };
    Ok(Statement { path, test })
}

fn equals(literal: &Literal, value: &Value) -> bool {
    match literal {
        Literal::Number(number, text) => value.as_f64() == Some(*number) || value.as_str() == Some(text),
        Literal::Text(text) => value.as_str() == Some(text),
        Literal::Bool(flag) => value.as_bool() == Some(*flag) || value.as_str() == Some(&flag.to_string()),
        Literal::Null => value.is_null(),
    }
}

/// Orders a value against a literal: numbers numerically, strings lexicographically; `None` when not comparable.
fn order(value: &Value, literal: &Literal) -> Option<std::cmp::Ordering> {
    match (value, literal) {
        (Value::Number(number), Literal::Number(wanted, _)) => number.as_f64()?.partial_cmp(wanted),
        (Value::String(text), Literal::Text(wanted)) => Some(text.as_str().cmp(wanted.as_str())),
        (Value::String(text), Literal::Number(_, wanted)) => Some(text.as_str().cmp(wanted.as_str())),
        _ => None,
    }
}

fn holds(test: &Test, value: &Value) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    match test {
        Test::Exists => true,
        Test::Missing => false,
        Test::Equal(literals) => literals.iter().any(|literal| equals(literal, value)),
        Test::Range(low, high) => {
            order(value, low).is_some_and(|o| o != Less) && order(value, high).is_some_and(|o| o != Greater)
        }
        Test::Unequal(test) => !holds(test, value),
        Test::Greater(literal, or_equal) => {
            order(value, literal).is_some_and(|o| o == Greater || (*or_equal && o == Equal))
        }
        Test::Less(literal, or_equal) => order(value, literal).is_some_and(|o| o == Less || (*or_equal && o == Equal)),
        Test::Matches(regex) => value.as_str().is_some_and(|text| regex.is_match(text)),
    }
}

impl Query {
    /// Parses a `q`.
    pub fn parse(q: &str) -> Result<Query, ParseError> {
        if q.len() > MAX_Q_LEN {
            return Err(ParseError::new(format!("q is longer than {MAX_Q_LEN} bytes")));
        }
        let parts: Vec<&str> = split_unquoted(q, ';').into_iter().filter(|part| !part.trim().is_empty()).collect();
        if parts.is_empty() {
            return Err(ParseError::new("q is empty"));
        }
        if parts.len() > MAX_STATEMENTS {
            return Err(ParseError::new(format!("q has more than {MAX_STATEMENTS} statements")));
        }
        Ok(Query { statements: parts.into_iter().map(statement).collect::<Result<_, _>>()? })
    }

    /// Whether every statement holds for the entity.
    pub fn matches(&self, element: &ContextElement) -> bool {
        self.statements.iter().all(|statement| {
            let (name, rest) = match statement.path.split_first() {
                Some(split) => split,
                None => return false,
            };
            let value =
                value_of(element, name).and_then(|value| rest.iter().try_fold(value, |value, key| value.get(key)));
            match (value, &statement.test) {
                (None, Test::Missing) => true,
                (None, _) => false,
                (Some(value), test) => holds(test, value),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ngsi::v2::parse_entity;

    fn entity() -> ContextElement {
        parse_entity(
            &json!({"id":"e","type":"T","temp":{"value":21.5},"name":{"value":"Hall A"},"code":{"value":"40"},
                "on":{"value":true},"when":{"value":"2024-05-01T10:00:00Z"},"shape":{"value":{"w":2}}}),
            false,
        )
        .unwrap()
    }

    fn holds(q: &str) -> bool {
        Query::parse(q).unwrap_or_else(|error| panic!("{q}: {error}")).matches(&entity())
    }

    #[test]
    fn statements_select_as_orion_does() {
        for q in [
            "temp",
            "!missing",
            "temp==21.5",
            "temp:21.5",
            "temp>20;temp<22",
            "temp>=21.5;temp<=21.5",
            "temp==20..22",
            "temp==1,21.5",
            "temp!=3",
            "name=='Hall A'",
            "name~=^Hall",
            "code==40",
            "on==true",
            "when>2024-01-01",
            "when=='2024-05-01T10:00:00Z'",
            "shape.w==2",
            "name=='a;b','Hall A'",
        ] {
            assert!(holds(q), "{q} should hold");
        }
        for q in ["missing", "!temp", "temp>22", "temp==1..2", "temp!=21.5", "missing!=1", "name~=^B", "shape.h==2"] {
            assert!(!holds(q), "{q} should not hold");
        }
    }

    #[test]
    fn bad_queries_are_refused() {
        for q in ["", ";", "temp==", "a b==1", "temp==o'clock", "name~=(", &"a;".repeat(100), &"x".repeat(3000)] {
            assert!(Query::parse(q).is_err(), "{q:?}");
        }
    }
}
