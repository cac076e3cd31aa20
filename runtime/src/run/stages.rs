//! Runs one epoch's source batch through a pipeline's stages: each stage's
//! plugin gets the batch on its input port, its `rejected` rows become dead
//! letters traced back to the source record, its `out` rows pass through
//! host-kept dedupe when configured, and every output port is kept for the
//! sinks. Failure policy (`docs/sandbox.md`): a plugin's `bad-input` error
//! dead-letters the whole batch it was given; any other failure — a trap, a
//! timeout, an `internal` error, output that is invalid or no longer matches
//! the schema validated at start — is retried once on a fresh instance and
//! then stops the pipeline, naming plugin, epoch and range. A stage that
//! rejects more than its `max_rejected_ratio` of an epoch stops it too.

use super::RunError;
use super::checkpoint::Checkpoint;
use super::dedupe::DedupeState;
use super::epoch::{EpochPlan, StagePin};
use super::pins::{self, StageVersion};
use crate::delta::dead_letters::{DeadLetter, Origin};
use crate::error::HostError;
use crate::pipeline::{PortRef, PreparedPipeline};
use crate::plugin::PluginInstance;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{SchemaRef, UInt64Type};
use std::collections::HashMap;
use weir_sdk::{ErrorKind, REJECTED_PORT};

/// Row counts of one stage in one epoch. Recorded in every sink commit's
/// Weir record, where `weir audit` checks them against the tables.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StageCounts {
    /// Stage name.
    pub stage: String,
    /// Rows given to the plugin.
    pub rows_in: usize,
    /// Rows on `out` after dedupe.
    pub rows_out: usize,
    /// Rows on each output port except `rejected` (`out` after dedupe).
    #[serde(default)]
    pub ports: std::collections::BTreeMap<String, usize>,
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

pub use crate::connector::SourceRows;

struct RunningStage {
    name: String,
    input: PortRef,
    input_port: String,
    instance: PluginInstance,
    dedupe: Option<DedupeState>,
    /// Output port → the schema validated at start.
    validated: HashMap<String, SchemaRef>,
    max_rejected_ratio: Option<f64>,
    /// The version it runs.
    pin: StagePin,
}

/// The instantiated stages of one pipeline.
pub struct StageSet {
    pipeline: String,
    prepared: PreparedPipeline,
    /// The versions the pipeline file names now.
    current: Vec<StageVersion>,
    stages: Vec<RunningStage>,
}

impl StageSet {
    /// Instantiates and configures every stage's plugin.
    pub fn new(prepared: &PreparedPipeline) -> Result<Self, RunError> {
        let current = pins::current(prepared);
        let mut stages = Vec::new();
        for (index, (stage, version)) in prepared.spec.stages.iter().zip(&current).enumerate() {
            let (instance, input_port) = start_instance(prepared, index, version)?;
            let dedupe = match &stage.dedupe {
                Some(spec) => {
                    let out = PortRef::Stage {
                        stage: index,
                        port: "out".into(),
                    };
                    let schema = prepared.schemas.get(&out).ok_or_else(|| RunError::Dedupe {
                        reason: format!("stage `{}` has no `out` schema", stage.name),
                    })?;
                    Some(DedupeState::new(spec.clone(), schema).map_err(in_stage(&stage.name))?)
                }
                None => None,
            };
            let validated = validated_at_start(prepared, index);
            stages.push(RunningStage {
                name: stage.name.clone(),
                input: stage.input.clone(),
                input_port,
                instance,
                dedupe,
                validated,
                max_rejected_ratio: stage.max_rejected_ratio,
                pin: version.pin.clone(),
            });
        }
        Ok(StageSet {
            pipeline: prepared.spec.name.clone(),
            prepared: prepared.clone(),
            current,
            stages,
        })
    }

    /// The versions the pipeline file names now (what new plans record).
    pub fn current(&self) -> &[StageVersion] {
        &self.current
    }

    /// What each stage runs at the moment, for a new plan.
    pub fn pins(&self) -> Vec<StagePin> {
        self.stages.iter().map(|s| s.pin.clone()).collect()
    }

    /// Makes every stage run the version `recorded` names for it (the current
    /// version for stages a plan predating pins does not list), loading kept
    /// versions from `checkpoint`. A stage that changes version gets a fresh
    /// instance; its dedupe state is kept.
    pub fn pin(
        &mut self,
        recorded: &[StagePin],
        checkpoint: &Checkpoint,
        epoch: u64,
    ) -> Result<(), RunError> {
        for index in 0..self.stages.len() {
            let current = &self.current[index];
            let wanted = recorded
                .iter()
                .find(|p| p.stage == self.stages[index].name)
                .unwrap_or(&current.pin);
            if self.stages[index].pin == *wanted {
                continue;
            }
            let version = pins::resolve(&self.prepared, current, wanted, checkpoint, epoch)?;
            let (mut instance, input_port) = start_instance(&self.prepared, index, &version)?;
            let validated = if version.pin == current.pin {
                validated_at_start(&self.prepared, index)
            } else {
                probe_outputs(&self.prepared, index, &mut instance, &input_port).map_err(
                    |source| RunError::Plugin {
                        pipeline: self.pipeline.clone(),
                        stage: version.pin.stage.clone(),
                        epoch: None,
                        source: Box::new(source),
                    },
                )?
            };
            tracing::info!(pipeline = %self.pipeline, stage = %version.pin.stage, epoch,
                plugin = %version.plugin.identity(), config = %&version.pin.config_hash[..12],
                "stage runs the version the epoch was planned with");
            let stage = &mut self.stages[index];
            stage.instance = instance;
            stage.input_port = input_port;
            stage.validated = validated;
            stage.pin = version.pin;
        }
        Ok(())
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
            .map(|(s, state)| {
                Ok((
                    format!("{}.dedupe.arrow", s.name),
                    state.snapshot().map_err(in_stage(&s.name))?,
                ))
            })
            .collect()
    }

    /// Restores dedupe state from `epoch`'s snapshot in `checkpoint`.
    pub fn restore(&mut self, checkpoint: &Checkpoint, epoch: u64) -> Result<(), RunError> {
        for stage in &mut self.stages {
            if let Some(state) = stage.dedupe.as_mut()
                && let Some(bytes) =
                    checkpoint.read_state(epoch, &format!("{}.dedupe.arrow", stage.name))?
            {
                state.restore(bytes).map_err(in_stage(&stage.name))?;
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
        lookups: &super::lookups::LookupBatches,
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
            let mut inputs = vec![(stage.input_port.clone(), input.clone())];
            inputs.extend(lookups.get(&index).into_iter().flatten().cloned());
            let mut result = call_checked(stage, &inputs, context);
            if let Err(error) = &result
                && !error.is_data_error()
            {
                tracing::warn!(pipeline = %self.pipeline, stage = %stage.name, epoch = plan.epoch,
                    %error, "plugin call failed; retrying once on a fresh instance");
                stage.instance.restart();
                result = call_checked(stage, &inputs, context);
            }
            let outputs = match result {
                Ok(outputs) => outputs,
                Err(HostError::Plugin { plugin, error }) if error.kind == ErrorKind::BadInput => {
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
                    check_rejected_ratio(&self.pipeline, stage, plan, &counts)?;
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
                        let outcome = state.apply(&batch).map_err(in_stage(&stage.name))?;
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
                counts.ports.insert(port.clone(), batch.num_rows());
                ports.insert(PortRef::Stage { stage: index, port }, batch);
            }
            check_rejected_ratio(&self.pipeline, stage, plan, &counts)?;
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

/// Instantiates `version` for stage `index`; returns it and its input port.
fn start_instance(
    prepared: &PreparedPipeline,
    index: usize,
    version: &StageVersion,
) -> Result<(PluginInstance, String), RunError> {
    let stage = &prepared.spec.stages[index];
    let instance = version
        .plugin
        .instantiate(&version.config, stage.limits)
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
    Ok((instance, input_port))
}

/// Output port → schema, for stage `index`, as validation found them.
fn validated_at_start(prepared: &PreparedPipeline, index: usize) -> HashMap<String, SchemaRef> {
    prepared
        .schemas
        .iter()
        .filter_map(|(port, schema)| match port {
            PortRef::Stage { stage, port } if *stage == index => {
                Some((port.clone(), schema.clone()))
            }
            _ => None,
        })
        .collect()
}

/// The output schemas of a version other than the validated one, learnt as
/// validation does: by running it on an empty batch of its input's schema.
fn probe_outputs(
    prepared: &PreparedPipeline,
    index: usize,
    instance: &mut PluginInstance,
    input_port: &str,
) -> Result<HashMap<String, SchemaRef>, HostError> {
    let input = &prepared.spec.stages[index].input;
    let Some(schema) = prepared.schemas.get(input) else {
        return Ok(HashMap::new());
    };
    let probe = RecordBatch::new_empty(schema.clone());
    let outputs = instance.process(
        &[(input_port.to_string(), probe)],
        crate::determinism::CallContext::default(),
    )?;
    Ok(outputs
        .into_iter()
        .filter(|(port, _)| port != REJECTED_PORT)
        .map(|(port, batch)| (port, batch.schema()))
        .collect())
}

/// Puts the stage's name into a dedupe error.
fn in_stage(stage: &str) -> impl Fn(RunError) -> RunError + '_ {
    move |error| match error {
        RunError::Dedupe { reason } => RunError::Dedupe {
            reason: format!("stage `{stage}`: {reason}"),
        },
        other => other,
    }
}

/// Calls the stage's plugin and checks every output port against the schema
/// validated at start, so a plugin whose output drifts (a column added,
/// dropped, retyped or moved) is stopped here, named, before its batch reaches
/// dedupe, a downstream stage or a sink.
fn call_checked(
    stage: &mut RunningStage,
    inputs: &[(String, RecordBatch)],
    context: crate::determinism::CallContext,
) -> Result<Vec<(String, RecordBatch)>, HostError> {
    let outputs = stage.instance.process(inputs, context)?;
    for (port, batch) in &outputs {
        if port == REJECTED_PORT {
            continue;
        }
        if let Some(validated) = stage.validated.get(port)
            && let Err(reason) = weir_sdk::schema::check_output_fits(validated, batch.schema_ref())
        {
            return Err(HostError::SchemaChanged {
                plugin: stage.instance.identity().clone(),
                port: port.clone(),
                reason,
            });
        }
    }
    Ok(outputs)
}

/// Stops the epoch when the stage rejected more than its allowed share.
fn check_rejected_ratio(
    pipeline: &str,
    stage: &RunningStage,
    plan: &EpochPlan,
    counts: &StageCounts,
) -> Result<(), RunError> {
    let Some(ratio) = stage.max_rejected_ratio else {
        return Ok(());
    };
    // Row counts are far below 2^53, so both sides are exact enough in f64.
    if counts.rejected as f64 > ratio * counts.rows_in as f64 {
        return Err(RunError::TooManyRejected {
            pipeline: pipeline.to_string(),
            stage: stage.name.clone(),
            epoch: plan.epoch,
            rejected: counts.rejected,
            rows_in: counts.rows_in,
            ratio,
        });
    }
    Ok(())
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
                None => (Origin::default(), None),
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
