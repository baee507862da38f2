//! The `location` domain metadata derived from an entity's geo attribute, so that NGSI10 scopes and v2 geo
//! queries see positions written through v2: a `geo:json` Point, a `geo:point` `"lat, lon"` or a `point`
//! `{latitude, longitude}` attribute (the one named `location` first) sets a `location` metadata of type
//! `point`; it goes when the last geo attribute goes.

use serde_json::Value;

use super::LOCATION;
use crate::ngsi::v1::{ContextAttribute, ContextElement, ContextMetadata};

/// The position of a geo attribute as `{latitude, longitude}`: a `geo:json` Point, a `geo:point` `"lat, lon"`
/// string, or a `point` `{latitude, longitude}`.
fn geo_position(attribute: &ContextAttribute) -> Option<(f64, f64)> {
    let valid = |latitude: f64, longitude: f64| {
        ((-90.0..=90.0).contains(&latitude) && (-180.0..=180.0).contains(&longitude)).then_some((latitude, longitude))
    };
    let value = &attribute.value;
    match attribute.attribute_type.as_str() {
        "geo:json" if value.get("type").and_then(Value::as_str) == Some("Point") => {
            match value.get("coordinates")?.as_array()?.as_slice() {
                [longitude, latitude] => valid(latitude.as_f64()?, longitude.as_f64()?),
                _ => None,
            }
        }
        "geo:point" => {
            let (latitude, longitude) = value.as_str()?.split_once(',')?;
            valid(latitude.trim().parse().ok()?, longitude.trim().parse().ok()?)
        }
        "point" => valid(value.get("latitude")?.as_f64()?, value.get("longitude")?.as_f64()?),
        _ => None,
    }
}

/// The entity's geo attribute (the one named `location` first) and its position.
pub(super) fn geo_attribute(element: &ContextElement) -> Option<(f64, f64)> {
    let named = element.attributes.iter().find(|a| a.name == LOCATION).and_then(geo_position);
    named.or_else(|| element.attributes.iter().find_map(geo_position))
}

/// Keeps the `location` domain metadata (type `point`) in step with the entity's geo attribute, so NGSI10
/// scopes see v2 positions: set from the geo attribute when there is one; removed when the entity had one
/// before this edit and has none now.
pub fn refresh_location(before: Option<&ContextElement>, element: &mut ContextElement) {
    match geo_attribute(element) {
        Some((latitude, longitude)) => {
            let point = ContextMetadata {
                name: LOCATION.into(),
                metadata_type: "point".into(),
                value: serde_json::json!({ "latitude": latitude, "longitude": longitude }),
            };
            match element.domain_metadata.iter_mut().find(|m| m.name == LOCATION) {
                Some(existing) => *existing = point,
                None => element.domain_metadata.push(point),
            }
        }
        None if before.and_then(geo_attribute).is_some() => element.domain_metadata.retain(|m| m.name != LOCATION),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::ngsi::v2::{parse_entity, view};

    #[test]
    fn geo_attributes_set_the_location_point() {
        let element = parse_entity(
            &json!({"id":"e","location":{"type":"geo:json","value":{"type":"Point","coordinates":[8.68,49.4]}}}),
            false,
        )
        .unwrap();
        let location = &element.domain_metadata[0];
        assert_eq!((location.name.as_str(), location.metadata_type.as_str()), ("location", "point"));
        assert_eq!(location.value, json!({"latitude":49.4,"longitude":8.68}));
        assert_eq!(view(&element).len(), 1, "the derived point is hidden behind the geo attribute");
        let point = parse_entity(&json!({"id":"e","pos":{"type":"geo:point","value":"49.4, 8.68"}}), false).unwrap();
        assert_eq!(point.domain_metadata[0].value, json!({"latitude":49.4,"longitude":8.68}));
        let outside = parse_entity(&json!({"id":"e","pos":{"type":"geo:point","value":"99, 8"}}), false).unwrap();
        assert!(outside.domain_metadata.is_empty());
    }
}
