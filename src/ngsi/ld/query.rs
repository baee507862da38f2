//! The NGSI-LD query language (`q`, ETSI GS CIM 009 clause 4.9) over stored elements: comparisons `==`, `!=`,
//! `>`, `>=`, `<`, `<=`, pattern matches `~=` / `!~=`, attribute existence (a bare path), `;` (and, binds
//! tighter) and `|` (or), parentheses; values are numbers, `true`/`false`, `"quoted strings"`, other text
//! (date-times, URIs), ranges `a..b` and lists `a,b,c`. A path is `attr`, `attr.subAttr` (a sub-property, else a
//! member of the value) and `attr[key]` / `attr[key][key2]` (members of a compound value). Relationships compare
//! their `object`. A comparison of an array value holds when it holds for one item.
//!
//! Bounded: at most [`MAX_Q_LEN`] bytes and [`MAX_DEPTH`] nested parentheses; `~=` patterns are size-limited.

use serde_json::Value;

use super::context::Context;
use crate::ngsi::limits::{MAX_PATTERN_LEN, MAX_REGEX_SIZE};
use crate::ngsi::v1::ContextElement;
use crate::ngsi::ParseError;

/// Longest `q` accepted.
pub const MAX_Q_LEN: usize = 4096;
/// Deepest parenthesis nesting accepted.
pub const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Match,
    NoMatch,
}

#[derive(Debug, Clone)]
enum Operand {
    One(Value),
    Range(Value, Value),
    List(Vec<Value>),
    Pattern(regex::Regex),
}

#[derive(Debug, Clone)]
struct Path {
    attribute: String,
    sub: Option<String>,
    keys: Vec<String>,
}

#[derive(Debug, Clone)]
enum Expr {
    Exists(Path),
    Compare(Path, Op, Operand),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

/// A compiled `q`.
#[derive(Debug, Clone)]
pub struct Query(Expr);

struct Parser<'a> {
    text: &'a str,
    position: usize,
    context: &'a Context,
}

fn error(message: impl Into<String>) -> ParseError {
    ParseError::new(format!("invalid q: {}", message.into()))
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.position..]
    }

    fn eat(&mut self, token: &str) -> bool {
        if self.rest().starts_with(token) {
            self.position += token.len();
            true
        } else {
            false
        }
    }

    fn or(&mut self, depth: usize) -> Result<Expr, ParseError> {
        let mut terms = vec![self.and(depth)?];
        while self.eat("|") {
            terms.push(self.and(depth)?);
        }
        Ok(if terms.len() == 1 { terms.remove(0) } else { Expr::Or(terms) })
    }

    fn and(&mut self, depth: usize) -> Result<Expr, ParseError> {
        let mut terms = vec![self.atom(depth)?];
        while self.eat(";") {
            terms.push(self.atom(depth)?);
        }
        Ok(if terms.len() == 1 { terms.remove(0) } else { Expr::And(terms) })
    }

    fn atom(&mut self, depth: usize) -> Result<Expr, ParseError> {
        if self.eat("(") {
            if depth >= MAX_DEPTH {
                return Err(error(format!("more than {MAX_DEPTH} nested parentheses")));
            }
            let inner = self.or(depth + 1)?;
            if !self.eat(")") {
                return Err(error("unbalanced parentheses"));
            }
            return Ok(inner);
        }
        let path = self.path()?;
        let op = [
            ("==", Op::Eq),
            ("!~=", Op::NoMatch),
            ("!=", Op::Ne),
            (">=", Op::Ge),
            ("<=", Op::Le),
            (">", Op::Gt),
            ("<", Op::Lt),
            ("~=", Op::Match),
        ]
        .into_iter()
        .find(|(token, _)| self.rest().starts_with(token));
        let Some((token, op)) = op else { return Ok(Expr::Exists(path)) };
        self.position += token.len();
        let operand = self.operand(op)?;
        Ok(Expr::Compare(path, op, operand))
    }

    fn name(&mut self) -> Result<String, ParseError> {
        let length =
            self.rest().find(|c: char| "=!<>~;|()[].\"".contains(c) || c.is_whitespace()).unwrap_or(self.rest().len());
        if length == 0 {
            return Err(error(format!("expected an attribute name at `{}`", self.rest())));
        }
        let name = self.rest()[..length].to_string();
        self.position += length;
        Ok(name)
    }

    fn path(&mut self) -> Result<Path, ParseError> {
        let attribute = self.context.canonical(&self.name()?);
        let sub = if self.eat(".") { Some(self.context.canonical(&self.name()?)) } else { None };
        let mut keys = Vec::new();
        while self.eat("[") {
            keys.push(self.name()?);
            if !self.eat("]") {
                return Err(error("unclosed ["));
            }
        }
        Ok(Path { attribute, sub, keys })
    }

    /// The raw text of a value: up to `;`, `|` or an unbalanced `)` outside quotes.
    fn raw_value(&mut self) -> Result<&str, ParseError> {
        let start = self.position;
        let mut quoted = false;
        for (offset, c) in self.rest().char_indices() {
            match c {
                '"' => quoted = !quoted,
                ';' | '|' | ')' if !quoted => {
                    self.position += offset;
                    return Ok(&self.text[start..start + offset]);
                }
                _ => {}
            }
        }
        if quoted {
            return Err(error("unclosed quote"));
        }
        self.position = self.text.len();
        Ok(&self.text[start..])
    }

    fn operand(&mut self, op: Op) -> Result<Operand, ParseError> {
        let raw = self.raw_value()?;
        if raw.is_empty() {
            return Err(error("a comparison has no value"));
        }
        if matches!(op, Op::Match | Op::NoMatch) {
            let text = match scalar(raw) {
                Value::String(text) => text,
                _ => raw.to_string(),
            };
            if text.len() > MAX_PATTERN_LEN {
                return Err(error(format!("pattern longer than {MAX_PATTERN_LEN} bytes")));
            }
            let pattern = regex::RegexBuilder::new(&text)
                .size_limit(MAX_REGEX_SIZE)
                .build()
                .map_err(|e| error(format!("invalid pattern: {e}")))?;
            return Ok(Operand::Pattern(pattern));
        }
        let parts = split_unquoted(raw, ',');
        if parts.len() > 1 {
            if !matches!(op, Op::Eq | Op::Ne) {
                return Err(error("a list of values needs == or !="));
            }
            return Ok(Operand::List(parts.into_iter().map(scalar).collect()));
        }
        if let Some((low, high)) = raw.split_once("..").filter(|_| !raw.starts_with('"')) {
            if !matches!(op, Op::Eq | Op::Ne) {
                return Err(error("a range needs == or !="));
            }
            return Ok(Operand::Range(scalar(low), scalar(high)));
        }
        Ok(Operand::One(scalar(raw)))
    }
}

fn split_unquoted(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut quoted, mut start) = (false, 0);
    for (offset, c) in text.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == separator && !quoted {
            parts.push(&text[start..offset]);
            start = offset + 1;
        }
    }
    parts.push(&text[start..]);
    parts
}

/// One value: a quoted string, `true`/`false`, a number, or the text itself.
fn scalar(text: &str) -> Value {
    if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        return Value::String(inner.to_string());
    }
    match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => match text.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
            Some(number) => Value::Number(number),
            None => Value::String(text.to_string()),
        },
    }
}

fn compare(left: &Value, right: &Value) -> Option<std::cmp::Ordering> {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

fn holds_one(target: &Value, op: Op, operand: &Operand) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let equal = |value: &Value| compare(target, value) == Some(Equal);
    let between = |low: &Value, high: &Value| {
        matches!(compare(target, low), Some(Greater | Equal)) && matches!(compare(target, high), Some(Less | Equal))
    };
    let positive = match operand {
        Operand::One(value) => match op {
            Op::Eq | Op::Ne => equal(value),
            Op::Gt => compare(target, value) == Some(Greater),
            Op::Ge => matches!(compare(target, value), Some(Greater | Equal)),
            Op::Lt => compare(target, value) == Some(Less),
            Op::Le => matches!(compare(target, value), Some(Less | Equal)),
            Op::Match | Op::NoMatch => false,
        },
        Operand::List(values) => values.iter().any(equal),
        Operand::Range(low, high) => between(low, high),
        Operand::Pattern(pattern) => target.as_str().is_some_and(|text| pattern.is_match(text)),
    };
    match op {
        Op::Ne | Op::NoMatch => !positive,
        _ => positive,
    }
}

/// The values a path designates in an element: one per instance of the attribute (several for a
/// multi-attribute), or a domain metadata of that name.
fn resolve<'a>(element: &'a ContextElement, path: &Path) -> Vec<&'a Value> {
    let follow = |mut value: &'a Value| {
        for key in &path.keys {
            value = value.get(key)?;
        }
        Some(value)
    };
    let instances: Vec<_> = element.attributes.iter().filter(|a| a.name == path.attribute).collect();
    if instances.is_empty() {
        return match &path.sub {
            None => element.domain_metadata.iter().filter(|m| m.name == path.attribute).find_map(|m| follow(&m.value)),
            Some(_) => None,
        }
        .into_iter()
        .collect();
    }
    instances
        .into_iter()
        .filter_map(|attribute| match &path.sub {
            Some(sub) => match attribute.metadata.iter().find(|m| &m.name == sub) {
                Some(metadata) => follow(&metadata.value),
                None => follow(attribute.value.get(sub)?),
            },
            None => follow(&attribute.value),
        })
        .collect()
}

/// Whether one designated value satisfies a comparison (an array value: any item, or all for `!=` / `!~=`).
fn compare_value(target: &Value, op: Op, operand: &Operand) -> bool {
    match target {
        Value::Array(items) => match op {
            Op::Ne | Op::NoMatch => items.iter().all(|item| holds_one(item, op, operand)),
            _ => items.iter().any(|item| holds_one(item, op, operand)),
        },
        target => holds_one(target, op, operand),
    }
}

/// Whether the element satisfies an expression; a comparison holds when it holds for some instance.
fn evaluate(expr: &Expr, element: &ContextElement) -> bool {
    match expr {
        Expr::Exists(path) => !resolve(element, path).is_empty(),
        Expr::Compare(path, op, operand) => {
            resolve(element, path).into_iter().any(|target| compare_value(target, *op, operand))
        }
        Expr::And(terms) => terms.iter().all(|term| evaluate(term, element)),
        Expr::Or(terms) => terms.iter().any(|term| evaluate(term, element)),
    }
}

impl Query {
    /// Compiles a `q`, expanding attribute names with the request's context.
    pub fn parse(q: &str, context: &Context) -> Result<Query, ParseError> {
        if q.len() > MAX_Q_LEN {
            return Err(error(format!("longer than {MAX_Q_LEN} bytes")));
        }
        let mut parser = Parser { text: q, position: 0, context };
        let expr = parser.or(0)?;
        if !parser.rest().is_empty() {
            return Err(error(format!("unexpected `{}`", parser.rest())));
        }
        Ok(Query(expr))
    }

    /// Whether the element satisfies the query.
    pub fn matches(&self, element: &ContextElement) -> bool {
        evaluate(&self.0, element)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ngsi::ld::entity::parse_entity;

    fn room() -> ContextElement {
        parse_entity(
            &Context::core(),
            &json!({"id": "urn:r:1", "type": "Room",
                "temperature": {"type": "Property", "value": 21.5, "unitCode": "CEL", "observedAt": "2024-05-01T10:00:00Z"},
                "name": {"type": "Property", "value": "Kitchen"},
                "tags": {"type": "Property", "value": ["a", "b"]},
                "spec": {"type": "Property", "value": {"floor": 2, "wing": "east"}},
                "inBuilding": {"type": "Relationship", "object": "urn:b:1"}}),
        )
        .unwrap()
    }

    fn holds(q: &str) -> bool {
        Query::parse(q, &Context::core()).unwrap_or_else(|e| panic!("{q}: {e}")).matches(&room())
    }

    #[test]
    fn comparisons_logic_and_paths() {
        for yes in [
            "temperature==21.5",
            "temperature!=20",
            "temperature>21",
            "temperature>=21.5",
            "temperature<22",
            "temperature<=21.5",
            "temperature==20..22",
            "temperature==1,21.5,3",
            "name==\"Kitchen\"",
            "name==Kitchen",
            "name~=Kit.*",
            "name!~=^Bath",
            "temperature",
            "temperature;name==Kitchen",
            "temperature>30|name==Kitchen",
            "(temperature>30|name==Kitchen);temperature<22",
            "temperature.unitCode==\"CEL\"",
            "temperature.observedAt>2024-01-01T00:00:00Z",
            "tags==b",
            "spec[floor]==2",
            "spec.wing==east",
            "inBuilding==urn:b:1",
            "((temperature))",
        ] {
            assert!(holds(yes), "{yes}");
        }
        for no in [
            "temperature==20",
            "temperature>22",
            "humidity",
            "humidity!=3",
            "name==\"Bath\"",
            "temperature==1..2",
            "temperature>30;name==Kitchen",
            "tags==c",
            "spec[floor]==3",
            "temperature!=20..22",
        ] {
            assert!(!holds(no), "{no}");
        }
    }

    #[test]
    fn malformed_queries_are_refused_without_panicking() {
        let deep = format!("{}a{}", "(".repeat(100), ")".repeat(100));
        let long = "a;".repeat(MAX_Q_LEN);
        for bad in ["", "(a", "a)", "a==", "==3", "a==\"x", "a>1,2", "a~=(", "a[b", "a;;b", "a|", &deep, &long] {
            assert!(Query::parse(bad, &Context::core()).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_multi_attribute_matches_when_one_instance_does() {
        let element = parse_entity(
            &Context::core(),
            &json!({"id": "urn:a", "type": "T", "speed": [{"type": "Property", "value": 10, "unitCode": "KMH"},
                {"type": "Property", "value": 80, "datasetId": "urn:gps", "unitCode": "MPH"}]}),
        )
        .unwrap();
        let holds = |q: &str| Query::parse(q, &Context::core()).unwrap().matches(&element);
        assert!(holds("speed==80") && holds("speed==10") && holds("speed>50") && holds("speed.unitCode==\"MPH\""));
        assert!(!holds("speed==30") && !holds("speed>100") && holds("speed") && !holds("other"));
    }
}
