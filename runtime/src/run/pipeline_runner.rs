//! The epoch loop of one pipeline, and running a whole file. On start a
//! pipeline restores its state to the last snapshot, replays (from their
//! recorded ranges) the epochs after it — writing only to sinks whose `txn`
//! version shows they lack the epoch — and then plans new epochs: record the
//! plan, run the stages, commit every sink, snapshot state, commit group
//! offsets, log a progress line.

use super::RunError;
use super::checkpoint::Checkpoint;
use super::continuity;
use super::epoch::EpochPlan;
use super::lookups::{LookupBatches, Lookups};
use super::pins;
use super::quarantine;
use super::recovery::{self, Facts};
use super::stages::{EpochOutput, StageCounts, StageSet};
use crate::connector::{self, Fetched, Progress, Reach, Sink, Writers};
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
        tasks.spawn(async move {
            let run = async {
                // Lookups are read as their writers left them. A writer that
                // failed stops the run: nothing to do here.
                if !lookup_writers.until_all_finished().await {
                    return Ok(None);
                }
                let checkpoint = Checkpoint::open(&root.join(&prepared.spec.name))?;
                let report =
                    run_pipeline(prepared, checkpoint, &reach, &progress, &stop, true).await?;
                progress.finished();
                Ok(Some(report))
            };
            (index, run.await)
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
    let stop = AtomicBool::new(false);
    let reach = Reach::AvailableNow(Writers::default());
    run_pipeline(prepared, checkpoint, &reach, &Progress::new(), &stop, false).await
}

/// Recovers the pipeline, then (with `plan_new`) plans and runs new epochs
/// until the source has reached `reach` or `stop`, telling `progress` of
/// every committed epoch. `checkpoint` is the pipeline's, locked for the run.
async fn run_pipeline(
    prepared: PreparedPipeline,
    checkpoint: Checkpoint,
    reach: &Reach,
    progress: &Progress,
    stop: &AtomicBool,
    plan_new: bool,
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
        run_epoch(&prepared, &plan, fetched, &tables, &mut stages, &mut sinks).await?;
        snapshot_state(&checkpoint, &stages, plan.epoch)?;
        source.acknowledge(&plan.source).await?;
        previous = Some(plan.source.clone());
        if !step.sinks.is_empty() {
            report.replayed += 1;
            progress.committed();
        }
    }
    report.last_epoch = last;
    // New epochs run the versions the pipeline file names now.
    tokio::task::block_in_place(|| stages.pin(&[], &checkpoint, last + 1))?;

    loop {
        let next = match plan_new {
            true => source.next(&pipeline.batch, reach.once(), stop).await?,
            false => None,
        };
        let Some(fetched) = next else {
            break;
        };
        let started = Instant::now();
        let plan = EpochPlan {
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
        let (counts, dead) =
            run_epoch(&prepared, &plan, fetched, &tables, &mut stages, &mut sinks).await?;
        snapshot_state(&checkpoint, &stages, plan.epoch)?;
        source.acknowledge(&plan.source).await?;
        progress.committed();
        report.last_epoch = plan.epoch;
        report.epochs += 1;
        report.records_in += records as u64;
        report.dead_letters += dead as u64;
        accumulate(&mut report.stages, &counts);
        let epoch_ms = started.elapsed().as_millis() as u64;
        let lag_started = Instant::now();
        let lag = source.lag().await;
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
            }
            None => totals.push(count.clone()),
        }
    }
}

/// After every sink holds the epoch: snapshot state and prune the checkpoint
/// (the caller then acknowledges the source).
fn snapshot_state(checkpoint: &Checkpoint, stages: &StageSet, epoch: u64) -> Result<(), RunError> {
    if stages.has_state() {
        checkpoint.write_state(epoch, &stages.snapshot()?)?;
    }
    checkpoint.prune(epoch);
    Ok(())
}

/// Runs the stages on one epoch and commits it to every sink that lacks it.
/// Returns the per-stage counts and the number of dead letters.
async fn run_epoch(
    prepared: &PreparedPipeline,
    plan: &EpochPlan,
    fetched: Fetched,
    lookups: &LookupBatches,
    stages: &mut StageSet,
    sinks: &mut [SinkHandle],
) -> Result<(Vec<StageCounts>, usize), RunError> {
    let pipeline = &prepared.spec;
    let started = Instant::now();
    let source_records = fetched.batch.num_rows();
    let output = match &plan.quarantine {
        Some(decision) => EpochOutput {
            dead_letters: quarantine::dead_letters(decision, &fetched),
            ..EpochOutput::default()
        },
        None => tokio::task::block_in_place(|| {
            stages.run(plan, fetched.batch, fetched.rows.as_ref(), lookups)
        })?,
    };
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
    Ok((output.counts, dead_count))
}
