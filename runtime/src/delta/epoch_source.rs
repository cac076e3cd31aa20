//! A Delta table as an epoch [`Source`]: epochs are inclusive version ranges
//! `first..=last`; each delivers the rows those versions added (see
//! [`super::source`]), in version order, so a replay reads the same rows.
//! Versions that added nothing are folded into the next epoch's range.

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

/// Where a Delta source stops.
enum Bound {
    /// Streaming: never.
    None,
    /// `--once`: after this version (the latest when it started, or when
    /// the table's writers in this run had finished).
    Until(u64),
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
    /// The first version not yet looked at (versions before it, from
    /// `next_version` on, held no rows).
    unscanned: u64,
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
        let mut opened = table::open_existing(path).await.map_err(&fail)?;
        let latest = super::source::latest_version(path, &mut opened)
            .await
            .map_err(&fail)?;
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
            unscanned: next_version,
            bound: match reach {
                Reach::Unbounded => Bound::None,
                Reach::AvailableNow(writers) if writers.all_finished() => Bound::Until(latest),
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

fn failed(pipeline: &str) -> impl Fn(DeltaError) -> RunError + '_ {
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
            let latest = super::source::latest_version(&self.path, &mut self.table)
                .await
                .map_err(failed(&self.pipeline))?;
            let limit = match self.bound {
                Bound::Until(until) => until.min(latest),
                _ => latest,
            };
            let from = self.unscanned.max(self.next_version);
            if from > limit {
                match &mut self.bound {
                    Bound::Until(_) => return Ok(None),
                    Bound::None => tokio::time::sleep(self.poll_interval).await,
                    // Finished before the next look at the latest version, so
                    // that look sees their last commits.
                    Bound::AfterWriters(writers) if writers.all_finished() => {
                        let latest = super::source::latest_version(&self.path, &mut self.table)
                            .await
                            .map_err(failed(&self.pipeline))?;
                        self.bound = Bound::Until(latest);
                    }
                    Bound::AfterWriters(writers) => {
                        writers.wait_for_change(self.poll_interval).await;
                    }
                }
                continue;
            }
            let first = self.next_version;
            let (batch, version_starts, last) =
                read_versions(&self.path, &self.table, from, limit, Some(policy))
                    .await
                    .map_err(failed(&self.pipeline))?;
            self.unscanned = last + 1;
            if batch.num_rows() == 0 {
                // Only empty versions: nothing to process. They are covered by the next
                // epoch's range; until then a restart simply reads them again.
                continue;
            }
            return Ok(Some(Fetched {
                rows: self.rows(&batch, version_starts),
                batch,
                range: SourceRange::Delta {
                    table: self.path.display().to_string(),
                    first,
                    last,
                },
            }));
        }
    }

    async fn replay(&mut self, range: &SourceRange) -> Result<Fetched, RunError> {
        let SourceRange::Delta { first, last, .. } = range else {
            return Err(RunError::WrongSourceKind {
                pipeline: self.pipeline.clone(),
                expected: KIND,
            });
        };
        let (batch, version_starts, _) =
            read_versions(&self.path, &self.table, *first, *last, None)
                .await
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
            self.unscanned = self.unscanned.max(self.next_version);
        }
        Ok(())
    }

    async fn lag(&mut self) -> Option<i64> {
        let latest = super::source::latest_version(&self.path, &mut self.table)
            .await
            .ok()?;
        i64::try_from((latest + 1).saturating_sub(self.next_version)).ok()
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

/// Reads versions `first..=limit` one at a time (stopping early once the
/// policy's row or byte limit is reached, when given). Returns the rows as
/// one batch, where each version's rows start, and the last version read.
async fn read_versions(
    path: &Path,
    table: &DeltaTable,
    first: u64,
    limit: u64,
    policy: Option<&BatchPolicy>,
) -> Result<(RecordBatch, Vec<(usize, u64)>, u64), DeltaError> {
    let mut batches = Vec::new();
    let mut starts = Vec::new();
    let mut rows = 0usize;
    let mut bytes = 0usize;
    let mut last = first;
    for version in first..=limit {
        let read = super::source::read_added_rows(path, table.clone(), version).await?;
        starts.push((rows, version));
        for batch in read {
            rows += batch.num_rows();
            bytes += batch.get_array_memory_size();
            batches.push(batch);
        }
        last = version;
        if policy.is_some_and(|p| rows >= p.max_records || bytes >= p.max_bytes) {
            break;
        }
    }
    let schema = table::arrow_schema(path, table)?;
    let batch =
        arrow::compute::concat_batches(&schema, &batches).map_err(|e| DeltaError::Schema {
            table: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    Ok((batch, starts, last))
}
