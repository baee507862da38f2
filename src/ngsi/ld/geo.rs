//! NGSI-LD geo-queries (`georel`, `geometry`, `coordinates`, `geoproperty`; clause 4.10): `near;maxDistance==m`
//! and/or `;minDistance==m` around a Point, `within`, `contains`, `intersects`, `disjoint`, `equals`, `overlaps`
//! against a Point, LineString or Polygon given as GeoJSON coordinates (`[lon,lat]`). The entity's geometry is
//! its GeoProperty named by `geoproperty` (default `location`): a GeoJSON Point, LineString, Polygon, MultiPoint
//! or MultiPolygon; for `location`, an NGSI10 `point` domain metadata also counts. Distances are haversine metres
//! to the entity's centroid; relations are DE-9IM (`geo` crate `Relate`). An entity without a geometry matches no
//! geo-query.

use geo::{
    Centroid, Coord, Distance, Geometry, Haversine, LineString, MultiPoint, MultiPolygon, Point, Polygon, Relate,
};
use serde_json::Value;

use super::entity::Kind;
use crate::ngsi::limits::MAX_POLYGON_VERTICES;
use crate::ngsi::scope::entity_positions;
use crate::ngsi::v1::ContextElement;
use crate::ngsi::ParseError;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Relation {
    Near { max: Option<f64>, min: Option<f64> },
    Within,
    Contains,
    Intersects,
    Disjoint,
    Equals,
    Overlaps,
}

/// A compiled geo-query.
#[derive(Debug, Clone, PartialEq)]
pub struct GeoQuery {
    relation: Relation,
    shape: Geometry<f64>,
    property: String,
}

fn relation(georel: &str) -> Result<Relation, ParseError> {
    let mut parts = georel.split(';');
    let name = parts.next().unwrap_or_default();
    let modifiers: Vec<&str> = parts.collect();
    if name != "near" {
        if !modifiers.is_empty() {
            return Err(ParseError::new(format!("georel {name} takes no modifiers")));
        }
        return match name {
            "within" => Ok(Relation::Within),
            "contains" => Ok(Relation::Contains),
            "intersects" => Ok(Relation::Intersects),
            "disjoint" => Ok(Relation::Disjoint),
            "equals" => Ok(Relation::Equals),
            "overlaps" => Ok(Relation::Overlaps),
            other => Err(ParseError::new(format!("unknown georel `{other}`"))),
        };
    }
    let (max, min) = crate::ngsi::scope::near_distances(&modifiers, "==")?;
    Ok(Relation::Near { max, min })
}

fn position(value: &Value) -> Result<Coord<f64>, ParseError> {
    let bad = || ParseError::new(format!("invalid position `{value}` (expected [longitude, latitude])"));
    let Some([longitude, latitude]) = value.as_array().map(Vec::as_slice) else { return Err(bad()) };
    let (longitude, latitude) = (longitude.as_f64().ok_or_else(bad)?, latitude.as_f64().ok_or_else(bad)?);
    if !(-90.0..=90.0).contains(&latitude) || !(-180.0..=180.0).contains(&longitude) {
        return Err(bad());
    }
    Ok(Coord { x: longitude, y: latitude })
}

fn line(value: &Value, counted: &mut usize) -> Result<LineString<f64>, ParseError> {
    let positions = value.as_array().ok_or_else(|| ParseError::new("a line must be an array of positions"))?;
    *counted += positions.len();
    if *counted > MAX_POLYGON_VERTICES {
        return Err(ParseError::new(format!("a geometry has more than {MAX_POLYGON_VERTICES} positions")));
    }
    if positions.len() < 2 {
        return Err(ParseError::new("a line needs at least two positions"));
    }
    Ok(LineString::new(positions.iter().map(position).collect::<Result<_, _>>()?))
}

fn polygon(value: &Value, counted: &mut usize) -> Result<Polygon<f64>, ParseError> {
    let rings = value.as_array().ok_or_else(|| ParseError::new("a polygon must be an array of rings"))?;
    let mut rings = rings.iter().map(|ring| line(ring, counted)).collect::<Result<Vec<_>, _>>()?;
    for ring in &rings {
        if ring.0.len() < 4 || ring.0.first() != ring.0.last() {
            return Err(ParseError::new("a polygon ring needs at least four positions, the last equal to the first"));
        }
    }
    if rings.is_empty() {
        return Err(ParseError::new("a polygon needs a ring"));
    }
    let exterior = rings.remove(0);
    Ok(Polygon::new(exterior, rings))
}

/// A GeoJSON geometry (`type` and `coordinates`) as a `geo` geometry.
pub fn geometry(kind: &str, coordinates: &Value) -> Result<Geometry<f64>, ParseError> {
    let mut counted = 0;
    let array =
        |value: &Value| value.as_array().cloned().ok_or_else(|| ParseError::new("coordinates must be an array"));
    Ok(match kind {
        "Point" => Geometry::Point(Point(position(coordinates)?)),
        "LineString" => Geometry::LineString(line(coordinates, &mut counted)?),
        "Polygon" => Geometry::Polygon(polygon(coordinates, &mut counted)?),
        "MultiPoint" => {
            let points = array(coordinates)?;
            if points.len() > MAX_POLYGON_VERTICES {
                return Err(ParseError::new(format!("more than {MAX_POLYGON_VERTICES} points")));
            }
            Geometry::MultiPoint(MultiPoint(points.iter().map(|p| position(p).map(Point)).collect::<Result<_, _>>()?))
        }
        "MultiPolygon" => Geometry::MultiPolygon(MultiPolygon(
            array(coordinates)?.iter().map(|p| polygon(p, &mut counted)).collect::<Result<_, _>>()?,
        )),
        other => return Err(ParseError::new(format!("unsupported geometry `{other}`"))),
    })
}

/// A GeoJSON value as a geometry, if it is a valid one.
fn geojson(value: &Value) -> Option<Geometry<f64>> {
    geometry(value.get("type")?.as_str()?, value.get("coordinates")?).ok()
}

impl GeoQuery {
    /// Compiles the geo-query parameters; `georel`, `geometry` and `coordinates` go together. `property` is the
    /// canonical name of the GeoProperty to test.
    pub fn parse(
        georel: Option<&str>,
        geometry_name: Option<&str>,
        coordinates: Option<&str>,
        property: String,
    ) -> Result<Option<GeoQuery>, ParseError> {
        let (georel, geometry_name, coordinates) = match (georel, geometry_name, coordinates) {
            (None, None, None) => return Ok(None),
            (Some(georel), Some(geometry_name), Some(coordinates)) => (georel, geometry_name, coordinates),
            _ => return Err(ParseError::new("georel, geometry and coordinates must be given together")),
        };
        let relation = relation(georel)?;
        if !["Point", "LineString", "Polygon", "MultiPoint", "MultiPolygon"].contains(&geometry_name) {
            return Err(ParseError::new(format!("unsupported geometry `{geometry_name}`")));
        }
        let coordinates: Value = serde_json::from_str(coordinates)
            .map_err(|_| ParseError::new("coordinates must be a JSON array of [longitude, latitude] positions"))?;
        let shape = geometry(geometry_name, &coordinates)?;
        if matches!(relation, Relation::Near { .. }) && !matches!(shape, Geometry::Point(_)) {
            return Err(ParseError::new("georel near needs geometry Point"));
        }
        Ok(Some(GeoQuery { relation, shape, property }))
    }

    /// The entity's geometry for this query.
    fn geometry_of(&self, element: &ContextElement) -> Option<Geometry<f64>> {
        let attribute = element
            .attributes
            .iter()
            .find(|a| a.name == self.property && Kind::of(&a.attribute_type) == Kind::GeoProperty);
        if let Some(attribute) = attribute {
            return geojson(&attribute.value);
        }
        if self.property != super::LOCATION {
            return None;
        }
        match entity_positions(element).as_slice() {
            [] => None,
            [point] => Some(Geometry::Point(*point)),
            points => Some(Geometry::MultiPoint(MultiPoint(points.to_vec()))),
        }
    }

    /// Whether the entity's geometry satisfies the query.
    pub fn matches(&self, element: &ContextElement) -> bool {
        let Some(geometry) = self.geometry_of(element) else { return false };
        match self.relation {
            Relation::Near { max, min } => match self.distance_to(&geometry) {
                Some(metres) => max.is_none_or(|max| metres <= max) && min.is_none_or(|min| metres >= min),
                None => false,
            },
            relation => {
                let matrix = geometry.relate(&self.shape);
                match relation {
                    Relation::Within => matrix.is_within(),
                    Relation::Contains => matrix.is_contains(),
                    Relation::Intersects => matrix.is_intersects(),
                    Relation::Disjoint => matrix.is_disjoint(),
                    Relation::Equals => matrix.is_equal_topo(),
                    Relation::Overlaps => matrix.is_overlaps(),
                    Relation::Near { .. } => false,
                }
            }
        }
    }

    fn distance_to(&self, geometry: &Geometry<f64>) -> Option<f64> {
        let Geometry::Point(reference) = &self.shape else { return None };
        Some(Haversine::distance(*reference, geometry.centroid()?))
    }

    /// For `near`, the entity's distance in metres (results are ordered by it, nearest first).
    pub fn distance(&self, element: &ContextElement) -> Option<f64> {
        if !matches!(self.relation, Relation::Near { .. }) {
            return None;
        }
        self.distance_to(&self.geometry_of(element)?)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ngsi::ld::context::Context;
    use crate::ngsi::ld::entity::parse_entity;

    fn at(longitude: f64, latitude: f64) -> ContextElement {
        let location = json!({"type": "GeoProperty", "value": {"type": "Point", "coordinates": [longitude, latitude]}});
        parse_entity(&Context::core(), &json!({"id": "urn:e", "type": "T", "location": location})).unwrap()
    }

    fn query(georel: &str, geometry: &str, coordinates: &str) -> GeoQuery {
        GeoQuery::parse(Some(georel), Some(geometry), Some(coordinates), "location".into()).unwrap().unwrap()
    }

    #[test]
    fn relations_hold_on_geoproperties() {
        let heidelberg = at(8.6842, 49.4064);
        let mannheim = at(8.4660, 49.4875);
        let near = query("near;maxDistance==5000", "Point", "[8.68,49.41]");
        assert!(near.matches(&heidelberg) && !near.matches(&mannheim));
        assert!(near.distance(&heidelberg).is_some_and(|d| d < 1000.0));
        assert!(query("near;minDistance==5000", "Point", "[8.68,49.41]").matches(&mannheim));
        let area = "[[[8.6,49.3],[8.8,49.3],[8.8,49.5],[8.6,49.5],[8.6,49.3]]]";
        assert!(query("within", "Polygon", area).matches(&heidelberg));
        assert!(!query("within", "Polygon", area).matches(&mannheim));
        assert!(query("intersects", "Polygon", area).matches(&heidelberg));
        assert!(query("disjoint", "Polygon", area).matches(&mannheim));
        assert!(query("equals", "Point", "[8.6842,49.4064]").matches(&heidelberg));
        let region = parse_entity(
            &Context::core(),
            &json!({"id": "urn:r", "type": "T", "location": {"type": "GeoProperty", "value": {"type": "Polygon", "coordinates": serde_json::from_str::<Value>(area).unwrap()}}}),
        )
        .unwrap();
        assert!(query("contains", "Point", "[8.7,49.4]").matches(&region));
        let ngsi10: ContextElement = serde_json::from_value(json!({"entityId": {"id": "D"},
            "domainMetadata": [{"name": "location", "type": "point", "value": {"latitude": 49.4064, "longitude": 8.6842}}]}))
        .unwrap();
        assert!(near.matches(&ngsi10));
        assert!(!near.matches(&parse_entity(&Context::core(), &json!({"id": "urn:n", "type": "T"})).unwrap()));
    }

    #[test]
    fn bad_geo_queries_are_refused() {
        assert_eq!(GeoQuery::parse(None, None, None, "location".into()), Ok(None));
        for (georel, geometry, coordinates) in [
            ("near", "Point", "[1,2]"),
            ("near;maxDistance:10", "Point", "[1,2]"),
            ("near;maxDistance==-1", "Point", "[1,2]"),
            ("near;maxDistance==10", "Polygon", "[[[0,0],[1,0],[1,1],[0,0]]]"),
            ("within", "Polygon", "[[[0,0],[1,0],[1,1]]]"),
            ("within", "Polygon", "[[[0,0],[1,0],[1,1],[0,1]]]"),
            ("coveredBy", "Point", "[1,2]"),
            ("within", "Circle", "[1,2]"),
            ("within", "Point", "[1,200]"),
            ("within", "Point", "1,2"),
            ("within", "Point", "[1]"),
            ("equals;x==1", "Point", "[1,2]"),
        ] {
            assert!(
                GeoQuery::parse(Some(georel), Some(geometry), Some(coordinates), "location".into()).is_err(),
                "{georel} {geometry} {coordinates}"
            );
        }
        assert!(GeoQuery::parse(Some("within"), Some("Point"), None, "location".into()).is_err());
    }

    #[test]
    fn degenerate_geometries_do_not_panic() {
        let entities = [at(1.0, 1.0), at(2.0, 2.0)];
        for coordinates in [
            "[[[1,1],[1,1],[1,1],[1,1]]]",
            "[[[0,0],[1,1],[2,2],[0,0]]]",
            "[[[0,0],[2,2],[0,2],[2,0],[0,0]]]",
            "[[[0,0],[3,0],[3,3],[0,3],[0,0]],[[1,1],[1,1],[1,1],[1,1]]]",
        ] {
            for georel in ["within", "contains", "intersects", "disjoint", "equals", "overlaps"] {
                let query = query(georel, "Polygon", coordinates);
                entities.iter().for_each(|entity| {
                    query.matches(entity);
                });
            }
        }
        query("intersects", "LineString", "[[1,1],[1,1]]").matches(&at(1.0, 1.0));
    }
}
