//! The `upsert` sink mode: SCD type 1 change application (seed 002's
//! `CDCUpserter` with `MERGE INTO`), safe against late and replayed events.
//!
//! An epoch's changes (one per key, as `cdc-upsert` emits them; a Boolean
//! column marks deletes) are applied in two commits, each carrying the
//! epoch's `txn` action so a replay skips what is already there:
//!
//! 1. **Tombstones** (`<table>_tombstones`: the key and ordering columns): a
//!    delete newer than the stored row and the key's tombstone records it;
//!    an upsert newer than the tombstone removes it. So a tombstone exists
//!    exactly while a key's newest known change is a delete.
//! 2. **The table**: `MERGE` on the key where a change applies only if its
//!    ordering value is greater than the stored row's (Spark's
//!    `WHEN MATCHED AND s.ts > t.ts`): delete → `DELETE`, upsert → `UPDATE`
//!    of every column, unknown key → `INSERT`. Before it, upserts not newer
//!    than the key's tombstone are dropped, so an older change arriving
//!    after a delete does not bring the row back, and so are deletes of keys
//!    the table does not hold (see [`applicable`]). Deletes are never
//!    dropped for a tombstone: on a replay after step 1 the epoch's own
//!    tombstones are already written.
//!
//! Ties (equal ordering values) keep what is stored, the same rule
//! `cdc-upsert` applies inside a batch (the first change wins), so the
//! result does not depend on where epochs end. The table's Change Data Feed
//! (on by default) records the updates, inserts and deletes.

use super::sink::{SinkTarget, equal_keys, merge_source, quote, target_column};
use super::{DeltaError, commit_info, table};
use crate::pipeline::Upsert;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::DeltaTable;
use deltalake::datafusion::prelude::SessionContext;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use std::path::Path;
use std::sync::Arc;

/// Ordering column types: compared exactly by `>` in SQL.
fn orderable(data_type: &DataType) -> bool {
    data_type.is_integer()
        || matches!(
            data_type,
            DataType::Timestamp(..)
                | DataType::Date32
                | DataType::Date64
                | DataType::Decimal128(..)
                | DataType::Decimal256(..)
        )
}

/// Problems with the upsert columns of the port feeding the sink, as
/// `(key under upsert, message)`.
pub fn check_columns(port: &Schema, upsert: &Upsert) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let mut column =
        |key: &str, name: &str, wanted: &dyn Fn(&DataType) -> bool, what: &str| match port
            .field_with_name(name)
        {
            Err(_) => problems.push((
                key.to_string(),
                format!("column `{name}` is not in the stream"),
            )),
            Ok(field) if !wanted(field.data_type()) => problems.push((
                key.to_string(),
                format!("column `{name}` has type {}; {what}", field.data_type()),
            )),
            Ok(_) => {}
        };
    for key in &upsert.key {
        column("key", key, &|_| true, "");
    }
    let ordering = "the ordering column must be an integer, decimal, timestamp or date \
                    (`cdc-upsert` turns RFC 3339 text into timestamps)";
    column("order_by", &upsert.order_by, &orderable, ordering);
    let marker = "the delete marker must be Boolean";
    column(
        "deleted",
        &upsert.deleted,
        &|t| t == &DataType::Boolean,
        marker,
    );
    problems
}

/// The tombstone table's columns: the key columns and the ordering column of
/// the table's schema, none null.
pub fn tombstone_schema(stored: &Schema, upsert: &Upsert) -> Result<SchemaRef, String> {
    let fields = (upsert.key.iter().chain([&upsert.order_by]))
        .map(|name| {
            let field = stored
                .field_with_name(name)
                .map_err(|_| format!("no column `{name}`"))?;
            Ok(Field::new(name, field.data_type().clone(), false))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// Whether an existing tombstone table fits the sink's key and ordering
/// columns (a missing one is created at start).
pub async fn check_tombstones(stored: &Schema, upsert: &Upsert) -> Result<(), String> {
    let Ok(wanted) = tombstone_schema(stored, upsert) else {
        return Ok(()); // the missing columns are reported by `check_columns`
    };
    let path = &upsert.tombstones;
    let Some(existing) = table::open(path).await.map_err(|e| e.to_string())? else {
        return Ok(());
    };
    let current = table::delta_schema(path, &existing).map_err(|e| e.to_string())?;
    let wanted = table::to_delta_schema(&wanted)?;
    table::check_fits(&current, &wanted).map_err(|reason| {
        format!(
            "{} does not fit the key and ordering columns: {reason}",
            path.display()
        )
    })
}

/// Applies one epoch of changes (see the module docs) and returns the table
/// at its new version. `batches` are the stage's rows, delete marker
/// included; `properties` carry the epoch's `txn` and record.
pub async fn write(
    target: &SinkTarget,
    upsert: &Upsert,
    table: DeltaTable,
    batches: Vec<RecordBatch>,
    epoch: u64,
    properties: CommitProperties,
) -> Result<DeltaTable, DeltaError> {
    let path = target.path.as_path();
    let stored = table::arrow_schema(path, &table)?;
    let changes = changes(path, upsert, &stored, &batches)?;
    let Some(changes) = changes else {
        return target
            .append(table, vec![RecordBatch::new_empty(stored)], properties)
            .await;
    };
    super::sink::check_unique_keys(path, std::slice::from_ref(&changes), &upsert.key)?;
    let tombstones = table::open_existing(&upsert.tombstones).await?;
    let (for_tombstones, for_table) =
        applicable(path, upsert, &tombstones, &table, changes).await?;
    let written = commit_info::committed_epoch(&upsert.tombstones, &tombstones, &target.app_id)
        .await?
        .is_some_and(|done| done >= epoch);
    if !written && !for_tombstones.is_empty() {
        let txn = Transaction::new(&target.app_id, i64::try_from(epoch).unwrap_or(i64::MAX));
        let record =
            serde_json::json!({"app_id": target.app_id, "epoch": epoch, "tombstones_of": path});
        let properties = CommitProperties::default()
            .with_application_transaction(txn)
            .with_metadata([(commit_info::KEY.to_string(), record)]);
        record_tombstones(upsert, tombstones, &for_tombstones, properties).await?;
    }
    apply(target, upsert, table, &stored, for_table, properties).await
}

/// The epoch's rows conformed to the table's columns, with the delete marker
/// last; `None` when there are none. A null key, ordering value or marker is
/// an error naming the column.
fn changes(
    path: &Path,
    upsert: &Upsert,
    stored: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<Option<RecordBatch>, DeltaError> {
    let schema_error = |reason: String| DeltaError::Schema {
        table: path.to_path_buf(),
        reason,
    };
    let mut conformed = Vec::new();
    for batch in batches.iter().filter(|b| b.num_rows() > 0) {
        for name in upsert.key.iter().chain([&upsert.order_by, &upsert.deleted]) {
            let column = batch.column_by_name(name).ok_or_else(|| {
                schema_error(format!("upsert column `{name}` is missing from the stream"))
            })?;
            if column.null_count() > 0 {
                let row = (0..column.len())
                    .find(|&r| column.is_null(r))
                    .unwrap_or_default();
                return Err(schema_error(format!(
                    "upsert column `{name}` is null in row {row} of the epoch's changes; \
                     keys, ordering values and delete markers must be set (cdc-upsert rejects such events)"
                )));
            }
        }
        let marker = batch
            .column_by_name(&upsert.deleted)
            .expect("checked above");
        if marker.data_type() != &DataType::Boolean {
            return Err(schema_error(format!(
                "upsert column `{}` is not Boolean",
                upsert.deleted
            )));
        }
        let rows = super::sink::conform(path, batch, stored)?;
        let mut columns = rows.columns().to_vec();
        columns.push(marker.clone());
        let mut fields: Vec<_> = stored.fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new(
            &upsert.deleted,
            DataType::Boolean,
            false,
        )));
        let schema = Arc::new(Schema::new(fields));
        conformed
            .push(RecordBatch::try_new(schema, columns).map_err(|e| schema_error(e.to_string()))?);
    }
    let Some(first) = conformed.first() else {
        return Ok(None);
    };
    arrow::compute::concat_batches(&first.schema(), &conformed)
        .map(Some)
        .map_err(|e| schema_error(e.to_string()))
}

/// The changes each commit applies (see the module docs), from one query of
/// `changes` against the tombstones `t` and, when the epoch deletes, the
/// stored rows' keys and ordering values `m`:
///
/// - for the tombstones: deletes newer than both the stored row and the
///   tombstone (a late or tied delete of a live key leaves none), and
///   upserts newer than an existing tombstone (which they remove); key,
///   ordering and marker columns only;
/// - for the table: upserts newer than their key's tombstone, and deletes of
///   keys the table holds with an older ordering value.
///
/// Every row handed to a merge is taken by one of its clauses: with Change
/// Data Feed on, deltalake 1.1 validates a null change row for each source
/// row no clause takes against the table's NOT NULL columns and fails.
/// Replay-safe: only the tombstones can have changed since the first try
/// (step 1 done, step 2 not), and the table's rows computed from them stay
/// the same (an upsert that removed a tombstone was newer than it).
async fn applicable(
    path: &Path,
    upsert: &Upsert,
    tombstones: &DeltaTable,
    table: &DeltaTable,
    changes: RecordBatch,
) -> Result<(Vec<RecordBatch>, Vec<RecordBatch>), DeltaError> {
    let failed = |source| DeltaError::Query {
        table: path.to_path_buf(),
        operation: "upsert (tombstone check)",
        source: Box::new(source),
    };
    let deletes = changes
        .column_by_name(&upsert.deleted)
        .map_or(0, |marker| marker.as_boolean().true_count());
    let context = SessionContext::new();
    for (name, source) in [("t", tombstones), ("m", table)] {
        source
            .update_datafusion_session(&context.state())
            .map_err(|e| DeltaError::Delta {
                table: path.to_path_buf(),
                operation: "upsert (tombstone check)",
                source: Box::new(e),
            })?;
        let provider = source.table_provider().await.map_err(failed)?;
        context.register_table(name, provider).map_err(failed)?;
    }
    context.register_batch("s", changes).map_err(failed)?;
    let (order, deleted) = (quote(&upsert.order_by), quote(&upsert.deleted));
    let first_key = quote(&upsert.key[0]);
    let tomb_newer = format!("(t.{first_key} IS NULL OR s.{order} > t.{order})");
    // Without deletes, the stored rows do not matter: skip their scan.
    let (held_join, held, stored_older) = if deletes > 0 {
        let columns = (upsert.key.iter().chain([&upsert.order_by]))
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", ");
        (
            format!(
                "LEFT JOIN (SELECT {columns} FROM m) AS m ON {}",
                equal_keys(&upsert.key, "s", "m")
            ),
            format!("m.{first_key} IS NOT NULL"),
            format!("(m.{first_key} IS NULL OR s.{order} > m.{order})"),
        )
    } else {
        (String::new(), "FALSE".to_string(), "TRUE".to_string())
    };
    let joined = format!(
        "FROM s LEFT JOIN t ON {} {held_join}",
        equal_keys(&upsert.key, "s", "t")
    );
    let table_rows = format!(
        "SELECT s.* {joined} WHERE (NOT s.{deleted} AND {tomb_newer}) \
         OR (s.{deleted} AND {held} AND {stored_older})"
    );
    let tombstone_columns = (upsert.key.iter().chain([&upsert.order_by, &upsert.deleted]))
        .map(|c| format!("s.{}", quote(c)))
        .collect::<Vec<_>>()
        .join(", ");
    let tombstone_rows = format!(
        "SELECT {tombstone_columns} {joined} WHERE (s.{deleted} AND {stored_older} AND {tomb_newer}) \
         OR (NOT s.{deleted} AND t.{first_key} IS NOT NULL AND s.{order} > t.{order})"
    );
    let mut results = Vec::new();
    for sql in [tombstone_rows, table_rows] {
        let rows = context
            .sql(&sql)
            .await
            .map_err(failed)?
            .collect()
            .await
            .map_err(failed)?;
        results.push(
            rows.into_iter()
                .filter(|b| b.num_rows() > 0)
                .collect::<Vec<_>>(),
        );
    }
    let for_table = results.pop().expect("two queries");
    let for_tombstones = results.pop().expect("two queries");
    Ok((for_tombstones, for_table))
}

/// Step 1: tombstones for the newer deletes, none for keys with a newer upsert.
async fn record_tombstones(
    upsert: &Upsert,
    tombstones: DeltaTable,
    changes: &[RecordBatch],
    properties: CommitProperties,
) -> Result<(), DeltaError> {
    let path = &upsert.tombstones;
    let (order, deleted) = (quote(&upsert.order_by), quote(&upsert.deleted));
    let newer = format!("s.{order} > t.{order}");
    let source = merge_source(path, changes.to_vec(), "record tombstones")?;
    let columns: Vec<&String> = upsert.key.iter().chain([&upsert.order_by]).collect();
    let failed = |source| DeltaError::Delta {
        table: path.clone(),
        operation: "record tombstones",
        source: Box::new(source),
    };
    tombstones
        .merge(source, equal_keys(&upsert.key, "t", "s"))
        .with_session_state(super::session::state())
        .with_source_alias("s")
        .with_target_alias("t")
        .with_writer_properties(table::writer_properties())
        .with_commit_properties(properties)
        .when_matched_update(|update| {
            update
                .predicate(format!("s.{deleted} AND {newer}"))
                .update(target_column(&upsert.order_by), format!("s.{order}"))
        })
        .map_err(failed)?
        .when_matched_delete(|delete| delete.predicate(format!("NOT s.{deleted} AND {newer}")))
        .map_err(failed)?
        .when_not_matched_insert(|mut insert| {
            insert = insert.predicate(format!("s.{deleted}"));
            for column in &columns {
                insert = insert.set(target_column(column), format!("s.{}", quote(column)));
            }
            insert
        })
        .map_err(failed)?
        .await
        .map_err(failed)?;
    Ok(())
}

/// Step 2: the changes newer than the stored rows, applied to the table.
async fn apply(
    target: &SinkTarget,
    upsert: &Upsert,
    table: DeltaTable,
    stored: &SchemaRef,
    changes: Vec<RecordBatch>,
    properties: CommitProperties,
) -> Result<DeltaTable, DeltaError> {
    let path = target.path.as_path();
    if changes.iter().all(|b| b.num_rows() == 0) {
        return target
            .append(
                table,
                vec![RecordBatch::new_empty(stored.clone())],
                properties,
            )
            .await;
    }
    let (order, deleted) = (quote(&upsert.order_by), quote(&upsert.deleted));
    let newer = format!("s.{order} > t.{order}");
    let columns: Vec<String> = stored.fields().iter().map(|f| f.name().clone()).collect();
    let failed = |source| DeltaError::Delta {
        table: path.to_path_buf(),
        operation: "upsert",
        source: Box::new(source),
    };
    let (table, _metrics) = table
        .merge(
            merge_source(path, changes, "upsert")?,
            equal_keys(&upsert.key, "t", "s"),
        )
        .with_session_state(super::session::state())
        .with_source_alias("s")
        .with_target_alias("t")
        .with_writer_properties(table::writer_properties())
        .with_commit_properties(properties)
        .when_matched_delete(|delete| delete.predicate(format!("s.{deleted} AND {newer}")))
        .map_err(failed)?
        .when_matched_update(|mut update| {
            update = update.predicate(format!("NOT s.{deleted} AND {newer}"));
            for column in columns.iter().filter(|c| !upsert.key.contains(c)) {
                update = update.update(target_column(column), format!("s.{}", quote(column)));
            }
            update
        })
        .map_err(failed)?
        .when_not_matched_insert(|mut insert| {
            insert = insert.predicate(format!("NOT s.{deleted}"));
            for column in &columns {
                insert = insert.set(target_column(column), format!("s.{}", quote(column)));
            }
            insert
        })
        .map_err(failed)?
        .await
        .map_err(failed)?;
    Ok(table)
}

#[cfg(test)]
mod tests;
