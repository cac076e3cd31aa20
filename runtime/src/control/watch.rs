//! `watch = true` on a stage: its plugin file is polled, and once a
//! replacement has settled (size and modification time unchanged for a
//! second, so a file still being copied is not read half-written) it is
//! checked and swapped in exactly as `weir swap` would — refused versions
//! stay out and are recorded in the stage's history.

use super::{Command, PipelineHandle, State, SwapOrder};
use crate::cache::content_hash;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// How often plugin files are looked at.
const POLL: Duration = Duration::from_millis(250);
/// How long a changed file must stay unchanged before it is read.
const SETTLE: Duration = Duration::from_secs(1);

struct Watched {
    index: usize,
    path: PathBuf,
    seen: Option<(u64, SystemTime)>,
    changed_at: Option<Instant>,
    tried: Option<String>,
}

/// Starts watching the plugin files of `handle`'s stages that ask for it;
/// stops when `stop` is set or the pipeline is no longer running.
pub fn spawn(handle: Arc<PipelineHandle>, stop: Arc<AtomicBool>) {
    let mut watched: Vec<Watched> = handle
        .prepared
        .spec
        .stages
        .iter()
        .enumerate()
        .filter(|(_, s)| s.watch)
        .map(|(index, s)| Watched {
            index,
            path: s.plugin.clone(),
            seen: signature(&s.plugin),
            changed_at: None,
            tried: None,
        })
        .collect();
    if watched.is_empty() {
        return;
    }
    let name = format!("weir-watch-{}", handle.name);
    let pipeline = handle.name.clone();
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        while !stop.load(Ordering::SeqCst)
            && matches!(handle.view().state, State::Starting | State::Running)
        {
            std::thread::sleep(POLL);
            for stage in &mut watched {
                poll(&handle, stage);
            }
        }
    });
    if let Err(error) = spawned {
        tracing::warn!(%pipeline, %error, "cannot start the plugin-file watcher");
    }
}

fn signature(path: &std::path::Path) -> Option<(u64, SystemTime)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.len(), metadata.modified().ok()?))
}

fn poll(handle: &PipelineHandle, stage: &mut Watched) {
    let now = signature(&stage.path);
    if now != stage.seen {
        stage.seen = now;
        stage.changed_at = Some(Instant::now());
        return;
    }
    let Some(changed) = stage.changed_at else {
        return;
    };
    if changed.elapsed() < SETTLE || now.is_none() {
        return;
    }
    stage.changed_at = None;
    let Ok(bytes) = std::fs::read(&stage.path) else {
        return;
    };
    let hash = content_hash(&bytes);
    let running = handle
        .view()
        .versions
        .get(stage.index)
        .map(|v| v.pin.hash.clone());
    if running.as_deref() == Some(hash.as_str()) || stage.tried.as_deref() == Some(hash.as_str()) {
        return;
    }
    stage.tried = Some(hash);
    let name = &handle.prepared.spec.stages[stage.index].name;
    tracing::info!(pipeline = %handle.name, stage = %name, file = %stage.path.display(),
        "plugin file replaced; checking the new version");
    match handle.check(stage.index, &bytes, &stage.path, "watch") {
        Ok((ready, based_on)) => handle.submit(Command::Swap(Box::new(SwapOrder {
            ready,
            based_on,
            shadow: None,
            by: "watch".into(),
            reply: None,
        }))),
        Err(reasons) => {
            tracing::warn!(pipeline = %handle.name, stage = %name, reasons = %reasons.join("; "),
                "the replaced plugin file was refused; the stage keeps its version")
        }
    }
}
