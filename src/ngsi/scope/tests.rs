//! Tests of the restriction scopes.

use serde_json::json;

use super::*;
use crate::ngsi::v1::{ContextMetadata, EntityId};

fn located(id: &str, latitude: f64, longitude: f64) -> ContextElement {
    ContextElement {
        entity_id: EntityId { id: id.into(), ..EntityId::default() },
        attributes: vec![],
        domain_metadata: vec![
            ContextMetadata {
                name: "location".into(),
                metadata_type: "point".into(),
                value: json!({"latitude": latitude, "longitude": longitude}),
            },
            ContextMetadata { name: "city".into(), metadata_type: "string".into(), value: json!("Heidelberg") },
            ContextMetadata { name: "floor".into(), metadata_type: "integer".into(), value: json!(3) },
        ],
        extra_types: Vec::new(),
    }
}

fn filter(scopes: serde_json::Value) -> Result<ScopeFilter, ParseError> {
    let restriction: Restriction = serde_json::from_value(json!({ "scopes": scopes })).unwrap();
    ScopeFilter::compile(Some(&restriction))
}

#[test]
fn circle_uses_haversine_metres() {
    let heidelberg = located("h", 49.406393, 8.684208);
    let near = filter(
        json!([{"scopeType":"circle","scopeValue":{"centerLatitude":49.40,"centerLongitude":8.68,"radius":2000}}]),
    )
    .unwrap();
    assert!(near.matches(&heidelberg));
    let tight = filter(
        json!([{"scopeType":"Circle","scopeValue":{"centerLatitude":49.40,"centerLongitude":8.68,"radius":100}}]),
    )
    .unwrap();
    assert!(!tight.matches(&heidelberg));
    let nowhere = ContextElement::default();
    assert!(!near.matches(&nowhere), "an entity without a position is not inside a circle");
}

#[test]
fn polygon_and_rectangle_contain_points() {
    let inside = located("in", 35.0, 139.0);
    let outside = located("out", 10.0, 10.0);
    let polygon = filter(json!([{"scopeType":"polygon","scopeValue":{"vertices":[
        {"latitude":34.0,"longitude":138.0},{"latitude":36.0,"longitude":138.0},
        {"latitude":36.0,"longitude":140.0},{"latitude":34.0,"longitude":140.0}]}}]))
    .unwrap();
    assert!(polygon.matches(&inside));
    assert!(!polygon.matches(&outside));
    let rectangle =
        filter(json!([{"scopeType":"simplegeolocation","scopeValue":{"nw_Corner":"36,138","se_Corner":"34,140"}}]))
            .unwrap();
    assert!(rectangle.matches(&inside));
    assert!(!rectangle.matches(&outside));
}

#[test]
fn string_query_compares_metadata_text() {
    let entity = located("e", 1.0, 1.0);
    assert!(filter(json!([{"scopeType":"stringQuery","scopeValue":"city=Heidelberg;floor=3"}]))
        .unwrap()
        .matches(&entity));
    assert!(!filter(json!([{"scopeType":"stringQuery","scopeValue":"city=Tokyo"}])).unwrap().matches(&entity));
}

#[test]
fn nearby_keeps_the_nearest_in_order() {
    let scopes =
        filter(json!([{"scopeType":"nearby","scopeValue":{"latitude":35.69,"longitude":139.70,"limit":2}}])).unwrap();
    let (landmark, limit) = scopes.nearby().unwrap();
    assert_eq!(limit, 2);
    let mut items = vec![located("far", 10.0, 10.0), located("near", 35.7, 139.7), located("mid", 40.0, 139.0)];
    keep_nearest(&mut items, landmark, limit, |item| item);
    let ids: Vec<&str> = items.iter().map(|item| item.entity_id.id.as_str()).collect();
    assert_eq!(ids, ["near", "mid"]);
    let defaulted = filter(json!([{"scopeType":"nearby","scopeValue":{"latitude":1,"longitude":1}}])).unwrap();
    assert_eq!(defaulted.nearby().unwrap().1, DEFAULT_NEARBY_LIMIT);
}

#[test]
fn near_modifiers_take_either_separator_and_need_a_distance() {
    assert_eq!(near_distances(&["maxDistance==2000"], "==").unwrap(), (Some(2000.0), None));
    assert_eq!(near_distances(&["minDistance:5", "maxDistance:10"], ":").unwrap(), (Some(10.0), Some(5.0)));
    assert!(near_distances(&[], ":").is_err());
    assert!(near_distances(&["maxDistance:-1"], ":").is_err());
    assert!(near_distances(&["maxDistance==1"], ":").is_err());
}

#[test]
fn invalid_scopes_are_rejected_not_panicking() {
    for bad in [
        json!([{"scopeType":"circle","scopeValue":{"centerLatitude":91,"centerLongitude":0,"radius":1}}]),
        json!([{"scopeType":"circle","scopeValue":{"centerLatitude":0,"centerLongitude":0,"radius":-1}}]),
        json!([{"scopeType":"circle","scopeValue":"here"}]),
        json!([{"scopeType":"polygon","scopeValue":{"vertices":[{"latitude":1,"longitude":1}]}}]),
        json!([{"scopeType":"simplegeolocation","scopeValue":{"nw_Corner":"a,b","se_Corner":"1,1"}}]),
        json!([{"scopeType":"stringQuery","scopeValue":5}]),
        json!([{"scopeType":"stringQuery","scopeValue":"novalue"}]),
        json!([{"scopeType":"teleport","scopeValue":{}}]),
        json!([{"scopeType":"nearby","scopeValue":{"latitude":1,"longitude":1,"limit":-3}}]),
    ] {
        assert!(filter(bad.clone()).is_err(), "{bad} should be rejected");
    }
}

#[test]
fn geo_scopes_test_the_location_when_there_is_one() {
    let entity = |metadata: Value| -> ContextElement {
        serde_json::from_value(json!({"entityId":{"id":"e"},"attributes":[],"domainMetadata":metadata})).unwrap()
    };
    let heidelberg = json!({"name":"location","type":"point","value":{"latitude":49.4,"longitude":8.68}});
    let tokyo = json!({"name":"warehouse","type":"point","value":{"latitude":35.69,"longitude":139.7}});
    let circle = filter(
        json!([{"scopeType":"circle","scopeValue":{"centerLatitude":49.4,"centerLongitude":8.68,"radius":1000}}]),
    )
    .unwrap();
    assert!(circle.matches(&entity(json!([heidelberg, tokyo]))), "the other point is not the location");
    assert!(!circle.matches(&entity(json!([tokyo]))), "without a location, the other positions count");
}

#[test]
fn the_ld_restriction_is_a_geo_query_in_metres_and_geojson_order() {
    let restriction = |geometry: &str, geo_rel: &str, coordinates: Value| -> Result<ScopeFilter, ParseError> {
        let restriction: Restriction = serde_json::from_value(
            json!({"restrictionType":"ld","geometry":geometry,"geoRel":geo_rel,"cordinates":coordinates}),
        )
        .unwrap();
        ScopeFilter::compile(Some(&restriction))
    };
    let paris: ContextElement = serde_json::from_value(json!({"entityId":{"id":"p"},"attributes":[],
        "domainMetadata":[{"name":"location","type":"point","value":{"latitude":48.8566,"longitude":2.3522}}]}))
    .unwrap();
    assert!(restriction("point", "near;maxDistance==1000", json!([2.3522, 48.8566])).unwrap().matches(&paris));
    assert!(!restriction("point", "near;maxDistance==1000", json!([48.8566, 2.3522])).unwrap().matches(&paris));
    assert!(restriction("point", "", json!(null)).unwrap().is_empty(), "no georel selects everything");
    assert!(restriction("circle", "within", json!([1, 2])).is_err());
    let other: Restriction = serde_json::from_value(json!({"restrictionType":"v9"})).unwrap();
    assert!(ScopeFilter::compile(Some(&other)).is_err());
}
