//! A Delta table as an epoch [`Source`]: epochs are inclusive version ranges
//! `first..=last`; each delivers the rows those versions added (see
//! [`super::source`]), in version order, so a replay reads the same rows.
//! Versions that added nothing are folded into the next epoch's range.
//!
//! An epoch ends after the version that brings it to the batch policy's
//! record or byte limit, or at the last version there is. Under `--once`
//! with writers still running, "the last version there is" is not known yet,
//! so a short epoch waits for more versions (or for the writers to finish)
//! instead of ending early: epochs then fall exactly where a run after the
//! writers would put them, whatever the timing, and so do the results that
//! depend on them (dedupe's watermark, floating-point sums merged per epoch).

use super::{DeltaError, table};
use crate::connector::{Fetched, Reach, Source, SourceRows, Writers};
use crate::delta::dead_letters::Origin;
use crate::pipeline::spec::{BatchPolicy, DeltaStart};
use crate::run::RunError;
use crate::run::epoch::SourceRange;
use arrow::array::RecordBatch;
use deltalake::DeltaTable;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The source kind recorded in dead letters.
pub const KIND: &str = "delta";

/// Where a Delta source stops: `T` is the last version to read (one per
/// table for a change source).
pub(super) enum Bound<T = u64> {
    /// Streaming: never.
    None,
    /// `--once`: after this version (the latest when it started, or when
    /// the table's writers in this run had finished).
    Until(T),
    /// `--once` on a table pipelines of this run write: after the latest
    /// version once they have all finished.
    AfterWriters(Writers),
}

/// A pipeline's Delta source.
pub struct DeltaEpochSource {
    pipeline: String,
    /// The table directory.
    path: PathBuf,
    /// The open table.
    table: Box<DeltaTable>,
    /// The first version of the next epoch.
    next_version: u64,
    /// The first version not yet read (versions from `next_version` up to
    /// it are in `pending`).
    read_to: u64,
    /// Rows read for the next epoch, not yet delivered.
    pending: Pending,
    /// How far this run reads.
    bound: Bound,
    /// Sleep between looks for new versions.
    poll_interval: Duration,
}

impl DeltaEpochSource {
    /// Opens the table, positioned after `resume` (the last committed epoch's
    /// range) or at `start`.
    pub async fn open(
        pipeline: &str,
        path: &Path,
        start: DeltaStart,
        poll_interval: Duration,
        resume: Option<&SourceRange>,
        reach: &Reach,
    ) -> Result<Self, RunError> {
        let fail = failed(pipeline);
        // Asked before the latest version is read, so a writer finishing
        // in between is caught by the next look, never missed.
        let writers_finished = match reach {
            Reach::AvailableNow(writers) => writers.all_finished(),
            Reach::Unbounded => false,
        };
        let opened = table::open_existing(path).await.map_err(&fail)?;
        let latest = opened.version().unwrap_or(0);
        let next_version = match (resume, start) {
            (Some(SourceRange::Delta { last, .. }), _) => last + 1,
            (_, DeltaStart::Earliest) => 0,
            (_, DeltaStart::Version(v)) => v,
            (_, DeltaStart::Latest) => latest + 1,
        };
        Ok(DeltaEpochSource {
            pipeline: pipeline.to_string(),
            path: path.to_path_buf(),
            table: Box::new(opened),
            next_version,
            read_to: next_version,
            pending: Pending::default(),
            bound: match reach {
                Reach::Unbounded => Bound::None,
                Reach::AvailableNow(_) if writers_finished => Bound::Until(latest),
                Reach::AvailableNow(writers) => Bound::AfterWriters(writers.clone()),
            },
            poll_interval,
        })
    }

    fn rows(&self, batch: &RecordBatch, version_starts: Vec<(usize, u64)>) -> Box<DeltaRows> {
        Box::new(DeltaRows {
            table: self.path.display().to_string(),
            version_starts,
            batch: batch.clone(),
        })
    }
}

/// Turns a table error into the pipeline's run error.
pub(super) fn failed(pipeline: &str) -> impl Fn(DeltaError) -> RunError + '_ {
    move |source| RunError::Delta {
        pipeline: pipeline.to_string(),
        source,
    }
}

#[async_trait::async_trait]
impl Source for DeltaEpochSource {
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
            // Versions are read until one is not there yet (or the bound).
            let mut caught_up = false;
            while !self.pending.full(policy) {
                if matches!(self.bound, Bound::Until(until) if self.read_to > until)
                    || !self.read_pending().await?
                {
                    caught_up = true;
                    break;
                }
                self.read_to += 1;
            }
            let ends = self.pending.full(policy)
                || (caught_up && !matches!(self.bound, Bound::AfterWriters(_)));
            if ends && self.pending.rows > 0 {
                let pending = std::mem::take(&mut self.pending);
                let (batch, version_starts) = pending
                    .finish(&self.path, &self.table)
                    .map_err(failed(&self.pipeline))?;
                return Ok(Some(Fetched {
                    rows: self.rows(&batch, version_starts),
                    batch,
                    range: SourceRange::Delta {
                        table: self.path.display().to_string(),
                        first: self.next_version,
                        last: self.read_to - 1,
                    },
                }));
            }
            if !caught_up {
                continue;
            }
            // Nothing to deliver yet. Versions read so far that held no
            // rows are covered by the next epoch's range; until then a
            // restart simply reads them again.
            match &mut self.bound {
                Bound::Until(_) => return Ok(None),
                Bound::None => tokio::time::sleep(self.poll_interval).await,
                // Finished before the next look at the latest version, so
                // that look sees their last commits.
                Bound::AfterWriters(writers) if writers.all_finished() => {
                    self.bound = Bound::Until(self.latest().await?);
                }
                Bound::AfterWriters(writers) => {
                    writers.wait_for_change(self.poll_interval).await;
                }
            }
        }
    }

    async fn replay(&mut self, range: &SourceRange) -> Result<Fetched, RunError> {
        let SourceRange::Delta { first, last, .. } = range else {
            return Err(RunError::WrongSourceKind {
                pipeline: self.pipeline.clone(),
                expected: KIND,
            });
        };
        let mut pending = Pending::default();
        for version in *first..=*last {
            let read = pending
                .read(&self.path, &mut self.table, version)
                .await
                .map_err(failed(&self.pipeline))?;
            if !read {
                return Err(failed(&self.pipeline)(gone(&self.path, version)));
            }
        }
        let (batch, version_starts) = pending
            .finish(&self.path, &self.table)
            .map_err(failed(&self.pipeline))?;
        Ok(Fetched {
            rows: self.rows(&batch, version_starts),
            batch,
            range: range.clone(),
        })
    }

    async fn acknowledge(&mut self, range: &SourceRange) -> Result<(), RunError> {
        if let SourceRange::Delta { last, .. } = range {
            self.next_version = last + 1;
            if self.read_to < self.next_version {
                // A replayed epoch: nothing read ahead of it is kept.
                self.read_to = self.next_version;
                self.pending = Pending::default();
            }
        }
        Ok(())
    }

    async fn lag(&mut self) -> Option<i64> {
        let latest = self.latest().await.ok()?;
        i64::try_from((latest + 1).saturating_sub(self.next_version)).ok()
    }
}

impl DeltaEpochSource {
    /// Reads version `read_to` into the pending epoch; `false` when it is not
    /// in the log yet. A version missing while later ones exist was removed
    /// by log cleanup: an error, as its rows can no longer be read.
    async fn read_pending(&mut self) -> Result<bool, RunError> {
        let version = self.read_to;
        if self.read_version(version).await? {
            return Ok(true);
        }
        if self.latest().await? < version {
            return Ok(false);
        }
        // Listed: committed since the first look, or gone.
        match self.read_version(version).await? {
            true => Ok(true),
            false => Err(failed(&self.pipeline)(gone(&self.path, version))),
        }
    }

    async fn read_version(&mut self, version: u64) -> Result<bool, RunError> {
        self.pending
            .read(&self.path, &mut self.table, version)
            .await
            .map_err(failed(&self.pipeline))
    }

    /// The table's latest version, from a listing of its log (nothing is
    /// replayed into the open table); a refresh of the table when the
    /// listing cannot start from the last version read.
    async fn latest(&mut self) -> Result<u64, RunError> {
        let fail = failed(&self.pipeline);
        let from = self.read_to.saturating_sub(1);
        match super::source::latest_listed(&self.path, &self.table, from).await {
            Ok(latest) => Ok(latest),
            Err(_) => super::source::latest_version(&self.path, &mut self.table)
                .await
                .map_err(fail),
        }
    }
}

/// The error for a version an epoch needs that is no longer in the log.
fn gone(path: &Path, version: u64) -> DeltaError {
    DeltaError::VersionGone {
        table: path.to_path_buf(),
        version,
    }
}

/// Delta rows know their table and, from per-version row counts, their
/// version; their raw form is the row as JSON.
struct DeltaRows {
    table: String,
    /// (first row index, version), ascending.
    version_starts: Vec<(usize, u64)>,
    batch: RecordBatch,
}

impl SourceRows for DeltaRows {
    fn origin(&self, row: usize) -> Origin {
        let origin = Origin::of(KIND).text("table", self.table.clone());
        match self
            .version_starts
            .iter()
            .rev()
            .find(|(start, _)| *start <= row)
            .and_then(|(_, v)| i64::try_from(*v).ok())
        {
            Some(version) => origin.int("version", version),
            None => origin,
        }
    }
    fn raw(&self, row: usize) -> Option<Vec<u8>> {
        crate::files::row_json(&self.batch, row)
    }
    fn untraced(&self) -> Origin {
        Origin::of(KIND).text("table", self.table.clone())
    }
}

/// Rows of consecutive versions read for one epoch.
#[derive(Default)]
struct Pending {
    batches: Vec<RecordBatch>,
    /// (first row index, version) for each version read, ascending.
    starts: Vec<(usize, u64)>,
    rows: usize,
    bytes: usize,
}

impl Pending {
    /// Appends the rows `version` added; `false` when it is not in the log.
    async fn read(
        &mut self,
        path: &Path,
        table: &mut DeltaTable,
        version: u64,
    ) -> Result<bool, DeltaError> {
        let Some(read) = super::source::read_added_rows(path, table, version).await? else {
            return Ok(false);
        };
        self.starts.push((self.rows, version));
        for batch in read {
            self.rows += batch.num_rows();
            self.bytes += batch.get_array_memory_size();
            self.batches.push(batch);
        }
        Ok(true)
    }

    /// Whether the rows read reach the policy's record or byte limit.
    fn full(&self, policy: &BatchPolicy) -> bool {
        self.rows >= policy.max_records || self.bytes >= policy.max_bytes
    }

    /// The rows as one batch in the table's schema, and where each version's
    /// rows start. Rows read before a schema change in the epoch (columns
    /// added) get the new columns as nulls.
    fn finish(
        self,
        path: &Path,
        table: &DeltaTable,
    ) -> Result<(RecordBatch, Vec<(usize, u64)>), DeltaError> {
        let schema = table::arrow_schema(path, table)?;
        let batches = self
            .batches
            .iter()
            .map(|b| match b.schema() == schema {
                true => Ok(b.clone()),
                false => super::sink::conform(path, b, &schema),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let batch =
            arrow::compute::concat_batches(&schema, &batches).map_err(|e| DeltaError::Schema {
                table: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        Ok((batch, self.starts))
    }
}
