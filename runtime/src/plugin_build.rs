//! Building plugin crates into WebAssembly components: `cargo build --release
//! --target wasm32-wasip2` with wasm SIMD on and debug info off, reporting the
//! `.wasm` files cargo produced. Used by `weir plugin build` and by the test
//! crate's build script (which includes this file by path, so it depends on
//! nothing but std, serde_json and thiserror).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The target plugins are built for.
pub const WASM_TARGET: &str = "wasm32-wasip2";

/// Why a plugin build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// `cargo` could not be started.
    #[error("cannot run `{cargo}`: {source}")]
    Spawn {
        /// The cargo binary.
        cargo: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Compilation failed (cargo printed the diagnostics).
    #[error(
        "building {manifest} for {WASM_TARGET} failed ({status}); see the compiler output above"
    )]
    Failed {
        /// The manifest built.
        manifest: PathBuf,
        /// cargo's exit status.
        status: std::process::ExitStatus,
    },
    /// The build succeeded but produced no component.
    #[error(
        "building {manifest} produced no .wasm file: is it a `cdylib` crate that calls `weir_sdk::export!`?"
    )]
    NoComponent {
        /// The manifest built.
        manifest: PathBuf,
    },
}

/// One built component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltPlugin {
    /// The package name.
    pub package: String,
    /// The `.wasm` file.
    pub wasm: PathBuf,
}

/// Builds `packages` (all cdylib packages of the manifest when empty) of the
/// crate or workspace at `manifest` into `target_dir`.
pub fn build_plugins(
    manifest: &Path,
    packages: &[&str],
    target_dir: &Path,
) -> Result<Vec<BuiltPlugin>, BuildError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut command = Command::new(&cargo);
    command
        .args([
            "build",
            "--release",
            "--message-format=json-render-diagnostics",
            "--target",
            WASM_TARGET,
        ])
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .args(packages.iter().flat_map(|p| ["-p", p]))
        // Flags of an enclosing cargo (when run from a build script) must not leak in.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .env(
            "CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS",
            "-C target-feature=+simd128",
        )
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let output = command.output().map_err(|source| BuildError::Spawn {
        cargo: cargo.clone(),
        source,
    })?;
    if !output.status.success() {
        return Err(BuildError::Failed {
            manifest: manifest.to_path_buf(),
            status: output.status,
        });
    }
    let built = components_in(&String::from_utf8_lossy(&output.stdout));
    if built.is_empty() {
        return Err(BuildError::NoComponent {
            manifest: manifest.to_path_buf(),
        });
    }
    Ok(built)
}

/// The `.wasm` artifacts listed in cargo's JSON messages.
fn components_in(messages: &str) -> Vec<BuiltPlugin> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .flat_map(|message| {
            let package = message["target"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let files: Vec<PathBuf> = message["filenames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str())
                .filter(|f| f.ends_with(".wasm"))
                .map(PathBuf::from)
                .collect();
            files.into_iter().map(move |wasm| BuiltPlugin {
                package: package.clone(),
                wasm,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_wasm_artifacts_in_cargo_messages() {
        let messages = r#"{"reason":"compiler-artifact","target":{"name":"weir_sdk"},"filenames":["/t/libweir_sdk.rlib"]}
{"reason":"compiler-artifact","target":{"name":"parse_json"},"filenames":["/t/parse_json.wasm","/t/libparse_json.rlib"]}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            components_in(messages),
            vec![BuiltPlugin {
                package: "parse_json".into(),
                wasm: PathBuf::from("/t/parse_json.wasm")
            }]
        );
    }
}
