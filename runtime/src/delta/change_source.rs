//! The Change Data Feed of one or more Delta tables as an epoch [`Source`]
//! (`[pipeline.source.changes]`). Each epoch records, per table, the
//! half-open version range `first..end` it read (a table with nothing new
//! included, so its position is kept); a replay reads exactly those versions
//! again. Versions are read with [`changes::read_version`] (the protocol's
//! rule: `cdc` files when a version has them, else its added and removed
//! files), so a replay returns the same rows in the same order.
//!
//! An epoch's rows are the tables' rows in table-name order, each table's
//! in version order. Tables are read one version at a time in turns (an
//! epoch goes on with the table after the last one read), so a busy table
//! cannot starve a quiet one, until the batch policy's record or
//! byte limit is reached or every table is caught up. Under `--once` with
//! writers of the tables in the same run, a short epoch waits for them as
//! the Delta source does (see `delta/epoch_source.rs`).
//!
//! Rows carry the kept columns, then `_table` (the table's name in the
//! pipeline file), `_change_type` (`insert`, `update_postimage`, `delete`;
//! `update_preimage` only with `pre_images = true`), `_commit_version` and
//! `_commit_timestamp`. A `start = "snapshot"` source reads every row of
//! each table's latest version at first start as `insert`s stamped with that
//! version, then the changes of later versions.

use super::epoch_source::{Bound, failed};
use super::{DeltaError, changes, table};
use crate::connector::{Fetched, Reach, Source, SourceRows};
use crate::delta::dead_letters::Origin;
use crate::pipeline::model::Changes;
use crate::pipeline::spec::{BatchPolicy, ChangesStart};
use crate::run::RunError;
use crate::run::epoch::{SourceRange, TableVersions};
use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::DeltaTable;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The source kind recorded in dead letters.
pub const KIND: &str = "delta_changes";
/// The column naming the table a change comes from.
pub const TABLE: &str = "_table";
/// The columns the source adds after the kept ones, in order.
pub const EXTRA_COLUMNS: [&str; 4] = [
    TABLE,
    changes::CHANGE_TYPE,
    changes::COMMIT_VERSION,
    changes::COMMIT_TIMESTAMP,
];

/// The schema of the source's rows: `kept` (table columns), then
/// [`EXTRA_COLUMNS`].
pub fn output_schema(kept: &[Field]) -> SchemaRef {
    let with_changes = changes::change_schema(&Schema::new(kept.to_vec()));
    let mut fields: Vec<Field> = with_changes
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.insert(kept.len(), Field::new(TABLE, DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

/// The first version to read from a table when the sinks hold no position
/// for it, and whether it is read as a snapshot.
pub fn start_version(
    path: &Path,
    start: ChangesStart,
    latest: u64,
) -> Result<(u64, bool), DeltaError> {
    Ok(match start {
        ChangesStart::Earliest => (0, false),
        ChangesStart::Latest => (latest + 1, false),
        ChangesStart::Version(v) => (v, false),
        ChangesStart::Timestamp(micros) => (
            changes::first_version_at_or_after(path, micros, latest)?,
            false,
        ),
        ChangesStart::Snapshot => (latest, true),
    })
}

/// One table of the source and what has been read of it.
struct Tracked {
    name: String,
    path: PathBuf,
    table: Box<DeltaTable>,
    /// The first version of the next epoch.
    first: u64,
    /// Whether the next epoch reads `first` as a snapshot.
    snapshot: bool,
    /// The first version not yet read into `pending`.
    read_to: u64,
    /// Rows read for the next epoch, per version, in version order.
    pending: Vec<(u64, RecordBatch)>,
}

impl Tracked {
    fn range(&self) -> TableVersions {
        TableVersions {
            name: self.name.clone(),
            table: self.path.display().to_string(),
            first: self.first,
            end: self.read_to,
            // Still pending when the range is empty.
            snapshot: self.snapshot,
            rows: self.pending.iter().map(|(_, b)| b.num_rows() as u64).sum(),
        }
    }
}

/// A pipeline's change source.
pub struct ChangeSource {
    pipeline: String,
    tables: Vec<Tracked>,
    /// The table columns kept, as read from each table.
    kept: SchemaRef,
    /// The rows' schema.
    output: SchemaRef,
    pre_images: bool,
    /// Where this run stops, per table in table order.
    bound: Bound<Vec<u64>>,
    poll_interval: Duration,
    /// The table whose turn it is to read a version.
    turn: usize,
}

impl ChangeSource {
    /// Opens every table, positioned after `resume` (the last committed
    /// epoch's range) or at `spec.start`, and checks that the first version
    /// to read can be read (Change Data Feed on, no column mapping).
    /// `output` is the validated schema of the source's rows.
    pub async fn open(
        pipeline: &str,
        spec: &Changes,
        output: SchemaRef,
        resume: Option<&SourceRange>,
        reach: &Reach,
    ) -> Result<Self, RunError> {
        let fail = failed(pipeline);
        let writers_finished = match reach {
            Reach::AvailableNow(writers) => writers.all_finished(),
            Reach::Unbounded => false,
        };
        let recorded = match resume {
            Some(SourceRange::Changes { tables }) => tables.as_slice(),
            _ => &[],
        };
        let mut tables = Vec::new();
        let mut latest_versions = Vec::new();
        let mut named: Vec<&(String, PathBuf)> = spec.tables.iter().collect();
        named.sort();
        for (name, path) in named {
            let mut opened = table::open_existing(path).await.map_err(&fail)?;
            let latest = super::source::latest_version(path, &mut opened)
                .await
                .map_err(&fail)?;
            let (first, snapshot) = match recorded.iter().find(|t| &t.name == name) {
                // A snapshot the last epoch did not get to is still to read.
                Some(t) => (t.end, t.snapshot && t.end == t.first),
                None => start_version(path, spec.start, latest).map_err(&fail)?,
            };
            changes::check_readable(path, first.min(latest))
                .await
                .map_err(&fail)?;
            latest_versions.push(latest);
            tables.push(Tracked {
                name: name.clone(),
                path: path.clone(),
                table: Box::new(opened),
                first,
                snapshot,
                read_to: first,
                pending: Vec::new(),
            });
        }
        let kept: Vec<Field> = output
            .fields()
            .iter()
            .filter(|f| !EXTRA_COLUMNS.contains(&f.name().as_str()))
            .map(|f| f.as_ref().clone())
            .collect();
        Ok(ChangeSource {
            pipeline: pipeline.to_string(),
            tables,
            kept: Arc::new(Schema::new(kept)),
            output,
            pre_images: spec.pre_images,
            bound: match reach {
                Reach::Unbounded => Bound::None,
                Reach::AvailableNow(_) if writers_finished => Bound::Until(latest_versions),
                Reach::AvailableNow(writers) => Bound::AfterWriters(writers.clone()),
            },
            poll_interval: spec.poll_interval,
            turn: 0,
        })
    }

    /// Rows and bytes read for the next epoch.
    fn pending_size(&self) -> (usize, usize) {
        self.tables
            .iter()
            .flat_map(|t| &t.pending)
            .fold((0, 0), |(rows, bytes), (_, b)| {
                (rows + b.num_rows(), bytes + b.get_array_memory_size())
            })
    }

    fn full(&self, policy: &BatchPolicy) -> bool {
        let (rows, bytes) = self.pending_size();
        rows >= policy.max_records || bytes >= policy.max_bytes
    }

    /// Reads version `version` of table `index` (a snapshot when `snapshot`)
    /// in the source's row shape.
    async fn read(
        &self,
        index: usize,
        version: u64,
        snapshot: bool,
    ) -> Result<RecordBatch, RunError> {
        let t = &self.tables[index];
        let fail = failed(&self.pipeline);
        let batches = if snapshot {
            changes::read_snapshot(&t.path, version, &self.kept)
                .await
                .map_err(&fail)?
        } else {
            changes::read_version(&t.path, &t.table, version, &self.kept)
                .await
                .map_err(&fail)?
                .ok_or_else(|| {
                    fail(DeltaError::Location {
                        table: t.path.clone(),
                        reason: format!(
                            "version {version} is not in the table's log (removed by log cleanup, \
                             or never written), so its changes cannot be read; start the source \
                             from a later version or from a snapshot"
                        ),
                    })
                })?
        };
        let shaped = batches
            .iter()
            .map(|b| self.shape(&t.name, b))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| {
                fail(DeltaError::Schema {
                    table: t.path.clone(),
                    reason: format!("version {version}: {reason}"),
                })
            })?;
        arrow::compute::concat_batches(&self.output, &shaped).map_err(|e| {
            fail(DeltaError::Schema {
                table: t.path.clone(),
                reason: format!("version {version}: {e}"),
            })
        })
    }

    /// A change batch (kept columns, then the change columns) with `_table`
    /// added and, unless asked for, the pre-images dropped.
    fn shape(&self, name: &str, batch: &RecordBatch) -> Result<RecordBatch, String> {
        let kept = self.kept.fields().len();
        let batch = if self.pre_images {
            batch.clone()
        } else {
            let kinds = batch
                .column(kept)
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or("`_change_type` is not text")?;
            let keep: arrow::array::BooleanArray = kinds
                .iter()
                .map(|k| Some(k != Some("update_preimage")))
                .collect();
            arrow::compute::filter_record_batch(batch, &keep).map_err(|e| e.to_string())?
        };
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        let names: ArrayRef = Arc::new(StringArray::from(vec![name; batch.num_rows()]));
        columns.insert(kept, names);
        RecordBatch::try_new(self.output.clone(), columns).map_err(|e| e.to_string())
    }

    /// The pending rows as one epoch, and the range they cover.
    fn take_pending(&mut self) -> Result<Fetched, RunError> {
        let range = SourceRange::Changes {
            tables: self.tables.iter().map(Tracked::range).collect(),
        };
        let mut read = Vec::new();
        for t in &mut self.tables {
            for (version, batch) in std::mem::take(&mut t.pending) {
                read.push((t.name.clone(), version, batch));
            }
        }
        self.fetched(range, read)
    }

    /// One epoch of `read` (`(table name, version, rows)` in order).
    fn fetched(
        &self,
        range: SourceRange,
        read: Vec<(String, u64, RecordBatch)>,
    ) -> Result<Fetched, RunError> {
        let mut starts = Vec::with_capacity(read.len());
        let mut batches = Vec::with_capacity(read.len());
        let mut rows = 0;
        for (name, version, batch) in read {
            starts.push((rows, name, version));
            rows += batch.num_rows();
            batches.push(batch);
        }
        let batch = arrow::compute::concat_batches(&self.output, &batches).map_err(|e| {
            RunError::Delta {
                pipeline: self.pipeline.clone(),
                source: DeltaError::Schema {
                    table: PathBuf::from(describe_tables(&self.tables)),
                    reason: e.to_string(),
                },
            }
        })?;
        Ok(Fetched {
            rows: Box::new(ChangeRows {
                starts,
                batch: batch.clone(),
            }),
            batch,
            range,
        })
    }

    /// Each table's latest version, refreshed.
    async fn latest(&mut self) -> Result<Vec<u64>, RunError> {
        let mut latest = Vec::with_capacity(self.tables.len());
        for t in &mut self.tables {
            latest.push(
                super::source::latest_version(&t.path, &mut t.table)
                    .await
                    .map_err(failed(&self.pipeline))?,
            );
        }
        Ok(latest)
    }
}

fn describe_tables(tables: &[Tracked]) -> String {
    tables
        .iter()
        .map(|t| t.path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[async_trait::async_trait]
impl Source for ChangeSource {
    async fn next(
        &mut self,
        policy: &BatchPolicy,
        _once: bool,
        stop: &AtomicBool,
    ) -> Result<Option<Fetched>, RunError> {
        loop {
            if stop.load(Ordering::SeqCst) {
                return Ok(None);
            }
            let latest = self.latest().await?;
            let limits: Vec<u64> = match &self.bound {
                Bound::Until(until) => until.iter().zip(&latest).map(|(u, l)| *u.min(l)).collect(),
                _ => latest,
            };
            // One version per table in turn, until full or caught up; the
            // next epoch goes on with the table after the last one read.
            let mut idle = 0;
            while idle < self.tables.len() && !self.full(policy) {
                let index = self.turn;
                self.turn = (self.turn + 1) % self.tables.len();
                let t = &self.tables[index];
                if t.read_to > limits[index] {
                    idle += 1;
                    continue;
                }
                idle = 0;
                let version = t.read_to;
                let snapshot = t.snapshot && version == t.first;
                let batch = self.read(index, version, snapshot).await?;
                let t = &mut self.tables[index];
                // A version without rows only moves the range's end.
                if batch.num_rows() > 0 {
                    t.pending.push((version, batch));
                }
                t.read_to += 1;
            }
            let caught_up = self
                .tables
                .iter()
                .zip(&limits)
                .all(|(t, limit)| t.read_to > *limit);
            let ends =
                self.full(policy) || (caught_up && !matches!(self.bound, Bound::AfterWriters(_)));
            if ends && self.pending_size().0 > 0 {
                return self.take_pending().map(Some);
            }
            if !caught_up {
                continue;
            }
            // Nothing to deliver yet; versions read so far held no rows and
            // are covered by the next epoch's range.
            match &mut self.bound {
                Bound::Until(_) => return Ok(None),
                Bound::None => tokio::time::sleep(self.poll_interval).await,
                Bound::AfterWriters(writers) if writers.all_finished() => {
                    let latest = self.latest().await?;
                    self.bound = Bound::Until(latest);
                }
                Bound::AfterWriters(writers) => {
                    writers.wait_for_change(self.poll_interval).await;
                }
            }
        }
    }

    async fn replay(&mut self, range: &SourceRange) -> Result<Fetched, RunError> {
        let SourceRange::Changes { tables } = range else {
            return Err(RunError::WrongSourceKind {
                pipeline: self.pipeline.clone(),
                expected: KIND,
            });
        };
        let mut read = Vec::new();
        for recorded in tables {
            let Some(index) = self.tables.iter().position(|t| {
                t.name == recorded.name && t.path.display().to_string() == recorded.table
            }) else {
                return Err(failed(&self.pipeline)(DeltaError::Location {
                    table: PathBuf::from(&recorded.table),
                    reason: format!(
                        "the interrupted epoch read table `{}` from here, which the source no longer \
                         names; name it again (same name and directory) to replay the epoch",
                        recorded.name
                    ),
                }));
            };
            for version in recorded.first..recorded.end {
                let snapshot = recorded.snapshot && version == recorded.first;
                let batch = self.read(index, version, snapshot).await?;
                read.push((recorded.name.clone(), version, batch));
            }
        }
        self.fetched(range.clone(), read)
    }

    async fn acknowledge(&mut self, range: &SourceRange) -> Result<(), RunError> {
        if let SourceRange::Changes { tables } = range {
            for recorded in tables {
                if let Some(t) = self.tables.iter_mut().find(|t| t.name == recorded.name) {
                    t.first = recorded.end;
                    t.snapshot = recorded.snapshot && recorded.end == recorded.first;
                    if t.read_to < t.first {
                        // A replayed epoch: nothing read ahead of it is kept.
                        t.read_to = t.first;
                        t.pending.clear();
                    }
                }
            }
        }
        Ok(())
    }

    async fn lag(&mut self) -> Option<i64> {
        let latest = self.latest().await.ok()?;
        let behind: u64 = self
            .tables
            .iter()
            .zip(latest)
            .map(|(t, l)| (l + 1).saturating_sub(t.first))
            .sum();
        i64::try_from(behind).ok()
    }
}

/// Change rows know their table and version; their raw form is the row as JSON.
struct ChangeRows {
    /// (first row index, table name, version), ascending by row.
    starts: Vec<(usize, String, u64)>,
    batch: RecordBatch,
}

impl SourceRows for ChangeRows {
    fn origin(&self, row: usize) -> Origin {
        match self.starts.iter().rev().find(|(start, _, _)| *start <= row) {
            Some((_, table, version)) => Origin::of(KIND)
                .text("table", table.clone())
                .int("version", i64::try_from(*version).unwrap_or(i64::MAX)),
            None => Origin::of(KIND),
        }
    }
    fn raw(&self, row: usize) -> Option<Vec<u8>> {
        crate::files::row_json(&self.batch, row)
    }
    fn untraced(&self) -> Origin {
        Origin::of(KIND)
    }
}

#[cfg(test)]
mod tests;
