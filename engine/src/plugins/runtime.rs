//! The wasmtime side: one `Engine` (component model, pooling allocator, epoch interruption
//! driven by a ticker thread), compiled components cached on disk, one `InstancePre` per
//! plugin, and a fresh `Store` with a memory cap and a deadline for every call.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use wasmtime::component::{Component, ComponentExportIndex, HasSelf, Linker, TypedFunc};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ProfilingStrategy, Store,
    UpdateDeadline,
};

use super::bindings::{
    FeaturePlugin, FeaturePluginPre, PlatformConnector, PlatformConnectorPre, types,
};
use super::host::{CallCtx, HostState};
use crate::config::Settings;
use crate::util::sha256_hex;

/// How often the ticker thread advances the engine's epoch; the deadline's resolution.
pub const TICK: Duration = Duration::from_millis(10);
/// The wasmtime release series the engine embeds (part of the compiled-artifact cache key).
pub const WASMTIME_SERIES: &str = "wasmtime-36";
/// Concurrent plugin calls the pooling allocator has slots for; more wait for a slot's error.
const POOL_SLOTS: u32 = 64;
/// Bytes of each table reset in place after a call (see `Runtime::new`).
const TABLE_KEEP_RESIDENT: usize = 64 << 10;

/// Why a call to a plugin failed.
#[derive(Debug)]
pub enum Failure {
    /// It ran past the deadline.
    Timeout(u64),
    /// It asked for more memory than allowed.
    Memory(u64),
    /// It trapped (panic, unreachable, out-of-bounds access, ...).
    Trap(String),
    /// It could not be instantiated (no free slot, ...).
    Unavailable(String),
    /// It answered something the engine cannot serve.
    BadResponse(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Timeout(ms) => write!(f, "ran past its deadline of {ms} ms"),
            Failure::Memory(mb) => write!(f, "exceeded its memory limit of {mb} MiB"),
            Failure::Trap(t) => write!(f, "trapped ({t})"),
            Failure::Unavailable(t) => write!(f, "could not be started ({t})"),
            Failure::BadResponse(t) => write!(f, "gave a broken response ({t})"),
        }
    }
}

/// A component linked and ready to instantiate, by the world it implements.
pub enum Pre {
    Feature(FeaturePre),
    Connector(PlatformConnectorPre<HostState>),
}

/// A feature plugin linked and ready to instantiate.
pub struct FeaturePre {
    /// The generated bindings' pre-instance: instantiating through it looks up and type-checks
    /// all four exports (`describe`, `handle-http`, `handle-event`, `run-job`).
    pub bindings: FeaturePluginPre<HostState>,
    /// Where `handle-http` is, so that an HTTP call looks up and type-checks that export alone
    /// (the bindings' load of all four took about 1 µs more per call; docs/benchmarks.md).
    handle_http: ComponentExportIndex,
}

/// A fresh instance's `handle-http`.
pub type HandleHttp<'a> = TypedFunc<(&'a types::HttpRequest,), (types::HttpResponse,)>;

/// The export that marks a component as a platform connector.
const CONNECTOR_EXPORT: &str = "lumire:plugin/connector@0.2.0";

pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    cache_dir: PathBuf,
    pub timeout_ms: u64,
    pub memory_mb: u64,
}

impl Runtime {
    pub fn new(settings: &Settings) -> anyhow::Result<Runtime> {
        let memory_bytes = (settings.plugin_memory_mb.max(1) as usize) << 20;
        // The low end of each linear memory (stack, data, the start of the heap) is reset with
        // `memset` after a call: unmapping it (`madvise`) sends a TLB shootdown to every core
        // running the process and the next instance faults the pages back in, which on a
        // primary-key read cost more than the instantiation itself (docs/benchmarks.md).
        let keep_resident = (settings.plugin_keep_resident_kib as usize) << 10;
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(POOL_SLOTS)
            .total_core_instances(POOL_SLOTS * 8)
            .total_memories(POOL_SLOTS * 2)
            .total_tables(POOL_SLOTS * 4)
            .total_stacks(POOL_SLOTS)
            .max_memory_size(memory_bytes)
            // A guest's tables (a few KiB of function references) are reset with `memset`
            // instead of `madvise`: no TLB shootdown to the other cores and no page faults
            // when the next instance fills them (docs/benchmarks.md).
            .table_keep_resident(TABLE_KEEP_RESIDENT)
            .linear_memory_keep_resident(keep_resident);
        let mut config = Config::new();
        config
            .async_support(true)
            .wasm_component_model(true)
            .epoch_interruption(true)
            // With memory kept resident, data segments are copied in at instantiation instead
            // of mapped copy-on-write: a reset then never unmaps a page (a copy-on-write image
            // is always reset with `madvise`, whatever is kept resident).
            .memory_init_cow(keep_resident == 0)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        if settings.plugin_perfmap {
            config.profiler(ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config)?;
        // The ticker holds only a weak reference: it stops when the engine is dropped.
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(TICK);
                }
            })?;
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        FeaturePlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        let cache_dir = settings
            .plugin_cache_dir
            .clone()
            .unwrap_or_else(|| settings.data_dir.join("plugin-cache"));
        Ok(Runtime {
            engine,
            linker,
            cache_dir,
            timeout_ms: settings.plugin_timeout_ms.max(1),
            memory_mb: settings.plugin_memory_mb.max(1),
        })
    }

    fn cache_key(&self, sha: &str) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        format!("{sha}-{WASMTIME_SERIES}-{:016x}.cwasm", h.finish())
    }

    /// Compiles a component, or loads it from the on-disk cache keyed by the component's
    /// sha256, the wasmtime series and the engine's compilation settings.
    pub fn load(&self, bytes: &[u8]) -> anyhow::Result<(Component, String)> {
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes));
        let path = self.cache_dir.join(self.cache_key(&sha));
        if path.exists() {
            // SAFETY: the file was written by `Component::serialize` of this same engine
            // configuration into the engine's own data directory (the key covers the
            // component's hash, the wasmtime series and the compilation settings); wasmtime
            // checks its header and refuses an incompatible artifact.
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(c) => return Ok((c, sha)),
                Err(e) => {
                    tracing::warn!(error = %e, path = %path.display(), "plugin cache entry unusable; recompiling");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let component = Component::new(&self.engine, bytes).context("compiling the component")?;
        if let Err(e) = write_cache(&path, &component) {
            tracing::warn!(error = %e, "cannot write the plugin cache");
        }
        Ok((component, sha))
    }

    /// Links a component against the host: a `platform-connector` when it exports the
    /// connector interface, a `feature-plugin` (0.1.0, 0.2.0 or 0.3.0: their exports are the
    /// same) otherwise.
    pub fn prepare(&self, component: &Component) -> anyhow::Result<Pre> {
        let pre = self.linker.instantiate_pre(component).context(
            "linking the component (does it implement a world of lumire:plugin@0.1.0, @0.2.0 or @0.3.0?)",
        )?;
        let is_connector = component
            .component_type()
            .exports(&self.engine)
            .any(|(name, _)| name == CONNECTOR_EXPORT);
        if is_connector {
            return Ok(Pre::Connector(PlatformConnectorPre::new(pre)?));
        }
        let bindings = FeaturePluginPre::new(pre)?;
        let handle_http = component
            .get_export_index(None, "handle-http")
            .context("the component exports no `handle-http`")?;
        Ok(Pre::Feature(FeaturePre {
            bindings,
            handle_http,
        }))
    }

    /// The newest `lumire:plugin` package version the component imports or exports
    /// (`0.1.0`, `0.2.0`, `0.3.0`): the contract it was built against.
    pub fn contract_version(&self, component: &Component) -> String {
        let ty = component.component_type();
        let names: Vec<String> = ty
            .imports(&self.engine)
            .map(|(n, _)| n.to_string())
            .chain(ty.exports(&self.engine).map(|(n, _)| n.to_string()))
            .collect();
        contract_of(names.iter().map(String::as_str))
    }

    fn store(&self, call: CallCtx) -> Store<HostState> {
        let max_ticks = self.timeout_ms.div_ceil(TICK.as_millis() as u64).max(1);
        let state = HostState::new(call, (self.memory_mb as usize) << 20, max_ticks);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            let s = ctx.data_mut();
            s.ticks += 1;
            // A guest computing across a tick gives back the connection its reads kept (its
            // next read takes one again): a busy plugin holds none while it runs.
            s.release_idle_connection();
            if s.ticks >= s.max_ticks {
                s.timed_out = true;
                anyhow::bail!("deadline exceeded");
            }
            // Yield to the async executor every tick: a busy plugin never starves other requests.
            // Through tokio's `yield_now`, which wakes the call again only after the worker has
            // polled its I/O driver: with a plain wake (`Yield`) a worker that always has a
            // task ready polls I/O only every 61 task polls, about 0.6 s of a guest's 10 ms
            // slices, and every network step of the other requests on that worker waits for it.
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            ))
        });
        store
    }

    fn classify(&self, store: &Store<HostState>, e: anyhow::Error) -> Failure {
        let s = store.data();
        if s.timed_out {
            Failure::Timeout(self.timeout_ms)
        } else if s.limiter.memory_refused {
            Failure::Memory(self.memory_mb)
        } else if let Some(t) = e.downcast_ref::<wasmtime::Trap>() {
            Failure::Trap(t.to_string())
        } else {
            Failure::Trap(e.root_cause().to_string().chars().take(300).collect())
        }
    }

    fn started<T>(&self, store: &Store<HostState>, r: wasmtime::Result<T>) -> Result<T, Failure> {
        r.map_err(|e| match self.classify(store, e) {
            Failure::Trap(t) => Failure::Unavailable(t),
            other => other,
        })
    }

    /// A fresh instance of a feature plugin in a fresh store, within the limits.
    pub async fn instantiate(
        &self,
        pre: &FeaturePluginPre<HostState>,
        call: CallCtx,
    ) -> Result<(FeaturePlugin, Store<HostState>), Failure> {
        let mut store = self.store(call);
        let r = pre.instantiate_async(&mut store).await;
        self.started(&store, r).map(|i| (i, store))
    }

    /// A fresh instance of a feature plugin in a fresh store, with only its `handle-http`
    /// looked up and type-checked: what an HTTP call needs.
    pub async fn instantiate_http<'a>(
        &self,
        pre: &FeaturePre,
        call: CallCtx,
    ) -> Result<(HandleHttp<'a>, Store<HostState>), Failure> {
        let mut store = self.store(call);
        let r = match pre
            .bindings
            .instance_pre()
            .instantiate_async(&mut store)
            .await
        {
            Ok(instance) => instance.get_typed_func(&mut store, pre.handle_http),
            Err(e) => Err(e),
        };
        self.started(&store, r).map(|f| (f, store))
    }

    /// A fresh instance of a platform connector in a fresh store. Several calls of one engine
    /// operation may use it; [`Runtime::rearm`] gives each its own deadline.
    pub async fn instantiate_connector(
        &self,
        pre: &PlatformConnectorPre<HostState>,
        call: CallCtx,
    ) -> Result<(PlatformConnector, Store<HostState>), Failure> {
        let mut store = self.store(call);
        let r = pre.instantiate_async(&mut store).await;
        self.started(&store, r).map(|i| (i, store))
    }

    /// Resets the deadline before the next call on a store that already served one.
    pub fn rearm(&self, store: &mut Store<HostState>) {
        let s = store.data_mut();
        s.ticks = 0;
        s.timed_out = false;
        store.set_epoch_deadline(1);
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms) + Duration::from_secs(2)
    }

    pub async fn describe(&self, pre: &Pre, call: CallCtx) -> Result<types::Manifest, Failure> {
        match pre {
            Pre::Feature(pre) => {
                let (inst, mut store) = self.instantiate(&pre.bindings, call).await?;
                let r = tokio::time::timeout(self.timeout(), inst.call_describe(&mut store)).await;
                self.outcome(&store, r)
            }
            Pre::Connector(pre) => {
                let (inst, mut store) = self.instantiate_connector(pre, call).await?;
                let r = tokio::time::timeout(self.timeout(), inst.call_describe(&mut store)).await;
                self.outcome(&store, r)
            }
        }
    }

    pub fn outcome<R>(
        &self,
        store: &Store<HostState>,
        r: Result<wasmtime::Result<R>, tokio::time::error::Elapsed>,
    ) -> Result<R, Failure> {
        match r {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(self.classify(store, e)),
            Err(_) => Err(Failure::Timeout(self.timeout_ms)),
        }
    }
}

/// The newest version among interface names such as `lumire:plugin/storage@0.1.0`. A component
/// naming none (every world imports at least `log`) reads as `0.1.0`.
fn contract_of<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .filter_map(|n| n.strip_prefix("lumire:plugin/")?.split_once('@'))
        .filter_map(|(_, v)| {
            let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
            Some(((parts.next()??, parts.next()??, parts.next()??), v))
        })
        .max_by_key(|(k, _)| *k)
        .map_or_else(|| "0.1.0".to_string(), |(_, v)| v.to_string())
}

fn write_cache(path: &Path, component: &Component) -> anyhow::Result<()> {
    let dir = path.parent().context("cache path")?;
    std::fs::create_dir_all(dir)?;
    let bytes = component.serialize()?;
    // Write then rename: a concurrent reader never sees a half-written file.
    let tmp = dir.join(format!(
        ".{}.tmp",
        sha256_hex(&format!(
            "{}{:?}",
            path.display(),
            std::thread::current().id()
        ))
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::contract_of;

    #[test]
    fn the_newest_lumire_package_version_is_the_contract() {
        let names = [
            "wasi:io/streams@0.2.6",
            "lumire:plugin/storage@0.1.0",
            "lumire:plugin/records@0.2.0",
            "lumire:plugin/transaction@0.3.0",
        ];
        assert_eq!(contract_of(names.into_iter()), "0.3.0");
        assert_eq!(contract_of(names[..3].iter().copied()), "0.2.0");
        assert_eq!(
            contract_of(["lumire:plugin/log@0.10.0", "lumire:plugin/log@0.9.0"].into_iter()),
            "0.10.0"
        );
        assert_eq!(contract_of(["wasi:cli/run@0.2.0"].into_iter()), "0.1.0");
    }
}
