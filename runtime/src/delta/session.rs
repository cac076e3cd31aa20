//! One DataFusion session for the process's Delta writes (appends, merges,
//! upserts, merge sources and update expressions), built once. Building a
//! session registers every built-in function; each append and merge paid for
//! that again, several times per merge. The session has deltalake's own
//! defaults (`DeltaSessionContext`: identifiers keep their case, strings read
//! as views) and DataFusion's caches off: the Parquet footer, file-statistics
//! and file-listing caches would otherwise keep up to ≈ 70 MiB of entries for
//! files that each merge replaces, for the life of the process. What it keeps
//! between operations is the object store deltalake registers for each table
//! it writes (stateless for local tables).

use deltalake::datafusion::catalog::Session;
use deltalake::datafusion::execution::SessionState;
use deltalake::datafusion::execution::cache::cache_manager::CacheManagerConfig;
use deltalake::datafusion::execution::runtime_env::RuntimeEnvBuilder;
use deltalake::datafusion::prelude::SessionContext;
use deltalake::delta_datafusion::DeltaSessionContext;
use std::sync::{Arc, LazyLock};

static STATE: LazyLock<SessionState> = LazyLock::new(|| {
    let caches = CacheManagerConfig::default()
        .with_metadata_cache_limit(0)
        .with_file_statistics_cache_limit(0)
        .with_list_files_cache_limit(0);
    match RuntimeEnvBuilder::new()
        .with_cache_manager(caches)
        .build_arc()
    {
        Ok(runtime) => DeltaSessionContext::with_runtime_env(runtime).state(),
        // Building a runtime without a disk or memory limit does not fail;
        // if it ever did, deltalake's default session still works.
        Err(_) => deltalake::delta_datafusion::create_session().state(),
    }
});

/// The shared session, for deltalake's `with_session_state`.
pub fn state() -> Arc<dyn Session> {
    Arc::new(STATE.clone())
}

/// A context over the shared session, to build inputs and parse expressions.
pub fn context() -> SessionContext {
    SessionContext::new_with_state(STATE.clone())
}
