//! Input limits shared by every NGSI flavour: id and name lengths, characters, pattern and polygon sizes.
//!
//! The limits are explicit so that they can be documented and so that no client input can make the broker
//! spend unbounded memory or CPU (reliability catalogue B4, B6, B7, B8).

use super::ParseError;

/// Longest entity id, type, attribute or metadata name accepted.
pub const MAX_ID_LEN: usize = 256;
/// Longest `isPattern` / `idPattern` regular expression accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 1024;
/// Compiled size cap of one regular expression, in bytes (`regex::RegexBuilder::size_limit`).
pub const MAX_REGEX_SIZE: usize = 256 * 1024;
/// Most vertices a polygon scope may have.
pub const MAX_POLYGON_VERTICES: usize = 10_000;
/// Most entities (or entity ids) in one request.
pub const MAX_ELEMENTS_PER_REQUEST: usize = 10_000;
/// Most attributes per entity.
pub const MAX_ATTRIBUTES_PER_ENTITY: usize = 1_000;
/// Most types per (NGSI-LD) entity.
pub const MAX_TYPES_PER_ENTITY: usize = 100;

/// Checks an entity id, type, attribute or metadata name: 1–256 characters, no control characters.
///
/// `what` names the field in the error (`entity id`, `attribute name`, …).
pub fn check_name(what: &str, value: &str) -> Result<(), ParseError> {
    if value.is_empty() {
        return Err(ParseError::new(format!("{what} is empty")));
    }
    // ASCII (the usual case): bytes are characters.
    let length = if value.is_ascii() { value.len() } else { value.chars().count() };
    if length > MAX_ID_LEN {
        return Err(ParseError::new(format!("{what} is {length} characters long, the limit is {MAX_ID_LEN}")));
    }
    if let Some(bad) = value.chars().find(|c| c.is_control()) {
        return Err(ParseError::new(format!("{what} contains the control character U+{:04X}", bad as u32)));
    }
    Ok(())
}

/// Like [`check_name`], but an empty value is allowed (optional types).
pub fn check_optional_name(what: &str, value: &str) -> Result<(), ParseError> {
    if value.is_empty() {
        return Ok(());
    }
    check_name(what, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bounded_and_printable() {
        assert!(check_name("entity id", "Device.temp001").is_ok());
        assert!(check_name("entity id", "").is_err());
        assert!(check_name("entity id", &"x".repeat(257)).is_err());
        assert!(check_name("entity id", &"é".repeat(256)).is_ok());
        let error = check_name("entity id", "a\u{0}b").unwrap_err();
        assert!(error.message().contains("U+0000"), "{error}");
        assert!(check_optional_name("entity type", "").is_ok());
    }
}
