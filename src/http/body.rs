//! Reading a request body as JSON with an explicit size limit: a declared `Content-Length` over the limit is
//! refused before any byte is read, and a chunked body is cut off as soon as it passes the limit (B1, B2).
//! serde_json's recursion limit (128) bounds nesting (B3).

use axum::body::Body;
use http::HeaderMap;
use http_body_util::{BodyExt, Limited};
use serde::de::DeserializeOwned;

/// Why a body could not be read as the expected JSON.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Larger than the limit.
    #[error("request body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The connection failed while reading.
    #[error("cannot read request body: {0}")]
    Read(String),
    /// No body where one is required.
    #[error("request body is empty")]
    Empty,
    /// Not JSON, or not the expected shape.
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Reads the whole body (at most `limit` bytes) and parses it as `T`.
pub async fn read_json<T: DeserializeOwned>(headers: &HeaderMap, body: Body, limit: usize) -> Result<T, BodyError> {
    let bytes = read_bytes(headers, body, limit).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError::Empty);
    }
    Ok(serde_json::from_slice(&bytes)?)
}

/// Reads the whole body, at most `limit` bytes.
pub async fn read_bytes(headers: &HeaderMap, body: Body, limit: usize) -> Result<bytes::Bytes, BodyError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge { limit }),
        Err(error) => Err(BodyError::Read(error.to_string())),
    }
}
