//! Delta Lake I/O for pipelines: opening and creating tables from a port's
//! schema, checking a stream's schema fits a table, append, merge and
//! upsert (SCD type 1) sinks
//! that commit an epoch together with its application transaction and source
//! positions, reading the rows new table versions added (the Delta source),
//! and the dead-letter table.

pub mod change_source;
pub mod changes;
pub mod commit_info;
pub mod dead_letters;
pub mod epoch_source;
pub mod lookup;
pub mod merge_update;
pub mod provision;
pub mod query;
pub mod session;
pub mod shared;
pub mod sink;
pub mod source;
pub mod table;
pub mod upsert;

use std::path::PathBuf;

/// Everything that can go wrong talking to a Delta table. Every variant names the table.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// The path cannot be turned into a table URL.
    #[error("{table}: not a usable table location: {reason}")]
    Location {
        /// The table directory.
        table: PathBuf,
        /// Why.
        reason: String,
    },
    /// deltalake failed.
    #[error("{table}: {operation} failed: {source}")]
    Delta {
        /// The table directory.
        table: PathBuf,
        /// What was being done (`open`, `append`, `merge`, ...).
        operation: &'static str,
        /// deltalake's error.
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    /// A query over the table failed (DataFusion).
    #[error("{table}: {operation} failed: {source}")]
    Query {
        /// The table directory.
        table: PathBuf,
        /// What was being done.
        operation: &'static str,
        /// DataFusion's error.
        #[source]
        source: Box<deltalake::datafusion::error::DataFusionError>,
    },
    /// A stream's schema does not fit the table.
    #[error("{table}: {reason}")]
    Schema {
        /// The table directory.
        table: PathBuf,
        /// What does not fit.
        reason: String,
    },
    /// The table is missing where one is required.
    #[error("{table}: not a Delta table (no _delta_log)")]
    Missing {
        /// The table directory.
        table: PathBuf,
    },
    /// A version that must be read was removed from the log.
    #[error(
        "{table}: version {version} is no longer in the log (removed by log cleanup): its rows can no longer be read"
    )]
    VersionGone {
        /// The table directory.
        table: PathBuf,
        /// The version.
        version: u64,
    },
    /// A commit's Weir metadata cannot be read.
    #[error("{table}: version {version}: unreadable Weir commit metadata: {reason}")]
    CommitInfo {
        /// The table directory.
        table: PathBuf,
        /// The table version.
        version: u64,
        /// Why.
        reason: String,
    },
}
