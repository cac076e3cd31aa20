//! Assigns each row a group id by its key columns (nulls form one group, as
//! in SQL `GROUP BY`), in first-seen order so output is deterministic.

use std::collections::HashMap;
use weir_sdk::arrow_array::cast::AsArray;
use weir_sdk::prelude::*;

use weir_sdk::arrow_array::{StringViewArray, UInt32Array};
use weir_sdk::arrow_buffer::{ArrowNativeType, ScalarBuffer};

/// Group ids per row and the first row of each group.
pub struct Groups {
    /// Group id of every row (rows not usable get an arbitrary id and are skipped by callers).
    pub of_row: Vec<u32>,
    /// The first row of each group, in group order.
    pub first_rows: UInt32Array,
}

/// A key column, its type resolved once per batch (not once per row).
enum KeyColumn<'a> {
    Utf8(&'a StringArray),
    LargeUtf8(&'a LargeStringArray),
    Utf8View(&'a StringViewArray),
    Binary(&'a BinaryArray),
    Boolean(&'a BooleanArray),
    /// Int32 and Date32 values.
    Int32(ScalarBuffer<i32>, &'a ArrayRef),
    /// Int64, Timestamp and Date64 values.
    Int64(ScalarBuffer<i64>, &'a ArrayRef),
}

impl<'a> KeyColumn<'a> {
    fn new(name: &str, column: &'a ArrayRef) -> Result<Self, PluginError> {
        Ok(match column.data_type() {
            DataType::Utf8 => KeyColumn::Utf8(column.as_string::<i32>()),
            DataType::LargeUtf8 => KeyColumn::LargeUtf8(column.as_string::<i64>()),
            DataType::Utf8View => KeyColumn::Utf8View(column.as_string_view()),
            DataType::Binary => KeyColumn::Binary(column.as_binary::<i32>()),
            DataType::Boolean => KeyColumn::Boolean(column.as_boolean()),
            DataType::Int32 | DataType::Date32 => KeyColumn::Int32(values(column), column),
            DataType::Int64 | DataType::Timestamp(_, _) | DataType::Date64 => {
                KeyColumn::Int64(values(column), column)
            }
            other => {
                return Err(PluginError::bad_input(
                    "in",
                    format!("cannot group by column `{name}` of type {other}"),
                ));
            }
        })
    }

    /// Appends row `row` to `key` in an unambiguous byte form: a null flag,
    /// then the value (variable-length values prefixed by their length).
    fn push(&self, row: usize, key: &mut Vec<u8>) {
        let valid = match self {
            KeyColumn::Utf8(a) => a.is_valid(row),
            KeyColumn::LargeUtf8(a) => a.is_valid(row),
            KeyColumn::Utf8View(a) => a.is_valid(row),
            KeyColumn::Binary(a) => a.is_valid(row),
            KeyColumn::Boolean(a) => a.is_valid(row),
            KeyColumn::Int32(_, a) | KeyColumn::Int64(_, a) => a.is_valid(row),
        };
        if !valid {
            key.push(0);
            return;
        }
        key.push(1);
        let mut bytes = |b: &[u8]| {
            key.extend_from_slice(&(b.len() as u32).to_le_bytes());
            key.extend_from_slice(b);
        };
        match self {
            KeyColumn::Utf8(a) => bytes(a.value(row).as_bytes()),
            KeyColumn::LargeUtf8(a) => bytes(a.value(row).as_bytes()),
            KeyColumn::Utf8View(a) => bytes(a.value(row).as_bytes()),
            KeyColumn::Binary(a) => bytes(a.value(row)),
            KeyColumn::Boolean(a) => key.push(u8::from(a.value(row))),
            KeyColumn::Int32(v, _) => key.extend_from_slice(&v[row].to_le_bytes()),
            KeyColumn::Int64(v, _) => key.extend_from_slice(&v[row].to_le_bytes()),
        }
    }
}

/// The values of a fixed-width column (Int32 or Date32 as `i32`, and so on).
fn values<T: ArrowNativeType>(column: &ArrayRef) -> ScalarBuffer<T> {
    let data = column.to_data();
    ScalarBuffer::new(data.buffers()[0].clone(), data.offset(), data.len())
}

/// `name=value, ...` of the key columns at `row`, naming a group in messages.
pub fn describe(keys: &[(String, ArrayRef)], row: usize) -> String {
    let value = |column: &ArrayRef| -> String {
        if column.is_null(row) {
            return "null".into();
        }
        match column.data_type() {
            DataType::Utf8 => format!("{:?}", column.as_string::<i32>().value(row)),
            DataType::LargeUtf8 => format!("{:?}", column.as_string::<i64>().value(row)),
            DataType::Utf8View => format!("{:?}", column.as_string_view().value(row)),
            DataType::Boolean => column.as_boolean().value(row).to_string(),
            DataType::Int32 | DataType::Date32 => {
                let data = column.to_data();
                data.buffers()[0].typed_data::<i32>()[data.offset() + row].to_string()
            }
            DataType::Int64 | DataType::Timestamp(_, _) | DataType::Date64 => {
                let data = column.to_data();
                data.buffers()[0].typed_data::<i64>()[data.offset() + row].to_string()
            }
            other => format!("<{other}>"),
        }
    };
    if keys.is_empty() {
        return "(the whole batch)".into();
    }
    keys.iter()
        .map(|(name, column)| format!("{name}={}", value(column)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Groups the `usable` rows by `keys`.
pub fn assign(keys: &[(String, ArrayRef)], usable: &[bool]) -> Result<Groups, PluginError> {
    let columns = keys
        .iter()
        .map(|(name, column)| KeyColumn::new(name, column))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ids: HashMap<Vec<u8>, u32, foldhash::fast::FixedState> =
        HashMap::with_hasher(foldhash::fast::FixedState::with_seed(0x6167_6772));
    let mut of_row = Vec::with_capacity(usable.len());
    let mut first_rows = Vec::new();
    let mut key = Vec::new();
    for (row, &ok) in usable.iter().enumerate() {
        if !ok {
            of_row.push(0);
            continue;
        }
        key.clear();
        for column in &columns {
            column.push(row, &mut key);
        }
        // The key is copied only for a new group.
        let id = match ids.get(key.as_slice()) {
            Some(&id) => id,
            None => {
                let id = first_rows.len() as u32;
                ids.insert(key.clone(), id);
                first_rows.push(row as u32);
                id
            }
        };
        of_row.push(id);
    }
    Ok(Groups {
        of_row,
        first_rows: UInt32Array::from(first_rows),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use weir_sdk::arrow_array::Date32Array;

    fn ids(keys: &[(&str, ArrayRef)]) -> (Vec<u32>, Vec<u32>) {
        let keys: Vec<(String, ArrayRef)> = keys
            .iter()
            .map(|(n, c)| (n.to_string(), c.clone()))
            .collect();
        let rows = keys[0].1.len();
        let groups = assign(&keys, &vec![true; rows]).unwrap();
        (groups.of_row, groups.first_rows.values().to_vec())
    }

    #[test]
    fn every_key_type_groups_by_value_with_null_as_one_group() {
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(7),
            None,
            Some(7),
            None,
            Some(8),
        ]));
        assert_eq!(ids(&[("n", ints)]), (vec![0, 1, 0, 1, 2], vec![0, 1, 4]));
        let days: ArrayRef = Arc::new(Date32Array::from(vec![1, 2, 1, 2, 3]));
        let flags: ArrayRef = Arc::new(BooleanArray::from(vec![true, true, true, false, true]));
        // Compound: (day, flag).
        assert_eq!(
            ids(&[("d", days), ("f", flags)]),
            (vec![0, 1, 0, 2, 3], vec![0, 1, 3, 4])
        );
        let bytes: ArrayRef = Arc::new(BinaryArray::from(vec![&b"a"[..], b"ab", b"a"]));
        assert_eq!(ids(&[("b", bytes)]), (vec![0, 1, 0], vec![0, 1]));
    }

    #[test]
    fn a_sliced_column_is_read_from_its_offset() {
        let ints = Int32Array::from(vec![1, 2, 3, 2, 3]).slice(1, 4);
        let ints: ArrayRef = Arc::new(ints);
        assert_eq!(ids(&[("n", ints)]), (vec![0, 1, 0, 1], vec![0, 1]));
    }

    #[test]
    fn string_keys_are_unambiguous_across_columns() {
        // ("ab", "c") and ("a", "bc") are different groups.
        let left: ArrayRef = Arc::new(StringArray::from(vec!["ab", "a"]));
        let right: ArrayRef = Arc::new(StringArray::from(vec!["c", "bc"]));
        assert_eq!(ids(&[("l", left), ("r", right)]), (vec![0, 1], vec![0, 1]));
    }
}
