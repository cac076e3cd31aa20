//! Parquet landing files: typed columns, not raw bytes. The pipeline's
//! schema is one file's (`schema_from`, else the first Parquet file of the
//! directory by name, as Spark's file stream source takes a schema when it
//! starts); every later file must have exactly those columns, found by name,
//! with the same types — a file with a column more, a column less or another
//! type stops the epoch before it is planned, naming the file and the column
//! (Auto Loader likewise stops on a new column rather than drop it). Two
//! columns are appended: `_file` (Utf8, the file name) and `_row` (Int64,
//! 1-based row within the file), the position of each row in dead letters.

use super::LandingError;
use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::path::Path;
use std::sync::Arc;

/// The column holding each row's file name.
pub const FILE_COLUMN: &str = "_file";
/// The column holding each row's 1-based row number within its file.
pub const ROW_COLUMN: &str = "_row";

/// Rows decoded per Arrow batch while reading a file.
const READ_BATCH_ROWS: usize = 64 * 1024;

/// The source schema for Parquet files shaped like `sample`: its columns
/// (without metadata) followed by `_file` and `_row`.
///
/// Errors: the sample cannot be read or decoded, or it already has a column
/// named `_file` or `_row`.
pub fn schema_of(sample: &Path) -> Result<SchemaRef, LandingError> {
    let file = std::fs::File::open(sample).map_err(|source| LandingError::Read {
        file: sample.to_path_buf(),
        source,
    })?;
    // Reads the footer only.
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| LandingError::Parquet {
            file: sample.to_path_buf(),
            reason: e.to_string(),
        })?;
    let mut fields: Vec<Field> = Vec::new();
    for field in builder.schema().fields() {
        if [FILE_COLUMN, ROW_COLUMN].contains(&field.name().as_str()) {
            return Err(LandingError::ParquetColumn {
                file: sample.to_path_buf(),
                column: field.name().clone(),
                reason:
                    "is a name Weir adds to every Parquet row (its file and row); rename the column"
                        .into(),
            });
        }
        fields.push(field.as_ref().clone().with_metadata(Default::default()));
    }
    fields.push(Field::new(FILE_COLUMN, DataType::Utf8, false));
    fields.push(Field::new(ROW_COLUMN, DataType::Int64, false));
    Ok(Arc::new(Schema::new(fields)))
}

/// Decodes the whole Parquet file `name` (its `bytes`, read from `path`) into
/// one batch of `schema` (from [`schema_of`]): columns by name, the types
/// exactly as in the schema (list element names may differ, as writers name
/// them differently; struct fields must agree by name; values are never
/// converted).
///
/// Errors: the file does not decode; a column of the schema is missing, has
/// another type, or holds nulls where the schema says it has none; the file
/// has a column the schema lacks.
pub fn read(
    name: &str,
    path: &Path,
    bytes: Vec<u8>,
    schema: &SchemaRef,
) -> Result<RecordBatch, LandingError> {
    let decode = |e: &dyn std::fmt::Display| LandingError::Parquet {
        file: path.to_path_buf(),
        reason: e.to_string(),
    };
    let column_error = |column: &str, reason: String| LandingError::ParquetColumn {
        file: path.to_path_buf(),
        column: column.to_string(),
        reason,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes))
        .map_err(|e| decode(&e))?
        .with_batch_size(READ_BATCH_ROWS);
    let file_schema = builder.schema().clone();
    let data_fields = &schema.fields()[..schema.fields().len() - 2];
    for field in file_schema.fields() {
        if !data_fields.iter().any(|f| f.name() == field.name()) {
            return Err(column_error(
                field.name(),
                "is not in the pipeline's schema (taken from `schema_from` or the first file); \
                 update the schema to read files with it"
                    .into(),
            ));
        }
    }
    let reader = builder.build().map_err(|e| decode(&e))?;
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| decode(&e))?;
    let decoded = arrow::compute::concat_batches(&file_schema, &batches).map_err(|e| decode(&e))?;
    let rows = decoded.num_rows();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in data_fields {
        let column = decoded
            .column_by_name(field.name())
            .ok_or_else(|| column_error(field.name(), "is missing".into()))?;
        let column = if column.data_type() == field.data_type() {
            column.clone()
        } else if same_shape(column.data_type(), field.data_type()) {
            // Only list element names, nullability or metadata differ: a relabelling.
            arrow::compute::cast(column, field.data_type()).map_err(|e| decode(&e))?
        } else {
            return Err(column_error(
                field.name(),
                format!(
                    "is {} but the pipeline's schema says {}",
                    column.data_type(),
                    field.data_type()
                ),
            ));
        };
        if !field.is_nullable() && column.null_count() > 0 {
            return Err(column_error(
                field.name(),
                format!(
                    "holds nulls ({} of {rows} rows) but the pipeline's schema says it has none",
                    column.null_count()
                ),
            ));
        }
        columns.push(column);
    }
    columns.push(Arc::new(StringArray::from_iter_values(
        std::iter::repeat_n(name, rows),
    )));
    let row_numbers = (1..=rows).map(|r| i64::try_from(r).expect("rows fit in i64"));
    columns.push(Arc::new(Int64Array::from_iter_values(row_numbers)));
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| decode(&e))
}

/// Whether `a` and `b` hold the same values the same way: equal but for the
/// names of list and map entry fields (`item`, `element`), nullability and
/// metadata. Struct fields must agree by name and order: a struct whose
/// fields were renamed or swapped is another shape (Spark resolves struct
/// fields by name, so reading it by position would swap values).
fn same_shape(a: &DataType, b: &DataType) -> bool {
    use DataType::{FixedSizeList, LargeList, List, Map, Struct};
    match (a, b) {
        (List(x), List(y)) | (LargeList(x), LargeList(y)) => {
            same_shape(x.data_type(), y.data_type())
        }
        (FixedSizeList(x, n), FixedSizeList(y, m)) => {
            n == m && same_shape(x.data_type(), y.data_type())
        }
        (Map(x, sorted_x), Map(y, sorted_y)) => {
            sorted_x == sorted_y && same_shape(x.data_type(), y.data_type())
        }
        (Struct(x), Struct(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|(f, g)| f.name() == g.name() && same_shape(f.data_type(), g.data_type()))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray, Decimal128Array, Int32Array};
    use arrow::datatypes::{Decimal128Type, Int64Type};

    fn write(path: &Path, batch: &RecordBatch) {
        let file = std::fs::File::create(path).unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        writer.write(batch).unwrap();
        writer.close().unwrap();
    }

    fn orders(ids: &[&str], cents: &[Option<i128>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("order_id", DataType::Utf8, false),
            Field::new("amount", DataType::Decimal128(22, 2), true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(ids.to_vec())),
                Arc::new(
                    Decimal128Array::from(cents.to_vec())
                        .with_precision_and_scale(22, 2)
                        .unwrap(),
                ),
            ],
        )
        .unwrap()
    }

    #[test]
    fn typed_columns_arrive_unchanged_with_file_and_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.parquet");
        write(
            &path,
            &orders(
                &["o1", "o2"],
                &[Some(1999), Some(i128::from(i64::MAX) * 10)],
            ),
        );
        let schema = schema_of(&path).unwrap();
        let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["order_id", "amount", "_file", "_row"]);
        let batch = read("a.parquet", &path, std::fs::read(&path).unwrap(), &schema).unwrap();
        let amount = batch.column(1).as_primitive::<Decimal128Type>();
        assert_eq!(amount.value(1), i128::from(i64::MAX) * 10);
        assert_eq!(batch.column(2).as_string::<i32>().value(1), "a.parquet");
        let rows = batch.column(3).as_primitive::<Int64Type>();
        assert_eq!((rows.value(0), rows.value(1)), (1, 2));
    }

    #[test]
    fn a_file_with_another_type_names_the_file_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let sample = dir.path().join("a.parquet");
        write(&sample, &orders(&["o1"], &[Some(1)]));
        let schema = schema_of(&sample).unwrap();
        let other = dir.path().join("b.parquet");
        let retyped = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("order_id", DataType::Utf8, false),
                Field::new("amount", DataType::Int32, true),
            ])),
            vec![
                Arc::new(StringArray::from(vec!["o2"])),
                Arc::new(Int32Array::from(vec![5])),
            ],
        )
        .unwrap();
        write(&other, &retyped);
        let error = read("b.parquet", &other, std::fs::read(&other).unwrap(), &schema)
            .unwrap_err()
            .to_string();
        assert!(error.contains("b.parquet"), "{error}");
        assert!(
            error.contains("`amount` is Int32 but the pipeline's schema says Decimal128(22, 2)"),
            "{error}"
        );
    }

    #[test]
    fn a_file_with_a_column_more_or_less_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sample = dir.path().join("a.parquet");
        write(&sample, &orders(&["o1"], &[Some(1)]));
        let schema = schema_of(&sample).unwrap();
        let narrow = dir.path().join("b.parquet");
        let only_id = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new(
                "order_id",
                DataType::Utf8,
                false,
            )])),
            vec![Arc::new(StringArray::from(vec!["o2"]))],
        )
        .unwrap();
        write(&narrow, &only_id);
        let error = read(
            "b.parquet",
            &narrow,
            std::fs::read(&narrow).unwrap(),
            &schema,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("`amount` is missing"), "{error}");

        let wide_schema = Arc::new(Schema::new(vec![Field::new("note", DataType::Utf8, true)]));
        let wide = RecordBatch::try_new(
            wide_schema,
            vec![Arc::new(StringArray::from(vec![Some("x")]))],
        )
        .unwrap();
        let extra = dir.path().join("c.parquet");
        write(&extra, &wide);
        let error = read("c.parquet", &extra, std::fs::read(&extra).unwrap(), &schema)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`note` is not in the pipeline's schema"),
            "{error}"
        );
    }

    #[test]
    fn nulls_in_a_column_the_schema_says_has_none_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sample = dir.path().join("a.parquet");
        write(&sample, &orders(&["o1"], &[Some(1)]));
        let schema = schema_of(&sample).unwrap();
        let nullable = Arc::new(Schema::new(vec![
            Field::new("order_id", DataType::Utf8, true),
            Field::new("amount", DataType::Decimal128(22, 2), true),
        ]));
        let with_null = RecordBatch::try_new(
            nullable,
            vec![
                Arc::new(StringArray::from(vec![None::<&str>])),
                Arc::new(
                    Decimal128Array::from(vec![Some(1)])
                        .with_precision_and_scale(22, 2)
                        .unwrap(),
                ),
            ],
        )
        .unwrap();
        let other = dir.path().join("b.parquet");
        write(&other, &with_null);
        let error = read("b.parquet", &other, std::fs::read(&other).unwrap(), &schema)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`order_id` holds nulls (1 of 1 rows)"),
            "{error}"
        );
        assert!(with_null.column(0).is_null(0));
    }

    #[test]
    fn struct_fields_agree_by_name_list_items_by_shape() {
        use arrow::datatypes::Fields;
        let structure = |a: &str, b: &str| {
            DataType::Struct(Fields::from(vec![
                Field::new(a, DataType::Utf8, true),
                Field::new(b, DataType::Utf8, true),
            ]))
        };
        assert!(same_shape(
            &structure("id", "country"),
            &structure("id", "country")
        ));
        assert!(!same_shape(
            &structure("id", "country"),
            &structure("country", "id")
        ));
        assert!(!same_shape(
            &structure("id", "country"),
            &structure("cust", "ctry")
        ));
        let list = |item: &str| DataType::List(Arc::new(Field::new(item, DataType::Int64, true)));
        assert!(same_shape(&list("item"), &list("element")));
    }

    #[test]
    fn garbage_is_a_decode_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.parquet");
        std::fs::write(&path, b"not parquet at all").unwrap();
        let error = schema_of(&path).unwrap_err().to_string();
        assert!(error.contains("bad.parquet"), "{error}");
    }
}
