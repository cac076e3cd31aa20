//! Shared helpers for Weir's integration tests and benchmarks: where the
//! freshly built plugin components are, a shared engine, golden-file helpers,
//! and the `weir` binary.

pub mod orders;

use arrow::array::RecordBatch;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use weir_runtime::{EngineOptions, LoadedPlugin, PluginEngine};

/// The component built from source by this crate's build script.
pub fn wasm_path(plugin: &str) -> PathBuf {
    PathBuf::from(match plugin {
        "parse-json" => env!("WEIR_WASM_PARSE_JSON"),
        "parse-csv" => env!("WEIR_WASM_PARSE_CSV"),
        "filter-paid" => env!("WEIR_WASM_FILTER_PAID"),
        "aggregate" => env!("WEIR_WASM_AGGREGATE"),
        "join" => env!("WEIR_WASM_JOIN"),
        "route" => env!("WEIR_WASM_ROUTE"),
        "cdc-upsert" => env!("WEIR_WASM_CDC_UPSERT"),
        "denormalize-profile" => env!("WEIR_WASM_DENORMALIZE_PROFILE"),
        "misbehave" => env!("WEIR_WASM_MISBEHAVE"),
        "drift" => env!("WEIR_WASM_DRIFT"),
        "tag-v1" => env!("WEIR_WASM_TAG_V1"),
        "tag-v2" => env!("WEIR_WASM_TAG_V2"),
        "tag-trap" => env!("WEIR_WASM_TAG_TRAP"),
        "tag-narrow" => env!("WEIR_WASM_TAG_NARROW"),
        other => panic!("no test component called {other}"),
    })
}

/// One engine per test binary, caching compiled plugins in `$WEIR_CACHE_DIR`
/// when set (handy for profiling), else in a private directory.
pub fn engine() -> &'static PluginEngine {
    static ENGINE: OnceLock<PluginEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let cache_dir = std::env::var_os("WEIR_CACHE_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::env::temp_dir().join(format!("weir-test-cache-{}", std::process::id()))
            });
        PluginEngine::new(EngineOptions {
            cache_dir: Some(cache_dir),
            max_instances: 32,
        })
        .expect("engine")
    })
}

/// Loads a test component into the shared engine.
pub fn load(plugin: &str) -> LoadedPlugin {
    engine()
        .load(&wasm_path(plugin))
        .unwrap_or_else(|e| panic!("loading {plugin}: {e}"))
}

/// The workspace root.
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_path_buf()
}

/// The `weir` binary built alongside the tests: `cargo test --workspace` builds
/// it because `weir-runtime` has integration tests (`runtime/tests/`).
pub fn weir_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from <target>/<profile>/deps");
    let weir = profile_dir.join("weir");
    assert!(
        weir.exists(),
        "{} is missing: run the tests with `cargo test --workspace --release`",
        weir.display()
    );
    weir
}

/// A batch as JSON lines, the form golden files are kept in.
pub fn to_jsonl(batch: &RecordBatch) -> String {
    let mut bytes = Vec::new();
    weir_runtime::files::write_jsonl(&mut bytes, batch).expect("batch encodes as JSON");
    String::from_utf8(bytes).expect("JSON is UTF-8")
}

/// Validates a loaded pipeline file (panicking with every problem if it is
/// invalid) and runs it once (`weir run --once`), returning the run's result.
pub async fn run_once(
    file: weir_runtime::pipeline::PipelineFile,
) -> Result<Vec<weir_runtime::run::PipelineReport>, weir_runtime::run::RunError> {
    let prepared = weir_runtime::pipeline::validate_file(file, engine())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    weir_runtime::run::run_file(
        prepared,
        weir_runtime::run::RunOptions { once: true },
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    )
    .await
}

/// Serializes the tests that kill and restart `weir run` many times (the
/// crash harnesses): on two cores, two of them at once starve each other
/// and their kills stop landing inside epochs. Hold the guard for the test.
pub fn exclusive_kill_harness() -> std::sync::MutexGuard<'static, ()> {
    static HARNESS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HARNESS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The identity (inode, modification time in ns) of `pipeline`'s
/// `sinks.json` under `checkpoints`, which `weir run` rewrites once the
/// pipeline has opened its sinks and instantiated its stages, right before
/// it recovers and plans; `None` before the first start.
pub fn start_marker(checkpoints: &Path, pipeline: &str) -> Option<(u64, i128)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(checkpoints.join(pipeline).join("sinks.json")).ok()?;
    Some((
        meta.ino(),
        i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
    ))
}

/// Waits until a just-started `weir run` has brought `pipeline` up (its
/// [`start_marker`] differs from `before`), so a kill harness times its kills
/// from the pipeline's start, not from the process's: under load, start-up
/// (compiled-plugin cache, table opening) can take seconds. Panics if the
/// child exits or nothing happens within 120 s.
pub async fn wait_until_up(
    child: &mut std::process::Child,
    checkpoints: &Path,
    pipeline: &str,
    before: Option<(u64, i128)>,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while start_marker(checkpoints, pipeline) == before {
        if let Some(status) = child.try_wait().expect("poll child") {
            panic!("weir run exited with {status} before pipeline `{pipeline}` started");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pipeline `{pipeline}` did not start within 120 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
