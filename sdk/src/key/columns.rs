//! Keys made of one or more columns — joins, lookups, grouping — hashed a
//! column at a time and compared across two batches without building a key
//! value per row (no allocation, no per-row type dispatch while hashing).
//!
//! [`KeyColumns`] reads the key columns of one batch once; [`KeyIndex`] is a
//! multimap from key to rows of one batch, probed with the keys of another.
//! Strings compare by their bytes, so a Utf8 key matches a LargeUtf8 or
//! Utf8View key holding the same text ([`comparable_keys`]).

use super::{ByteKey, same_bytes};
use crate::PluginError;
use arrow_array::cast::AsArray;
use arrow_array::types::ByteArrayType;
use arrow_array::{Array, ArrayRef, BinaryViewArray, GenericByteArray};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer, i256};
use arrow_schema::DataType;
use std::hash::{BuildHasher, Hash};

/// The hash seed: fixed, so plugins stay deterministic without the host's
/// random source (no output may depend on it anyway).
const SEED: u64 = 0x5745_4952_4b45_5953;

/// What a key column may hold: integers, strings, binary, booleans, dates,
/// timestamps and decimals. Floats (whose equality is not a key's) and nested
/// types are refused.
pub const KEY_TYPES: &str = "integer, string, binary, boolean, date, timestamp or decimal";

/// Whether keys of types `a` and `b` can be compared: the same type, where
/// Utf8, LargeUtf8 and Utf8View count as one (and Binary, LargeBinary and
/// BinaryView as another), since they compare by their bytes.
pub fn comparable_keys(a: &DataType, b: &DataType) -> bool {
    use DataType::*;
    match (a, b) {
        (Utf8 | LargeUtf8 | Utf8View, Utf8 | LargeUtf8 | Utf8View) => true,
        (Binary | LargeBinary | BinaryView, Binary | LargeBinary | BinaryView) => true,
        _ => a == b,
    }
}

/// One key column, read through its physical layout.
enum Values {
    W1(ScalarBuffer<i8>),
    W2(ScalarBuffer<i16>),
    W4(ScalarBuffer<i32>),
    W8(ScalarBuffer<i64>),
    W16(ScalarBuffer<i128>),
    W32(ScalarBuffer<i256>),
    Bool(BooleanBuffer),
    Offsets32(OffsetBuffer<i32>, Buffer),
    Offsets64(OffsetBuffer<i64>, Buffer),
    Views(BinaryViewArray),
}

fn offsets<T: ByteArrayType>(array: &GenericByteArray<T>) -> (OffsetBuffer<T::Offset>, Buffer) {
    (array.offsets().clone(), array.values().clone())
}

impl Values {
    fn new(array: &ArrayRef) -> Option<Values> {
        let data_type = array.data_type();
        Some(match data_type {
            DataType::Boolean => Values::Bool(array.as_boolean().values().clone()),
            DataType::Utf8 => {
                let (o, v) = offsets(array.as_string::<i32>());
                Values::Offsets32(o, v)
            }
            DataType::Binary => {
                let (o, v) = offsets(array.as_binary::<i32>());
                Values::Offsets32(o, v)
            }
            DataType::LargeUtf8 => {
                let (o, v) = offsets(array.as_string::<i64>());
                Values::Offsets64(o, v)
            }
            DataType::LargeBinary => {
                let (o, v) = offsets(array.as_binary::<i64>());
                Values::Offsets64(o, v)
            }
            DataType::Utf8View => Values::Views(array.as_string_view().clone().to_binary_view()),
            DataType::BinaryView => Values::Views(array.as_binary_view().clone()),
            t if t.is_integer()
                || t.is_decimal()
                || matches!(
                    t,
                    DataType::Date32 | DataType::Date64 | DataType::Timestamp(..)
                ) =>
            {
                // A primitive array's values, reinterpreted by width: the
                // types on both sides are checked equal, so only bits matter.
                let data = array.to_data();
                let (buffer, offset, len) = (data.buffers()[0].clone(), data.offset(), data.len());
                match t.primitive_width()? {
                    1 => Values::W1(ScalarBuffer::new(buffer, offset, len)),
                    2 => Values::W2(ScalarBuffer::new(buffer, offset, len)),
                    4 => Values::W4(ScalarBuffer::new(buffer, offset, len)),
                    8 => Values::W8(ScalarBuffer::new(buffer, offset, len)),
                    16 => Values::W16(ScalarBuffer::new(buffer, offset, len)),
                    32 => Values::W32(ScalarBuffer::new(buffer, offset, len)),
                    _ => return None,
                }
            }
            _ => return None,
        })
    }

    /// The bytes of row `row` of a string or binary column.
    #[inline(always)]
    fn bytes(&self, row: usize) -> Option<&[u8]> {
        match self {
            Values::Offsets32(o, v) => Some(&v[o[row] as usize..o[row + 1] as usize]),
            Values::Offsets64(o, v) => Some(&v[o[row] as usize..o[row + 1] as usize]),
            Values::Views(a) => Some(a.value(row)),
            _ => None,
        }
    }

    /// Mixes every row's value into `hashes[row]`.
    fn hash_into(&self, hashes: &mut [u64]) {
        fn mix<T: Hash>(hashes: &mut [u64], values: impl Iterator<Item = T>) {
            let state = foldhash::fast::FixedState::with_seed(SEED);
            for (hash, value) in hashes.iter_mut().zip(values) {
                *hash = state.hash_one((*hash, value));
            }
        }
        match self {
            Values::W1(v) => mix(hashes, v.iter()),
            Values::W2(v) => mix(hashes, v.iter()),
            Values::W4(v) => mix(hashes, v.iter()),
            Values::W8(v) => mix(hashes, v.iter()),
            Values::W16(v) => mix(hashes, v.iter()),
            Values::W32(v) => mix(hashes, v.iter()),
            Values::Bool(v) => mix(hashes, v.iter()),
            Values::Offsets32(o, v) => mix(
                hashes,
                o.windows(2)
                    .map(|w| ByteKey(&v[w[0] as usize..w[1] as usize])),
            ),
            Values::Offsets64(o, v) => mix(
                hashes,
                o.windows(2)
                    .map(|w| ByteKey(&v[w[0] as usize..w[1] as usize])),
            ),
            Values::Views(a) => mix(hashes, a.bytes_iter().map(ByteKey)),
        }
    }

    /// Whether row `row` here holds the same value as row `other_row` of `other`.
    #[inline(always)]
    fn equal(&self, row: usize, other: &Values, other_row: usize) -> bool {
        match (self, other) {
            (Values::W1(a), Values::W1(b)) => a[row] == b[other_row],
            (Values::W2(a), Values::W2(b)) => a[row] == b[other_row],
            (Values::W4(a), Values::W4(b)) => a[row] == b[other_row],
            (Values::W8(a), Values::W8(b)) => a[row] == b[other_row],
            (Values::W16(a), Values::W16(b)) => a[row] == b[other_row],
            (Values::W32(a), Values::W32(b)) => a[row] == b[other_row],
            (Values::Bool(a), Values::Bool(b)) => a.value(row) == b.value(other_row),
            _ => match (self.bytes(row), other.bytes(other_row)) {
                (Some(a), Some(b)) => same_bytes(a, b),
                _ => false,
            },
        }
    }
}

/// The key columns of one batch, hashed once: a row's key is the tuple of its
/// values in these columns. A row with a null in any key column has no key
/// ([`KeyColumns::is_valid`] is false): it matches nothing, as in SQL.
///
/// ```
/// use std::sync::Arc;
/// use weir_sdk::arrow_array::{ArrayRef, Int64Array, LargeStringArray, StringArray};
/// use weir_sdk::key::{KeyColumns, KeyIndex};
///
/// let ids: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), Some(2), Some(1), None]));
/// let names: ArrayRef = Arc::new(StringArray::from(vec!["a", "b", "a", "a"]));
/// let table = KeyColumns::new("lookup", &[("id", &ids), ("name", &names)])?;
/// let index = KeyIndex::new(table);
///
/// let probe_ids: ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
/// let probe_names: ArrayRef = Arc::new(LargeStringArray::from(vec!["a", "a"]));
/// let probe = KeyColumns::new("in", &[("id", &probe_ids), ("name", &probe_names)])?;
/// assert_eq!(index.matches(&probe, 0).collect::<Vec<_>>(), [0, 2]); // in row order
/// assert_eq!(index.matches(&probe, 1).count(), 0);
/// # Ok::<(), weir_sdk::PluginError>(())
/// ```
pub struct KeyColumns {
    columns: Vec<Values>,
    valid: Option<NullBuffer>,
    hashes: Vec<u64>,
}

impl std::fmt::Debug for KeyColumns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyColumns")
            .field("columns", &self.columns.len())
            .field("rows", &self.hashes.len())
            .finish()
    }
}

impl KeyColumns {
    /// Reads `columns` (`(name, array)`, all of one batch of input `port`,
    /// at least one). A column of a type that cannot be a key ([`KEY_TYPES`])
    /// is a bad-input error naming the port, the column and its type.
    pub fn new(port: &str, columns: &[(&str, &ArrayRef)]) -> Result<Self, PluginError> {
        let rows = columns.first().map_or(0, |(_, array)| array.len());
        let mut hashes = vec![0; rows];
        let mut values = Vec::with_capacity(columns.len());
        for (name, array) in columns {
            let column = Values::new(array).ok_or_else(|| {
                PluginError::bad_input(
                    port,
                    format!(
                        "column `{name}` has type {}, which cannot be a key (keys are {KEY_TYPES})",
                        array.data_type()
                    ),
                )
            })?;
            column.hash_into(&mut hashes);
            values.push(column);
        }
        let valid = NullBuffer::union_many(columns.iter().map(|(_, array)| array.nulls()));
        Ok(KeyColumns {
            columns: values,
            valid,
            hashes,
        })
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Whether row `row` has a key (no null in any key column).
    #[inline(always)]
    pub fn is_valid(&self, row: usize) -> bool {
        self.valid.as_ref().is_none_or(|nulls| nulls.is_valid(row))
    }

    /// The hash of row `row`'s key; equal keys hash alike, also across batches.
    #[inline(always)]
    pub fn hash(&self, row: usize) -> u64 {
        self.hashes[row]
    }

    /// Whether row `row` here and row `other_row` of `other` hold equal
    /// values in every key column (null keys are not compared: check
    /// [`KeyColumns::is_valid`]). Column types must be [`comparable_keys`].
    #[inline]
    pub fn equal(&self, row: usize, other: &KeyColumns, other_row: usize) -> bool {
        self.hashes[row] == other.hashes[other_row]
            && self
                .columns
                .iter()
                .zip(&other.columns)
                .all(|(a, b)| a.equal(row, b, other_row))
    }
}

/// Rows of one batch by key (a hash multimap), built once and probed with the
/// keys of other batches. Rows without a key (a null in a key column) are
/// left out, so a probe never matches on null. At most `u32::MAX - 1` rows.
#[derive(Debug)]
pub struct KeyIndex {
    keys: KeyColumns,
    /// The first row of each bucket, `NONE` when empty.
    heads: Vec<u32>,
    /// The next row in the same bucket, in ascending row order.
    next: Vec<u32>,
    mask: usize,
}

const NONE: u32 = u32::MAX;

impl KeyIndex {
    /// Indexes the rows of `keys`.
    pub fn new(keys: KeyColumns) -> Self {
        let buckets = (keys.len() * 2).next_power_of_two();
        let mut heads = vec![NONE; buckets];
        let mut next = vec![NONE; keys.len()];
        let mask = buckets - 1;
        // Backwards, so each bucket lists its rows in ascending order.
        for row in (0..keys.len()).rev() {
            if keys.is_valid(row) {
                let bucket = &mut heads[keys.hashes[row] as usize & mask];
                next[row] = *bucket;
                *bucket = row as u32;
            }
        }
        KeyIndex {
            keys,
            heads,
            next,
            mask,
        }
    }

    /// The indexed keys.
    pub fn keys(&self) -> &KeyColumns {
        &self.keys
    }

    /// The indexed rows whose key equals that of row `row` of `probe`, in
    /// ascending order; none when that row has no key (a null in a key column).
    pub fn matches<'a>(
        &'a self,
        probe: &'a KeyColumns,
        row: usize,
    ) -> impl Iterator<Item = usize> + 'a {
        let mut at = if probe.is_valid(row) {
            self.heads[probe.hashes[row] as usize & self.mask]
        } else {
            NONE
        };
        std::iter::from_fn(move || {
            while at != NONE {
                let candidate = at as usize;
                at = self.next[candidate];
                if self.keys.equal(candidate, probe, row) {
                    return Some(candidate);
                }
            }
            None
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{
        BooleanArray, Date32Array, Decimal128Array, Float64Array, Int8Array, Int64Array,
        LargeStringArray, StringArray, StringViewArray, TimestampMicrosecondArray,
    };
    use std::sync::Arc;

    fn keys(columns: &[ArrayRef]) -> KeyColumns {
        let named: Vec<(&str, &ArrayRef)> = columns.iter().map(|c| ("k", c)).collect();
        KeyColumns::new("p", &named).unwrap()
    }

    fn all_matches(index: &KeyIndex, probe: &KeyColumns) -> Vec<Vec<usize>> {
        (0..probe.len())
            .map(|row| index.matches(probe, row).collect())
            .collect()
    }

    #[test]
    fn strings_match_across_offset_widths_and_views() {
        let text = ["", "a", "longer than twelve bytes", "a"];
        let small: ArrayRef = Arc::new(StringArray::from(text.to_vec()));
        let large: ArrayRef = Arc::new(LargeStringArray::from(text.to_vec()));
        let view: ArrayRef = Arc::new(StringViewArray::from(text.to_vec()));
        let index = KeyIndex::new(keys(&[small]));
        for probe in [large, view] {
            assert_eq!(
                all_matches(&index, &keys(&[probe])),
                [vec![0], vec![1, 3], vec![2], vec![1, 3]]
            );
        }
    }

    #[test]
    fn composite_keys_of_every_kind_and_nulls_never_match() {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int8Array::from(vec![Some(1), Some(1), None, Some(1)])),
            Arc::new(BooleanArray::from(vec![true, false, true, true])),
            Arc::new(Date32Array::from(vec![7, 7, 7, 7])),
            Arc::new(TimestampMicrosecondArray::from(vec![5, 5, 5, 5]).with_timezone("UTC")),
            Arc::new(
                Decimal128Array::from(vec![100, 100, 100, 100])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
        ];
        let index = KeyIndex::new(keys(&columns));
        // Row 2 has a null key: not indexed, and matches nothing as a probe.
        let matches = all_matches(&index, &keys(&columns));
        assert_eq!(matches, [vec![0, 3], vec![1], vec![], vec![0, 3]]);
    }

    #[test]
    fn sliced_columns_and_hash_collisions_in_a_bucket() {
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..1000));
        let probe: ArrayRef = Arc::new(Int64Array::from_iter_values(500..1500).slice(10, 990));
        let index = KeyIndex::new(keys(&[ids]));
        let probe = keys(&[probe]);
        for row in 0..probe.len() {
            let want: Vec<usize> = if row + 510 < 1000 {
                vec![row + 510]
            } else {
                vec![]
            };
            assert_eq!(index.matches(&probe, row).collect::<Vec<_>>(), want);
        }
        assert!(
            KeyIndex::new(keys(&[Arc::new(Int64Array::from(Vec::<i64>::new()))]))
                .keys()
                .is_empty()
        );
    }

    #[test]
    fn unsupported_types_are_named_and_comparability_is_by_class() {
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![1.0]));
        let err = KeyColumns::new("in", &[("score", &floats)]).unwrap_err();
        assert_eq!(err.input.as_deref(), Some("in"));
        assert!(
            err.message.contains("`score` has type Float64"),
            "{}",
            err.message
        );
        assert!(comparable_keys(&DataType::Utf8View, &DataType::LargeUtf8));
        assert!(!comparable_keys(&DataType::Utf8, &DataType::Binary));
        assert!(!comparable_keys(&DataType::Int32, &DataType::Date32));
        assert!(!comparable_keys(&DataType::Int32, &DataType::Int64));
    }
}
