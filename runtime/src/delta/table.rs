//! Opening Delta tables by directory, creating them from an Arrow schema (with
//! partition columns and table properties), and the rule for whether a stream
//! of batches fits an existing table, compared in Delta's own type system.

use super::DeltaError;
use arrow::datatypes::{Schema, SchemaRef};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::{StructField, StructType};
use deltalake::{DeltaTable, DeltaTableError};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::collections::BTreeMap;
use std::path::Path;
use url::Url;

/// Largest dictionary page, in bytes, a column chunk of a data file Weir
/// writes may build before its values fall back to plain encoding.
///
/// A dictionary pays off for columns with few distinct values (a status, a
/// category, a product name); for near-unique ones (event ids, timestamps)
/// interning every value costs CPU and saves nothing. Parquet's writers stop
/// at a size limit (1 MiB by default in parquet-rs and parquet-mr); a column
/// that needs more than 128 KiB of distinct values per row group (≈ 3,600 ids
/// of 36 bytes) is plainly not dictionary-friendly, so Weir stops there. The
/// file stays standard Parquet: readers see a dictionary-encoded prefix and
/// plain pages after it, as they do for any column that fell back.
pub const DICTIONARY_PAGE_LIMIT: usize = 128 * 1024;

/// The Parquet writer settings of every data file Weir writes to a Delta
/// table: Snappy compression (delta-rs's and Spark's default) and the
/// dictionary limit [`DICTIONARY_PAGE_LIMIT`].
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_created_by(concat!("weir ", env!("CARGO_PKG_VERSION")).to_string())
        .set_compression(Compression::SNAPPY)
        .set_dictionary_page_size_limit(DICTIONARY_PAGE_LIMIT)
        .build()
}

/// The `file://` URL of a table directory (which need not exist yet).
pub fn table_url(path: &Path) -> Result<Url, DeltaError> {
    let absolute = std::path::absolute(path).map_err(|e| DeltaError::Location {
        table: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Url::from_directory_path(&absolute).map_err(|()| DeltaError::Location {
        table: path.to_path_buf(),
        reason: "not an absolute local path".into(),
    })
}

/// Opens the table at `path`; `None` when there is no table there yet.
pub async fn open(path: &Path) -> Result<Option<DeltaTable>, DeltaError> {
    if !path.join("_delta_log").is_dir() {
        return Ok(None);
    }
    let url = table_url(path)?;
    match deltalake::open_table(url).await {
        Ok(table) => Ok(Some(table)),
        Err(DeltaTableError::NotATable(_)) => Ok(None),
        Err(source) => Err(DeltaError::Delta {
            table: path.to_path_buf(),
            operation: "open",
            source: Box::new(source),
        }),
    }
}

/// Opens the table at `path`, which must exist.
pub async fn open_existing(path: &Path) -> Result<DeltaTable, DeltaError> {
    open(path).await?.ok_or_else(|| DeltaError::Missing {
        table: path.to_path_buf(),
    })
}

/// The table's current schema, as Delta types.
pub fn delta_schema(path: &Path, table: &DeltaTable) -> Result<StructType, DeltaError> {
    let snapshot = table.snapshot().map_err(|source| DeltaError::Delta {
        table: path.to_path_buf(),
        operation: "read schema",
        source: Box::new(source),
    })?;
    Ok(snapshot.schema().as_ref().clone())
}

/// The table's current schema, as Arrow types (what the table's readers return).
pub fn arrow_schema(path: &Path, table: &DeltaTable) -> Result<SchemaRef, DeltaError> {
    let snapshot = table.snapshot().map_err(|source| DeltaError::Delta {
        table: path.to_path_buf(),
        operation: "read schema",
        source: Box::new(source),
    })?;
    Ok(snapshot.snapshot().arrow_schema())
}

/// A table property (`delta.*` configuration) as the table was last read.
pub fn property(path: &Path, table: &DeltaTable, key: &str) -> Result<Option<String>, DeltaError> {
    let snapshot = table.snapshot().map_err(|source| DeltaError::Delta {
        table: path.to_path_buf(),
        operation: "read properties",
        source: Box::new(source),
    })?;
    Ok(snapshot.metadata().configuration().get(key).cloned())
}

/// Whether Change Data Feed is on for the table.
pub fn change_data_feed_enabled(path: &Path, table: &DeltaTable) -> Result<bool, DeltaError> {
    Ok(property(path, table, "delta.enableChangeDataFeed")?
        .is_some_and(|v| v.eq_ignore_ascii_case("true")))
}

/// Brings `table` up to the table's latest version (incrementally).
pub async fn refresh(path: &Path, table: &mut DeltaTable) -> Result<(), DeltaError> {
    table
        .update_state()
        .await
        .map_err(|source| DeltaError::Delta {
            table: path.to_path_buf(),
            operation: "refresh",
            source: Box::new(source),
        })
}

/// Converts an Arrow schema to Delta types; the error names the column that
/// has no Delta equivalent.
pub fn to_delta_schema(schema: &Schema) -> Result<StructType, String> {
    for field in schema.fields() {
        let converted: Result<deltalake::kernel::DataType, _> = field.data_type().try_into_kernel();
        if let Err(e) = converted {
            return Err(format!(
                "column `{}` has type {}, which Delta cannot store: {e}",
                field.name(),
                field.data_type()
            ));
        }
    }
    schema
        .try_into_kernel()
        .map_err(|e| format!("the schema cannot be stored in Delta: {e}"))
}

/// Checks a stream with schema `incoming` can be written to a table whose
/// schema is `table`: the same columns (by name), each of the same Delta
/// type, and no nullable column where the table requires a value.
pub fn check_fits(table: &StructType, incoming: &StructType) -> Result<(), String> {
    let mut problems = Vec::new();
    for column in table.fields() {
        match incoming.field(column.name()) {
            None if column.is_nullable() => {}
            None => problems.push(format!("required column `{}` is missing", column.name())),
            Some(got) if got.data_type() != column.data_type() => problems.push(format!(
                "column `{}` is {} in the stream but {} in the table",
                column.name(),
                type_name(got),
                type_name(column)
            )),
            Some(got) if got.is_nullable() && !column.is_nullable() => problems.push(format!(
                "column `{}` may be null in the stream but the table requires a value",
                column.name()
            )),
            Some(_) => {}
        }
    }
    for got in incoming.fields() {
        if table.field(got.name()).is_none() {
            problems.push(format!(
                "column `{}` ({}) is not in the table",
                got.name(),
                type_name(got)
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn type_name(field: &StructField) -> String {
    serde_json::to_string(field.data_type()).unwrap_or_else(|_| format!("{:?}", field.data_type()))
}

/// Creates a table at `path` with `schema`, partition columns and table
/// properties. `commit_metadata` goes into the creating commit's `commitInfo`.
pub async fn create(
    path: &Path,
    schema: &StructType,
    partition_by: &[String],
    properties: &BTreeMap<String, String>,
    commit_metadata: Vec<(String, serde_json::Value)>,
) -> Result<DeltaTable, DeltaError> {
    let failed = |source| DeltaError::Delta {
        table: path.to_path_buf(),
        operation: "create",
        source: Box::new(source),
    };
    std::fs::create_dir_all(path).map_err(|e| DeltaError::Location {
        table: path.to_path_buf(),
        reason: format!("cannot create the directory: {e}"),
    })?;
    let url = table_url(path)?;
    // Not `try_from_url`: loading a table that does not exist yet logs an error.
    let table = deltalake::DeltaTableBuilder::from_url(url)
        .and_then(|builder| builder.build())
        .map_err(failed)?;
    table
        .create()
        .with_columns(schema.fields().cloned())
        .with_partition_columns(partition_by.iter().cloned())
        .with_configuration(properties.iter().map(|(k, v)| (k.clone(), Some(v.clone()))))
        .with_commit_properties(
            deltalake::kernel::transaction::CommitProperties::default()
                .with_metadata(commit_metadata),
        )
        .await
        .map_err(failed)
}

/// Adds the nullable columns of `wanted` that the table lacks, in one
/// metadata-only commit (Delta schema evolution; existing files read them as
/// null). Returns the table unchanged when nothing is missing.
pub async fn add_missing_nullable_columns(
    path: &Path,
    table: DeltaTable,
    wanted: &Schema,
) -> Result<DeltaTable, DeltaError> {
    let current = delta_schema(path, &table)?;
    let wanted = to_delta_schema(wanted).map_err(|reason| DeltaError::Schema {
        table: path.to_path_buf(),
        reason,
    })?;
    let missing: Vec<StructField> = wanted
        .fields()
        .filter(|f| f.is_nullable() && current.field(f.name()).is_none())
        .cloned()
        .collect();
    if missing.is_empty() {
        return Ok(table);
    }
    let names: Vec<String> = missing.iter().map(|f| f.name().clone()).collect();
    let table = table
        .add_columns()
        .with_fields(missing)
        .await
        .map_err(|source| DeltaError::Delta {
            table: path.to_path_buf(),
            operation: "add columns",
            source: Box::new(source),
        })?;
    tracing::info!(table = %path.display(), columns = ?names, "added nullable columns to the table");
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, TimeUnit};

    fn schema(fields: Vec<Field>) -> StructType {
        to_delta_schema(&Schema::new(fields)).unwrap()
    }

    #[test]
    fn string_flavours_and_timestamp_units_are_the_same_delta_type() {
        let table = schema(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]);
        let incoming = schema(vec![
            Field::new("id", DataType::Utf8View, false),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
        ]);
        check_fits(&table, &incoming).unwrap();
    }

    #[test]
    fn names_every_mismatch() {
        let table = schema(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("qty", DataType::Int32, true),
            Field::new("note", DataType::Utf8, true),
        ]);
        let incoming = schema(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("qty", DataType::Int64, true),
            Field::new("extra", DataType::Boolean, true),
        ]);
        let error = check_fits(&table, &incoming).unwrap_err();
        assert!(error.contains("`id` may be null"), "{error}");
        assert!(
            error.contains("`qty` is \"long\" in the stream but \"integer\""),
            "{error}"
        );
        assert!(
            error.contains("`extra` (\"boolean\") is not in the table"),
            "{error}"
        );
        assert!(!error.contains("note"), "{error}");
    }

    #[test]
    fn unsigned_and_unsupported_types_are_named() {
        let error = to_delta_schema(&Schema::new(vec![Field::new(
            "d",
            DataType::Duration(TimeUnit::Second),
            true,
        )]))
        .unwrap_err();
        assert!(error.contains("column `d`"), "{error}");
    }
}
