//! `weir audit`: proves (or disproves) exactly-once delivery after the fact,
//! from the tables alone. For every pipeline of a file it reads each sink's
//! `_delta_log` and the dead-letter table's (commit by commit, the `txn`
//! versions and Weir's records: plans, row counts) and reports gaps and
//! overlaps in the source ranges per partition, epochs missing from or
//! repeated in a sink, and epochs whose rows do not add up: the source's
//! records against what the stages were given, what each stage produced
//! against what its sink holds, what was rejected against what the
//! dead-letter table holds. Nothing is written and no broker is contacted.

mod checks;
pub mod delta_log;

pub use checks::{
    Finding, FindingKind, PartitionSummary, PipelineAudit, PipelineHistory, RecordedCounts,
    SinkCommit, SinkHistory, SinkSummary, WeirRecord, audit,
};

use crate::pipeline::spec::SinkMode;
use crate::pipeline::{PipelineFile, PortRef, Source};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Why the audit could not read what it needs.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file or directory cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A log file is not what the Delta protocol says it should be.
    #[error("{path}: {reason}")]
    Log {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A commit's Weir record cannot be read.
    #[error("{table}: version {version}: unreadable Weir record: {reason}")]
    Record {
        /// The table.
        table: PathBuf,
        /// The table version.
        version: u64,
        /// Why.
        reason: String,
    },
}

/// The audit of every pipeline of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileAudit {
    /// In file order.
    pub pipelines: Vec<PipelineAudit>,
}

impl FileAudit {
    /// Every finding of every pipeline.
    pub fn findings(&self) -> impl Iterator<Item = (&str, &Finding)> {
        self.pipelines
            .iter()
            .flat_map(|p| p.findings.iter().map(move |f| (p.pipeline.as_str(), f)))
    }
}

/// Audits every pipeline of `file` from its tables.
pub fn audit_file(file: &PipelineFile) -> Result<FileAudit, AuditError> {
    let mut logs: BTreeMap<PathBuf, delta_log::TableLog> = BTreeMap::new();
    let mut log_of = |path: &Path| -> Result<Option<delta_log::TableLog>, AuditError> {
        if !path.join("_delta_log").is_dir() {
            return Ok(None);
        }
        if !logs.contains_key(path) {
            logs.insert(path.to_path_buf(), delta_log::read(path)?);
        }
        Ok(logs.get(path).cloned())
    };
    let mut pipelines = Vec::new();
    for pipeline in &file.pipelines {
        let mut sinks = Vec::new();
        let declared = pipeline
            .sinks
            .iter()
            .map(|s| (s.name.as_str(), &s.table, s.mode));
        for (name, table, mode) in
            declared.chain([("dead_letters", &pipeline.dead_letters, SinkMode::Append)])
        {
            let app_id = pipeline.app_id(name);
            let commits = match log_of(table)? {
                Some(log) => sink_commits(&log, &app_id, mode)?,
                None => Vec::new(),
            };
            sinks.push(SinkHistory {
                name: name.to_string(),
                commits,
            });
        }
        let source_versions = match &pipeline.source {
            Source::Delta { table, .. } => log_of(table)?.map(|log| {
                log.commits
                    .iter()
                    .map(|c| (c.version, (c.data_removes == 0).then(|| c.added_rows())))
                    .collect()
            }),
            _ => None,
        };
        let history = PipelineHistory {
            pipeline: pipeline.name.clone(),
            sinks,
            source_stages: pipeline
                .stages
                .iter()
                .filter(|s| s.input == PortRef::Source)
                .map(|s| s.name.clone())
                .collect(),
            source_versions,
        };
        pipelines.push(audit(&history));
    }
    Ok(FileAudit { pipelines })
}

/// The commits of `log` that carry `app_id`'s Weir record.
fn sink_commits(
    log: &delta_log::TableLog,
    app_id: &str,
    mode: SinkMode,
) -> Result<Vec<SinkCommit>, AuditError> {
    let mut commits = Vec::new();
    for commit in &log.commits {
        let Some(record) = &commit.weir else { continue };
        if record.get("app_id").and_then(|a| a.as_str()) != Some(app_id) {
            continue;
        }
        let parsed: WeirRecord =
            serde_json::from_value(record.clone()).map_err(|e| AuditError::Record {
                table: log.table.clone(),
                version: commit.version,
                reason: e.to_string(),
            })?;
        let rows_found = match mode {
            SinkMode::Merge => commit
                .metrics
                .as_ref()
                .and_then(|m| m.get("num_source_rows").or_else(|| m.get("numSourceRows")))
                .and_then(|v| v.as_u64()),
            SinkMode::Append => Some(commit.added_rows()),
            // The merge applies only the changes newer than the stored rows
            // and tombstones, so its source rows are not the epoch's rows.
            SinkMode::Upsert => None,
        };
        commits.push(SinkCommit {
            table_version: commit.version,
            txn: commit.txns.get(app_id).copied(),
            record: parsed,
            rows_found,
        });
    }
    Ok(commits)
}

impl fmt::Display for FileAudit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for pipeline in &self.pipelines {
            write!(f, "{pipeline}")?;
        }
        let findings = self.findings().count();
        write!(
            f,
            "audit: {} finding{} in {} pipeline{}",
            findings,
            if findings == 1 { "" } else { "s" },
            self.pipelines.len(),
            if self.pipelines.len() == 1 { "" } else { "s" }
        )
    }
}

impl fmt::Display for PipelineAudit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.epochs {
            Some((first, last)) => {
                writeln!(f, "pipeline {}: epochs {first}..={last}", self.pipeline)?
            }
            None => writeln!(f, "pipeline {}: no epochs committed", self.pipeline)?,
        }
        for SinkSummary { sink, epochs, rows } in &self.sinks {
            match epochs {
                Some((first, last)) => writeln!(
                    f,
                    "  sink {sink:<24} epochs {first}..={last}, {rows} rows written"
                )?,
                None => writeln!(f, "  sink {sink:<24} no epochs")?,
            }
        }
        for p in &self.partitions {
            write!(
                f,
                "  source {:<22} [{}, {}) in {} epoch{}: {} records",
                p.partition,
                p.start,
                p.end,
                p.epochs,
                if p.epochs == 1 { "" } else { "s" },
                p.records
            )?;
            if p.absent > 0 {
                write!(f, ", {} empty offsets", p.absent)?;
            }
            if p.lost > 0 {
                write!(f, ", {} LOST", p.lost)?;
            }
            writeln!(f)?;
        }
        if self.records > 0 {
            writeln!(f, "  {} source records accounted for", self.records)?;
        }
        for note in &self.notes {
            writeln!(f, "  note: {note}")?;
        }
        for finding in &self.findings {
            writeln!(f, "  FINDING {}", finding.message)?;
        }
        Ok(())
    }
}
