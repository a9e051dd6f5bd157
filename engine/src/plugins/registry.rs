//! Installed plugins: loaded from the plugins directory at start-up, each described once
//! (`describe`), validated, compiled (or loaded from the cache) and pre-instantiated.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};

use super::bindings::types;
use super::call_tx::CallTx;
use super::host::{CallCtx, ConnectorCall, Services};
use super::manifest::{Capabilities, Manifest, RouteMatch};
use super::runtime::{Failure, FeaturePre, Pre, Runtime};
use crate::config::Settings;
use crate::db::Db;
use crate::secrets::SecretBox;

pub struct Installed {
    pub manifest: Arc<Manifest>,
    /// sha256 of the component file.
    pub sha256: String,
    pub file: PathBuf,
    /// What the manifest asked for, before the operator's approval narrowed it.
    pub requested: Capabilities,
    /// The `lumire:plugin` package version the component was built against (`0.3.0`, ...).
    pub contract: String,
    pub(crate) pre: Pre,
}

impl Installed {
    /// `feature-plugin` or `platform-connector`.
    pub fn world(&self) -> &'static str {
        match self.pre {
            Pre::Feature(_) => "feature-plugin",
            Pre::Connector(_) => "platform-connector",
        }
    }
}

/// Every plugin installed on this engine, and the runtime that runs them.
pub struct Plugins {
    pub(crate) runtime: Option<Runtime>,
    installed: Vec<Arc<Installed>>,
    db: Option<Db>,
    secrets: Option<Arc<SecretBox>>,
    services: Option<Arc<Services>>,
    /// Which plugins each tenant enabled, cached briefly (see `enablement`).
    pub enablement: super::enablement::Enablement,
}

impl Plugins {
    pub fn none() -> Plugins {
        Plugins {
            runtime: None,
            installed: Vec::new(),
            db: None,
            secrets: None,
            services: None,
            enablement: super::enablement::Enablement::new(Duration::from_millis(
                Settings::default().plugin_flags_cache_ms,
            )),
        }
    }

    /// Installs every `*.wasm` in `settings.plugins_dir` (sorted by file name). A missing
    /// directory means no plugins; a component that does not load stops the start-up with an
    /// error naming the file.
    pub async fn load(
        settings: &Settings,
        db: &Db,
        secrets: &Arc<SecretBox>,
        store: Arc<dyn crate::storage::ObjectStore>,
    ) -> anyhow::Result<Plugins> {
        let files = wasm_files(&settings.plugins_dir)?;
        if files.is_empty() {
            return Ok(Plugins::none());
        }
        let runtime = Runtime::new(settings).context("starting the plugin runtime")?;
        let http = super::capabilities::outbound::client(settings.plugin_http_allow_private)
            .context("building the plugins' HTTP client")?;
        let plugins = Plugins {
            runtime: Some(runtime),
            installed: Vec::new(),
            db: Some(db.clone()),
            secrets: Some(secrets.clone()),
            services: Some(Arc::new(Services {
                store,
                http,
                http_allow_private: settings.plugin_http_allow_private,
            })),
            enablement: super::enablement::Enablement::new(Duration::from_millis(
                settings.plugin_flags_cache_ms,
            )),
        };
        plugins.install_all(files).await
    }

    async fn install_all(mut self, files: Vec<PathBuf>) -> anyhow::Result<Plugins> {
        for file in files {
            let p = self
                .install(&file)
                .await
                .with_context(|| format!("installing plugin {}", file.display()))?;
            tracing::info!(
                plugin = %p.manifest.name,
                version = %p.manifest.version,
                world = p.world(),
                contract = %format!("lumire:plugin@{}", p.contract),
                capabilities = ?p.manifest.capabilities.names(),
                routes = p.manifest.routes.len(),
                "plugin installed"
            );
            self.installed.push(p);
        }
        Ok(self)
    }

    /// The plugins of `settings.plugins_dir` but `skip`, inspected without a database.
    pub async fn load_files(
        settings: &Settings,
        skip: Option<&Path>,
    ) -> anyhow::Result<Vec<Arc<Installed>>> {
        let files: Vec<PathBuf> = wasm_files(&settings.plugins_dir)?
            .into_iter()
            .filter(|f| Some(f.as_path()) != skip)
            .collect();
        if files.is_empty() {
            return Ok(Vec::new());
        }
        let plugins = Plugins {
            runtime: Some(Runtime::new(settings).context("starting the plugin runtime")?),
            ..Plugins::none()
        };
        Ok(plugins.install_all(files).await?.installed)
    }

    async fn install(&self, file: &Path) -> anyhow::Result<Arc<Installed>> {
        let runtime = self.runtime.as_ref().context("no runtime")?;
        let bytes = std::fs::read(file)?;
        let (component, sha256) = runtime.load(&bytes)?;
        let pre = runtime.prepare(&component)?;
        let contract = runtime.contract_version(&component);
        // While describing itself a plugin has no tenant and no capability.
        let placeholder = Arc::new(Manifest {
            name: String::new(),
            version: String::new(),
            description: String::new(),
            routes: Vec::new(),
            events: Vec::new(),
            jobs: Vec::new(),
            capabilities: Default::default(),
            collections: Default::default(),
            config_schema: None,
        });
        let raw: types::Manifest = runtime
            .describe(&pre, self.ctx(placeholder, None, String::new())?)
            .await
            .map_err(|f| anyhow::anyhow!("describe {f}"))?;
        let mut manifest = Manifest::from_wit(raw).map_err(|e| anyhow::anyhow!("manifest: {e}"))?;
        let requested = manifest.capabilities.clone();
        if let Some(approval) = super::approval::read(file)? {
            manifest.capabilities = approval.grant(&manifest.name, &sha256, &requested)?;
        }
        if matches!(pre, Pre::Connector(_))
            && !(manifest.routes.is_empty()
                && manifest.events.is_empty()
                && manifest.jobs.is_empty())
        {
            bail!("a platform connector declares no routes, events or jobs");
        }
        if self
            .installed
            .iter()
            .any(|p| p.manifest.name == manifest.name)
        {
            bail!("a plugin named {} is already installed", manifest.name);
        }
        for r in &manifest.routes {
            if let Some((other, _)) = self.route(&r.method, &r.path) {
                bail!(
                    "route {} {} is already served by plugin {}",
                    r.method,
                    r.path,
                    other.manifest.name
                );
            }
        }
        Ok(Arc::new(Installed {
            manifest: Arc::new(manifest),
            sha256,
            file: file.to_path_buf(),
            requested,
            contract,
            pre,
        }))
    }

    fn ctx(
        &self,
        manifest: Arc<Manifest>,
        tenant_id: Option<String>,
        request_id: String,
    ) -> anyhow::Result<CallCtx> {
        Ok(CallCtx {
            db: self.db.clone(),
            secrets: self.secrets.clone(),
            services: self.services.clone(),
            manifest,
            tenant_id,
            request_id,
            connector: None,
        })
    }

    /// The call context of a connector call for a tenant's integration.
    pub(crate) fn connector_ctx(
        &self,
        plugin: &Installed,
        tenant_id: &str,
        connector: ConnectorCall,
    ) -> CallCtx {
        CallCtx {
            db: self.db.clone(),
            secrets: self.secrets.clone(),
            services: self.services.clone(),
            manifest: plugin.manifest.clone(),
            tenant_id: Some(tenant_id.to_string()),
            request_id: format!("connector:{}", crate::util::new_id()),
            connector: Some(Arc::new(connector)),
        }
    }

    /// The installed platform connectors.
    pub fn connectors(&self) -> impl Iterator<Item = &Arc<Installed>> {
        self.installed
            .iter()
            .filter(|p| matches!(p.pre, Pre::Connector(_)))
    }

    /// Compiles and describes a component without installing it or touching a database
    /// (`lumire plugin install` shows the result before copying the file).
    pub async fn inspect(settings: &Settings, file: &Path) -> anyhow::Result<Arc<Installed>> {
        let plugins = Plugins {
            runtime: Some(Runtime::new(settings).context("starting the plugin runtime")?),
            ..Plugins::none()
        };
        plugins.install(file).await
    }

    pub fn installed(&self) -> &[Arc<Installed>] {
        &self.installed
    }

    /// The installed plugin called `name`, if any.
    pub fn named(&self, name: &str) -> Option<&Arc<Installed>> {
        self.installed.iter().find(|p| p.manifest.name == name)
    }

    /// The installed plugin and route serving `method path`, if any.
    pub fn route(&self, method: &str, path: &str) -> Option<(&Arc<Installed>, RouteMatch<'_>)> {
        self.installed
            .iter()
            .filter(|p| matches!(p.pre, Pre::Feature(_)))
            .find_map(|p| p.manifest.match_route(method, path).map(|m| (p, m)))
    }

    /// Calls `handle-http` of `plugin` for `tenant_id`. The events the plugin emitted come
    /// back with the response, for the caller to write with the request's audit entry; when
    /// the call fails they are written here.
    pub async fn handle_http(
        &self,
        plugin: &Installed,
        tenant_id: &str,
        request: types::HttpRequest,
    ) -> Result<Served, Failure> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| Failure::Unavailable("no runtime".into()))?;
        let ctx = self
            .ctx(
                plugin.manifest.clone(),
                Some(tenant_id.to_string()),
                request.request_id.clone(),
            )
            .map_err(|e| Failure::Unavailable(e.to_string()))?;
        let (handle_http, mut store) = runtime.instantiate_http(feature(plugin)?, ctx).await?;
        store.data_mut().deferred_events = Some(Vec::new());
        store.data_mut().call_tx = CallTx::Idle;
        let call = async {
            let (response,) = handle_http.call_async(&mut store, (&request,)).await?;
            handle_http.post_return_async(&mut store).await?;
            wasmtime::Result::Ok(response)
        };
        let r = tokio::time::timeout(runtime.timeout(), call).await;
        let response = runtime.outcome(&store, r)?;
        let data = store.data_mut();
        let events = data.deferred_events.take().unwrap_or_default();
        // A failed call (trap, deadline, memory) returned above: dropping the store rolled back
        // what it wrote, and its events are dropped with it.
        let tx = std::mem::take(&mut data.call_tx)
            .finish()
            .map_err(|e| Failure::Unavailable(e.into()))?;
        Ok(Served {
            response,
            events,
            tx,
        })
    }
}

/// What a plugin answered to an HTTP request, and the events it emitted meanwhile (not yet
/// written).
#[must_use]
pub struct Served {
    pub response: types::HttpResponse,
    pub events: Vec<super::host::PendingEvent>,
    /// The call's database transaction, when it wrote: the engine commits it with the events
    /// and the audit entry if the response is a success, and drops it (a rollback) otherwise.
    pub tx: Option<crate::db::Tx>,
}

impl Plugins {
    /// Calls `handle-event` of `plugin` for `tenant_id`: the outer error is a failure of the
    /// plugin (trap, deadline, ...), the inner one the error the plugin returned.
    pub async fn handle_event(
        &self,
        plugin: &Installed,
        tenant_id: &str,
        event: types::Event,
    ) -> Result<Result<(), String>, Failure> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| Failure::Unavailable("no runtime".into()))?;
        let ctx = self
            .ctx(
                plugin.manifest.clone(),
                Some(tenant_id.to_string()),
                format!("event:{}", event.id),
            )
            .map_err(|e| Failure::Unavailable(e.to_string()))?;
        let (inst, mut store) = runtime.instantiate(&feature(plugin)?.bindings, ctx).await?;
        let r = tokio::time::timeout(
            runtime.timeout(),
            inst.call_handle_event(&mut store, &event),
        )
        .await;
        runtime.outcome(&store, r)
    }

    /// Calls `run-job` of `plugin` for `tenant_id`; errors as for [`Plugins::handle_event`].
    pub async fn run_job(
        &self,
        plugin: &Installed,
        tenant_id: &str,
        job: &str,
    ) -> Result<Result<(), String>, Failure> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| Failure::Unavailable("no runtime".into()))?;
        let ctx = self
            .ctx(
                plugin.manifest.clone(),
                Some(tenant_id.to_string()),
                format!("job:{job}:{}", crate::util::new_id()),
            )
            .map_err(|e| Failure::Unavailable(e.to_string()))?;
        let (inst, mut store) = runtime.instantiate(&feature(plugin)?.bindings, ctx).await?;
        let r = tokio::time::timeout(
            runtime.timeout(),
            inst.call_run_job(&mut store, tenant_id, job),
        )
        .await;
        runtime.outcome(&store, r)
    }
}

fn feature(plugin: &Installed) -> Result<&FeaturePre, Failure> {
    match &plugin.pre {
        Pre::Feature(p) => Ok(p),
        Pre::Connector(_) => Err(Failure::Unavailable(
            "a platform connector has no feature-plugin exports".into(),
        )),
    }
}

fn wasm_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wasm") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}
