//! The NGSI data model and its codecs: wire types, entity-id patterns, restriction scopes and geometry, limits,
//! ISO 8601 durations and the system times of attribute instances.
//!
//! Pure: no I/O, no async, no knowledge of HTTP or the store. Everything a client can send is validated here
//! into typed values, with a [`ParseError`] the API layer turns into its own error format.

pub mod convert;
pub mod duration;
pub mod ld;
pub mod limits;
pub mod pattern;
pub mod scope;
pub mod times;
pub mod v1;
pub mod v2;
pub mod v9;

/// A client's input could not be accepted; the message says why, in words a client can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    message: String,
}

impl ParseError {
    /// An error with the given message (lowercase, no trailing period).
    pub fn new(message: impl Into<String>) -> Self {
        ParseError { message: message.into() }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}
