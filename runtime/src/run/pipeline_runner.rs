//! The epoch loop of one pipeline, and running a whole file. On start a
//! pipeline restores its state to the last snapshot, replays (from their
//! recorded ranges) the epochs after it — writing only to sinks whose `txn`
//! version shows they lack the epoch — and then plans new epochs: record the
//! plan, run the stages, commit every sink, snapshot state, commit group
//! offsets, log a progress line. Between epochs it applies the operators'
//! commands queued on its [`PipelineHandle`] (swaps, rollbacks, shadows), so
//! each epoch runs entirely one version of every stage.

use super::RunError;
use super::active;
use super::checkpoint::Checkpoint;
use super::continuity;
use super::epoch::EpochPlan;
use super::epoch::Quarantine;
use super::lookups::{LookupBatches, Lookups};
use super::pins;
use super::quarantine;
use super::recovery::{self, Facts};
use super::stages::{EpochOutput, Outcome, StageCounts, StageSet};
use crate::connector::{self, Fetched, Progress, Reach, Sink, Writers};
use crate::control::{Control, PipelineHandle, State};
use crate::delta::dead_letters;
use crate::pipeline::{PreparedFile, PreparedPipeline};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// How `weir run` runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Process what is available at start, then exit (Spark's `availableNow`);
    /// a pipeline reading another's table reads everything that one writes
    /// in the run (see [`run_file`]).
    pub once: bool,
}

/// What a pipeline did during a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineReport {
    /// The pipeline.
    pub pipeline: String,
    /// New epochs committed.
    pub epochs: u64,
    /// Interrupted epochs finished from their recorded ranges.
    pub replayed: u64,
    /// The last committed epoch.
    pub last_epoch: u64,
    /// Source records read in new epochs.
    pub records_in: u64,
    /// Dead letters written in new epochs.
    pub dead_letters: u64,
    /// Per-stage totals over new epochs.
    pub stages: Vec<StageCounts>,
    /// Source records of quarantined epochs finished in this run, all sent
    /// to the dead-letter table (`weir quarantine`).
    pub quarantined: u64,
}

/// One sink and the last epoch it holds.
struct SinkHandle {
    sink: Box<dyn Sink>,
    committed: u64,
}

/// Runs every pipeline of a validated file until done (`--once`) or `stop`,
/// all at the same time. Under `--once` a pipeline reading a table another
/// pipeline of the file writes reads until that writer has finished, and a
/// pipeline with lookup tables others write starts when they have finished:
/// the results are those of running the pipelines one after another.
pub async fn run_file(
    file: PreparedFile,
    options: RunOptions,
    stop: Arc<AtomicBool>,
) -> Result<Vec<PipelineReport>, RunError> {
    let deployment = deployment_name(&file.file.path);
    run_file_with(file, options, stop, &Control::new(), &deployment).await
}

/// The deployment name of a pipeline file: its file stem.
pub fn deployment_name(path: &std::path::Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pipelines".into())
}

/// [`run_file`], with every pipeline registered in `control` (status,
/// commands, metrics) under `deployment`.
pub async fn run_file_with(
    file: PreparedFile,
    options: RunOptions,
    stop: Arc<AtomicBool>,
    control: &Arc<Control>,
    deployment: &str,
) -> Result<Vec<PipelineReport>, RunError> {
    connector::prepare_sinks(&file).await?;
    let root = file.file.checkpoint_dir.clone();
    let progress: Vec<Progress> = file.pipelines.iter().map(|_| Progress::new()).collect();
    let follows: Vec<(Reach, Writers)> = file
        .upstream
        .iter()
        .map(|upstream| {
            let writers = |of: &[usize]| Writers::of(of.iter().map(|&w| &progress[w]));
            match options.once {
                true => (
                    Reach::AvailableNow(writers(&upstream.source)),
                    writers(&upstream.lookups),
                ),
                false => (Reach::Unbounded, Writers::default()),
            }
        })
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    let runs = file.pipelines.iter().cloned().zip(progress).zip(follows);
    for (index, ((prepared, progress), (reach, mut lookup_writers))) in runs.enumerate() {
        let root = root.clone();
        let stop = stop.clone();
        let handle = control.register(&prepared, root.join(&prepared.spec.name), deployment);
        crate::control::watch::spawn(handle.clone(), stop.clone());
        tasks.spawn(async move {
            let run = async {
                // Lookups are read as their writers left them. A writer that
                // failed stops the run: nothing to do here.
                if !lookup_writers.until_all_finished().await {
                    return Ok(None);
                }
                let checkpoint = Checkpoint::open(&root.join(&prepared.spec.name))?;
                let report = run_pipeline(
                    prepared, checkpoint, &reach, &progress, &stop, true, &handle,
                )
                .await?;
                progress.finished();
                Ok(Some(report))
            };
            let result: Result<Option<PipelineReport>, RunError> = run.await;
            handle.update(|view| {
                view.state = match &result {
                    Ok(_) => State::Stopped,
                    Err(error) => State::Failed(error.to_string()),
                }
            });
            (index, result)
        });
    }
    let mut reports = vec![PipelineReport::default(); file.pipelines.len()];
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, Ok(report))) => reports[index] = report.unwrap_or_default(),
            Ok((index, Err(error))) => {
                let pipeline = &file.pipelines[index].spec.name;
                stop.store(true, Ordering::SeqCst);
                if first_error.is_none() {
                    // Returned, and printed once by the caller.
                    tracing::warn!(pipeline = %pipeline, "pipeline stopped with an error; stopping the others after their current epoch");
                    first_error = Some(error);
                } else {
                    tracing::error!(pipeline = %pipeline, %error, "pipeline stopped");
                }
            }
            Err(join_error) => std::panic::resume_unwind(join_error.into_panic()),
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(reports),
    }
}

/// The plan of `epoch`: from the checkpoint, else from a sink that holds it.
async fn find_plan(
    epoch: u64,
    checkpoint: &Checkpoint,
    sinks: &mut [SinkHandle],
) -> Result<Option<EpochPlan>, RunError> {
    if let Some(plan) = checkpoint.plan(epoch)? {
        return Ok(Some(plan));
    }
    for handle in sinks.iter_mut().filter(|s| s.committed >= epoch) {
        if let Some(plan) = handle.sink.recorded_plan(epoch).await? {
            return Ok(Some(plan));
        }
    }
    Ok(None)
}

/// Finishes the epochs a pipeline's (locked) checkpoint and sinks say are
/// interrupted, and plans none (used by `weir quarantine`; sinks must exist).
pub(crate) async fn recover(
    prepared: PreparedPipeline,
    checkpoint: Checkpoint,
) -> Result<PipelineReport, RunError> {
    let stop = Arc::new(AtomicBool::new(false));
    let reach = Reach::AvailableNow(Writers::default());
    let handle = Control::new().register(&prepared, checkpoint.dir().to_path_buf(), "recovery");
    run_pipeline(
        prepared,
        checkpoint,
        &reach,
        &Progress::new(),
        &stop,
        false,
        &handle,
    )
    .await
}

/// Recovers the pipeline, then (with `plan_new`) plans and runs new epochs
/// until the source has reached `reach` or `stop`, telling `progress` of
/// every committed epoch. `checkpoint` is the pipeline's, locked for the run.
async fn run_pipeline(
    prepared: PreparedPipeline,
    checkpoint: Checkpoint,
    reach: &Reach,
    progress: &Progress,
    stop: &Arc<AtomicBool>,
    plan_new: bool,
    handle: &Arc<PipelineHandle>,
) -> Result<PipelineReport, RunError> {
    let pipeline = &prepared.spec;
    let name = pipeline.name.as_str();
    if let Some(schema) = prepared.schemas.get(&crate::pipeline::PortRef::Source) {
        checkpoint.keep_source_schema(schema)?;
    }
    let mut opened = connector::open_sinks(&prepared, checkpoint.dir()).await?;
    let mut stages = tokio::task::block_in_place(|| StageSet::new(&prepared))?;
    let mut lookups = Lookups::new(&prepared);
    pins::keep_current(&checkpoint, stages.current())?;
    let mut report = PipelineReport {
        pipeline: name.to_string(),
        ..PipelineReport::default()
    };

    let mut held = Vec::new();
    for sink in &mut opened {
        held.push((sink.name().to_string(), sink.last_epoch().await?));
    }
    let decision = recovery::decide(&Facts {
        latest_planned: checkpoint.latest_planned()?,
        known_sinks: checkpoint.known_sinks()?,
        snapshots: checkpoint.state_snapshots()?,
        stateful: stages.has_state(),
        sinks: held,
    });
    let last = decision.last;
    let mut sinks: Vec<SinkHandle> = opened
        .into_iter()
        .zip(&decision.committed)
        .map(|(sink, &committed)| SinkHandle { sink, committed })
        .collect();
    for &i in &decision.joined {
        tracing::info!(pipeline = name, sink = %sinks[i].sink.name(), from_epoch = last + 1, "new sink joins the pipeline");
    }
    checkpoint.write_known_sinks(
        &sinks
            .iter()
            .map(|s| s.sink.name().to_string())
            .collect::<Vec<_>>(),
    )?;
    if let Some(snapshot) = decision.restore {
        stages.restore(&checkpoint, snapshot)?;
    }
    let mut ctx = EpochContext {
        checkpoint: &checkpoint,
        handle,
        state: match stages.has_state() {
            true => stages.snapshot()?,
            false => Vec::new(),
        },
    };
    let resume = match decision.resume_from {
        None => None,
        Some(epoch) => Some(
            find_plan(epoch, &checkpoint, &mut sinks)
                .await?
                .ok_or_else(|| RunError::LostPlan {
                    pipeline: name.to_string(),
                    epoch,
                })?,
        ),
    };
    let mut source =
        connector::open_source(&prepared, resume.as_ref().map(|p| &p.source), reach).await?;

    // The range every new plan must continue (I6): the last committed or replayed epoch's.
    let mut previous = resume.as_ref().map(|plan| plan.source.clone());

    // Finish what a crash interrupted: epochs after the state snapshot, written only where missing.
    for step in &decision.replays {
        let epoch = step.epoch;
        let Some(plan) = find_plan(epoch, &checkpoint, &mut sinks).await? else {
            if step.sinks.is_empty() {
                tracing::warn!(
                    pipeline = name,
                    epoch,
                    "no plan recorded for an epoch after the last state snapshot; its dedupe keys are forgotten"
                );
                continue;
            }
            return Err(RunError::LostPlan {
                pipeline: name.to_string(),
                epoch,
            });
        };
        if plan.quarantine.is_none() {
            tokio::task::block_in_place(|| stages.pin(&plan.stages, &checkpoint, epoch))?;
        }
        let fetched = match source.replay(&plan.source).await {
            Ok(fetched) => fetched,
            // Every sink holds the epoch: only stage state would be rebuilt
            // from it. Its input is gone (landed files deleted after commit),
            // so its keys are forgotten, as when its plan is lost. Any other
            // error (a broker away, a changed file) stops the run.
            Err(error) if step.sinks.is_empty() && error.input_gone() => {
                tracing::warn!(
                    pipeline = name,
                    epoch,
                    %error,
                    "cannot re-read an epoch to rebuild stage state; its dedupe keys are forgotten (a later duplicate of them passes)"
                );
                source.acknowledge(&plan.source).await?;
                previous = Some(plan.source.clone());
                continue;
            }
            Err(error) => return Err(error),
        };
        let what = if step.sinks.is_empty() {
            "rebuilding state from"
        } else {
            "replaying"
        };
        tracing::info!(
            pipeline = name,
            epoch,
            sinks = step.sinks.len(),
            "{what} an interrupted epoch"
        );
        if plan.quarantine.is_some() && !step.sinks.is_empty() {
            report.quarantined += fetched.batch.num_rows() as u64;
        }
        // A quarantined epoch runs no stage, so it reads no lookup (the
        // lookup may be what made it fail).
        let tables = match plan.quarantine {
            Some(_) => LookupBatches::default(),
            None => lookups.load(&plan.lookups, &fetched.batch).await?,
        };
        let mut plan = plan;
        run_epoch(
            &prepared,
            &mut plan,
            &fetched,
            &tables,
            &mut stages,
            &mut sinks,
            &mut ctx,
        )
        .await?;
        ctx.state = snapshot_state(&checkpoint, &stages, plan.epoch)?;
        source.acknowledge(&plan.source).await?;
        previous = Some(plan.source.clone());
        handle.update(|view| view.last_epoch = plan.epoch);
        if !step.sinks.is_empty() {
            report.replayed += 1;
            progress.committed();
        }
    }
    report.last_epoch = last;
    // New epochs run the versions the pipeline file names now, or the ones
    // operators swapped in while the file still names what it named then.
    let file_pins: Vec<_> = stages.current().iter().map(|v| v.pin.clone()).collect();
    let chosen = active::after_restart(&file_pins, &active::read(checkpoint.dir())?);
    for (chosen, file) in chosen.iter().zip(&file_pins) {
        if chosen != file {
            tracing::info!(pipeline = name, stage = %chosen.stage, runs = %crate::control::describe(chosen),
                file = %crate::control::describe(file), "stage keeps the version swapped in before the restart");
        }
    }
    if let Err(error) = tokio::task::block_in_place(|| stages.pin(&chosen, &checkpoint, last + 1)) {
        if chosen == file_pins {
            return Err(error);
        }
        tracing::warn!(pipeline = name, %error,
            "the versions swapped in before the restart (active.json) no longer fit; running the versions the pipeline file names");
        tokio::task::block_in_place(|| stages.pin(&file_pins, &checkpoint, last + 1))?;
    }
    handle.show(&stages);
    handle.update(|view| {
        view.state = State::Running;
        view.last_epoch = last;
    });
    // The source returns between epochs when a command arrives or on stop.
    let interrupt = handle.wake_flag();
    let forward = tokio::spawn(forward_stop(stop.clone(), interrupt.clone()));
    // Time spent applying commands since the last epoch ran.
    let mut applied = std::time::Duration::ZERO;

    loop {
        if plan_new {
            // Clear the wake-up (kept set once stopping) before draining the
            // queue: a command queued after this sets it again.
            interrupt.store(false, Ordering::SeqCst);
            if stop.load(Ordering::SeqCst) {
                interrupt.store(true, Ordering::SeqCst);
            }
            let applying = Instant::now();
            handle.apply(&mut stages, report.last_epoch + 1)?;
            applied += applying.elapsed();
        }
        let next = match plan_new {
            true => source.next(&pipeline.batch, reach.once(), &interrupt).await,
            false => Ok(None),
        };
        // A swap's `active.json` was synced while the source fetched; it is
        // on disk before the plan naming the new version is written, so a
        // restart never replays an epoch of a version it would not pick again.
        let settled = tokio::task::block_in_place(|| handle.settle_versions());
        let next = next?;
        settled?;
        let Some(fetched) = next else {
            if plan_new && !stop.load(Ordering::SeqCst) && interrupt.load(Ordering::SeqCst) {
                continue; // woken for a command: apply it, then read on
            }
            break;
        };
        let started = Instant::now();
        let mut plan = EpochPlan {
            pipeline: name.to_string(),
            epoch: report.last_epoch + 1,
            source: fetched.range.clone(),
            clock_nanos: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
            stages: stages.pins(),
            lookups: lookups.pin(&fetched.range).await?,
            quarantine: None,
        };
        let problems = continuity::violations(previous.as_ref(), &plan.source);
        if !problems.is_empty() {
            return Err(RunError::Discontinuity {
                pipeline: name.to_string(),
                epoch: plan.epoch,
                previous: report.last_epoch,
                problems,
            });
        }
        checkpoint.write_plan(&plan)?;
        previous = Some(plan.source.clone());
        let records = fetched.batch.num_rows();
        let tables = lookups.load(&plan.lookups, &fetched.batch).await?;
        let (counts, output, quarantined) = run_epoch(
            &prepared,
            &mut plan,
            &fetched,
            &tables,
            &mut stages,
            &mut sinks,
            &mut ctx,
        )
        .await?;
        let dead = output.dead_letters;
        report.quarantined += quarantined;
        ctx.state = snapshot_state(&checkpoint, &stages, plan.epoch)?;
        source.acknowledge(&plan.source).await?;
        handle.record_timing(crate::control::EpochTiming {
            epoch: plan.epoch,
            stages_started: output.stages.0,
            stages_finished: output.stages.1,
            finished: Instant::now(),
            applied: std::mem::take(&mut applied),
        });
        stages.epoch_committed();
        progress.committed();
        report.last_epoch = plan.epoch;
        report.epochs += 1;
        report.records_in += records as u64;
        report.dead_letters += dead as u64;
        accumulate(&mut report.stages, &counts);
        let epoch_ms = started.elapsed().as_millis() as u64;
        handle.metrics().epoch(
            name,
            plan.epoch,
            started.elapsed().as_secs_f64(),
            &counts,
            &output.calls,
            &output.bisections,
        );
        let lag_started = Instant::now();
        let parts = source.lag_by_partition().await;
        handle.metrics().lag(name, &parts);
        let lag = match parts.is_empty() {
            true => None,
            false => Some(parts.iter().map(|(_, l)| l).sum::<i64>()),
        };
        handle.update(|view| {
            view.last_epoch = plan.epoch;
            view.epochs += 1;
            view.lag = parts;
        });
        tracing::debug!(
            pipeline = name,
            ms = lag_started.elapsed().as_millis() as u64,
            "lag measured"
        );
        let per_stage: Vec<String> = counts
            .iter()
            .map(|c| {
                let mut text = format!(
                    "{}: in={} out={} rejected={}",
                    c.stage, c.rows_in, c.rows_out, c.rejected
                );
                if c.duplicates + c.late > 0 {
                    text.push_str(&format!(" duplicates={} late={}", c.duplicates, c.late));
                }
                text
            })
            .collect();
        tracing::info!(
            pipeline = name,
            epoch = plan.epoch,
            records,
            dead_letters = dead,
            lag = lag.map_or_else(|| "?".to_string(), |l| l.to_string()),
            ms = epoch_ms,
            "epoch committed: {}",
            per_stage.join("; ")
        );
    }
    forward.abort();
    // A swap applied after the last epoch is on disk before the run ends.
    tokio::task::block_in_place(|| handle.settle_versions())?;
    source.close().await;
    tracing::info!(
        pipeline = name,
        epochs = report.epochs,
        last_epoch = report.last_epoch,
        "pipeline finished"
    );
    Ok(report)
}

fn accumulate(totals: &mut Vec<StageCounts>, counts: &[StageCounts]) {
    for count in counts {
        match totals.iter_mut().find(|t| t.stage == count.stage) {
            Some(total) => {
                total.rows_in += count.rows_in;
                total.rows_out += count.rows_out;
                total.rejected += count.rejected;
                total.duplicates += count.duplicates;
                total.late += count.late;
                total.poisoned += count.poisoned;
            }
            None => totals.push(count.clone()),
        }
    }
}

/// Sets `interrupt` once `stop` is set, so a source waiting for records
/// (which looks at `interrupt`) returns.
async fn forward_stop(stop: Arc<AtomicBool>, interrupt: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    interrupt.store(true, Ordering::SeqCst);
}

/// After every sink holds the epoch: snapshot state and prune the checkpoint
/// (the caller then acknowledges the source). Returns the snapshot: the
/// state an epoch that must run again (rollback, quarantine) starts from.
fn snapshot_state(
    checkpoint: &Checkpoint,
    stages: &StageSet,
    epoch: u64,
) -> Result<Vec<(String, Vec<u8>)>, RunError> {
    let mut files = Vec::new();
    if stages.has_state() {
        files = stages.snapshot()?;
        checkpoint.write_state(epoch, &files)?;
    }
    checkpoint.prune(epoch);
    Ok(files)
}

/// What running an epoch needs besides its data.
struct EpochContext<'a> {
    checkpoint: &'a Checkpoint,
    handle: &'a PipelineHandle,
    /// Stage state as of the last committed epoch.
    state: Vec<(String, Vec<u8>)>,
}

/// What [`run_epoch`] reports: dead letters written, stage calls and bisections.
struct EpochSummary {
    /// When the stages began and ended (the last attempt's end).
    stages: (Instant, Instant),
    dead_letters: usize,
    calls: Vec<super::stages::StageCall>,
    bisections: Vec<String>,
}

/// Runs the stages on one epoch and commits it to every sink that lacks it.
/// A version on probation that fails hands the epoch back to the previous
/// version, and too many poison rows under `on_exceed = "quarantine"` turn
/// it into a quarantined epoch: both rewrite the plan (no sink holds the
/// epoch yet) and run the epoch again from the last committed state.
/// Returns the per-stage counts, a summary and the rows quarantined.
async fn run_epoch(
    prepared: &PreparedPipeline,
    plan: &mut EpochPlan,
    fetched: &Fetched,
    lookups: &LookupBatches,
    stages: &mut StageSet,
    sinks: &mut [SinkHandle],
    ctx: &mut EpochContext<'_>,
) -> Result<(Vec<StageCounts>, EpochSummary, u64), RunError> {
    let pipeline = &prepared.spec;
    let started = Instant::now();
    let source_records = fetched.batch.num_rows();
    let stages_started = Instant::now();
    let output = loop {
        if let Some(decision) = &plan.quarantine {
            break EpochOutput {
                dead_letters: quarantine::dead_letters(decision, fetched),
                ..EpochOutput::default()
            };
        }
        let outcome = tokio::task::block_in_place(|| {
            stages.run(plan, fetched.batch.clone(), fetched.rows.as_ref(), lookups)
        })?;
        let held_by = sinks.iter().find(|s| s.committed >= plan.epoch);
        match outcome {
            Outcome::Ran(output) => break output,
            Outcome::RollBack { stage, reason } if held_by.is_none() => {
                tracing::warn!(pipeline = %pipeline.name, epoch = plan.epoch, stage = %pipeline.stages[stage].name,
                    %reason, "the version on probation failed; rolling back and running the epoch with the previous version");
                let switched = stages.roll_back(stage)?;
                if switched.is_none() {
                    // Nothing to return to: the epoch runs again without
                    // probation, so a failure now takes the ordinary policy.
                    stages.end_probation(stage);
                }
                // The rewritten plan first: a crash from here on replays
                // the epoch with the previous version.
                stages.restore_snapshot(&ctx.state)?;
                plan.stages = stages.pins();
                ctx.checkpoint.write_plan(plan)?;
                ctx.handle
                    .rolled_back_on_probation(stages, stage, plan.epoch, &reason, switched)?;
                continue;
            }
            Outcome::Quarantine { stage, reason } if held_by.is_none() => {
                tracing::warn!(pipeline = %pipeline.name, epoch = plan.epoch, %stage, %reason,
                    "too many poison rows; the epoch's input goes to the dead-letter table (poison.on_exceed = \"quarantine\")");
                plan.quarantine = Some(Quarantine {
                    reason: format!("stage `{stage}`: {reason}"),
                    decided_nanos: SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_nanos() as u64)
                        .unwrap_or(0),
                });
            }
            Outcome::RollBack { reason, .. } | Outcome::Quarantine { reason, .. } => {
                return Err(RunError::CorruptCheckpoint {
                    path: ctx.checkpoint.dir().to_path_buf(),
                    reason: format!(
                        "epoch {} is held by sink `{}` but running it again failed: {reason}",
                        plan.epoch,
                        held_by.map(|s| s.sink.name()).unwrap_or_default()
                    ),
                });
            }
        }
        stages.restore_snapshot(&ctx.state)?;
        plan.stages = stages.pins();
        ctx.checkpoint.write_plan(plan)?;
    };
    let stages_finished = Instant::now();
    let quarantined = if plan.quarantine.is_some() {
        source_records
    } else {
        0
    };
    tracing::debug!(pipeline = %pipeline.name, epoch = plan.epoch, ms = started.elapsed().as_millis() as u64, "stages ran");
    let plugins = stages.pins();
    let dead_count = output.dead_letters.len();
    let counts = json!({
        "source_records": source_records,
        "stages": output.counts,
        "dead_letters": dead_count,
        "quarantined": quarantined,
    });
    for handle in sinks.iter_mut().filter(|s| s.committed < plan.epoch) {
        let from = handle.sink.from().cloned();
        let batches = match &from {
            Some(port) => output.ports.get(port).cloned().unwrap_or_default(),
            None => vec![dead_letters::to_batch(
                &pipeline.name,
                plan.epoch,
                &output.dead_letters,
            )],
        };
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let record = json!({
            "pipeline": pipeline.name,
            "sink": handle.sink.name(),
            "from": from.as_ref().map(|port| pipeline.port_name(port)),
            "rows": rows,
            "plan": plan,
            "plugins": plugins,
            "counts": counts,
        });
        handle.sink.commit(plan.epoch, batches, record).await?;
        tracing::debug!(pipeline = %pipeline.name, epoch = plan.epoch, sink = %handle.sink.name(), rows, ms = started.elapsed().as_millis() as u64, "sink committed");
        handle.committed = plan.epoch;
    }
    let summary = EpochSummary {
        stages: (stages_started, stages_finished),
        dead_letters: dead_count,
        calls: output.calls,
        bisections: output.bisections,
    };
    Ok((output.counts, summary, quarantined as u64))
}
