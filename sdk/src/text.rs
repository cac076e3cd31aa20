//! Row values of text and bytes columns, whatever their Arrow encoding
//! (`Utf8`, `LargeUtf8`, `Utf8View` and the three binary types), as bytes:
//! for plugins that compare a column with configured values (`route`'s
//! topics, `cdc-upsert`'s operations).

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;

/// A reader of one column's values: `None` for a null row.
pub type ByteValues<'a> = Box<dyn Fn(usize) -> Option<&'a [u8]> + 'a>;

/// Each row's value of `column` as bytes (text as its UTF-8), or `None` when
/// the column is neither text nor bytes.
///
/// ```
/// use std::sync::Arc;
/// use weir_sdk::arrow_array::{ArrayRef, StringArray};
///
/// let topics: ArrayRef = Arc::new(StringArray::from(vec![Some("bpm"), None]));
/// let value = weir_sdk::text::byte_values(&topics).unwrap();
/// assert_eq!(value(0), Some(&b"bpm"[..]));
/// assert_eq!(value(1), None);
/// ```
pub fn byte_values(column: &ArrayRef) -> Option<ByteValues<'_>> {
    fn by<'a, A: Array>(array: &'a A, value: fn(&'a A, usize) -> &'a [u8]) -> ByteValues<'a> {
        Box::new(move |row| array.is_valid(row).then(|| value(array, row)))
    }
    Some(match column.data_type() {
        DataType::Utf8 => by(column.as_string::<i32>(), |a, r| a.value(r).as_bytes()),
        DataType::LargeUtf8 => by(column.as_string::<i64>(), |a, r| a.value(r).as_bytes()),
        DataType::Utf8View => by(column.as_string_view(), |a, r| a.value(r).as_bytes()),
        DataType::Binary => by(column.as_binary::<i32>(), |a, r| a.value(r)),
        DataType::LargeBinary => by(column.as_binary::<i64>(), |a, r| a.value(r)),
        DataType::BinaryView => by(column.as_binary_view(), |a, r| a.value(r)),
        _ => return None,
    })
}
