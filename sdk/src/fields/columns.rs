//! Column buffers a parser appends to directly, shaped by the declared
//! fields. Every column can be rolled back to a row count, so a row rejected
//! half-way through leaves nothing behind, and a good row allocates nothing.

use super::spec::{FieldSpec, ValueType, arrow_fields, arrow_type};
use arrow_array::types::{Date32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{
    ArrayRef, ArrowPrimitiveType, BooleanArray, ListArray, PrimitiveArray, StringArray, StructArray,
};
use arrow_buffer::{BooleanBufferBuilder, Buffer, NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{Field, Fields};
use std::sync::Arc;

/// Values of one primitive column and their validity.
pub struct Primitive<T: ArrowPrimitiveType> {
    values: Vec<T::Native>,
    nulls: NullBufferBuilder,
}

impl<T: ArrowPrimitiveType> Primitive<T> {
    fn new(rows: usize) -> Self {
        Primitive {
            values: Vec::with_capacity(rows),
            nulls: NullBufferBuilder::new(rows),
        }
    }

    #[inline(always)]
    fn push(&mut self, value: T::Native) {
        self.values.push(value);
        self.nulls.append_non_null();
    }

    #[inline]
    fn push_null(&mut self) {
        self.values.push(T::Native::default());
        self.nulls.append_null();
    }

    fn truncate(&mut self, len: usize) {
        self.values.truncate(len);
        self.nulls.truncate(len);
    }

    fn finish(&mut self) -> PrimitiveArray<T> {
        PrimitiveArray::new(
            ScalarBuffer::from(std::mem::take(&mut self.values)),
            self.nulls.finish(),
        )
    }
}

/// Generates one `push_*` method per primitive column variant.
macro_rules! push_primitive {
    ($($method:ident($variant:ident, $native:ty, $what:literal)),* $(,)?) => {
        $(
            #[doc = concat!("Appends to a ", $what, " column.")]
            #[inline(always)]
            pub fn $method(&mut self, value: $native) {
                let Column::$variant(p) = self else {
                    unreachable!(concat!("the parser sends only ", $what, " values here"))
                };
                p.push(value);
            }
        )*
    };
}

/// A growing Arrow column of one declared type.
pub enum Column {
    /// A `string` column.
    Str {
        /// Where each value ends in `data` (starting with 0).
        offsets: Vec<i32>,
        /// The text of all values, one after the other.
        data: Vec<u8>,
        /// Which values are present.
        nulls: NullBufferBuilder,
    },
    /// An `int32` column.
    I32(Primitive<Int32Type>),
    /// An `int64` column.
    I64(Primitive<Int64Type>),
    /// A `float64` column.
    F64(Primitive<Float64Type>),
    /// A `timestamp` column: microseconds since the epoch, UTC.
    Micros(Primitive<TimestampMicrosecondType>),
    /// A `date` column: days since the epoch.
    Days(Primitive<Date32Type>),
    /// A `boolean` column.
    Bool {
        /// The values.
        values: BooleanBufferBuilder,
        /// Which values are present.
        nulls: NullBufferBuilder,
    },
    /// A `struct` column.
    Struct {
        /// The Arrow fields of the children.
        fields: Fields,
        /// One column per nested field.
        children: Vec<Column>,
        /// Which values are present.
        nulls: NullBufferBuilder,
    },
    /// A `list` column.
    List {
        /// The Arrow field of the items.
        item: Arc<Field>,
        /// Where each list ends in `child` (starting with 0).
        offsets: Vec<i32>,
        /// The items of all lists, one after the other.
        child: Box<Column>,
        /// Which values are present.
        nulls: NullBufferBuilder,
    },
}

/// The string data of one column passed the 2 GiB an Arrow `Utf8` column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnFull;

impl std::fmt::Display for ColumnFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the batch holds over 2 GiB of text in this column; use smaller batches")
    }
}

impl std::error::Error for ColumnFull {}

impl Column {
    /// An empty column for `ty`, with room for `rows` values.
    pub fn new(ty: &ValueType, rows: usize) -> Self {
        match ty {
            ValueType::String => Column::Str {
                offsets: Vec::from([0]),
                data: Vec::with_capacity(rows * 16),
                nulls: NullBufferBuilder::new(rows),
            },
            ValueType::Int32 => Column::I32(Primitive::new(rows)),
            ValueType::Int64 => Column::I64(Primitive::new(rows)),
            ValueType::Float64 => Column::F64(Primitive::new(rows)),
            ValueType::Timestamp(_) => Column::Micros(Primitive::new(rows)),
            ValueType::Date(_) => Column::Days(Primitive::new(rows)),
            ValueType::Boolean => Column::Bool {
                values: BooleanBufferBuilder::new(rows),
                nulls: NullBufferBuilder::new(rows),
            },
            ValueType::Struct(fields) => Column::Struct {
                fields: arrow_fields(fields),
                children: Column::for_fields(fields, rows),
                nulls: NullBufferBuilder::new(rows),
            },
            ValueType::List(item, nullable) => Column::List {
                item: Arc::new(Field::new("item", arrow_type(item), *nullable)),
                offsets: Vec::from([0]),
                child: Box::new(Column::new(item, rows)),
                nulls: NullBufferBuilder::new(rows),
            },
        }
    }

    /// One column per declared field.
    pub fn for_fields(fields: &[FieldSpec], rows: usize) -> Vec<Column> {
        fields.iter().map(|f| Column::new(&f.ty, rows)).collect()
    }

    #[inline]
    fn nulls(&self) -> &NullBufferBuilder {
        match self {
            Column::Str { nulls, .. }
            | Column::Bool { nulls, .. }
            | Column::Struct { nulls, .. }
            | Column::List { nulls, .. } => nulls,
            Column::I32(p) => &p.nulls,
            Column::Days(p) => &p.nulls,
            Column::I64(p) => &p.nulls,
            Column::Micros(p) => &p.nulls,
            Column::F64(p) => &p.nulls,
        }
    }

    /// Number of values (null or not) appended so far.
    #[inline]
    pub fn len(&self) -> usize {
        self.nulls().len()
    }

    /// Whether no value was appended yet.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a null (to every child, for a struct).
    #[inline]
    pub fn push_null(&mut self) {
        match self {
            Column::Str { offsets, nulls, .. } => {
                offsets.push(*offsets.last().expect("offsets start at 0"));
                nulls.append_null();
            }
            Column::I32(p) => p.push_null(),
            Column::Days(p) => p.push_null(),
            Column::I64(p) => p.push_null(),
            Column::Micros(p) => p.push_null(),
            Column::F64(p) => p.push_null(),
            Column::Bool { values, nulls } => {
                values.append(false);
                nulls.append_null();
            }
            Column::Struct {
                children, nulls, ..
            } => {
                children.iter_mut().for_each(Column::push_null);
                nulls.append_null();
            }
            Column::List { offsets, nulls, .. } => {
                offsets.push(*offsets.last().expect("offsets start at 0"));
                nulls.append_null();
            }
        }
    }

    /// Appends text to a string column.
    #[inline(always)]
    pub fn push_str(&mut self, text: &str) -> Result<(), ColumnFull> {
        let Column::Str {
            offsets,
            data,
            nulls,
        } = self
        else {
            unreachable!("the parser only sends strings to string columns")
        };
        data.extend_from_slice(text.as_bytes());
        let end = i32::try_from(data.len()).map_err(|_| ColumnFull)?;
        offsets.push(end);
        nulls.append_non_null();
        Ok(())
    }

    push_primitive! {
        push_i32(I32, i32, "int32"),
        push_i64(I64, i64, "int64"),
        push_f64(F64, f64, "float64"),
        push_micros(Micros, i64, "timestamp (microseconds since the epoch)"),
        push_days(Days, i32, "date (days since the epoch)"),
    }

    /// Appends a boolean to a boolean column.
    #[inline(always)]
    pub fn push_bool(&mut self, value: bool) {
        let Column::Bool { values, nulls } = self else {
            unreachable!("the parser only sends booleans to boolean columns")
        };
        values.append(value);
        nulls.append_non_null();
    }

    /// Marks the struct or list value just filled in as present (not null).
    #[inline]
    pub fn close_value(&mut self) {
        match self {
            Column::Struct { nulls, .. } => nulls.append_non_null(),
            Column::List {
                offsets,
                child,
                nulls,
                ..
            } => {
                offsets.push(child.len() as i32);
                nulls.append_non_null();
            }
            _ => unreachable!("only structs and lists are closed"),
        }
    }

    /// Rolls the column back to its first `len` values, including children a
    /// struct or list value still being filled in had already received.
    pub fn truncate(&mut self, len: usize) {
        let len = len.min(self.len());
        match self {
            Column::Str {
                offsets,
                data,
                nulls,
            } => {
                offsets.truncate(len + 1);
                data.truncate(offsets[len] as usize);
                nulls.truncate(len);
            }
            Column::I32(p) => p.truncate(len),
            Column::Days(p) => p.truncate(len),
            Column::I64(p) => p.truncate(len),
            Column::Micros(p) => p.truncate(len),
            Column::F64(p) => p.truncate(len),
            Column::Bool { values, nulls } => {
                values.truncate(len);
                nulls.truncate(len);
            }
            Column::Struct {
                children, nulls, ..
            } => {
                children.iter_mut().for_each(|child| child.truncate(len));
                nulls.truncate(len);
            }
            Column::List {
                offsets,
                child,
                nulls,
                ..
            } => {
                offsets.truncate(len + 1);
                child.truncate(offsets[len] as usize);
                nulls.truncate(len);
            }
        }
    }

    /// The finished Arrow array.
    pub fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Str {
                offsets,
                data,
                nulls,
            } => {
                let offsets = OffsetBuffer::new(std::mem::replace(offsets, vec![0]).into());
                let data = Buffer::from_vec(std::mem::take(data));
                // SAFETY: every byte was appended from a `&str` by `push_str`, at
                // offsets that are the boundaries of those strings, so the data is
                // valid UTF-8 split at character boundaries. Skipping the check
                // saves a pass over all the text.
                Arc::new(unsafe { StringArray::new_unchecked(offsets, data, nulls.finish()) })
            }
            Column::I32(p) => Arc::new(p.finish()),
            Column::I64(p) => Arc::new(p.finish()),
            Column::F64(p) => Arc::new(p.finish()),
            Column::Micros(p) => Arc::new(p.finish().with_timezone("UTC")),
            Column::Days(p) => Arc::new(p.finish()),
            Column::Bool { values, nulls } => {
                Arc::new(BooleanArray::new(values.finish(), nulls.finish()))
            }
            Column::Struct {
                fields,
                children,
                nulls,
            } => {
                let arrays = children.iter_mut().map(Column::finish).collect();
                Arc::new(StructArray::new(fields.clone(), arrays, nulls.finish()))
            }
            Column::List {
                item,
                offsets,
                child,
                nulls,
            } => {
                let offsets = OffsetBuffer::new(std::mem::replace(offsets, vec![0]).into());
                Arc::new(ListArray::new(
                    item.clone(),
                    offsets,
                    child.finish(),
                    nulls.finish(),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;

    /// Appends one element `{"s": text}` to a list-of-structs column, without
    /// closing the list value.
    fn push_element(list: &mut Column, text: &str) {
        let Column::List { child, .. } = list else {
            unreachable!("a list column")
        };
        let Column::Struct { children, .. } = child.as_mut() else {
            unreachable!("a struct child")
        };
        children[0].push_str(text).unwrap();
        child.close_value();
    }

    #[test]
    fn truncation_rolls_back_nested_values() {
        let item = ValueType::Struct(vec![FieldSpec::new("s".into(), ValueType::String, false)]);
        let mut column = Column::new(&ValueType::List(Box::new(item), true), 4);
        // Row 0: [{"s":"a"}]
        push_element(&mut column, "a");
        column.close_value();
        // Row 1, abandoned half-way: [{"s":"bb"}, ...
        push_element(&mut column, "bb");
        column.truncate(1);
        column.push_null();
        let array = column.finish();
        let list = array.as_list::<i32>();
        assert_eq!(list.len(), 2);
        assert!(list.is_null(1));
        assert_eq!(list.values().len(), 1, "the abandoned element is gone");
        let strings = list
            .values()
            .as_struct()
            .column(0)
            .as_string::<i32>()
            .clone();
        assert_eq!(strings.value_data(), b"a");
    }
}
