//! The parser's fast path: reads the common row — well-formed JSON whose
//! strings have no escapes, numbers that convert exactly, each declared key at
//! most once — straight into the column buffers with a hand-written scanner.
//!
//! It decides nothing about bad rows. At anything outside the common case it
//! gives up (`None`), the caller rolls the columns back and the full parser in
//! [`crate::convert`] reads the row again, owning every rejection and its
//! message. So the fast path only has to agree with the full parser on the
//! rows it accepts; the differential tests hold it to that.
//!
//! Why a second parser: serde's visitor protocol costs a call and a returned
//! `Result` per token, which compiled code in the wasm sandbox pays for far
//! more than native code does. This one is a few tight loops over bytes.

use std::ops::ControlFlow;
use weir_sdk::fields::{Column, FieldSpec, ValueType, key_word, timestamp};

/// Deepest nesting the fast path follows; deeper rows take the full parser.
const MAX_DEPTH: usize = 64;

/// Parses one JSON object of `fields` as row number `row` of `columns`;
/// `None` when the row is not one the fast path handles (the columns may then
/// hold part of the row: truncate them to `row`).
pub fn parse_row(
    text: &str,
    fields: &[FieldSpec],
    columns: &mut [Column],
    row: usize,
    strict: bool,
) -> Option<()> {
    let mut scan = Scan {
        text,
        at: 0,
        strict,
    };
    scan.object(fields, columns, row, 0)?;
    scan.skip_space();
    (scan.at == text.len()).then_some(())
}

/// A number as JSON gives it, when it converts exactly.
enum Number {
    Integer(i64),
    Float(f64),
}

/// Exact powers of ten: every integer power up to 10^22 is a double.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A cursor over one row's text.
struct Scan<'a> {
    text: &'a str,
    at: usize,
    strict: bool,
}

impl<'a> Scan<'a> {
    #[inline]
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// Usually there is no space between tokens: one byte is tested, and the
    /// loop is entered only when there is some.
    #[inline(always)]
    fn skip_space(&mut self) {
        if let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes().get(self.at) {
            self.at = after_space(self.bytes(), self.at);
        }
    }

    /// The next byte that is not whitespace, not consumed.
    #[inline(always)]
    fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.bytes().get(self.at).copied()
    }

    #[inline(always)]
    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// The exact text `word` (a literal such as `true`).
    #[inline(always)]
    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes().get(self.at..end)? == word).then(|| self.at = end)
    }

    /// A string without escapes or control characters, without its quotes.
    #[inline(always)]
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let end = closing_quote(self.bytes(), start)?;
        self.at = end + 1;
        // SAFETY: `start` follows a quote and `end` is at one; quotes are
        // ASCII, so both are character boundaries of the `str`.
        Some(unsafe { self.text.get_unchecked(start..end) })
    }

    /// A number, when it has at most 15 significant digits and a decimal
    /// exponent of at most 22 either way: then the double nearest to it is
    /// the digits as a double, multiplied or divided by an exact power of
    /// ten, which is also how `serde_json` computes it.
    fn number(&mut self) -> Option<Number> {
        let bytes = self.bytes();
        let negative = bytes.get(self.at) == Some(&b'-');
        self.at += usize::from(negative);
        let (mut digits, mut count) = (0u64, 0u32);
        let mut take_digits = |at: &mut usize| {
            let start = *at;
            while let Some(&d @ b'0'..=b'9') = bytes.get(*at) {
                digits = digits.wrapping_mul(10) + u64::from(d - b'0');
                *at += 1;
            }
            count += (*at - start) as u32;
            *at - start
        };
        let whole = take_digits(&mut self.at);
        if whole == 0 || (whole > 1 && bytes[self.at - whole] == b'0') {
            return None; // no digits, or a leading zero
        }
        let mut exponent: i32 = 0;
        let mut integral = true;
        if bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            let fraction = take_digits(&mut self.at);
            if fraction == 0 {
                return None;
            }
            exponent -= fraction as i32;
            integral = false;
        }
        if count > 15 {
            return None;
        }
        if let Some(b'e' | b'E') = bytes.get(self.at) {
            self.at += 1;
            let sign = match bytes.get(self.at) {
                Some(b'-') => -1,
                Some(b'+') => 1,
                _ => 0,
            };
            self.at += usize::from(sign != 0);
            let (start, mut value) = (self.at, 0i32);
            while let Some(&d @ b'0'..=b'9') = bytes.get(self.at) {
                value = value.checked_mul(10)?.checked_add(i32::from(d - b'0'))?;
                self.at += 1;
            }
            if self.at == start {
                return None;
            }
            exponent = exponent.checked_add(if sign < 0 { -value } else { value })?;
            integral = false;
        }
        if integral && negative && digits == 0 {
            return Some(Number::Float(-0.0)); // JSON's `-0` is a double, as in serde_json
        }
        if integral {
            let value = digits as i64; // at most 15 digits: fits
            return Some(Number::Integer(if negative { -value } else { value }));
        }
        let power = *POW10.get(exponent.unsigned_abs() as usize)?;
        let magnitude = if exponent >= 0 {
            digits as f64 * power
        } else {
            digits as f64 / power
        };
        Some(Number::Float(if negative { -magnitude } else { magnitude }))
    }

    /// Skips any value (an undeclared key's), checking it is well-formed.
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'-' | b'0'..=b'9' => self.number().map(drop),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'[' => {
                self.at += 1;
                if self.peek()? == b']' {
                    self.at += 1;
                    return Some(());
                }
                loop {
                    self.skip_value(depth + 1)?;
                    if self.after_item(b']')? {
                        return Some(());
                    }
                }
            }
            b'{' => {
                self.at += 1;
                if self.peek()? == b'}' {
                    self.at += 1;
                    return Some(());
                }
                loop {
                    self.string()?;
                    self.eat(b':')?;
                    self.skip_value(depth + 1)?;
                    if self.after_item(b'}')? {
                        return Some(());
                    }
                }
            }
            _ => None,
        }
    }

    /// After an item: `,` (more follow, `false`) or `close` (done, `true`).
    #[inline(always)]
    fn after_item(&mut self, close: u8) -> Option<bool> {
        let next = self.peek()?;
        self.at += 1;
        match next {
            b',' => Some(false),
            b if b == close => Some(true),
            _ => None,
        }
    }

    /// An object of `fields`, appended to `columns`, which held `base` values.
    fn object(
        &mut self,
        fields: &[FieldSpec],
        columns: &mut [Column],
        base: usize,
        depth: usize,
    ) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.eat(b'{')?;
        let mut previous: Option<usize> = None;
        let mut seen = SeenFields::default();
        if self.peek()? == b'}' {
            self.at += 1;
        } else {
            loop {
                let key = self.string()?;
                self.eat(b':')?;
                match find(fields, key, previous) {
                    Some(i) => {
                        if !seen.insert(i, columns, base) {
                            return None; // a repeated key
                        }
                        let present = self.value(&fields[i].ty, &mut columns[i], depth)?;
                        if !present && fields[i].required {
                            return None;
                        }
                        previous = Some(i);
                    }
                    None if self.strict => return None,
                    None => self.skip_value(depth + 1)?,
                }
                if self.after_item(b'}')? {
                    break;
                }
            }
        }
        if seen.count < fields.len() {
            absent_fields_to_null(fields, columns, base, seen.bits)?;
        }
        Some(())
    }

    /// One value of type `ty`, appended to `column`; `false` for null.
    /// Inlined, since most values are scalars and a call costs more in the
    /// sandbox than a scalar does; objects and arrays go to [`Scan::struct_value`] and
    /// [`Scan::list_value`].
    #[inline(always)]
    fn value(&mut self, ty: &ValueType, column: &mut Column, depth: usize) -> Option<bool> {
        match (self.peek()?, ty) {
            (b'n', _) => {
                self.literal(b"null")?;
                column.push_null();
                return Some(false);
            }
            (b'"', ValueType::String) => column.push_str(self.string()?).ok()?,
            (b'"', ValueType::Timestamp(format)) => {
                column.push_micros(timestamp(self.string()?, format).ok()?)
            }
            (b't', ValueType::Boolean) => {
                self.literal(b"true")?;
                column.push_bool(true);
            }
            (b'f', ValueType::Boolean) => {
                self.literal(b"false")?;
                column.push_bool(false);
            }
            (b'-' | b'0'..=b'9', _) => self.number_into(ty, column)?,
            (b'{', ValueType::Struct(fields)) => self.struct_value(fields, column, depth)?,
            (b'[', ValueType::List(item, nullable)) => {
                self.list_value(item, *nullable, column, depth)?
            }
            _ => return None,
        }
        Some(true)
    }

    /// An object of `fields`, appended to struct `column` (out of line: the
    /// parser recurses here).
    #[inline(never)]
    fn struct_value(
        &mut self,
        fields: &[FieldSpec],
        column: &mut Column,
        depth: usize,
    ) -> Option<()> {
        let base = column.len();
        let Column::Struct { children, .. } = &mut *column else {
            unreachable!("a struct field has a struct column")
        };
        self.object(fields, children, base, depth + 1)?;
        column.close_value();
        Some(())
    }

    /// An array of `item`s, appended to list `column` (out of line: the parser
    /// recurses here).
    #[inline(never)]
    fn list_value(
        &mut self,
        item: &ValueType,
        nullable: bool,
        column: &mut Column,
        depth: usize,
    ) -> Option<()> {
        self.at += 1;
        let Column::List { child, .. } = &mut *column else {
            unreachable!("a list field has a list column")
        };
        if self.peek()? == b']' {
            self.at += 1;
        } else {
            loop {
                let present = self.value(item, child, depth + 1)?;
                if !present && !nullable {
                    return None;
                }
                if self.after_item(b']')? {
                    break;
                }
            }
        }
        column.close_value();
        Some(())
    }

    /// A number into a numeric or epoch-timestamp column, when it fits exactly.
    #[inline(always)]
    fn number_into(&mut self, ty: &ValueType, column: &mut Column) -> Option<()> {
        match (self.number()?, ty) {
            (Number::Integer(n), ValueType::Int64) => column.push_i64(n),
            (Number::Integer(n), ValueType::Int32) => column.push_i32(i32::try_from(n).ok()?),
            (Number::Integer(n), ValueType::Float64) => column.push_f64(n as f64),
            (Number::Float(x), ValueType::Float64) => column.push_f64(x),
            (Number::Integer(n), ValueType::Timestamp(format)) => {
                column.push_micros(n.checked_mul(format.micros_per_unit()?)?);
            }
            _ => return None,
        }
        Some(())
    }
}

/// A word with the high bit set in (at least) the lowest byte of `word` that
/// is a quote, a backslash or a control character, and zero if none is. Bytes
/// above the lowest such byte may be flagged falsely (borrows), never below,
/// so the lowest flagged byte is exactly the first special one.
#[inline]
fn special_bytes(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_in = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let quote = zero_in(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_in(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    quote | backslash | control
}

/// The declared fields an object has given so far: a bit each for the first
/// 64, and beyond those the column lengths (a column grows when its field is
/// given), so no column is asked its length in the common case.
#[derive(Default)]
struct SeenFields {
    bits: u64,
    count: usize,
}

impl SeenFields {
    /// Records that the object gives field `i`; `false` if it already did.
    /// `columns` held `base` values before the object.
    #[inline(always)]
    fn insert(&mut self, i: usize, columns: &[Column], base: usize) -> bool {
        if i < 64 {
            let bit = 1 << i;
            if self.bits & bit != 0 {
                return false;
            }
            self.bits |= bit;
        } else if columns[i].len() > base {
            return false;
        }
        self.count += 1;
        true
    }
}

/// Appends a null to each column of `fields` the object did not give (the
/// first 64 by the `seen` bits, the rest by their column still holding `base`
/// values); `None` when one of them is required.
#[inline(never)]
fn absent_fields_to_null(
    fields: &[FieldSpec],
    columns: &mut [Column],
    base: usize,
    seen: u64,
) -> Option<()> {
    let declared = match fields.len() {
        n @ ..64 => (1u64 << n) - 1,
        _ => u64::MAX,
    };
    let mut absent = declared & !seen;
    while absent != 0 {
        null_for_absent(fields, columns, absent.trailing_zeros() as usize)?;
        absent &= absent - 1;
    }
    for i in 64..fields.len() {
        if columns[i].len() == base {
            null_for_absent(fields, columns, i)?;
        }
    }
    Some(())
}

/// A null for absent field `i`; `None` when it is required.
#[inline(always)]
fn null_for_absent(fields: &[FieldSpec], columns: &mut [Column], i: usize) -> Option<()> {
    (!fields[i].required).then(|| columns[i].push_null())
}

/// The declared field called `key`, the key after the one of field
/// `previous` (`None`: the object's first key). Tries the field that came
/// there last time first (see [`weir_sdk::fields::KeyOrder`]), then the next
/// declared one, then searches; remembers the answer for the next object.
#[inline]
fn find(fields: &[FieldSpec], key: &str, previous: Option<usize>) -> Option<usize> {
    let word = key_word(key.as_bytes());
    let first = fields.first()?;
    let guess = match previous {
        Some(p) => fields[p].order.follower(),
        None => first.order.opener(),
    };
    let found = match fields.get(guess) {
        Some(field) if field.is_named(key, word) => return Some(guess),
        _ => {
            let declared = previous.map_or(0, |p| p + 1);
            match fields.get(declared) {
                Some(field) if field.is_named(key, word) => Some(declared),
                _ => find_anywhere(fields, key, word),
            }
        }
    }?;
    match previous {
        Some(p) => fields[p].order.set_follower(found),
        None => first.order.set_opener(found),
    }
    Some(found)
}

/// The declared field called `key` (whose [`key_word`] is `word`); names
/// are unique, so the first match is the only one.
#[inline(never)]
fn find_anywhere(fields: &[FieldSpec], key: &str, word: u64) -> Option<usize> {
    fields.iter().position(|field| field.is_named(key, word))
}

/// How many bytes the unrolled part of [`closing_quote`] tests before it
/// loops: enough for most keys, identifiers and timestamps.
const UNROLLED_WORDS: usize = 3;

/// The index of the quote closing the string that starts at `start`, or
/// `None` when the string has an escape or a control character or is not
/// closed. Tests eight bytes at a time; the first [`UNROLLED_WORDS`] words
/// without a loop, since in the sandbox every turn of a loop also pays an
/// interruption check.
#[inline(always)]
fn closing_quote(bytes: &[u8], start: usize) -> Option<usize> {
    let mut at = start;
    for _ in 0..UNROLLED_WORDS {
        match quote_in_word(bytes, at) {
            ControlFlow::Break(end) => return end,
            ControlFlow::Continue(next) => at = next,
        }
    }
    closing_quote_long(bytes, at)
}

/// One step of [`closing_quote`] at `at`: `Break` with its answer when the
/// eight bytes there (or the fewer than eight left) decide it, `Continue`
/// with where to look next when they hold no special byte.
#[inline(always)]
fn quote_in_word(bytes: &[u8], at: usize) -> ControlFlow<Option<usize>, usize> {
    let Some(word) = bytes.get(at..at + 8) else {
        return ControlFlow::Break(closing_quote_bytewise(bytes, at));
    };
    match special_bytes(u64::from_le_bytes(word.try_into().expect("8"))) {
        0 => ControlFlow::Continue(at + 8),
        special => {
            let index = at + (special.trailing_zeros() / 8) as usize;
            ControlFlow::Break((bytes[index] == b'"').then_some(index))
        }
    }
}

/// [`closing_quote`] past its unrolled words.
#[inline(never)]
fn closing_quote_long(bytes: &[u8], mut at: usize) -> Option<usize> {
    loop {
        match quote_in_word(bytes, at) {
            ControlFlow::Break(end) => return end,
            ControlFlow::Continue(next) => at = next,
        }
    }
}

/// [`closing_quote`] over the last (fewer than eight) bytes.
#[inline(never)]
fn closing_quote_bytewise(bytes: &[u8], mut at: usize) -> Option<usize> {
    loop {
        match *bytes.get(at)? {
            b'"' => return Some(at),
            b'\\' | 0..0x20 => return None,
            _ => at += 1,
        }
    }
}

/// The index of the first byte from `at` on that is not JSON whitespace.
#[cold]
#[inline(never)]
fn after_space(bytes: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = bytes.get(at) {
        at += 1;
    }
    at
}
