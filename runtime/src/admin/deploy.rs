//! Pipeline deployment through the admin API (seed 002 deploys its jobs
//! through a REST API): a pipeline file sent to `POST /deployments?name=N`
//! is read and validated exactly as `weir validate` does — relative paths
//! resolve against the directory of the file `weir run` was started with,
//! `${VAR}`s from this process's environment — and every problem is
//! returned (422) with nothing started; a valid file starts streaming in
//! this process at once, its pipelines visible to `/status`, swap and
//! metrics like the others. `DELETE /deployments/N` stops them after their
//! current epoch. A copy of each deployed file is kept in
//! `CHECKPOINT_DIR/deployments/N.toml`. Deployments last as long as the
//! process: a restarted `weir run` runs its own file only.

use super::Reply;
use crate::control::Control;
use crate::engine::PluginEngine;
use crate::pipeline::{self, Problem};
use crate::run::{RunOptions, run_file_with};
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long `POST /deployments` waits for the pipelines to show in /status.
const REGISTER_WAIT: Duration = Duration::from_secs(60);

/// How long `DELETE /deployments/N` waits for the pipelines to stop.
const STOP_WAIT: Duration = Duration::from_secs(60);

/// The pipeline files a `weir run` process runs.
pub struct Deployments {
    base: PathBuf,
    checkpoint_root: PathBuf,
    engine: PluginEngine,
    control: Arc<Control>,
    runtime: tokio::runtime::Handle,
    running: Mutex<Vec<Deployment>>,
    /// Held for a whole deployment (check, validate, start), so two requests
    /// cannot both pass the name checks before either registers.
    deploying: Mutex<()>,
}

struct Deployment {
    name: String,
    pipelines: Vec<String>,
    /// `file` (the one `weir run` started with) or `api`.
    by: &'static str,
    stop: Arc<AtomicBool>,
    /// `None` while running; then `Ok` or the error it stopped with.
    outcome: Arc<Mutex<Option<Result<(), String>>>>,
}

impl Deployments {
    /// Deployments of files whose relative paths resolve against `base`,
    /// copies kept under `checkpoint_root`, run on `runtime`.
    pub fn new(
        base: PathBuf,
        checkpoint_root: PathBuf,
        engine: PluginEngine,
        control: Arc<Control>,
        runtime: tokio::runtime::Handle,
    ) -> Arc<Self> {
        Arc::new(Deployments {
            base,
            checkpoint_root,
            engine,
            control,
            runtime,
            running: Mutex::new(Vec::new()),
            deploying: Mutex::new(()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Deployment>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lists the file `weir run` started with (it stops with the process).
    pub fn add_started_file(
        &self,
        name: &str,
        pipelines: Vec<String>,
        outcome: Arc<Mutex<Option<Result<(), String>>>>,
    ) {
        self.lock().push(Deployment {
            name: name.to_string(),
            pipelines,
            by: "file",
            stop: Arc::new(AtomicBool::new(false)),
            outcome,
        });
    }

    /// Whether `pipeline` belongs to a running deployment but has not
    /// registered yet (it is creating tables, compiling plugins).
    pub(super) fn starting(&self, pipeline: &str) -> bool {
        self.control.pipeline(pipeline).is_none()
            && self.lock().iter().any(|d| {
                d.pipelines.iter().any(|p| p == pipeline) && outcome_of(&d.outcome).is_none()
            })
    }

    /// `GET /deployments`.
    pub(super) fn list(&self) -> Reply {
        let list: Vec<serde_json::Value> = self
            .lock()
            .iter()
            .map(|d| {
                let outcome = outcome_of(&d.outcome);
                let (state, error) = match outcome {
                    None => ("running", None),
                    Some(Ok(())) => ("stopped", None),
                    Some(Err(error)) => ("failed", Some(error)),
                };
                json!({
                    "name": d.name,
                    "pipelines": d.pipelines,
                    "deployed_by": d.by,
                    "state": state,
                    "error": error,
                })
            })
            .collect();
        Reply::json(200, json!({ "deployments": list }))
    }

    /// `POST /deployments?name=N`, body: a pipeline file.
    pub(super) fn deploy(&self, query: &HashMap<String, String>, body: Vec<u8>) -> Reply {
        let _one_at_a_time = self.deploying.lock().unwrap_or_else(|p| p.into_inner());
        let Some(name) = query.get("name").filter(|n| valid_name(n)) else {
            return Reply::error(
                400,
                "name the deployment: ?name=N (letters, digits, `-` and `_`)",
            );
        };
        if self
            .lock()
            .iter()
            .any(|d| d.name == *name && outcome_of(&d.outcome).is_none())
        {
            return Reply::error(
                409,
                format!(
                    "deployment `{name}` is running; stop it first (DELETE /deployments/{name})"
                ),
            );
        }
        let Ok(text) = String::from_utf8(body) else {
            return Reply::error(400, "the body must be a pipeline file (UTF-8 TOML)");
        };
        let path = self.base.join(format!("{name}.toml"));
        let invalid = |problems: Vec<Problem>| {
            let listed: Vec<String> = problems.iter().map(ToString::to_string).collect();
            Reply::json(
                422,
                json!({
                    "error": format!("deployment `{name}`: {} problem(s); nothing was started", listed.len()),
                    "problems": listed,
                }),
            )
        };
        let lookup = |var: &str| std::env::var(var).ok();
        let file = match pipeline::load::parse(&path, &text, &lookup) {
            Ok(file) => file,
            Err(problems) => return invalid(problems),
        };
        let mut problems = Vec::new();
        if file.admin.is_some() {
            problems.push(Problem {
                location: "admin".into(),
                message: "a deployed file runs under this process's admin API; remove its [admin] section".into(),
            });
        }
        for pipeline in &file.pipelines {
            if let Some(other) = self.control.pipeline(&pipeline.name)
                && matches!(
                    other.view().state,
                    crate::control::State::Starting | crate::control::State::Running
                )
            {
                problems.push(Problem {
                    location: format!("pipeline \"{}\"", pipeline.name),
                    message: format!(
                        "a pipeline of that name already runs here (deployment `{}`); pipeline names must be unique in a process",
                        other.deployment
                    ),
                });
            }
        }
        if !problems.is_empty() {
            return invalid(problems);
        }
        let validated = self
            .runtime
            .block_on(pipeline::validate_file(file, &self.engine));
        let prepared = match validated {
            Ok(prepared) => prepared,
            Err(pipeline::PipelineFileError::Invalid { problems, .. }) => return invalid(problems),
            Err(other) => return Reply::error(422, other.to_string()),
        };
        let kept = self.checkpoint_root.join("deployments");
        if let Err(e) = std::fs::create_dir_all(&kept)
            .and_then(|_| std::fs::write(kept.join(format!("{name}.toml")), &text))
        {
            tracing::warn!(deployment = %name, error = %e, "cannot keep a copy of the deployed file");
        }
        let pipelines: Vec<String> = prepared
            .pipelines
            .iter()
            .map(|p| p.spec.name.clone())
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let outcome = Arc::new(Mutex::new(None));
        let (control, deployment) = (self.control.clone(), name.clone());
        let (flag, result) = (stop.clone(), outcome.clone());
        self.runtime.spawn(async move {
            let run = run_file_with(
                prepared,
                RunOptions { once: false },
                flag,
                &control,
                &deployment,
            )
            .await;
            if let Err(error) = &run {
                tracing::error!(%deployment, %error, "deployment stopped with an error");
            }
            // Its pipelines leave /status and /readyz; the list keeps the outcome.
            control.forget(&deployment);
            *result.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(run.map(|_| ()).map_err(|e| e.to_string()));
        });
        tracing::info!(deployment = %name, pipelines = %pipelines.join(", "), "deployed");
        self.lock().retain(|d| d.name != *name);
        self.lock().push(Deployment {
            name: name.clone(),
            pipelines: pipelines.clone(),
            by: "api",
            stop,
            outcome: outcome.clone(),
        });
        // Answer once every pipeline shows in /status (or the run failed), so
        // a command right after a deployment finds its pipelines.
        let deadline = Instant::now() + REGISTER_WAIT;
        let state = loop {
            if let Some(result) = outcome_of(&outcome) {
                break match result {
                    Ok(()) => "stopped",
                    Err(_) => "failed",
                };
            }
            if pipelines.iter().all(|p| self.control.pipeline(p).is_some()) {
                break "running";
            }
            if Instant::now() > deadline {
                break "starting";
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Reply::json(
            201,
            json!({ "deployment": name, "pipelines": pipelines, "state": state }),
        )
    }

    /// `DELETE /deployments/N`.
    pub(super) fn stop(&self, name: &str) -> Reply {
        let found = self
            .lock()
            .iter()
            .find(|d| d.name == name)
            .map(|d| (d.by, d.stop.clone(), d.outcome.clone()));
        let Some((by, stop, outcome)) = found else {
            return Reply::error(404, format!("no deployment `{name}`"));
        };
        if by == "file" {
            return Reply::error(
                409,
                format!(
                    "`{name}` is the file this `weir run` was started with; stop the process (SIGTERM) to stop it"
                ),
            );
        }
        stop.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + STOP_WAIT;
        while Instant::now() < deadline {
            if let Some(result) = outcome_of(&outcome) {
                return Reply::json(
                    200,
                    json!({ "deployment": name, "state": if result.is_ok() { "stopped" } else { "failed" }, "error": result.err() }),
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Reply::json(
            202,
            json!({ "deployment": name, "state": "stopping", "message": "the pipelines finish their current epoch first" }),
        )
    }

    /// Stops every deployed file's pipelines (the process is stopping) and
    /// waits for them.
    pub async fn stop_all(&self) {
        let outcomes: Vec<_> = self
            .lock()
            .iter()
            .filter(|d| d.by == "api")
            .map(|d| {
                d.stop.store(true, Ordering::SeqCst);
                d.outcome.clone()
            })
            .collect();
        for outcome in outcomes {
            while outcome_of(&outcome).is_none() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// How a deployment's run ended: `None` while it runs.
fn outcome_of(outcome: &Mutex<Option<Result<(), String>>>) -> Option<Result<(), String>> {
    outcome.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EngineOptions;

    #[tokio::test]
    async fn regression_a_swap_sent_right_after_start_is_told_the_pipeline_is_starting() {
        let deployments = Deployments::new(
            PathBuf::from("."),
            PathBuf::from("checkpoints"),
            PluginEngine::new(EngineOptions::default()).unwrap(),
            Control::new(),
            tokio::runtime::Handle::current(),
        );
        let outcome = Arc::new(Mutex::new(None));
        deployments.add_started_file("file", vec!["orders".into()], outcome.clone());
        assert!(deployments.starting("orders"));
        assert!(
            !deployments.starting("other"),
            "not a pipeline of any deployment"
        );
        *outcome.lock().unwrap() = Some(Err("failed".into()));
        assert!(
            !deployments.starting("orders"),
            "a failed deployment is not starting"
        );
    }
}
