//! The admin API's endpoints (listed in `admin/mod.rs`): each reads the
//! request and answers JSON (or Prometheus text), talking to pipelines only
//! through their control handles.

use super::{Reply, Shared};
use crate::control::{Command, PipelineHandle, ShadowOrder, State, SwapOrder, describe};
use crate::run::active;
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

/// The largest request body read (a plugin component or a pipeline file).
pub const MAX_BODY: u64 = 256 << 20;

/// How long a swap or rollback waits for the epoch boundary by default.
const DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// The longest `wait` a request may ask for.
const MAX_WAIT: Duration = Duration::from_secs(600);

/// Dispatches one request.
pub(super) fn route(
    shared: &Shared,
    method: &str,
    path: &str,
    query: &str,
    body: Vec<u8>,
) -> Reply {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let query: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let result = match (method, parts.as_slice()) {
        ("GET", ["healthz"]) => Ok(Reply::text(200, "ok\n".into())),
        ("GET", ["readyz"]) => Ok(readyz(shared)),
        ("GET", ["status"]) => Ok(status(shared)),
        ("GET", ["metrics"]) => Ok(Reply::metrics(shared.control.metrics.render())),
        ("POST", ["pipelines", pipeline, "stages", stage, "swap"]) => {
            swap(shared, pipeline, stage, &query, body)
        }
        ("POST", ["pipelines", pipeline, "stages", stage, "rollback"]) => {
            rollback(shared, pipeline, stage, &query)
        }
        ("GET", ["pipelines", pipeline, "stages", stage, "shadow"]) => {
            shadow(shared, pipeline, stage)
        }
        ("GET", ["pipelines", pipeline, "stages", stage, "history"]) => {
            history(shared, pipeline, Some(stage))
        }
        ("GET", ["pipelines", pipeline, "history"]) => history(shared, pipeline, None),
        ("GET", ["deployments"]) => Ok(shared.deployments.list()),
        ("POST", ["deployments"]) => Ok(shared.deployments.deploy(&query, body)),
        ("DELETE", ["deployments", name]) => Ok(shared.deployments.stop(name)),
        _ => Err(Reply::error(
            404,
            format!("no endpoint {method} {path}; the endpoints are listed in docs/hot-swap.md"),
        )),
    };
    result.unwrap_or_else(|reply| reply)
}

fn readyz(shared: &Shared) -> Reply {
    let pipelines = shared.control.pipelines();
    let waiting: Vec<String> = pipelines
        .iter()
        .filter(|p| p.view().state != State::Running)
        .map(|p| p.name.clone())
        .collect();
    match (pipelines.is_empty(), waiting.is_empty()) {
        (false, true) => Reply::text(200, "ready\n".into()),
        (true, _) => Reply::text(503, "no pipeline runs\n".into()),
        (false, false) => Reply::text(503, format!("not running: {}\n", waiting.join(", "))),
    }
}

fn state_json(state: &State) -> (String, Option<String>) {
    match state {
        State::Starting => ("starting".into(), None),
        State::Running => ("running".into(), None),
        State::Stopped => ("stopped".into(), None),
        State::Failed(error) => ("failed".into(), Some(error.clone())),
    }
}

fn status(shared: &Shared) -> Reply {
    let pipelines: Vec<serde_json::Value> = shared
        .control
        .pipelines()
        .iter()
        .map(|handle| {
            let view = handle.view();
            let (state, error) = state_json(&view.state);
            let files = crate::run::pins::current(&handle.prepared);
            let stages: Vec<serde_json::Value> = view
                .versions
                .iter()
                .zip(&files)
                .enumerate()
                .map(|(index, (running, file))| {
                    let pin = &running.pin;
                    json!({
                        "name": pin.stage,
                        "plugin": pin.plugin,
                        "version": pin.version,
                        "hash": pin.hash,
                        "config_hash": pin.config_hash,
                        "swapped": pin != &file.pin,
                        "file_version": describe(&file.pin),
                        "probation_epochs_left": view.probation.get(index).copied().unwrap_or(0),
                        "shadow": view.shadows.get(&pin.stage).map(|r| json!({
                            "candidate": r.candidate, "state": r.state,
                            "compared": r.compared, "epochs": r.epochs,
                            "differing_rows": r.differing_rows,
                        })),
                    })
                })
                .collect();
            let lag: serde_json::Map<String, serde_json::Value> = view
                .lag
                .iter()
                .map(|(partition, lag)| (partition.clone(), json!(lag)))
                .collect();
            json!({
                "name": handle.name,
                "deployment": handle.deployment,
                "state": state,
                "error": error,
                "last_epoch": view.last_epoch,
                "epochs": view.epochs,
                "lag": lag,
                "stages": stages,
            })
        })
        .collect();
    Reply::json(200, json!({ "pipelines": pipelines }))
}

/// The pipeline and stage index named in a path, or a 404 naming what exists.
fn find(
    shared: &Shared,
    pipeline: &str,
    stage: Option<&str>,
) -> Result<(Arc<PipelineHandle>, usize), Reply> {
    let handle = shared.control.pipeline(pipeline).ok_or_else(|| {
        if shared.deployments.starting(pipeline) {
            return Reply::error(
                503,
                format!(
                    "pipeline `{pipeline}` is starting (creating tables, compiling plugins); try again once GET /readyz answers 200"
                ),
            );
        }
        let names: Vec<String> = shared
            .control
            .pipelines()
            .iter()
            .map(|p| p.name.clone())
            .collect();
        Reply::error(
            404,
            format!(
                "no pipeline `{pipeline}` runs here (running: {})",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ),
        )
    })?;
    let index = match stage {
        Some(stage) => handle
            .stage_index(stage)
            .map_err(|message| Reply::error(404, message))?,
        None => 0,
    };
    Ok((handle, index))
}

fn wait_of(query: &HashMap<String, String>) -> Result<Duration, Reply> {
    match query.get("wait") {
        None => Ok(DEFAULT_WAIT),
        Some(text) => match crate::units::parse_duration(text) {
            Ok(wait) if wait <= MAX_WAIT => Ok(wait),
            Ok(_) => Err(Reply::error(400, "wait: at most 10m")),
            Err(e) => Err(Reply::error(400, format!("wait: {e}"))),
        },
    }
}

fn must_run(handle: &PipelineHandle) -> Result<(), Reply> {
    match handle.view().state {
        State::Starting | State::Running => Ok(()),
        other => Err(Reply::error(
            409,
            format!(
                "pipeline `{}` is not running ({}); start it again to change its stages",
                handle.name,
                state_json(&other).0
            ),
        )),
    }
}

fn swap(
    shared: &Shared,
    pipeline: &str,
    stage: &str,
    query: &HashMap<String, String>,
    body: Vec<u8>,
) -> Result<Reply, Reply> {
    let (handle, index) = find(shared, pipeline, Some(stage))?;
    must_run(&handle)?;
    if body.is_empty() {
        return Err(Reply::error(
            400,
            "send the new plugin's .wasm component as the request body",
        ));
    }
    let shadow = match query.get("shadow") {
        None => None,
        Some(n) => match n.parse::<u64>() {
            Ok(0) | Err(_) => {
                return Err(Reply::error(
                    400,
                    format!("shadow: `{n}` is not a number of epochs (1 or more)"),
                ));
            }
            Ok(epochs) => Some(ShadowOrder {
                epochs,
                cut_over: query.get("cut_over").is_none_or(|v| v != "false"),
                key: query
                    .get("key")
                    .map(|k| k.split(',').map(|c| c.trim().to_string()).collect())
                    .unwrap_or_default(),
            }),
        },
    };
    let wait = wait_of(query)?;
    let origin = PathBuf::from(
        query
            .get("file")
            .cloned()
            .unwrap_or_else(|| format!("{stage}.wasm")),
    );
    let running = describe(&handle.view().versions[index].pin);
    let (ready, based_on) = handle.check(index, &body, &origin, "api").map_err(|problems| {
        Reply::json(
            409,
            json!({
                "error": format!("the new version is refused; stage `{stage}` keeps running {running}"),
                "problems": problems,
            }),
        )
    })?;
    let notes = ready.notes.clone();
    let (reply, outcome) = mpsc::channel();
    handle.submit(Command::Swap(Box::new(SwapOrder {
        ready,
        based_on,
        shadow,
        by: "api".into(),
        reply: Some(reply),
    })));
    Ok(answer(outcome.recv_timeout(wait), wait, notes))
}

fn answer(
    outcome: Result<Result<crate::control::Switched, String>, RecvTimeoutError>,
    wait: Duration,
    notes: Vec<String>,
) -> Reply {
    match outcome {
        Ok(Ok(switched)) => {
            let result = if switched.shadowing {
                "shadowing"
            } else {
                "switched"
            };
            Reply::json(
                if switched.shadowing { 202 } else { 200 },
                json!({
                    "result": result,
                    "stage": switched.stage,
                    "epoch": switched.epoch,
                    "from": describe(&switched.from),
                    "to": describe(&switched.to),
                    "from_pin": switched.from,
                    "to_pin": switched.to,
                    "notes": switched.notes,
                }),
            )
        }
        Ok(Err(message)) => Reply::error(409, message),
        Err(_) => Reply::json(
            202,
            json!({
                "result": "queued",
                "message": format!(
                    "the pipeline did not reach an epoch boundary within {}; the change applies at its next one (see GET /status and the stage's history)",
                    humantime::format_duration(wait)
                ),
                "notes": notes,
            }),
        ),
    }
}

fn rollback(
    shared: &Shared,
    pipeline: &str,
    stage: &str,
    query: &HashMap<String, String>,
) -> Result<Reply, Reply> {
    let (handle, index) = find(shared, pipeline, Some(stage))?;
    must_run(&handle)?;
    let wait = wait_of(query)?;
    let (reply, outcome) = mpsc::channel();
    handle.submit(Command::RollBack {
        stage: index,
        reply,
    });
    Ok(answer(outcome.recv_timeout(wait), wait, Vec::new()))
}

fn shadow(shared: &Shared, pipeline: &str, stage: &str) -> Result<Reply, Reply> {
    let (handle, _) = find(shared, pipeline, Some(stage))?;
    match handle.view().shadows.get(stage) {
        Some(report) => Ok(Reply::json(
            200,
            serde_json::to_value(report).expect("reports serialize"),
        )),
        None => Err(Reply::error(
            404,
            format!(
                "stage `{stage}` has no shadow run; start one with `weir swap --pipeline {pipeline} --stage {stage} FILE.wasm --shadow EPOCHS`"
            ),
        )),
    }
}

fn history(shared: &Shared, pipeline: &str, stage: Option<&str>) -> Result<Reply, Reply> {
    let (handle, _) = find(shared, pipeline, stage)?;
    let events = active::history(&handle.checkpoint_dir, stage);
    Ok(Reply::json(
        200,
        json!({ "pipeline": pipeline, "stage": stage, "events": events }),
    ))
}
