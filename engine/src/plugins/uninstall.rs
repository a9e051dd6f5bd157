//! Taking a plugin off the platform, in two steps an operator runs in order:
//!
//! 1. `lumire plugin uninstall NAME` removes its component and approval from the plugins
//!    directory; each engine stops serving it at its next start (its routes answer 404, it gets
//!    no events or jobs). Its data stays, so reinstalling it brings everything back.
//! 2. `lumire plugin purge NAME`, once no engine runs it any more, deletes its data for every
//!    tenant: documents, configuration and secrets, job schedule, event deliveries and the
//!    files it stored in object storage. It refuses while the plugin is still installed.
//!
//! Ledger entries a plugin posted are **kept**: they are money history, and every balance must
//! stay explained by its entries (its `plugin:<name>:*` accounts and idempotency keys too).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, bail};

use super::{Plugins, approval};
use crate::config::Settings;
use crate::db::{Db, Tx};
use crate::storage::ObjectStore;

/// What a purge deleted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub documents: u64,
    pub configs: u64,
    pub job_runs: u64,
    pub event_deliveries: u64,
    pub files: u64,
}

/// Plugin names as manifests have them: the object-storage prefix is built from it.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        bail!("{name:?} is not a plugin name (1-64 of a-z, 0-9 and -)");
    }
    Ok(())
}

fn confirm(out: &mut dyn Write, question: &str) -> anyhow::Result<()> {
    use std::io::BufRead;
    write!(out, "{question} [y/N] ")?;
    out.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        bail!("nothing changed");
    }
    Ok(())
}

/// The installed component of plugin `name`, if any.
async fn installed_file(settings: &Settings, name: &str) -> anyhow::Result<Option<PathBuf>> {
    let installed = Plugins::load_files(settings, None).await?;
    Ok(installed
        .iter()
        .find(|p| p.manifest.name == name)
        .map(|p| p.file.clone()))
}

/// `lumire plugin uninstall NAME`: removes the plugin's component and approval.
pub async fn uninstall_cli(
    settings: &Settings,
    name: &str,
    approved: bool,
    out: &mut dyn Write,
) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    let Some(file) = installed_file(settings, name).await? else {
        bail!(
            "no plugin named {name} is installed in {}",
            settings.plugins_dir.display()
        );
    };
    if !approved {
        confirm(out, &format!("Uninstall {name} ({})?", file.display()))?;
    }
    std::fs::remove_file(&file).with_context(|| format!("removing {}", file.display()))?;
    match std::fs::remove_file(approval::path_for(&file)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).context("removing the approval"),
    }
    writeln!(
        out,
        "uninstalled {name} ({}); restart the engines to stop serving it. Its data is kept: \
         `lumire plugin purge {name}` deletes it once no engine runs the plugin.",
        file.display()
    )?;
    Ok(file)
}

/// Deletes every tenant's data of plugin `name` (not its ledger entries). Files go first: if
/// the object store fails part-way, the records are still there and a rerun finishes the job.
pub async fn purge(db: &Db, store: &dyn ObjectStore, name: &str) -> anyhow::Result<Purged> {
    check_name(name)?;
    let tenants: Vec<(String,)> = sqlx::query_as("SELECT id FROM tenants ORDER BY id")
        .fetch_all(db.pool())
        .await?;
    let mut purged = Purged::default();
    for (tenant,) in &tenants {
        purged.files += store
            .delete_prefix(&format!("{tenant}/plugins/{name}"))
            .await
            .with_context(|| format!("deleting the files of tenant {tenant}"))?;
    }
    let mut tx = db.begin().await?;
    purged.documents = delete_rows(&mut tx, "plugin_documents", name).await?;
    purged.configs = delete_rows(&mut tx, "plugin_configs", name).await?;
    purged.job_runs = delete_rows(&mut tx, "plugin_job_runs", name).await?;
    purged.event_deliveries = delete_rows(&mut tx, "plugin_event_deliveries", name).await?;
    tx.commit().await?;
    Ok(purged)
}

/// Deletes the rows of plugin `name` from one of the plugin tables (a constant of this module).
async fn delete_rows(tx: &mut Tx, table: &str, name: &str) -> anyhow::Result<u64> {
    let done = sqlx::query(&format!("DELETE FROM {table} WHERE plugin = $1"))
        .bind(name)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected())
}

/// `lumire plugin purge NAME`: refuses while the plugin is installed, then [`purge`].
pub async fn purge_cli(
    settings: &Settings,
    name: &str,
    approved: bool,
    out: &mut dyn Write,
) -> anyhow::Result<Purged> {
    check_name(name)?;
    if let Some(file) = installed_file(settings, name).await? {
        bail!(
            "{name} is still installed ({}): run `lumire plugin uninstall {name}` and restart \
             the engines first",
            file.display()
        );
    }
    if !approved {
        confirm(
            out,
            &format!(
                "Delete every tenant's data of {name} (documents, configuration and secrets, \
                 job schedule, event deliveries, files)? Its ledger entries are kept."
            ),
        )?;
    }
    let db = Db::connect(&settings.database_url, 1).await?;
    db.migrate().await?;
    let store = crate::storage::from_settings(settings)?;
    let p = purge(&db, store.as_ref(), name).await?;
    writeln!(
        out,
        "purged {name}: {} documents, {} configurations, {} job schedules, {} event deliveries, {} files",
        p.documents, p.configs, p.job_runs, p.event_deliveries, p.files
    )?;
    Ok(p)
}
