//! The body of an NGSIv2 notification per `attrsFormat`. Pure: no I/O.

use serde_json::{json, Value};

use super::AttrsFormat;
use crate::ngsi::v1::{ContextElement, ContextElementResponse, NotifyContextRequest, StatusCode};
use crate::ngsi::v2::{render_entity, Format};

/// The body of a notification: `{"subscriptionId","data":[entities in the format]}`, or for `legacy` an NGSIv1
/// `notifyContext` request.
pub fn notification_body<'a>(
    subscription_id: &str,
    elements: impl Iterator<Item = &'a ContextElement>,
    format: AttrsFormat,
) -> Value {
    let format = match format {
        AttrsFormat::Normalized => Format::Normalized,
        AttrsFormat::KeyValues => Format::KeyValues,
        AttrsFormat::Values => Format::Values,
        AttrsFormat::Legacy => {
            let request = NotifyContextRequest {
                subscription_id: subscription_id.to_string(),
                originator: "localhost".into(),
                context_responses: elements
                    .map(|element| ContextElementResponse {
                        context_element: element.clone(),
                        status_code: StatusCode::ok(),
                    })
                    .collect(),
            };
            return serde_json::to_value(request).unwrap_or(Value::Null);
        }
    };
    let data: Vec<Value> = elements.map(|element| render_entity(element, &[], format)).collect();
    json!({ "subscriptionId": subscription_id, "data": data })
}
