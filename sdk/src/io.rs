//! The inputs a plugin receives and the outputs it returns, with typed column
//! access whose errors name the input port and the column.

use crate::PluginError;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StructArray};
use arrow_schema::DataType;

/// The input batches of one `process` call, one per input port.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    streams: Vec<(String, RecordBatch)>,
}

impl Inputs {
    /// No inputs yet; add them with [`Inputs::with`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the batch for input port `name`.
    pub fn with(mut self, name: impl Into<String>, batch: RecordBatch) -> Self {
        self.streams.push((name.into(), batch));
        self
    }

    /// The input called `name`, or a bad-input error listing the inputs present.
    pub fn get(&self, name: &str) -> Result<Input<'_>, PluginError> {
        self.streams
            .iter()
            .find(|(n, _)| n == name)
            .map(|(name, batch)| Input { name, batch })
            .ok_or_else(|| {
                let present: Vec<&str> = self.streams.iter().map(|(n, _)| n.as_str()).collect();
                PluginError::bad_input(
                    name,
                    format!("no input called `{name}` (inputs present: {present:?})"),
                )
            })
    }

    /// All inputs in the order the host sent them.
    pub fn iter(&self) -> impl Iterator<Item = Input<'_>> {
        self.streams
            .iter()
            .map(|(name, batch)| Input { name, batch })
    }
}

/// One input port's batch.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    name: &'a str,
    batch: &'a RecordBatch,
}

impl<'a> Input<'a> {
    /// The port name.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The whole batch.
    pub fn batch(&self) -> &'a RecordBatch {
        self.batch
    }

    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// The top-level column `column`, untyped.
    pub fn column_any(&self, column: &str) -> Result<&'a ArrayRef, PluginError> {
        self.batch
            .column_by_name(column)
            .ok_or_else(|| self.missing(column))
    }

    /// The top-level column `column` downcast to `T` (e.g. `StringArray`).
    pub fn column<T: Array + 'static>(&self, column: &str) -> Result<&'a T, PluginError> {
        let array = self.column_any(column)?;
        array
            .as_any()
            .downcast_ref::<T>()
            .ok_or_else(|| self.wrong_type::<T>(column, array.data_type()))
    }

    /// A possibly nested column addressed by a dotted path such as `customer.id`.
    /// A row whose parent struct is null reads as null, as in Spark's `col("a.b")`.
    pub fn column_path(&self, path: &str) -> Result<ArrayRef, PluginError> {
        let mut parts = path.split('.');
        let first = parts.next().unwrap_or(path);
        let mut current: ArrayRef = self.column_any(first)?.clone();
        let mut walked = first.to_string();
        for part in parts {
            let parent = current
                .as_any()
                .downcast_ref::<StructArray>()
                .ok_or_else(|| {
                    PluginError::bad_input(
                        self.name,
                        format!(
                            "column `{walked}` is {}, not a struct, so `{path}` cannot be read",
                            current.data_type()
                        ),
                    )
                })?;
            let child = parent
                .column_by_name(part)
                .ok_or_else(|| self.missing(&format!("{walked}.{part}")))?;
            current = match parent.nulls() {
                Some(nulls) if nulls.null_count() > 0 => {
                    let parent_is_null = BooleanArray::new(!nulls.inner(), None);
                    arrow_select::nullif::nullif(child, &parent_is_null)?
                }
                _ => child.clone(),
            };
            walked = format!("{walked}.{part}");
        }
        Ok(current)
    }

    fn missing(&self, column: &str) -> PluginError {
        let present: Vec<&str> = self
            .batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        PluginError::bad_input(
            self.name,
            format!("column `{column}` is missing (columns present: {present:?})"),
        )
    }

    fn wrong_type<T>(&self, column: &str, actual: &DataType) -> PluginError {
        let wanted = short_type_name(std::any::type_name::<T>());
        PluginError::bad_input(
            self.name,
            format!("column `{column}` has type {actual}, expected a {wanted}"),
        )
    }
}

/// `arrow_array::array::PrimitiveArray<arrow_array::types::Int64Type>` → `PrimitiveArray<Int64Type>`.
fn short_type_name(full: &str) -> String {
    let mut short = String::new();
    let mut segment = String::new();
    for c in full.chars().chain(std::iter::once(' ')) {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            segment.push(c);
        } else {
            short.push_str(segment.rsplit("::").next().unwrap_or_default());
            segment.clear();
            short.push(c);
        }
    }
    short.trim_end().to_string()
}

/// The output batches of one `process` call, one per output port.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    streams: Vec<(String, RecordBatch)>,
}

impl Outputs {
    /// No outputs yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the batch for output port `name`.
    pub fn with(mut self, name: impl Into<String>, batch: RecordBatch) -> Self {
        self.streams.push((name.into(), batch));
        self
    }

    /// The batch for output port `name`, if produced.
    pub fn get(&self, name: &str) -> Option<&RecordBatch> {
        self.streams.iter().find(|(n, _)| n == name).map(|(_, b)| b)
    }

    /// All outputs as `(port, batch)` pairs.
    pub fn into_vec(self) -> Vec<(String, RecordBatch)> {
        self.streams
    }

    /// All outputs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &RecordBatch)> {
        self.streams.iter().map(|(n, b)| (n.as_str(), b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use arrow_buffer::NullBuffer;
    use arrow_schema::{Field, Fields, Schema};
    use std::sync::Arc;

    fn nested() -> RecordBatch {
        let id = Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef;
        let fields = Fields::from(vec![Field::new("id", DataType::Int64, true)]);
        let customer = StructArray::new(
            fields.clone(),
            vec![id],
            Some(NullBuffer::from(vec![true, false, true])),
        );
        let status = Arc::new(StringArray::from(vec!["PAID", "NEW", "PAID"])) as ArrayRef;
        let schema = Schema::new(vec![
            Field::new("status", DataType::Utf8, false),
            Field::new("customer", DataType::Struct(fields), true),
        ]);
        RecordBatch::try_new(Arc::new(schema), vec![status, Arc::new(customer)]).unwrap()
    }

    #[test]
    fn typed_column_access_names_the_problem() {
        let inputs = Inputs::new().with("orders", nested());
        let orders = inputs.get("orders").unwrap();
        assert_eq!(
            orders.column::<StringArray>("status").unwrap().value(0),
            "PAID"
        );
        let err = orders.column::<Int64Array>("status").unwrap_err();
        assert!(
            err.message
                .contains("`status` has type Utf8, expected a PrimitiveArray<Int64Type>"),
            "{}",
            err.message
        );
        assert_eq!(err.input.as_deref(), Some("orders"));
        let err = orders.column::<StringArray>("stat").unwrap_err();
        assert!(err.message.contains("`stat` is missing"), "{}", err.message);
        assert!(
            inputs
                .get("in")
                .unwrap_err()
                .message
                .contains("[\"orders\"]")
        );
    }

    #[test]
    fn nested_paths_inherit_parent_nulls() {
        let inputs = Inputs::new().with("in", nested());
        let ids = inputs
            .get("in")
            .unwrap()
            .column_path("customer.id")
            .unwrap();
        let ids = ids.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(ids.iter().collect::<Vec<_>>(), vec![Some(1), None, Some(3)]);
        let err = inputs
            .get("in")
            .unwrap()
            .column_path("status.x")
            .unwrap_err();
        assert!(err.message.contains("not a struct"), "{}", err.message);
        let err = inputs
            .get("in")
            .unwrap()
            .column_path("customer.name")
            .unwrap_err();
        assert!(
            err.message.contains("`customer.name` is missing"),
            "{}",
            err.message
        );
    }
}
