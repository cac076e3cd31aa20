//! `weir validate FILE`: loads a pipeline file and runs every check `weir run`
//! runs before starting (plugins, configs, schemas, tables), reporting all
//! problems at once. Creates and writes nothing.

use super::explain_problems;
use std::path::PathBuf;
use weir_runtime::pipeline;
use weir_runtime::{EngineOptions, PluginEngine};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline file (TOML).
    file: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let engine = PluginEngine::new(EngineOptions::default())?;
    let runtime = super::tokio_runtime()?;
    let prepared =
        explain_problems(runtime.block_on(pipeline::read_and_validate(&args.file, &engine)))?;
    for p in &prepared.pipelines {
        let stages: Vec<String> = p
            .spec
            .stages
            .iter()
            .zip(&p.plugins)
            .map(|(s, plugin)| {
                format!(
                    "{} ({}@{})",
                    s.name,
                    plugin.identity().name,
                    plugin.identity().version
                )
            })
            .collect();
        let sinks: Vec<String> =
            p.spec
                .sinks
                .iter()
                .map(|s| format!("{} → {}", p.spec.port_name(&s.from), s.table.display()))
                .chain(
                    p.spec.kafka_sinks.iter().map(|s| {
                        format!("{} → kafka topic {}", p.spec.port_name(&s.from), s.topic)
                    }),
                )
                .collect();
        println!(
            "pipeline {}: {} | {} | {}",
            p.spec.name,
            p.spec.source.describe(),
            stages.join(" → "),
            sinks.join(", ")
        );
    }
    println!(
        "{}: ok ({} pipelines)",
        args.file.display(),
        prepared.pipelines.len()
    );
    Ok(())
}
