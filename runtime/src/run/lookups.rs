//! The lookup inputs of a pipeline's stages: for a new epoch, pin every
//! lookup table's version (recorded in the plan): the version the epoch's
//! change source read the table up to when it reads that table (so a
//! profile is built from the state its changes lead to), else the current
//! one; for any epoch, load the pinned versions. A whole-table lookup is
//! re-read only when its version moved (the cache holds the versions the
//! last epoch used); a keyed lookup reads only the rows of the epoch's keys,
//! and of those only the keys not already read at that version.
//!
//! A plugin always gets a lookup in the shape validated at start: columns
//! by name, in that order; a column another writer added since is left out,
//! a nullable column an older version lacks is null, and a column dropped
//! or retyped stops the pipeline naming table, version and column (a plugin
//! given another shape could fail on every row and divert the whole epoch to
//! the dead-letter table).

use super::RunError;
use super::epoch::{LookupPin, SourceRange};
use crate::delta::lookup;
use crate::pipeline::{Lookup, PreparedPipeline};
use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow::datatypes::SchemaRef;
use arrow::row::{OwnedRow, RowConverter, SortField};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

/// The most rows a keyed lookup keeps cached per table version.
const KEYED_CACHE_ROWS: usize = 1 << 20;

/// A stage's lookup batches, by stage index: `(input port, rows)`.
pub type LookupBatches = HashMap<usize, Vec<(String, RecordBatch)>>;

/// The rows of one table version read so far for a keyed lookup.
struct KeyedRows {
    /// The keys whose rows are in `batch` (all of their rows).
    read: HashSet<OwnedRow>,
    /// Those rows, in the order read.
    batch: Option<RecordBatch>,
}

/// The lookup inputs of one pipeline and the cache of their tables.
pub struct Lookups {
    pipeline: String,
    /// `(stage index, stage name, lookup)`.
    inputs: Vec<(usize, String, Lookup)>,
    /// `(stage index, port)` → the schema validated at start.
    validated: HashMap<(usize, String), SchemaRef>,
    /// `(table, version)` → the whole table as read (shaped per port on use).
    cache: HashMap<(PathBuf, u64), RecordBatch>,
    /// `(table, version, key column)` → the rows read for keyed lookups.
    keyed: HashMap<(PathBuf, u64, String), KeyedRows>,
}

impl Lookups {
    /// The lookup inputs `prepared` declares.
    pub fn new(prepared: &PreparedPipeline) -> Self {
        let pipeline = &prepared.spec;
        let inputs = pipeline
            .stages
            .iter()
            .enumerate()
            .flat_map(|(index, stage)| {
                stage
                    .lookups
                    .iter()
                    .map(move |lookup| (index, stage.name.clone(), lookup.clone()))
            })
            .collect();
        Lookups {
            pipeline: pipeline.name.clone(),
            inputs,
            validated: prepared.lookup_schemas.clone(),
            cache: HashMap::new(),
            keyed: HashMap::new(),
        }
    }

    fn failed(&self) -> impl Fn(crate::delta::DeltaError) -> RunError + '_ {
        |source| RunError::Delta {
            pipeline: self.pipeline.clone(),
            source,
        }
    }

    /// The version of every lookup table for a new epoch reading `range`.
    pub async fn pin(&self, range: &SourceRange) -> Result<Vec<LookupPin>, RunError> {
        let mut pins = Vec::new();
        for (_, stage, input) in &self.inputs {
            let read_by_source = match range {
                SourceRange::Changes { tables } => tables
                    .iter()
                    .find(|t| {
                        crate::pipeline::validate::same_table(
                            std::path::Path::new(&t.table),
                            &input.table,
                        )
                    })
                    .map(|t| t.end.saturating_sub(1)),
                _ => None,
            };
            let version = match read_by_source {
                Some(version) => version,
                None => lookup::latest(&input.table).await.map_err(self.failed())?,
            };
            pins.push(LookupPin {
                stage: stage.clone(),
                port: input.port.clone(),
                table: input.table.display().to_string(),
                version,
            });
        }
        Ok(pins)
    }

    /// The lookup batches of an epoch with `pins` whose source rows are
    /// `source` (the keys of keyed lookups). A plan written before lookups
    /// were recorded, or before a lookup was added, reads the current
    /// version of what it lacks.
    pub async fn load(
        &mut self,
        pins: &[LookupPin],
        source: &RecordBatch,
    ) -> Result<LookupBatches, RunError> {
        let mut batches = LookupBatches::new();
        let mut used = Vec::new();
        let mut used_keyed = Vec::new();
        for (index, stage, input) in self.inputs.clone() {
            let port = input.port.clone();
            // A replay reads the table and version the plan recorded, even if
            // the pipeline file now points the port at another table.
            let recorded = pins
                .iter()
                .find(|p| p.stage == stage && p.port == port)
                .map(|p| (PathBuf::from(&p.table), p.version));
            let (table, version) = match recorded {
                Some(pinned) => pinned,
                None => {
                    let version = lookup::latest(&input.table).await.map_err(self.failed())?;
                    (input.table.clone(), version)
                }
            };
            let read = match &input.key {
                None => {
                    let key = (table.clone(), version);
                    used.push(key.clone());
                    match self.cache.get(&key) {
                        Some(batch) => batch.clone(),
                        None => {
                            tracing::debug!(pipeline = %self.pipeline, stage = %stage, table = %table.display(), version, "reading lookup table");
                            let batch = lookup::read_version(&table, version)
                                .await
                                .map_err(self.failed())?;
                            self.cache.insert(key, batch.clone());
                            batch
                        }
                    }
                }
                Some(column) => {
                    let key = (table.clone(), version, column.clone());
                    used_keyed.push(key.clone());
                    self.keyed_rows(key, source).await?
                }
            };
            let batch = match self.validated.get(&(index, port.clone())) {
                Some(validated) => in_validated_shape(&read, validated).map_err(|reason| {
                    RunError::LookupSchemaChanged(Box::new(super::LookupDrift {
                        pipeline: self.pipeline.clone(),
                        stage: stage.clone(),
                        port: port.clone(),
                        table: table.clone(),
                        version,
                        reason,
                    }))
                })?,
                None => read,
            };
            batches.entry(index).or_default().push((port, batch));
        }
        self.cache.retain(|key, _| used.contains(key));
        self.keyed.retain(|key, _| used_keyed.contains(key));
        Ok(batches)
    }

    /// The rows of table version `key.0 @ key.1` whose column `key.2` holds
    /// a value of that column in `source`, ordered by key (rows of one key
    /// in scan order, whatever was cached), reading only keys not read
    /// before at that version.
    async fn keyed_rows(
        &mut self,
        key: (PathBuf, u64, String),
        source: &RecordBatch,
    ) -> Result<RecordBatch, RunError> {
        let (table, version, column) = &key;
        let drift = |reason: String| RunError::Delta {
            pipeline: self.pipeline.clone(),
            source: crate::delta::DeltaError::Schema {
                table: table.clone(),
                reason: format!("lookup key `{column}`: {reason}"),
            },
        };
        let wanted = source
            .column_by_name(column)
            .ok_or_else(|| drift("the source rows have no such column".into()))?
            .clone();
        let converter = RowConverter::new(vec![SortField::new(wanted.data_type().clone())])
            .map_err(|e| drift(e.to_string()))?;
        let wanted_rows = converter
            .convert_columns(std::slice::from_ref(&wanted))
            .map_err(|e| drift(e.to_string()))?;
        let entry = self.keyed.entry(key.clone()).or_insert_with(|| KeyedRows {
            read: HashSet::new(),
            batch: None,
        });
        // Bounded: a table whose version stays pinned while ever new keys
        // are asked for starts its cache afresh past the limit.
        if entry.batch.as_ref().map_or(0, RecordBatch::num_rows) > KEYED_CACHE_ROWS {
            entry.read.clear();
            entry.batch = None;
        }
        // Keys of this epoch not read yet at this version, once each.
        let mut wanted_set = HashSet::new();
        let mut missing = Vec::new();
        for row in (0..wanted.len()).filter(|&r| wanted.is_valid(r)) {
            let owned = wanted_rows.row(row).owned();
            if !entry.read.contains(&owned) && !wanted_set.contains(&owned) {
                missing.push(row as u32);
            }
            wanted_set.insert(owned);
        }
        if !missing.is_empty() {
            let keys: ArrayRef =
                arrow::compute::take(&wanted, &UInt32Array::from(missing.clone()), None)
                    .map_err(|e| drift(e.to_string()))?;
            tracing::debug!(pipeline = %self.pipeline, table = %table.display(), version, keys = keys.len(), "reading lookup rows");
            let read = lookup::read_keys(table, *version, column, &keys)
                .await
                .map_err(|source| RunError::Delta {
                    pipeline: self.pipeline.clone(),
                    source,
                })?;
            let entry = self.keyed.get_mut(&key).expect("inserted above");
            entry.batch = Some(match entry.batch.take() {
                None => read,
                Some(before) => arrow::compute::concat_batches(&before.schema(), [&before, &read])
                    .map_err(|e| drift(e.to_string()))?,
            });
            for row in missing {
                entry.read.insert(wanted_rows.row(row as usize).owned());
            }
        }
        let entry = &self.keyed[&key];
        let Some(batch) = &entry.batch else {
            // Nothing read at all: the epoch has no keys.
            let schema = lookup::read_keys(table, *version, column, &wanted.slice(0, 0))
                .await
                .map_err(|source| RunError::Delta {
                    pipeline: self.pipeline.clone(),
                    source,
                })?
                .schema();
            return Ok(RecordBatch::new_empty(schema));
        };
        let stored = batch
            .column_by_name(column)
            .ok_or_else(|| drift("the table has no such column".into()))?;
        let stored =
            arrow::compute::cast(stored, wanted.data_type()).map_err(|e| drift(e.to_string()))?;
        let stored_rows = converter
            .convert_columns(&[stored])
            .map_err(|e| drift(e.to_string()))?;
        let mut chosen: Vec<u32> = (0..batch.num_rows())
            .filter(|&r| {
                batch.column_by_name(column).is_some_and(|c| c.is_valid(r))
                    && wanted_set.contains(&stored_rows.row(r).owned())
            })
            .map(|r| r as u32)
            .collect();
        // Stable: one key's rows keep their scan order.
        chosen.sort_by(|a, b| {
            stored_rows
                .row(*a as usize)
                .cmp(&stored_rows.row(*b as usize))
        });
        arrow::compute::take_record_batch(batch, &UInt32Array::from(chosen))
            .map_err(|e| drift(e.to_string()))
    }
}

/// `batch` with exactly the columns of `validated`, by name and in its
/// order; a nullable column the batch lacks is all nulls. Errors name every
/// required column missing, every column of another type (nested field
/// names aside), and every column holding nulls the validated schema does
/// not allow.
fn in_validated_shape(batch: &RecordBatch, validated: &SchemaRef) -> Result<RecordBatch, String> {
    let mut problems = Vec::new();
    let mut columns = Vec::with_capacity(validated.fields().len());
    for field in validated.fields() {
        let Some(column) = batch.column_by_name(field.name()) else {
            // An older version of a table that gained a nullable column
            // since (a replay pinned before it): nulls, as Delta reads it.
            if field.is_nullable() {
                columns.push(arrow::array::new_null_array(
                    field.data_type(),
                    batch.num_rows(),
                ));
            } else {
                problems.push(format!("column `{}` is missing", field.name()));
            }
            continue;
        };
        if !column.data_type().equals_datatype(field.data_type()) {
            problems.push(format!(
                "column `{}` has type {}, validated as {}",
                field.name(),
                column.data_type(),
                field.data_type()
            ));
            continue;
        }
        if !field.is_nullable() && column.null_count() > 0 {
            problems.push(format!(
                "column `{}` holds nulls, validated as non-null",
                field.name()
            ));
            continue;
        }
        columns.push(if column.data_type() == field.data_type() {
            column.clone()
        } else {
            arrow::compute::cast(column, field.data_type()).map_err(|e| e.to_string())?
        });
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    RecordBatch::try_new(validated.clone(), columns).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn users(fields: &[(&str, DataType)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(
            fields
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        ));
        let columns = fields
            .iter()
            .map(|(_, t)| match t {
                DataType::Int64 => Arc::new(Int64Array::from(vec![1, 2])) as _,
                _ => Arc::new(StringArray::from(vec!["a", "b"])) as _,
            })
            .collect();
        RecordBatch::try_new(schema, columns).unwrap()
    }

    #[test]
    fn a_lookup_keeps_the_validated_columns_in_their_order() {
        let validated = users(&[("user_id", DataType::Int64), ("age", DataType::Int64)]).schema();
        let now = users(&[
            ("note", DataType::Utf8),
            ("age", DataType::Int64),
            ("user_id", DataType::Int64),
        ]);
        let shaped = in_validated_shape(&now, &validated).unwrap();
        assert_eq!(shaped.schema(), validated);
        assert_eq!(shaped.num_rows(), 2);
    }

    #[test]
    fn a_dropped_or_retyped_lookup_column_is_named() {
        let validated = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int64, true),
            Field::new("age", DataType::Int64, true),
            Field::new("city", DataType::Utf8, false),
        ]));
        let now = users(&[("user_id", DataType::Int64), ("age", DataType::Utf8)]);
        let error = in_validated_shape(&now, &validated).unwrap_err();
        assert_eq!(
            error,
            "column `age` has type Utf8, validated as Int64; column `city` is missing"
        );
    }

    #[test]
    fn a_nullable_column_an_older_version_lacks_is_null() {
        let validated = users(&[("user_id", DataType::Int64), ("city", DataType::Utf8)]).schema();
        let older = users(&[("user_id", DataType::Int64)]);
        let shaped = in_validated_shape(&older, &validated).unwrap();
        assert_eq!(shaped.column(1).null_count(), 2);
    }

    /// A table `accounts(user_id, account)` with two files: users 1–3, then 10–12.
    async fn accounts(dir: &std::path::Path) -> PathBuf {
        let path = dir.join("accounts");
        let file = |ids: Vec<i64>, names: Vec<&str>| {
            RecordBatch::try_from_iter([
                ("user_id", Arc::new(Int64Array::from(ids)) as ArrayRef),
                ("account", Arc::new(StringArray::from(names)) as ArrayRef),
            ])
            .unwrap()
        };
        let first = file(vec![3, 1, 3, 2], vec!["c1", "a1", "c2", "b1"]);
        let schema = crate::delta::table::to_delta_schema(&first.schema()).unwrap();
        let mut table = crate::delta::table::create(
            &path,
            &schema,
            &[],
            &std::collections::BTreeMap::new(),
            vec![],
        )
        .await
        .unwrap();
        for batch in [first, file(vec![10, 11, 12], vec!["x", "y", "z"])] {
            table = table
                .write(vec![batch])
                .with_save_mode(deltalake::protocol::SaveMode::Append)
                .await
                .unwrap();
        }
        path
    }

    fn keyed(table: &std::path::Path) -> Lookups {
        Lookups {
            pipeline: "p".into(),
            inputs: vec![(
                0,
                "profile".into(),
                Lookup {
                    port: "accounts".into(),
                    table: table.to_path_buf(),
                    key: Some("user_id".into()),
                },
            )],
            validated: HashMap::new(),
            cache: HashMap::new(),
            keyed: HashMap::new(),
        }
    }

    fn source(ids: Vec<Option<i64>>) -> RecordBatch {
        RecordBatch::try_from_iter([("user_id", Arc::new(Int64Array::from(ids)) as ArrayRef)])
            .unwrap()
    }

    /// `(user_id, account)` rows of the stage's lookup.
    fn pairs(batches: &LookupBatches) -> Vec<(i64, String)> {
        let batch = &batches[&0][0].1;
        let ids = batch.column_by_name("user_id").unwrap();
        let ids = ids.as_any().downcast_ref::<Int64Array>().unwrap();
        let names = batch.column_by_name("account").unwrap();
        let names = names.as_any().downcast_ref::<StringArray>().unwrap();
        (0..batch.num_rows())
            .map(|r| (ids.value(r), names.value(r).to_string()))
            .collect()
    }

    fn pin(table: &std::path::Path, version: u64) -> Vec<LookupPin> {
        vec![LookupPin {
            stage: "profile".into(),
            port: "accounts".into(),
            table: table.display().to_string(),
            version,
        }]
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_keyed_lookup_reads_only_the_rows_of_the_epochs_keys_ordered_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let table = accounts(dir.path()).await;
        let mut lookups = keyed(&table);
        let pins = pin(&table, 2);
        let first = lookups
            .load(
                &pins,
                &source(vec![Some(3), Some(1), None, Some(3), Some(99)]),
            )
            .await
            .unwrap();
        // Ordered by key; one key's rows in scan order; nulls and unknown keys match nothing.
        assert_eq!(
            pairs(&first),
            [(1, "a1".into()), (3, "c1".into()), (3, "c2".into())]
        );
        // The next epoch at the same version reads only its new key, and
        // gives the same rows as a fresh read (a replay after a restart).
        let second = lookups
            .load(&pins, &source(vec![Some(11), Some(3)]))
            .await
            .unwrap();
        let fresh = keyed(&table)
            .load(&pins, &source(vec![Some(11), Some(3)]))
            .await
            .unwrap();
        assert_eq!(pairs(&second), pairs(&fresh));
        assert_eq!(
            pairs(&second),
            [(3, "c1".into()), (3, "c2".into()), (11, "y".into())]
        );
        let cached = &lookups.keyed[&(table.clone(), 2, "user_id".to_string())];
        assert_eq!(cached.read.len(), 4, "keys 1, 3, 99 and 11, each read once");
        assert_eq!(cached.batch.as_ref().unwrap().num_rows(), 4);
        // At the version before the second file, key 11 has no row.
        let older = lookups
            .load(&pin(&table, 1), &source(vec![Some(11), Some(2)]))
            .await
            .unwrap();
        assert_eq!(pairs(&older), [(2, "b1".into())]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_keyed_read_skips_the_files_whose_statistics_exclude_the_keys() {
        let dir = tempfile::tempdir().unwrap();
        let table = accounts(dir.path()).await;
        // Remove the second file (users 10–12): a whole-table read fails,
        // a read of user 2 never opens it.
        let log = std::fs::read_to_string(table.join("_delta_log").join(format!("{:020}.json", 2)))
            .unwrap();
        let added: serde_json::Value = log
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|l| l.get("add").is_some())
            .unwrap();
        std::fs::remove_file(table.join(added["add"]["path"].as_str().unwrap())).unwrap();
        assert!(lookup::read_version(&table, 2).await.is_err());
        let keys: ArrayRef = Arc::new(Int64Array::from(vec![2]));
        let rows = lookup::read_keys(&table, 2, "user_id", &keys)
            .await
            .unwrap();
        assert_eq!(rows.num_rows(), 1);
    }

    /// `weir bench profiles` overflowed a tokio worker's stack reading
    /// 10,000 keys: DataFusion rewrites a long `IN` list recursively.
    #[tokio::test(flavor = "multi_thread")]
    async fn regression_a_keyed_read_of_ten_thousand_keys_does_not_overflow_the_stack() {
        let dir = tempfile::tempdir().unwrap();
        let table = accounts(dir.path()).await;
        let keys: ArrayRef = Arc::new(Int64Array::from((0..10_000).collect::<Vec<i64>>()));
        let rows = lookup::read_keys(&table, 2, "user_id", &keys)
            .await
            .unwrap();
        assert_eq!(rows.num_rows(), 7, "every row of keys 1, 2, 3, 10, 11, 12");
        let some: ArrayRef = Arc::new(Int64Array::from(
            (0..5_000).map(|k| k * 2 + 1).collect::<Vec<i64>>(),
        ));
        let odd = lookup::read_keys(&table, 2, "user_id", &some)
            .await
            .unwrap();
        let ids = odd.column_by_name("user_id").unwrap();
        let ids = ids.as_any().downcast_ref::<Int64Array>().unwrap();
        let mut found: Vec<i64> = ids.values().to_vec();
        found.sort_unstable();
        assert_eq!(
            found,
            [1, 3, 3, 11],
            "only the listed keys, though the range covers more"
        );
    }

    #[test]
    fn a_lookup_of_a_table_the_change_source_reads_is_pinned_where_the_epoch_read_it_to() {
        let lookups = keyed(std::path::Path::new("/t/accounts"));
        let range = SourceRange::Changes {
            tables: vec![crate::run::epoch::TableVersions {
                name: "accounts".into(),
                table: "/t/accounts".into(),
                first: 4,
                end: 9,
                snapshot: false,
                rows: 12,
            }],
        };
        let pins = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(lookups.pin(&range))
            .unwrap();
        assert_eq!(pins[0].version, 8);
    }
}
