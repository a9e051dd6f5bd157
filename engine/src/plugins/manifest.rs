//! A plugin's manifest as the engine keeps it: validated once at install, then used to route
//! requests, check roles, and scope storage to declared collections and indexes.

use std::collections::HashMap;

use serde::Serialize;

use super::bindings::types;
use crate::auth::Role;

/// Most indexed fields a collection may declare (columns idx1..idx4 of `plugin_documents`).
pub const MAX_INDEXES: usize = 4;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteSpec {
    pub method: String,
    pub path: String,
    /// Empty: every team role.
    pub roles: Vec<Role>,
    /// The manifest named the pseudo-role `partner`: partners with HTTP Basic credentials
    /// (`partners`) may call the route too.
    pub partners: bool,
    pub summary: String,
    #[serde(skip)]
    segments: Vec<Segment>,
}

#[derive(Clone, Debug)]
enum Segment {
    Literal(String),
    Param(String),
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    pub storage: bool,
    pub events: bool,
    pub config: bool,
    pub core_records: bool,
    pub ledger: bool,
    pub http_outbound: Vec<String>,
}

impl Capabilities {
    pub fn names(&self) -> Vec<String> {
        let mut v = Vec::new();
        for (on, name) in [
            (self.storage, "storage"),
            (self.events, "events"),
            (self.config, "config"),
            (self.core_records, "core-records"),
            (self.ledger, "ledger"),
        ] {
            if on {
                v.push(name.to_string());
            }
        }
        for h in &self.http_outbound {
            v.push(format!("http-outbound:{h}"));
        }
        v
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    pub name: String,
    pub every_seconds: u32,
}

#[derive(Clone, Debug)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub description: String,
    pub routes: Vec<RouteSpec>,
    pub events: Vec<String>,
    pub jobs: Vec<JobSpec>,
    pub capabilities: Capabilities,
    /// Collection → its indexed fields, in slot order (idx1, idx2, ...).
    pub collections: HashMap<String, Vec<String>>,
    pub config_schema: Option<serde_json::Value>,
}

/// The matched route of a request: which route, and the values of its `{name}` segments.
pub struct RouteMatch<'a> {
    pub route: &'a RouteSpec,
    pub params: Vec<(String, String)>,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
}

fn valid_field(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Manifest {
    /// Validates what `describe` returned.
    pub fn from_wit(m: types::Manifest) -> Result<Manifest, String> {
        if !valid_name(&m.name) {
            return Err(format!(
                "plugin name {:?} must be 1-64 lower-case letters, digits or '-'",
                m.name
            ));
        }
        if m.version.is_empty() || m.version.len() > 64 {
            return Err("version must be 1-64 characters".into());
        }
        let mut routes = Vec::new();
        for r in m.routes {
            let method = r.method.to_ascii_uppercase();
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
                return Err(format!("route {} {}: unsupported method", r.method, r.path));
            }
            if !r.path.starts_with("/v1/") || r.path.len() > 256 {
                return Err(format!("route {}: paths must be under /v1/", r.path));
            }
            let mut segments = Vec::new();
            for seg in r.path.trim_start_matches('/').split('/') {
                if let Some(p) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    if !valid_field(p) {
                        return Err(format!("route {}: bad parameter {{{p}}}", r.path));
                    }
                    segments.push(Segment::Param(p.to_string()));
                } else if seg.is_empty() || seg.contains(['{', '}']) {
                    return Err(format!("route {}: bad segment {seg:?}", r.path));
                } else {
                    segments.push(Segment::Literal(seg.to_string()));
                }
            }
            let mut roles = Vec::new();
            let mut partners = false;
            for name in &r.roles {
                if name == "partner" {
                    partners = true;
                    continue;
                }
                let role = Role::parse(name)
                    .ok_or_else(|| format!("route {}: unknown role {name:?}", r.path))?;
                if !role.assignable() {
                    return Err(format!("route {}: role {name} is not for tenants", r.path));
                }
                roles.push(role);
            }
            if partners && roles.is_empty() {
                return Err(format!(
                    "route {}: a partner route also names the team roles allowed",
                    r.path
                ));
            }
            routes.push(RouteSpec {
                method,
                path: r.path,
                roles,
                partners,
                summary: r.summary,
                segments,
            });
        }
        let mut caps = Capabilities::default();
        for c in m.capabilities {
            match c {
                types::Capability::Storage => caps.storage = true,
                types::Capability::Events => caps.events = true,
                types::Capability::Config => caps.config = true,
                types::Capability::CoreRecords => caps.core_records = true,
                types::Capability::Ledger => caps.ledger = true,
                types::Capability::HttpOutbound(hosts) => caps.http_outbound.extend(hosts),
            }
        }
        let mut collections = HashMap::new();
        for c in m.collections {
            if !valid_field(&c.name) {
                return Err(format!("collection {:?}: bad name", c.name));
            }
            if c.indexes.len() > MAX_INDEXES {
                return Err(format!(
                    "collection {}: at most {MAX_INDEXES} indexed fields",
                    c.name
                ));
            }
            if let Some(f) = c.indexes.iter().find(|f| !valid_field(f)) {
                return Err(format!("collection {}: bad index field {f:?}", c.name));
            }
            collections.insert(c.name, c.indexes);
        }
        let config_schema = match m.config_schema {
            Some(s) => Some(
                serde_json::from_str(&s).map_err(|e| format!("config-schema is not JSON: {e}"))?,
            ),
            None => None,
        };
        Ok(Manifest {
            name: m.name,
            version: m.version,
            description: m.description,
            routes,
            events: m.events,
            jobs: m
                .jobs
                .into_iter()
                .map(|j| JobSpec {
                    name: j.name,
                    every_seconds: j.every_seconds,
                })
                .collect(),
            capabilities: caps,
            collections,
            config_schema,
        })
    }

    /// The route serving `method path`, if any (first declared wins).
    pub fn match_route(&self, method: &str, path: &str) -> Option<RouteMatch<'_>> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        'routes: for r in &self.routes {
            if r.method != method || r.segments.len() != parts.len() {
                continue;
            }
            let mut params = Vec::new();
            for (seg, part) in r.segments.iter().zip(&parts) {
                match seg {
                    Segment::Literal(l) if l == part => {}
                    Segment::Param(name) if !part.is_empty() => {
                        let value = percent_decode(part);
                        params.push((name.clone(), value));
                    }
                    _ => continue 'routes,
                }
            }
            return Some(RouteMatch { route: r, params });
        }
        None
    }

    /// True when some route has this path with another method (for 405 vs 404).
    pub fn has_path(&self, path: &str) -> bool {
        self.routes
            .iter()
            .any(|r| self.match_route(&r.method, path).is_some())
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wit(routes: &[(&str, &str, &[&str])]) -> types::Manifest {
        types::Manifest {
            name: "demo".into(),
            version: "1.0.0".into(),
            description: String::new(),
            routes: routes
                .iter()
                .map(|(m, p, r)| types::Route {
                    method: m.to_string(),
                    path: p.to_string(),
                    roles: r.iter().map(|s| s.to_string()).collect(),
                    summary: String::new(),
                })
                .collect(),
            events: vec![],
            jobs: vec![],
            capabilities: vec![types::Capability::Storage],
            collections: vec![types::Collection {
                name: "things".into(),
                indexes: vec!["status".into()],
            }],
            config_schema: None,
        }
    }

    #[test]
    fn routes_match_literals_and_parameters() {
        let m = Manifest::from_wit(wit(&[
            ("GET", "/v1/things", &["owner"]),
            ("get", "/v1/things/{thing-id}/parts", &[]),
        ]))
        .unwrap();
        assert!(m.match_route("GET", "/v1/things").is_some());
        assert!(m.match_route("POST", "/v1/things").is_none());
        let hit = m.match_route("GET", "/v1/things/a%20b/parts").unwrap();
        assert_eq!(
            hit.params,
            vec![("thing-id".to_string(), "a b".to_string())]
        );
        assert!(m.match_route("GET", "/v1/things//parts").is_none());
        assert!(m.match_route("GET", "/v1/things/x").is_none());
        assert_eq!(m.routes[0].roles, vec![Role::Owner]);
    }

    #[test]
    fn bad_manifests_are_refused() {
        assert!(Manifest::from_wit(wit(&[("GET", "/v2/x", &[])])).is_err());
        assert!(Manifest::from_wit(wit(&[("TRACE", "/v1/x", &[])])).is_err());
        assert!(Manifest::from_wit(wit(&[("GET", "/v1/x", &["wizard"])])).is_err());
        assert!(Manifest::from_wit(wit(&[("GET", "/v1/x", &["platform_operator"])])).is_err());
        let mut w = wit(&[]);
        w.name = "Bad Name".into();
        assert!(Manifest::from_wit(w).is_err());
        let mut w = wit(&[]);
        w.collections[0].indexes = vec!["a".into(), "b".into(), "c".into(), "d".into(), "e".into()];
        assert!(Manifest::from_wit(w).is_err());
    }
}
