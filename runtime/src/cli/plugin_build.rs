//! `weir plugin build`: compiles a plugin crate into a WebAssembly component.

use anyhow::Context;
use std::path::PathBuf;
use weir_runtime::plugin_build;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plugin crate (a directory with Cargo.toml).
    #[arg(default_value = ".")]
    path: PathBuf,
    /// Where cargo puts build output (default: PATH/target).
    #[arg(long)]
    target_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let path = args.path.canonicalize().unwrap_or(args.path);
    let manifest = path.join("Cargo.toml");
    if !manifest.is_file() {
        anyhow::bail!(
            "{} has no Cargo.toml: pass the plugin crate's directory",
            path.display()
        );
    }
    let target_dir = args.target_dir.unwrap_or_else(|| path.join("target"));
    let built = plugin_build::build_plugins(&manifest, &[], &target_dir)
        .with_context(|| format!("building {}", path.display()))?;
    for plugin in built {
        let size = std::fs::metadata(&plugin.wasm)
            .map(|m| m.len())
            .unwrap_or(0);
        println!(
            "{} ({:.1} MiB)",
            plugin.wasm.display(),
            size as f64 / (1024.0 * 1024.0)
        );
    }
    Ok(())
}
