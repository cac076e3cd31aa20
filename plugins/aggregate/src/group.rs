//! Assigns each row a group id by its key columns (nulls form one group, as
//! in SQL `GROUP BY`), in first-seen order so output is deterministic.

use std::collections::HashMap;
use weir_sdk::arrow_array::cast::AsArray;
use weir_sdk::prelude::*;

use weir_sdk::arrow_array::UInt32Array;

/// Group ids per row and the first row of each group.
pub struct Groups {
    /// Group id of every row (rows not usable get an arbitrary id and are skipped by callers).
    pub of_row: Vec<u32>,
    /// The first row of each group, in group order.
    pub first_rows: UInt32Array,
}

/// Appends row `row` of `column` to `key` in an unambiguous byte form.
fn push_key(
    column: &ArrayRef,
    name: &str,
    row: usize,
    key: &mut Vec<u8>,
) -> Result<(), PluginError> {
    if column.is_null(row) {
        key.push(0);
        return Ok(());
    }
    key.push(1);
    let mut bytes = |b: &[u8]| {
        key.extend_from_slice(&(b.len() as u32).to_le_bytes());
        key.extend_from_slice(b);
    };
    match column.data_type() {
        DataType::Utf8 => bytes(column.as_string::<i32>().value(row).as_bytes()),
        DataType::LargeUtf8 => bytes(column.as_string::<i64>().value(row).as_bytes()),
        DataType::Utf8View => bytes(column.as_string_view().value(row).as_bytes()),
        DataType::Binary => bytes(column.as_binary::<i32>().value(row)),
        DataType::Boolean => key.push(u8::from(column.as_boolean().value(row))),
        DataType::Int32 | DataType::Date32 => {
            let data = column.to_data();
            key.extend_from_slice(
                &data.buffers()[0].typed_data::<i32>()[data.offset() + row].to_le_bytes(),
            );
        }
        DataType::Int64 | DataType::Timestamp(_, _) | DataType::Date64 => {
            let data = column.to_data();
            key.extend_from_slice(
                &data.buffers()[0].typed_data::<i64>()[data.offset() + row].to_le_bytes(),
            );
        }
        other => {
            return Err(PluginError::bad_input(
                "in",
                format!("cannot group by column `{name}` of type {other}"),
            ));
        }
    }
    Ok(())
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
        for (name, column) in keys {
            push_key(column, name, row, &mut key)?;
        }
        let next = first_rows.len() as u32;
        let id = *ids.entry(key.clone()).or_insert_with(|| {
            first_rows.push(row as u32);
            next
        });
        of_row.push(id);
    }
    Ok(Groups {
        of_row,
        first_rows: UInt32Array::from(first_rows),
    })
}
