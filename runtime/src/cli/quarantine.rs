//! `weir quarantine FILE --pipeline P --epoch N --reason TEXT`: moves a
//! pipeline past a poison epoch on purpose. The epoch's source rows go to
//! the dead-letter table with the reason, every other sink commits the epoch
//! empty, and the decision is recorded in every commit's Weir record; the
//! next `weir run` starts after it. Refuses an epoch that is not the pending
//! one (see `run/quarantine.rs`).

use super::explain_problems;
use std::path::PathBuf;
use weir_runtime::pipeline;
use weir_runtime::{EngineOptions, PluginEngine};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline file (TOML).
    file: PathBuf,
    /// The pipeline whose epoch is quarantined.
    #[arg(long)]
    pipeline: String,
    /// The epoch, as the failing run's error names it.
    #[arg(long)]
    epoch: u64,
    /// Why: recorded with the epoch in every sink's commit and on every dead letter.
    #[arg(long)]
    reason: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let engine = PluginEngine::new(EngineOptions::default())?;
    let runtime = super::tokio_runtime()?;
    runtime.block_on(async {
        let prepared = explain_problems(pipeline::read_and_validate(&args.file, &engine).await)?;
        let dead_letters = prepared
            .pipelines
            .iter()
            .find(|p| p.spec.name == args.pipeline)
            .map(|p| p.spec.dead_letters.display().to_string());
        let report = weir_runtime::run::quarantine::quarantine(
            prepared,
            &args.pipeline,
            args.epoch,
            &args.reason,
        )
        .await?;
        println!(
            "pipeline {}: epoch {} quarantined: {} source record(s) sent to the dead-letter table {} with the reason; the next run starts after it",
            args.pipeline,
            args.epoch,
            report.quarantined,
            dead_letters.unwrap_or_default()
        );
        Ok(())
    })
}
