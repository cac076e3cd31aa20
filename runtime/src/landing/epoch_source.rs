//! A landing directory as an epoch [`Source`]. An epoch is a set of files
//! (ready ones, oldest first, until the batch policy's record or byte limit
//! is reached), recorded with size and modification time; a replay reads
//! exactly those files again and refuses if one changed. The set of
//! processed names still in the directory travels in every plan, so a
//! restart (even with the checkpoint directory gone: the plan is also in the
//! sinks' commits) never reads a file twice.
//!
//! A JSON-lines or Parquet file holding more records than an epoch may
//! (`batch.max_records`) is split: the epoch records the part it read (the
//! records it skipped and took), and the next epoch continues that file
//! before any other. CSV files are always read whole: whether their first
//! line is a header is the parser's business, so a later part could not be
//! read without it.

use super::LandingError;
use super::read::{FileBatch, Format, Part};
use super::scan::{self, Listed, Stability};
use crate::connector::{Fetched, Source, SourceRows};
use crate::delta::dead_letters::Origin;
use crate::pipeline::spec::BatchPolicy;
use crate::run::RunError;
use crate::run::epoch::SourceRange;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, SchemaRef};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// The source kind recorded in dead letters.
pub const KIND: &str = "files";

/// One file of an epoch, as planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandedFile {
    /// Name in the landing directory.
    pub name: String,
    /// Size in bytes when planned.
    pub size: u64,
    /// Modification time when planned, ns since the Unix epoch.
    pub modified_nanos: i64,
    /// Records of this epoch's part of it.
    pub records: u64,
    /// Records of the file read by earlier epochs (a file holding more than
    /// `batch.max_records` is split across epochs; see [`LandedFile::next_part`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skip: u64,
    /// Whether this part reaches the end of the file (whole files always do;
    /// plans written before files were split have no such key).
    #[serde(default = "whole", skip_serializing_if = "Clone::clone")]
    pub ends: bool,
}

impl LandedFile {
    /// A whole file as listed, before it is read.
    pub fn listed(name: String, size: u64, modified_nanos: i64) -> Self {
        LandedFile {
            name,
            size,
            modified_nanos,
            records: 0,
            skip: 0,
            ends: true,
        }
    }

    /// Where the part after this one starts: `Some(records read so far)`
    /// when this part does not end the file.
    pub fn next_part(&self) -> Option<u64> {
        (!self.ends).then(|| self.skip + self.records)
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn whole() -> bool {
    true
}

/// What happens to a file once every sink holds its epoch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AfterCommit {
    /// Leave it (its name stays in every plan while it is there).
    #[default]
    Keep,
    /// Delete it.
    Delete,
    /// Move it into this directory.
    Move(PathBuf),
}

/// What `[pipeline.source.files]` resolves to.
#[derive(Debug, Clone)]
pub struct LandingSpec {
    /// The landing directory.
    pub dir: PathBuf,
    /// How files are cut into records.
    pub format: Format,
    /// Which names are read.
    pub pattern: glob::Pattern,
    /// How long size and modification time must be unchanged.
    pub stable_for: Duration,
    /// How often to look for new files while streaming.
    pub poll_interval: Duration,
    /// What happens to processed files.
    pub after_commit: AfterCommit,
    /// Parquet: the file whose schema landed files must have (else the
    /// directory's first Parquet file).
    pub schema_from: Option<PathBuf>,
}

/// A pipeline's landing-zone source.
pub struct LandingSource {
    pipeline: String,
    spec: LandingSpec,
    /// The schema validated at start (see [`super::source_schema`]).
    schema: SchemaRef,
    /// Names read by committed (or replayed) epochs and still in the directory.
    processed: BTreeSet<String>,
    /// The last part read of a file not read to its end: the next epoch
    /// starts with the rest of it.
    unfinished: Option<LandedFile>,
    stability: Stability,
    /// With `--once`: the names present at start; nothing else is read.
    until: Option<BTreeSet<String>>,
}

impl LandingSource {
    /// Opens the directory, positioned after `resume` (the last epoch's
    /// range); batches have `schema`, the source schema validated at start.
    pub fn open(
        pipeline: &str,
        spec: LandingSpec,
        schema: SchemaRef,
        resume: Option<&SourceRange>,
        once: bool,
    ) -> Result<Self, RunError> {
        let mut processed = BTreeSet::new();
        let mut unfinished = None;
        if let Some(SourceRange::Files {
            files,
            processed: before,
            ..
        }) = resume
        {
            processed.extend(before.iter().cloned());
            unfinished = note_read(&mut processed, files);
        }
        let until = if once {
            let listed = scan::list(&spec.dir, &spec.pattern).map_err(failed(pipeline))?;
            Some(listed.into_iter().map(|f| f.name).collect())
        } else {
            None
        };
        Ok(LandingSource {
            pipeline: pipeline.to_string(),
            spec,
            schema,
            processed,
            unfinished,
            stability: Stability::default(),
            until,
        })
    }

    fn range(&self, files: Vec<LandedFile>) -> SourceRange {
        SourceRange::Files {
            dir: self.spec.dir.display().to_string(),
            files,
            processed: self.processed.iter().cloned().collect(),
        }
    }

    /// The next part of the file `part` was read from, as `listed` now: it
    /// must still be there, unchanged.
    fn continuation(
        &self,
        part: &LandedFile,
        listed: Option<Listed>,
    ) -> Result<LandedFile, RunError> {
        let path = self.spec.dir.join(&part.name);
        let Some(now) = listed else {
            return Err(failed(&self.pipeline)(LandingError::Missing {
                file: path,
                moved_to: None,
            }));
        };
        if (now.size, now.modified_nanos) != (part.size, part.modified_nanos) {
            return Err(failed(&self.pipeline)(LandingError::Changed {
                file: path,
                recorded_size: part.size,
                recorded_modified: part.modified_nanos,
                size: now.size,
                modified: now.modified_nanos,
            }));
        }
        Ok(LandedFile {
            skip: part.skip + part.records,
            ..LandedFile::listed(now.name, now.size, now.modified_nanos)
        })
    }

    /// Where a planned file is now: in the directory, or where it was moved.
    fn locate(&self, name: &str) -> Option<PathBuf> {
        let here = self.spec.dir.join(name);
        if here.exists() {
            return Some(here);
        }
        match &self.spec.after_commit {
            AfterCommit::Move(to) if to.join(name).exists() => Some(to.join(name)),
            _ => None,
        }
    }

    /// [`read_files`] off the async workers. A decoder panic (a corrupt
    /// Parquet file can cause one) is an error naming the files, never a
    /// crash of the host.
    async fn read_blocking(
        &self,
        files: Vec<LandedFile>,
        paths: Vec<PathBuf>,
        verify: bool,
        policy: Option<BatchPolicy>,
    ) -> Result<(Vec<LandedFile>, RecordBatch), RunError> {
        let (format, schema) = (self.spec.format, self.schema.clone());
        let names = files
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let first = paths.first().cloned().unwrap_or_default();
        tokio::task::spawn_blocking(move || {
            read_files(files, &paths, (format, &schema), verify, policy.as_ref())
        })
        .await
        .unwrap_or_else(|_| {
            Err(LandingError::Parquet {
                file: first,
                reason: format!("the decoder panicked on one of the files {names}"),
            })
        })
        .map_err(failed(&self.pipeline))
    }

    /// Moves or deletes the files of an acknowledged epoch that are still
    /// exactly as read (same size and modification time: a file since
    /// replaced under the same name is left alone), and forgets processed
    /// names no longer in the directory.
    fn clean_up(&mut self, files: &[LandedFile]) -> Result<(), LandingError> {
        for file in files {
            let path = self.spec.dir.join(&file.name);
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if (meta.len(), scan::modified_nanos(&meta)) != (file.size, file.modified_nanos) {
                continue;
            }
            match &self.spec.after_commit {
                AfterCommit::Keep => continue,
                AfterCommit::Delete => {
                    std::fs::remove_file(&path).map_err(|source| LandingError::AfterCommit {
                        file: path.clone(),
                        action: "delete",
                        source,
                    })?
                }
                AfterCommit::Move(to) => {
                    let target = to.join(&file.name);
                    if target.exists() {
                        return Err(LandingError::MoveTargetExists { file: path, target });
                    }
                    std::fs::create_dir_all(to)
                        .and_then(|()| std::fs::rename(&path, &target))
                        .map_err(|source| LandingError::AfterCommit {
                            file: path.clone(),
                            action: "move",
                            source,
                        })?
                }
            }
        }
        let dir = self.spec.dir.clone();
        self.processed.retain(|name| dir.join(name).exists());
        Ok(())
    }
}

fn failed(pipeline: &str) -> impl Fn(LandingError) -> RunError + '_ {
    move |source| RunError::Connector {
        pipeline: pipeline.to_string(),
        kind: KIND,
        source: Box::new(source),
    }
}

/// Records an epoch's `files` as read: files read to their end join
/// `processed`; returns the part of a file that was not (it is the last).
fn note_read(processed: &mut BTreeSet<String>, files: &[LandedFile]) -> Option<LandedFile> {
    processed.extend(files.iter().filter(|f| f.ends).map(|f| f.name.clone()));
    files.iter().find(|f| !f.ends).cloned()
}

/// Lists the landing directory off the async workers (a directory of many
/// thousands of files takes a while).
async fn list_blocking(spec: &LandingSpec) -> Result<Vec<Listed>, LandingError> {
    let (dir, pattern) = (spec.dir.clone(), spec.pattern.clone());
    tokio::task::spawn_blocking(move || scan::list(&dir, &pattern))
        .await
        .expect("listing a directory does not panic")
}

/// The largest file (and epoch) the source reads: records travel in Arrow
/// arrays with 32-bit offsets.
pub const MAX_EPOCH_BYTES: u64 = 1 << 30;

/// Reads `files` (from `paths`, in order) into one batch. With `verify`
/// (a replay) every file must be exactly as planned, and each planned part
/// is read again. Otherwise a file whose size or modification time differs
/// from its listing, or changes while it is read, is left for a later epoch
/// (it is still being written; the rest of a split file must not change, and
/// is an error), and reading stops at `policy`'s record limit (splitting a
/// JSON-lines or Parquet file there) or before a file that would take the
/// epoch past its byte limit. Returns the files (parts) read.
fn read_files(
    files: Vec<LandedFile>,
    paths: &[PathBuf],
    (format, schema): (Format, &SchemaRef),
    verify: bool,
    policy: Option<&BatchPolicy>,
) -> Result<(Vec<LandedFile>, RecordBatch), LandingError> {
    use std::io::Read;
    let mut records = FileBatch::new(format, schema);
    let mut total_bytes = 0u64;
    let mut taken = Vec::new();
    for (mut file, path) in files.into_iter().zip(paths) {
        let read_error = |source| LandingError::Read {
            file: path.clone(),
            source,
        };
        let mut handle = std::fs::File::open(path).map_err(read_error)?;
        let before = handle.metadata().map_err(read_error)?;
        if before.len() > MAX_EPOCH_BYTES {
            return Err(LandingError::TooLarge {
                file: path.clone(),
                size: before.len(),
            });
        }
        // An epoch that holds something stops before a file that would take
        // it past the byte limit (as a Kafka fetch returns its first batch
        // whatever its size, the first file is always read).
        let limit = policy.map_or(MAX_EPOCH_BYTES, |p| {
            (p.max_bytes as u64).min(MAX_EPOCH_BYTES)
        });
        if !verify && !taken.is_empty() && total_bytes + before.len() > limit {
            break;
        }
        let mut bytes = Vec::with_capacity(before.len() as usize);
        handle.read_to_end(&mut bytes).map_err(read_error)?;
        let after = handle.metadata().map_err(read_error)?;
        let (size, modified) = (bytes.len() as u64, scan::modified_nanos(&after));
        let steady = before.len() == size && scan::modified_nanos(&before) == modified;
        if !steady || (size, modified) != (file.size, file.modified_nanos) {
            if !verify && file.skip == 0 {
                tracing::debug!(file = %path.display(), "file changed since it was listed; left for a later epoch");
                continue;
            }
            return Err(LandingError::Changed {
                file: path.clone(),
                recorded_size: file.size,
                recorded_modified: file.modified_nanos,
                size,
                modified,
            });
        }
        let take = match (verify, policy) {
            (true, _) => file.records,
            // CSV files are read whole (see the module docs).
            (false, Some(policy)) if format != Format::Csv => {
                (policy.max_records as u64).saturating_sub(records.rows() as u64)
            }
            (false, _) => u64::MAX,
        };
        let part = Part {
            skip: file.skip,
            take,
        };
        let total = records.append(&file.name, path, bytes, part)?;
        // Earlier parts of the file read more records than it holds now, or
        // a replayed part comes out another size.
        let recut = || LandingError::Recut {
            file: path.clone(),
            start: file.skip,
            end: file.skip + file.records,
            ended: file.ends,
            now: total,
        };
        let read = take.min(total.checked_sub(file.skip).ok_or_else(recut)?);
        let ends = file.skip + read == total;
        if verify && (read, ends) != (file.records, file.ends) {
            return Err(recut());
        }
        file.records = read;
        file.ends = ends;
        taken.push(file);
        total_bytes += size;
        if !ends || policy.is_some_and(|p| records.rows() >= p.max_records) {
            break;
        }
    }
    let batch = records.finish().map_err(|e| LandingError::Parquet {
        file: paths.first().cloned().unwrap_or_default(),
        reason: format!(
            "with the epoch's other files ({}), more than one Arrow batch holds ({e}){}",
            taken
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            if verify {
                ""
            } else {
                "; lower `batch.max_bytes` so fewer files make an epoch"
            }
        ),
    })?;
    Ok((taken, batch))
}

#[async_trait::async_trait]
impl Source for LandingSource {
    async fn next(
        &mut self,
        policy: &BatchPolicy,
        once: bool,
        stop: &AtomicBool,
    ) -> Result<Option<Fetched>, RunError> {
        loop {
            if stop.load(Ordering::SeqCst) {
                return Ok(None);
            }
            let listed = list_blocking(&self.spec)
                .await
                .map_err(failed(&self.pipeline))?;
            let (mut fresh, rest): (Vec<Listed>, Vec<Listed>) = listed
                .into_iter()
                .filter(|f| !self.processed.contains(&f.name))
                .filter(|f| self.until.as_ref().is_none_or(|u| u.contains(&f.name)))
                .partition(|f| self.unfinished.as_ref().is_none_or(|u| u.name != f.name));
            // The rest of a file split across epochs comes first, as it was.
            let continued = match &self.unfinished {
                Some(part) => Some(self.continuation(part, rest.into_iter().next())?),
                None => None,
            };
            if fresh.is_empty() && continued.is_none() && once {
                return Ok(None);
            }
            fresh = self.stability.ready(
                fresh,
                self.spec.stable_for,
                Instant::now(),
                SystemTime::now(),
            );
            if fresh.is_empty() && continued.is_none() {
                let nap = self
                    .spec
                    .poll_interval
                    .min(self.spec.stable_for.max(Duration::from_millis(10)));
                tokio::time::sleep(nap).await;
                continue;
            }
            let files: Vec<LandedFile> = continued
                .into_iter()
                .chain(
                    fresh
                        .into_iter()
                        .map(|f| LandedFile::listed(f.name, f.size, f.modified_nanos)),
                )
                .collect();
            let paths: Vec<PathBuf> = files.iter().map(|f| self.spec.dir.join(&f.name)).collect();
            let (files, batch) = self
                .read_blocking(files, paths, false, Some(*policy))
                .await?;
            let range = self.range(files);
            return Ok(Some(Fetched {
                rows: Box::new(LandedRows::new(batch.clone(), self.spec.format)),
                batch,
                range,
            }));
        }
    }

    async fn replay(&mut self, range: &SourceRange) -> Result<Fetched, RunError> {
        let SourceRange::Files { files, .. } = range else {
            return Err(RunError::WrongSourceKind {
                pipeline: self.pipeline.clone(),
                expected: KIND,
            });
        };
        let mut paths = Vec::new();
        for file in files {
            let path = self.locate(&file.name).ok_or_else(|| {
                failed(&self.pipeline)(LandingError::Missing {
                    file: self.spec.dir.join(&file.name),
                    moved_to: match &self.spec.after_commit {
                        AfterCommit::Move(to) => Some(to.clone()),
                        _ => None,
                    },
                })
            })?;
            paths.push(path);
        }
        let (_, batch) = self.read_blocking(files.clone(), paths, true, None).await?;
        Ok(Fetched {
            rows: Box::new(LandedRows::new(batch.clone(), self.spec.format)),
            batch,
            range: range.clone(),
        })
    }

    async fn acknowledge(&mut self, range: &SourceRange) -> Result<(), RunError> {
        let SourceRange::Files { files, .. } = range else {
            return Ok(());
        };
        self.unfinished = note_read(&mut self.processed, files);
        let finished: Vec<LandedFile> = files.iter().filter(|f| f.ends).cloned().collect();
        tokio::task::block_in_place(|| self.clean_up(&finished)).map_err(failed(&self.pipeline))
    }

    async fn lag(&mut self) -> Option<i64> {
        let listed = list_blocking(&self.spec).await.ok()?;
        let waiting = listed
            .iter()
            .filter(|f| !self.processed.contains(&f.name))
            .count();
        i64::try_from(waiting).ok()
    }
}

/// Landed rows carry their file name and line (JSON lines, CSV) or row
/// (Parquet).
struct LandedRows {
    batch: RecordBatch,
    format: Format,
}

impl LandedRows {
    fn new(batch: RecordBatch, format: Format) -> Self {
        LandedRows { batch, format }
    }

    /// The columns of the file name and of the line or row, and the
    /// position key of the latter.
    fn columns(&self) -> (&'static str, &'static str, &'static str) {
        match self.format {
            Format::Parquet => (
                super::parquet::FILE_COLUMN,
                super::parquet::ROW_COLUMN,
                "row",
            ),
            Format::Jsonl | Format::Csv => ("file", "line", "line"),
        }
    }
}

impl SourceRows for LandedRows {
    fn origin(&self, row: usize) -> Origin {
        let (file_column, place_column, place_key) = self.columns();
        let file = self
            .batch
            .column_by_name(file_column)
            .map(|c| c.as_string::<i32>());
        let place = self
            .batch
            .column_by_name(place_column)
            .map(|c| c.as_primitive::<Int64Type>());
        let mut origin = Origin::of(KIND);
        if let Some(file) = file {
            origin = origin.text("file", file.value(row));
        }
        if let Some(place) = place {
            origin = origin.int(place_key, place.value(row));
        }
        origin
    }
    fn raw(&self, row: usize) -> Option<Vec<u8>> {
        if self.format == Format::Parquet {
            // Parquet rows: the row as JSON, `_file` and `_row` included.
            return crate::files::row_json(&self.batch, row);
        }
        let values = self.batch.column_by_name("value")?.as_binary::<i32>();
        values.is_valid(row).then(|| values.value(row).to_vec())
    }
    fn untraced(&self) -> Origin {
        Origin::of(KIND)
    }
}
