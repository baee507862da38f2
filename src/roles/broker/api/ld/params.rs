//! The URL parameters of the NGSI-LD entity routes: `options` (`keyValues`/`simplified`, `concise`,
//! `normalized`, `sysAttrs`, `noOverwrite`, `replace`, `update`), `attrs`, `lang`, `pick`/`omit` (not with
//! `attrs`), `geometryProperty` (only for GeoJSON answers), comma lists and flags. Names are expanded with the
//! request's context; unknown options are refused. The query parameters of
//! `GET /ngsi-ld/v1/entities` are read in [`super::selection`].

use axum::http::Uri;

use super::error::LdError;
use crate::ngsi::ld::context::Context;
use crate::ngsi::ld::lang::LanguageFilter;
use crate::ngsi::ld::projection::Projection;
use crate::ngsi::ld::render::{Format, Rendering};
use crate::ngsi::ld::LOCATION;
use crate::ngsi::limits::check_name;

/// Most items in one comma list.
pub const MAX_LIST: usize = 100;

/// The raw parameters of a request.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Reads the query string (`application/x-www-form-urlencoded`, as axum's `Query` reads it, invalid UTF-8
    /// replaced).
    pub fn parse(uri: &Uri) -> Result<Params, LdError> {
        let Some(query) = uri.query() else { return Ok(Params::default()) };
        Ok(Params(form_urlencoded::parse(query.as_bytes()).into_owned().collect()))
    }

    /// Refuses any parameter not named in `allowed` (400 `BadRequestData`).
    pub fn only(self, allowed: &[&str]) -> Result<Params, LdError> {
        if let Some((name, _)) = self.0.iter().find(|(name, _)| !allowed.contains(&name.as_str())) {
            return Err(LdError::bad_data(format!("unknown parameter `{name}` (allowed: {})", allowed.join(", "))));
        }
        Ok(self)
    }

    /// The value of a parameter (the last one when repeated).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// The `options` (comma list), each checked against `allowed`.
    pub fn options(&self, allowed: &[&str]) -> Result<Vec<String>, LdError> {
        let mut options = Vec::new();
        for (_, value) in self.0.iter().filter(|(key, _)| key == "options") {
            for option in value.split(',').map(str::trim).filter(|o| !o.is_empty()) {
                if !allowed.contains(&option) {
                    return Err(LdError::bad_data(format!("unknown option `{option}`")));
                }
                options.push(option.to_string());
            }
        }
        Ok(options)
    }

    /// A boolean parameter (`true`/`false`).
    pub fn flag(&self, name: &str) -> Result<bool, LdError> {
        match self.get(name) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(LdError::bad_data(format!("{name} must be true or false, not `{other}`"))),
        }
    }

    /// A comma list, each item expanded with the context when `expand`.
    pub fn list(&self, name: &str, context: &Context, expand: bool) -> Result<Vec<String>, LdError> {
        let Some(value) = self.get(name) else { return Ok(Vec::new()) };
        let items: Vec<&str> = value.split(',').map(str::trim).collect();
        if items.len() > MAX_LIST {
            return Err(LdError::bad_data(format!("more than {MAX_LIST} items in {name}")));
        }
        items
            .into_iter()
            .map(|item| {
                let item = if expand { context.canonical(item) } else { item.to_string() };
                check_name(name, &item)?;
                Ok(item)
            })
            .collect()
    }

    /// How to render entities (`options`, `attrs`); `extra` options are allowed too.
    pub fn rendering(&self, context: &Context, extra: &[&str]) -> Result<Rendering, LdError> {
        let mut allowed = vec!["keyValues", "simplified", "concise", "normalized", "sysAttrs"];
        allowed.extend_from_slice(extra);
        let options = self.options(&allowed)?;
        let has = |name: &str| options.iter().any(|o| o == name);
        let from_options = match (has("keyValues") || has("simplified"), has("concise")) {
            (true, true) => return Err(LdError::bad_data("options keyValues and concise exclude each other")),
            (true, false) => Format::KeyValues,
            (false, true) => Format::Concise,
            (false, false) => Format::Normalized,
        };
        // `format` (V1.8) names the representation too, and takes precedence over `options`.
        let format = match self.get("format") {
            None => from_options,
            Some("normalized") => Format::Normalized,
            Some("keyValues" | "simplified") => Format::KeyValues,
            Some("concise") => Format::Concise,
            Some(other) => {
                return Err(LdError::bad_data(format!(
                    "format `{other}` (expected normalized, keyValues, simplified or concise)"
                )))
            }
        };
        let lang = self.get("lang").map(LanguageFilter::parse).transpose()?;
        Ok(Rendering { format, sys_attrs: has("sysAttrs"), attrs: self.list("attrs", context, true)?, lang })
    }

    /// The `pick` / `omit` projection; refused with `attrs` (in the URL, or `body_attrs` of a query batch).
    pub fn projection(&self, context: &Context, body_attrs: bool) -> Result<Projection, LdError> {
        let expand = |name: &str| context.canonical(name);
        let projection = Projection::parse(self.get("pick"), self.get("omit"), MAX_LIST, expand)?;
        if !projection.is_empty() && (body_attrs || self.get("attrs").is_some()) {
            return Err(LdError::bad_data("attrs cannot be given with pick or omit"));
        }
        Ok(projection)
    }

    /// The GeoProperty whose value is the geometry of a GeoJSON answer (`geometryProperty`, expanded; `location`
    /// by default), `None` when the answer is not GeoJSON; `geometryProperty` without GeoJSON is refused.
    pub fn geometry_property(&self, context: &Context, geojson: bool) -> Result<Option<String>, LdError> {
        let given = self.get("geometryProperty");
        if !geojson {
            return match given {
                Some(_) => Err(LdError::bad_data("geometryProperty is only allowed with Accept: application/geo+json")),
                None => Ok(None),
            };
        }
        let property = given.map_or_else(|| LOCATION.to_string(), |name| context.canonical(name.trim()));
        check_name("geometryProperty", &property)?;
        Ok(Some(property))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let rendering = |query: &str| {
            let uri: Uri = format!("/x?{query}").parse().unwrap();
            Params::parse(&uri).unwrap().rendering(&Context::core(), &[])
        };
        assert_eq!(rendering("options=keyValues,sysAttrs").unwrap().format, Format::KeyValues);
        assert!(rendering("options=keyValues,sysAttrs").unwrap().sys_attrs);
        assert!(rendering("options=keyValues,concise").is_err());
        assert!(rendering("options=bogus").is_err());
        assert_eq!(rendering("format=concise").unwrap().format, Format::Concise);
        assert_eq!(rendering("format=simplified").unwrap().format, Format::KeyValues);
        assert_eq!(rendering("format=normalized&options=keyValues,sysAttrs").unwrap().format, Format::Normalized);
        assert!(rendering("format=normalized&options=keyValues,sysAttrs").unwrap().sys_attrs);
        assert!(rendering("format=geojson").is_err(), "GeoJSON is asked for by Accept");
        assert!(rendering("lang=fr,en;q=0.5").unwrap().lang.is_some());
        assert!(rendering("lang=fr;q=5").is_err());
        let uri: Uri = "/x?deleteAll=maybe".parse().unwrap();
        assert!(Params::parse(&uri).unwrap().flag("deleteAll").is_err());
    }

    fn params(query: &str) -> Params {
        let uri: Uri = format!("/x?{query}").parse().unwrap();
        Params::parse(&uri).unwrap()
    }

    #[test]
    fn pick_and_omit_exclude_attrs() {
        let core = Context::core();
        let projection = params("pick=id,temperature&omit=type").projection(&core, false).unwrap();
        assert_eq!(projection.picked(), ["id", "temperature"]);
        assert!(params("pick=id&attrs=temperature").projection(&core, false).is_err());
        assert!(params("omit=id").projection(&core, true).is_err(), "attrs of a query batch body");
        assert!(params("pick=name&omit=name").projection(&core, false).is_err());
        assert!(params("attrs=temperature").projection(&core, true).unwrap().is_empty());
    }

    #[test]
    fn geometry_property_is_only_for_geojson() {
        let core = Context::core();
        assert_eq!(params("").geometry_property(&core, true).unwrap().as_deref(), Some("location"));
        assert_eq!(params("geometryProperty=area").geometry_property(&core, true).unwrap().as_deref(), Some("area"));
        assert_eq!(params("").geometry_property(&core, false).unwrap(), None);
        assert!(params("geometryProperty=area").geometry_property(&core, false).is_err());
        assert!(params("geometryProperty=").geometry_property(&core, true).is_err());
    }
}
