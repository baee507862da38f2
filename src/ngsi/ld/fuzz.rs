//! Property tests of the NGSI-LD codec with a seeded generator: no input makes entity parsing, rendering,
//! editing, `q` or geo-query parsing and matching, subscription parsing, PATCH, selection and notification
//! bodies, @context management bodies or hosted context URLs panic; whatever parses as an entity (one type or
//! several) renders (normalized and concise) and parses back to the same element; appends and merging upserts keep
//! every type once.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

use super::context::Context;
use super::edit::Edit;
use super::entity::parse_entity;
use super::geo::GeoQuery;
use super::geojson::{feature, geometry};
use super::projection::Projection;
use super::query::Query;
use super::render::{render_entity, Format, Rendering};
use crate::ngsi::times::{stamp, EntityTimes, Written};
use crate::ngsi::v1::ContextElement;

const NAMES: &[&str] = &[
    "id",
    "type",
    "temp",
    "a b",
    "",
    "location",
    "x/y",
    "value",
    "object",
    "name",
    "é",
    "observedAt",
    "unitCode",
    "datasetId",
    "schema:x",
    "https://e.org/p",
    "@context",
    "createdAt",
];
const TEXT: &[&str] = &["", "x", "21", "urn:a", "Point", "Property", "Relationship", "2024-01-01T00:00:00Z", ".."];
const KINDS: &[&str] = &["Property", "Relationship", "GeoProperty", "LanguageProperty", "Point", "Polygon", "Thing"];
const Q_TOKENS: &[&str] = &[
    "temp",
    "a",
    ".",
    "[",
    "]",
    "(",
    ")",
    ";",
    "|",
    "==",
    "!=",
    ">",
    "<=",
    "~=",
    "!~=",
    "\"",
    "1",
    "..",
    ",",
    "x",
    "2024-01-01T00:00:00Z",
    "é",
    " ",
    "=",
];

fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items[rng.gen_range(0..items.len())]
}

fn position(rng: &mut StdRng) -> Value {
    json!([rng.gen_range(-200.0..200.0), rng.gen_range(-100.0..100.0)])
}

fn value(rng: &mut StdRng, depth: u32) -> Value {
    match rng.gen_range(0..if depth > 3 { 5 } else { 9 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.gen()),
        2 => json!(rng.gen_range(-200.0..200.0)),
        3 => json!(rng.gen_range(-5i64..5)),
        4 => Value::String(pick(rng, TEXT).to_string()),
        5 => Value::Array((0..rng.gen_range(0..4)).map(|_| value(rng, depth + 1)).collect()),
        6 => json!({"type": "Point", "coordinates": position(rng)}),
        7 => {
            let mut object: Map<String, Value> =
                (0..rng.gen_range(0..3)).map(|_| (pick(rng, NAMES).to_string(), value(rng, depth + 1))).collect();
            object.insert("type".into(), Value::String(pick(rng, KINDS).to_string()));
            let key = pick(rng, &["value", "object", "languageMap", "coordinates"]);
            object.insert(key.into(), value(rng, depth + 1));
            Value::Object(object)
        }
        _ => Value::Object(
            (0..rng.gen_range(0..4)).map(|_| (pick(rng, NAMES).to_string(), value(rng, depth + 1))).collect(),
        ),
    }
}

fn entity(rng: &mut StdRng) -> Value {
    let mut object: Map<String, Value> =
        (0..rng.gen_range(0..5)).map(|_| (pick(rng, NAMES).to_string(), value(rng, 0))).collect();
    if rng.gen_bool(0.9) {
        object.insert("id".into(), Value::String(pick(rng, &["urn:e:1", "e1", "urn:x"]).to_string()));
    }
    if rng.gen_bool(0.9) {
        object.insert("type".into(), entity_type(rng));
    }
    Value::Object(object)
}

/// An entity `type`: mostly a type name, else an array of names (an entity with several types), possibly empty,
/// with repeats or with members that are no names.
fn entity_type(rng: &mut StdRng) -> Value {
    const TYPES: &[&str] = &["Room", "T", "schema:Thing", "https://e.org/T"];
    if rng.gen_bool(0.6) {
        return Value::String(pick(rng, TYPES).to_string());
    }
    let members = (0..rng.gen_range(0..4)).map(|_| match rng.gen_range(0..12) {
        0 => json!(3),
        1 => json!(""),
        _ => Value::String(pick(rng, TYPES).to_string()),
    });
    Value::Array(members.collect())
}

/// The element with its attributes and their metadata in name order (JSON objects do not keep the order of their keys).
fn sorted(mut element: ContextElement) -> ContextElement {
    element.attributes.sort_by(|a, b| a.name.cmp(&b.name));
    element.attributes.iter_mut().for_each(|a| a.metadata.sort_by(|x, y| x.name.cmp(&y.name)));
    element
}

#[test]
fn entities_never_panic_and_round_trip() {
    let mut rng = StdRng::seed_from_u64(7);
    let context = Context::core();
    let (mut parsed, mut projected, mut typed) = (0, 0, 0);
    for _ in 0..20_000 {
        let body = entity(&mut rng);
        let Ok(element) = parse_entity(&context, &body) else { continue };
        parsed += 1;
        if !element.extra_types.is_empty() {
            typed += 1;
        }
        for format in [Format::Normalized, Format::Concise] {
            let rendering = Rendering { format, ..Rendering::default() };
            let rendered = render_entity(&element, &EntityTimes::default(), &rendering);
            let again = parse_entity(&context, &rendered).map(sorted);
            assert_eq!(again, Ok(sorted(element.clone())), "{body} rendered {format:?} as {rendered}");
        }
        let key_values =
            Rendering { format: Format::KeyValues, sys_attrs: true, attrs: vec!["temp".into()], lang: None };
        render_entity(&element, &EntityTimes::entity(i64::MAX, i64::MIN), &key_values);
        // Attribute times stamped by a write, GeoJSON and pick/omit over the rendered entity.
        let times = stamp(None, &element, &[], &Written::All, i64::MAX);
        let stored = EntityTimes::stored(i64::MIN, i64::MAX, &element, &times);
        let with_times = Rendering { format: Format::Concise, sys_attrs: true, ..Rendering::default() };
        let rendered = render_entity(&element, &stored, &with_times);
        let names = (0..rng.gen_range(1..4)).map(|_| pick(&mut rng, NAMES)).collect::<Vec<_>>().join(",");
        let omitted = pick(&mut rng, NAMES);
        if let Ok(projection) = Projection::parse(Some(&names), Some(omitted), 10, |name| name.to_string()) {
            projected += 1;
            feature(projection.apply(rendered), geometry(&element, pick(&mut rng, NAMES)));
        }
        let fragment = value(&mut rng, 0).as_object().cloned().unwrap_or_default();
        let patch = Edit::Patch { name: pick(&mut rng, NAMES).to_string(), fragment, context: Context::core() };
        let _ = patch.apply("urn:e:1", Some(&element));
        // Types added by an append, or by an upsert merging another entity into this one.
        let types = (0..rng.gen_range(0..3)).map(|_| pick(&mut rng, &["Room", "T", "U"]).to_string()).collect();
        let append = Edit::Append { attributes: Vec::new(), no_overwrite: false, types };
        if let Ok(edited) = append.apply("urn:e:1", Some(&element)) {
            assert!(element.types().all(|t| edited.element.has_type(t)), "an append drops no type");
        }
        if let Ok(other) = parse_entity(&context, &entity(&mut rng)) {
            let merged = Edit::Upsert { element: other.clone(), replace: false }.apply("urn:e:1", Some(&element));
            let merged = merged.map(|edited| edited.element).unwrap_or_default();
            assert!(element.types().chain(other.types()).all(|t| merged.has_type(t)), "{element:?} {other:?}");
            let mut types: Vec<&str> = merged.types().collect();
            types.sort_unstable();
            types.dedup();
            assert_eq!(types.len(), merged.types().count(), "no type twice");
        }
    }
    assert!(parsed > 1000, "only {parsed} entities parsed");
    assert!(typed > 200, "only {typed} entities with several types parsed");
    assert!(projected > 500, "only {projected} pick/omit projections parsed");
}

#[test]
fn queries_never_panic() {
    let mut rng = StdRng::seed_from_u64(11);
    let context = Context::core();
    let elements: Vec<_> = (0..200).filter_map(|_| parse_entity(&context, &entity(&mut rng)).ok()).collect::<Vec<_>>();
    for _ in 0..20_000 {
        let q: String = (0..rng.gen_range(0..12)).map(|_| pick(&mut rng, Q_TOKENS)).collect();
        if let Ok(query) = Query::parse(&q, &context) {
            elements.iter().for_each(|element| {
                query.matches(element);
            });
        }
    }
    for _ in 0..2_000 {
        let georel = pick(
            &mut rng,
            &[
                "near;maxDistance==1000",
                "near;minDistance==5",
                "within",
                "contains",
                "intersects",
                "disjoint",
                "equals",
                "overlaps",
                "near",
            ],
        );
        let geometry = pick(&mut rng, &["Point", "LineString", "Polygon", "MultiPoint", "Circle"]);
        let coordinates = match rng.gen_range(0..4) {
            0 => position(&mut rng).to_string(),
            1 => json!([position(&mut rng), position(&mut rng)]).to_string(),
            2 => {
                let first = position(&mut rng);
                json!([[first, position(&mut rng), position(&mut rng), first]]).to_string()
            }
            _ => pick(&mut rng, TEXT).to_string(),
        };
        if let Ok(Some(query)) = GeoQuery::parse(Some(georel), Some(geometry), Some(&coordinates), "location".into()) {
            elements.iter().for_each(|element| {
                query.matches(element);
                query.distance(element);
            });
        }
    }
}

const SUBSCRIPTION_KEYS: &[&str] = &[
    "id",
    "type",
    "entities",
    "watchedAttributes",
    "q",
    "geoQ",
    "isActive",
    "expiresAt",
    "throttling",
    "timeInterval",
    "description",
    "notification",
    "notificationTrigger",
    "@context",
    "bogus",
];

/// A subscription-like body: random members, often of the right shape.
fn subscription(rng: &mut StdRng) -> Value {
    let mut object = Map::new();
    let count = rng.gen_range(0..5);
    let keys = ["notification", "entities"].into_iter().chain((0..count).map(|_| pick(rng, SUBSCRIPTION_KEYS)));
    for key in keys.collect::<Vec<_>>() {
        let member = match (key, rng.gen_bool(0.7)) {
            ("entities", true) => {
                json!([{pick(rng, &["id", "idPattern", "type"]): pick(rng, &["urn:e:1", "Room", ".*", "("])}])
            }
            ("watchedAttributes", true) => json!([pick(rng, NAMES)]),
            ("q", true) => Value::String((0..rng.gen_range(0..6)).map(|_| pick(rng, Q_TOKENS)).collect()),
            ("geoQ", true) => {
                json!({"georel": "near;maxDistance==1000", "geometry": "Point", "coordinates": position(rng)})
            }
            ("expiresAt", true) => json!(pick(rng, TEXT)),
            ("throttling", true) => json!(rng.gen_range(-2.0..5.0)),
            ("notificationTrigger", true) => json!([pick(
                rng,
                &[
                    "entityCreated",
                    "entityDeleted",
                    "attributeCreated",
                    "attributeUpdated",
                    "attributeDeleted",
                    "entityUpdated",
                    "x"
                ]
            )]),
            ("notification", true) => json!({"attributes": [pick(rng, NAMES)],
                "format": pick(rng, &["normalized", "keyValues", "concise", "x"]),
                "showChanges": rng.gen_bool(0.5), "sysAttrs": rng.gen_bool(0.5),
                "endpoint": {"uri": pick(rng, &["http://127.0.0.1:1/n", "urn:a", "x"]),
                    "accept": pick(rng, &["application/json", "application/ld+json", "text/plain"])}}),
            _ => value(rng, 0),
        };
        object.insert(key.to_string(), member);
    }
    Value::Object(object)
}

#[test]
fn subscriptions_never_panic() {
    use super::subscription::render::{render_subscription, Shown};
    use super::subscription::{notification_body, Change, LdSubscription};
    let mut rng = StdRng::seed_from_u64(13);
    let context = Context::core();
    let elements: Vec<_> = (0..50).filter_map(|_| parse_entity(&context, &entity(&mut rng)).ok()).collect();
    let (mut parsed, mut noticed) = (0, 0);
    for _ in 0..20_000 {
        let body = subscription(&mut rng);
        let raw = body.get("@context").cloned().unwrap_or(Value::Null);
        let Ok((_, parsed_subscription)) = LdSubscription::parse(&body, &context, raw) else { continue };
        parsed += 1;
        let Ok(selection) = parsed_subscription.compile() else { panic!("{body} parsed but does not compile") };
        let projected: Vec<_> = elements
            .iter()
            .filter(|element| selection.selects(element))
            .map(|element| parsed_subscription.project(element))
            .collect();
        notification_body(
            &parsed_subscription,
            "urn:s",
            "urn:n",
            i64::MAX,
            projected.iter().map(|e| (e, EntityTimes::default(), None)),
        );
        // A change between two random states (or a creation / deletion) and what its notification adds.
        let state = |rng: &mut StdRng| rng.gen_bool(0.8).then(|| &elements[rng.gen_range(0..elements.len())]);
        let (before, after) = (state(&mut rng), state(&mut rng));
        let touched: Vec<String> = (0..rng.gen_range(0..3)).map(|_| pick(&mut rng, NAMES).to_string()).collect();
        let change = Change { before, after, touched: &touched };
        if parsed_subscription.is_triggered_by(&change) {
            let notice = parsed_subscription.notice(&change, 1, 2, 3);
            noticed += usize::from(notice.is_some());
            let shown = after.or(before).map(|element| parsed_subscription.project(element)).unwrap_or_default();
            let items = [(&shown, EntityTimes::entity(1, 2), notice.as_deref())];
            notification_body(&parsed_subscription, "urn:s", "urn:n", 0, items.into_iter());
        }
        render_subscription("urn:s", &parsed_subscription, &Shown::default(), i64::MIN, &Default::default());
        let _ = parsed_subscription.patch(&subscription(&mut rng), &context, Value::Null);
    }
    assert!(parsed > 300, "only {parsed} subscriptions parsed");
    assert!(noticed > 50, "only {noticed} notifications with a notice");
}

#[test]
fn hosted_context_bodies_and_urls_never_panic() {
    use super::context::hosted::{hosted_id, parse_add};
    let mut rng = StdRng::seed_from_u64(17);
    let urls = ["https://e.org/c.jsonld", "http://h/ngsi-ld/v1/jsonldContexts/a", "ftp://x", "", "urn:x"];
    let (mut added, mut refused) = (0, 0);
    for _ in 0..20_000 {
        let context = match rng.gen_range(0..4) {
            0 => value(&mut rng, 0),
            1 => Value::Array(
                (0..rng.gen_range(0..4))
                    .map(|_| if rng.gen_bool(0.5) { json!(pick(&mut rng, &urls)) } else { value(&mut rng, 2) })
                    .collect(),
            ),
            _ => Value::Object(
                (0..rng.gen_range(0..4))
                    .map(|_| (pick(&mut rng, NAMES).to_string(), json!(pick(&mut rng, &urls))))
                    .collect(),
            ),
        };
        let body = if rng.gen_bool(0.9) { json!({"@context": context}) } else { context };
        match parse_add(&body) {
            // What is accepted is a context the resolver reads once its URLs are resolved.
            Ok(accepted) => {
                added += 1;
                assert!(super::context::remote::entries(&accepted).is_ok(), "{accepted}");
            }
            Err(_) => refused += 1,
        }
        let mut url = pick(&mut rng, &urls).to_string();
        url.push_str(pick(&mut rng, NAMES));
        if let Some(id) = hosted_id(&url) {
            assert!(url.ends_with(id) && !id.is_empty(), "{url}");
        }
    }
    assert!(added > 1_000 && refused > 1_000, "added {added}, refused {refused}");
}

#[test]
fn type_selections_never_panic_and_match_only_named_types() {
    use super::type_expr::TypeExpr;
    let mut rng = StdRng::seed_from_u64(19);
    let pieces = ["A", "B", "Shop", "(", ")", ";", ",", "|", " ", "é", "ngsi-ld:x", "https://e.org/T", "\u{1}"];
    let context = Context::core();
    let mut parsed = 0;
    for _ in 0..20_000 {
        let text: String = (0..rng.gen_range(0..14)).map(|_| pick(&mut rng, &pieces)).collect();
        let Ok(expr) = TypeExpr::parse(&text, &context) else { continue };
        parsed += 1;
        let names = expr.names();
        assert!(!names.is_empty(), "{text:?}");
        // An entity with none of the named types is never selected; one with all of them always is.
        assert!(!expr.matches(&|_: &str| false), "{text:?}");
        assert!(expr.matches(&|name: &str| names.iter().any(|n| n == name)), "{text:?}");
    }
    assert!(parsed > 1000, "only {parsed} selections parsed");
}
