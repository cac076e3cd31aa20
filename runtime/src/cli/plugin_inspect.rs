//! `weir plugin inspect`: prints a plugin's manifest, for humans or as JSON.

use anyhow::Context;
use std::path::PathBuf;
use weir_runtime::{EngineOptions, PluginEngine};
use weir_sdk::Port;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plugin component (.wasm).
    file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let engine = PluginEngine::new(EngineOptions::default())?;
    let plugin = engine.load(&args.file)?;
    let manifest = plugin.manifest();
    if args.json {
        let document = serde_json::json!({
            "name": manifest.name,
            "version": manifest.version,
            "description": manifest.description,
            "sha256": plugin.identity().hash,
            "inputs": manifest.inputs.iter().map(port_json).collect::<Vec<_>>(),
            "outputs": manifest.outputs.iter().map(port_json).collect::<Vec<_>>(),
            "config_schema": manifest.config_schema,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&document).context("encoding the manifest")?
        );
        return Ok(());
    }
    println!(
        "{} {} (sha256 {})",
        manifest.name,
        manifest.version,
        plugin.identity().short_hash()
    );
    println!("{}\n", manifest.description);
    for (side, ports) in [("inputs", &manifest.inputs), ("outputs", &manifest.outputs)] {
        println!("{side}:");
        for port in ports.iter() {
            println!(
                "  {:<10} {}\n  {:<10} schema: {}",
                port.name,
                port.description,
                "",
                super::describe_schema(port.schema.as_ref())
            );
        }
    }
    println!(
        "\nconfig schema:\n{}",
        serde_json::to_string_pretty(&manifest.config_schema)?
    );
    Ok(())
}

fn port_json(port: &Port) -> serde_json::Value {
    let schema = port.schema.as_ref().map(|schema| {
        schema
            .fields()
            .iter()
            .map(|f| serde_json::json!({"name": f.name(), "type": f.data_type().to_string(), "nullable": f.is_nullable()}))
            .collect::<Vec<_>>()
    });
    serde_json::json!({"name": port.name, "description": port.description, "schema": schema})
}
