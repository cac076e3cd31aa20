//! Loading plugins: compiled artifacts are cached on disk by content hash, and
//! files that are not Weir plugins give errors that name the file.

use std::path::Path;
use weir_runtime::{CacheOutcome, EngineOptions, HostError, PluginEngine};

fn engine_with_cache(dir: &Path) -> PluginEngine {
    PluginEngine::new(EngineOptions {
        cache_dir: Some(dir.to_path_buf()),
        max_instances: 4,
    })
    .unwrap()
}

#[test]
fn a_restart_loads_the_compiled_artifact_instead_of_recompiling() {
    let cache = tempfile::tempdir().unwrap();
    let path = weir_tests::wasm_path("filter-paid");
    let bytes = std::fs::read(&path).unwrap();
    let (_, outcome) = engine_with_cache(cache.path())
        .load_bytes(&bytes, &path)
        .unwrap();
    assert_eq!(outcome, CacheOutcome::Compiled);
    let restarted = engine_with_cache(cache.path());
    let (plugin, outcome) = restarted.load_bytes(&bytes, &path).unwrap();
    assert_eq!(outcome, CacheOutcome::Hit);
    assert_eq!(plugin.manifest().name, "filter-paid");
    assert!(plugin.instantiate("{}", Default::default()).is_ok());
}

#[test]
fn a_corrupt_cache_entry_is_recompiled() {
    let cache = tempfile::tempdir().unwrap();
    let path = weir_tests::wasm_path("filter-paid");
    let bytes = std::fs::read(&path).unwrap();
    engine_with_cache(cache.path())
        .load_bytes(&bytes, &path)
        .unwrap();
    for entry in std::fs::read_dir(cache.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"corrupt").unwrap();
    }
    let (_, outcome) = engine_with_cache(cache.path())
        .load_bytes(&bytes, &path)
        .unwrap();
    assert_eq!(outcome, CacheOutcome::Compiled);
    let (_, outcome) = engine_with_cache(cache.path())
        .load_bytes(&bytes, &path)
        .unwrap();
    assert_eq!(outcome, CacheOutcome::Hit);
}

#[test]
fn files_that_are_not_plugins_are_named_in_the_error() {
    let engine = weir_tests::engine();
    let error = engine
        .load_bytes(b"not wasm at all", Path::new("bogus.wasm"))
        .err()
        .unwrap();
    assert!(
        matches!(&error, HostError::InvalidComponent { path, .. } if path == Path::new("bogus.wasm")),
        "{error}"
    );
    // A valid core module, but not a component implementing weir:plugin.
    let core_module = b"\0asm\x01\0\0\0";
    let error = engine
        .load_bytes(core_module, Path::new("core.wasm"))
        .err()
        .unwrap();
    assert!(
        error
            .to_string()
            .starts_with("core.wasm is not a valid Weir plugin component"),
        "{error}"
    );
    let error = engine
        .load(Path::new("/nonexistent/plugin.wasm"))
        .err()
        .unwrap();
    assert!(matches!(error, HostError::ReadPlugin { .. }), "{error}");
}

#[test]
fn manifests_are_read_at_load_time() {
    let parse = weir_tests::load("parse-json");
    assert_eq!(parse.manifest().name, "parse-json");
    assert_eq!(parse.identity().version, env!("CARGO_PKG_VERSION"));
    let outputs: Vec<_> = parse
        .manifest()
        .outputs
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(outputs, ["out", "rejected"]);
    assert_eq!(
        parse.manifest().outputs[1].schema,
        Some(weir_sdk::rejected_schema())
    );
}
