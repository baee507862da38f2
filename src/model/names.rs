//! Name rules shared by operators, topologies, tasks and fog functions, and lenient text decoding.
//!
//! A name is 1–128 characters of letters, digits, `-`, `_` and `.`, so it is safe in task ids
//! (`Task.<topology>.<task>.<hash>`), URL paths and store keys.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Longest accepted name.
pub const MAX_NAME_LEN: usize = 128;

/// Why a name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty.
    #[error("name is empty")]
    Empty,
    /// Too long.
    #[error("name {0:?} is longer than {MAX_NAME_LEN} characters")]
    TooLong(String),
    /// Has a forbidden character.
    #[error("name {0:?} may only hold letters, digits, '-', '_' and '.'")]
    BadCharacter(String),
}

/// Checks a name.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong(name.chars().take(40).collect()));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(NameError::BadCharacter(name.into()));
    }
    Ok(())
}

/// Decodes a string, a number or a boolean as text (FogFlow's UI sends numbers where Go expects strings).
pub fn text_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::String(text) => text,
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_rules() {
        assert!(check_name("anomaly-detection").is_ok());
        assert!(check_name("Test.v2_x").is_ok());
        assert_eq!(check_name(""), Err(NameError::Empty));
        assert!(matches!(check_name("a/b"), Err(NameError::BadCharacter(_))));
        assert!(matches!(check_name("a b"), Err(NameError::BadCharacter(_))));
        assert!(matches!(check_name(&"x".repeat(129)), Err(NameError::TooLong(_))));
    }
}
