//! The operator's approval of a plugin's capabilities, written by `lumire plugin install` as
//! `<name>.approval.json` beside `<name>.wasm` in the plugins directory (shared by every engine
//! process that loads the directory).
//!
//! A plugin with an approval gets the capabilities its manifest asks for *and* the approval
//! lists; a file whose sha256 differs from the approved one (replaced after approval) is
//! refused. A bundled plugin placed in the directory by the build (no approval file) gets what
//! its manifest asks for: putting a file in the plugins directory is itself the operator's act.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use super::manifest::Capabilities;

#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    pub plugin: String,
    pub sha256: String,
    /// Capability names as `Capabilities::names` gives them (`http-outbound:<host>` per host).
    pub capabilities: Vec<String>,
    pub approved_by: String,
    pub approved_at: String,
}

/// `<dir>/<stem>.approval.json` for `<dir>/<stem>.wasm`.
pub fn path_for(wasm: &Path) -> PathBuf {
    wasm.with_extension("approval.json")
}

/// The approval recorded for a plugin file, if any.
pub fn read(wasm: &Path) -> anyhow::Result<Option<Approval>> {
    let path = path_for(wasm);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("reading {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes an approval beside the plugin file (write, then rename).
pub fn write(wasm: &Path, approval: &Approval) -> anyhow::Result<()> {
    let path = path_for(wasm);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(approval)?)?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

impl Approval {
    /// What the plugin may use: the requested capabilities the approval covers.
    pub fn grant(
        &self,
        plugin: &str,
        sha256: &str,
        requested: &Capabilities,
    ) -> anyhow::Result<Capabilities> {
        if self.plugin != plugin {
            bail!(
                "the approval beside this file is for plugin {}, not {plugin}",
                self.plugin
            );
        }
        if self.sha256 != sha256 {
            bail!(
                "the file changed after its approval (sha256 {} approved, {sha256} found); install it again with `lumire plugin install`",
                self.sha256
            );
        }
        let ok = |name: &str| self.capabilities.iter().any(|c| c == name);
        Ok(Capabilities {
            storage: requested.storage && ok("storage"),
            events: requested.events && ok("events"),
            config: requested.config && ok("config"),
            core_records: requested.core_records && ok("core-records"),
            ledger: requested.ledger && ok("ledger"),
            http_outbound: requested
                .http_outbound
                .iter()
                .filter(|h| ok(&format!("http-outbound:{h}")))
                .cloned()
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval(caps: &[&str]) -> Approval {
        Approval {
            plugin: "p".into(),
            sha256: "abc".into(),
            capabilities: caps.iter().map(|s| s.to_string()).collect(),
            approved_by: "op".into(),
            approved_at: "2026-11-23T00:00:00Z".into(),
        }
    }

    #[test]
    fn grants_only_what_was_both_requested_and_approved() {
        let requested = Capabilities {
            storage: true,
            ledger: true,
            http_outbound: vec!["a.example".into(), "b.example".into()],
            ..Capabilities::default()
        };
        let g = approval(&["storage", "http-outbound:a.example", "events"])
            .grant("p", "abc", &requested)
            .expect("grant");
        assert!(g.storage);
        assert!(!g.ledger);
        assert!(!g.events);
        assert_eq!(g.http_outbound, vec!["a.example".to_string()]);
    }

    #[test]
    fn a_changed_file_or_another_plugin_is_refused() {
        let requested = Capabilities::default();
        assert!(approval(&[]).grant("p", "other", &requested).is_err());
        assert!(approval(&[]).grant("q", "abc", &requested).is_err());
    }
}
