//! A pipeline's checkpoint directory: an exclusive lock (one running process
//! per pipeline), epoch plans (`epochs/NNNNNNNNNNNNNNNNNNNN.json`, written
//! atomically before the epoch runs) and per-epoch state snapshots
//! (`state/NNNNNNNNNNNNNNNNNNNN/STAGE.arrow`, written after the epoch
//! commits). Old plans and snapshots are pruned, keeping the last few.

use super::RunError;
use super::epoch::EpochPlan;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// How many old epochs' plans and state snapshots are kept.
const KEEP_EPOCHS: u64 = 5;

/// An open, locked checkpoint directory.
pub struct Checkpoint {
    dir: PathBuf,
    /// Held for the life of the run; the OS releases it if the process dies.
    _lock: File,
}

fn io_error(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> RunError + use<> {
    let path = path.to_path_buf();
    move |source| RunError::Checkpoint {
        path,
        action,
        source,
    }
}

impl Checkpoint {
    /// Opens (creating) `dir` and takes its lock; fails if another process holds it.
    pub fn open(dir: &Path) -> Result<Self, RunError> {
        fs::create_dir_all(dir.join("epochs")).map_err(io_error(dir, "create"))?;
        fs::create_dir_all(dir.join("state")).map_err(io_error(dir, "create"))?;
        let lock_path = dir.join("LOCK");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_error(&lock_path, "open"))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(RunError::Locked {
                    path: dir.to_path_buf(),
                });
            }
            Err(fs::TryLockError::Error(source)) => {
                return Err(io_error(&lock_path, "lock")(source));
            }
        }
        Ok(Checkpoint {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// The checkpoint directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn plan_path(&self, epoch: u64) -> PathBuf {
        self.dir.join("epochs").join(format!("{epoch:020}.json"))
    }

    /// The directory holding `epoch`'s state snapshot.
    pub fn state_dir(&self, epoch: u64) -> PathBuf {
        self.dir.join("state").join(format!("{epoch:020}"))
    }

    /// Records a plan durably (write, fsync, rename, fsync the directory).
    pub fn write_plan(&self, plan: &EpochPlan) -> Result<(), RunError> {
        let json = serde_json::to_vec_pretty(plan).expect("plans serialize");
        write_atomically(&self.plan_path(plan.epoch), &json)
    }

    /// The plan of `epoch`, if recorded.
    pub fn plan(&self, epoch: u64) -> Result<Option<EpochPlan>, RunError> {
        read_json(&self.plan_path(epoch))
    }

    /// The highest planned epoch.
    pub fn latest_planned(&self) -> Result<Option<u64>, RunError> {
        let dir = self.dir.join("epochs");
        let entries = fs::read_dir(&dir).map_err(io_error(&dir, "list"))?;
        Ok(entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".json")?.parse::<u64>().ok()
            })
            .max())
    }

    /// The newest epoch with a complete state snapshot that is not after `at_most`.
    pub fn latest_state(&self, at_most: u64) -> Result<Option<u64>, RunError> {
        Ok(self
            .state_snapshots()?
            .into_iter()
            .filter(|&epoch| epoch <= at_most)
            .max())
    }

    /// Every epoch with a complete state snapshot, ascending.
    pub fn state_snapshots(&self) -> Result<Vec<u64>, RunError> {
        let dir = self.dir.join("state");
        let entries = fs::read_dir(&dir).map_err(io_error(&dir, "list"))?;
        let mut epochs: Vec<u64> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok()?.parse::<u64>().ok())
            .filter(|&epoch| self.state_dir(epoch).join("COMPLETE").exists())
            .collect();
        epochs.sort_unstable();
        Ok(epochs)
    }

    /// Writes `epoch`'s state snapshot files (name → bytes) and marks it complete.
    pub fn write_state(&self, epoch: u64, files: &[(String, Vec<u8>)]) -> Result<(), RunError> {
        let dir = self.state_dir(epoch);
        fs::create_dir_all(&dir).map_err(io_error(&dir, "create"))?;
        for (name, bytes) in files {
            write_atomically(&dir.join(name), bytes)?;
        }
        write_atomically(&dir.join("COMPLETE"), b"")
    }

    /// Reads one file of `epoch`'s snapshot, if present.
    pub fn read_state(&self, epoch: u64, name: &str) -> Result<Option<Vec<u8>>, RunError> {
        let path = self.state_dir(epoch).join(name);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(io_error(&path, "read")(source)),
        }
    }

    /// Keeps a copy of content `bytes` (a plugin component, `kind` `wasm`, or
    /// a stage config, `json`) under its SHA-256 `hash`, unless already kept,
    /// so a replay can run exactly the version its plan recorded. Kept
    /// versions are never pruned: they are few and small.
    pub fn keep(&self, kind: &str, hash: &str, bytes: &[u8]) -> Result<(), RunError> {
        keep_version(&self.dir, kind, hash, bytes)
    }

    /// The content kept by [`Checkpoint::keep`] under `hash`, if any.
    pub fn kept(&self, kind: &str, hash: &str) -> Result<Option<Vec<u8>>, RunError> {
        let path = self.kept_path(kind, hash)?;
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(io_error(&path, "read")(source)),
        }
    }

    fn kept_path(&self, kind: &str, hash: &str) -> Result<PathBuf, RunError> {
        kept_path(&self.dir, kind, hash)
    }

    /// The sinks the pipeline had when it last started (`None` before the first start).
    pub fn known_sinks(&self) -> Result<Option<Vec<String>>, RunError> {
        read_json(&self.dir.join("sinks.json"))
    }

    /// Records the pipeline's current sinks.
    pub fn write_known_sinks(&self, sinks: &[String]) -> Result<(), RunError> {
        let json = serde_json::to_vec(sinks).expect("names serialize");
        write_atomically(&self.dir.join("sinks.json"), &json)
    }

    /// Keeps `schema`, the source schema validated at the first start, unless
    /// one is kept already: a source whose schema is inferred (Parquet
    /// landing files) is checked against the same schema at every later
    /// start (see [`kept_source_schema`]).
    pub fn keep_source_schema(&self, schema: &arrow::datatypes::Schema) -> Result<(), RunError> {
        let path = source_schema_path(&self.dir);
        if path.exists() {
            return Ok(());
        }
        let json = serde_json::to_vec(schema).expect("Arrow schemas serialize");
        write_atomically(&path, &json)
    }

    /// Removes plans and snapshots older than the last few epochs before `committed`.
    pub fn prune(&self, committed: u64) {
        let Some(horizon) = committed.checked_sub(KEEP_EPOCHS) else {
            return;
        };
        let old = |dir: PathBuf, strip: fn(&str) -> Option<&str>| {
            if let Ok(entries) = fs::read_dir(&dir) {
                for entry in entries.filter_map(Result::ok) {
                    let name = entry.file_name();
                    let Some(epoch) = name
                        .to_str()
                        .and_then(strip)
                        .and_then(|n| n.parse::<u64>().ok())
                    else {
                        continue;
                    };
                    if epoch < horizon {
                        let path = entry.path();
                        let _ = if path.is_dir() {
                            fs::remove_dir_all(&path)
                        } else {
                            fs::remove_file(&path)
                        };
                    }
                }
            }
        };
        old(self.dir.join("epochs"), |n| n.strip_suffix(".json"));
        old(self.dir.join("state"), |n| Some(n));
    }
}

fn source_schema_path(dir: &Path) -> PathBuf {
    dir.join("source-schema.json")
}

/// The source schema kept in the checkpoint directory `dir` of a pipeline
/// (read without taking its lock, for validation); `None` before its first
/// start.
pub fn kept_source_schema(dir: &Path) -> Result<Option<arrow::datatypes::Schema>, RunError> {
    read_json(&source_schema_path(dir))
}

/// Reads a JSON checkpoint file; `None` when it does not exist.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Option<T>, RunError> {
    match fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| RunError::CorruptCheckpoint {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(io_error(path, "read")(source)),
    }
}

/// [`Checkpoint::keep`] for the checkpoint directory `dir` of a running
/// pipeline (the admin API keeps a swapped-in component before the cut-over).
pub fn keep_version(dir: &Path, kind: &str, hash: &str, bytes: &[u8]) -> Result<(), RunError> {
    let path = kept_path(dir, kind, hash)?;
    if path.exists() {
        return Ok(());
    }
    let versions = dir.join("versions");
    fs::create_dir_all(&versions).map_err(io_error(&versions, "create"))?;
    write_atomically(&path, bytes)
}

/// `versions/<hash>.<kind>`; the hash comes from plan files, so it must be hex.
fn kept_path(dir: &Path, kind: &str, hash: &str) -> Result<PathBuf, RunError> {
    if hash.is_empty() || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RunError::CorruptCheckpoint {
            path: dir.to_path_buf(),
            reason: format!("`{hash}` is not a content hash"),
        });
    }
    Ok(dir.join("versions").join(format!("{hash}.{kind}")))
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the new file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    // A name of its own per write, so two threads writing the same file
    // (the admin API and the epoch loop) never share a temporary.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let write = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.{write}.tmp", std::process::id()));
    let temporary = path.with_file_name(name);
    let mut file = File::create(&temporary).map_err(io_error(&temporary, "create"))?;
    file.write_all(bytes)
        .map_err(io_error(&temporary, "write"))?;
    file.sync_all().map_err(io_error(&temporary, "sync"))?;
    drop(file);
    fs::rename(&temporary, path).map_err(io_error(path, "rename"))?;
    if let Some(parent) = path.parent()
        && let Ok(dir) = File::open(parent)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::epoch::SourceRange;

    fn plan(epoch: u64) -> EpochPlan {
        EpochPlan {
            pipeline: "p".into(),
            epoch,
            source: SourceRange::Delta {
                table: "/t".into(),
                first: epoch,
                last: epoch,
            },
            clock_nanos: epoch,
            stages: Vec::new(),
            lookups: Vec::new(),
            quarantine: None,
        }
    }

    #[test]
    fn plans_and_state_survive_reopening_and_old_ones_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        {
            let checkpoint = Checkpoint::open(dir.path()).unwrap();
            for epoch in 1..=9 {
                checkpoint.write_plan(&plan(epoch)).unwrap();
                checkpoint
                    .write_state(epoch, &[("s.arrow".into(), vec![epoch as u8])])
                    .unwrap();
            }
            checkpoint.prune(9);
        }
        let checkpoint = Checkpoint::open(dir.path()).unwrap();
        assert_eq!(checkpoint.latest_planned().unwrap(), Some(9));
        assert_eq!(checkpoint.plan(9).unwrap(), Some(plan(9)));
        assert_eq!(checkpoint.plan(1).unwrap(), None, "pruned");
        assert_eq!(checkpoint.latest_state(7).unwrap(), Some(7));
        assert_eq!(checkpoint.read_state(7, "s.arrow").unwrap(), Some(vec![7]));
    }

    #[test]
    fn a_second_process_cannot_open_a_locked_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let _held = Checkpoint::open(dir.path()).unwrap();
        match Checkpoint::open(dir.path()) {
            Err(RunError::Locked { .. }) => {}
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("the lock was taken twice"),
        }
    }

    #[test]
    fn a_state_snapshot_without_its_completion_marker_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = Checkpoint::open(dir.path()).unwrap();
        checkpoint.write_state(3, &[]).unwrap();
        fs::create_dir_all(checkpoint.state_dir(4)).unwrap();
        assert_eq!(checkpoint.latest_state(10).unwrap(), Some(3));
    }
}
