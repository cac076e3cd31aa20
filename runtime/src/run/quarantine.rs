//! `weir quarantine`: an operator moves past a poison epoch on purpose. The
//! decision (reason and time) is written into the epoch's plan in the
//! checkpoint; the pipeline's recovery then finishes the epoch as it
//! finishes any interrupted one, except that its stages do not run: every
//! source row of the recorded range goes to the dead-letter table (origin,
//! raw bytes, the reason), every other sink commits the epoch empty, and each
//! commit's Weir record carries the plan with the decision. Because the
//! decision lives in the plan, a crash half-way through, a later replay or a
//! rebuild of stage state all treat the epoch the same way (its rows never
//! reach dedupe state).
//!
//! Only the pending epoch can be quarantined: planned, held by no sink, and
//! every earlier epoch held by every sink (the runner plans epoch N+1 only
//! after N is committed everywhere, so that is the epoch a failing run is
//! stuck on).

use super::RunError;
use super::checkpoint::Checkpoint;
use super::epoch::Quarantine;
use super::pipeline_runner::PipelineReport;
use crate::connector::{self, Fetched};
use crate::delta::dead_letters::DeadLetter;
use crate::pipeline::PreparedFile;
use std::time::{SystemTime, UNIX_EPOCH};

/// The stage name recorded on quarantined rows in the dead-letter table.
pub const STAGE: &str = "quarantine";

/// Why an epoch cannot be quarantined.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The file has no pipeline of that name.
    #[error("the file has no pipeline `{pipeline}` (it has {})", known.join(", "))]
    UnknownPipeline {
        /// The name asked for.
        pipeline: String,
        /// The names it has.
        known: Vec<String>,
    },
    /// No plan of that epoch in the checkpoint.
    #[error(
        "pipeline `{pipeline}` has no plan of epoch {epoch} in its checkpoint (the newest is {}); quarantine applies to the epoch a failing run is stuck on, which its error names",
        latest.map_or_else(|| "none".to_string(), |l| l.to_string())
    )]
    NotPlanned {
        /// The pipeline.
        pipeline: String,
        /// The epoch asked for.
        epoch: u64,
        /// The newest planned epoch.
        latest: Option<u64>,
    },
    /// A sink already holds the epoch.
    #[error(
        "pipeline `{pipeline}`: sink `{sink}` already holds epoch {epoch}; only an epoch no sink has committed can be quarantined"
    )]
    Committed {
        /// The pipeline.
        pipeline: String,
        /// The epoch.
        epoch: u64,
        /// A sink holding it.
        sink: String,
    },
    /// An earlier epoch is not yet in every sink.
    #[error(
        "pipeline `{pipeline}`: sink `{sink}` holds only epoch {held}, so epoch {epoch} is not the pending one; run the pipeline (`weir run --once`) to finish the earlier epochs first"
    )]
    EarlierPending {
        /// The pipeline.
        pipeline: String,
        /// The epoch asked for.
        epoch: u64,
        /// A sink behind.
        sink: String,
        /// What it holds.
        held: u64,
    },
    /// Recovery did not hand the epoch to any sink (no sink the checkpoint
    /// knows lacks it).
    #[error(
        "pipeline `{pipeline}`: epoch {epoch} was marked quarantined but no sink took it; its sinks are not the ones its checkpoint knows — run `weir run` to see what recovery decides"
    )]
    NotFinished {
        /// The pipeline.
        pipeline: String,
        /// The epoch.
        epoch: u64,
    },
    /// An empty reason.
    #[error("give a --reason: it is recorded with the epoch in every sink's commit")]
    NoReason,
}

/// Quarantines epoch `epoch` of pipeline `pipeline` in `file` with `reason`,
/// then finishes it (see the module docs). Returns the pipeline's report
/// (`replayed` = 1).
///
/// Errors: [`Refusal`]s (as [`RunError::Quarantine`]), and whatever finishing
/// the epoch meets (the source range can no longer be read, a sink fails).
pub async fn quarantine(
    file: PreparedFile,
    pipeline: &str,
    epoch: u64,
    reason: &str,
) -> Result<PipelineReport, RunError> {
    let refused = |refusal| RunError::Quarantine(Box::new(refusal));
    if reason.trim().is_empty() {
        return Err(refused(Refusal::NoReason));
    }
    let Some(prepared) = file.pipelines.iter().find(|p| p.spec.name == pipeline) else {
        return Err(refused(Refusal::UnknownPipeline {
            pipeline: pipeline.to_string(),
            known: file.pipelines.iter().map(|p| p.spec.name.clone()).collect(),
        }));
    };
    connector::prepare_sinks(&file).await?;
    // Held from the decision to the end of the epoch's commits, so no `weir
    // run` can finish the epoch in between.
    let checkpoint = Checkpoint::open(&file.file.checkpoint_dir.join(pipeline))?;
    {
        let Some(mut plan) = checkpoint.plan(epoch)? else {
            return Err(refused(Refusal::NotPlanned {
                pipeline: pipeline.to_string(),
                epoch,
                latest: checkpoint.latest_planned()?,
            }));
        };
        for mut sink in connector::open_sinks(prepared, checkpoint.dir()).await? {
            let Some(held) = sink.last_epoch().await? else {
                continue; // a sink that never committed joins with the next epoch
            };
            if held >= epoch {
                return Err(refused(Refusal::Committed {
                    pipeline: pipeline.to_string(),
                    epoch,
                    sink: sink.name().to_string(),
                }));
            }
            if held + 1 < epoch {
                return Err(refused(Refusal::EarlierPending {
                    pipeline: pipeline.to_string(),
                    epoch,
                    sink: sink.name().to_string(),
                    held,
                }));
            }
        }
        // The epoch's input must still be readable (a landed file moved
        // away, say), or the decision would be recorded for an epoch no
        // one can finish.
        let mut source = connector::open_source(
            prepared,
            Some(&plan.source),
            &connector::Reach::AvailableNow(connector::Writers::default()),
        )
        .await?;
        source.replay(&plan.source).await?;
        drop(source);
        plan.quarantine = Some(Quarantine {
            reason: reason.to_string(),
            decided_nanos: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        });
        checkpoint.write_plan(&plan)?;
        tracing::info!(pipeline, epoch, reason, "epoch quarantined; finishing it");
    }
    let report = super::pipeline_runner::recover(prepared.clone(), checkpoint).await?;
    if report.quarantined == 0 {
        // Every source range holds rows, so a finished quarantine moved some.
        return Err(refused(Refusal::NotFinished {
            pipeline: pipeline.to_string(),
            epoch,
        }));
    }
    Ok(report)
}

/// The dead letters of a quarantined epoch: every source row, with the
/// operator's reason, its origin and raw bytes.
pub fn dead_letters(decision: &Quarantine, fetched: &Fetched) -> Vec<DeadLetter> {
    (0..fetched.batch.num_rows())
        .map(|row| DeadLetter {
            stage: STAGE.to_string(),
            plugin: None,
            reason: format!("quarantined by an operator: {}", decision.reason),
            field: None,
            raw: fetched.rows.raw(row),
            origin: fetched.rows.origin(row),
        })
        .collect()
}
