//! Turns landed files into one epoch's batch. JSON lines and CSV are cut
//! into records without parsing them (parsing belongs to plugins): JSON
//! lines are split at newlines; CSV at newlines outside double quotes, so a
//! quoted field may hold line breaks (RFC 4180). A trailing `\r` is dropped,
//! blank records are skipped, and each record keeps the 1-based line number
//! it starts on. The header row of a CSV file is delivered like any record
//! (line 1); `parse-csv` reads it. Parquet files arrive as typed columns
//! ([`super::parquet`]).

use super::LandingError;
use arrow::array::{BinaryArray, Int64Array, RecordBatch, StringBuilder};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use std::path::Path;
use std::sync::{Arc, LazyLock};

/// How a landed file is cut into records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// One JSON value per line.
    Jsonl,
    /// Comma-separated values with `"` quoting; the header is line 1.
    Csv,
    /// Apache Parquet: typed columns.
    Parquet,
}

impl Format {
    /// The glob used when `glob` is not set.
    pub fn default_glob(self) -> &'static str {
        match self {
            Format::Jsonl => "*.jsonl",
            Format::Csv => "*.csv",
            Format::Parquet => "*.parquet",
        }
    }
}

/// Which of a file's records an epoch takes: `take` records after the first
/// `skip` (records are counted as cut: blank lines are not records).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// Records before the part.
    pub skip: u64,
    /// Most records the part holds.
    pub take: u64,
}

impl Part {
    /// The whole file.
    pub const WHOLE: Part = Part {
        skip: 0,
        take: u64::MAX,
    };

    /// Whether record `index` (0-based) is in the part.
    fn holds(&self, index: u64) -> bool {
        index >= self.skip && index - self.skip < self.take
    }
}

/// One epoch's batch, built from files (or parts of them) in the source's format.
pub enum FileBatch {
    /// JSON lines or CSV: raw records.
    Lines(Box<Records>, Format),
    /// Parquet: the files' rows in `schema`.
    Parquet {
        /// The source schema (see [`super::parquet::schema_of`]).
        schema: SchemaRef,
        /// One batch per file read so far.
        parts: Vec<RecordBatch>,
        /// Rows in `parts`.
        rows: usize,
    },
}

impl FileBatch {
    /// An empty batch for `format`; `schema` is the source schema.
    pub fn new(format: Format, schema: &SchemaRef) -> Self {
        match format {
            Format::Parquet => FileBatch::Parquet {
                schema: schema.clone(),
                parts: Vec::new(),
                rows: 0,
            },
            lines => FileBatch::Lines(Box::default(), lines),
        }
    }

    /// Rows appended so far.
    pub fn rows(&self) -> usize {
        match self {
            FileBatch::Lines(records, _) => records.rows(),
            FileBatch::Parquet { rows, .. } => *rows,
        }
    }

    /// Appends `part` of file `name` (its `bytes`, read from `path`); returns
    /// the number of records in the whole file. Errors only for Parquet files
    /// that do not decode or do not fit the schema.
    pub fn append(
        &mut self,
        name: &str,
        path: &Path,
        bytes: Vec<u8>,
        part: Part,
    ) -> Result<u64, LandingError> {
        match self {
            FileBatch::Lines(records, format) => Ok(records.append(name, &bytes, *format, part)),
            FileBatch::Parquet {
                schema,
                parts,
                rows,
            } => {
                let file = super::parquet::read(name, path, bytes, schema)?;
                let total = file.num_rows() as u64;
                let skip = part.skip.min(total);
                let take = part.take.min(total - skip);
                let file = file.slice(skip as usize, take as usize);
                *rows += file.num_rows();
                parts.push(file);
                Ok(total)
            }
        }
    }

    /// The batch of everything appended. Errors only when Parquet files
    /// together hold more string or binary bytes than one Arrow array can
    /// (2 GiB).
    pub fn finish(self) -> Result<RecordBatch, arrow::error::ArrowError> {
        match self {
            FileBatch::Lines(records, _) => Ok(records.finish()),
            FileBatch::Parquet { schema, parts, .. } => {
                arrow::compute::concat_batches(&schema, &parts)
            }
        }
    }
}

/// Schema of a landed batch: `value` (the record's bytes), `file` (its name
/// in the landing directory) and `line` (1-based, where the record starts).
pub fn schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("value", DataType::Binary, false),
            Field::new("file", DataType::Utf8, false),
            Field::new("line", DataType::Int64, false),
        ]))
    });
    SCHEMA.clone()
}

/// Appends the records of one file's `bytes` to a batch being built.
pub struct Records {
    /// The records' bytes, back to back (the `value` column's data).
    values: Vec<u8>,
    /// Where each record starts in `values`, then where the last one ends.
    offsets: Vec<i32>,
    file: StringBuilder,
    line: Vec<i64>,
}

impl Default for Records {
    fn default() -> Self {
        Records {
            values: Vec::new(),
            offsets: vec![0],
            file: StringBuilder::new(),
            line: Vec::new(),
        }
    }
}

impl Records {
    /// Rows appended so far.
    pub fn rows(&self) -> usize {
        self.line.len()
    }

    /// Cuts `bytes` (the whole file `name`) into records and appends those in
    /// `part`; returns how many records the whole file holds. An epoch's
    /// files hold at most 1 GiB (`MAX_EPOCH_BYTES`), so the records' offsets
    /// fit the `value` column's 32-bit offsets.
    pub fn append(&mut self, name: &str, bytes: &[u8], format: Format, part: Part) -> u64 {
        // Sized once per file (a part needs less; the rest is never touched):
        // growing by doubling would copy and fault in the epoch's bytes
        // several times over.
        self.values.reserve(bytes.len());
        let mut cut = Cut {
            name,
            part,
            index: 0,
        };
        let mut line = 1i64;
        let mut start = 0usize;
        let mut start_line = 1i64;
        match format {
            Format::Csv => {
                let mut quoted = false;
                for i in memchr::memchr2_iter(b'"', b'\n', bytes) {
                    if bytes[i] == b'"' {
                        quoted = !quoted;
                        continue;
                    }
                    line += 1;
                    if !quoted {
                        self.record(&mut cut, &bytes[start..i], start_line);
                        start = i + 1;
                        start_line = line;
                    }
                }
            }
            _ => {
                for i in memchr::memchr_iter(b'\n', bytes) {
                    line += 1;
                    self.record(&mut cut, &bytes[start..i], start_line);
                    start = i + 1;
                    start_line = line;
                }
            }
        }
        if start < bytes.len() {
            self.record(&mut cut, &bytes[start..], start_line);
        }
        cut.index
    }

    /// Counts a cut record, and appends it when its part holds it.
    fn record(&mut self, cut: &mut Cut<'_>, mut record: &[u8], line: i64) {
        if let [rest @ .., b'\r'] = record {
            record = rest;
        }
        if record.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let index = cut.index;
        cut.index += 1;
        if !cut.part.holds(index) {
            return;
        }
        let name = cut.name;
        self.values.extend_from_slice(record);
        let end = i32::try_from(self.values.len())
            .expect("an epoch's files hold at most 1 GiB (MAX_EPOCH_BYTES)");
        self.offsets.push(end);
        self.file.append_value(name);
        self.line.push(line);
    }

    /// The batch of everything appended.
    pub fn finish(mut self) -> RecordBatch {
        let offsets = OffsetBuffer::new(ScalarBuffer::from(self.offsets));
        let values = BinaryArray::new(offsets, Buffer::from_vec(self.values), None);
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(values),
                Arc::new(self.file.finish()),
                Arc::new(Int64Array::from(self.line)),
            ],
        )
        .expect("columns match the landed-records schema")
    }
}

/// One file being cut: its name, the part kept, records counted so far.
struct Cut<'a> {
    name: &'a str,
    part: Part,
    index: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;

    fn cut(bytes: &[u8], format: Format) -> Vec<(String, i64)> {
        let mut records = Records::default();
        records.append("f", bytes, format, Part::WHOLE);
        let batch = records.finish();
        let values = batch.column(0).as_binary::<i32>();
        let lines = batch.column(2).as_primitive::<Int64Type>();
        (0..batch.num_rows())
            .map(|i| {
                (
                    String::from_utf8(values.value(i).to_vec()).unwrap(),
                    lines.value(i),
                )
            })
            .collect()
    }

    #[test]
    fn json_lines_keep_their_line_numbers_and_skip_blank_lines() {
        let got = cut(b"{\"a\":1}\r\n\n  \n{\"a\":2}\n{\"a\":3}", Format::Jsonl);
        assert_eq!(
            got,
            vec![
                ("{\"a\":1}".into(), 1),
                ("{\"a\":2}".into(), 4),
                ("{\"a\":3}".into(), 5)
            ]
        );
    }

    #[test]
    fn csv_records_may_hold_quoted_line_breaks() {
        let got = cut(
            b"id,note\r\n1,\"two\nlines\"\r\n2,\"say \"\"hi\"\"\"\n",
            Format::Csv,
        );
        assert_eq!(
            got,
            vec![
                ("id,note".into(), 1),
                ("1,\"two\nlines\"".into(), 2),
                ("2,\"say \"\"hi\"\"\"".into(), 4)
            ]
        );
    }

    #[test]
    fn a_quote_in_json_lines_does_not_join_lines() {
        let got = cut(b"{\"a\":\"x\n{\"a\":2}\n", Format::Jsonl);
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|(v, _)| !v.is_empty()));
    }

    #[test]
    fn empty_files_have_no_records() {
        let mut records = Records::default();
        assert_eq!(records.append("f", b"", Format::Csv, Part::WHOLE), 0);
        assert_eq!(records.finish().column(1).len(), 0);
    }

    #[test]
    fn a_part_keeps_its_records_with_their_line_numbers_and_counts_the_whole_file() {
        let bytes = b"{\"a\":1}\n\n{\"a\":2}\n{\"a\":3}\n{\"a\":4}";
        let mut records = Records::default();
        let part = Part { skip: 1, take: 2 };
        assert_eq!(records.append("f", bytes, Format::Jsonl, part), 4);
        let batch = records.finish();
        let values = batch.column(0).as_binary::<i32>();
        let lines = batch.column(2).as_primitive::<Int64Type>();
        let got: Vec<_> = (0..batch.num_rows())
            .map(|i| (values.value(i).to_vec(), lines.value(i)))
            .collect();
        assert_eq!(
            got,
            vec![(b"{\"a\":2}".to_vec(), 3), (b"{\"a\":3}".to_vec(), 4)]
        );
        // Past the end: nothing kept, the count still whole.
        let mut records = Records::default();
        let part = Part { skip: 4, take: 9 };
        assert_eq!(records.append("f", bytes, Format::Jsonl, part), 4);
        assert_eq!(records.rows(), 0);
    }
}
