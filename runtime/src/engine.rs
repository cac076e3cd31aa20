//! The shared WebAssembly engine: compiler settings, the pooling instance
//! allocator, epoch interruption (a ticker thread advances the epoch so calls
//! can be stopped at their time budget), the linker with WASI and the `host`
//! import, and the compiled-artifact cache. One engine serves every plugin.

use crate::bindings;
use crate::cache::{self, CacheOutcome};
use crate::error::{HostError, PluginIdentity};
use crate::plugin::LoadedPlugin;
use crate::store::StoreData;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

/// How often the epoch advances; a timed-out call stops within one tick of its budget.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Settings for a [`PluginEngine`].
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Where compiled plugins are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// How many plugin instances may be alive at once.
    pub max_instances: u32,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            cache_dir: cache::default_cache_dir(),
            max_instances: 64,
        }
    }
}

/// The engine, linker and cache shared by all plugins. Cheap to clone: clones
/// share the engine and its epoch ticker.
#[derive(Clone)]
pub struct PluginEngine {
    pub(crate) engine: Engine,
    pub(crate) linker: Arc<Linker<StoreData>>,
    cache_dir: Option<PathBuf>,
    /// Stops (and joins) the epoch thread when the engine is dropped.
    _ticker: Arc<EpochTicker>,
}

impl PluginEngine {
    /// Sets up the engine.
    pub fn new(options: EngineOptions) -> Result<Self, HostError> {
        let engine_error = |e: wasmtime::Error| HostError::Engine(format!("{e:#}"));
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(options.max_instances)
            .total_core_instances(options.max_instances * 4)
            .total_memories(options.max_instances * 2)
            .total_tables(options.max_instances * 4)
            .max_memories_per_component(4)
            .max_memory_size(crate::limits::MAX_MEMORY_BYTES);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .cranelift_opt_level(OptLevel::Speed)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(engine_error)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(engine_error)?;
        bindings::Plugin::add_to_linker::<StoreData, HasSelf<StoreData>>(&mut linker, |data| data)
            .map_err(engine_error)?;
        let ticker = EpochTicker::start(engine.clone())
            .map_err(|e| HostError::Engine(format!("cannot start the epoch ticker thread: {e}")))?;
        Ok(PluginEngine {
            engine,
            linker: Arc::new(linker),
            cache_dir: options.cache_dir,
            _ticker: Arc::new(ticker),
        })
    }

    /// Loads the plugin at `path`: compiles it (or takes it from the cache),
    /// checks it implements the contract and reads its manifest.
    pub fn load(&self, path: &Path) -> Result<LoadedPlugin, HostError> {
        let bytes = std::fs::read(path).map_err(|source| HostError::ReadPlugin {
            path: path.to_path_buf(),
            source,
        })?;
        self.load_bytes(&bytes, path).map(|(plugin, _)| plugin)
    }

    /// Loads a plugin from its bytes; `origin` names it in errors. Also says
    /// whether the compiled artifact came from the cache.
    pub fn load_bytes(
        &self,
        bytes: &[u8],
        origin: &Path,
    ) -> Result<(LoadedPlugin, CacheOutcome), HostError> {
        let invalid = |reason: String| HostError::InvalidComponent {
            path: origin.to_path_buf(),
            reason,
        };
        let hash = cache::content_hash(bytes);
        let (component, outcome) =
            cache::load_or_compile(&self.engine, bytes, &hash, self.cache_dir.as_deref())
                .map_err(|e| invalid(format!("{e:#}")))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| invalid(format!("{e:#}")))?;
        let pre = bindings::PluginPre::new(pre).map_err(|e| invalid(format!("{e:#}")))?;
        let stem = origin
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("plugin")
            .to_string();
        let provisional = PluginIdentity {
            name: stem,
            version: "?".into(),
            hash,
        };
        let plugin = LoadedPlugin::new(self.engine.clone(), pre, provisional, bytes.into())?;
        Ok((plugin, outcome))
    }

    /// The directory compiled plugins are cached in, if any.
    pub fn cache_dir(&self) -> Option<&Path> {
        self.cache_dir.as_deref()
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("weir-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
