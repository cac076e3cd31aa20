//! On-disk cache of compiled plugins, keyed by the SHA-256 of the component
//! bytes and the engine's compatibility hash, so a restart does not recompile.
//! Entries are written atomically; an unreadable or incompatible entry is
//! recompiled and replaced. The cache directory must be trusted: its files are
//! loaded as native code.

use sha2::{Digest, Sha256};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Whether a load found a compiled artifact or had to compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded a compiled artifact from disk.
    Hit,
    /// Compiled (and stored, when a cache directory is set).
    Compiled,
}

/// The SHA-256 of `bytes`, as lowercase hex.
pub fn content_hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The default cache directory: `$WEIR_CACHE_DIR`, else `$XDG_CACHE_HOME/weir/compiled`,
/// else `$HOME/.cache/weir/compiled`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("WEIR_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("weir").join("compiled"))
}

/// Compiles `bytes`, or loads the artifact compiled earlier from `cache_dir`.
pub fn load_or_compile(
    engine: &Engine,
    bytes: &[u8],
    hash: &str,
    cache_dir: Option<&Path>,
) -> wasmtime::Result<(Component, CacheOutcome)> {
    let Some(dir) = cache_dir else {
        return Ok((Component::new(engine, bytes)?, CacheOutcome::Compiled));
    };
    let path = entry_path(engine, dir, hash);
    if path.exists() {
        // SAFETY: the artifact was written by `Component::serialize` of an engine
        // with the same compatibility hash, into a directory the host trusts.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok((component, CacheOutcome::Hit)),
            Err(err) => {
                tracing::warn!(path = %path.display(), "discarding unusable compiled plugin: {err:#}")
            }
        }
    }
    let component = Component::new(engine, bytes)?;
    if let Err(err) = store(&component, dir, &path) {
        tracing::warn!(dir = %dir.display(), "cannot cache the compiled plugin: {err:#}");
    }
    Ok((component, CacheOutcome::Compiled))
}

fn entry_path(engine: &Engine, dir: &Path, hash: &str) -> PathBuf {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    dir.join(format!("{hash}-{:016x}.cwasm", hasher.finish()))
}

fn store(component: &Component, dir: &Path, path: &Path) -> wasmtime::Result<()> {
    std::fs::create_dir_all(dir)?;
    let serialized = component.serialize()?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id()
    ));
    std::fs::write(&tmp, serialized)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_sha256_hex() {
        assert_eq!(
            content_hash(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
