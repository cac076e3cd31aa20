//! Runs one epoch's source batch through a pipeline's stages: each stage's
//! plugin gets the batch on its input port, its `rejected` rows become dead
//! letters traced back to the source record, its `out` rows pass through
//! host-kept dedupe when configured, and every output port is kept for the
//! sinks. Failure policy (`docs/sandbox.md`): a plugin's `bad-input` error
//! dead-letters the whole batch it was given; any other failure — a trap, a
//! timeout, an `internal` error, output that is invalid or no longer matches
//! the schema validated at start — is retried once on a fresh instance and
//! then stops the pipeline, naming plugin, epoch and range — except a trap,
//! timeout or memory exhaustion, after which the batch is bisected to the
//! rows that cause it (`run/bisect.rs`): those go to the dead-letter table,
//! the rest run. A stage that rejects more than its `max_rejected_ratio` of
//! an epoch stops it too. A version swapped in is on probation for its first
//! epochs: failing then hands the epoch back to the previous version
//! ([`Outcome::RollBack`]). A shadow candidate runs beside its stage.

use super::bisect;
use super::checkpoint::Checkpoint;
use super::dedupe::DedupeState;
use super::epoch::{EpochPlan, StagePin};
use super::pins::{self, StageVersion};
use super::shadow::{Shadow, ShadowReport};
use super::swap::{self, Ready, Schemas};
use super::{PoisonExceededError, RunError};
use crate::delta::dead_letters::{DeadLetter, Origin};
use crate::error::HostError;
use crate::pipeline::spec::{PoisonExceeded, PoisonPolicy, SwapPolicy};
use crate::pipeline::{PortRef, PreparedPipeline};
use crate::plugin::{PluginInstance, PortBatch};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{SchemaRef, UInt64Type};
use std::collections::HashMap;
use std::time::Instant;
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
    /// Rows bisection found to make the plugin fail (also in `rejected`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub poisoned: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
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
    /// Each stage's plugin call, for metrics.
    pub calls: Vec<StageCall>,
    /// Stages whose batch was bisected.
    pub bisections: Vec<String>,
}

pub use crate::connector::SourceRows;

struct RunningStage {
    name: String,
    input: PortRef,
    input_port: String,
    instance: PluginInstance,
    dedupe: Option<DedupeState>,
    /// Output port → the schema it must keep (validated at start, or by the
    /// swap that installed the running version).
    validated: HashMap<String, SchemaRef>,
    max_rejected_ratio: Option<f64>,
    /// At most this many stream-input rows per plugin call.
    max_call_records: Option<usize>,
    /// The version it runs.
    version: StageVersion,
    /// The versions it ran before each swap still undone, newest last: what
    /// a rollback returns to.
    previous: Vec<StageVersion>,
    /// Epochs the running version is still on probation (0: none).
    probation: u64,
    /// A candidate running beside it.
    shadow: Option<Shadow>,
    swap: SwapPolicy,
    poison: PoisonPolicy,
}

/// How many swaps of a stage can be rolled back, newest first.
const MAX_ROLLBACKS: usize = 16;

/// What running an epoch's stages came to.
pub enum Outcome {
    /// Every stage ran.
    Ran(EpochOutput),
    /// A version on probation failed (trapped, timed out, or rejected more
    /// than its probation allows): the previous version must take the epoch.
    RollBack {
        /// The stage's index.
        stage: usize,
        /// What the new version did.
        reason: String,
    },
    /// More rows made a stage's plugin fail than its poison policy allows,
    /// and the policy says to quarantine the epoch.
    Quarantine {
        /// The stage.
        stage: String,
        /// Why, for the dead-letter rows and the plan.
        reason: String,
    },
}

/// The instantiated stages of one pipeline.
pub struct StageSet {
    pipeline: String,
    prepared: PreparedPipeline,
    /// The versions the pipeline file names now.
    current: Vec<StageVersion>,
    stages: Vec<RunningStage>,
    /// Every port's schema as the running versions produce it.
    schemas: Schemas,
    /// The last report of every stage's shadow run.
    reports: HashMap<String, ShadowReport>,
    /// Shadowed candidates that finished well and take over next, with the
    /// pins they were checked against.
    cut_overs: Vec<(Ready, Vec<StagePin>)>,
    /// Shadow runs that ended since last asked.
    ended: Vec<ShadowReport>,
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
            stages.push(RunningStage {
                name: stage.name.clone(),
                input: stage.input.clone(),
                input_port,
                instance,
                dedupe,
                validated: HashMap::new(),
                max_rejected_ratio: stage.max_rejected_ratio,
                max_call_records: stage.max_call_records,
                version: version.clone(),
                previous: Vec::new(),
                probation: 0,
                shadow: None,
                swap: stage.swap,
                poison: stage.poison,
            });
        }
        let mut set = StageSet {
            pipeline: prepared.spec.name.clone(),
            prepared: prepared.clone(),
            current,
            stages,
            schemas: prepared.schemas.clone(),
            reports: HashMap::new(),
            cut_overs: Vec::new(),
            ended: Vec::new(),
        };
        set.refresh_validated();
        Ok(set)
    }

    /// The versions the pipeline file names now.
    pub fn current(&self) -> &[StageVersion] {
        &self.current
    }

    /// The versions the stages run now, in stage order.
    pub fn versions(&self) -> Vec<StageVersion> {
        self.stages.iter().map(|s| s.version.clone()).collect()
    }

    /// Every port's schema as the running versions produce it.
    pub fn schemas(&self) -> &Schemas {
        &self.schemas
    }

    /// What each stage runs at the moment, for a new plan.
    pub fn pins(&self) -> Vec<StagePin> {
        self.stages.iter().map(|s| s.version.pin.clone()).collect()
    }

    /// Makes every stage run the version `recorded` names for it (the current
    /// version for stages a plan predating pins does not list), loading kept
    /// versions from `checkpoint`. A stage that changes version gets a fresh
    /// instance; its dedupe state is kept. Port schemas are learnt again from
    /// the first stage that changed.
    pub fn pin(
        &mut self,
        recorded: &[StagePin],
        checkpoint: &Checkpoint,
        epoch: u64,
    ) -> Result<(), RunError> {
        let mut first_changed = None;
        for index in 0..self.stages.len() {
            let current = &self.current[index];
            let wanted = recorded
                .iter()
                .find(|p| p.stage == self.stages[index].name)
                .unwrap_or(&current.pin);
            if self.stages[index].version.pin == *wanted {
                continue;
            }
            let version = pins::resolve(&self.prepared, current, wanted, checkpoint, epoch)?;
            let (instance, input_port) = start_instance(&self.prepared, index, &version)?;
            tracing::info!(pipeline = %self.pipeline, stage = %version.pin.stage, epoch,
                plugin = %version.plugin.identity(), config = %&version.pin.config_hash[..12],
                "stage runs the version the epoch was planned with");
            let stage = &mut self.stages[index];
            stage.instance = instance;
            stage.input_port = input_port;
            stage.version = version;
            first_changed.get_or_insert(index);
        }
        if let Some(from) = first_changed {
            self.propagate(from)?;
        }
        Ok(())
    }

    /// Learns the output schemas of stages `from..` again from their running
    /// instances (after a version change upstream of them).
    fn propagate(&mut self, from: usize) -> Result<(), RunError> {
        for index in from..self.stages.len() {
            let stage = &mut self.stages[index];
            let (port, outputs) =
                swap::probe(&self.prepared, index, &mut stage.instance, &self.schemas).map_err(
                    |reason| RunError::VersionDoesNotFit {
                        pipeline: self.pipeline.clone(),
                        stage: stage.name.clone(),
                        reason,
                    },
                )?;
            stage.input_port = port;
            self.schemas
                .retain(|p, _| !matches!(p, PortRef::Stage { stage, .. } if *stage == index));
            for (port, schema) in outputs {
                self.schemas
                    .insert(PortRef::Stage { stage: index, port }, schema);
            }
        }
        self.refresh_validated();
        Ok(())
    }

    /// Sets every stage's expected output schemas from [`Self::schemas`].
    fn refresh_validated(&mut self) {
        for (index, stage) in self.stages.iter_mut().enumerate() {
            stage.validated = self
                .schemas
                .iter()
                .filter_map(|(port, schema)| match port {
                    PortRef::Stage { stage, port } if *stage == index => {
                        Some((port.clone(), schema.clone()))
                    }
                    _ => None,
                })
                .collect();
        }
    }

    /// Makes a checked version its stage's running one (the cut-over; call
    /// between epochs), on probation for the stage's `probation_epochs`.
    /// Returns the pin it replaced.
    pub fn install(&mut self, ready: Ready) -> StagePin {
        let stage = &mut self.stages[ready.index];
        self.schemas = ready.schemas;
        let old = std::mem::replace(&mut stage.version, ready.version);
        let replaced = old.pin.clone();
        stage.previous.push(old);
        if stage.previous.len() > MAX_ROLLBACKS {
            stage.previous.remove(0);
        }
        stage.instance = ready.instance;
        stage.input_port = ready.input_port;
        stage.probation = stage.swap.probation_epochs;
        stage.shadow = None;
        self.refresh_validated();
        replaced
    }

    /// Returns stage `index` to the version it ran before its last swap not
    /// yet undone (call between epochs); the version left is dropped, so
    /// rolling back again goes one swap further back. Port schemas are learnt
    /// again from the stage on (other stages may have changed since). `None`
    /// when no swap is left to undo; an error (the stage unchanged) when the
    /// earlier version no longer fits the pipeline. Returns `(from, to)`.
    pub fn roll_back(&mut self, index: usize) -> Result<Option<(StagePin, StagePin)>, RunError> {
        let Some(version) = self.stages[index].previous.last().cloned() else {
            return Ok(None);
        };
        let (instance, input_port) = start_instance(&self.prepared, index, &version)?;
        let before = self.schemas.clone();
        let stage = &mut self.stages[index];
        let old_instance = std::mem::replace(&mut stage.instance, instance);
        let old_port = std::mem::replace(&mut stage.input_port, input_port);
        let from = std::mem::replace(&mut stage.version, version);
        if let Err(error) = self.propagate(index) {
            let stage = &mut self.stages[index];
            stage.instance = old_instance;
            stage.input_port = old_port;
            stage.version = from;
            self.schemas = before;
            self.refresh_validated();
            return Err(error);
        }
        let stage = &mut self.stages[index];
        stage.previous.pop();
        stage.probation = 0;
        stage.shadow = None;
        Ok(Some((from.pin, stage.version.pin.clone())))
    }

    /// Starts a shadow run of a candidate beside its stage's running version.
    pub fn begin_shadow(&mut self, shadow: Shadow) {
        let index = shadow.ready.index;
        self.reports
            .insert(self.stages[index].name.clone(), shadow.report.clone());
        self.stages[index].shadow = Some(shadow);
    }

    /// The shadow report of `stage` (running or last finished), if any.
    pub fn shadow_report(&self, stage: &str) -> Option<ShadowReport> {
        self.reports.get(stage).cloned()
    }

    /// Candidates whose shadow run ended well and that take over now, with
    /// the pins they were checked against.
    pub fn take_cut_overs(&mut self) -> Vec<(Ready, Vec<StagePin>)> {
        std::mem::take(&mut self.cut_overs)
    }

    /// Shadow runs that ended (finished or failed) since the last call.
    pub fn take_ended_shadows(&mut self) -> Vec<ShadowReport> {
        std::mem::take(&mut self.ended)
    }

    /// Epochs of probation left, per stage.
    pub fn probation(&self) -> Vec<u64> {
        self.stages.iter().map(|s| s.probation).collect()
    }

    /// Counts a committed epoch against every probation.
    pub fn epoch_committed(&mut self) {
        for stage in &mut self.stages {
            stage.probation = stage.probation.saturating_sub(1);
        }
    }

    /// Ends the probation of stage `index`.
    pub fn end_probation(&mut self, index: usize) {
        self.stages[index].probation = 0;
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
        let mut files = Vec::new();
        for stage in &self.stages {
            let name = format!("{}.dedupe.arrow", stage.name);
            if stage.dedupe.is_some()
                && let Some(bytes) = checkpoint.read_state(epoch, &name)?
            {
                files.push((name, bytes));
            }
        }
        self.restore_snapshot(&files)
    }

    /// Restores dedupe state from files [`Self::snapshot`] returned.
    pub fn restore_snapshot(&mut self, files: &[(String, Vec<u8>)]) -> Result<(), RunError> {
        for stage in &mut self.stages {
            let name = format!("{}.dedupe.arrow", stage.name);
            if let Some(state) = stage.dedupe.as_mut()
                && let Some((_, bytes)) = files.iter().find(|(n, _)| *n == name)
            {
                state
                    .restore(bytes.clone())
                    .map_err(in_stage(&stage.name))?;
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
    ) -> Result<Outcome, RunError> {
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
            let lookup_inputs: Vec<PortBatch> =
                lookups.get(&index).into_iter().flatten().cloned().collect();
            let mut inputs = vec![(stage.input_port.clone(), input.clone())];
            inputs.extend(lookup_inputs.iter().cloned());
            let started = Instant::now();
            let (mut result, mut shadowed) = call_beside_shadow(stage, &inputs, context);
            if result.is_err()
                && let Some((shadow, _)) = shadowed.take()
            {
                // Epochs the live version fails on are not compared.
                stage.shadow = Some(shadow);
            }
            if let Err(error) = &result
                && !error.is_data_error()
            {
                tracing::warn!(pipeline = %self.pipeline, stage = %stage.name, epoch = plan.epoch,
                    %error, "plugin call failed; retrying once on a fresh instance");
                stage.instance.restart();
                result = call_checked(stage, &inputs, context);
            }
            output.calls.push(StageCall {
                stage: stage.name.clone(),
                seconds: started.elapsed().as_secs_f64(),
                memory_bytes: stage.instance.memory_bytes(),
            });
            if stage.probation > 0
                && let Err(error) = &result
                && !error.is_data_error()
            {
                return Ok(Outcome::RollBack {
                    stage: index,
                    reason: error.to_string(),
                });
            }
            // Rows of the plugin's input the outputs' `row` numbers refer to
            // (all of them, unless bisection took poison rows out).
            let mut kept: Option<Vec<usize>> = None;
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
                    if let Some(outcome) = probation_verdict(stage, index, &counts) {
                        return Ok(outcome);
                    }
                    check_rejected_ratio(&self.pipeline, stage, plan, &counts)?;
                    output.counts.push(counts);
                    continue;
                }
                Err(error) if bisect::is_poison(&error) && stage.poison.max_ratio > 0.0 => {
                    let bound = (stage.poison.max_ratio * input.num_rows() as f64).floor() as usize;
                    let port = stage.input_port.clone();
                    let found = bisect::bisect(
                        &mut |inputs| call_checked(stage, inputs, context),
                        &port,
                        &input,
                        &lookup_inputs,
                        bound,
                    );
                    output.bisections.push(stage.name.clone());
                    match found {
                        Ok(found) => {
                            tracing::warn!(pipeline = %self.pipeline, stage = %stage.name, epoch = plan.epoch,
                                poison = found.poison.len(), calls = found.calls,
                                "bisection isolated the rows that make the plugin fail; they go to the dead-letter table");
                            let reason = format!("this row makes {identity} fail: {error}");
                            for &row in &found.poison {
                                let (origin, raw) = trace(row);
                                output.dead_letters.push(DeadLetter {
                                    stage: stage.name.clone(),
                                    plugin: plugin_of(),
                                    reason: reason.clone(),
                                    field: None,
                                    raw,
                                    origin,
                                });
                            }
                            counts.rejected += found.poison.len();
                            counts.poisoned = found.poison.len();
                            kept = Some(found.kept);
                            found.outputs
                        }
                        Err(bisect::Failure::TooMany { bound }) => {
                            let reason = format!(
                                "more than {bound} of {} rows (poison.max_ratio = {}) make {identity} fail: {error}",
                                input.num_rows(),
                                stage.poison.max_ratio
                            );
                            if stage.poison.on_exceed == PoisonExceeded::Quarantine {
                                return Ok(Outcome::Quarantine {
                                    stage: stage.name.clone(),
                                    reason,
                                });
                            }
                            return Err(RunError::PoisonExceeded(Box::new(PoisonExceededError {
                                pipeline: self.pipeline.clone(),
                                stage: stage.name.clone(),
                                epoch: plan.epoch,
                                reason,
                            })));
                        }
                        Err(bisect::Failure::Call(source)) => {
                            return Err(RunError::Plugin {
                                pipeline: self.pipeline.clone(),
                                stage: stage.name.clone(),
                                epoch: Some(Box::new(plan.clone())),
                                source: Box::new(source),
                            });
                        }
                    }
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
            if let Some(mut shadow) = shadowed {
                match shadow.1 {
                    Ok(candidate) => shadow.0.compare(plan.epoch, &outputs, &candidate),
                    Err(error) => {
                        shadow.0.report.failure = Some(error.to_string());
                    }
                }
                let (mut shadow, _) = shadow;
                shadow.remaining = shadow.remaining.saturating_sub(1);
                let failed = shadow.report.failure.is_some();
                shadow.report.state = match (failed, shadow.remaining) {
                    (true, _) => "failed",
                    (false, 0) => "finished",
                    _ => "running",
                }
                .into();
                self.reports
                    .insert(stage.name.clone(), shadow.report.clone());
                if failed || shadow.remaining == 0 {
                    tracing::info!(pipeline = %self.pipeline, stage = %stage.name, epoch = plan.epoch,
                        state = %shadow.report.state, differing_rows = shadow.report.differing_rows,
                        "shadow run ended");
                    self.ended.push(shadow.report.clone());
                    if !failed && shadow.cut_over {
                        self.cut_overs.push((shadow.ready, shadow.based_on));
                    }
                } else {
                    stage.shadow = Some(shadow);
                }
            }
            // A `row` the plugin made up (past its input) is untraced, never a panic.
            let traced = |row: usize| match kept.as_ref().map_or(Some(row), |k| k.get(row).copied())
            {
                Some(row) if row < input.num_rows() => trace(row),
                _ => (rows.untraced(), None),
            };
            for (port, batch) in outputs {
                if port == REJECTED_PORT {
                    counts.rejected += batch.num_rows();
                    output.dead_letters.extend(rejected_letters(
                        &batch,
                        &stage.name,
                        plugin_of(),
                        &traced,
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
            if let Some(outcome) = probation_verdict(stage, index, &counts) {
                return Ok(outcome);
            }
            check_rejected_ratio(&self.pipeline, stage, plan, &counts)?;
            output.counts.push(counts);
        }
        ports.remove(&PortRef::Source);
        output.ports = ports
            .into_iter()
            .map(|(port, batch)| (port, vec![batch]))
            .collect();
        Ok(Outcome::Ran(output))
    }
}

/// One stage's plugin call in an epoch, for metrics.
#[derive(Debug, Clone)]
pub struct StageCall {
    /// The stage.
    pub stage: String,
    /// How long the call took (with its retry, and a shadow beside it), in seconds.
    pub seconds: f64,
    /// The plugin's linear memory after the call, in bytes.
    pub memory_bytes: usize,
}

/// Calls the stage's plugin and, when it has a shadow, the candidate on the
/// same inputs on another thread at the same time (the epoch goes on once
/// both have answered: a slower candidate slows shadowed epochs). Returns the live result and, with a shadow, the shadow
/// and its result (the shadow is taken out of the stage; the caller puts it
/// back while it still runs).
#[allow(clippy::type_complexity)]
fn call_beside_shadow(
    stage: &mut RunningStage,
    inputs: &[PortBatch],
    context: crate::determinism::CallContext,
) -> (
    Result<Vec<PortBatch>, HostError>,
    Option<(Shadow, Result<Vec<PortBatch>, HostError>)>,
) {
    let Some(mut shadow) = stage.shadow.take() else {
        return (call_checked(stage, inputs, context), None);
    };
    // The candidate gets the same batches on its own input port's name.
    let mut candidate_inputs = inputs.to_vec();
    candidate_inputs[0].0 = shadow.ready.input_port.clone();
    let (live, candidate) = std::thread::scope(|scope| {
        let instance = &mut shadow.ready.instance;
        let (port, most) = (&shadow.ready.input_port, stage.max_call_records);
        let candidate =
            scope.spawn(move || process_in_parts(instance, &candidate_inputs, port, most, context));
        let live = call_checked(stage, inputs, context);
        (live, candidate.join())
    });
    let candidate = candidate.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    (live, Some((shadow, candidate)))
}

/// Whether a version on probation rejected more than its probation allows.
fn probation_verdict(stage: &RunningStage, index: usize, counts: &StageCounts) -> Option<Outcome> {
    // Row counts are far below 2^53, so both sides are exact enough in f64.
    (stage.probation > 0
        && counts.rejected as f64 > stage.swap.max_rejected_ratio * counts.rows_in as f64)
        .then(|| Outcome::RollBack {
            stage: index,
            reason: format!(
                "rejected {} of {} rows, more than swap.max_rejected_ratio = {}",
                counts.rejected, counts.rows_in, stage.swap.max_rejected_ratio
            ),
        })
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
    let outputs = process_in_parts(
        &mut stage.instance,
        inputs,
        &stage.input_port,
        stage.max_call_records,
        context,
    )?;
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

/// Calls `instance` on `inputs`; when the first input is the stream input
/// (`input_port`) and holds more than `most` rows (`max_call_records`), in
/// consecutive parts of at most `most` rows, each with the whole lookup
/// inputs and the same call context, the outputs joined port by port in
/// input order and the `row` numbers of rejected rows made positions in the
/// whole stream. The same output as one call for a row-wise plugin, with a
/// plugin memory sized for one part.
fn process_in_parts(
    instance: &mut PluginInstance,
    inputs: &[PortBatch],
    input_port: &str,
    most: Option<usize>,
    context: crate::determinism::CallContext,
) -> Result<Vec<PortBatch>, HostError> {
    let (most, (port, stream), lookups) = match (most, inputs.split_first()) {
        (Some(most), Some((first, lookups)))
            if first.0 == input_port && first.1.num_rows() > most && most > 0 =>
        {
            (most, first, lookups)
        }
        _ => return instance.process(inputs, context),
    };
    let mut joined: Vec<(String, Vec<RecordBatch>)> = Vec::new();
    let mut offset = 0;
    while offset < stream.num_rows() {
        let length = most.min(stream.num_rows() - offset);
        let mut part = vec![(port.clone(), stream.slice(offset, length))];
        part.extend(lookups.iter().cloned());
        for (name, batch) in instance.process(&part, context)? {
            let batch = match name == REJECTED_PORT {
                true => shift_rows(batch, offset, length),
                false => batch,
            };
            match joined.iter_mut().find(|(n, _)| *n == name) {
                Some((_, parts)) => parts.push(batch),
                None => joined.push((name, vec![batch])),
            }
        }
        offset += length;
    }
    joined
        .into_iter()
        .map(|(name, parts)| {
            let schema = parts[0].schema();
            arrow::compute::concat_batches(&schema, &parts)
                .map(|batch| (name.clone(), batch))
                .map_err(|e| HostError::InvalidOutput {
                    plugin: instance.identity().clone(),
                    port: name,
                    reason: format!(
                        "its calls on parts of the epoch (max_call_records) returned different schemas: {e}"
                    ),
                })
        })
        .collect()
}

/// The rejected rows of a call on the `length` rows starting at `offset`,
/// their `row` numbers made positions in the whole input. A `row` outside
/// the part becomes null (the row is dead-lettered untraced, as one call
/// treats a number outside its input); a batch without a UInt64 `row`
/// column is left as it is, for the same checks a single call gets.
fn shift_rows(rejected: RecordBatch, offset: usize, length: usize) -> RecordBatch {
    let schema = rejected.schema();
    let Some((index, _)) = schema.column_with_name("row") else {
        return rejected;
    };
    let Some(rows) = rejected.column(index).as_primitive_opt::<UInt64Type>() else {
        return rejected;
    };
    let shifted: arrow::array::UInt64Array = rows
        .iter()
        .map(|row| {
            row.filter(|&r| r < length as u64)
                .map(|r| r + offset as u64)
        })
        .collect();
    let mut columns = rejected.columns().to_vec();
    columns[index] = std::sync::Arc::new(shifted);
    // Every part's `row` column nullable alike, so the parts join.
    let fields: Vec<arrow::datatypes::FieldRef> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| match i == index {
            true => std::sync::Arc::new(f.as_ref().clone().with_nullable(true)),
            false => f.clone(),
        })
        .collect();
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    ));
    RecordBatch::try_new(schema, columns).unwrap_or(rejected)
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

/// Every row of a batch as a JSON object, in order.
pub fn rows_as_json(batch: &RecordBatch) -> Vec<String> {
    let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
    if writer.write(batch).and_then(|_| writer.finish()).is_err() {
        return vec![String::new(); batch.num_rows()];
    }
    String::from_utf8_lossy(&writer.into_inner())
        .lines()
        .map(str::to_string)
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{StringArray, UInt64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn rejected_rows_of_a_part_become_positions_in_the_epoch() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("row", DataType::UInt64, false),
            Field::new("reason", DataType::Utf8, false),
        ]));
        let part = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(UInt64Array::from(vec![0, 3, 5])),
                Arc::new(StringArray::from(vec!["a", "b", "outside the part"])),
            ],
        )
        .unwrap();
        let shifted = shift_rows(part, 10, 5);
        let rows = shifted.column(0).as_primitive::<UInt64Type>();
        assert_eq!(rows.iter().collect::<Vec<_>>(), [Some(10), Some(13), None]);
        assert_eq!(
            shifted.column(1).as_string::<i32>().value(2),
            "outside the part"
        );
    }

    #[test]
    fn a_rejected_batch_without_row_numbers_is_left_as_it_is() {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "reason",
            DataType::Utf8,
            false,
        )]));
        let part =
            RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec!["a"]))]).unwrap();
        assert_eq!(shift_rows(part.clone(), 10, 5), part);
    }
}
