//! Keeping the rows a mask selects, as Arrow's `filter_record_batch` does, with
//! a kernel for string and binary columns tuned for the sandbox.
//!
//! Arrow copies each kept value with a `memcpy` of unknown length. Compiled to
//! wasm that is a `memory.copy` instruction, which wasmtime runs as a call out
//! of the compiled code into the host: cheap per byte, costly per call, and a
//! filter makes one call per kept value per column. Here values of up to 32
//! bytes are moved with fixed-size copies, which compile to plain loads and
//! stores; longer ones still use one bulk copy. Every other column type goes
//! through Arrow's own filter kernels. Output is identical to Arrow's.

use arrow_array::cast::AsArray;
use arrow_array::types::{BinaryType, ByteArrayType, LargeBinaryType, LargeUtf8Type, Utf8Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, GenericByteArray, GenericListArray, OffsetSizeTrait,
    RecordBatch, UInt64Array,
};
use arrow_buffer::{
    ArrowNativeType, BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer,
};
use arrow_schema::{ArrowError, DataType};
use arrow_select::filter::{FilterBuilder, prep_null_mask_filter};
use std::sync::Arc;

/// Longest value moved with fixed-size copies rather than a bulk copy.
const SHORT: usize = 32;

/// Keeps the rows of `batch` where `predicate` is true (null counts as false),
/// in order. A drop-in replacement for Arrow's `filter_record_batch`.
pub fn filter_record_batch(
    batch: &RecordBatch,
    predicate: &BooleanArray,
) -> Result<RecordBatch, ArrowError> {
    if predicate.len() != batch.num_rows() {
        return Err(ArrowError::InvalidArgumentError(format!(
            "the filter has {} rows, the batch {}",
            predicate.len(),
            batch.num_rows()
        )));
    }
    let predicate = match predicate.null_count() {
        0 => predicate.clone(),
        _ => prep_null_mask_filter(predicate),
    };
    let kept: Vec<usize> = predicate.values().set_indices().collect();
    // Arrow's predicate for the other column types, built only if one is there.
    let mut others = None;
    let columns = batch
        .columns()
        .iter()
        .map(|column| match take_tuned(column, &kept) {
            Some(taken) => taken,
            None => others
                .get_or_insert_with(|| FilterBuilder::new(&predicate).optimize().build())
                .filter(column),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(kept.len()));
    RecordBatch::try_new_with_options(batch.schema(), columns, &options)
}

/// The rows `rows` (ascending, all in bounds) of `column`, for the types with a
/// tuned kernel: strings, binaries, and lists of anything (their items taken
/// row by row, with a tuned kernel where there is one). `None` for others.
fn take_tuned(column: &ArrayRef, rows: &[usize]) -> Option<Result<ArrayRef, ArrowError>> {
    Some(match column.data_type() {
        DataType::Utf8 => Ok(take_bytes(column.as_bytes::<Utf8Type>(), rows)),
        DataType::LargeUtf8 => Ok(take_bytes(column.as_bytes::<LargeUtf8Type>(), rows)),
        DataType::Binary => Ok(take_bytes(column.as_bytes::<BinaryType>(), rows)),
        DataType::LargeBinary => Ok(take_bytes(column.as_bytes::<LargeBinaryType>(), rows)),
        DataType::List(_) => take_list(column.as_list::<i32>(), rows),
        DataType::LargeList(_) => take_list(column.as_list::<i64>(), rows),
        _ => return None,
    })
}

/// The rows `rows` (ascending, all in bounds) of a list array: its items are
/// contiguous per row, so they are taken as ranges.
fn take_list<O: OffsetSizeTrait>(
    list: &GenericListArray<O>,
    rows: &[usize],
) -> Result<ArrayRef, ArrowError> {
    let offsets = list.value_offsets();
    let mut items = Vec::new();
    let mut new_offsets = Vec::with_capacity(rows.len() + 1);
    new_offsets.push(O::usize_as(0));
    for &row in rows {
        items.extend(offsets[row].as_usize()..offsets[row + 1].as_usize());
        new_offsets.push(O::usize_as(items.len()));
    }
    let values = match take_tuned(list.values(), &items) {
        Some(taken) => taken?,
        None => {
            let indices = UInt64Array::from_iter_values(items.iter().map(|&i| i as u64));
            arrow_select::take::take(list.values(), &indices, None)?
        }
    };
    let nulls = take_nulls(list.nulls(), rows);
    let (DataType::List(item) | DataType::LargeList(item)) = list.data_type() else {
        unreachable!("a list array has a list type")
    };
    let taken = GenericListArray::<O>::try_new(
        item.clone(),
        OffsetBuffer::new(ScalarBuffer::from(new_offsets)),
        values,
        nulls,
    )?;
    Ok(Arc::new(taken))
}

/// The values of `array` at `rows` (ascending, all in bounds), as a new array.
fn take_bytes<T: ByteArrayType>(array: &GenericByteArray<T>, rows: &[usize]) -> ArrayRef {
    let offsets = array.value_offsets();
    let source = array.value_data();
    assert!(rows.last().is_none_or(|&last| last < array.len()));
    // First pass: the new offsets, which also size the value buffer. Collected
    // from an iterator of known length, so no turn checks the capacity.
    let mut total = 0;
    let new_offsets: Vec<T::Offset> = std::iter::once(T::Offset::usize_as(0))
        .chain(rows.iter().map(|&row| {
            // SAFETY: `row < array.len()` (asserted above for the largest
            // row), and a valid array has `len + 1` offsets.
            let (start, end) =
                unsafe { (offsets.get_unchecked(row), offsets.get_unchecked(row + 1)) };
            total += end.as_usize() - start.as_usize();
            T::Offset::usize_as(total)
        }))
        .collect();
    // Second pass: the values.
    let mut values: Vec<u8> = Vec::with_capacity(total + SHORT);
    let target = values.as_mut_ptr();
    let new_offsets_view: &[T::Offset] = &new_offsets;
    for (k, &row) in rows.iter().enumerate() {
        // SAFETY: as above for `offsets`; `new_offsets` has `rows.len() + 1`
        // entries. `start..start + len` lies in `source` (the array is valid),
        // `at + len <= total`, and `values` has `SHORT` bytes of capacity past
        // `total`, so the fixed-size writes stay inside the allocation.
        unsafe {
            let start = offsets.get_unchecked(row).as_usize();
            let at = new_offsets_view.get_unchecked(k).as_usize();
            let len = new_offsets_view.get_unchecked(k + 1).as_usize() - at;
            copy_value(source, start, len, target.add(at));
        }
    }
    // SAFETY: every byte below `total` was written by the copies above.
    unsafe { values.set_len(total) };
    let nulls = take_nulls(array.nulls(), rows);
    // SAFETY: the offsets start at 0 and grow by each copied value's length,
    // and each value is a whole value of a valid array (so, for text, UTF-8).
    let taken = unsafe {
        GenericByteArray::<T>::new_unchecked(
            OffsetBuffer::new_unchecked(ScalarBuffer::from(new_offsets)),
            Buffer::from_vec(values),
            nulls,
        )
    };
    Arc::new(taken)
}

/// The validity of `rows`, if the array has nulls.
fn take_nulls(nulls: Option<&NullBuffer>, rows: &[usize]) -> Option<NullBuffer> {
    nulls.map(|nulls| {
        NullBuffer::new(BooleanBuffer::collect_bool(rows.len(), |i| {
            nulls.is_valid(rows[i])
        }))
    })
}

/// Copies `source[start..start + len]` to `target`.
///
/// # Safety
///
/// `start + len <= source.len()`, and `target` is valid for writes of
/// `max(len, SHORT)` bytes.
#[inline(always)]
unsafe fn copy_value(source: &[u8], start: usize, len: usize, target: *mut u8) {
    let from = source.as_ptr();
    unsafe {
        if len <= 16 && start + 16 <= source.len() {
            std::ptr::copy_nonoverlapping(from.add(start), target, 16);
        } else if len <= SHORT && start + SHORT <= source.len() {
            std::ptr::copy_nonoverlapping(from.add(start), target, SHORT);
        } else {
            std::ptr::copy_nonoverlapping(from.add(start), target, len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::builder::{ListBuilder, StringBuilder};
    use arrow_array::{
        BinaryArray, Int64Array, LargeStringArray, ListArray, StringArray, types::Int32Type,
    };
    use arrow_schema::{Field, Schema};

    fn assert_same_as_arrow(batch: &RecordBatch, predicate: &BooleanArray) {
        let ours = filter_record_batch(batch, predicate).unwrap();
        let arrows = arrow_select::filter::filter_record_batch(batch, predicate).unwrap();
        assert_eq!(ours, arrows);
        ours.columns()
            .iter()
            .for_each(|c| c.to_data().validate_full().unwrap());
    }

    fn mixed(rows: usize) -> RecordBatch {
        let text = |i: usize| match i % 5 {
            0 => None,
            1 => Some(String::new()),
            2 => Some(format!("é-{i}")),
            3 => Some("x".repeat(17 + i % 40)),
            _ => Some("y".repeat(100 + i)),
        };
        let strings: StringArray = (0..rows).map(text).collect();
        let large: LargeStringArray = (0..rows).map(text).collect();
        let binary = BinaryArray::from_iter((0..rows).map(|i| text(i).map(String::into_bytes)));
        let numbers = Int64Array::from_iter((0..rows).map(|i| (i % 3 != 0).then_some(i as i64)));
        let lists = ListArray::from_iter_primitive::<Int32Type, _, _>(
            (0..rows).map(|i| (i % 4 != 0).then(|| vec![Some(i as i32); i % 3])),
        );
        let mut tags = ListBuilder::new(StringBuilder::new());
        for i in 0..rows {
            for j in 0..i % 4 {
                tags.values().append_option(text(i + j));
            }
            tags.append(i % 6 != 0);
        }
        let tags = tags.finish();
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("s", DataType::Utf8, true),
                Field::new("l", DataType::LargeUtf8, true),
                Field::new("b", DataType::Binary, true),
                Field::new("n", DataType::Int64, true),
                Field::new("list", lists.data_type().clone(), true),
                Field::new("tags", tags.data_type().clone(), true),
            ])),
            vec![
                Arc::new(strings),
                Arc::new(large),
                Arc::new(binary),
                Arc::new(numbers),
                Arc::new(lists),
                Arc::new(tags),
            ],
        )
        .unwrap()
    }

    #[test]
    fn matches_arrow_on_every_column_type_and_selectivity() {
        let batch = mixed(203);
        for every in [1, 2, 3, 7, 1000] {
            let predicate: BooleanArray = (0..203).map(|i| Some(i % every == 0)).collect();
            assert_same_as_arrow(&batch, &predicate);
        }
        assert_same_as_arrow(&batch, &BooleanArray::from(vec![false; 203]));
    }

    #[test]
    fn matches_arrow_on_slices_and_values_at_the_buffer_end() {
        // Slices start mid-buffer; the last values sit within 32 bytes of the
        // end of the value buffer, where the fixed-size copy must not read.
        let batch = mixed(90).slice(13, 70);
        let predicate: BooleanArray = (0..70).map(|i| Some(i % 2 == 1 || i > 60)).collect();
        assert_same_as_arrow(&batch, &predicate);
        let tail = StringArray::from(vec!["a", "bb", "ccc"]);
        let batch = RecordBatch::try_from_iter([("t", Arc::new(tail) as ArrayRef)]).unwrap();
        assert_same_as_arrow(&batch, &BooleanArray::from(vec![true, false, true]));
    }

    #[test]
    fn a_null_in_the_predicate_drops_the_row() {
        let batch = mixed(6);
        let predicate =
            BooleanArray::from(vec![Some(true), None, Some(true), None, None, Some(false)]);
        assert_same_as_arrow(&batch, &predicate);
        assert_eq!(
            filter_record_batch(&batch, &predicate).unwrap().num_rows(),
            2
        );
    }

    #[test]
    fn a_predicate_of_the_wrong_length_is_an_error() {
        let error = filter_record_batch(&mixed(4), &BooleanArray::from(vec![true])).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("the filter has 1 rows, the batch 4"),
            "{error}"
        );
    }
}
