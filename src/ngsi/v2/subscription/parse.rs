//! Parsing of the parts of Orion's subscription body: `subject` (`entities`, `condition`), `notification`
//! (`http.url`, `attrs`/`exceptAttrs`, `attrsFormat`, …), `expires`, and the small JSON readers the whole
//! subscription parser shares. Pure: no I/O.

use chrono::{NaiveDate, NaiveDateTime};
use serde_json::{Map, Value};

use super::{Expression, SubjectEntity, V2Subscription, MAX_LIST};
use crate::ngsi::limits::MAX_PATTERN_LEN;
use crate::ngsi::v2::check_identifier;
use crate::ngsi::ParseError;

pub(super) fn object<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, ParseError> {
    value.as_object().ok_or_else(|| ParseError::new(format!("{what} must be a JSON object")))
}

pub(super) fn text<'a>(value: &'a Value, what: &str) -> Result<&'a str, ParseError> {
    value.as_str().ok_or_else(|| ParseError::new(format!("{what} must be a string")))
}

pub(super) fn names(value: &Value, what: &str) -> Result<Vec<String>, ParseError> {
    let items = value.as_array().ok_or_else(|| ParseError::new(format!("{what} must be an array of strings")))?;
    if items.len() > MAX_LIST {
        return Err(ParseError::new(format!("more than {MAX_LIST} items in {what}")));
    }
    items
        .iter()
        .map(|item| {
            let name = text(item, what)?;
            check_identifier("attribute name", name)?;
            Ok(name.to_string())
        })
        .collect()
}

pub(super) fn unknown(key: &str, within: &str) -> ParseError {
    ParseError::new(format!("unrecognized field `{key}` in {within}"))
}

/// Parses Orion's `expires` (an ISO 8601 date and time, UTC unless an offset is given, or a date) into ms.
pub fn parse_expires(value: &str) -> Result<i64, ParseError> {
    let bad = || ParseError::new(format!("expires `{value}` is not a valid ISO 8601 date"));
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(at.timestamp_millis());
    }
    let trimmed = value.strip_suffix('Z').unwrap_or(value);
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(trimmed, format) {
            return Ok(at.and_utc().timestamp_millis());
        }
    }
    let date = NaiveDate::parse_from_str(trimmed, "%Y-%m-%d").map_err(|_| bad())?;
    Ok(date.and_hms_opt(0, 0, 0).ok_or_else(bad)?.and_utc().timestamp_millis())
}

pub(super) fn parse_subject(subscription: &mut V2Subscription, subject: &Value) -> Result<(), ParseError> {
    for (key, value) in object(subject, "subject")? {
        match key.as_str() {
            "entities" => subscription.entities = parse_entities(value)?,
            "condition" => {
                for (key, value) in object(value, "subject.condition")? {
                    match key.as_str() {
                        "attrs" => subscription.condition_attrs = names(value, "condition.attrs")?,
                        "expression" => subscription.expression = parse_expression(value)?,
                        "alterationTypes" | "notifyOnMetadataChange" => {
                            return Err(ParseError::new(format!("condition.{key} is not supported by this broker")))
                        }
                        other => return Err(unknown(other, "subject.condition")),
                    }
                }
            }
            other => return Err(unknown(other, "subject")),
        }
    }
    if subscription.entities.is_empty() {
        return Err(ParseError::new("subject.entities is missing or empty"));
    }
    Ok(())
}

fn parse_entities(value: &Value) -> Result<Vec<SubjectEntity>, ParseError> {
    let items = value.as_array().ok_or_else(|| ParseError::new("subject.entities must be an array"))?;
    if items.len() > MAX_LIST {
        return Err(ParseError::new(format!("more than {MAX_LIST} entities in subject.entities")));
    }
    let mut entities = Vec::with_capacity(items.len());
    for item in items {
        let (mut id, mut pattern, mut entity_type) = (None, None, String::new());
        for (key, value) in object(item, "an entity of subject.entities")? {
            match key.as_str() {
                "id" => id = Some(text(value, "entity id")?.to_string()),
                "idPattern" => pattern = Some(text(value, "idPattern")?.to_string()),
                "type" => {
                    entity_type = text(value, "entity type")?.to_string();
                    check_identifier("entity type", &entity_type)?;
                }
                "typePattern" => return Err(ParseError::new("typePattern is not supported by this broker yet")),
                other => return Err(unknown(other, "subject.entities")),
            }
        }
        let entity = match (id, pattern) {
            (Some(id), None) => {
                check_identifier("entity id", &id)?;
                SubjectEntity { id, pattern: false, entity_type }
            }
            (None, Some(pattern)) => {
                if pattern.len() > MAX_PATTERN_LEN {
                    return Err(ParseError::new(format!("idPattern is longer than {MAX_PATTERN_LEN} bytes")));
                }
                SubjectEntity { id: pattern, pattern: true, entity_type }
            }
            (Some(_), Some(_)) => return Err(ParseError::new("an entity cannot have both id and idPattern")),
            (None, None) => return Err(ParseError::new("an entity of subject.entities needs id or idPattern")),
        };
        entities.push(entity);
    }
    Ok(entities)
}

fn parse_expression(value: &Value) -> Result<Expression, ParseError> {
    let mut expression = Expression::default();
    for (key, value) in object(value, "condition.expression")? {
        let slot = match key.as_str() {
            "q" => &mut expression.q,
            "georel" => &mut expression.georel,
            "geometry" => &mut expression.geometry,
            "coords" => &mut expression.coords,
            "mq" => return Err(ParseError::new("expression mq is not supported by this broker yet")),
            other => return Err(unknown(other, "condition.expression")),
        };
        *slot = Some(text(value, &format!("expression {key}"))?.to_string());
    }
    Ok(expression)
}

pub(super) fn parse_notification(subscription: &mut V2Subscription, notification: &Value) -> Result<(), ParseError> {
    let mut url = None;
    let mut except = None;
    for (key, value) in object(notification, "notification")? {
        match key.as_str() {
            "http" => {
                for (key, value) in object(value, "notification.http")? {
                    match key.as_str() {
                        "url" => url = Some(text(value, "notification.http.url")?.to_string()),
                        other => return Err(unknown(other, "notification.http")),
                    }
                }
            }
            "httpCustom" | "mqtt" | "mqttCustom" => {
                return Err(ParseError::new(format!("notification.{key} is not supported by this broker")))
            }
            "attrs" => subscription.attrs = names(value, "notification.attrs")?,
            "exceptAttrs" => except = Some(names(value, "notification.exceptAttrs")?),
            "attrsFormat" => {
                subscription.attrs_format = serde_json::from_value(value.clone()).map_err(|_| {
                    ParseError::new("invalid attrsFormat (accepted values: legacy, normalized, keyValues, values)")
                })?
            }
            "onlyChangedAttrs" => {
                subscription.only_changed_attrs =
                    value.as_bool().ok_or_else(|| ParseError::new("onlyChangedAttrs must be a boolean"))?
            }
            "maxFailsLimit" => match value.as_u64() {
                Some(limit) if limit > 0 => subscription.max_fails_limit = Some(limit),
                _ => return Err(ParseError::new("maxFailsLimit must be a positive integer")),
            },
            // Shown by GET: accepted and ignored, so a GET body can be sent back.
            "timesSent" | "lastNotification" | "lastSuccess" | "lastSuccessCode" | "lastFailure"
            | "lastFailureReason" | "failsCounter" | "covered" => {}
            other => return Err(unknown(other, "notification")),
        }
    }
    if let Some(except) = except {
        if !subscription.attrs.is_empty() {
            return Err(ParseError::new("notification.attrs and notification.exceptAttrs cannot be used together"));
        }
        subscription.except_attrs = except;
    }
    subscription.url = url.ok_or_else(|| ParseError::new("notification.http.url is missing"))?;
    Ok(())
}
