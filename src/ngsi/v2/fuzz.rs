//! Property tests of the NGSIv2 codec with a seeded generator (no extra dependency): no input makes parsing,
//! rendering, editing, `q` or geo parsing panic, and whatever parses as an entity renders and parses back to the
//! same element.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

use super::geo::GeoQuery;
use super::query::Query;
use super::{parse_attributes, parse_entity, render_entity, Edit, Format, IfExists};

const NAMES: &[&str] = &["id", "type", "temp", "a b", "", "location", "x/y", "metadata", "value", "name", "é"];
const TEXT: &[&str] = &["", "x", "21", "a=b", "Point", "geo:json", "49.4, 8.6", "true", "null", "..", "'q'"];

fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items[rng.gen_range(0..items.len())]
}

fn value(rng: &mut StdRng, depth: u32) -> Value {
    match rng.gen_range(0..if depth > 3 { 5 } else { 8 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.gen()),
        2 => json!(rng.gen_range(-200.0..200.0)),
        3 => json!(rng.gen_range(-5i64..5)),
        4 => Value::String(pick(rng, TEXT).to_string()),
        5 => Value::Array((0..rng.gen_range(0..4)).map(|_| value(rng, depth + 1)).collect()),
        6 => geo(rng),
        _ => Value::Object(
            (0..rng.gen_range(0..4)).map(|_| (pick(rng, NAMES).to_string(), value(rng, depth + 1))).collect(),
        ),
    }
}

fn geo(rng: &mut StdRng) -> Value {
    json!({"type": pick(rng, &["geo:json", "geo:point", "point", "Text"]),
           "value": {"type": "Point", "coordinates": [rng.gen_range(-200.0..200.0), rng.gen_range(-100.0..100.0)]}})
}

fn entity(rng: &mut StdRng) -> Value {
    let mut members = Map::new();
    if rng.gen_bool(0.9) {
        members.insert("id".into(), Value::String(format!("e{}", rng.gen_range(0..3))));
    }
    for _ in 0..rng.gen_range(0..5) {
        let name = pick(rng, NAMES).to_string();
        let attribute = if rng.gen_bool(0.7) {
            let mut attribute = Map::new();
            if rng.gen_bool(0.5) {
                attribute.insert("type".into(), Value::String(pick(rng, TEXT).to_string()));
            }
            attribute.insert("value".into(), value(rng, 0));
            if rng.gen_bool(0.3) {
                attribute.insert("metadata".into(), value(rng, 2));
            }
            Value::Object(attribute)
        } else {
            value(rng, 0)
        };
        members.insert(name, attribute);
    }
    Value::Object(members)
}

#[test]
fn entities_never_panic_and_round_trip() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut parsed = 0;
    for _ in 0..3000 {
        let body = entity(&mut rng);
        let key_values = rng.gen_bool(0.3);
        let Ok(element) = parse_entity(&body, key_values) else { continue };
        parsed += 1;
        for format in [Format::Normalized, Format::KeyValues, Format::Values] {
            render_entity(&element, &[], format);
        }
        let normalized = render_entity(&element, &[], Format::Normalized);
        assert_eq!(parse_entity(&normalized, false).as_ref(), Ok(&element), "{body} → {normalized}");
        let other = entity(&mut rng);
        let attributes = parse_attributes(&other, key_values).unwrap_or_default();
        for edit in [
            Edit::Create { element: element.clone(), if_exists: IfExists::Append },
            Edit::Append { attributes: attributes.clone(), strict: rng.gen() },
            Edit::Update(attributes.clone()),
            Edit::Replace(attributes.clone()),
            Edit::SetValue { name: pick(&mut rng, NAMES).into(), value: value(&mut rng, 0) },
            Edit::DeleteAttributes(vec![pick(&mut rng, NAMES).into()]),
        ] {
            let _ = edit.apply(Some(&element), None);
        }
    }
    assert!(parsed > 300, "the generator should produce valid entities too ({parsed})");
}

#[test]
fn queries_never_panic() {
    let alphabet = ['a', '=', '!', '<', '>', '~', ':', '.', ',', ';', '\'', '1', '(', ' ', '^'];
    let mut rng = StdRng::seed_from_u64(11);
    let target = parse_entity(&json!({"id":"e","a":{"value":1},"b":{"value":"a1"}}), false).unwrap();
    for _ in 0..20_000 {
        let length = rng.gen_range(0..10);
        let q: String = (0..length).map(|_| alphabet[rng.gen_range(0..alphabet.len())]).collect();
        if let Ok(query) = Query::parse(&q) {
            query.matches(&target);
        }
        let coords: String = (0..length).map(|_| ['1', '-', '.', ',', ';', '9'][rng.gen_range(0..6)]).collect();
        for (georel, geometry) in [("near;maxDistance:1", "point"), ("coveredBy", "polygon"), ("intersects", "line")] {
            if let Ok(Some(geo)) = GeoQuery::parse(Some(georel), Some(geometry), Some(&coords)) {
                geo.matches(&target);
            }
        }
    }
}
