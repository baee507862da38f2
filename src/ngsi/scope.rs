//! Restriction scopes of NGSI10 queries and subscriptions (`circle`, `polygon`, `simplegeolocation`,
//! `nearby`, `stringQuery`, `point`, `global`, `local`) and how an entity is tested against them.
//!
//! Geometry comes from the `geo` crate: haversine distances in metres, point-in-polygon and rectangles with
//! GeoJSON axis order (x = longitude, y = latitude). An entity's position is its domain metadata of type `point`
//! (`{"latitude","longitude"}`) or a GeoJSON `Point`. Differences from FogFlow, on purpose (spec §7.3, §12):
//! scope types are compared case-insensitively and never crash; an entity with no position does not fall inside
//! a circle or polygon; only the `location` of an entity that has one is tested (FogFlow tested every `point`
//! metadata); `stringQuery` compares non-string values by their JSON text and also looks at attributes;
//! `nearby` keeps distance order and defaults its limit to [`DEFAULT_NEARBY_LIMIT`]. FogFlow's NGSI-LD geo
//! restriction (`restrictionType: "ld"`) is an NGSI-LD geo-query on `location`, in metres and GeoJSON order.

use geo::{Contains, Distance, Haversine, Intersects, LineString, Point, Polygon, Rect};
use serde::Deserialize;
use serde_json::Value;

use super::ld::geo::GeoQuery;
use super::limits::MAX_POLYGON_VERTICES;
use super::v1::{ContextElement, OperationScope, Restriction};
use super::ParseError;

/// Results of a `nearby` scope when it gives no (or a zero) `limit`.
pub const DEFAULT_NEARBY_LIMIT: usize = 10;
/// Largest `nearby` limit accepted.
pub const MAX_NEARBY_LIMIT: usize = 1000;

/// One validated scope.
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    /// Entities whose position is within `radius_m` metres of `center`.
    Circle {
        /// Centre (x = longitude, y = latitude).
        center: Point<f64>,
        /// Radius in metres.
        radius_m: f64,
    },
    /// Entities whose position is inside (or on the edge of) the polygon.
    Polygon(Polygon<f64>),
    /// Entities inside the rectangle given by its north-west and south-east corners.
    Rectangle(Rect<f64>),
    /// The `limit` entities nearest to `landmark`, nearest first.
    Nearby {
        /// Reference point.
        landmark: Point<f64>,
        /// How many to keep.
        limit: usize,
    },
    /// Every `key=value` pair must hold on the entity's domain metadata (or attributes).
    StringQuery(Vec<(String, String)>),
    /// Selects everything (`global`, `local`, `point`): FogFlow uses them for placement, not filtering.
    Everything,
}

/// The scopes of one restriction, all of which must match (and its NGSI-LD geo restriction, if any).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScopeFilter {
    scopes: Vec<Scope>,
    ld: Option<GeoQuery>,
}

impl ScopeFilter {
    /// Validates the restriction's scopes (none → a filter that selects everything).
    pub fn compile(restriction: Option<&Restriction>) -> Result<Self, ParseError> {
        let Some(restriction) = restriction else {
            return Ok(ScopeFilter::default());
        };
        let scopes = restriction.scopes.iter().map(compile_scope).collect::<Result<Vec<_>, _>>()?;
        if scopes.iter().filter(|scope| matches!(scope, Scope::Nearby { .. })).count() > 1 {
            return Err(ParseError::new("a restriction may hold at most one nearby scope"));
        }
        let ld = match restriction.restriction_type.to_ascii_lowercase().as_str() {
            "" => None,
            "ld" => ld_restriction(restriction)?,
            other => return Err(ParseError::new(format!("unknown restrictionType `{other}` (expected ld)"))),
        };
        Ok(ScopeFilter { scopes, ld })
    }

    /// Whether no scope filters anything.
    pub fn is_empty(&self) -> bool {
        self.ld.is_none() && self.scopes.iter().all(|scope| matches!(scope, Scope::Everything))
    }

    /// The scopes.
    pub fn scopes(&self) -> &[Scope] {
        &self.scopes
    }

    /// Whether the element passes every filtering scope. `nearby` is not a filter: see [`ScopeFilter::nearby`].
    pub fn matches(&self, element: &ContextElement) -> bool {
        self.scopes.iter().all(|scope| scope_matches(scope, element))
            && self.ld.as_ref().is_none_or(|query| query.matches(element))
    }

    /// The `nearby` scope, if any: its landmark and limit.
    pub fn nearby(&self) -> Option<(Point<f64>, usize)> {
        self.scopes.iter().find_map(|scope| match scope {
            Scope::Nearby { landmark, limit } => Some((*landmark, *limit)),
            _ => None,
        })
    }
}

/// FogFlow's NGSI-LD geo restriction (spec §7.5) as an NGSI-LD geo-query on `location`, done right: distances in
/// metres, coordinates in GeoJSON order, every georel. No georel selects everything, as in FogFlow.
fn ld_restriction(restriction: &Restriction) -> Result<Option<GeoQuery>, ParseError> {
    if restriction.geo_rel.is_empty() {
        return Ok(None);
    }
    let geometry = match restriction.geometry.to_ascii_lowercase().as_str() {
        "point" => "Point",
        "linestring" => "LineString",
        "polygon" => "Polygon",
        "multipoint" => "MultiPoint",
        "multipolygon" => "MultiPolygon",
        _ => return Err(ParseError::new(format!("unsupported geometry `{}`", restriction.geometry))),
    };
    let coordinates = match &restriction.coordinates {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    GeoQuery::parse(Some(&restriction.geo_rel), Some(geometry), Some(&coordinates), super::ld::LOCATION.into())
}

/// The positions the NGSI10 scopes test: the `location` metadata when it holds one (FogFlow tested every
/// `point` metadata, spec §12.22), else every position the entity has.
fn scope_positions(element: &ContextElement) -> Vec<Point<f64>> {
    let location = element
        .domain_metadata
        .iter()
        .find(|metadata| metadata.name == super::ld::LOCATION)
        .and_then(|metadata| position_of(&metadata.value));
    match location {
        Some(position) => vec![position],
        None => entity_positions(element),
    }
}

/// Keeps the `limit` elements nearest to `landmark`, nearest first; elements without a position go last.
pub fn keep_nearest<T>(
    items: &mut Vec<T>,
    landmark: Point<f64>,
    limit: usize,
    element: impl Fn(&T) -> &ContextElement,
) {
    let distance = |item: &T| {
        scope_positions(element(item))
            .into_iter()
            .map(|position| Haversine::distance(landmark, position))
            .fold(f64::INFINITY, f64::min)
    };
    let mut keyed: Vec<(f64, T)> = items.drain(..).map(|item| (distance(&item), item)).collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
    keyed.truncate(limit);
    items.extend(keyed.into_iter().map(|(_, item)| item));
}

/// The positions of an entity: every domain metadata of type `point` (FogFlow's `{"latitude","longitude"}`)
/// or holding a GeoJSON `Point`.
pub fn entity_positions(element: &ContextElement) -> Vec<Point<f64>> {
    element
        .domain_metadata
        .iter()
        .filter_map(|metadata| {
            let is_point_type = metadata.metadata_type.eq_ignore_ascii_case("point");
            let is_geojson = metadata.value.get("type").and_then(Value::as_str) == Some("Point");
            if is_point_type || is_geojson {
                position_of(&metadata.value)
            } else {
                None
            }
        })
        .collect()
}

fn position_of(value: &Value) -> Option<Point<f64>> {
    if let (Some(latitude), Some(longitude)) =
        (value.get("latitude").and_then(Value::as_f64), value.get("longitude").and_then(Value::as_f64))
    {
        return valid_position(latitude, longitude).ok();
    }
    let coordinates = value.get("coordinates")?.as_array()?;
    match coordinates.as_slice() {
        [longitude, latitude] => valid_position(latitude.as_f64()?, longitude.as_f64()?).ok(),
        _ => None,
    }
}

fn scope_matches(scope: &Scope, element: &ContextElement) -> bool {
    match scope {
        Scope::Everything | Scope::Nearby { .. } => true,
        Scope::Circle { center, radius_m } => {
            all_positions(element, |position| Haversine::distance(*center, position) <= *radius_m)
        }
        Scope::Polygon(polygon) => all_positions(element, |position| polygon.intersects(&position)),
        Scope::Rectangle(rect) => {
            all_positions(element, |position| rect.contains(&position) || rect.intersects(&position))
        }
        Scope::StringQuery(pairs) => pairs.iter().all(|(key, wanted)| has_value(element, key, wanted)),
    }
}

fn all_positions(element: &ContextElement, test: impl Fn(Point<f64>) -> bool) -> bool {
    let positions = scope_positions(element);
    !positions.is_empty() && positions.into_iter().all(test)
}

fn has_value(element: &ContextElement, key: &str, wanted: &str) -> bool {
    let metadata = element.domain_metadata.iter().filter(|m| m.name == key).map(|m| &m.value);
    let attributes = element.attributes.iter().filter(|a| a.name == key).map(|a| &a.value);
    metadata.chain(attributes).any(|value| match value {
        Value::String(text) => text == wanted,
        Value::Null => false,
        other => serde_json::to_string(other).is_ok_and(|text| text == wanted),
    })
}

#[derive(Deserialize)]
struct LatLon {
    latitude: f64,
    longitude: f64,
}

#[derive(Deserialize)]
struct CircleValue {
    #[serde(rename = "centerLatitude")]
    center_latitude: f64,
    #[serde(rename = "centerLongitude")]
    center_longitude: f64,
    radius: f64,
}

#[derive(Deserialize)]
struct PolygonValue {
    vertices: Vec<LatLon>,
}

#[derive(Deserialize)]
struct SegmentValue {
    #[serde(rename = "nw_Corner")]
    nw_corner: String,
    #[serde(rename = "se_Corner")]
    se_corner: String,
}

#[derive(Deserialize)]
struct NearbyValue {
    latitude: f64,
    longitude: f64,
    #[serde(default)]
    limit: Option<i64>,
}

fn compile_scope(scope: &OperationScope) -> Result<Scope, ParseError> {
    let kind = scope.scope_type.to_ascii_lowercase();
    match kind.as_str() {
        "circle" => {
            let value: CircleValue = scope_value(scope, "{\"centerLatitude\",\"centerLongitude\",\"radius\"}")?;
            let center = valid_position(value.center_latitude, value.center_longitude)?;
            if !value.radius.is_finite() || value.radius < 0.0 {
                return Err(ParseError::new(format!(
                    "circle radius must be a non-negative number of metres, not {}",
                    value.radius
                )));
            }
            Ok(Scope::Circle { center, radius_m: value.radius })
        }
        "polygon" => {
            let value: PolygonValue = scope_value(scope, "{\"vertices\":[{\"latitude\",\"longitude\"}…]}")?;
            if value.vertices.len() < 3 {
                return Err(ParseError::new(format!(
                    "a polygon needs at least 3 vertices, got {}",
                    value.vertices.len()
                )));
            }
            if value.vertices.len() > MAX_POLYGON_VERTICES {
                return Err(ParseError::new(format!(
                    "a polygon may have at most {MAX_POLYGON_VERTICES} vertices, got {}",
                    value.vertices.len()
                )));
            }
            let ring = value
                .vertices
                .iter()
                .map(|vertex| valid_position(vertex.latitude, vertex.longitude).map(|p| p.0))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Scope::Polygon(Polygon::new(LineString::from(ring), vec![])))
        }
        "simplegeolocation" => {
            let value: SegmentValue = scope_value(scope, "{\"nw_Corner\":\"lat,lon\",\"se_Corner\":\"lat,lon\"}")?;
            let north_west = corner("nw_Corner", &value.nw_corner)?;
            let south_east = corner("se_Corner", &value.se_corner)?;
            Ok(Scope::Rectangle(Rect::new(north_west.0, south_east.0)))
        }
        "nearby" => {
            let value: NearbyValue = scope_value(scope, "{\"latitude\",\"longitude\",\"limit\"}")?;
            let landmark = valid_position(value.latitude, value.longitude)?;
            let limit = match value.limit {
                None | Some(0) => DEFAULT_NEARBY_LIMIT,
                Some(limit) if limit < 0 => {
                    return Err(ParseError::new(format!("nearby limit must be positive, not {limit}")))
                }
                Some(limit) => usize::try_from(limit).unwrap_or(MAX_NEARBY_LIMIT).min(MAX_NEARBY_LIMIT),
            };
            Ok(Scope::Nearby { landmark, limit })
        }
        "stringquery" => {
            let Some(text) = scope.scope_value.as_str() else {
                return Err(ParseError::new("stringQuery scope value must be a string such as \"city=Heidelberg;floor=3\""));
            };
            parse_string_query(text).map(Scope::StringQuery)
        }
        "global" | "local" | "point" => Ok(Scope::Everything),
        _ => Err(ParseError::new(format!(
            "unknown scopeType `{}` (expected circle, polygon, simplegeolocation, nearby, stringQuery, point, global or local)",
            scope.scope_type
        ))),
    }
}

/// The distances of a `near` georel's modifiers (`maxDistance`, `minDistance`, in metres), written
/// `name<separator>value` (NGSIv2 `:`, NGSI-LD `==`); at least one is required.
pub fn near_distances(modifiers: &[&str], separator: &str) -> Result<(Option<f64>, Option<f64>), ParseError> {
    let distance = |text: &str, what: &str| match text.parse::<f64>() {
        Ok(metres) if metres.is_finite() && metres >= 0.0 => Ok(metres),
        _ => Err(ParseError::new(format!("{what} must be a non-negative number of metres, not `{text}`"))),
    };
    let (mut max, mut min) = (None, None);
    for modifier in modifiers {
        match modifier.split_once(separator) {
            Some(("maxDistance", value)) => max = Some(distance(value, "maxDistance")?),
            Some(("minDistance", value)) => min = Some(distance(value, "minDistance")?),
            _ => {
                return Err(ParseError::new(format!(
                    "invalid georel modifier `{modifier}` (expected maxDistance{separator}<metres>)"
                )))
            }
        }
    }
    if max.is_none() && min.is_none() {
        return Err(ParseError::new("georel near needs maxDistance or minDistance"));
    }
    Ok((max, min))
}

fn scope_value<T: for<'de> Deserialize<'de>>(scope: &OperationScope, shape: &str) -> Result<T, ParseError> {
    T::deserialize(&scope.scope_value)
        .map_err(|error| ParseError::new(format!("{} scope value must look like {shape}: {error}", scope.scope_type)))
}

fn valid_position(latitude: f64, longitude: f64) -> Result<Point<f64>, ParseError> {
    if !(latitude.is_finite() && (-90.0..=90.0).contains(&latitude)) {
        return Err(ParseError::new(format!("latitude {latitude} is outside -90..90")));
    }
    if !(longitude.is_finite() && (-180.0..=180.0).contains(&longitude)) {
        return Err(ParseError::new(format!("longitude {longitude} is outside -180..180")));
    }
    Ok(Point::new(longitude, latitude))
}

fn corner(what: &str, text: &str) -> Result<Point<f64>, ParseError> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let [latitude, longitude] = parts.as_slice() else {
        return Err(ParseError::new(format!("{what} must be \"latitude,longitude\", not `{text}`")));
    };
    let parse = |part: &str| {
        part.parse::<f64>().map_err(|_| ParseError::new(format!("{what} must be \"latitude,longitude\", not `{text}`")))
    };
    valid_position(parse(latitude)?, parse(longitude)?)
}

fn parse_string_query(text: &str) -> Result<Vec<(String, String)>, ParseError> {
    let mut pairs = Vec::new();
    for clause in text.split(';').map(str::trim).filter(|clause| !clause.is_empty()) {
        let Some((key, value)) = clause.split_once('=') else {
            return Err(ParseError::new(format!("stringQuery clause `{clause}` is not key=value")));
        };
        let key = key.trim();
        let value = value.trim_start_matches('=').trim();
        if key.is_empty() {
            return Err(ParseError::new(format!("stringQuery clause `{clause}` has an empty key")));
        }
        pairs.push((key.to_string(), value.to_string()));
    }
    if pairs.is_empty() {
        return Err(ParseError::new("stringQuery is empty"));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests;
