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
use super::pins;
use super::source::{EpochSource, Fetched};
use super::stages::{StageCounts, StageSet};
use super::tables;
use crate::delta::commit_info;
use crate::delta::dead_letters;
use crate::delta::sink::SinkTarget;
use crate::delta::table;
use crate::pipeline::spec::SinkMode;
use crate::pipeline::{PortRef, PreparedFile, PreparedPipeline};
use deltalake::DeltaTable;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// How `weir run` runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Process what is available at start, then exit (Spark's `availableNow`);
    /// pipelines run one after another in dependency order.
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
}

/// One sink (or the dead-letter table, which has no `from`).
struct SinkHandle {
    name: String,
    from: Option<PortRef>,
    target: SinkTarget,
    table: Option<DeltaTable>,
    committed: u64,
    never_committed: bool,
}

/// Runs every pipeline of a validated file until done (`--once`) or `stop`.
pub async fn run_file(
    file: PreparedFile,
    options: RunOptions,
    stop: Arc<AtomicBool>,
) -> Result<Vec<PipelineReport>, RunError> {
    tables::create_missing(&file).await?;
    let root = file.file.checkpoint_dir.clone();
    if options.once {
        let mut reports = Vec::new();
        for prepared in &file.pipelines {
            reports.push(run_pipeline(prepared.clone(), &root, options, &stop).await?);
        }
        return Ok(reports);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (index, prepared) in file.pipelines.iter().cloned().enumerate() {
        let root = root.clone();
        let stop = stop.clone();
        tasks.spawn(async move { (index, run_pipeline(prepared, &root, options, &stop).await) });
    }
    let mut reports = vec![PipelineReport::default(); file.pipelines.len()];
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, Ok(report))) => reports[index] = report,
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

fn delta_error(pipeline: &str) -> impl Fn(crate::delta::DeltaError) -> RunError + '_ {
    move |source| RunError::Delta {
        pipeline: pipeline.to_string(),
        source,
    }
}

async fn open_sinks(prepared: &PreparedPipeline) -> Result<Vec<SinkHandle>, RunError> {
    let pipeline = &prepared.spec;
    let mut handles = Vec::new();
    let declared = pipeline.sinks.iter().map(|s| {
        (
            s.name.clone(),
            Some(s.from.clone()),
            SinkTarget {
                path: s.table.clone(),
                app_id: pipeline.app_id(&s.name),
                mode: s.mode,
                merge: s.merge.clone(),
            },
        )
    });
    let dead = (
        "dead_letters".to_string(),
        None,
        SinkTarget {
            path: pipeline.dead_letters.clone(),
            app_id: pipeline.app_id("dead_letters"),
            mode: SinkMode::Append,
            merge: None,
        },
    );
    for (name, from, target) in declared.chain([dead]) {
        let opened = table::open_existing(&target.path)
            .await
            .map_err(delta_error(&pipeline.name))?;
        let committed = commit_info::committed_epoch(&target.path, &opened, &target.app_id)
            .await
            .map_err(delta_error(&pipeline.name))?;
        handles.push(SinkHandle {
            name,
            from,
            target,
            table: Some(opened),
            committed: committed.unwrap_or(0),
            never_committed: committed.is_none(),
        });
    }
    Ok(handles)
}

/// The plan of `epoch`: from the checkpoint, else from a sink commit's Weir record.
async fn find_plan(
    epoch: u64,
    checkpoint: &Checkpoint,
    sinks: &[SinkHandle],
    pipeline: &str,
) -> Result<Option<EpochPlan>, RunError> {
    if let Some(plan) = checkpoint.plan(epoch)? {
        return Ok(Some(plan));
    }
    for sink in sinks.iter().filter(|s| s.committed >= epoch) {
        let Some(table) = &sink.table else { continue };
        let record = commit_info::find_epoch(&sink.target.path, table, &sink.target.app_id, epoch)
            .await
            .map_err(delta_error(pipeline))?;
        if let Some(plan) =
            record.and_then(|r| serde_json::from_value::<EpochPlan>(r.get("plan")?.clone()).ok())
        {
            return Ok(Some(plan));
        }
    }
    Ok(None)
}

async fn run_pipeline(
    prepared: PreparedPipeline,
    checkpoint_root: &Path,
    options: RunOptions,
    stop: &AtomicBool,
) -> Result<PipelineReport, RunError> {
    let pipeline = &prepared.spec;
    let name = pipeline.name.as_str();
    let checkpoint = Checkpoint::open(&checkpoint_root.join(name))?;
    let mut sinks = open_sinks(&prepared).await?;
    let mut stages = tokio::task::block_in_place(|| StageSet::new(&prepared))?;
    pins::keep_current(&checkpoint, stages.current())?;
    let mut report = PipelineReport {
        pipeline: name.to_string(),
        ..PipelineReport::default()
    };

    let ahead = sinks.iter().map(|s| s.committed).max().unwrap_or(0);
    let last = checkpoint.latest_planned()?.unwrap_or(0).max(ahead);
    if let Some(known) = checkpoint.known_sinks()? {
        for sink in sinks
            .iter_mut()
            .filter(|s| s.never_committed && !known.contains(&s.name))
        {
            tracing::info!(pipeline = name, sink = %sink.name, from_epoch = last + 1, "new sink joins the pipeline");
            sink.committed = last;
        }
    }
    checkpoint.write_known_sinks(&sinks.iter().map(|s| s.name.clone()).collect::<Vec<_>>())?;
    let done = sinks.iter().map(|s| s.committed).min().unwrap_or(0);
    let state_epoch = if stages.has_state() {
        checkpoint.latest_state(done)?.unwrap_or(0)
    } else {
        done
    };
    if state_epoch > 0 {
        stages.restore(&checkpoint, state_epoch)?;
    }
    let resume = match last {
        0 => None,
        _ => find_plan(last, &checkpoint, &sinks, name).await?,
    };
    if last > 0 && resume.is_none() {
        return Err(RunError::LostPlan {
            pipeline: name.to_string(),
            epoch: last,
        });
    }
    let mut source =
        EpochSource::open(pipeline, resume.as_ref().map(|p| &p.source), options.once).await?;

    // The range every new plan must continue (I6): the last committed or replayed epoch's.
    let mut previous = resume.as_ref().map(|plan| plan.source.clone());

    // Finish what a crash interrupted: epochs after the state snapshot, written only where missing.
    for epoch in state_epoch + 1..=last {
        let needing: Vec<usize> = (0..sinks.len())
            .filter(|&i| sinks[i].committed < epoch)
            .collect();
        let Some(plan) = find_plan(epoch, &checkpoint, &sinks, name).await? else {
            if needing.is_empty() {
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
        tokio::task::block_in_place(|| stages.pin(&plan.stages, &checkpoint, epoch))?;
        let fetched = source.replay(pipeline, &plan.source).await?;
        let what = if needing.is_empty() {
            "rebuilding state from"
        } else {
            "replaying"
        };
        tracing::info!(
            pipeline = name,
            epoch,
            sinks = needing.len(),
            "{what} an interrupted epoch"
        );
        run_epoch(&prepared, &plan, fetched, &mut stages, &mut sinks).await?;
        finish_epoch(pipeline, &checkpoint, &stages, &mut source, &plan)?;
        previous = Some(plan.source.clone());
        if !needing.is_empty() {
            report.replayed += 1;
        }
    }
    report.last_epoch = last;
    // New epochs run the versions the pipeline file names now.
    tokio::task::block_in_place(|| stages.pin(&[], &checkpoint, last + 1))?;

    loop {
        let Some(fetched) = source
            .next(pipeline, &pipeline.batch, options.once, stop)
            .await?
        else {
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
        let (counts, dead) = run_epoch(&prepared, &plan, fetched, &mut stages, &mut sinks).await?;
        finish_epoch(pipeline, &checkpoint, &stages, &mut source, &plan)?;
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
    if let EpochSource::Kafka { source, .. } = &source {
        tokio::task::block_in_place(|| source.flush_group_offsets());
    }
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

/// After every sink holds the epoch: snapshot state, prune, advance the source.
fn finish_epoch(
    pipeline: &crate::pipeline::Pipeline,
    checkpoint: &Checkpoint,
    stages: &StageSet,
    source: &mut EpochSource,
    plan: &EpochPlan,
) -> Result<(), RunError> {
    if stages.has_state() {
        checkpoint.write_state(plan.epoch, &stages.snapshot()?)?;
    }
    checkpoint.prune(plan.epoch);
    source.committed(pipeline, &plan.source)
}

/// Runs the stages on one epoch and commits it to every sink that lacks it.
/// Returns the per-stage counts and the number of dead letters.
async fn run_epoch(
    prepared: &PreparedPipeline,
    plan: &EpochPlan,
    fetched: Fetched,
    stages: &mut StageSet,
    sinks: &mut [SinkHandle],
) -> Result<(Vec<StageCounts>, usize), RunError> {
    let pipeline = &prepared.spec;
    let started = Instant::now();
    let source_records = fetched.batch.num_rows();
    let output =
        tokio::task::block_in_place(|| stages.run(plan, fetched.batch, fetched.rows.as_ref()))?;
    tracing::debug!(pipeline = %pipeline.name, epoch = plan.epoch, ms = started.elapsed().as_millis() as u64, "stages ran");
    let plugins = stages.pins();
    let dead_count = output.dead_letters.len();
    let counts = json!({
        "source_records": source_records,
        "stages": output.counts,
        "dead_letters": dead_count,
    });
    for sink in sinks.iter_mut().filter(|s| s.committed < plan.epoch) {
        let batches = match &sink.from {
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
            "sink": sink.name,
            "from": sink.from.as_ref().map(|port| pipeline.port_name(port)),
            "rows": rows,
            "plan": plan,
            "plugins": plugins,
            "counts": counts,
        });
        let table = sink
            .table
            .take()
            .expect("a sink's table is put back after every write");
        let written = sink
            .target
            .write_epoch(table, batches, plan.epoch, record)
            .await
            .map_err(delta_error(&pipeline.name))?;
        tracing::debug!(pipeline = %pipeline.name, epoch = plan.epoch, sink = %sink.name, rows, ms = started.elapsed().as_millis() as u64, "sink committed");
        sink.table = Some(written);
        sink.committed = plan.epoch;
        sink.never_committed = false;
    }
    Ok((output.counts, dead_count))
}

impl EpochSource {
    /// Current lag: messages behind (Kafka) or versions behind (Delta).
    pub async fn lag(&mut self) -> Option<i64> {
        match self {
            EpochSource::Kafka { source, .. } => tokio::task::block_in_place(|| source.lag()),
            EpochSource::Delta {
                path,
                table,
                next_version,
                ..
            } => {
                let latest = crate::delta::source::latest_version(path, table)
                    .await
                    .ok()?;
                Some((latest + 1).saturating_sub(*next_version) as i64)
            }
        }
    }
}
