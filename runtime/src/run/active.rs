//! What survives a restart of operators' decisions, in the pipeline's
//! checkpoint directory: `active.json`, the version each swapped or rolled
//! back stage runs, and `history.jsonl`, every swap, rollback, refusal and
//! shadow run per stage (what `GET .../history` shows).
//!
//! On restart a stage keeps running its swapped-in version as long as the
//! pipeline file still names the plugin and config it named when the swap
//! happened; once the file names another one (the operator edited it), the
//! file wins.

use super::RunError;
use super::checkpoint::{read_json, write_atomically};
use super::epoch::StagePin;
use super::pins::StageVersion;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// A stage running another version than the pipeline file names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Active {
    /// The stage.
    pub stage: String,
    /// The version it runs.
    pub pin: StagePin,
    /// What the pipeline file named when that version took over.
    pub file: StagePin,
}

/// The stages running another version than the file names (none recorded: `[]`).
pub fn read(dir: &Path) -> Result<Vec<Active>, RunError> {
    Ok(read_json(&dir.join("active.json"))?.unwrap_or_default())
}

/// Records which version every stage runs: stages running the file's version are left out.
pub fn write(dir: &Path, file: &[StageVersion], running: &[StagePin]) -> Result<(), RunError> {
    save(dir, &entries(file, running))
}

/// Writes `active.json` (durably: written aside, synced, renamed).
pub fn save(dir: &Path, active: &[Active]) -> Result<(), RunError> {
    let json = serde_json::to_vec_pretty(active).expect("pins serialize");
    write_atomically(&dir.join("active.json"), &json)
}

/// The entries of `active.json` for stages whose pipeline file names `file`
/// and which run `running`: the stages running another version than the file's.
pub fn entries(file: &[StageVersion], running: &[StagePin]) -> Vec<Active> {
    file.iter()
        .zip(running)
        .filter(|(file, running)| file.pin != **running)
        .map(|(file, running)| Active {
            stage: running.stage.clone(),
            pin: running.clone(),
            file: file.pin.clone(),
        })
        .collect()
}

/// The version each stage should run after a restart: the recorded one
/// while the file still names what it named at the swap, else the file's.
pub fn after_restart(file: &[StagePin], recorded: &[Active]) -> Vec<StagePin> {
    file.iter()
        .map(|pin| {
            recorded
                .iter()
                .find(|a| a.stage == pin.stage && a.file == *pin)
                .map_or_else(|| pin.clone(), |a| a.pin.clone())
        })
        .collect()
}

/// What happened to a stage's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A new version took over.
    Swapped,
    /// An operator returned to the previous version.
    RolledBack,
    /// A version on probation failed; the previous one took the epoch back.
    AutoRolledBack,
    /// A candidate was refused (incompatible, or failed to load).
    Refused,
    /// A shadow run began.
    ShadowStarted,
    /// A shadow run ended (see its report).
    ShadowFinished,
    /// A candidate failed during its shadow run and never took over.
    ShadowFailed,
}

/// One line of `history.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When, RFC 3339 UTC.
    pub at: String,
    /// The stage.
    pub stage: String,
    /// What happened.
    pub action: Action,
    /// The first epoch the new version ran (or the epoch that failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// The version before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<StagePin>,
    /// The version after (or the candidate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<StagePin>,
    /// `api`, `watch` or `probation`.
    pub by: String,
    /// Why, or what the operator should know.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

impl Event {
    /// An event now.
    pub fn now(stage: &str, action: Action, by: &str) -> Self {
        Event {
            at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            stage: stage.to_string(),
            action,
            epoch: None,
            from: None,
            to: None,
            by: by.to_string(),
            reasons: Vec::new(),
        }
    }
}

/// Appends `event` to the history in `dir` (informational: a failure is logged, not fatal).
pub fn record(dir: &Path, event: &Event) {
    let mut line = serde_json::to_string(event).expect("events serialize");
    line.push('\n');
    let path = dir.join("history.jsonl");
    // One write of the whole line to a file opened for appending, so lines
    // written by the admin API and the epoch loop never interleave.
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(line.as_bytes()));
    if let Err(error) = written {
        tracing::warn!(path = %path.display(), %error, "cannot append to the stage history");
    }
    tracing::info!(stage = %event.stage, action = ?event.action, epoch = ?event.epoch, by = %event.by,
        reasons = %event.reasons.join("; "), "stage history");
}

/// Every recorded event of `stage` (all stages with `None`), oldest first.
pub fn history(dir: &Path, stage: Option<&str>) -> Vec<Event> {
    let Ok(text) = std::fs::read_to_string(dir.join("history.jsonl")) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| serde_json::from_str::<Event>(line).ok())
        .filter(|e| stage.is_none_or(|s| e.stage == s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(stage: &str, hash: &str) -> StagePin {
        StagePin {
            stage: stage.into(),
            plugin: "p".into(),
            version: "1".into(),
            hash: hash.into(),
            config_hash: "c".into(),
        }
    }

    #[test]
    fn a_swapped_version_survives_a_restart_until_the_file_names_another() {
        let recorded = vec![Active {
            stage: "s".into(),
            pin: pin("s", "bb"),
            file: pin("s", "aa"),
        }];
        let chosen = |file_hash: &str| after_restart(&[pin("s", file_hash)], &recorded);
        assert_eq!(chosen("aa")[0].hash, "bb");
        assert_eq!(chosen("cc")[0].hash, "cc");
    }

    #[test]
    fn history_lines_are_appended_and_filtered_by_stage() {
        let dir = tempfile::tempdir().unwrap();
        record(dir.path(), &Event::now("a", Action::Swapped, "api"));
        record(dir.path(), &Event::now("b", Action::Refused, "watch"));
        record(dir.path(), &Event::now("a", Action::RolledBack, "api"));
        let a = history(dir.path(), Some("a"));
        assert_eq!(a.len(), 2);
        assert_eq!(a[1].action, Action::RolledBack);
        assert_eq!(history(dir.path(), None).len(), 3);
    }
}
