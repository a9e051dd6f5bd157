//! A builder for the plugin's [`Manifest`].

use crate::{Capability, Collection, Job, Manifest, Route};

/// Starts a manifest for the plugin `name` at `version` (usually `env!("CARGO_PKG_VERSION")`).
pub fn manifest(name: &str, version: &str) -> ManifestBuilder {
    ManifestBuilder(Manifest {
        name: name.into(),
        version: version.into(),
        description: String::new(),
        routes: Vec::new(),
        events: Vec::new(),
        jobs: Vec::new(),
        capabilities: Vec::new(),
        collections: Vec::new(),
        config_schema: None,
    })
}

/// Builds a [`Manifest`] step by step.
pub struct ManifestBuilder(Manifest);

impl ManifestBuilder {
    /// One line describing the plugin.
    pub fn description(mut self, d: &str) -> Self {
        self.0.description = d.into();
        self
    }
    /// A route under `/v1` (`{name}` segments become path parameters) and the roles allowed.
    pub fn route(mut self, method: &str, path: &str, roles: &[&str], summary: &str) -> Self {
        self.0.routes.push(Route {
            method: method.into(),
            path: path.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            summary: summary.into(),
        });
        self
    }
    /// Subscribes to an engine event.
    pub fn event(mut self, name: &str) -> Self {
        self.0.events.push(name.into());
        self
    }
    /// A job run every `every_seconds` for each tenant that enabled the plugin.
    pub fn job(mut self, name: &str, every_seconds: u32) -> Self {
        self.0.jobs.push(Job {
            name: name.into(),
            every_seconds,
        });
        self
    }
    /// Asks for a capability.
    pub fn capability(mut self, c: Capability) -> Self {
        self.0.capabilities.push(c);
        self
    }
    /// Declares a storage collection and its indexed fields (at most 4); asks for `storage`.
    pub fn collection(mut self, name: &str, indexes: &[&str]) -> Self {
        if !self
            .0
            .capabilities
            .iter()
            .any(|c| matches!(c, Capability::Storage))
        {
            self.0.capabilities.push(Capability::Storage);
        }
        self.0.collections.push(Collection {
            name: name.into(),
            indexes: indexes.iter().map(|r| r.to_string()).collect(),
        });
        self
    }
    /// The JSON Schema of the per-tenant configuration.
    pub fn config_schema(mut self, schema: serde_json::Value) -> Self {
        self.0.config_schema = Some(schema.to_string());
        self
    }
    /// The finished manifest.
    pub fn build(self) -> Manifest {
        self.0
    }
}
