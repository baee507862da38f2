//! `Fiware-ServicePath`, as Orion reads it: a comma-separated list of at most 10 absolute paths of at most 10
//! levels of 1–50 letters, digits or `_`, the last level of a path possibly being exactly `#` (the path and its
//! whole subtree); surrounding spaces and trailing slashes are dropped. A query (list, retrieval, `op/query`,
//! a subscription's scope) selects the entities whose path is one of the listed paths or lies under a `/#` one,
//! `/#` when the header is absent; a write names exactly one path without `#`, `/` when the header is absent.
//! Error descriptions are Orion's.

use crate::ngsi::ParseError;

/// The root service path, where entities written without `Fiware-ServicePath` live.
pub const ROOT: &str = "/";
/// The scope of a query without `Fiware-ServicePath`: every path.
pub const EVERYTHING: &str = "/#";
/// Most paths in one header.
pub const MAX_PATHS: usize = 10;
/// Most levels in one path.
pub const MAX_LEVELS: usize = 10;
/// Longest level of a path.
pub const MAX_LEVEL_LEN: usize = 50;

/// One path of a header: `/a/b`, or `/a/b/#` (`subtree`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ScopePath {
    /// The path without `/#` (`/` for the root).
    path: String,
    /// Whether the path's subtree is included.
    subtree: bool,
}

impl ScopePath {
    fn matches(&self, entity_path: &str) -> bool {
        if entity_path == self.path {
            return true;
        }
        self.subtree
            && (self.path == ROOT
                || entity_path.strip_prefix(self.path.as_str()).is_some_and(|rest| rest.starts_with('/')))
    }

    fn text(&self) -> String {
        match (self.subtree, self.path.as_str()) {
            (false, path) => path.to_string(),
            (true, ROOT) => EVERYTHING.to_string(),
            (true, path) => format!("{path}/#"),
        }
    }
}

/// A parsed `Fiware-ServicePath` header; empty when it is absent or empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServicePaths {
    paths: Vec<ScopePath>,
}

impl ServicePaths {
    /// Parses a header value (an empty one is the absent header).
    pub fn parse(header: &str) -> Result<ServicePaths, ParseError> {
        if header.trim().is_empty() {
            return Ok(ServicePaths::default());
        }
        let items: Vec<&str> = header.split(',').collect();
        if items.len() > MAX_PATHS {
            return Err(ParseError::new("too many service paths - a maximum of ten service paths is allowed"));
        }
        let paths = items.into_iter().map(parse_one).collect::<Result<Vec<_>, _>>()?;
        Ok(ServicePaths { paths })
    }

    /// Whether the header was given (and not empty).
    pub fn is_given(&self) -> bool {
        !self.paths.is_empty()
    }

    /// Whether a query in these paths selects an entity living in `entity_path` (every entity when no path was
    /// given: `/#`).
    pub fn matches(&self, entity_path: &str) -> bool {
        self.paths.is_empty() || self.paths.iter().any(|scope| scope.matches(entity_path))
    }

    /// The one path a write goes to: `/` when none was given; more than one path, or a `#`, is refused.
    pub fn update_path(&self) -> Result<String, ParseError> {
        match self.paths.as_slice() {
            [] => Ok(ROOT.to_string()),
            [one] if !one.subtree => Ok(one.path.clone()),
            [_] => Err(ParseError::new("Bad Character in Service-Path")),
            _ => Err(ParseError::new("more than one service path in context update request")),
        }
    }

    /// The canonical header text (`/#` when none was given): paths as written, without spaces or trailing
    /// slashes, joined by `,`.
    pub fn text(&self) -> String {
        if self.paths.is_empty() {
            return EVERYTHING.to_string();
        }
        self.paths.iter().map(ScopePath::text).collect::<Vec<_>>().join(",")
    }
}

fn parse_one(item: &str) -> Result<ScopePath, ParseError> {
    let item = item.trim();
    let trimmed = item.trim_end_matches('/');
    let path = if trimmed.is_empty() && !item.is_empty() { ROOT } else { trimmed };
    if path.is_empty() {
        return Err(ParseError::new("empty component in ServicePath"));
    }
    let Some(levels) = path.strip_prefix('/') else {
        return Err(ParseError::new("Only /absolute/ Service Paths allowed [a service path must begin with /]"));
    };
    if levels.is_empty() {
        return Ok(ScopePath { path: ROOT.to_string(), subtree: false });
    }
    let levels: Vec<&str> = levels.split('/').collect();
    if levels.len() > MAX_LEVELS {
        return Err(ParseError::new("too many components in ServicePath"));
    }
    let last = levels.len() - 1;
    for (index, level) in levels.iter().enumerate() {
        if level.len() > MAX_LEVEL_LEN {
            return Err(ParseError::new("component-name too long in ServicePath"));
        }
        if level.is_empty() {
            return Err(ParseError::new("empty component in ServicePath"));
        }
        if index == last && *level == "#" {
            continue;
        }
        if !level.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ParseError::new("a component of ServicePath contains an illegal character"));
        }
    }
    if levels[last] == "#" {
        let parent = &path[..path.len() - 2];
        let parent = if parent.is_empty() { ROOT } else { parent };
        return Ok(ScopePath { path: parent.to_string(), subtree: true });
    }
    Ok(ScopePath { path: path.to_string(), subtree: false })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(header: &str) -> String {
        ServicePaths::parse(header).unwrap_err().message().to_string()
    }

    #[test]
    fn headers_follow_orion_syntax_and_messages() {
        for good in ["/", "/a", "/a/b_c/D1", "/a/#", "/#", "/a, /b", "/a/", " /a ", &format!("/{}", "x".repeat(50))] {
            assert!(ServicePaths::parse(good).is_ok(), "{good}");
        }
        assert_eq!(error("a"), "Only /absolute/ Service Paths allowed [a service path must begin with /]");
        assert_eq!(error("/service,sr"), "Only /absolute/ Service Paths allowed [a service path must begin with /]");
        assert_eq!(error(&"/a".repeat(11)), "too many components in ServicePath");
        assert_eq!(error(&["/a"; 11].join(",")), "too many service paths - a maximum of ten service paths is allowed");
        assert_eq!(error(&format!("/{}", "x".repeat(51))), "component-name too long in ServicePath");
        assert_eq!(error("/a b"), "a component of ServicePath contains an illegal character");
        assert_eq!(error("/a-b"), "a component of ServicePath contains an illegal character");
        assert_eq!(error("/a#"), "a component of ServicePath contains an illegal character");
        assert_eq!(error("/#/a"), "a component of ServicePath contains an illegal character");
        assert_eq!(error("/a//b"), "empty component in ServicePath");
        assert_eq!(error("/a,"), "empty component in ServicePath");
        assert!(!ServicePaths::parse("").unwrap().is_given());
    }

    #[test]
    fn queries_select_paths_and_subtrees() {
        let scope = ServicePaths::parse("/a/#, /b").unwrap();
        for inside in ["/a", "/a/x", "/a/x/y", "/b"] {
            assert!(scope.matches(inside), "{inside}");
        }
        for outside in ["/", "/ab", "/b/x", "/c"] {
            assert!(!scope.matches(outside), "{outside}");
        }
        assert!(ServicePaths::default().matches("/any/where"));
        let root_tree = ServicePaths::parse("/#").unwrap();
        assert!(root_tree.matches("/") && root_tree.matches("/z"));
        let root = ServicePaths::parse("/").unwrap();
        assert!(root.matches("/") && !root.matches("/z"));
        assert_eq!(scope.text(), "/a/#,/b");
        assert_eq!(ServicePaths::parse("/a/, /#").unwrap().text(), "/a,/#");
        assert_eq!(ServicePaths::default().text(), "/#");
    }

    #[test]
    fn writes_take_exactly_one_plain_path() {
        assert_eq!(ServicePaths::default().update_path().unwrap(), "/");
        assert_eq!(ServicePaths::parse("/a/b/").unwrap().update_path().unwrap(), "/a/b");
        let several = ServicePaths::parse("/a,/b").unwrap().update_path().unwrap_err();
        assert_eq!(several.message(), "more than one service path in context update request");
        let subtree = ServicePaths::parse("/a/#").unwrap().update_path().unwrap_err();
        assert_eq!(subtree.message(), "Bad Character in Service-Path");
    }
}
