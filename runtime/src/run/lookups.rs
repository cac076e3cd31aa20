//! The lookup inputs of a pipeline's stages: for a new epoch, pin every
//! lookup table's current version (recorded in the plan); for any epoch,
//! load the pinned versions, re-reading a table only when its version moved
//! (the cache holds the versions the last epoch used). A plugin always gets a
//! lookup in the shape validated at start: columns by name, in that order;
//! a column another writer added since is left out, a nullable column an
//! older version lacks is null, and a column dropped or retyped stops the
//! pipeline naming table, version and column (a plugin given another shape
//! could fail on every row and divert the whole epoch to the dead-letter
//! table).

use super::RunError;
use super::epoch::LookupPin;
use crate::delta::lookup;
use crate::pipeline::PreparedPipeline;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use std::collections::HashMap;
use std::path::PathBuf;

/// A stage's lookup batches, by stage index: `(input port, whole table)`.
pub type LookupBatches = HashMap<usize, Vec<(String, RecordBatch)>>;

/// The lookup inputs of one pipeline and the cache of their tables.
pub struct Lookups {
    pipeline: String,
    /// `(stage index, stage name, port, table)`.
    inputs: Vec<(usize, String, String, PathBuf)>,
    /// `(stage index, port)` → the schema validated at start.
    validated: HashMap<(usize, String), SchemaRef>,
    /// `(table, version)` → the table as read (shaped per port on use).
    cache: HashMap<(PathBuf, u64), RecordBatch>,
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
                stage.lookups.iter().map(move |(port, table)| {
                    (index, stage.name.clone(), port.clone(), table.clone())
                })
            })
            .collect();
        Lookups {
            pipeline: pipeline.name.clone(),
            inputs,
            validated: prepared.lookup_schemas.clone(),
            cache: HashMap::new(),
        }
    }

    fn failed(&self) -> impl Fn(crate::delta::DeltaError) -> RunError + '_ {
        |source| RunError::Delta {
            pipeline: self.pipeline.clone(),
            source,
        }
    }

    /// Every lookup table's current version, for a new epoch's plan.
    pub async fn pin_current(&self) -> Result<Vec<LookupPin>, RunError> {
        let mut pins = Vec::new();
        for (_, stage, port, table) in &self.inputs {
            pins.push(LookupPin {
                stage: stage.clone(),
                port: port.clone(),
                table: table.display().to_string(),
                version: lookup::latest(table).await.map_err(self.failed())?,
            });
        }
        Ok(pins)
    }

    /// The lookup batches of an epoch with `pins` (a plan written before
    /// lookups were recorded, or before a lookup was added, reads the
    /// current version of what it lacks).
    pub async fn load(&mut self, pins: &[LookupPin]) -> Result<LookupBatches, RunError> {
        let mut batches = LookupBatches::new();
        let mut used = Vec::new();
        for (index, stage, port, table) in self.inputs.clone() {
            // A replay reads the table and version the plan recorded, even if
            // the pipeline file now points the port at another table.
            let recorded = pins
                .iter()
                .find(|p| p.stage == stage && p.port == port)
                .map(|p| (PathBuf::from(&p.table), p.version));
            let (table, version) = match recorded {
                Some(pinned) => pinned,
                None => {
                    let version = lookup::latest(&table).await.map_err(self.failed())?;
                    (table, version)
                }
            };
            let key = (table.clone(), version);
            let read = match self.cache.get(&key) {
                Some(batch) => batch.clone(),
                None => {
                    tracing::debug!(pipeline = %self.pipeline, stage = %stage, table = %table.display(), version, "reading lookup table");
                    let batch = lookup::read_version(&table, version)
                        .await
                        .map_err(self.failed())?;
                    self.cache.insert(key.clone(), batch.clone());
                    batch
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
            used.push(key);
            batches.entry(index).or_default().push((port, batch));
        }
        self.cache.retain(|key, _| used.contains(key));
        Ok(batches)
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
}
