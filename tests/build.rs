//! Builds every plugin of the workspace (the standard ones and the misbehaving
//! test plugin) into WebAssembly components, from source, and tells the tests
//! and benchmarks where they are through `WEIR_WASM_<NAME>` variables.

#[path = "../runtime/src/plugin_build.rs"]
#[allow(dead_code)]
mod plugin_build;

use std::path::{Path, PathBuf};

const PLUGINS: [&str; 14] = [
    "parse-json",
    "parse-csv",
    "filter-paid",
    "aggregate",
    "join",
    "route",
    "cdc-upsert",
    "denormalize-profile",
    "misbehave",
    "drift",
    "tag-v1",
    "tag-v2",
    "tag-trap",
    "tag-narrow",
];

fn main() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf();
    for watched in [
        "plugins",
        "sdk",
        "wit",
        "tests/plugins",
        "runtime/src/plugin_build.rs",
        "Cargo.lock",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    let target_dir = wasm_target_dir();
    let built = plugin_build::build_plugins(&workspace.join("Cargo.toml"), &PLUGINS, &target_dir)
        .unwrap_or_else(|e| panic!("building the test plugins failed: {e}"));
    for plugin in PLUGINS {
        let crate_name = plugin.replace('-', "_");
        let wasm = built
            .iter()
            .find(|b| b.package == crate_name)
            .unwrap_or_else(|| panic!("no component was built for {plugin}"));
        println!(
            "cargo:rustc-env=WEIR_WASM_{}={}",
            crate_name.to_uppercase(),
            wasm.wasm.display()
        );
    }
}

/// `<target>/<profile>/wasm-plugins`, beside the host build, found from OUT_DIR
/// (`<target>/<profile>/build/<pkg>-<hash>/out`).
fn wasm_target_dir() -> PathBuf {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let profile_dir = out_dir
        .ancestors()
        .nth(3)
        .expect("OUT_DIR is nested in the target directory");
    profile_dir.join("wasm-plugins")
}
