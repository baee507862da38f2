//! How a [`StoredEntity`] is written to and read from the store: its fields, plus `extra_types` (the element's
//! types after the first, which the element's NGSI10 form does not carry) when it has some. An entity written by an
//! older build has no `extra_types`: it has one type.

use serde::{Deserialize, Serialize};

use super::StoredEntity;
use crate::ngsi::times::InstanceTimes;
use crate::ngsi::v1::ContextElement;
use crate::ngsi::v2::service_path::ROOT;

fn root_path() -> String {
    ROOT.to_string()
}

fn is_root_path(path: &str) -> bool {
    path == ROOT
}

/// The stored form, borrowed for writing.
#[derive(Serialize)]
struct Encoded<'a> {
    tenant: &'a str,
    element: &'a ContextElement,
    #[serde(skip_serializing_if = "is_root_path")]
    service_path: &'a str,
    created_at: i64,
    modified_at: i64,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    attribute_times: &'a [InstanceTimes],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    extra_types: &'a [String],
}

impl Serialize for StoredEntity {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Encoded {
            tenant: &self.tenant,
            element: &self.element,
            service_path: &self.service_path,
            created_at: self.created_at,
            modified_at: self.modified_at,
            attribute_times: &self.attribute_times,
            extra_types: &self.element.extra_types,
        }
        .serialize(serializer)
    }
}

/// The stored form as read (every member an older build may have left out has its default).
#[derive(Deserialize)]
pub(super) struct Decoded {
    #[serde(default)]
    tenant: String,
    element: ContextElement,
    #[serde(default = "root_path")]
    service_path: String,
    created_at: i64,
    modified_at: i64,
    #[serde(default)]
    attribute_times: Vec<InstanceTimes>,
    #[serde(default)]
    extra_types: Vec<String>,
}

impl From<Decoded> for StoredEntity {
    fn from(decoded: Decoded) -> StoredEntity {
        let Decoded { tenant, mut element, service_path, created_at, modified_at, attribute_times, extra_types } =
            decoded;
        element.extra_types = extra_types;
        StoredEntity { tenant, element, service_path, created_at, modified_at, attribute_times }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn extra_types_are_written_and_read_back() {
        let mut element: ContextElement =
            serde_json::from_value(json!({"entityId": {"id": "urn:a", "type": "A"}})).unwrap();
        element.extra_types = vec!["B".into()];
        let entity = StoredEntity {
            tenant: String::new(),
            element,
            service_path: ROOT.into(),
            created_at: 1,
            modified_at: 2,
            attribute_times: Vec::new(),
        };
        let written = serde_json::to_value(&entity).unwrap();
        assert_eq!(written["extra_types"], json!(["B"]));
        assert_eq!(written["element"], json!({"entityId": {"id": "urn:a", "type": "A"}}), "not in the NGSI10 form");
        assert_eq!(serde_json::from_value::<StoredEntity>(written).unwrap(), entity);
    }

    #[test]
    fn entities_of_older_builds_have_one_type() {
        let old = json!({"tenant": "", "element": {"entityId": {"id": "urn:a", "type": "A"}},
            "created_at": 1, "modified_at": 2});
        let entity: StoredEntity = serde_json::from_value(old.clone()).unwrap();
        assert!(entity.element.extra_types.is_empty());
        assert_eq!(entity.service_path, ROOT);
        assert_eq!(serde_json::to_value(&entity).unwrap(), old, "written back as it was");
    }
}
