//! The operators' control plane of a `weir run` process: every running
//! pipeline has a [`PipelineHandle`] through which the admin API (and the
//! plugin-file watcher) reads its status and hands it commands — swap a
//! stage's version, shadow a candidate, roll back. A command is checked off
//! the processing path and queued; the pipeline's epoch loop applies queued
//! commands only between epochs ([`PipelineHandle::apply`]), so an epoch is
//! always entirely one version's: the cut-over of `docs/hot-swap.md`.

pub mod metrics;
pub mod watch;

use crate::pipeline::PreparedPipeline;
use crate::run::RunError;
use crate::run::active::{self, Action, Event};
use crate::run::epoch::StagePin;
use crate::run::pins::StageVersion;
use crate::run::shadow::{Shadow, ShadowReport};
use crate::run::stages::StageSet;
use crate::run::swap::{self, Ready, Schemas};
use metrics::Metrics;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

/// Every pipeline of the process, and the metrics they report.
#[derive(Default)]
pub struct Control {
    pipelines: Mutex<Vec<Arc<PipelineHandle>>>,
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
}

impl Control {
    /// An empty control plane.
    pub fn new() -> Arc<Self> {
        Arc::new(Control::default())
    }

    /// Registers a pipeline about to start (replacing a stopped one of the same name).
    pub fn register(
        &self,
        prepared: &PreparedPipeline,
        checkpoint_dir: PathBuf,
        deployment: &str,
    ) -> Arc<PipelineHandle> {
        let handle = Arc::new(PipelineHandle {
            name: prepared.spec.name.clone(),
            deployment: deployment.to_string(),
            prepared: prepared.clone(),
            checkpoint_dir,
            commands: Mutex::new(VecDeque::new()),
            wake: Arc::new(AtomicBool::new(false)),
            view: Mutex::new(View {
                state: State::Starting,
                versions: crate::run::pins::current(prepared),
                schemas: prepared.schemas.clone(),
                ..View::default()
            }),
            metrics: self.metrics.clone(),
            timeline: Mutex::new(VecDeque::new()),
            recording: Mutex::new(None),
        });
        let mut pipelines = self.lock();
        pipelines.retain(|p| p.name != handle.name);
        pipelines.push(handle.clone());
        handle
    }

    /// The pipeline named `name`.
    pub fn pipeline(&self, name: &str) -> Option<Arc<PipelineHandle>> {
        self.lock().iter().find(|p| p.name == name).cloned()
    }

    /// Every registered pipeline, in registration order.
    pub fn pipelines(&self) -> Vec<Arc<PipelineHandle>> {
        self.lock().clone()
    }

    /// Forgets the pipelines of `deployment` (after it stopped).
    pub fn forget(&self, deployment: &str) {
        self.lock().retain(|p| p.deployment != deployment);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<PipelineHandle>>> {
        self.pipelines.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Where a pipeline is in its life.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Recovering or not yet started.
    #[default]
    Starting,
    /// Planning and running epochs.
    Running,
    /// Stopped cleanly (`--once` done, or asked to stop).
    Stopped,
    /// Stopped with an error.
    Failed(String),
}

/// What the admin API shows of a pipeline; updated by its epoch loop.
#[derive(Clone, Default)]
pub struct View {
    /// Where it is.
    pub state: State,
    /// The last committed epoch.
    pub last_epoch: u64,
    /// Epochs committed by this process.
    pub epochs: u64,
    /// Source lag per partition.
    pub lag: Vec<(String, i64)>,
    /// The versions the stages run.
    pub versions: Vec<StageVersion>,
    /// Every port's schema as they produce it.
    pub schemas: Schemas,
    /// Epochs of probation left, per stage.
    pub probation: Vec<u64>,
    /// Shadow reports by stage.
    pub shadows: BTreeMap<String, ShadowReport>,
}

/// A command for a pipeline's epoch loop.
pub enum Command {
    /// Swap a stage's version in (or shadow it first).
    Swap(Box<SwapOrder>),
    /// Return a stage to its previous version.
    RollBack {
        /// The stage's index.
        stage: usize,
        /// Where the outcome goes.
        reply: Sender<Result<Switched, String>>,
    },
}

/// A checked version to put in at the next epoch boundary.
pub struct SwapOrder {
    /// The checked version.
    pub ready: Ready,
    /// The pins the check was made against; if the stages changed since,
    /// the order is refused (check again).
    pub based_on: Vec<StagePin>,
    /// Shadow it first for this many epochs, if set.
    pub shadow: Option<ShadowOrder>,
    /// `api` or `watch`.
    pub by: String,
    /// Where the outcome goes.
    pub reply: Option<Sender<Result<Switched, String>>>,
}

/// How to shadow a candidate.
#[derive(Debug, Clone)]
pub struct ShadowOrder {
    /// Epochs to compare.
    pub epochs: u64,
    /// Whether it takes over when the shadow run ends well.
    pub cut_over: bool,
    /// Columns pairing rows (default: the stage's dedupe key).
    pub key: Vec<String>,
}

/// The outcome of a swap or rollback.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Switched {
    /// The stage.
    pub stage: String,
    /// The first epoch the new version runs (or is shadowed in).
    pub epoch: u64,
    /// The version before.
    pub from: StagePin,
    /// The version after (the candidate, when shadowing).
    pub to: StagePin,
    /// Whether the candidate is being shadowed rather than running.
    pub shadowing: bool,
    /// What the operator should know.
    pub notes: Vec<String>,
}

/// One running pipeline, as the control plane sees it.
pub struct PipelineHandle {
    /// The pipeline's name.
    pub name: String,
    /// The deployment (pipeline file) it belongs to.
    pub deployment: String,
    /// The validated pipeline.
    pub prepared: PreparedPipeline,
    /// Its checkpoint directory (kept versions, `active.json`, history).
    pub checkpoint_dir: PathBuf,
    commands: Mutex<VecDeque<Command>>,
    wake: Arc<AtomicBool>,
    view: Mutex<View>,
    metrics: Arc<Metrics>,
    timeline: Mutex<VecDeque<EpochTiming>>,
    /// The durable write of `active.json` after the last cut-over, running
    /// while the source fetches the next epoch (see
    /// [`PipelineHandle::settle_versions`]).
    recording: Mutex<Option<std::thread::JoinHandle<Result<(), RunError>>>>,
}

/// When one new epoch's stages ran (`weir bench swap` measures the stall a
/// swap causes from these).
#[derive(Debug, Clone, Copy)]
pub struct EpochTiming {
    /// The epoch.
    pub epoch: u64,
    /// When its first stage call began.
    pub stages_started: std::time::Instant,
    /// When its last stage call ended.
    pub stages_finished: std::time::Instant,
    /// When it was done: every sink committed, state saved, the source
    /// acknowledged (the next epoch's boundary work starts here).
    pub finished: std::time::Instant,
    /// Time spent applying operators' commands right before it.
    pub applied: std::time::Duration,
}

/// How many recent epochs' timings a handle keeps.
const TIMELINE: usize = 4096;

impl PipelineHandle {
    /// Records when a new epoch's stages ran.
    pub fn record_timing(&self, timing: EpochTiming) {
        let mut timeline = self.timeline.lock().unwrap_or_else(|p| p.into_inner());
        if timeline.len() == TIMELINE {
            timeline.pop_front();
        }
        timeline.push_back(timing);
    }

    /// The recent epochs' timings, oldest first.
    pub fn timeline(&self) -> Vec<EpochTiming> {
        let timeline = self.timeline.lock().unwrap_or_else(|p| p.into_inner());
        timeline.iter().copied().collect()
    }

    /// A snapshot of what the pipeline shows.
    pub fn view(&self) -> View {
        self.lock_view().clone()
    }

    /// Changes what the pipeline shows.
    pub fn update(&self, change: impl FnOnce(&mut View)) {
        change(&mut self.lock_view());
    }

    fn lock_view(&self) -> std::sync::MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The process's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The flag that makes the source return between epochs when a command arrives.
    pub fn wake_flag(&self) -> Arc<AtomicBool> {
        self.wake.clone()
    }

    /// Queues `command` and wakes the pipeline if it waits for records.
    pub fn submit(&self, command: Command) {
        self.commands
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(command);
        self.wake.store(true, Ordering::SeqCst);
    }

    /// The index of stage `name`, or a message listing the stages.
    pub fn stage_index(&self, name: &str) -> Result<usize, String> {
        let stages = &self.prepared.spec.stages;
        stages.iter().position(|s| s.name == name).ok_or_else(|| {
            let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
            format!(
                "pipeline `{}` has no stage `{name}` (its stages: {})",
                self.name,
                names.join(", ")
            )
        })
    }

    /// Loads `bytes` as a new version of stage `index` and checks it against
    /// the versions and schemas running now (off the processing path: this
    /// compiles and runs probes on the caller's thread). A checked version's
    /// component is kept in the checkpoint before it is handed over, so a
    /// crash after its first epoch was planned replays it. A refusal is
    /// recorded in the stage's history.
    pub fn check(
        &self,
        index: usize,
        bytes: &[u8],
        origin: &Path,
        by: &str,
    ) -> Result<(Ready, Vec<StagePin>), Vec<String>> {
        let stage = &self.prepared.spec.stages[index];
        let view = self.view();
        let refuse = |reasons: Vec<String>, to: Option<StagePin>| {
            let mut event = Event::now(&stage.name, Action::Refused, by);
            event.from = view.versions.get(index).map(|v| v.pin.clone());
            event.to = to;
            event.reasons = reasons.clone();
            active::record(&self.checkpoint_dir, &event);
            reasons
        };
        let plugin = match self.prepared.engine.load_bytes(bytes, origin) {
            Ok((plugin, _)) => plugin,
            Err(e) => {
                return Err(refuse(
                    vec![format!(
                        "not a plugin implementing weir:plugin@0.1 (the WIT contract in wit/): {e}"
                    )],
                    None,
                ));
            }
        };
        let based_on: Vec<StagePin> = view.versions.iter().map(|v| v.pin.clone()).collect();
        if plugin.identity().hash == view.versions[index].pin.hash {
            return Err(vec![format!(
                "stage `{}` already runs {}",
                stage.name,
                plugin.identity()
            )]);
        }
        let ready = swap::prepare(&self.prepared, &view.versions, &view.schemas, index, plugin)
            .map_err(|reasons| refuse(reasons, None))?;
        crate::run::checkpoint::keep_version(
            &self.checkpoint_dir,
            "wasm",
            &ready.version.pin.hash,
            ready.version.plugin.bytes(),
        )
        .map_err(|e| {
            vec![format!(
                "cannot keep the new version in the checkpoint: {e}"
            )]
        })?;
        Ok((ready, based_on))
    }

    /// Applies queued commands between epochs (`next_epoch` is the first
    /// epoch that runs after them) and any shadowed candidate whose run
    /// ended well; records what changed.
    pub fn apply(&self, stages: &mut StageSet, next_epoch: u64) -> Result<(), RunError> {
        let mut changed = false;
        for report in stages.take_ended_shadows() {
            let action = match report.failure {
                Some(_) => Action::ShadowFailed,
                None => Action::ShadowFinished,
            };
            let mut event = Event::now(&report.stage, action, "shadow");
            event.epoch = report.last_epoch;
            event.reasons = vec![match &report.failure {
                Some(failure) => format!("{} failed: {failure}", report.candidate),
                None => format!(
                    "{} epochs compared, {} differing rows",
                    report.compared, report.differing_rows
                ),
            }];
            active::record(&self.checkpoint_dir, &event);
        }
        for (ready, based_on) in stages.take_cut_overs() {
            let notes = ready.notes.clone();
            let to = ready.version.pin.clone();
            let stage = to.stage.clone();
            if stages.pins() != based_on {
                let mut event = Event::now(&stage, Action::ShadowFailed, "shadow");
                event.epoch = Some(next_epoch);
                event.to = Some(to);
                event.reasons = vec![
                    "the pipeline's stages changed during the shadow run, so its checks no longer hold; swap again".into(),
                ];
                active::record(&self.checkpoint_dir, &event);
                continue;
            }
            let from = stages.install(ready);
            self.switched(
                &stage,
                Action::Swapped,
                "shadow",
                next_epoch,
                &from,
                &to,
                notes,
            );
            self.metrics.swapped(&self.name, &stage);
            changed = true;
        }
        loop {
            let command = self
                .commands
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front();
            let Some(command) = command else { break };
            match command {
                Command::Swap(order) => {
                    let SwapOrder {
                        ready,
                        based_on,
                        shadow,
                        by,
                        reply,
                    } = *order;
                    let outcome = if stages.pins() != based_on {
                        let reason = "the pipeline's stages changed while the new version was being checked; swap again";
                        let mut event = Event::now(&ready.version.pin.stage, Action::Refused, &by);
                        event.to = Some(ready.version.pin.clone());
                        event.reasons = vec![reason.to_string()];
                        active::record(&self.checkpoint_dir, &event);
                        Err(reason.to_string())
                    } else {
                        let stage = ready.version.pin.stage.clone();
                        let from = stages.pins()[ready.index].clone();
                        let to = ready.version.pin.clone();
                        let notes = ready.notes.clone();
                        match shadow {
                            Some(order) => {
                                let key = match order.key.is_empty() {
                                    false => order.key,
                                    true => self.prepared.spec.stages[ready.index]
                                        .dedupe
                                        .as_ref()
                                        .map(|d| d.key.clone())
                                        .unwrap_or_default(),
                                };
                                let report = ShadowReport {
                                    stage: stage.clone(),
                                    live: describe(&from),
                                    candidate: describe(&to),
                                    state: "running".into(),
                                    epochs: order.epochs,
                                    cut_over: order.cut_over,
                                    ..ShadowReport::default()
                                };
                                stages.begin_shadow(Shadow {
                                    ready,
                                    remaining: order.epochs,
                                    cut_over: order.cut_over,
                                    key,
                                    based_on,
                                    report,
                                });
                                let mut event = Event::now(&stage, Action::ShadowStarted, &by);
                                event.epoch = Some(next_epoch);
                                event.from = Some(from.clone());
                                event.to = Some(to.clone());
                                event.reasons = notes.clone();
                                active::record(&self.checkpoint_dir, &event);
                                Ok(Switched {
                                    stage,
                                    epoch: next_epoch,
                                    from,
                                    to,
                                    shadowing: true,
                                    notes,
                                })
                            }
                            None => {
                                stages.install(ready);
                                self.switched(
                                    &stage,
                                    Action::Swapped,
                                    &by,
                                    next_epoch,
                                    &from,
                                    &to,
                                    notes.clone(),
                                );
                                self.metrics.swapped(&self.name, &stage);
                                changed = true;
                                Ok(Switched {
                                    stage,
                                    epoch: next_epoch,
                                    from,
                                    to,
                                    shadowing: false,
                                    notes,
                                })
                            }
                        }
                    };
                    if let Some(reply) = reply {
                        let _ = reply.send(outcome);
                    }
                }
                Command::RollBack { stage, reply } => {
                    let name = self.prepared.spec.stages[stage].name.clone();
                    let outcome = match stages.roll_back(stage) {
                        Err(error) => Err(format!(
                            "stage `{name}` keeps its version: the one before it no longer fits the pipeline: {error}"
                        )),
                        Ok(Some((from, to))) => {
                            self.switched(
                                &name,
                                Action::RolledBack,
                                "api",
                                next_epoch,
                                &from,
                                &to,
                                Vec::new(),
                            );
                            self.metrics.rolled_back(&self.name, &name, "manual");
                            changed = true;
                            Ok(Switched {
                                stage: name,
                                epoch: next_epoch,
                                from,
                                to,
                                shadowing: false,
                                notes: Vec::new(),
                            })
                        }
                        Ok(None) => Err(format!(
                            "stage `{name}` has no swap left to undo in this run (it runs the version it started with, or every swap was rolled back)"
                        )),
                    };
                    let _ = reply.send(outcome);
                }
            }
        }
        if changed {
            // `active.json` is synced to disk while the source fetches the
            // next epoch (an fsync can wait hundreds of milliseconds on a
            // busy disk); the epoch's plan is written only once it is durable.
            self.settle_versions()?;
            let entries = active::entries(stages.current(), &stages.pins());
            let dir = self.checkpoint_dir.clone();
            *self.recording.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(std::thread::spawn(move || active::save(&dir, &entries)));
        }
        self.show(stages);
        Ok(())
    }

    /// Waits until the versions recorded at the last cut-over are on disk
    /// (`active.json`), so no epoch plan names a new version before a
    /// restart would pick that version again. Call before writing an epoch's
    /// plan, before writing `active.json` again, and when the run ends.
    ///
    /// # Errors
    /// The write's error (the checkpoint directory cannot be written).
    pub fn settle_versions(&self) -> Result<(), RunError> {
        let pending = self
            .recording
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match pending {
            Some(write) => write
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            None => Ok(()),
        }
    }

    /// Records that stage `index`'s version failed on probation in epoch
    /// `epoch` and that `switched` (from, to) took it back — after the
    /// caller rolled the stage back and rewrote the epoch's plan.
    pub fn rolled_back_on_probation(
        &self,
        stages: &StageSet,
        index: usize,
        epoch: u64,
        reason: &str,
        switched: Option<(StagePin, StagePin)>,
    ) -> Result<(), RunError> {
        let name = self.prepared.spec.stages[index].name.clone();
        if let Some((from, to)) = switched {
            let mut event = Event::now(&name, Action::AutoRolledBack, "probation");
            event.epoch = Some(epoch);
            event.from = Some(from);
            event.to = Some(to);
            event.reasons = vec![reason.to_string()];
            active::record(&self.checkpoint_dir, &event);
            self.metrics.rolled_back(&self.name, &name, "automatic");
            self.settle_versions()?;
            active::write(&self.checkpoint_dir, stages.current(), &stages.pins())?;
        }
        self.show(stages);
        Ok(())
    }

    /// Publishes the stages' versions, schemas and shadow reports.
    pub fn show(&self, stages: &StageSet) {
        let versions = stages.versions();
        let pins: Vec<StagePin> = versions.iter().map(|v| v.pin.clone()).collect();
        self.metrics.versions(&self.name, &pins);
        let shadows = self
            .prepared
            .spec
            .stages
            .iter()
            .filter_map(|s| Some((s.name.clone(), stages.shadow_report(&s.name)?)))
            .collect();
        let probation = stages.probation();
        let schemas = stages.schemas().clone();
        self.update(|view| {
            view.versions = versions;
            view.schemas = schemas;
            view.shadows = shadows;
            view.probation = probation;
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn switched(
        &self,
        stage: &str,
        action: Action,
        by: &str,
        epoch: u64,
        from: &StagePin,
        to: &StagePin,
        reasons: Vec<String>,
    ) {
        let mut event = Event::now(stage, action, by);
        event.epoch = Some(epoch);
        event.from = Some(from.clone());
        event.to = Some(to.clone());
        event.reasons = reasons;
        active::record(&self.checkpoint_dir, &event);
    }
}

/// `name@version (hash)` of a pin (the hash's first 12 characters).
pub fn describe(pin: &StagePin) -> String {
    format!(
        "{}@{} ({})",
        pin.plugin,
        pin.version,
        pin.hash.get(..12).unwrap_or(&pin.hash)
    )
}
