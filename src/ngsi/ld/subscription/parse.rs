//! Parsing of NGSI-LD subscription bodies and PATCH fragments, member by member, with the request's context.

use serde_json::Value;

use super::trigger::{Trigger, Triggers};
use super::{
    invalid, EntityInfo, GeoQ, LdSubscription, NotificationFormat, QText, SubscriptionError, MAX_LIST, MAX_TEXT,
    MAX_URI, MIN_TIME_INTERVAL_MS,
};
use crate::ngsi::ld::context::Context;
use crate::ngsi::ld::lang::LanguageFilter;
use crate::ngsi::ld::query::Query;
use crate::ngsi::ld::{check_uri, LOCATION};
use crate::ngsi::limits::{check_name, MAX_PATTERN_LEN};

fn text<'a>(value: &'a Value, what: &str) -> Result<&'a str, SubscriptionError> {
    value.as_str().ok_or_else(|| invalid(format!("{what} must be a string")))
}

fn bounded_text(value: &Value, what: &str) -> Result<String, SubscriptionError> {
    let text = text(value, what)?;
    if text.len() > MAX_TEXT {
        return Err(invalid(format!("{what} is longer than {MAX_TEXT} bytes")));
    }
    Ok(text.to_string())
}

fn items<'a>(value: &'a Value, what: &str) -> Result<&'a [Value], SubscriptionError> {
    match value.as_array() {
        Some(items) if items.is_empty() => Err(invalid(format!("{what} must not be empty"))),
        Some(items) if items.len() > MAX_LIST => Err(invalid(format!("more than {MAX_LIST} items in {what}"))),
        Some(items) => Ok(items),
        None => Err(invalid(format!("{what} must be an array"))),
    }
}

fn names(context: &Context, value: &Value, what: &str) -> Result<Vec<String>, SubscriptionError> {
    items(value, what)?
        .iter()
        .map(|item| {
            let name = context.canonical(text(item, what)?);
            check_name(what, &name)?;
            Ok(name)
        })
        .collect()
}

fn parse_triggers(value: &Value) -> Result<Triggers, SubscriptionError> {
    let mut triggers = Vec::new();
    for item in items(value, "notificationTrigger")? {
        let name = text(item, "notificationTrigger")?;
        let trigger = Trigger::parse(name).ok_or_else(|| {
            let known: Vec<&str> = Trigger::ALL.iter().map(|trigger| trigger.name()).collect();
            invalid(format!("unknown notificationTrigger `{name}`: give one of {}", known.join(", ")))
        })?;
        triggers.push(trigger);
    }
    Ok(Triggers::of(&triggers))
}

fn boolean(value: &Value, what: &str) -> Result<bool, SubscriptionError> {
    value.as_bool().ok_or_else(|| invalid(format!("{what} must be a boolean")))
}

fn not_supported(what: &str) -> SubscriptionError {
    SubscriptionError::NotSupported(format!("{what} is not supported by this broker"))
}

fn unknown(key: &str, within: &str) -> SubscriptionError {
    invalid(format!("unrecognized member `{key}` in {within}"))
}

fn date_time(value: &Value, what: &str) -> Result<i64, SubscriptionError> {
    let text = text(value, what)?;
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|at| at.timestamp_millis())
        .map_err(|_| invalid(format!("{what} `{text}` is not an ISO 8601 date-time")))
}

fn parse_entities(context: &Context, value: &Value) -> Result<Vec<EntityInfo>, SubscriptionError> {
    let mut entities = Vec::new();
    for item in items(value, "entities")? {
        let Value::Object(members) = item else { return Err(invalid("an item of entities must be a JSON object")) };
        let mut info = EntityInfo::default();
        for (key, value) in members {
            match key.as_str() {
                "id" => {
                    let id = text(value, "entities[].id")?;
                    check_uri("entities[].id", id)?;
                    info.id = Some(id.to_string());
                }
                "idPattern" => {
                    let pattern = text(value, "entities[].idPattern")?;
                    if pattern.len() > MAX_PATTERN_LEN {
                        return Err(invalid(format!("idPattern is longer than {MAX_PATTERN_LEN} bytes")));
                    }
                    info.id_pattern = Some(pattern.to_string());
                }
                "type" => {
                    let entity_type = context.canonical(text(value, "entities[].type")?);
                    check_name("entities[].type", &entity_type)?;
                    info.entity_type = Some(entity_type);
                }
                other => return Err(unknown(other, "entities[]")),
            }
        }
        if info.id.is_none() && info.id_pattern.is_none() && info.entity_type.is_none() {
            return Err(invalid("an item of entities needs a type, an id or an idPattern"));
        }
        entities.push(info);
    }
    Ok(entities)
}

fn parse_geo_q(context: &Context, value: &Value) -> Result<GeoQ, SubscriptionError> {
    let Value::Object(members) = value else { return Err(invalid("geoQ must be a JSON object")) };
    let (mut georel, mut geometry, mut coordinates, mut geoproperty) = (None, None, None, LOCATION.to_string());
    for (key, value) in members {
        match key.as_str() {
            "georel" => georel = Some(text(value, "geoQ.georel")?.to_string()),
            "geometry" => geometry = Some(text(value, "geoQ.geometry")?.to_string()),
            "coordinates" => {
                coordinates = Some(match value {
                    Value::String(text) => text.clone(),
                    Value::Array(_) => value.to_string(),
                    _ => return Err(invalid("geoQ.coordinates must be an array (or its JSON text)")),
                })
            }
            "geoproperty" => geoproperty = context.canonical(text(value, "geoQ.geoproperty")?),
            other => return Err(unknown(other, "geoQ")),
        }
    }
    match (georel, geometry, coordinates) {
        (Some(georel), Some(geometry), Some(coordinates)) => Ok(GeoQ { georel, geometry, coordinates, geoproperty }),
        _ => Err(invalid("geoQ needs georel, geometry and coordinates")),
    }
}

impl LdSubscription {
    /// Parses a subscription body (POST) with the request's context; `raw_context` is that context with no
    /// remote URL left (the body `@context`, or the inline equivalent of resolved remote contexts; null for the
    /// core context). Answers the `id` the body gives (checked to be a URI), if any.
    pub fn parse(
        body: &Value,
        context: &Context,
        raw_context: Value,
    ) -> Result<(Option<String>, LdSubscription), SubscriptionError> {
        let Value::Object(members) = body else { return Err(invalid("a subscription must be a JSON object")) };
        let mut subscription = LdSubscription { context: raw_context.clone(), ..Default::default() };
        let mut id = None;
        for (key, value) in members {
            match key.as_str() {
                "id" => {
                    let given = text(value, "id")?;
                    check_uri("subscription id", given)?;
                    id = Some(given.to_string());
                }
                "type" => {
                    if value != "Subscription" {
                        return Err(invalid("the type of a subscription must be Subscription"));
                    }
                }
                // Shown by GET: accepted and ignored, so a retrieved subscription can be sent back.
                "status" | "createdAt" | "modifiedAt" => {}
                _ => subscription.apply(key, value, context, &raw_context)?,
            }
        }
        if !members.contains_key("notification") {
            return Err(invalid("notification is missing"));
        }
        subscription.check()?;
        Ok((id, subscription))
    }

    /// Applies a PATCH fragment parsed with the request's context: every member given replaces the stored one,
    /// `notification` member by member. A fragment with an `@context` makes it the subscription's context.
    pub fn patch(
        &self,
        fragment: &Value,
        context: &Context,
        raw_context: Value,
    ) -> Result<LdSubscription, SubscriptionError> {
        let Value::Object(members) = fragment else { return Err(invalid("a subscription must be a JSON object")) };
        if members.keys().all(|key| key == "@context") {
            return Err(invalid("the fragment holds nothing to update"));
        }
        let mut updated = self.clone();
        if !raw_context.is_null() {
            updated.context = raw_context.clone();
            updated.written_context = Value::Null;
        }
        for (key, value) in members {
            match key.as_str() {
                "id" | "type" => return Err(invalid(format!("{key} of a subscription cannot be changed"))),
                _ => updated.apply(key, value, context, &raw_context)?,
            }
        }
        updated.check()?;
        Ok(updated)
    }

    /// Sets one top-level member.
    fn apply(&mut self, key: &str, value: &Value, context: &Context, raw: &Value) -> Result<(), SubscriptionError> {
        match key {
            "@context" => {}
            "subscriptionName" => self.name = Some(bounded_text(value, key)?),
            "description" => self.description = Some(bounded_text(value, key)?),
            "entities" => self.entities = parse_entities(context, value)?,
            "watchedAttributes" => self.watched_attributes = names(context, value, key)?,
            "q" => {
                let q = text(value, key)?;
                Query::parse(q, context)?;
                self.q = Some(QText { text: q.to_string(), context: raw.clone() });
            }
            "geoQ" => self.geo_q = Some(parse_geo_q(context, value)?),
            "isActive" => self.is_active = boolean(value, "isActive")?,
            "expiresAt" => self.expires_at = Some(date_time(value, key)?),
            "throttling" => match value.as_f64() {
                Some(seconds) if seconds.is_finite() && (0.0..=u32::MAX as f64).contains(&seconds) => {
                    self.throttling_ms = Some((seconds * 1000.0).round() as u64).filter(|ms| *ms > 0)
                }
                _ => return Err(invalid("throttling must be a non-negative number of seconds")),
            },
            "timeInterval" => match value.as_f64() {
                Some(seconds) if seconds.is_finite() && (0.0..=u32::MAX as f64).contains(&seconds) => {
                    let ms = (seconds * 1000.0).round() as u64;
                    if ms < MIN_TIME_INTERVAL_MS {
                        return Err(invalid(format!(
                            "timeInterval must be at least {} seconds",
                            MIN_TIME_INTERVAL_MS as f64 / 1000.0
                        )));
                    }
                    self.time_interval_ms = Some(ms);
                }
                _ => return Err(invalid("timeInterval must be a positive number of seconds")),
            },
            "notification" => self.apply_notification(context, value)?,
            "lang" => {
                let lang = bounded_text(value, key)?;
                LanguageFilter::parse(&lang)?;
                self.lang = Some(lang);
            }
            "notificationTrigger" => self.notification_trigger = parse_triggers(value)?,
            "csf" | "temporalQ" | "scopeQ" | "datasetId" | "jsonKeys" => return Err(not_supported(key)),
            other => return Err(unknown(other, "the subscription")),
        }
        Ok(())
    }

    fn apply_notification(&mut self, context: &Context, value: &Value) -> Result<(), SubscriptionError> {
        let Value::Object(members) = value else { return Err(invalid("notification must be a JSON object")) };
        for (key, value) in members {
            match key.as_str() {
                "attributes" => self.attributes = names(context, value, "notification.attributes")?,
                "format" => {
                    self.format = serde_json::from_value(value.clone())
                        .map_err(|_| invalid("notification.format must be normalized, keyValues or concise"))?
                }
                "endpoint" => self.apply_endpoint(value)?,
                "sysAttrs" => self.sys_attrs = boolean(value, "notification.sysAttrs")?,
                "showChanges" => self.show_changes = boolean(value, "notification.showChanges")?,
                // Shown by GET: accepted and ignored.
                "status" | "timesSent" | "timesFailed" | "lastNotification" | "lastSuccess" | "lastFailure" => {}
                other => return Err(unknown(other, "notification")),
            }
        }
        Ok(())
    }

    fn apply_endpoint(&mut self, value: &Value) -> Result<(), SubscriptionError> {
        let Value::Object(members) = value else { return Err(invalid("notification.endpoint must be a JSON object")) };
        let mut uri = None;
        for (key, value) in members {
            match key.as_str() {
                "uri" => {
                    let given = text(value, "notification.endpoint.uri")?;
                    if given.len() > MAX_URI {
                        return Err(invalid(format!("notification.endpoint.uri is longer than {MAX_URI} bytes")));
                    }
                    uri = Some(given.to_string());
                }
                "accept" => {
                    self.accept = serde_json::from_value(value.clone()).map_err(|_| {
                        invalid("notification.endpoint.accept must be application/json or application/ld+json")
                    })?
                }
                "receiverInfo" | "notifierInfo" => return Err(not_supported(&format!("notification.endpoint.{key}"))),
                other => return Err(unknown(other, "notification.endpoint")),
            }
        }
        self.uri = uri.ok_or_else(|| invalid("notification.endpoint.uri is missing"))?;
        Ok(())
    }

    /// Checks the whole: a selection, an endpoint URI, `q` / `geoQ` / patterns that compile, a `timeInterval`
    /// without `watchedAttributes` or `throttling`, and `showChanges` without the `keyValues` format.
    fn check(&self) -> Result<(), SubscriptionError> {
        if self.show_changes && self.format == NotificationFormat::KeyValues {
            return Err(invalid("notification.showChanges cannot be true with the keyValues format"));
        }
        if self.time_interval_ms.is_some() {
            if !self.watched_attributes.is_empty() {
                return Err(invalid("timeInterval and watchedAttributes exclude each other"));
            }
            if self.throttling_ms.is_some() {
                return Err(invalid("timeInterval and throttling exclude each other"));
            }
            if self.entities.is_empty() {
                return Err(invalid("a subscription with timeInterval needs entities"));
            }
        }
        if self.entities.is_empty() && self.watched_attributes.is_empty() {
            return Err(invalid("a subscription needs entities or watchedAttributes"));
        }
        if self.uri.is_empty() {
            return Err(invalid("notification.endpoint is missing"));
        }
        check_uri("notification.endpoint.uri", &self.uri)?;
        self.compile()?;
        Ok(())
    }
}
