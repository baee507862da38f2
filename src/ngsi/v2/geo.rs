//! Orion's geographical queries (`georel`, `geometry`, `coords` of `GET /v2/entities` and of `/v2/op/query`
//! `expression`) over an entity's positions — its `point` domain metadata, which v2 geo attributes also set (see
//! [`super::refresh_location`]). `georel` is `near;maxDistance:<m>` and/or `;minDistance:<m>` (with a `point`),
//! `coveredBy` (a `polygon` or `box`), `intersects`, `disjoint`, `equals`; `coords` are `lat,lon` pairs separated
//! by `;`. An entity without a position matches no geo query. Distances are haversine metres (`geo` crate).

use geo::{Coord, Distance, Haversine, Intersects, LineString, Point, Polygon, Rect};

use crate::ngsi::limits::MAX_POLYGON_VERTICES;
use crate::ngsi::scope::entity_positions;
use crate::ngsi::v1::ContextElement;
use crate::ngsi::ParseError;

/// The reference geometry of a geo query.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    Point(Point<f64>),
    Line(LineString<f64>),
    Polygon(Polygon<f64>),
    Box(Rect<f64>),
}

/// The relation asked for.
#[derive(Debug, Clone, PartialEq)]
enum Relation {
    Near { max: Option<f64>, min: Option<f64> },
    CoveredBy,
    Intersects,
    Disjoint,
    Equals,
}

/// A compiled geo query.
#[derive(Debug, Clone, PartialEq)]
pub struct GeoQuery {
    relation: Relation,
    shape: Shape,
}

fn coordinates(coords: &str) -> Result<Vec<Coord<f64>>, ParseError> {
    let pairs: Vec<&str> = coords.split(';').collect();
    if pairs.len() > MAX_POLYGON_VERTICES {
        return Err(ParseError::new(format!("coords has more than {MAX_POLYGON_VERTICES} points")));
    }
    pairs
        .into_iter()
        .map(|pair| {
            let bad = || ParseError::new(format!("invalid coords `{pair}` (expected latitude,longitude)"));
            let (latitude, longitude) = pair.split_once(',').ok_or_else(bad)?;
            let latitude: f64 = latitude.trim().parse().map_err(|_| bad())?;
            let longitude: f64 = longitude.trim().parse().map_err(|_| bad())?;
            if !(-90.0..=90.0).contains(&latitude) || !(-180.0..=180.0).contains(&longitude) {
                return Err(bad());
            }
            Ok(Coord { x: longitude, y: latitude })
        })
        .collect()
}

fn shape(geometry: &str, coords: &str) -> Result<Shape, ParseError> {
    let points = coordinates(coords)?;
    match (geometry, points.as_slice()) {
        ("point", [point]) => Ok(Shape::Point((*point).into())),
        ("line", [_, _, ..]) => Ok(Shape::Line(LineString::new(points))),
        ("box", [low, high]) => Ok(Shape::Box(Rect::new(*low, *high))),
        ("polygon", [first, .., last]) if points.len() >= 4 && first == last => {
            Ok(Shape::Polygon(Polygon::new(LineString::new(points), Vec::new())))
        }
        ("point" | "line" | "box" | "polygon", _) => {
            Err(ParseError::new(format!("wrong number of coords for geometry {geometry} (polygons must be closed)")))
        }
        (other, _) => Err(ParseError::new(format!("unknown geometry `{other}` (expected point, line, polygon, box)"))),
    }
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
            "coveredBy" => Ok(Relation::CoveredBy),
            "intersects" => Ok(Relation::Intersects),
            "disjoint" => Ok(Relation::Disjoint),
            "equals" => Ok(Relation::Equals),
            other => Err(ParseError::new(format!("unknown georel `{other}`"))),
        };
    }
    let (max, min) = crate::ngsi::scope::near_distances(&modifiers, ":")?;
    Ok(Relation::Near { max, min })
}

impl GeoQuery {
    /// Compiles `georel`, `geometry` and `coords`; all three are needed together.
    pub fn parse(
        georel: Option<&str>,
        geometry: Option<&str>,
        coords: Option<&str>,
    ) -> Result<Option<Self>, ParseError> {
        let (georel, geometry, coords) = match (georel, geometry, coords) {
            (None, None, None) => return Ok(None),
            (Some(georel), Some(geometry), Some(coords)) => (georel, geometry, coords),
            _ => return Err(ParseError::new("georel, geometry and coords must be given together")),
        };
        let relation = relation(georel)?;
        let shape = shape(geometry, coords)?;
        match (&relation, &shape) {
            (Relation::Near { .. } | Relation::Equals, Shape::Point(_)) => {}
            (Relation::Near { .. }, _) => return Err(ParseError::new("georel near needs geometry point")),
            (Relation::CoveredBy, Shape::Point(_) | Shape::Line(_)) => {
                return Err(ParseError::new("georel coveredBy needs geometry polygon or box"))
            }
            _ => {}
        }
        Ok(Some(GeoQuery { relation, shape }))
    }

    fn holds(&self, position: Point<f64>) -> bool {
        let intersects = || match &self.shape {
            Shape::Point(point) => *point == position,
            Shape::Line(line) => line.intersects(&position),
            Shape::Polygon(polygon) => polygon.intersects(&position),
            Shape::Box(rect) => rect.intersects(&position),
        };
        match &self.relation {
            Relation::Near { max, min } => {
                let Shape::Point(point) = &self.shape else { return false };
                let metres = Haversine::distance(*point, position);
                max.is_none_or(|max| metres <= max) && min.is_none_or(|min| metres >= min)
            }
            Relation::CoveredBy | Relation::Intersects | Relation::Equals => intersects(),
            Relation::Disjoint => !intersects(),
        }
    }

    /// Whether the entity has a position and every position satisfies the query.
    pub fn matches(&self, element: &ContextElement) -> bool {
        let positions = entity_positions(element);
        !positions.is_empty() && positions.into_iter().all(|position| self.holds(position))
    }

    /// For `near`, the entity's distance to the reference point (results are ordered by it, nearest first).
    pub fn distance(&self, element: &ContextElement) -> Option<f64> {
        let (Relation::Near { .. }, Shape::Point(point)) = (&self.relation, &self.shape) else { return None };
        entity_positions(element).into_iter().map(|position| Haversine::distance(*point, position)).reduce(f64::min)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ngsi::v2::parse_entity;

    fn at(latitude: f64, longitude: f64) -> ContextElement {
        let location = json!({"type":"geo:json","value":{"type":"Point","coordinates":[longitude, latitude]}});
        parse_entity(&json!({"id":"e","location":location}), false).unwrap()
    }

    fn query(georel: &str, geometry: &str, coords: &str) -> GeoQuery {
        GeoQuery::parse(Some(georel), Some(geometry), Some(coords)).unwrap().unwrap()
    }

    #[test]
    fn relations_hold_on_positions() {
        let heidelberg = at(49.4064, 8.6842);
        let mannheim = at(49.4875, 8.4660);
        let near = query("near;maxDistance:5000", "point", "49.41,8.68");
        assert!(near.matches(&heidelberg) && !near.matches(&mannheim));
        assert!(near.distance(&heidelberg).is_some_and(|d| d < 1000.0));
        let far = query("near;minDistance:5000", "point", "49.41,8.68");
        assert!(!far.matches(&heidelberg) && far.matches(&mannheim));
        let area = query("coveredBy", "polygon", "49.3,8.6;49.5,8.6;49.5,8.8;49.3,8.8;49.3,8.6");
        assert!(area.matches(&heidelberg) && !area.matches(&mannheim));
        let rect = query("coveredBy", "box", "49.3,8.6;49.5,8.8");
        assert!(rect.matches(&heidelberg) && !rect.matches(&mannheim));
        assert!(query("disjoint", "box", "49.3,8.6;49.5,8.8").matches(&mannheim));
        assert!(query("equals", "point", "49.4064,8.6842").matches(&heidelberg));
        assert!(!near.matches(&parse_entity(&json!({"id":"nowhere"}), false).unwrap()));
    }

    #[test]
    fn bad_geo_queries_are_refused() {
        assert_eq!(GeoQuery::parse(None, None, None), Ok(None));
        for (georel, geometry, coords) in [
            ("near", "point", "1,2"),
            ("near;maxDistance:-1", "point", "1,2"),
            ("near;maxDistance:10", "box", "1,2;3,4"),
            ("coveredBy", "point", "1,2"),
            ("coveredBy", "polygon", "1,2;3,4;5,6"),
            ("coveredBy", "polygon", "1,2;3,4;5,6;7,8"),
            ("within", "point", "1,2"),
            ("intersects", "circle", "1,2"),
            ("intersects", "point", "91,2"),
            ("intersects", "point", "1;2"),
            ("equals;x:1", "point", "1,2"),
        ] {
            assert!(
                GeoQuery::parse(Some(georel), Some(geometry), Some(coords)).is_err(),
                "{georel} {geometry} {coords}"
            );
        }
        assert!(GeoQuery::parse(Some("near;maxDistance:1"), Some("point"), None).is_err());
    }
}
