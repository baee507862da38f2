//! NGSI-LD (ETSI GS CIM 009) codec over the NGSI10 data model: `@context` handling with the embedded core context
//! ([`context`]), entities ↔ stored elements ([`entity`], [`render`]), their `pick`/`omit` projection
//! ([`projection`]) and GeoJSON representation ([`geojson`]), the entity edits of the API ([`edit`]),
//! the `q` query language ([`query`]), geo-queries ([`geo`]), the `lang` language filter ([`lang`]),
//! multi-attributes ([`multi`]), subscriptions with their notifications
//! ([`subscription`]) and context source registrations ([`csource`]).
//!
//! Pure: no I/O, no HTTP. Client input is validated into typed values with a [`ParseError`] (the API layer makes
//! it a `BadRequestData` ProblemDetails).

pub mod context;
pub mod csource;
pub mod edit;
pub mod entity;
#[cfg(test)]
mod fuzz;
pub mod geo;
pub mod geojson;
pub mod lang;
pub mod multi;
pub mod projection;
pub mod query;
pub mod render;
pub mod subscription;
pub mod type_expr;

use super::limits::MAX_ID_LEN;
use super::ParseError;

/// The GeoProperty that carries an entity's position, and the NGSI10 domain metadata derived from it.
pub const LOCATION: &str = "location";
/// The `observedAt` sub-property.
pub const OBSERVED_AT: &str = "observedAt";
/// The `unitCode` sub-property.
pub const UNIT_CODE: &str = "unitCode";
/// The `datasetId` sub-property.
pub const DATASET_ID: &str = "datasetId";

/// Checks that `value` is a URI (`scheme:rest`, RFC 3986 scheme, no whitespace or control characters) of at
/// most [`MAX_ID_LEN`] characters, as NGSI-LD requires of entity ids, relationship objects and dataset ids.
pub fn check_uri(what: &str, value: &str) -> Result<(), ParseError> {
    let length = if value.is_ascii() { value.len() } else { value.chars().count() };
    if length > MAX_ID_LEN {
        return Err(ParseError::new(format!("{what} is longer than {MAX_ID_LEN} characters")));
    }
    let valid = match value.split_once(':') {
        Some((scheme, rest)) => {
            let mut chars = scheme.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                && !rest.is_empty()
                && !value.chars().any(|c| {
                    c.is_whitespace()
                        || c.is_control()
                        || matches!(c, '<' | '>' | '"' | '{' | '}' | '|' | '\\' | '^' | '`')
                })
        }
        None => false,
    };
    if valid {
        Ok(())
    } else {
        Err(ParseError::new(format!("{what} `{value}` is not a URI")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_have_a_scheme() {
        for good in ["urn:ngsi-ld:Room:1", "https://example.org/a", "urn:a", "x+y.z-1:b"] {
            assert!(check_uri("id", good).is_ok(), "{good}");
        }
        for bad in ["room1", ":a", "1a:b", "urn:", "urn:a b", "urn:a\u{0}", "", &format!("urn:{}", "x".repeat(300))] {
            assert!(check_uri("id", bad).is_err(), "{bad}");
        }
    }
}
