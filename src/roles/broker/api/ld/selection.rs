//! What an NGSI-LD query selects, read from the URL of `GET /ngsi-ld/v1/entities` (`type` and `id` comma lists,
//! `idPattern`, `attrs`, `q`, `georel`/`geometry`/`coordinates`/`geoproperty`) or from the `Query` body of
//! `POST /ngsi-ld/v1/entityOperations/query` (`entities` selectors, `attrs`, `q`, `geoQ`), with the paging of
//! the URL: `limit` (default 20, at most 1000: more is 403 `TooManyResults`; 0 with `count=true` for the count
//! alone), `offset`, `count`.
//! A query without any filter is refused (`BadRequestData`).

use serde_json::Value;

use super::error::LdError;
use super::params::{Params, MAX_LIST};
use crate::ngsi::ld::context::Context;
use crate::ngsi::ld::geo::GeoQuery;
use crate::ngsi::ld::query::Query;
use crate::ngsi::ld::type_expr::TypeExpr;
use crate::ngsi::ld::LOCATION;
use crate::ngsi::limits::{check_name, MAX_PATTERN_LEN, MAX_REGEX_SIZE};
use crate::ngsi::v1::{ContextElement, EntityId};

/// Default page size.
pub const DEFAULT_LIMIT: usize = 20;
/// Largest page size.
pub const MAX_LIMIT: usize = 1000;

/// One entity selector: the type selection, any of the ids, the id pattern (each when given).
#[derive(Debug, Clone, Default)]
struct Selector {
    /// Every type the selection names (an entity it selects is of one of them).
    types: Vec<String>,
    /// The type selection when it is more than a list of types (`;` or parentheses).
    type_expr: Option<TypeExpr>,
    ids: Vec<String>,
    id_pattern: Option<regex::Regex>,
}

impl Selector {
    fn is_empty(&self) -> bool {
        self.types.is_empty() && self.ids.is_empty() && self.id_pattern.is_none()
    }

    fn matches(&self, element: &ContextElement) -> bool {
        let id = &element.entity_id.id;
        let typed = match &self.type_expr {
            Some(expr) => expr.matches(&|t: &str| element.has_type(t)),
            None => self.types.is_empty() || self.types.iter().any(|t| element.has_type(t)),
        };
        typed
            && (self.ids.is_empty() || self.ids.contains(id))
            && self.id_pattern.as_ref().is_none_or(|pattern| pattern.is_match(id))
    }
}

/// A `type` selection: a list of types, or an expression over them (clause 4.17).
fn type_selection(text: Option<&str>, context: &Context) -> Result<(Vec<String>, Option<TypeExpr>), LdError> {
    let Some(text) = text else { return Ok((Vec::new(), None)) };
    let expr = TypeExpr::parse(text, context)?;
    let names = expr.names();
    Ok((names, (!expr.is_list()).then_some(expr)))
}

fn pattern(text: &str) -> Result<regex::Regex, LdError> {
    if text.len() > MAX_PATTERN_LEN {
        return Err(LdError::bad_data(format!("idPattern is longer than {MAX_PATTERN_LEN} bytes")));
    }
    regex::RegexBuilder::new(text)
        .size_limit(MAX_REGEX_SIZE)
        .build()
        .map_err(|e| LdError::bad_data(format!("invalid idPattern: {e}")))
}

/// What a query selects and which page it asks for.
#[derive(Debug, Clone)]
pub struct EntityQuery {
    selectors: Vec<Selector>,
    attrs: Vec<String>,
    q: Option<Query>,
    /// The geo-query.
    pub geo: Option<GeoQuery>,
    /// Page size.
    pub limit: usize,
    /// Page start.
    pub offset: usize,
    /// `count=true`.
    pub count: bool,
}

/// The page size a paged NGSI-LD read asks for (`limit`, default [`DEFAULT_LIMIT`]): above [`MAX_LIMIT`] 403
/// `TooManyResults` (as GS CIM 009 V1.8 answers a page larger than the broker's maximum), 0 only with
/// `count=true` (400 `BadRequestData`).
pub fn page_limit(params: &Params, count: bool) -> Result<usize, LdError> {
    let limit = number(params, "limit", DEFAULT_LIMIT)?;
    if limit > MAX_LIMIT {
        return Err(LdError::too_many_results(format!("limit {limit} is over the maximum of {MAX_LIMIT}")));
    }
    if limit == 0 && !count {
        return Err(LdError::bad_data("limit 0 is only allowed with count=true"));
    }
    Ok(limit)
}

/// A non-negative integer parameter, `default` when absent.
pub fn number(params: &Params, name: &str, default: usize) -> Result<usize, LdError> {
    match params.get(name) {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| LdError::bad_data(format!("{name} must be a non-negative integer"))),
    }
}

fn strings(value: Option<&Value>, what: &str) -> Result<Vec<String>, LdError> {
    let items = match value {
        None => return Ok(Vec::new()),
        Some(Value::String(item)) => vec![item.clone()],
        Some(Value::Array(items)) if items.len() <= MAX_LIST => items
            .iter()
            .map(|item| item.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| LdError::bad_data(format!("{what} must hold strings")))?,
        Some(_) => return Err(LdError::bad_data(format!("{what} must be a string or an array of at most {MAX_LIST}"))),
    };
    Ok(items)
}

impl EntityQuery {
    fn new(params: &Params, selectors: Vec<Selector>, attrs: Vec<String>) -> Result<EntityQuery, LdError> {
        let count = params.flag("count")?;
        let limit = page_limit(params, count)?;
        let offset = number(params, "offset", 0)?;
        Ok(EntityQuery { selectors, attrs, q: None, geo: None, limit, offset, count })
    }

    fn check_not_empty(self) -> Result<EntityQuery, LdError> {
        if self.selectors.is_empty() && self.attrs.is_empty() && self.q.is_none() && self.geo.is_none() {
            return Err(LdError::bad_data("a query needs type, id, idPattern, attrs, q or a geo-query"));
        }
        Ok(self)
    }

    /// Reads the query of `GET /ngsi-ld/v1/entities`.
    pub fn parse(params: &Params, context: &Context) -> Result<EntityQuery, LdError> {
        let (types, type_expr) = type_selection(params.get("type"), context)?;
        let selector = Selector {
            types,
            type_expr,
            ids: params.list("id", context, false)?,
            id_pattern: params.get("idPattern").map(pattern).transpose()?,
        };
        let selectors = if selector.is_empty() { Vec::new() } else { vec![selector] };
        let mut query = EntityQuery::new(params, selectors, params.list("attrs", context, true)?)?;
        query.q = params.get("q").map(|q| Query::parse(q, context)).transpose()?;
        let property = params.get("geoproperty").map_or_else(|| LOCATION.to_string(), |p| context.canonical(p));
        query.geo = GeoQuery::parse(params.get("georel"), params.get("geometry"), params.get("coordinates"), property)?;
        query.check_not_empty()
    }

    /// Reads the `Query` body of `POST /ngsi-ld/v1/entityOperations/query` (paging from the URL).
    pub fn from_body(params: &Params, body: &Value, context: &Context) -> Result<EntityQuery, LdError> {
        let Value::Object(object) = body else { return Err(LdError::bad_data("a query must be a JSON object")) };
        if object.get("type").is_some_and(|t| t != "Query") {
            return Err(LdError::bad_data("the type of a query must be Query"));
        }
        let mut selectors = Vec::new();
        if let Some(entities) = object.get("entities") {
            let entities = entities.as_array().ok_or_else(|| LdError::bad_data("entities must be an array"))?;
            if entities.len() > MAX_LIST {
                return Err(LdError::bad_data(format!("more than {MAX_LIST} entity selectors")));
            }
            for entity in entities {
                // A string is a type selection (a name, a list or an expression); an array lists names.
                let (types, type_expr) = match entity.get("type") {
                    Some(Value::String(text)) => type_selection(Some(text), context)?,
                    other => {
                        let types = strings(other, "entities[].type")?;
                        (types.iter().map(|t| context.canonical(t)).collect(), None)
                    }
                };
                let ids = strings(entity.get("id"), "entities[].id")?;
                let id_pattern = match entity.get("idPattern") {
                    None => None,
                    Some(Value::String(text)) => Some(pattern(text)?),
                    Some(_) => return Err(LdError::bad_data("idPattern must be a string")),
                };
                selectors.push(Selector { types, type_expr, ids, id_pattern });
            }
        }
        let attrs: Vec<String> =
            strings(object.get("attrs"), "attrs")?.iter().map(|name| context.canonical(name)).collect();
        for name in &attrs {
            check_name("attribute name", name)?;
        }
        let mut query = EntityQuery::new(params, selectors, attrs)?;
        query.q = match object.get("q") {
            None => None,
            Some(Value::String(q)) => Some(Query::parse(q, context)?),
            Some(_) => return Err(LdError::bad_data("q must be a string")),
        };
        if let Some(geo) = object.get("geoQ") {
            let text = |name: &str| geo.get(name).and_then(Value::as_str);
            let coordinates = match geo.get("coordinates") {
                Some(Value::String(text)) => Some(text.clone()),
                Some(other) => Some(other.to_string()),
                None => None,
            };
            let property = text("geoproperty").map_or_else(|| LOCATION.to_string(), |p| context.canonical(p));
            query.geo = GeoQuery::parse(text("georel"), text("geometry"), coordinates.as_deref(), property)?;
            if query.geo.is_none() {
                return Err(LdError::bad_data("geoQ needs georel, geometry and coordinates"));
            }
        }
        query.check_not_empty()
    }

    /// What the query selects as NGSI10 entity ids, for discovery: per selector its ids (else its id pattern,
    /// else any id) with each of its types; any entity when there is no selector (`attrs`, `q` and geo-queries are
    /// tested on what comes back).
    pub fn entities(&self) -> Vec<EntityId> {
        let any = || vec![(".*".to_string(), true)];
        if self.selectors.is_empty() {
            return vec![EntityId { id: ".*".into(), entity_type: String::new(), is_pattern: true }];
        }
        let mut entities = Vec::new();
        for selector in &self.selectors {
            let ids: Vec<(String, bool)> = match (&selector.ids[..], &selector.id_pattern) {
                ([], Some(pattern)) => vec![(pattern.as_str().to_string(), true)],
                ([], None) => any(),
                (ids, _) => ids.iter().map(|id| (id.clone(), false)).collect(),
            };
            let types = if selector.types.is_empty() { vec![String::new()] } else { selector.types.clone() };
            for (id, is_pattern) in &ids {
                for entity_type in &types {
                    entities.push(EntityId {
                        id: id.clone(),
                        entity_type: entity_type.clone(),
                        is_pattern: *is_pattern,
                    });
                }
            }
        }
        entities
    }

    /// When every selector names types, all of them: only entities of one of them can match.
    pub fn types(&self) -> Option<Vec<String>> {
        if self.selectors.is_empty() || self.selectors.iter().any(|selector| selector.types.is_empty()) {
            return None;
        }
        Some(self.selectors.iter().flat_map(|selector| selector.types.iter().cloned()).collect())
    }

    /// The attributes asked for (projection).
    pub fn attrs(&self) -> &[String] {
        &self.attrs
    }

    /// Whether the query selects the element.
    pub fn matches(&self, element: &ContextElement) -> bool {
        (self.selectors.is_empty() || self.selectors.iter().any(|selector| selector.matches(element)))
            && (self.attrs.is_empty()
                || self.attrs.iter().any(|name| {
                    element.attributes.iter().any(|a| &a.name == name)
                        || element.domain_metadata.iter().any(|m| &m.name == name)
                }))
            && self.q.as_ref().is_none_or(|q| q.matches(element))
            && self.geo.as_ref().is_none_or(|geo| geo.matches(element))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Uri;
    use serde_json::json;

    use super::*;

    fn params(text: &str) -> Params {
        let uri: Uri = format!("/ngsi-ld/v1/entities?{text}").parse().unwrap();
        Params::parse(&uri).unwrap()
    }

    fn query(text: &str) -> Result<EntityQuery, LdError> {
        EntityQuery::parse(&params(text), &Context::core())
    }

    #[test]
    fn url_queries_are_checked() {
        assert!(query("type=Room").is_ok_and(|q| q.limit == DEFAULT_LIMIT && q.offset == 0));
        assert!(query("").is_err(), "a filter is required");
        assert_eq!(query("type=Room&limit=1001").unwrap_err().status(), axum::http::StatusCode::FORBIDDEN);
        assert!(query("type=Room&limit=1000").is_ok());
        assert!(query("type=Room&limit=0").is_err());
        assert!(query("type=Room&limit=0&count=true").is_ok());
        assert!(query("type=Room&offset=-1").is_err());
        assert!(query("idPattern=(").is_err());
        assert!(query("q=a==").is_err());
        assert!(query("type=Room&count=yes").is_err());
        assert!(query("georel=near;maxDistance==10&geometry=Point&coordinates=[1,2]").is_ok());
    }

    #[test]
    fn queries_name_the_entities_discovery_is_asked_for() {
        let ids = |text: &str| query(text).unwrap().entities();
        let typed = ids("type=Room&idPattern=^urn:a");
        assert_eq!(typed.len(), 1);
        assert_eq!(
            (typed[0].id.as_str(), typed[0].entity_type.as_str(), typed[0].is_pattern),
            ("^urn:a", "Room", true)
        );
        let exact = ids("id=urn:a,urn:b&type=Room");
        assert!(exact.iter().all(|e| !e.is_pattern && e.entity_type == "Room") && exact.len() == 2);
        let any = ids("q=t%3E1");
        assert_eq!((any[0].id.as_str(), any[0].is_pattern), (".*", true));
    }

    #[test]
    fn type_expressions_select_by_every_type_of_a_conjunction() {
        let element = |types: &[&str]| {
            let mut element = ContextElement::default();
            element.entity_id.id = "urn:x".into();
            element.set_types(types.iter().map(|t| t.to_string()).collect());
            element
        };
        let expression = query("type=%28A%3BB%29%7CC").unwrap();
        assert_eq!(expression.types().unwrap(), ["A", "B", "C"], "the index visits every type named");
        assert!(expression.matches(&element(&["B", "A"])));
        assert!(expression.matches(&element(&["C"])));
        assert!(!expression.matches(&element(&["A"])));
        assert!(query("type=A;(B").is_err());
        let body = json!({"type": "Query", "entities": [{"type": "A;B"}]});
        let read = EntityQuery::from_body(&params(""), &body, &Context::core()).unwrap();
        assert!(read.matches(&element(&["A", "B"])) && !read.matches(&element(&["B"])));
    }

    #[test]
    fn queries_name_their_types_only_when_every_selector_does() {
        let types = |text: &str| query(text).unwrap().types();
        let named = query("type=Room,Car&idPattern=^urn:a").unwrap();
        assert_eq!(named.types().unwrap(), named.selectors[0].types, "as the selector compares them");
        assert_eq!(named.types().unwrap().len(), 2);
        assert_eq!(types("q=t%3E1"), None);
        let read = |body: Value| EntityQuery::from_body(&params(""), &body, &Context::core()).unwrap().types();
        assert_eq!(read(json!({"type": "Query", "entities": [{"type": "Room"}, {"idPattern": "^urn:b"}]})), None);
        assert_eq!(
            read(json!({"type": "Query", "entities": [{"type": "Room"}, {"type": "Car"}]})).map(|t| t.len()),
            Some(2)
        );
    }

    #[test]
    fn body_queries_are_read() {
        let read = |body: Value| EntityQuery::from_body(&params(""), &body, &Context::core());
        let query = read(json!({"type": "Query", "entities": [{"type": "Room"}, {"idPattern": "^urn:b"}],
            "attrs": ["t"], "q": "t>1", "geoQ": {"georel": "near;maxDistance==10", "geometry": "Point", "coordinates": [1, 2]}}))
        .unwrap();
        assert_eq!((query.selectors.len(), query.attrs()), (2, ["t".to_string()].as_slice()));
        assert!(read(json!({"type": "Query"})).is_err());
        assert!(read(json!({"type": "Subscription", "attrs": ["t"]})).is_err());
        assert!(read(json!({"entities": {"type": "Room"}})).is_err());
        assert!(read(json!({"entities": [{"type": 3}]})).is_err());
        assert!(read(json!({"geoQ": {"georel": "within"}})).is_err());
        assert!(read(json!([])).is_err());
    }
}
