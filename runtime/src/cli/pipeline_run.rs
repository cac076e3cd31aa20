//! `weir run FILE [--once]`: validates the file, creates missing tables, and
//! runs every pipeline in it. Streams until SIGINT/SIGTERM (finishing the
//! current epoch), or with `--once` processes what is available at start and
//! exits 0.

use super::explain_problems;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use weir_runtime::pipeline;
use weir_runtime::run::{RunOptions, run_file};
use weir_runtime::{EngineOptions, PluginEngine};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline file (TOML).
    file: PathBuf,
    /// Process everything available at start, then exit (Spark's availableNow).
    #[arg(long)]
    once: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let engine = PluginEngine::new(EngineOptions::default())?;
    let runtime = super::tokio_runtime()?;
    runtime.block_on(async {
        let prepared = explain_problems(pipeline::read_and_validate(&args.file, &engine).await)?;
        let stop = Arc::new(AtomicBool::new(false));
        spawn_signal_watch(stop.clone());
        let reports = run_file(prepared, RunOptions { once: args.once }, stop).await?;
        for report in reports {
            let stages: Vec<String> = report
                .stages
                .iter()
                .map(|c| format!("{} in={} out={} rejected={}", c.stage, c.rows_in, c.rows_out, c.rejected))
                .collect();
            println!(
                "pipeline {}: {} new epoch(s), {} replayed, last epoch {}, {} records in, {} dead letters{}{}",
                report.pipeline,
                report.epochs,
                report.replayed,
                report.last_epoch,
                report.records_in,
                report.dead_letters,
                if stages.is_empty() { "" } else { "; " },
                stages.join("; ")
            );
        }
        Ok(())
    })
}

/// Sets `stop` on SIGINT or SIGTERM; a second signal exits at once.
fn spawn_signal_watch(stop: Arc<AtomicBool>) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut interrupt), Ok(mut terminate)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            tracing::warn!("cannot install signal handlers; stop with SIGKILL");
            return;
        };
        loop {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            if stop.swap(true, Ordering::SeqCst) {
                eprintln!("second signal: exiting without finishing the epoch");
                std::process::exit(130);
            }
            tracing::info!("stop requested; finishing the current epoch");
        }
    });
}
