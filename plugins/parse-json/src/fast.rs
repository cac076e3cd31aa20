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

use crate::columns::Column;
use crate::convert::timestamp;
use crate::spec::{FieldSpec, TimestampFormat, ValueType, key_word};

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

    #[inline]
    fn skip_space(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes().get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte that is not whitespace, not consumed.
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.bytes().get(self.at).copied()
    }

    #[inline]
    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// The exact text `word` (a literal such as `true`).
    #[inline]
    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes().get(self.at..end)? == word).then(|| self.at = end)
    }

    /// A string without escapes or control characters, without its quotes.
    #[inline]
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let bytes = self.bytes();
        let mut end = start;
        // Eight bytes at a time while they last, then byte by byte.
        while let Some(chunk) = bytes.get(end..end + 8) {
            let special = special_bytes(u64::from_le_bytes(chunk.try_into().expect("8")));
            if special != 0 {
                end += (special.trailing_zeros() / 8) as usize;
                break;
            }
            end += 8;
        }
        loop {
            match *bytes.get(end)? {
                b'"' => break,
                b'\\' | 0..0x20 => return None,
                _ => end += 1,
            }
        }
        self.at = end + 1;
        // The quotes are ASCII, so both ends are character boundaries.
        self.text.get(start..end)
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
    #[inline]
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
        let mut next = 0;
        if self.peek()? == b'}' {
            self.at += 1;
        } else {
            loop {
                let key = self.string()?;
                self.eat(b':')?;
                match find(fields, key, next) {
                    Some(i) => {
                        let column = &mut columns[i];
                        if column.len() > base {
                            return None; // a repeated key
                        }
                        let present = self.value(&fields[i].ty, column, depth)?;
                        if !present && fields[i].required {
                            return None;
                        }
                        next = i + 1;
                    }
                    None if self.strict => return None,
                    None => self.skip_value(depth + 1)?,
                }
                if self.after_item(b'}')? {
                    break;
                }
            }
        }
        for (field, column) in fields.iter().zip(columns.iter_mut()) {
            if column.len() == base {
                if field.required {
                    return None;
                }
                column.push_null();
            }
        }
        Some(())
    }

    /// One value of type `ty`, appended to `column`; `false` for null.
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
            (b'{', ValueType::Struct(fields)) => {
                let base = column.len();
                let Column::Struct { children, .. } = &mut *column else {
                    unreachable!("a struct field has a struct column")
                };
                self.object(fields, children, base, depth + 1)?;
                column.close_value();
            }
            (b'[', ValueType::List(item, nullable)) => {
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
            }
            _ => return None,
        }
        Some(true)
    }

    /// A number into a numeric or epoch-timestamp column, when it fits exactly.
    #[inline]
    fn number_into(&mut self, ty: &ValueType, column: &mut Column) -> Option<()> {
        match (self.number()?, ty) {
            (Number::Integer(n), ValueType::Int64) => column.push_i64(n),
            (Number::Integer(n), ValueType::Int32) => column.push_i32(i32::try_from(n).ok()?),
            (Number::Integer(n), ValueType::Float64) => column.push_f64(n as f64),
            (Number::Float(x), ValueType::Float64) => column.push_f64(x),
            (Number::Integer(n), ValueType::Timestamp(format)) => {
                let scale = match format {
                    TimestampFormat::EpochSeconds => 1_000_000,
                    TimestampFormat::EpochMillis => 1_000,
                    TimestampFormat::EpochMicros => 1,
                    _ => return None,
                };
                column.push_micros(n.checked_mul(scale)?);
            }
            _ => return None,
        }
        Some(())
    }
}

/// A word with the high bit set in (at least) the lowest byte of `word` that
/// is a quote, a backslash or a control character, and zero if none is. Bytes
/// above the lowest such byte may be flagged falsely (borrows), never below.
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

/// The declared field called `key`, trying `next` (the field after the
/// previous key) first, since keys usually come in declaration order.
#[inline]
fn find(fields: &[FieldSpec], key: &str, next: usize) -> Option<usize> {
    // A plain loop: the iterator version is not inlined for wasm.
    let word = key_word(key.as_bytes());
    let mut i = next;
    for _ in 0..fields.len() {
        if i >= fields.len() {
            i = 0;
        }
        if fields[i].is_named(key, word) {
            return Some(i);
        }
        i += 1;
    }
    None
}
