//! Operators and their docker images (spec §2.1), with FogFlow's JSON: `name`, `description`, `parameters`,
//! `dockerimages`, an opaque `designboard`; images accept both `operatorName` and `OperatorName`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::names::{check_name, NameError};

/// A `{"name","value"}` operator parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameter {
    /// Parameter name, e.g. `service_port`.
    pub name: String,
    /// Its value, always text.
    #[serde(default, deserialize_with = "super::names::text_or_number")]
    pub value: String,
}

/// One image implementing an operator for a hardware and OS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DockerImage {
    /// The operator it implements.
    #[serde(rename = "operatorName", alias = "OperatorName", default)]
    pub operator_name: String,
    /// Image name, e.g. `fogflow/converter`.
    pub name: String,
    /// Image tag (default `latest`).
    #[serde(default = "latest")]
    pub tag: String,
    /// `X86`, `ARM` or `ARM64`.
    #[serde(rename = "hwType", default = "x86")]
    pub hw_type: String,
    /// `Linux`.
    #[serde(rename = "osType", default = "linux")]
    pub os_type: String,
    /// Whether workers should pull it ahead of time.
    #[serde(default)]
    pub prefetched: bool,
}

fn latest() -> String {
    "latest".into()
}
fn x86() -> String {
    "X86".into()
}
fn linux() -> String {
    "Linux".into()
}

impl DockerImage {
    /// `name:tag`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.name, self.tag)
    }
}

/// A named unit of processing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operator {
    /// Unique name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Parameters given to every task of this operator.
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    /// Images implementing it (FogFlow failed when this was missing; it defaults to empty here).
    #[serde(default)]
    pub dockerimages: Vec<DockerImage>,
    /// The designer's board, stored as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub designboard: Option<Value>,
}

/// Why an operator or image is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OperatorError {
    /// The operator name is not acceptable.
    #[error("operator {0}")]
    Name(NameError),
    /// An image is not acceptable.
    #[error("docker image of operator {operator}: {reason}")]
    Image {
        /// The operator.
        operator: String,
        /// Why.
        reason: String,
    },
    /// A parameter is not acceptable.
    #[error("parameter of operator {operator}: {reason}")]
    Parameter {
        /// The operator.
        operator: String,
        /// Why.
        reason: String,
    },
}

impl Operator {
    /// Checks names and images; fills each image's `operatorName`.
    pub fn validate(&mut self) -> Result<(), OperatorError> {
        check_name(&self.name).map_err(OperatorError::Name)?;
        for parameter in &self.parameters {
            if parameter.name.trim().is_empty() {
                return Err(OperatorError::Parameter { operator: self.name.clone(), reason: "empty name".into() });
            }
        }
        for image in &mut self.dockerimages {
            validate_image(&self.name, image)?;
        }
        Ok(())
    }

    /// The image for a worker's hardware (`amd64`, `arm`, `arm64`, …), FogFlow's `DetermineDockerImage` with
    /// arm64 mapped to `ARM64` (falling back to `ARM`): `None` when no image fits.
    pub fn image_for(&self, hardware: &str) -> Option<&DockerImage> {
        let wanted: &[&str] = match hardware {
            "arm" => &["ARM"],
            "arm64" | "aarch64" => &["ARM64", "ARM"],
            _ => &["X86"],
        };
        wanted.iter().find_map(|hw| {
            self.dockerimages
                .iter()
                .find(|image| image.os_type.eq_ignore_ascii_case("linux") && image.hw_type.eq_ignore_ascii_case(hw))
        })
    }
}

/// Checks one image of `operator`, filling its `operatorName` when empty.
pub fn validate_image(operator: &str, image: &mut DockerImage) -> Result<(), OperatorError> {
    let fail = |reason: &str| Err(OperatorError::Image { operator: operator.into(), reason: reason.into() });
    if image.name.trim().is_empty() || image.name.len() > 255 || image.name.contains(char::is_whitespace) {
        return fail("image name must be non-empty, without spaces, at most 255 characters");
    }
    if image.tag.is_empty() || image.tag.len() > 128 || image.tag.contains(char::is_whitespace) {
        return fail("tag must be non-empty, without spaces, at most 128 characters");
    }
    if image.operator_name.is_empty() {
        image.operator_name = operator.into();
    } else if image.operator_name != operator {
        return fail("operatorName differs from the operator it is registered under");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_both_spellings_and_defaults_images() {
        let op: Operator =
            serde_json::from_value(json!({"name":"dummy","parameters":[{"name":"p","value":3}]})).unwrap();
        assert!(op.dockerimages.is_empty());
        assert_eq!(op.parameters[0].value, "3");
        let a: DockerImage = serde_json::from_value(json!({"OperatorName":"x","name":"n"})).unwrap();
        let b: DockerImage = serde_json::from_value(json!({"operatorName":"x","name":"n"})).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.reference(), "n:latest");
    }

    #[test]
    fn picks_the_image_for_the_hardware() {
        let mut op: Operator = serde_json::from_value(json!({"name":"c","dockerimages":[
            {"name":"c-arm","hwType":"ARM"},{"name":"c-x86","hwType":"X86"}]}))
        .unwrap();
        op.validate().unwrap();
        assert_eq!(op.image_for("amd64").unwrap().name, "c-x86");
        assert_eq!(op.image_for("arm64").unwrap().name, "c-arm");
        assert_eq!(op.dockerimages[0].operator_name, "c");
        op.dockerimages.retain(|i| i.hw_type == "ARM");
        assert!(op.image_for("amd64").is_none());
    }
}
