//! Which registrations a discovery query or availability subscription selects (spec §7.3–§7.4, with FogFlow's
//! bugs fixed): entity ids, `isPattern` regexes and exact types through the shared NGSI selector; every
//! requested attribute registered; restriction scopes evaluated on the registered metadata (`circle`,
//! `polygon`, `simplegeolocation`, `stringQuery`); `nearby` keeps the nearest registrations in distance order
//! (FogFlow lost the order and returned nothing without a limit, §12.18). Pure.

use crate::ngsi::pattern::EntitySelector;
use crate::ngsi::scope::{keep_nearest, ScopeFilter};
use crate::ngsi::v1::{EntityId, Restriction, StatusCode};
use crate::ngsi::v9::{ContextRegistration, ContextRegistrationResponse};
use crate::ngsi::{limits, ParseError};

use super::registry::Registration;

/// A compiled availability query.
#[derive(Debug, Clone)]
pub struct AvailabilityQuery {
    selector: EntitySelector,
    attributes: Vec<String>,
    scopes: ScopeFilter,
}

impl AvailabilityQuery {
    /// Validates and compiles a query's entities, attributes and restriction.
    pub fn compile(
        entities: &[EntityId],
        attributes: &[String],
        restriction: Option<&Restriction>,
    ) -> Result<Self, ParseError> {
        let selector = EntitySelector::compile(entities)?;
        for name in attributes {
            limits::check_name("attribute name", name)?;
        }
        let scopes = ScopeFilter::compile(restriction)?;
        Ok(AvailabilityQuery { selector, attributes: attributes.to_vec(), scopes })
    }

    /// Whether one registration is selected (`nearby` aside: it orders, it does not filter). A named
    /// registration's id pattern (an NGSI-LD `idPattern`, or any id of a type) is selected when it may hold a
    /// selected entity: see [`EntitySelector::may_select_pattern`].
    pub fn matches(&self, registration: &Registration) -> bool {
        let entity = &registration.entity;
        let selected = if entity.is_pattern {
            self.selector.may_select_pattern(&entity.id, &entity.entity_type)
        } else {
            self.selector.matches(&entity.id, &entity.entity_type)
        };
        selected && registration.has_attributes(&self.attributes) && self.scopes.matches(&registration.as_element())
    }

    /// Applies `nearby`, if any, to already selected registrations.
    pub fn order(&self, registrations: &mut Vec<Registration>) {
        if let Some((landmark, limit)) = self.scopes.nearby() {
            let mut elements: Vec<(Registration, crate::ngsi::v1::ContextElement)> = registrations
                .drain(..)
                .map(|r| {
                    let e = r.as_element();
                    (r, e)
                })
                .collect();
            keep_nearest(&mut elements, landmark, limit, |(_, element)| element);
            registrations.extend(elements.into_iter().map(|(r, _)| r));
        }
    }
}

/// Groups registrations by provider, in the order providers first appear, as FogFlow's answers and
/// notifications list them: one `contextRegistration` per provider with its entities.
pub fn group_by_provider(registrations: &[Registration]) -> Vec<ContextRegistrationResponse> {
    let mut groups: Vec<ContextRegistrationResponse> = Vec::new();
    for registration in registrations {
        let entity = registration.entity.clone();
        match groups.iter_mut().find(|g| g.context_registration.providing_application == registration.provider) {
            Some(group) => group.context_registration.entities.push(entity),
            None => groups.push(ContextRegistrationResponse {
                context_registration: ContextRegistration {
                    entities: vec![entity],
                    attributes: Vec::new(),
                    context_metadata: Vec::new(),
                    providing_application: registration.provider.clone(),
                },
                error_code: StatusCode::ok(),
            }),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ngsi::v1::ContextMetadata;

    fn broker(id: &str, latitude: f64, longitude: f64) -> Registration {
        Registration {
            entity: EntityId { id: id.into(), entity_type: "IoTBroker".into(), is_pattern: false },
            attributes: vec![],
            metadata: vec![ContextMetadata {
                name: "location".into(),
                metadata_type: "point".into(),
                value: json!({"latitude": latitude, "longitude": longitude}),
            }],
            provider: format!("http://{id}/ngsi10"),
            ..Registration::default()
        }
    }

    #[test]
    fn nearby_orders_providers_by_distance_with_a_default_limit() {
        let restriction: Restriction = serde_json::from_value(
            json!({"scopes":[{"scopeType":"nearby","scopeValue":{"latitude":35.69,"longitude":139.70}}]}),
        )
        .unwrap();
        let query = AvailabilityQuery::compile(
            &[EntityId { id: String::new(), entity_type: "IoTBroker".into(), is_pattern: true }],
            &[],
            Some(&restriction),
        )
        .unwrap();
        let mut found = vec![broker("far", 48.8, 2.3), broker("near", 35.7, 139.7), broker("mid", 34.7, 135.5)];
        assert!(found.iter().all(|r| query.matches(r)));
        query.order(&mut found);
        let groups = group_by_provider(&found);
        let providers: Vec<&str> =
            groups.iter().map(|g| g.context_registration.providing_application.as_str()).collect();
        assert_eq!(providers, ["http://near/ngsi10", "http://mid/ngsi10", "http://far/ngsi10"]);
    }

    #[test]
    fn a_pattern_registration_is_selected_when_it_may_hold_a_selected_entity() {
        let rooms = Registration {
            entity: EntityId { id: "^urn:room:".into(), entity_type: "Room".into(), is_pattern: true },
            provider: "http://csource/ngsi10".into(),
            registration_id: "csr".into(),
            ..Registration::default()
        };
        let query = |id: &str, entity_type: &str, is_pattern: bool| {
            let entity = EntityId { id: id.into(), entity_type: entity_type.into(), is_pattern };
            AvailabilityQuery::compile(&[entity], &[], None).unwrap().matches(&rooms)
        };
        assert!(query("urn:room:1", "Room", false) && query("urn:room:1", "", false));
        assert!(!query("urn:hall:1", "Room", false), "an exact id is tested against the pattern");
        assert!(query(".*", "Room", true) && query("^urn:", "", true), "patterns are taken to overlap");
        assert!(!query(".*", "Hall", true), "types are exact");
    }
}
