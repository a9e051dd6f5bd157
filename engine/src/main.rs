//! The `lumire` binary: `serve` (default), `migrate`, `openapi`, `plugin install|uninstall|purge`,
//! `operator grant`.

use clap::{Parser, Subcommand};
use lumire_engine::{App, Settings};

#[derive(Parser)]
#[command(name = "lumire", version, about = "LumireCRM engine")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (migrates the database first).
    Serve {
        /// Listen address (overrides LUMIRE_LISTEN; default 127.0.0.1:4000).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Print the OpenAPI 3.1 document to stdout, with the routes of the plugins in
    /// LUMIRE_PLUGINS_DIR (no server, no database).
    Openapi,
    /// Manage WebAssembly plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Manage the installation's operators (`/v1/platform/*`).
    Operator {
        #[command(subcommand)]
        command: OperatorCommand,
    },
}

#[derive(Subcommand)]
enum OperatorCommand {
    /// Give an existing user the `platform_operator` role (it acts on every tenant through
    /// `/v1/platform/*`; no API can hand it out).
    Grant {
        /// The slug of the user's tenant (the installation's own, by convention).
        #[arg(long)]
        tenant: String,
        /// The user's e-mail address.
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Check a component, show the capabilities and routes it asks for and, once approved,
    /// copy it into the plugins directory (LUMIRE_PLUGINS_DIR); the engine loads it at its
    /// next start.
    Install {
        /// The component (`.wasm`) built for wasm32-wasip2.
        file: std::path::PathBuf,
        /// Approve without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Remove a plugin's component and approval from the plugins directory; engines stop
    /// serving it at their next start. Its data is kept (see `purge`).
    Uninstall {
        /// The plugin's name (as `GET /v1/plugins` shows it).
        name: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Delete every tenant's data of an uninstalled plugin (documents, configuration and
    /// secrets, job schedule, event deliveries, files). Its ledger entries are kept.
    Purge {
        /// The plugin's name.
        name: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        use std::io::Write;
        let settings = Settings::load()?;
        let doc = lumire_engine::app::openapi_document_with_plugins(&settings).await?;
        let text = serde_json::to_string_pretty(&doc)?;
        // A closed pipe (`lumire openapi | head`) is not an error worth a panic.
        let _ = writeln!(std::io::stdout().lock(), "{text}");
        return Ok(());
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("LUMIRE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // `LUMIRE_LOG_FORMAT=json`: one JSON object per line, with the fields of the enclosing
    // spans (request id, tenant, plugin, job) for log pipelines.
    if std::env::var("LUMIRE_LOG_FORMAT").as_deref() == Ok("json") {
        tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let mut settings = Settings::load()?;
    match cli.command {
        Some(Command::Migrate) => {
            let db = lumire_engine::db::Db::connect(&settings.database_url, 1).await?;
            db.migrate().await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Some(Command::Serve { listen }) => {
            if let Some(l) = listen {
                settings.listen = l;
            }
            serve(settings).await
        }
        Some(Command::Plugin { command }) => plugin_command(&settings, command).await,
        Some(Command::Operator {
            command: OperatorCommand::Grant { tenant, email },
        }) => {
            let db = lumire_engine::db::Db::connect(&settings.database_url, 1).await?;
            db.migrate().await?;
            let id = lumire_engine::platform::operators::grant(&db, &tenant, &email).await?;
            tracing::info!(user_id = %id, tenant = %tenant, "platform_operator granted");
            Ok(())
        }
        None | Some(Command::Openapi) => serve(settings).await,
    }
}

async fn plugin_command(settings: &Settings, command: PluginCommand) -> anyhow::Result<()> {
    use lumire_engine::plugins::{install_cli, uninstall};
    let out = &mut std::io::stdout();
    match command {
        PluginCommand::Install { file, yes } => {
            install_cli(settings, &file, yes, out).await.map(drop)
        }
        PluginCommand::Uninstall { name, yes } => {
            uninstall::uninstall_cli(settings, &name, yes, out)
                .await
                .map(drop)
        }
        PluginCommand::Purge { name, yes } => uninstall::purge_cli(settings, &name, yes, out)
            .await
            .map(drop),
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    tracing::info!(settings = ?settings, "starting");
    let app = App::build(settings).await?;
    app.run_until(shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
