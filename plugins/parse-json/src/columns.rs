//! Appends typed cells to Arrow columns shaped by the declared fields.

use crate::convert::Cell;
use crate::spec::{FieldSpec, ValueType, arrow_fields, arrow_type};
use std::sync::Arc;
use weir_sdk::arrow_array::{ArrayRef, ListArray, StructArray};
use weir_sdk::arrow_buffer::{NullBufferBuilder, OffsetBuffer};
use weir_sdk::prelude::*;

/// A growing Arrow column of one declared type.
pub enum Column {
    Str(StringBuilder),
    I32(Int32Builder),
    I64(Int64Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
    Micros(TimestampMicrosecondBuilder),
    Days(Date32Builder),
    Struct {
        fields: Fields,
        children: Vec<Column>,
        validity: NullBufferBuilder,
    },
    List {
        item: Arc<Field>,
        offsets: Vec<i32>,
        child: Box<Column>,
        validity: NullBufferBuilder,
    },
}

impl Column {
    /// An empty column for `ty`, with room for `rows` values.
    pub fn new(ty: &ValueType, rows: usize) -> Self {
        match ty {
            ValueType::String => Column::Str(StringBuilder::with_capacity(rows, rows * 16)),
            ValueType::Int32 => Column::I32(Int32Builder::with_capacity(rows)),
            ValueType::Int64 => Column::I64(Int64Builder::with_capacity(rows)),
            ValueType::Float64 => Column::F64(Float64Builder::with_capacity(rows)),
            ValueType::Boolean => Column::Bool(BooleanBuilder::with_capacity(rows)),
            ValueType::Timestamp(_) => Column::Micros(
                TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"),
            ),
            ValueType::Date(_) => Column::Days(Date32Builder::with_capacity(rows)),
            ValueType::Struct(fields) => Column::Struct {
                fields: arrow_fields(fields),
                children: fields.iter().map(|f| Column::new(&f.ty, rows)).collect(),
                validity: NullBufferBuilder::new(rows),
            },
            ValueType::List(item, nullable) => Column::List {
                item: Arc::new(Field::new("item", arrow_type(item), *nullable)),
                offsets: vec![0],
                child: Box::new(Column::new(item, rows)),
                validity: NullBufferBuilder::new(rows),
            },
        }
    }

    /// One column per declared field.
    pub fn for_fields(fields: &[FieldSpec], rows: usize) -> Vec<Column> {
        fields.iter().map(|f| Column::new(&f.ty, rows)).collect()
    }

    /// Appends a cell produced by `convert` for this column's type.
    pub fn append(&mut self, cell: &Cell<'_>) {
        match (self, cell) {
            (column, Cell::Null) => column.append_null(),
            (Column::Str(b), Cell::Str(s)) => b.append_value(s.as_ref()),
            (Column::I32(b), Cell::I32(v)) => b.append_value(*v),
            (Column::I64(b), Cell::I64(v)) => b.append_value(*v),
            (Column::F64(b), Cell::F64(v)) => b.append_value(*v),
            (Column::Bool(b), Cell::Bool(v)) => b.append_value(*v),
            (Column::Micros(b), Cell::Micros(v)) => b.append_value(*v),
            (Column::Days(b), Cell::Days(v)) => b.append_value(*v),
            (
                Column::Struct {
                    children, validity, ..
                },
                Cell::Struct(cells),
            ) => {
                children
                    .iter_mut()
                    .zip(cells)
                    .for_each(|(child, cell)| child.append(cell));
                validity.append_non_null();
            }
            (
                Column::List {
                    offsets,
                    child,
                    validity,
                    ..
                },
                Cell::List(cells),
            ) => {
                cells.iter().for_each(|cell| child.append(cell));
                offsets.push(offsets.last().copied().unwrap_or(0) + cells.len() as i32);
                validity.append_non_null();
            }
            (_, cell) => unreachable!("convert produced {cell:?} for a column of another type"),
        }
    }

    fn append_null(&mut self) {
        match self {
            Column::Str(b) => b.append_null(),
            Column::I32(b) => b.append_null(),
            Column::I64(b) => b.append_null(),
            Column::F64(b) => b.append_null(),
            Column::Bool(b) => b.append_null(),
            Column::Micros(b) => b.append_null(),
            Column::Days(b) => b.append_null(),
            Column::Struct {
                children, validity, ..
            } => {
                children.iter_mut().for_each(Column::append_null);
                validity.append_null();
            }
            Column::List {
                offsets, validity, ..
            } => {
                offsets.push(offsets.last().copied().unwrap_or(0));
                validity.append_null();
            }
        }
    }

    /// The finished Arrow array.
    pub fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Str(b) => Arc::new(b.finish()),
            Column::I32(b) => Arc::new(b.finish()),
            Column::I64(b) => Arc::new(b.finish()),
            Column::F64(b) => Arc::new(b.finish()),
            Column::Bool(b) => Arc::new(b.finish()),
            Column::Micros(b) => Arc::new(b.finish()),
            Column::Days(b) => Arc::new(b.finish()),
            Column::Struct {
                fields,
                children,
                validity,
            } => {
                let arrays = children.iter_mut().map(Column::finish).collect();
                Arc::new(StructArray::new(fields.clone(), arrays, validity.finish()))
            }
            Column::List {
                item,
                offsets,
                child,
                validity,
            } => {
                let offsets = OffsetBuffer::new(std::mem::replace(offsets, vec![0]).into());
                Arc::new(ListArray::new(
                    item.clone(),
                    offsets,
                    child.finish(),
                    validity.finish(),
                ))
            }
        }
    }
}
