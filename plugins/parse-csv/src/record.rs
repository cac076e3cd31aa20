//! One CSV record split into its values, following RFC 4180: values are
//! separated by the delimiter; a value that starts with the quote character
//! is quoted and runs to the matching closing quote, may hold delimiters,
//! quotes (doubled: `""`) and line breaks, and must be followed by a
//! delimiter or the end of the record. An unquoted value may hold neither a
//! quote nor a line break. Splitting only finds where the values are; it
//! copies nothing.

use std::ops::Range;

/// The delimiter and quote characters (each one ASCII byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syntax {
    /// Separates values (`,` by default).
    pub delimiter: u8,
    /// Encloses a quoted value (`"` by default).
    pub quote: u8,
}

/// Where one value sits in its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The value's text: for a quoted value, between its quotes.
    pub start: usize,
    /// End of the value's text (exclusive).
    pub end: usize,
    /// Whether the value was quoted (a quoted value is never null).
    pub quoted: bool,
    /// Whether the quoted text holds doubled quotes to undo.
    pub escaped: bool,
}

impl Span {
    /// The value's text as a range of the record.
    pub fn range(&self) -> Range<usize> {
        self.start..self.end
    }
}

/// What is wrong with a record's quoting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuoteProblem {
    /// A quoted value runs to the end of the record.
    #[error("is not closed")]
    Unclosed,
    /// Text follows a quoted value's closing quote.
    #[error("has text after its closing quote")]
    AfterClosingQuote,
    /// An unquoted value holds the quote character.
    #[error("has a quote inside an unquoted value")]
    QuoteInside,
    /// An unquoted value holds a line break.
    #[error("has a line break outside quotes")]
    LineBreak,
}

/// A record's quoting is broken at one value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("value {} {problem}", .column + 1)]
pub struct QuoteError {
    /// The position of the value (0-based).
    pub column: usize,
    /// The value as written, quotes included, up to the next delimiter or
    /// the end of the record.
    pub written: Range<usize>,
    /// What is wrong.
    pub problem: QuoteProblem,
}

/// `raw` without one trailing `\r\n` or `\n`.
pub fn strip_terminator(raw: &[u8]) -> &[u8] {
    match raw.strip_suffix(b"\n") {
        Some(line) => line.strip_suffix(b"\r").unwrap_or(line),
        None => raw,
    }
}

/// Splits `record` (without its line terminator) into `spans`, replacing
/// what they held. An empty record is one empty value.
pub fn split(record: &[u8], syntax: Syntax, spans: &mut Vec<Span>) -> Result<(), QuoteError> {
    spans.clear();
    let mut at = 0;
    loop {
        if record.get(at) == Some(&syntax.quote) {
            let span = quoted(record, at, syntax, spans.len())?;
            spans.push(span);
            // Just past the closing quote: the end, or a delimiter.
            at = span.end + 1;
            match record.get(at) {
                None => return Ok(()),
                Some(&byte) if byte == syntax.delimiter => at += 1,
                Some(_) => {
                    let end = next_delimiter(record, at, syntax.delimiter);
                    return Err(QuoteError {
                        column: spans.len() - 1,
                        written: span.start - 1..end,
                        problem: QuoteProblem::AfterClosingQuote,
                    });
                }
            }
        } else {
            let span = unquoted(record, at, syntax, spans.len())?;
            spans.push(span);
            if span.end == record.len() {
                return Ok(());
            }
            at = span.end + 1;
        }
    }
}

/// The quoted value whose opening quote is at `open`.
#[inline]
fn quoted(record: &[u8], open: usize, syntax: Syntax, column: usize) -> Result<Span, QuoteError> {
    let start = open + 1;
    let mut at = start;
    let mut escaped = false;
    loop {
        let Some(offset) = record[at..].iter().position(|&b| b == syntax.quote) else {
            return Err(QuoteError {
                column,
                written: open..record.len(),
                problem: QuoteProblem::Unclosed,
            });
        };
        at += offset;
        if record.get(at + 1) == Some(&syntax.quote) {
            escaped = true;
            at += 2;
        } else {
            return Ok(Span {
                start,
                end: at,
                quoted: true,
                escaped,
            });
        }
    }
}

/// The unquoted value starting at `start`, up to the next delimiter or the end.
#[inline]
fn unquoted(
    record: &[u8],
    start: usize,
    syntax: Syntax,
    column: usize,
) -> Result<Span, QuoteError> {
    let mut at = start;
    while let Some(&byte) = record.get(at) {
        if byte == syntax.delimiter {
            break;
        }
        let problem = match byte {
            b'\n' | b'\r' => QuoteProblem::LineBreak,
            _ if byte == syntax.quote => QuoteProblem::QuoteInside,
            _ => {
                at += 1;
                continue;
            }
        };
        return Err(QuoteError {
            column,
            written: start..next_delimiter(record, at, syntax.delimiter),
            problem,
        });
    }
    Ok(Span {
        start,
        end: at,
        quoted: false,
        escaped: false,
    })
}

/// The index of the next `delimiter` from `at` on, or the record's length.
fn next_delimiter(record: &[u8], at: usize, delimiter: u8) -> usize {
    record[at..]
        .iter()
        .position(|&b| b == delimiter)
        .map_or(record.len(), |offset| at + offset)
}

/// `text`, a quoted value holding doubled quotes, with each pair made one
/// quote, into `out`.
pub fn unescape(text: &str, quote: u8, out: &mut String) {
    out.clear();
    let mut rest = text;
    while let Some(at) = rest.bytes().position(|b| b == quote) {
        // Quotes come in pairs inside a quoted value: keep the first one of
        // each pair, skip the second.
        out.push_str(rest.get(..=at).unwrap_or(rest));
        rest = rest.get(at + 2..).unwrap_or("");
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: Syntax = Syntax {
        delimiter: b',',
        quote: b'"',
    };

    /// The values of `record` as text, or the quoting error.
    fn values(record: &str, syntax: Syntax) -> Result<Vec<String>, QuoteError> {
        let mut spans = Vec::new();
        split(record.as_bytes(), syntax, &mut spans)?;
        Ok(spans
            .iter()
            .map(|span| {
                let text = &record[span.range()];
                let mut out = String::new();
                if span.escaped {
                    unescape(text, syntax.quote, &mut out);
                } else {
                    out.push_str(text);
                }
                out
            })
            .collect())
    }

    #[test]
    fn splits_plain_and_quoted_values() {
        let cases: &[(&str, &[&str])] = &[
            ("a,b,c", &["a", "b", "c"]),
            ("", &[""]),
            (",", &["", ""]),
            ("a,,c,", &["a", "", "c", ""]),
            (r#""a,b",c"#, &["a,b", "c"]),
            ("\"line\nbreak\",\"crlf\r\n\"", &["line\nbreak", "crlf\r\n"]),
            (r#""say ""hi""",x"#, &[r#"say "hi""#, "x"]),
            (r#""""#, &[""]),
            (r#""""""#, &["\""]),
            (r#"a,"""",b"#, &["a", "\"", "b"]),
            ("é,日本", &["é", "日本"]),
        ];
        for (record, want) in cases {
            assert_eq!(values(record, CSV).unwrap(), *want, "{record:?}");
        }
    }

    #[test]
    fn other_delimiters_and_quotes() {
        let tsv = Syntax {
            delimiter: b'\t',
            quote: b'\'',
        };
        assert_eq!(
            values("a\t'b\tc'\t'it''s'", tsv).unwrap(),
            ["a", "b\tc", "it's"]
        );
        assert_eq!(values(r#"a"b,c"#, tsv).unwrap(), [r#"a"b,c"#]);
    }

    #[test]
    fn broken_quoting_names_the_value_as_written() {
        let cases = [
            (r#"a,"bc"#, 1, r#""bc"#, QuoteProblem::Unclosed),
            (r#"a,"b"c,d"#, 1, r#""b"c"#, QuoteProblem::AfterClosingQuote),
            (r#"a,"b" ,d"#, 1, r#""b" "#, QuoteProblem::AfterClosingQuote),
            (r#"ab"c,d"#, 0, r#"ab"c"#, QuoteProblem::QuoteInside),
            ("a,b\nc,d", 1, "b\nc", QuoteProblem::LineBreak),
            ("a\r", 0, "a\r", QuoteProblem::LineBreak),
        ];
        for (record, column, written, problem) in cases {
            let err = values(record, CSV).unwrap_err();
            assert_eq!(
                (err.column, &record[err.written.clone()], err.problem),
                (column, written, problem),
                "{record:?}"
            );
        }
    }

    #[test]
    fn one_line_terminator_is_stripped() {
        assert_eq!(strip_terminator(b"a,b\r\n"), b"a,b");
        assert_eq!(strip_terminator(b"a,b\n"), b"a,b");
        assert_eq!(strip_terminator(b"a,b\n\n"), b"a,b\n");
        assert_eq!(strip_terminator(b"a,b\r"), b"a,b\r");
        assert_eq!(strip_terminator(b"\"x\r\n\""), b"\"x\r\n\"");
        assert_eq!(strip_terminator(b""), b"");
    }
}
