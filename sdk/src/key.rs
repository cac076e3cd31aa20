//! [`ByteKey`]: string and binary values as hash-set and hash-map keys
//! (deduplication, joins, grouping) that compare fast inside the sandbox.
//!
//! Comparing two `&str` or `&[u8]` keys calls `memcmp`, which in a
//! WebAssembly plugin is a byte-at-a-time loop behind a function call. A
//! [`ByteKey`] compares its bytes a word at a time, inline, and gives the same
//! answers.
//!
//! [`KeyColumns`] and [`KeyIndex`] extend this to keys of one or more columns
//! of any key type (joins, lookups): hashed a column at a time, matched
//! across batches, nulls never equal.

mod columns;

pub use columns::{KEY_TYPES, KeyColumns, KeyIndex, comparable_keys};
use std::hash::{Hash, Hasher};

/// A borrowed string or binary value used as a key; equal when the bytes are.
///
/// ```
/// use std::collections::HashSet;
/// use weir_sdk::key::ByteKey;
///
/// let mut seen = HashSet::new();
/// assert!(seen.insert(ByteKey::from("e-00000001")));
/// assert!(!seen.insert(ByteKey::from("e-00000001")));
/// assert!(seen.insert(ByteKey::from(&b"e-00000002"[..])));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ByteKey<'a>(pub &'a [u8]);

impl<'a> From<&'a str> for ByteKey<'a> {
    #[inline]
    fn from(text: &'a str) -> Self {
        ByteKey(text.as_bytes())
    }
}

impl<'a> From<&'a [u8]> for ByteKey<'a> {
    #[inline]
    fn from(bytes: &'a [u8]) -> Self {
        ByteKey(bytes)
    }
}

impl PartialEq for ByteKey<'_> {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        same_bytes(self.0, other.0)
    }
}

impl Eq for ByteKey<'_> {}

impl Hash for ByteKey<'_> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.0);
    }
}

/// Whether `a` and `b` hold the same bytes: words compared, never bytes, and
/// for the last (partial) word overlapping loads instead of a byte loop.
#[inline(always)]
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let len = a.len();
    if len != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8"));
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("4"));
    match len {
        0 => true,
        1..=3 => a[0] == b[0] && a[len / 2] == b[len / 2] && a[len - 1] == b[len - 1],
        4..=7 => half(a, 0) == half(b, 0) && half(a, len - 4) == half(b, len - 4),
        _ => {
            let mut at = 0;
            while at + 8 < len {
                if word(a, at) != word(b, at) {
                    return false;
                }
                at += 8;
            }
            // The last word, overlapping the one before when `len` is not a
            // multiple of 8 (those bytes were equal already).
            word(a, len - 8) == word(b, len - 8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_agrees_with_slice_equality_at_every_length_and_position() {
        let base: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for len in 0..base.len() {
            let a = &base[..len];
            let copy = a.to_vec(); // equal bytes at another address
            assert!(same_bytes(a, &copy), "length {len}");
            for changed in 0..len {
                let mut b = a.to_vec();
                b[changed] ^= 0x20;
                assert!(!same_bytes(a, &b), "length {len}, byte {changed}");
            }
            assert!(
                !same_bytes(a, &base[..len + 1]),
                "length {len} vs {}",
                len + 1
            );
        }
    }

    #[test]
    fn equal_keys_hash_alike() {
        use std::collections::hash_map::RandomState;
        use std::hash::BuildHasher;
        let state = RandomState::new();
        let text = "c-1234";
        assert_eq!(
            state.hash_one(ByteKey::from(text)),
            state.hash_one(ByteKey::from(text.as_bytes().to_vec().as_slice()))
        );
    }
}
