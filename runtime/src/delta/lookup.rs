//! Reading a Delta table as of one version, for a stage's lookup input (a
//! stream–static join's static side): the whole table, or only the rows of
//! some keys. The version comes from the epoch plan, so a replay sees
//! exactly the rows the first run saw.

use super::{DeltaError, sink, table};
use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow::row::{Row, RowConverter, SortField};
use deltalake::datafusion::common::ScalarValue;
use deltalake::datafusion::prelude::{Expr, SessionConfig, SessionContext, col, lit};
use std::collections::HashSet;
use std::path::Path;

/// The table's latest version.
pub async fn latest(path: &Path) -> Result<u64, DeltaError> {
    let mut opened = table::open_existing(path).await?;
    super::source::latest_version(path, &mut opened).await
}

/// Every row of the table at `version`, as one batch with the table's schema.
pub async fn read_version(path: &Path, version: u64) -> Result<RecordBatch, DeltaError> {
    read(path, version, None).await
}

/// The rows of the table at `version` whose `key` column holds one of
/// `keys` (an array of the column's type; nulls never match), as one batch
/// with the table's schema, in scan order. The predicate goes to the scan:
/// the key range skips files and row groups whose statistics lie outside
/// it, and a list of at most [`LISTED_KEYS`] keys is also matched against
/// the statistics key by key (DataFusion's pruning of `IN` lists); longer
/// lists are matched after the scan (a long `IN` list overflows
/// DataFusion's recursive expression rewriting). A key column whose values
/// cannot be ordered or turned into literals is an error naming it, never an
/// empty result.
pub async fn read_keys(
    path: &Path,
    version: u64,
    key: &str,
    keys: &ArrayRef,
) -> Result<RecordBatch, DeltaError> {
    let bad_key = |e: &dyn std::fmt::Display| DeltaError::Schema {
        table: path.to_path_buf(),
        reason: format!("lookup key `{key}`: {e}"),
    };
    let column = col(format!("\"{}\"", key.replace('"', "\"\"")));
    let (low, high) = (
        extreme(keys, true).map_err(|e| bad_key(&e))?,
        extreme(keys, false).map_err(|e| bad_key(&e))?,
    );
    let mut filter = match (low, high) {
        (Some(low), Some(high)) => column
            .clone()
            .gt_eq(lit(low))
            .and(column.clone().lt_eq(lit(high))),
        // No key: no row.
        _ => lit(false),
    };
    let listed = keys.len() - keys.null_count() <= LISTED_KEYS;
    if listed {
        let mut values = Vec::with_capacity(keys.len());
        for row in (0..keys.len()).filter(|&r| keys.is_valid(r)) {
            values.push(lit(
                ScalarValue::try_from_array(keys, row).map_err(|e| bad_key(&e))?
            ));
        }
        filter = filter.and(column.in_list(values, false));
    }
    let read = read(path, version, Some(filter)).await?;
    if listed {
        return Ok(read);
    }
    // Keep exactly the rows of `keys`.
    let stored = read
        .column_by_name(key)
        .ok_or_else(|| bad_key(&"the table has no such column"))?;
    let stored = arrow::compute::cast(stored, keys.data_type()).map_err(|e| bad_key(&e))?;
    let converter = RowConverter::new(vec![SortField::new(keys.data_type().clone())])
        .map_err(|e| bad_key(&e))?;
    let wanted = converter
        .convert_columns(std::slice::from_ref(keys))
        .map_err(|e| bad_key(&e))?;
    let wanted: HashSet<Row<'_>> = (0..keys.len())
        .filter(|&r| keys.is_valid(r))
        .map(|r| wanted.row(r))
        .collect();
    let found = converter
        .convert_columns(std::slice::from_ref(&stored))
        .map_err(|e| bad_key(&e))?;
    let keep: BooleanArray = (0..read.num_rows())
        .map(|r| Some(stored.is_valid(r) && wanted.contains(&found.row(r))))
        .collect();
    arrow::compute::filter_record_batch(&read, &keep).map_err(|e| bad_key(&e))
}

/// The most keys a keyed read lists in its scan predicate.
pub const LISTED_KEYS: usize = 64;

/// The smallest (or, without `smallest`, the largest) non-null value of
/// `keys`; `None` when every key is null.
fn extreme(
    keys: &ArrayRef,
    smallest: bool,
) -> Result<Option<ScalarValue>, Box<dyn std::error::Error>> {
    let options = arrow::compute::SortOptions {
        descending: !smallest,
        nulls_first: false,
    };
    let first = arrow::compute::sort_to_indices(keys, Some(options), Some(1))?;
    match first.values().first() {
        Some(&row) if keys.is_valid(row as usize) => {
            Ok(Some(ScalarValue::try_from_array(keys, row as usize)?))
        }
        _ => Ok(None),
    }
}

async fn read(path: &Path, version: u64, filter: Option<Expr>) -> Result<RecordBatch, DeltaError> {
    let failed = |operation| {
        move |source| DeltaError::Delta {
            table: path.to_path_buf(),
            operation,
            source: Box::new(source),
        }
    };
    let query_failed = |source| DeltaError::Query {
        table: path.to_path_buf(),
        operation: "read lookup",
        source: Box::new(source),
    };
    let mut opened = table::open_existing(path).await?;
    opened
        .load_version(version)
        .await
        .map_err(failed("load version"))?;
    let schema = table::arrow_schema(path, &opened)?;
    // One partition: the same rows in the same order on every read (a
    // replay must see what the first run saw).
    let context = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    opened
        .update_datafusion_session(&context.state())
        .map_err(failed("read lookup"))?;
    let provider = opened.table_provider().await.map_err(query_failed)?;
    context
        .register_table("t", provider)
        .map_err(query_failed)?;
    let mut frame = context.table("t").await.map_err(query_failed)?;
    if let Some(filter) = filter {
        frame = frame.filter(filter).map_err(query_failed)?;
    }
    let batches = frame.collect().await.map_err(query_failed)?;
    let conformed = batches
        .iter()
        .map(|b| sink::conform(path, b, &schema))
        .collect::<Result<Vec<_>, _>>()?;
    arrow::compute::concat_batches(&schema, &conformed).map_err(|e| DeltaError::Schema {
        table: path.to_path_buf(),
        reason: e.to_string(),
    })
}
