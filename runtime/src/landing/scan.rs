//! Which files of a landing directory are ready: matching the glob, not named
//! as in-progress, and finished — size and modification time unchanged for
//! `stable_for` (a file whose modification time is already that old counts as
//! finished at first sight). Writers that cannot write-then-rename should
//! write under a temporary name (see [`is_temporary`]) and rename when done.

use super::LandingError;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One file as listed: name relative to the directory, size, modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// File name (no directory part).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the Unix epoch.
    pub modified_nanos: i64,
}

/// Names writers use for files still being written; never read: hidden and
/// underscore files (as Spark and Hadoop skip them) and the usual
/// in-progress suffixes.
pub fn is_temporary(name: &str) -> bool {
    const SUFFIXES: [&str; 6] = [
        ".tmp",
        ".temp",
        ".partial",
        ".part",
        ".inprogress",
        ".crdownload",
    ];
    let lower = name.to_ascii_lowercase();
    name.starts_with('.') || name.starts_with('_') || SUFFIXES.iter().any(|s| lower.ends_with(s))
}

/// Lists the regular files of `dir` whose names match `pattern` and are not
/// temporary, sorted by name.
pub fn list(dir: &Path, pattern: &glob::Pattern) -> Result<Vec<Listed>, LandingError> {
    let entries = std::fs::read_dir(dir).map_err(|source| LandingError::List {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut listed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| LandingError::List {
            dir: dir.to_path_buf(),
            source,
        })?;
        let Ok(name) = entry.file_name().into_string() else {
            continue; // not UTF-8: cannot be named in a plan
        };
        if is_temporary(&name) || !pattern.matches(&name) {
            continue;
        }
        let Ok(meta) = entry.metadata() else {
            continue; // vanished between listing and stat
        };
        if !meta.is_file() {
            continue;
        }
        listed.push(Listed {
            name,
            size: meta.len(),
            modified_nanos: modified_nanos(&meta),
        });
    }
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(listed)
}

/// A file's modification time in ns since the Unix epoch (0 if unknown).
pub fn modified_nanos(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
        .unwrap_or(0)
}

/// Remembers when each file was first seen with its current size and time.
#[derive(Debug, Default)]
pub struct Stability {
    seen: HashMap<String, (u64, i64, Instant)>,
}

impl Stability {
    /// Of `listed`, the files unchanged for `stable_for` as of `now` (wall
    /// clock `wall`), in (modification time, name) order. Forgets files no
    /// longer listed.
    pub fn ready(
        &mut self,
        listed: Vec<Listed>,
        stable_for: Duration,
        now: Instant,
        wall: SystemTime,
    ) -> Vec<Listed> {
        let wall_nanos = wall
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_nanos()).ok())
            .unwrap_or(i64::MAX);
        let stable_nanos = i64::try_from(stable_for.as_nanos()).unwrap_or(i64::MAX);
        self.seen
            .retain(|name, _| listed.iter().any(|l| &l.name == name));
        let mut ready: Vec<Listed> = listed
            .into_iter()
            .filter(|file| {
                let entry = self.seen.entry(file.name.clone()).or_insert((
                    file.size,
                    file.modified_nanos,
                    now,
                ));
                if (entry.0, entry.1) != (file.size, file.modified_nanos) {
                    *entry = (file.size, file.modified_nanos, now);
                }
                let old_enough = wall_nanos.saturating_sub(file.modified_nanos) >= stable_nanos;
                old_enough || now.duration_since(entry.2) >= stable_for
            })
            .collect();
        ready.sort_by(|a, b| (a.modified_nanos, &a.name).cmp(&(b.modified_nanos, &b.name)));
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_skipped() {
        for name in [
            ".orders.jsonl",
            "_SUCCESS",
            "a.jsonl.tmp",
            "a.CSV.PART",
            "b.inprogress",
        ] {
            assert!(is_temporary(name), "{name}");
        }
        for name in ["orders-1.jsonl", "a.csv", "part-0001.parquet"] {
            assert!(!is_temporary(name), "{name}");
        }
    }

    fn file(name: &str, size: u64, modified_nanos: i64) -> Listed {
        Listed {
            name: name.into(),
            size,
            modified_nanos,
        }
    }

    #[test]
    fn a_file_is_ready_once_unchanged_for_the_stable_time() {
        let stable = Duration::from_millis(500);
        let wall = UNIX_EPOCH + Duration::from_secs(1_000);
        let fresh = 1_000_000_000_000 - 100_000_000; // modified 100 ms before `wall`
        let t0 = Instant::now();
        let mut stability = Stability::default();
        assert!(
            stability
                .ready(vec![file("a", 10, fresh)], stable, t0, wall)
                .is_empty()
        );
        // Still growing: the clock restarts.
        let t1 = t0 + Duration::from_millis(400);
        assert!(
            stability
                .ready(vec![file("a", 20, fresh)], stable, t1, wall)
                .is_empty()
        );
        let t2 = t1 + Duration::from_millis(499);
        assert!(
            stability
                .ready(vec![file("a", 20, fresh)], stable, t2, wall)
                .is_empty()
        );
        let t3 = t1 + Duration::from_millis(500);
        assert_eq!(
            stability
                .ready(vec![file("a", 20, fresh)], stable, t3, wall)
                .len(),
            1
        );
    }

    #[test]
    fn old_files_are_ready_at_first_sight_in_time_then_name_order() {
        let stable = Duration::from_secs(1);
        let wall = UNIX_EPOCH + Duration::from_secs(1_000);
        let mut stability = Stability::default();
        let ready = stability.ready(
            vec![file("b", 1, 5), file("a", 1, 7), file("c", 1, 5)],
            stable,
            Instant::now(),
            wall,
        );
        let names: Vec<_> = ready.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["b", "c", "a"]);
    }
}
