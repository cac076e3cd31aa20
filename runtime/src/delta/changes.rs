//! A table version's row-level changes, read as the Delta protocol's Change
//! Data Feed defines them: a version whose commit has `cdc` actions is read
//! from those files only (their `_change_type` says `insert`,
//! `update_preimage`, `update_postimage` or `delete`); a version without
//! them yields the rows of its data-changing `add` files as inserts and of
//! its data-changing `remove` files as deletes. Files are read in the order
//! of their actions in the commit, rows in file order, so a second read of a
//! version returns the same rows in the same order (the reason this reader
//! exists beside delta-rs's provider, which groups partitioned files in a
//! hash map).
//!
//! Each row gets `_change_type`, `_commit_version` and `_commit_timestamp`
//! (the commit file's modification time, as the protocol defines a commit's
//! timestamp without in-commit timestamps; Spark reports the same). Partition
//! columns come from the actions' `partitionValues`. Tables this reader
//! cannot read faithfully are refused naming table and version: Change Data
//! Feed off at that version, column mapping, deletion vectors, a commit no
//! longer in the log or a data file vacuumed away.

use super::{DeltaError, table};
use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::DeltaTable;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// The change type of each row: `insert`, `update_preimage`, `update_postimage`, `delete`.
pub const CHANGE_TYPE: &str = "_change_type";
/// The version that made the change.
pub const COMMIT_VERSION: &str = "_commit_version";
/// When that version was committed (µs since the Unix epoch, UTC).
pub const COMMIT_TIMESTAMP: &str = "_commit_timestamp";

/// The columns of a change row: the table's, then the three change columns.
pub fn change_schema(table: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = table.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(CHANGE_TYPE, DataType::Utf8, false));
    fields.push(Field::new(COMMIT_VERSION, DataType::Int64, false));
    fields.push(Field::new(
        COMMIT_TIMESTAMP,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        false,
    ));
    Arc::new(Schema::new(fields))
}

/// One line of a commit file; only what the change feed and the Delta
/// source need.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Line {
    pub(super) add: Option<FileAction>,
    pub(super) remove: Option<FileAction>,
    pub(super) cdc: Option<FileAction>,
    pub(super) meta_data: Option<MetaData>,
    /// Any `protocol` action (its content is not read).
    pub(super) protocol: Option<serde_json::Value>,
}

/// An `add`, `remove` or `cdc` action.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FileAction {
    pub(super) path: String,
    #[serde(default)]
    pub(super) partition_values: HashMap<String, Option<String>>,
    /// `cdc` actions have none; `false` marks a rewrite with no row changes.
    #[serde(default = "yes")]
    pub(super) data_change: bool,
    #[serde(default)]
    pub(super) deletion_vector: Option<serde_json::Value>,
}

fn yes() -> bool {
    true
}

/// A `metaData` action: the table's configuration from this version on.
#[derive(Debug, Deserialize)]
pub(super) struct MetaData {
    #[serde(default)]
    configuration: HashMap<String, Option<String>>,
}

/// Whether `configuration` turns the change feed on, and refuses what this
/// reader cannot read.
fn check_configuration(
    path: &Path,
    version: u64,
    configuration: &HashMap<String, Option<String>>,
) -> Result<(), DeltaError> {
    let value = |key: &str| configuration.get(key).cloned().flatten();
    let refuse = |reason: String| DeltaError::Schema {
        table: path.to_path_buf(),
        reason: format!("version {version}: {reason}"),
    };
    if value("delta.enableChangeDataFeed").is_none_or(|v| !v.eq_ignore_ascii_case("true")) {
        return Err(refuse(
            "the Change Data Feed is off (set the table property delta.enableChangeDataFeed = true \
             before the versions to read, or start after the version that set it)"
                .into(),
        ));
    }
    if let Some(mode) = value("delta.columnMapping.mode").filter(|m| m != "none") {
        return Err(refuse(format!(
            "column mapping (mode {mode}) is not supported by Weir's change reader"
        )));
    }
    Ok(())
}

/// The table configuration as of `version` (the latest `metaData` at or
/// before it), checked by [`check_configuration`].
pub async fn check_readable(path: &Path, version: u64) -> Result<(), DeltaError> {
    let mut at = table::open_existing(path).await?;
    at.load_version(version)
        .await
        .map_err(|source| DeltaError::Delta {
            table: path.to_path_buf(),
            operation: "load version",
            source: Box::new(source),
        })?;
    let configuration: HashMap<String, Option<String>> = at
        .snapshot()
        .map_err(|source| DeltaError::Delta {
            table: path.to_path_buf(),
            operation: "read configuration",
            source: Box::new(source),
        })?
        .metadata()
        .configuration()
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    check_configuration(path, version, &configuration)
}

/// The changes of `version`, as rows of [`change_schema`]`(schema)`
/// (`schema`: the table's columns as the reader wants them; files missing a
/// nullable column read it as null). `None` when the version is not in the
/// log (never written, or removed by log cleanup: an error for the caller
/// when it should be there). A `metaData` action in the version is checked
/// here; the configuration in force before the first version a reader reads
/// is the caller's to check, with [`check_readable`].
pub async fn read_version(
    path: &Path,
    table: &DeltaTable,
    version: u64,
    schema: &SchemaRef,
) -> Result<Option<Vec<RecordBatch>>, DeltaError> {
    let Some(lines) = read_commit(path, table, version).await? else {
        return Ok(None);
    };
    let micros = commit_micros(path, version)?;
    for meta in lines.iter().filter_map(|l| l.meta_data.as_ref()) {
        check_configuration(path, version, &meta.configuration)?;
    }
    let cdc: Vec<&FileAction> = lines.iter().filter_map(|l| l.cdc.as_ref()).collect();
    // (file, change type for the whole file; None: the file's own column).
    let files: Vec<(&FileAction, Option<&str>)> = if cdc.is_empty() {
        lines
            .iter()
            .flat_map(|l| {
                let added = l.add.as_ref().map(|a| (a, Some("insert")));
                let removed = l.remove.as_ref().map(|r| (r, Some("delete")));
                added.into_iter().chain(removed)
            })
            .filter(|(action, _)| action.data_change)
            .collect()
    } else {
        cdc.into_iter().map(|c| (c, None)).collect()
    };
    let root = table::table_url(path)?;
    let mut batches = Vec::new();
    for (action, change_type) in files {
        if action.deletion_vector.is_some() {
            return Err(DeltaError::Schema {
                table: path.to_path_buf(),
                reason: format!(
                    "version {version}: file {} has a deletion vector, which Weir's change reader does not support",
                    action.path
                ),
            });
        }
        for batch in read_file(path, version, &file_path(path, &root, version, action)?)? {
            batches.push(with_change_columns(
                path,
                version,
                schema,
                batch,
                &action.partition_values,
                change_type,
                micros,
            )?);
        }
    }
    Ok(Some(batches))
}

/// The actions of commit `version`, in file order; `None` when the version
/// is not in the log (not written yet, or removed by log cleanup).
pub(super) async fn read_commit(
    path: &Path,
    table: &DeltaTable,
    version: u64,
) -> Result<Option<Vec<Line>>, DeltaError> {
    let Some(bytes) = table
        .log_store()
        .read_commit_entry(version)
        .await
        .map_err(|source| DeltaError::Delta {
            table: path.to_path_buf(),
            operation: "read commit",
            source: Box::new(source),
        })?
    else {
        return Ok(None);
    };
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .map(|l| {
            serde_json::from_slice(l).map_err(|e| DeltaError::CommitInfo {
                table: path.to_path_buf(),
                version,
                reason: e.to_string(),
            })
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

/// The local path of an action's file (`root`: the table's URL).
pub(super) fn file_path(
    path: &Path,
    root: &url::Url,
    version: u64,
    action: &FileAction,
) -> Result<std::path::PathBuf, DeltaError> {
    root.join(&action.path)
        .ok()
        .and_then(|url| url.to_file_path().ok())
        .ok_or_else(|| DeltaError::CommitInfo {
            table: path.to_path_buf(),
            version,
            reason: format!("`{}` is not a local file path", action.path),
        })
}

/// When `version` was committed: its commit file's modification time, µs
/// since the Unix epoch (the protocol's commit timestamp without in-commit
/// timestamps).
pub fn commit_micros(path: &Path, version: u64) -> Result<i64, DeltaError> {
    let commit_path = path.join("_delta_log").join(format!("{version:020}.json"));
    let committed = std::fs::metadata(&commit_path)
        .and_then(|m| m.modified())
        .map_err(|e| DeltaError::Location {
            table: path.to_path_buf(),
            reason: format!("version {version}: cannot read the commit's time: {e}"),
        })?;
    Ok(committed
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0))
}

/// The first version committed at or after `micros` (µs since the Unix
/// epoch), or `latest + 1` when every commit is older (Spark's
/// `startingTimestamp`, except that a time after the latest commit starts
/// with the next commit instead of failing). An error when the log was
/// cleaned up after the time: the changes of the removed commits are gone.
pub fn first_version_at_or_after(path: &Path, micros: i64, latest: u64) -> Result<u64, DeltaError> {
    let log = path.join("_delta_log");
    let listed = std::fs::read_dir(&log).map_err(|e| DeltaError::Location {
        table: path.to_path_buf(),
        reason: format!("cannot list {}: {e}", log.display()),
    })?;
    let mut versions: Vec<u64> = listed
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let digits = name.strip_suffix(".json")?;
            (digits.len() == 20).then(|| digits.parse().ok())?
        })
        .filter(|v| *v <= latest)
        .collect();
    versions.sort_unstable();
    if let Some(&oldest) = versions.first()
        && oldest > 0
        && commit_micros(path, oldest)? > micros
    {
        // Commits before `oldest` were removed by log cleanup: some of the
        // changes since the time can no longer be read.
        return Err(DeltaError::Location {
            table: path.to_path_buf(),
            reason: format!(
                "the log no longer holds the commits before version {oldest} (log cleanup), \
                 which may be after the start time; start at version {oldest} or later, or from a snapshot"
            ),
        });
    }
    for version in versions {
        if commit_micros(path, version)? >= micros {
            return Ok(version);
        }
    }
    Ok(latest + 1)
}

/// Every row of the table as of `version`, as `insert` change rows of
/// [`change_schema`]`(schema)` stamped with that version and its commit time
/// (the first epoch of a "snapshot then changes" start).
pub async fn read_snapshot(
    path: &Path,
    version: u64,
    schema: &SchemaRef,
) -> Result<Vec<RecordBatch>, DeltaError> {
    let micros = commit_micros(path, version)?;
    let whole = super::lookup::read_version(path, version).await?;
    if whole.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let batch = with_change_columns(
        path,
        version,
        schema,
        whole,
        &HashMap::new(),
        Some("insert"),
        micros,
    )?;
    Ok(vec![batch])
}

/// The record batches of one data or change file.
pub(super) fn read_file(
    path: &Path,
    version: u64,
    file: &Path,
) -> Result<Vec<RecordBatch>, DeltaError> {
    let gone = |reason: String| DeltaError::Location {
        table: path.to_path_buf(),
        reason: format!("version {version}: file {}: {reason}", file.display()),
    };
    let opened = std::fs::File::open(file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            gone("missing (vacuumed?): this version can no longer be read".into())
        }
        _ => gone(e.to_string()),
    })?;
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(opened)
        .and_then(|builder| builder.with_batch_size(65_536).build())
        .map_err(|e| gone(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| gone(e.to_string()))
}

/// `batch` (a file's rows) as change rows: the table's columns (see
/// [`table_columns`]), then the change type (`change_type`, or the file's
/// own `_change_type` column), version and timestamp.
fn with_change_columns(
    path: &Path,
    version: u64,
    schema: &SchemaRef,
    batch: RecordBatch,
    partition_values: &HashMap<String, Option<String>>,
    change_type: Option<&str>,
    micros: i64,
) -> Result<RecordBatch, DeltaError> {
    let rows = batch.num_rows();
    let fail = |reason: String| DeltaError::Schema {
        table: path.to_path_buf(),
        reason: format!("version {version}: {reason}"),
    };
    let mut columns = table_columns(path, version, schema, &batch, partition_values)?;
    let change: ArrayRef = match change_type {
        Some(kind) => Arc::new(StringArray::from(vec![kind; rows])),
        None => {
            let column = batch
                .column_by_name(CHANGE_TYPE)
                .ok_or_else(|| fail("a change file has no `_change_type` column".into()))?;
            arrow::compute::cast(column, &DataType::Utf8).map_err(|e| fail(e.to_string()))?
        }
    };
    columns.push(change);
    let version = i64::try_from(version).map_err(|e| fail(e.to_string()))?;
    columns.push(Arc::new(Int64Array::from(vec![version; rows])));
    columns.push(Arc::new(
        TimestampMicrosecondArray::from(vec![micros; rows]).with_timezone("UTC"),
    ));
    RecordBatch::try_new(change_schema(schema), columns).map_err(|e| fail(e.to_string()))
}

/// `batch` (a file's rows of `version`) as the columns of `schema`, by
/// name: partition columns from `partition_values` (the Delta protocol
/// keeps them out of data files), a nullable column the file lacks as nulls
/// (added to the table after the file was written), each cast to the
/// column's type without loss (a value that does not fit is an error).
pub(super) fn table_columns(
    path: &Path,
    version: u64,
    schema: &SchemaRef,
    batch: &RecordBatch,
    partition_values: &HashMap<String, Option<String>>,
) -> Result<Vec<ArrayRef>, DeltaError> {
    let rows = batch.num_rows();
    let fail = |reason: String| DeltaError::Schema {
        table: path.to_path_buf(),
        reason: format!("version {version}: {reason}"),
    };
    let options = arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    schema
        .fields()
        .iter()
        .map(|field| {
            let column = match (
                batch.column_by_name(field.name()),
                partition_values.get(field.name()),
            ) {
                (Some(column), _) => column.clone(),
                (None, Some(value)) => {
                    let text: ArrayRef = Arc::new(StringArray::from(vec![value.clone(); rows]));
                    text
                }
                (None, None) if field.is_nullable() => {
                    arrow::array::new_null_array(field.data_type(), rows)
                }
                (None, None) => {
                    return Err(fail(format!(
                        "a file lacks the non-nullable column `{}`",
                        field.name()
                    )));
                }
            };
            if column.data_type() == field.data_type() {
                return Ok(column);
            }
            arrow::compute::cast_with_options(&column, field.data_type(), &options)
                .map_err(|e| fail(format!("column `{}`: {e}", field.name())))
        })
        .collect()
}

#[cfg(test)]
mod tests;
