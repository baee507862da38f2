//! The language filter of NGSI-LD reads (the `lang` parameter, ETSI GS CIM 009 clauses 4.5.18 and 4.15): with it,
//! a LanguageProperty is shown as a Property whose `value` is the string of the language asked for, with a `lang`
//! member naming that language.
//!
//! `lang` is a comma list of language ranges with optional weights, as in an HTTP `Accept-Language`
//! (`fr-CH, fr;q=0.9, en;q=0.8, *;q=0.5`). Ranges are tried by decreasing weight (in the order given for equal
//! weights; a weight of 0 excludes the range); a range matches a language tag equal to it or starting with it and
//! `-` (basic filtering of RFC 4647, case-insensitive), `*` matches any tag. When no range matches, the `@none`
//! entry is chosen, else any entry (the first tag in lexical order). Pure: no I/O.

use serde_json::{Map, Value};

use crate::ngsi::ParseError;

/// Most ranges in one `lang` parameter.
pub const MAX_RANGES: usize = 32;
/// The languageMap key of a value in no particular language.
pub const NO_LANGUAGE: &str = "@none";

/// A parsed `lang` parameter: its ranges, lower-cased, best first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LanguageFilter {
    ranges: Vec<String>,
}

/// Whether `range` is `*` or a language range: subtags of 1–8 ASCII letters or digits separated by `-`, the first
/// of letters only.
fn is_range(range: &str) -> bool {
    if range == "*" {
        return true;
    }
    let mut subtags = range.split('-');
    let first = subtags.next().unwrap_or_default();
    (1..=8).contains(&first.len())
        && first.chars().all(|c| c.is_ascii_alphabetic())
        && subtags.all(|tag| (1..=8).contains(&tag.len()) && tag.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// A weight `q=0`…`q=1` (at most three decimals) in thousandths.
fn weight(text: &str) -> Option<u16> {
    let value: f64 = text.parse().ok()?;
    let decimals = text.split_once('.').map_or(0, |(_, d)| d.len());
    ((0.0..=1.0).contains(&value) && decimals <= 3 && !text.starts_with(['+', '-']))
        .then(|| (value * 1000.0).round() as u16)
}

impl LanguageFilter {
    /// Reads a `lang` parameter.
    pub fn parse(text: &str) -> Result<LanguageFilter, ParseError> {
        let invalid = |why: &str| ParseError::new(format!("lang `{text}` is invalid: {why}"));
        let items: Vec<&str> = text.split(',').map(str::trim).collect();
        if items.len() > MAX_RANGES {
            return Err(invalid(&format!("more than {MAX_RANGES} language ranges")));
        }
        let mut weighted = Vec::with_capacity(items.len());
        for item in items {
            let mut parts = item.split(';').map(str::trim);
            let range = parts.next().unwrap_or_default();
            if !is_range(range) {
                return Err(invalid(&format!("`{range}` is not a language tag or *")));
            }
            let mut q = 1000;
            for parameter in parts {
                match parameter.strip_prefix("q=").and_then(weight) {
                    Some(given) => q = given,
                    None => return Err(invalid(&format!("`{parameter}` is not a weight q=0…1"))),
                }
            }
            if q > 0 {
                weighted.push((q, range.to_ascii_lowercase()));
            }
        }
        // A stable sort keeps the order given among equal weights.
        weighted.sort_by_key(|(q, _)| std::cmp::Reverse(*q));
        Ok(LanguageFilter { ranges: weighted.into_iter().map(|(_, range)| range).collect() })
    }

    /// The entry of a languageMap to show: the best match, else `@none`, else the first; `None` for an empty map.
    pub fn pick<'a>(&self, map: &'a Map<String, Value>) -> Option<(&'a str, &'a Value)> {
        let tagged = || map.iter().filter(|(tag, _)| tag.as_str() != NO_LANGUAGE);
        for range in &self.ranges {
            let found = if range == "*" {
                tagged().next()
            } else {
                tagged().find(|(tag, _)| tag.eq_ignore_ascii_case(range)).or_else(|| {
                    tagged().find(|(tag, _)| {
                        tag.len() > range.len()
                            && tag.is_char_boundary(range.len())
                            && tag[..range.len()].eq_ignore_ascii_case(range)
                            && tag.as_bytes()[range.len()] == b'-'
                    })
                })
            };
            if let Some((tag, value)) = found {
                return Some((tag.as_str(), value));
            }
        }
        map.get_key_value(NO_LANGUAGE).or_else(|| map.iter().next()).map(|(tag, value)| (tag.as_str(), value))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pick(lang: &str, map: Value) -> Option<(String, Value)> {
        let filter = LanguageFilter::parse(lang).unwrap();
        let map = map.as_object().unwrap().clone();
        filter.pick(&map).map(|(tag, value)| (tag.to_string(), value.clone()))
    }

    #[test]
    fn the_best_language_is_picked_with_fallbacks() {
        let map = json!({"en": "Room", "fr": "Salle", "de-CH": "Zimmer", "@none": "R"});
        assert_eq!(pick("fr", map.clone()), Some(("fr".into(), json!("Salle"))));
        assert_eq!(pick("FR", map.clone()), Some(("fr".into(), json!("Salle"))), "case-insensitive");
        assert_eq!(pick("de", map.clone()), Some(("de-CH".into(), json!("Zimmer"))), "a range matches its subtags");
        assert_eq!(pick("it,en;q=0.5,fr;q=0.8", map.clone()), Some(("fr".into(), json!("Salle"))), "by weight");
        assert_eq!(pick("en;q=0,fr;q=0.1", map.clone()), Some(("fr".into(), json!("Salle"))), "q=0 excludes");
        assert_eq!(pick("it", map.clone()), Some(("@none".into(), json!("R"))), "@none when nothing matches");
        assert_eq!(pick("*", map.clone()), Some(("de-CH".into(), json!("Zimmer"))), "* is any tagged entry");
        assert_eq!(pick("it", json!({"fr": "Salle", "en": "Room"})), Some(("en".into(), json!("Room"))), "else any");
        assert_eq!(pick("e", json!({"en": "Room"})), Some(("en".into(), json!("Room"))), "fallback, not a match");
        assert_eq!(pick("fr", json!({})), None);
    }

    #[test]
    fn invalid_lang_parameters_are_refused() {
        for bad in ["", "fr;q=2", "fr;q=x", "fr;x=1", "f r", "123", "toolongtag", "en-", "fr;q=0.1234", "en;q=-0"] {
            assert!(LanguageFilter::parse(bad).is_err(), "{bad}");
        }
        let many = vec!["en"; MAX_RANGES + 1].join(",");
        assert!(LanguageFilter::parse(&many).is_err());
        for good in ["en", "en-GB, fr;q=0.5", "*", "zh-Hant-TW;q=1.0", "sr-Latn-RS;q=0.001"] {
            assert!(LanguageFilter::parse(good).is_ok(), "{good}");
        }
    }
}
