//! Entity type selection (ETSI GS CIM 009 V1.5+ clause 4.17): the `type` of a query is a list of type names or
//! an expression over them — `,` or `|` is OR, `;` is AND (an entity with several types must have each), and
//! parentheses group — for example `(Building;Home)|Vehicle`. `;` binds tighter than `,` and `|`.
//! Names are expanded with the request's @context. Explicit limits: the text is at most [`MAX_TYPE_EXPR_LEN`]
//! bytes, names at most [`MAX_TYPE_NAMES`], parentheses at most [`MAX_DEPTH`] deep; anything else is a
//! [`ParseError`]. Pure: no I/O.

use super::context::Context;
use crate::ngsi::limits::check_name;
use crate::ngsi::ParseError;

/// Longest type selection accepted, in bytes.
pub const MAX_TYPE_EXPR_LEN: usize = 4096;
/// Most type names in one selection.
pub const MAX_TYPE_NAMES: usize = 100;
/// Deepest nesting of parentheses.
pub const MAX_DEPTH: usize = 8;

/// A compiled type selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeExpr {
    /// An entity of this type (expanded name).
    Type(String),
    /// Every one of these holds.
    All(Vec<TypeExpr>),
    /// One of these holds.
    Any(Vec<TypeExpr>),
}

fn error(message: impl Into<String>) -> ParseError {
    ParseError::new(format!("invalid type selection: {}", message.into()))
}

impl TypeExpr {
    /// Compiles a type selection, expanding names with `context`.
    pub fn parse(text: &str, context: &Context) -> Result<TypeExpr, ParseError> {
        if text.len() > MAX_TYPE_EXPR_LEN {
            return Err(error(format!("longer than {MAX_TYPE_EXPR_LEN} bytes")));
        }
        let mut parser = Parser { text, position: 0, context, names: 0 };
        let expr = parser.any(0)?;
        if parser.position < text.len() {
            return Err(error(format!("unexpected `{}`", &text[parser.position..])));
        }
        Ok(expr)
    }

    /// Whether an entity whose types `has` answers for is selected.
    pub fn matches(&self, has: &impl Fn(&str) -> bool) -> bool {
        match self {
            TypeExpr::Type(name) => has(name),
            TypeExpr::All(all) => all.iter().all(|expr| expr.matches(has)),
            TypeExpr::Any(any) => any.iter().any(|expr| expr.matches(has)),
        }
    }

    /// Every type name the selection mentions, once each, in order: an entity it selects has at least one of them.
    pub fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        self.collect(&mut names);
        names
    }

    fn collect(&self, names: &mut Vec<String>) {
        match self {
            TypeExpr::Type(name) if !names.contains(name) => names.push(name.clone()),
            TypeExpr::Type(_) => {}
            TypeExpr::All(exprs) | TypeExpr::Any(exprs) => exprs.iter().for_each(|expr| expr.collect(names)),
        }
    }

    /// Whether the selection is a plain list of names (OR only), as NGSI-LD before V1.5 and NGSIv2 know it.
    pub fn is_list(&self) -> bool {
        match self {
            TypeExpr::Type(_) => true,
            TypeExpr::Any(any) => any.iter().all(|expr| matches!(expr, TypeExpr::Type(_))),
            TypeExpr::All(_) => false,
        }
    }
}

struct Parser<'a> {
    text: &'a str,
    position: usize,
    context: &'a Context,
    names: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.position..].chars().next()
    }

    /// `and (("," | "|") and)*`
    fn any(&mut self, depth: usize) -> Result<TypeExpr, ParseError> {
        let mut terms = vec![self.all(depth)?];
        while let Some(',' | '|') = self.peek() {
            self.position += 1;
            terms.push(self.all(depth)?);
        }
        Ok(if terms.len() == 1 { terms.remove(0) } else { TypeExpr::Any(terms) })
    }

    /// `factor (";" factor)*`
    fn all(&mut self, depth: usize) -> Result<TypeExpr, ParseError> {
        let mut factors = vec![self.factor(depth)?];
        while let Some(';') = self.peek() {
            self.position += 1;
            factors.push(self.factor(depth)?);
        }
        Ok(if factors.len() == 1 { factors.remove(0) } else { TypeExpr::All(factors) })
    }

    /// `name | "(" any ")"`
    fn factor(&mut self, depth: usize) -> Result<TypeExpr, ParseError> {
        if self.peek() == Some('(') {
            if depth >= MAX_DEPTH {
                return Err(error(format!("parentheses nested more than {MAX_DEPTH} deep")));
            }
            self.position += 1;
            let inner = self.any(depth + 1)?;
            if self.peek() != Some(')') {
                return Err(error(format!("`(` without `)` at byte {}", self.position)));
            }
            self.position += 1;
            return Ok(inner);
        }
        let rest = &self.text[self.position..];
        let end = rest.find([',', '|', ';', '(', ')']).unwrap_or(rest.len());
        let name = rest[..end].trim();
        if name.is_empty() {
            return Err(error(format!("a type name is missing at byte {}", self.position)));
        }
        self.names += 1;
        if self.names > MAX_TYPE_NAMES {
            return Err(error(format!("more than {MAX_TYPE_NAMES} type names")));
        }
        let expanded = self.context.canonical(name);
        check_name("type", &expanded)?;
        self.position += end;
        Ok(TypeExpr::Type(expanded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TypeExpr, ParseError> {
        TypeExpr::parse(text, &Context::core())
    }

    fn selects(text: &str, types: &[&str]) -> bool {
        parse(text).unwrap().matches(&|name: &str| types.contains(&name))
    }

    #[test]
    fn lists_select_any_of_their_types() {
        assert!(selects("A,B", &["B"]));
        assert!(selects("A|B", &["A"]));
        assert!(!selects("A,B", &["C"]));
        assert!(parse("A, B").unwrap().is_list());
        assert_eq!(parse("A,B,A").unwrap().names(), ["A", "B"]);
    }

    #[test]
    fn semicolons_need_every_type_and_bind_tighter_than_or() {
        assert!(selects("A;B", &["A", "B", "C"]));
        assert!(!selects("A;B", &["A"]));
        assert!(selects("A;B|C", &["C"]), "(A;B)|C");
        assert!(!selects("A;(B|C)", &["C"]));
        assert!(selects("A;(B|C)", &["A", "C"]));
        assert!(selects("(Building;Home)|Vehicle", &["Building", "Home"]));
        assert!(!parse("A;B").unwrap().is_list());
        assert_eq!(parse("((A;B)|(C;A))").unwrap().names(), ["A", "B", "C"]);
    }

    #[test]
    fn names_are_expanded_with_the_context() {
        let context = Context::from_body(&serde_json::json!({"Shop": "https://example.org/Shop"})).unwrap();
        let expr = TypeExpr::parse("Shop;Room", &context).unwrap();
        assert_eq!(expr.names(), ["https://example.org/Shop", "Room"]);
    }

    #[test]
    fn malformed_selections_are_refused() {
        for bad in ["", ",", "A,", ";A", "A;;B", "(A", "A)", "()", "A(B)", "A;(", &"(".repeat(9), &"A".repeat(5000)] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let many = vec!["T"; MAX_TYPE_NAMES + 1].join(",");
        assert!(parse(&many).is_err());
        assert!(parse(&format!("{}A{}", "(".repeat(8), ")".repeat(8))).is_ok());
    }
}
