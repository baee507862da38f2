//! The URL parameters of the NGSIv2 entity routes: `options` (keyValues, values, unique, count, upsert, append),
//! `type`, `id`, `idPattern`, `q`, `georel`/`geometry`/`coords`, `attrs`, `limit` (default 20, 1–1000) and
//! `offset`, validated as Orion does; the parameters not supported yet (`mq`, `orderBy`, `typePattern`) are
//! refused with 400 rather than ignored.

use axum::extract::Query as UrlQuery;
use axum::http::Uri;

use super::error::V2Error;
use crate::ngsi::pattern::EntitySelector;
use crate::ngsi::v1::ContextElement;
use crate::ngsi::v1::EntityId;
use crate::ngsi::v2::geo::GeoQuery;
use crate::ngsi::v2::query::Query;
use crate::ngsi::v2::{check_identifier, Format};

/// Default page size of `GET /v2/entities`.
pub const DEFAULT_LIMIT: usize = 20;
/// Largest page size of `GET /v2/entities`.
pub const MAX_LIMIT: usize = 1000;
/// Most ids or types in one comma list.
const MAX_LIST: usize = 100;

/// The parsed URL parameters of one request.
#[derive(Debug, Clone)]
pub struct Params {
    /// Rendering (`options=keyValues|values|unique`).
    pub format: Format,
    /// `options=count`.
    pub count: bool,
    /// `options=upsert`.
    pub upsert: bool,
    /// `options=append`.
    pub append: bool,
    /// `type`, split on commas.
    pub types: Vec<String>,
    /// `id`, split on commas.
    pub ids: Vec<String>,
    /// `idPattern`.
    pub id_pattern: Option<String>,
    /// `q`, compiled.
    pub q: Option<Query>,
    /// `georel`, `geometry` and `coords`, compiled.
    pub geo: Option<GeoQuery>,
    /// `attrs`, split on commas.
    pub attrs: Vec<String>,
    /// `metadata`, split on commas (none: every user metadata, no builtin).
    pub metadata: Option<Vec<String>>,
    /// `limit`.
    pub limit: usize,
    /// `offset`.
    pub offset: usize,
}

fn list(name: &str, value: &str, what: &str) -> Result<Vec<String>, V2Error> {
    let items: Vec<String> = value.split(',').map(str::to_string).collect();
    if items.len() > MAX_LIST {
        return Err(V2Error::bad_request(format!("more than {MAX_LIST} values in URL parameter {name}")));
    }
    for item in &items {
        check_identifier(what, item)?;
    }
    Ok(items)
}

fn number(name: &str, value: &str) -> Result<usize, V2Error> {
    value.parse().map_err(|_| V2Error::bad_request(format!("invalid value for URL parameter {name}: `{value}`")))
}

/// What selects the entities of a listing.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Ids, id pattern and types.
    pub selector: EntitySelector,
    /// `q`.
    pub q: Option<Query>,
    /// Geo query.
    pub geo: Option<GeoQuery>,
}

impl Filter {
    /// Whether the filter selects the entity.
    pub fn matches(&self, element: &ContextElement) -> bool {
        self.selector.matches(&element.entity_id.id, &element.entity_id.entity_type)
            && self.q.as_ref().is_none_or(|q| q.matches(element))
            && self.geo.as_ref().is_none_or(|geo| geo.matches(element))
    }
}

impl Params {
    /// Parses the query string of `uri`.
    pub fn parse(uri: &Uri) -> Result<Params, V2Error> {
        let UrlQuery(pairs) = UrlQuery::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|error| V2Error::bad_request(format!("invalid URL parameters: {error}")))?;
        let mut params = Params {
            format: Format::Normalized,
            count: false,
            upsert: false,
            append: false,
            types: Vec::new(),
            ids: Vec::new(),
            id_pattern: None,
            q: None,
            geo: None,
            attrs: Vec::new(),
            metadata: None,
            limit: DEFAULT_LIMIT,
            offset: 0,
        };
        let (mut georel, mut geometry, mut coords) = (None, None, None);
        for (key, value) in &pairs {
            match key.as_str() {
                "options" => params.options(value)?,
                "type" => params.types = list(key, value, "entity type")?,
                "id" => params.ids = list(key, value, "entity id")?,
                "idPattern" => params.id_pattern = Some(value.clone()),
                "q" => params.q = Some(Query::parse(value)?),
                "attrs" => params.attrs = list(key, value, "attribute name")?,
                "metadata" => params.metadata = Some(list(key, value, "metadata name")?),
                "limit" => {
                    params.limit = number(key, value)?;
                    if params.limit == 0 || params.limit > MAX_LIMIT {
                        return Err(V2Error::bad_request(format!(
                            "bad pagination limit: {value} (must be a decimal number between 1 and {MAX_LIMIT})"
                        )));
                    }
                }
                "offset" => params.offset = number(key, value)?,
                "georel" => georel = Some(value.as_str()),
                "geometry" => geometry = Some(value.as_str()),
                "coords" => coords = Some(value.as_str()),
                "mq" | "orderBy" | "typePattern" => {
                    return Err(V2Error::bad_request(format!(
                        "URL parameter {key} is not supported by this broker yet"
                    )))
                }
                _ => {}
            }
        }
        params.geo = GeoQuery::parse(georel, geometry, coords)?;
        if !params.ids.is_empty() && params.id_pattern.is_some() {
            return Err(V2Error::bad_request("incompatible parameters: id, idPattern"));
        }
        Ok(params)
    }

    fn options(&mut self, value: &str) -> Result<(), V2Error> {
        for option in value.split(',') {
            match option {
                "keyValues" => self.set_format(Format::KeyValues)?,
                "values" | "unique" => self.set_format(Format::Values)?,
                "count" => self.count = true,
                "upsert" => self.upsert = true,
                "append" => self.append = true,
                other => {
                    return Err(V2Error::bad_request(format!("invalid value for URL parameter options: `{other}`")))
                }
            }
        }
        Ok(())
    }

    fn set_format(&mut self, format: Format) -> Result<(), V2Error> {
        if self.format != Format::Normalized && self.format != format {
            return Err(V2Error::bad_request("options keyValues and values cannot be combined"));
        }
        self.format = format;
        Ok(())
    }

    /// The one `type` an entity-level operation names, if any.
    pub fn entity_type(&self) -> Result<Option<&str>, V2Error> {
        match self.types.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            _ => Err(V2Error::bad_request("URL parameter type must name one type here")),
        }
    }

    /// What `GET /v2/entities` selects: ids, pattern and types, `q`, geo query.
    pub fn filter(&self) -> Result<Filter, V2Error> {
        Ok(Filter { selector: self.selector()?, q: self.q.clone(), geo: self.geo.clone() })
    }

    /// The entities `GET /v2/entities` selects: any of the ids (or the pattern, or any id) with any of the types.
    pub fn selector(&self) -> Result<EntitySelector, V2Error> {
        Ok(EntitySelector::compile(&self.entities())?)
    }

    /// The selection of [`Params::selector`] as NGSI10 entity ids (for discovery).
    pub fn entities(&self) -> Vec<EntityId> {
        let ids: Vec<(String, bool)> = match &self.id_pattern {
            Some(pattern) => vec![(pattern.clone(), true)],
            None if self.ids.is_empty() => vec![(".*".into(), true)],
            None => self.ids.iter().map(|id| (id.clone(), false)).collect(),
        };
        let types: Vec<String> = if self.types.is_empty() { vec![String::new()] } else { self.types.clone() };
        let mut entities = Vec::with_capacity(ids.len() * types.len());
        for (id, is_pattern) in &ids {
            for entity_type in &types {
                entities.push(EntityId { id: id.clone(), entity_type: entity_type.clone(), is_pattern: *is_pattern });
            }
        }
        entities
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<Params, V2Error> {
        Params::parse(&format!("/v2/entities?{query}").parse::<Uri>().unwrap())
    }

    #[test]
    fn paging_and_options_are_validated() {
        let params = parse("limit=5&offset=2&options=count,keyValues&attrs=a,b").unwrap();
        assert_eq!((params.limit, params.offset, params.count), (5, 2, true));
        assert_eq!(params.format, Format::KeyValues);
        assert_eq!(params.attrs, ["a", "b"]);
        assert_eq!(parse("").unwrap().limit, DEFAULT_LIMIT);
        for bad in [
            "limit=0",
            "limit=1001",
            "limit=-1",
            "offset=x",
            "options=bogus",
            "q=temp%3E",
            "mq=a.b",
            "id=a&idPattern=b",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("options=keyValues,values").is_err());
        assert!(parse("q=temp%3E1;name==%27x%27").unwrap().q.is_some());
        assert!(parse("id=a%2Fb").is_err());
    }

    #[test]
    fn selector_combines_ids_types_and_patterns() {
        let selector = parse("id=a,b&type=T").unwrap().selector().unwrap();
        assert!(selector.matches("a", "T") && selector.matches("b", "T"));
        assert!(!selector.matches("a", "U") && !selector.matches("c", "T"));
        let selector = parse("idPattern=^Room").unwrap().selector().unwrap();
        assert!(selector.matches("Room1", "X") && !selector.matches("MyRoom", "X"));
        assert!(parse("").unwrap().selector().unwrap().matches("anything", ""));
    }
}
