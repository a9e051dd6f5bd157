//! WebAssembly plugins: components implementing `lumire:plugin/feature-plugin@0.1.0` (see
//! `wit/` and docs/plugins.md), installed for the whole platform from the plugins directory and
//! enabled per tenant with the feature flag `plugin.<name>`.
//!
//! - `bindings`: host bindings generated from the WIT package,
//! - `manifest`: the validated manifest and route matching,
//! - `runtime`: wasmtime (engine, cache, limits, one store per call),
//! - `registry`: installing plugins and calling them,
//! - `host`: the host interfaces a plugin imports (storage, events, config, log),
//! - `storage`: the tenant-scoped document store,
//! - `enablement`: which plugins a tenant enabled, cached for a second,
//! - `http`: `GET /v1/plugins` and the fallback that serves plugin routes,
//! - `events`: delivering outbox events to subscribed, enabled plugins (`handle-event`),
//! - `jobs`: running the manifests' scheduled jobs (`run-job`) once per interval and tenant,
//! - `capabilities`: the 0.2.0 host interfaces (files, records, ledger, http-client),
//! - `connector`: platform-connector components behind the engine's connector calls,
//! - `approval`: the operator's approval of a plugin's capabilities.

pub mod approval;
pub mod bindings;
pub mod call_tx;
pub mod capabilities;
pub mod config_api;
pub mod connector;
pub mod enablement;
pub mod events;
pub mod host;
pub mod http;
pub mod jobs;
pub mod manifest;
pub mod openapi;
pub mod registry;
pub mod runtime;
pub mod storage;
pub mod uninstall;

pub use registry::{Installed, Plugins};

use crate::auth::roles::{ADMINS, STAFF};
use crate::http::api::{Api, Op};

/// The tenant feature flag that enables a plugin.
pub fn flag_name(plugin: &str) -> String {
    format!("plugin.{plugin}")
}

pub fn routes(api: &mut Api) {
    api.add(
        Op::get("/v1/plugins", "getPlugins", "plugins")
            .summary("Installed plugins: name, version, capabilities, routes, and whether the calling tenant enabled each (feature flag `plugin.<name>`).")
            .staff(STAFF),
        http::list,
    );
    api.add(
        Op::get("/v1/plugins/{name}/config", "getPluginsNameConfig", "plugins")
            .summary("The calling tenant's configuration of a plugin and the names of its secrets (never their values).")
            .staff(ADMINS),
        config_api::get,
    );
    api.add(
        Op::put("/v1/plugins/{name}/config", "putPluginsNameConfig", "plugins")
            .summary("Replace the tenant's configuration of a plugin (checked against the manifest's config schema: required properties and top-level types).")
            .staff(ADMINS)
            .body(r#"{"config":{"defaultPipeline":"retail"}}"#),
        config_api::put,
    );
    api.add(
        Op::put(
            "/v1/plugins/{name}/secrets/{key}",
            "putPluginsNameSecretsKey",
            "plugins",
        )
        .summary("Set a secret of a plugin for the tenant (write-only, encrypted at rest).")
        .staff(ADMINS)
        .body(r#"{"value":"s3cr3t"}"#),
        config_api::put_secret,
    );
    api.add(
        Op::delete(
            "/v1/plugins/{name}/secrets/{key}",
            "deletePluginsNameSecretsKey",
            "plugins",
        )
        .summary("Remove a secret of a plugin for the tenant.")
        .staff(ADMINS),
        config_api::delete_secret,
    );
}

/// `lumire plugin install FILE.wasm`: checks the component (compiles it, asks it to describe
/// itself, validates the manifest and that no installed plugin clashes with it), shows what it
/// asks for, and once the operator approves copies it into the plugins directory as
/// `<name>.wasm`. The engine loads it at its next start.
pub async fn install_cli(
    settings: &crate::config::Settings,
    file: &std::path::Path,
    approved: bool,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<std::path::PathBuf> {
    use std::io::BufRead;
    let p = Plugins::inspect(settings, file).await?;
    let m = &p.manifest;
    writeln!(out, "plugin      {} {}", m.name, m.version)?;
    writeln!(out, "file        {} (sha256 {})", file.display(), p.sha256)?;
    writeln!(
        out,
        "contract    lumire:plugin@{} ({})",
        p.contract,
        p.world()
    )?;
    if !m.description.is_empty() {
        writeln!(out, "about       {}", m.description)?;
    }
    let caps = m.capabilities.names();
    writeln!(
        out,
        "capabilities {}",
        if caps.is_empty() {
            "none".to_string()
        } else {
            caps.join(", ")
        }
    )?;
    for r in &m.routes {
        let roles: Vec<&str> = r.roles.iter().map(|x| x.as_str()).collect();
        writeln!(
            out,
            "route       {} {} ({})",
            r.method,
            r.path,
            if roles.is_empty() {
                "every team role".to_string()
            } else {
                roles.join(", ")
            }
        )?;
    }
    for e in &m.events {
        writeln!(out, "event       {e}")?;
    }
    for j in &m.jobs {
        writeln!(out, "job         {} every {} s", j.name, j.every_seconds)?;
    }
    for (c, idx) in &m.collections {
        writeln!(out, "collection  {c} (indexes: {})", idx.join(", "))?;
    }
    let target = settings.plugins_dir.join(format!("{}.wasm", m.name));
    // Another plugin file already claiming this name (other than the one being replaced)?
    let installed = Plugins::load_files(settings, Some(&target)).await?;
    if let Some(clash) = installed.iter().find(|i| i.manifest.name == m.name) {
        anyhow::bail!(
            "{} already provides a plugin named {}",
            clash.file.display(),
            m.name
        );
    }
    for r in &m.routes {
        if let Some(other) = installed
            .iter()
            .find(|i| i.manifest.match_route(&r.method, &r.path).is_some())
        {
            anyhow::bail!(
                "route {} {} is already served by plugin {}",
                r.method,
                r.path,
                other.manifest.name
            );
        }
    }
    if !approved {
        write!(out, "Install it with these capabilities? [y/N] ")?;
        out.flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            anyhow::bail!("not installed");
        }
    }
    std::fs::create_dir_all(&settings.plugins_dir)?;
    let tmp = settings.plugins_dir.join(format!(".{}.wasm.tmp", m.name));
    std::fs::copy(file, &tmp)?;
    std::fs::rename(&tmp, &target)?;
    approval::write(
        &target,
        &approval::Approval {
            plugin: m.name.clone(),
            sha256: p.sha256.clone(),
            capabilities: caps.clone(),
            approved_by: std::env::var("USER").unwrap_or_else(|_| "operator".into()),
            approved_at: crate::util::now(),
        },
    )?;
    writeln!(out, "approved    {}", approval::path_for(&target).display())?;
    writeln!(
        out,
        "installed   {} (restart the engine to load it; tenants enable it with the feature flag {})",
        target.display(),
        flag_name(&m.name)
    )?;
    Ok(target)
}
