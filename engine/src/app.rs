//! Assembles the engine: settings → database → operation registry → HTTP server, plus the
//! background job loop and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Settings;
use crate::db::Db;
use crate::http::api::Api;
use crate::http::metrics::Metrics;
use crate::mail::Mailer;
use crate::storage::ObjectStore;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    pub store: Arc<dyn ObjectStore>,
    /// Encrypts tenants' stored secrets (provider webhook secrets, connector credentials).
    pub secrets: Arc<crate::secrets::SecretBox>,
    /// Trading-platform connectors available to this process.
    pub connectors: Arc<crate::connectors::Registry>,
    /// The OpenAPI document, built once from the registry at start-up.
    pub openapi: Arc<OnceLock<serde_json::Value>>,
    /// Installed WebAssembly plugins.
    pub plugins: Arc<crate::plugins::Plugins>,
    /// Abuse limits on public operations, per address and account.
    pub limits: Arc<crate::http::limits::Limits>,
}

/// Every feature registers its operations here.
pub fn register_all(api: &mut Api) {
    crate::meta::routes(api);
    crate::identity::routes(api);
    crate::api_keys::routes(api);
    crate::partners::routes(api);
    crate::team::routes(api);
    crate::tenants::routes(api);
    crate::platform::routes(api);
    crate::audit::routes(api);
    crate::payments::routes(api);
    crate::credit_lines::routes(api);
    crate::bonuses::routes(api);
    crate::fx::routes(api);
    crate::traders::routes(api);
    crate::passkeys::routes(api);
    crate::accounts::routes(api);
    crate::transactions::routes(api);
    crate::admin_traders::routes(api);
    crate::customer_rules::routes(api);
    crate::customers::routes(api);
    crate::portal::routes(api);
    crate::tags::routes(api);
    crate::segments::routes(api);
    crate::symbols::routes(api);
    crate::trading_groups::routes(api);
    crate::integrations::routes(api);
    crate::webhooks::routes(api);
    crate::risk_rules::routes(api);
    crate::workflows::routes(api);
    crate::support::routes(api);
    crate::plugins::routes(api);
}

/// The OpenAPI document without a database or server (for `lumire openapi`).
pub fn openapi_document() -> serde_json::Value {
    let mut api = Api::documenting();
    register_all(&mut api);
    serde_json::to_value(crate::http::openapi::document(api.ops())).unwrap_or_default()
}

/// The OpenAPI document with the routes of the plugins in `settings.plugins_dir` (inspected
/// without a database), as `lumire openapi` prints it.
pub async fn openapi_document_with_plugins(
    settings: &Settings,
) -> anyhow::Result<serde_json::Value> {
    let mut doc = openapi_document();
    let installed = crate::plugins::Plugins::load_files(settings, None).await?;
    crate::plugins::openapi::add_routes(&mut doc, &installed);
    Ok(doc)
}

pub struct App {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl App {
    /// Connects and migrates the database, builds the router and binds the listen address
    /// (`127.0.0.1:0` picks a free port, as the tests do).
    pub async fn build(settings: Settings) -> anyhow::Result<App> {
        let db = Db::connect(&settings.database_url, settings.db_max_connections).await?;
        db.migrate().await?;
        let listener = TcpListener::bind(&settings.listen).await?;
        let store = crate::storage::from_settings(&settings)?;
        let secrets =
            crate::secrets::SecretBox::load(settings.secret_key.as_deref(), &settings.data_dir)?;
        let mut connectors = match &settings.native_connectors_dir {
            Some(dir) => crate::connectors::Registry::load_dir(dir),
            None => crate::connectors::Registry::default(),
        };
        let secrets = Arc::new(secrets);
        let plugins =
            Arc::new(crate::plugins::Plugins::load(&settings, &db, &secrets, store.clone()).await?);
        connectors.add_plugins(&plugins);
        // Features join the core's flows through its named extension points.
        crate::bonuses::register_hooks();
        crate::partners::register();
        let limits = Arc::new(crate::http::limits::Limits::new(&settings));
        let state = AppState {
            db,
            connectors: Arc::new(connectors),
            plugins,
            secrets,
            settings: Arc::new(settings),
            metrics: Arc::new(Metrics::new()),
            limits,
            store,
            openapi: Arc::new(OnceLock::new()),
        };
        let mut api = Api::serving(state.clone());
        register_all(&mut api);
        let mut doc = serde_json::to_value(crate::http::openapi::document(api.ops()))?;
        crate::plugins::openapi::add_routes(&mut doc, state.plugins.installed());
        let _ = state.openapi.set(doc);
        let (router, _ops) = api.into_parts();
        let router = crate::http::finish_router(router, state.clone())
            .layer(DefaultBodyLimit::max(state.settings.max_body_bytes));
        Ok(App {
            listener,
            router,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves; in-flight requests then finish before this returns.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let jobs = if self.state.settings.run_jobs {
            Some(tokio::spawn(run_jobs(self.state.clone(), stop_rx)))
        } else {
            None
        };
        let addr = self.listener.local_addr()?;
        tracing::info!(%addr, "lumire engine listening");
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await?;
        let _ = stop_tx.send(true);
        if let Some(j) = jobs {
            let _ = j.await;
        }
        self.state.db.close().await;
        tracing::info!("lumire engine stopped");
        Ok(())
    }
}

async fn run_jobs(state: AppState, mut stop: watch::Receiver<bool>) {
    let mailer = match Mailer::new(
        state.settings.smtp_url.as_deref(),
        &state.settings.mail_from,
    ) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "invalid LUMIRE_SMTP_URL; mail stays in the outbox");
            match Mailer::new(None, &state.settings.mail_from) {
                Ok(m) => m,
                Err(_) => return,
            }
        }
    };
    // Webhooks run in their own loop, so slow receivers never hold up mail or housekeeping.
    let webhooks = tokio::spawn(run_webhooks(state.clone(), stop.clone()));
    let workflows = tokio::spawn(run_workflows(state.clone(), stop.clone()));
    let mut tick: u64 = 0;
    loop {
        use tracing::Instrument as _;
        let job = |name: &'static str| tracing::info_span!("job", job = name);
        if let Err(e) = mailer.run_once(&state.db).instrument(job("mail")).await {
            tracing::warn!(error = %e, "mail job failed");
        }
        if let Err(e) = crate::integrations::pushes::run_once(&state)
            .instrument(job("balance_pushes"))
            .await
        {
            tracing::warn!(error = %e, "balance push job failed");
        }
        let interval = state.settings.sync_interval_secs;
        // Every 30 s, look for connector configurations due for their scheduled sync.
        if interval > 0
            && tick.is_multiple_of(15)
            && let Err(e) = crate::integrations::sync::run_scheduled(&state, interval)
                .instrument(job("scheduled_sync"))
                .await
        {
            tracing::warn!(error = %e, "scheduled sync failed");
        }
        if let Err(e) = crate::plugins::events::run_once(&state)
            .instrument(job("plugin_events"))
            .await
        {
            tracing::warn!(error = %e, "plugin event delivery failed");
        }
        if let Err(e) = crate::plugins::jobs::run_once(&state)
            .instrument(job("plugin_jobs"))
            .await
        {
            tracing::warn!(error = %e, "plugin jobs failed");
        }
        if tick.is_multiple_of(300) {
            if let Err(e) = crate::housekeeping::purge(&state.db).await {
                tracing::warn!(error = %e, "housekeeping failed");
            }
            state.limits.forget_idle();
        }
        tick = tick.wrapping_add(1);
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
    let _ = webhooks.await;
    let _ = workflows.await;
}

/// Workflows and customer rules consume the events outbox in their own loop: a burst of
/// scripts never delays mail or webhook delivery.
async fn run_workflows(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        let busy = match crate::scripting::run_workflows_once(&state).await {
            Ok(n) => n > 0,
            Err(e) => {
                tracing::warn!(error = %e, "workflow job failed");
                false
            }
        };
        if *stop.borrow() {
            break;
        }
        if busy {
            continue;
        }
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

async fn run_webhooks(state: AppState, mut stop: watch::Receiver<bool>) {
    let worker = match crate::webhooks::Worker::new(&state.settings, state.secrets.clone()) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, "webhook worker unavailable; deliveries stay queued");
            return;
        }
    };
    loop {
        // A full batch means more may be due: go again at once.
        let busy = match worker.run_once(&state.db).await {
            Ok(n) => n >= crate::webhooks::worker::DELIVERY_BATCH as usize,
            Err(e) => {
                tracing::warn!(error = %e, "webhook job failed");
                false
            }
        };
        if *stop.borrow() {
            break;
        }
        if busy {
            continue;
        }
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}
