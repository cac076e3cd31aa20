//! `weir run FILE [--once]`: validates the file, creates missing tables, and
//! runs every pipeline in it. Streams until SIGINT/SIGTERM (finishing the
//! current epoch), or with `--once` processes what is available at start and
//! exits 0. With an `[admin]` section it also serves the admin API (status,
//! swap, rollback, shadow, history, metrics, deployment) while it runs; a
//! file with `[admin]` and no pipeline is a server waiting for deployments.

use super::explain_problems;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use weir_runtime::admin::{self, Deployments};
use weir_runtime::control::Control;
use weir_runtime::pipeline;
use weir_runtime::run::{RunOptions, deployment_name, run_file_with};
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
        let control = Control::new();
        let deployment = deployment_name(&args.file);
        let outcome = Arc::new(Mutex::new(None));
        let serving = match &prepared.file.admin {
            Some(settings) => {
                let started = (!prepared.pipelines.is_empty()).then(|| (deployment.as_str(), outcome.clone()));
                Some(start_admin(&prepared, settings, &engine, &control, started)?)
            }
            None => None,
        };
        let server_only = serving.is_some() && prepared.pipelines.is_empty();
        let run = run_file_with(
            prepared,
            RunOptions { once: args.once },
            stop.clone(),
            &control,
            &deployment,
        )
        .await;
        *outcome.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(run.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        if server_only {
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        if let Some((_server, deployments)) = &serving {
            deployments.stop_all().await;
        }
        let reports = run?;
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

/// What a deployment's run came to (`None` while it runs).
pub(super) type Outcome = Arc<Mutex<Option<Result<(), String>>>>;

/// Starts the admin API of `prepared` (relative paths of deployed files
/// resolve against its directory), listing `started` — the file's name and
/// outcome — as the deployment of the file `weir run` was started with.
pub(super) fn start_admin(
    prepared: &weir_runtime::pipeline::PreparedFile,
    settings: &weir_runtime::pipeline::model::Admin,
    engine: &PluginEngine,
    control: &Arc<Control>,
    started: Option<(&str, Outcome)>,
) -> anyhow::Result<(admin::AdminServer, Arc<Deployments>)> {
    let base = std::path::absolute(&prepared.file.path)?
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let deployments = Deployments::new(
        base,
        prepared.file.checkpoint_dir.clone(),
        engine.clone(),
        control.clone(),
        tokio::runtime::Handle::current(),
    );
    if let Some((name, outcome)) = started {
        let names = prepared
            .pipelines
            .iter()
            .map(|p| p.spec.name.clone())
            .collect();
        deployments.add_started_file(name, names, outcome);
    }
    let server = admin::start(settings, control.clone(), deployments.clone())?;
    println!("admin API listening on http://{}", server.address());
    Ok((server, deployments))
}

/// Sets `stop` on SIGINT or SIGTERM; a second signal exits at once.
pub(super) fn spawn_signal_watch(stop: Arc<AtomicBool>) {
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
