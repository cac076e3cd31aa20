//! The ordering column's values, compared as exact integers: integers as
//! they are, timestamps and dates in their own unit, RFC 3339 text parsed to
//! microseconds since the epoch (UTC). Never through a float.

use std::sync::Arc;
use weir_sdk::arrow_array::cast::AsArray;
use weir_sdk::fields::rfc3339::parse_micros;
use weir_sdk::prelude::*;

/// Each row's ordering value, or why it has none.
pub struct OrderValues {
    values: Vec<Result<i128, String>>,
    /// Whether the column was text (its output becomes timestamps).
    parsed_text: bool,
}

impl OrderValues {
    /// Reads column `name`. A column of a type that cannot be ordered is an
    /// error naming it.
    pub fn read(name: &str, column: &ArrayRef) -> Result<Self, String> {
        fn ints<T: ArrowPrimitiveType>(column: &ArrayRef) -> Vec<Result<i128, String>>
        where
            T::Native: Into<i128>,
        {
            column
                .as_primitive::<T>()
                .iter()
                .map(|v| v.map(Into::into).ok_or_else(null))
                .collect()
        }
        fn null() -> String {
            "the ordering value is null".into()
        }
        let values = match column.data_type() {
            DataType::Int8 => ints::<Int8Type>(column),
            DataType::Int16 => ints::<Int16Type>(column),
            DataType::Int32 => ints::<Int32Type>(column),
            DataType::Int64 => ints::<Int64Type>(column),
            DataType::UInt8 => ints::<UInt8Type>(column),
            DataType::UInt16 => ints::<UInt16Type>(column),
            DataType::UInt32 => ints::<UInt32Type>(column),
            DataType::UInt64 => ints::<UInt64Type>(column),
            DataType::Date32 => ints::<Date32Type>(column),
            DataType::Date64 => ints::<Date64Type>(column),
            DataType::Timestamp(TimeUnit::Second, _) => ints::<TimestampSecondType>(column),
            DataType::Timestamp(TimeUnit::Millisecond, _) => {
                ints::<TimestampMillisecondType>(column)
            }
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                ints::<TimestampMicrosecondType>(column)
            }
            DataType::Timestamp(TimeUnit::Nanosecond, _) => ints::<TimestampNanosecondType>(column),
            _ => match weir_sdk::text::byte_values(column) {
                Some(text) => {
                    let values = (0..column.len())
                        .map(|row| {
                            let raw = text(row).ok_or_else(null)?;
                            std::str::from_utf8(raw)
                                .ok()
                                .and_then(parse_micros)
                                .map(i128::from)
                                .ok_or_else(|| {
                                    format!(
                                        "`{}` is not an RFC 3339 timestamp",
                                        String::from_utf8_lossy(raw)
                                    )
                                })
                        })
                        .collect();
                    return Ok(OrderValues {
                        values,
                        parsed_text: true,
                    });
                }
                None => {
                    return Err(format!(
                        "ordering column `{name}` has type {}; use an integer, timestamp, date or RFC 3339 text",
                        column.data_type()
                    ));
                }
            },
        };
        Ok(OrderValues {
            values,
            parsed_text: false,
        })
    }

    /// Row `row`'s value, `None` when it has none.
    pub fn value(&self, row: usize) -> Option<i128> {
        self.values[row].as_ref().ok().copied()
    }

    /// Why row `row` has no value (a sentence quoting it).
    pub fn problem(&self, row: usize) -> String {
        self.values[row].as_ref().err().cloned().unwrap_or_default()
    }

    /// For a text column, the `rows`' parsed values as `Timestamp(µs, UTC)`.
    pub fn as_timestamps(&self, rows: &[u32]) -> Option<ArrayRef> {
        self.parsed_text.then(|| {
            let micros = rows.iter().map(|&r| {
                let value = self.value(r as usize).expect("kept rows have a value");
                i64::try_from(value).expect("parsed from i64 micros")
            });
            Arc::new(TimestampMicrosecondArray::from_iter_values(micros).with_timezone("UTC"))
                as ArrayRef
        })
    }
}
