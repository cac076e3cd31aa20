//! Runs one epoch's source batch through a pipeline's stages: each stage's
//! plugin gets the batch on its input port, its `rejected` rows become dead
//! letters traced back to the source record, its `out` rows pass through
//! host-kept dedupe when configured, and every output port is kept for the
//! sinks. A plugin's typed data error dead-letters the whole batch it was
//! given; a trap, timeout or invalid output is retried once on a fresh
//! instance and then stops the pipeline, naming plugin, epoch and range.

use super::RunError;
use super::checkpoint::Checkpoint;
use super::dedupe::DedupeState;
use super::epoch::EpochPlan;
use crate::delta::dead_letters::{DeadLetter, Origin};
use crate::error::HostError;
use crate::pipeline::{PortRef, PreparedPipeline};
use crate::plugin::PluginInstance;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::UInt64Type;
use std::collections::HashMap;
use weir_sdk::REJECTED_PORT;

/// Row counts of one stage in one epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageCounts {
    /// Stage name.
    pub stage: String,
    /// Rows given to the plugin.
    pub rows_in: usize,
    /// Rows on `out` after dedupe.
    pub rows_out: usize,
    /// Rows the plugin rejected (plus whole batches it failed on).
    pub rejected: usize,
    /// Rows dedupe dropped as already seen.
    pub duplicates: usize,
    /// Rows dedupe sent to dead letters as too late.
    pub late: usize,
}

/// Everything one epoch produced.
#[derive(Debug, Default)]
pub struct EpochOutput {
    /// Batches per stage output port.
    pub ports: HashMap<PortRef, Vec<RecordBatch>>,
    /// Dead letters from every stage.
    pub dead_letters: Vec<DeadLetter>,
    /// Per-stage counts, in stage order.
    pub counts: Vec<StageCounts>,
}

/// How rows of the source batch map back to source records.
pub trait SourceRows {
    /// Where source row `row` came from.
    fn origin(&self, row: usize) -> Origin;
    /// The raw bytes of source row `row`, when the source has them.
    fn raw(&self, row: usize) -> Option<Vec<u8>>;
    /// The origin of rows that cannot be traced to one source record.
    fn untraced(&self) -> Origin;
}

struct RunningStage {
    name: String,
    input: PortRef,
    input_port: String,
    instance: PluginInstance,
    dedupe: Option<DedupeState>,
}

/// The instantiated stages of one pipeline.
pub struct StageSet {
    pipeline: String,
    stages: Vec<RunningStage>,
}

impl StageSet {
    /// Instantiates and configures every stage's plugin.
    pub fn new(prepared: &PreparedPipeline) -> Result<Self, RunError> {
        let mut stages = Vec::new();
        for (index, (stage, plugin)) in prepared
            .spec
            .stages
            .iter()
            .zip(&prepared.plugins)
            .enumerate()
        {
            let instance = plugin
                .instantiate(&stage.config_json, stage.limits)
                .map_err(|source| RunError::Plugin {
                    pipeline: prepared.spec.name.clone(),
                    stage: stage.name.clone(),
                    epoch: None,
                    source: Box::new(source),
                })?;
            let input_port = instance
                .ports()
                .inputs
                .first()
                .map(|p| p.name.clone())
                .unwrap_or_else(|| "in".into());
            let dedupe = match &stage.dedupe {
                Some(spec) => {
                    let out = PortRef::Stage {
                        stage: index,
                        port: "out".into(),
                    };
                    let schema = prepared.schemas.get(&out).ok_or_else(|| RunError::Dedupe {
                        reason: format!("stage `{}` has no `out` schema", stage.name),
                    })?;
                    Some(DedupeState::new(spec.clone(), schema)?)
                }
                None => None,
            };
            stages.push(RunningStage {
                name: stage.name.clone(),
                input: stage.input.clone(),
                input_port,
                instance,
                dedupe,
            });
        }
        Ok(StageSet {
            pipeline: prepared.spec.name.clone(),
            stages,
        })
    }

    /// Whether any stage keeps state between epochs.
    pub fn has_state(&self) -> bool {
        self.stages.iter().any(|s| s.dedupe.is_some())
    }

    /// The dedupe state files for a snapshot: `(file name, bytes)`.
    pub fn snapshot(&self) -> Result<Vec<(String, Vec<u8>)>, RunError> {
        self.stages
            .iter()
            .filter_map(|s| Some((s, s.dedupe.as_ref()?)))
            .map(|(s, state)| Ok((format!("{}.dedupe.arrow", s.name), state.snapshot()?)))
            .collect()
    }

    /// Restores dedupe state from `epoch`'s snapshot in `checkpoint`.
    pub fn restore(&mut self, checkpoint: &Checkpoint, epoch: u64) -> Result<(), RunError> {
        for stage in &mut self.stages {
            if let Some(state) = stage.dedupe.as_mut()
                && let Some(bytes) =
                    checkpoint.read_state(epoch, &format!("{}.dedupe.arrow", stage.name))?
            {
                state.restore(bytes)?;
            }
        }
        Ok(())
    }

    /// Runs every stage on `source`.
    pub fn run(
        &mut self,
        plan: &EpochPlan,
        source: RecordBatch,
        rows: &dyn SourceRows,
    ) -> Result<EpochOutput, RunError> {
        let mut output = EpochOutput::default();
        let mut ports: HashMap<PortRef, RecordBatch> = HashMap::new();
        ports.insert(PortRef::Source, source);
        for index in 0..self.stages.len() {
            let stage = &mut self.stages[index];
            let mut counts = StageCounts {
                stage: stage.name.clone(),
                ..StageCounts::default()
            };
            let Some(input) = ports.get(&stage.input).cloned() else {
                output.counts.push(counts);
                continue;
            };
            counts.rows_in = input.num_rows();
            let from_source = stage.input == PortRef::Source;
            let identity = stage.instance.identity().clone();
            let plugin_of = || {
                Some((
                    identity.name.clone(),
                    identity.version.clone(),
                    identity.hash.clone(),
                ))
            };
            let trace = |row: usize| -> (Origin, Option<Vec<u8>>) {
                if from_source {
                    (rows.origin(row), rows.raw(row))
                } else {
                    (rows.untraced(), row_as_json(&input, row))
                }
            };
            let context = plan.call_context(&stage.name);
            let call = |instance: &mut PluginInstance| {
                instance.process(&[(stage.input_port.clone(), input.clone())], context)
            };
            let mut result = call(&mut stage.instance);
            if matches!(&result, Err(e) if e.discarded_instance()) {
                tracing::warn!(pipeline = %self.pipeline, stage = %stage.name, epoch = plan.epoch,
                    error = %result.as_ref().err().map(ToString::to_string).unwrap_or_default(),
                    "plugin call failed; retrying once on a fresh instance");
                result = call(&mut stage.instance);
            }
            let outputs = match result {
                Ok(outputs) => outputs,
                Err(HostError::Plugin { plugin, error }) => {
                    let reason = format!("{plugin} failed on the whole batch: {}", error.message);
                    for row in 0..input.num_rows() {
                        let (origin, raw) = trace(row);
                        output.dead_letters.push(DeadLetter {
                            stage: stage.name.clone(),
                            plugin: plugin_of(),
                            reason: reason.clone(),
                            field: error.key.clone(),
                            raw,
                            origin,
                        });
                    }
                    counts.rejected = input.num_rows();
                    output.counts.push(counts);
                    continue;
                }
                Err(source) => {
                    return Err(RunError::Plugin {
                        pipeline: self.pipeline.clone(),
                        stage: stage.name.clone(),
                        epoch: Some(Box::new(plan.clone())),
                        source: Box::new(source),
                    });
                }
            };
            for (port, batch) in outputs {
                if port == REJECTED_PORT {
                    counts.rejected += batch.num_rows();
                    output.dead_letters.extend(rejected_letters(
                        &batch,
                        &stage.name,
                        plugin_of(),
                        &trace,
                    ));
                    continue;
                }
                let batch = match (&mut stage.dedupe, port.as_str()) {
                    (Some(state), "out") => {
                        let outcome = state.apply(&batch)?;
                        counts.duplicates = outcome.duplicates;
                        counts.late = outcome.late.len();
                        for (row, reason) in outcome.late {
                            output.dead_letters.push(DeadLetter {
                                stage: stage.name.clone(),
                                plugin: None,
                                reason,
                                field: Some(state.spec().event_time.clone()),
                                raw: row_as_json(&batch, row),
                                origin: rows.untraced(),
                            });
                        }
                        outcome.kept
                    }
                    _ => batch,
                };
                if port == "out" {
                    counts.rows_out = batch.num_rows();
                }
                ports.insert(PortRef::Stage { stage: index, port }, batch);
            }
            output.counts.push(counts);
        }
        ports.remove(&PortRef::Source);
        output.ports = ports
            .into_iter()
            .map(|(port, batch)| (port, vec![batch]))
            .collect();
        Ok(output)
    }
}

/// Dead letters for a plugin's `rejected` batch (row, raw, field, reason).
fn rejected_letters(
    batch: &RecordBatch,
    stage: &str,
    plugin: Option<(String, String, String)>,
    trace: &dyn Fn(usize) -> (Origin, Option<Vec<u8>>),
) -> Vec<DeadLetter> {
    let row = batch
        .column_by_name("row")
        .and_then(|c| c.as_primitive_opt::<UInt64Type>());
    let raw = batch
        .column_by_name("raw")
        .and_then(|c| c.as_binary_opt::<i32>());
    let field = batch
        .column_by_name("field")
        .and_then(|c| c.as_string_opt::<i32>());
    let reason = batch
        .column_by_name("reason")
        .and_then(|c| c.as_string_opt::<i32>());
    (0..batch.num_rows())
        .map(|i| {
            let source_row = row.filter(|r| r.is_valid(i)).map(|r| r.value(i) as usize);
            let (origin, source_raw) = match source_row {
                Some(r) => trace(r),
                None => (Origin::Unknown, None),
            };
            DeadLetter {
                stage: stage.to_string(),
                plugin: plugin.clone(),
                reason: reason.filter(|r| r.is_valid(i)).map_or_else(
                    || "rejected without a reason".to_string(),
                    |r| r.value(i).to_string(),
                ),
                field: field
                    .filter(|f| f.is_valid(i))
                    .map(|f| f.value(i).to_string()),
                raw: raw
                    .filter(|r| r.is_valid(i))
                    .map(|r| r.value(i).to_vec())
                    .or(source_raw),
                origin,
            }
        })
        .collect()
}

/// One row of a batch as a JSON object, for dead letters of rows that have no raw bytes.
fn row_as_json(batch: &RecordBatch, row: usize) -> Option<Vec<u8>> {
    if row >= batch.num_rows() {
        return None;
    }
    let slice = batch.slice(row, 1);
    let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
    writer.write(&slice).ok()?;
    writer.finish().ok()?;
    let mut bytes = writer.into_inner();
    while bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    Some(bytes)
}
