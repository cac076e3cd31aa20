//! Local data files for `weir plugin run`: reading `.jsonl`, `.arrow` (IPC
//! stream or file) and `.parquet` into a batch shaped for an input port, and
//! writing output batches back as `.jsonl`, `.arrow` or `.parquet`.

use arrow::array::{BinaryArray, RecordBatch, RecordBatchReader};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use std::fs::File;
use std::io::{BufRead, BufReader, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Problems with a local data file; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file cannot be opened or read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The extension is not one Weir reads or writes.
    #[error("{path}: unknown format (use .jsonl, .arrow or .parquet)")]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The contents do not decode.
    #[error("{path}: {reason}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The output cannot be written.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// A data file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line (or, for a raw-bytes port, one message per line).
    Jsonl,
    /// Arrow IPC (stream or file).
    Arrow,
    /// Apache Parquet.
    Parquet,
}

impl Format {
    /// The format of `path`, from its extension.
    pub fn of(path: &Path) -> Result<Self, FileError> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("jsonl" | "ndjson" | "json") => Ok(Format::Jsonl),
            Some("arrow" | "arrows" | "ipc" | "feather") => Ok(Format::Arrow),
            Some("parquet") => Ok(Format::Parquet),
            _ => Err(FileError::UnknownFormat {
                path: path.to_path_buf(),
            }),
        }
    }

    /// The file extension written for this format.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Arrow => "arrow",
            Format::Parquet => "parquet",
        }
    }
}

/// Reads `path` as one batch for an input port declaring `schema` (`None`: any).
///
/// A `.jsonl` file for a port whose schema is one Binary column is read raw:
/// each non-empty line becomes one message, as if consumed from Kafka. Other
/// `.jsonl` files are decoded with the port's schema, or an inferred one.
pub fn read_batch(path: &Path, schema: Option<&SchemaRef>) -> Result<RecordBatch, FileError> {
    let decode = |reason: String| FileError::Decode {
        path: path.to_path_buf(),
        reason,
    };
    let file = File::open(path).map_err(|source| FileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let (file_schema, batches) = match Format::of(path)? {
        Format::Jsonl => match schema.and_then(|s| raw_column(s)) {
            Some(column) => return read_raw_lines(path, file, &column),
            None => read_json(path, file, schema).map_err(decode)?,
        },
        Format::Arrow => read_arrow(file).map_err(decode)?,
        Format::Parquet => {
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .and_then(|b| b.build())
                    .map_err(|e| decode(e.to_string()))?;
            drain(reader).map_err(decode)?
        }
    };
    concat_batches(&file_schema, &batches).map_err(|e| decode(e.to_string()))
}

/// The column name when `schema` is exactly one Binary column.
fn raw_column(schema: &Schema) -> Option<String> {
    match schema.fields().as_ref() {
        [field] if field.data_type() == &DataType::Binary => Some(field.name().clone()),
        _ => None,
    }
}

fn read_raw_lines(path: &Path, file: File, column: &str) -> Result<RecordBatch, FileError> {
    let mut rows = Vec::new();
    for line in BufReader::new(file).split(b'\n') {
        let mut line = line.map_err(|source| FileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if !line.iter().all(u8::is_ascii_whitespace) {
            rows.push(line);
        }
    }
    let values = BinaryArray::from_iter_values(rows);
    RecordBatch::try_from_iter([(column, Arc::new(values) as _)]).map_err(|e| FileError::Decode {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Decodes JSON lines with the port's schema, or one inferred from the file.
/// Errors name the first bad line.
fn read_json(
    path: &Path,
    mut file: File,
    schema: Option<&SchemaRef>,
) -> Result<(SchemaRef, Vec<RecordBatch>), String> {
    let schema = match schema {
        Some(schema) => schema.clone(),
        None => {
            let inferred = arrow::json::reader::infer_json_schema_from_seekable(
                BufReader::new(&mut file),
                None,
            )
            .map_err(|e| locate_bad_line(path, None, e))?;
            file.rewind().map_err(|e| e.to_string())?;
            Arc::new(inferred.0)
        }
    };
    arrow::json::ReaderBuilder::new(schema.clone())
        .build(BufReader::new(file))
        .and_then(|reader| reader.collect::<Result<Vec<_>, _>>())
        .map(|batches| (schema.clone(), batches))
        .map_err(|e| locate_bad_line(path, Some(&schema), e))
}

/// Turns a JSON decoding error for a whole file into one naming the first bad
/// line (1-based), by decoding the lines one at a time. Only runs on failure.
fn locate_bad_line(
    path: &Path,
    schema: Option<&SchemaRef>,
    error: arrow::error::ArrowError,
) -> String {
    let Ok(text) = std::fs::read_to_string(path) else {
        return error.to_string();
    };
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let problem = match schema {
            Some(schema) => arrow::json::ReaderBuilder::new(schema.clone())
                .build(line.as_bytes())
                .and_then(|reader| reader.collect::<Result<Vec<_>, _>>())
                .err()
                .map(|e| e.to_string()),
            None => serde_json::from_str::<serde_json::Value>(line)
                .err()
                .map(|e| {
                    let message = e.to_string();
                    let message = message
                        .split(" at line ")
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    format!("not valid JSON at column {}: {message}", e.column())
                }),
        };
        if let Some(problem) = problem {
            return format!(
                "line {}: {}",
                index + 1,
                problem.trim_start_matches("Json error: ")
            );
        }
    }
    error.to_string()
}

fn read_arrow(mut file: File) -> Result<(SchemaRef, Vec<RecordBatch>), String> {
    let mut magic = [0u8; 6];
    let is_file_format =
        std::io::Read::read_exact(&mut file, &mut magic).is_ok() && &magic == b"ARROW1";
    file.rewind().map_err(|e| e.to_string())?;
    if is_file_format {
        drain(arrow::ipc::reader::FileReader::try_new(file, None).map_err(|e| e.to_string())?)
    } else {
        let reader = arrow::ipc::reader::StreamReader::try_new(BufReader::new(file), None)
            .map_err(|e| e.to_string())?;
        drain(reader)
    }
}

/// Every batch of `reader`, with its schema.
fn drain(reader: impl RecordBatchReader) -> Result<(SchemaRef, Vec<RecordBatch>), String> {
    let schema = reader.schema();
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    Ok((schema, batches))
}

/// Writes `batch` to `path` in `format`.
pub fn write_batch(path: &Path, batch: &RecordBatch, format: Format) -> Result<(), FileError> {
    let failed = |reason: String| FileError::Write {
        path: path.to_path_buf(),
        reason,
    };
    let file = File::create(path).map_err(|e| failed(e.to_string()))?;
    match format {
        Format::Jsonl => {
            write_jsonl(std::io::BufWriter::new(file), batch).map_err(|e| failed(e.to_string()))
        }
        Format::Arrow => {
            let mut writer = arrow::ipc::writer::StreamWriter::try_new(
                std::io::BufWriter::new(file),
                batch.schema_ref(),
            )
            .map_err(|e| failed(e.to_string()))?;
            writer
                .write(batch)
                .and_then(|_| writer.finish())
                .map_err(|e| failed(e.to_string()))
        }
        Format::Parquet => {
            let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None)
                .map_err(|e| failed(e.to_string()))?;
            writer.write(batch).map_err(|e| failed(e.to_string()))?;
            writer
                .close()
                .map(|_| ())
                .map_err(|e| failed(e.to_string()))
        }
    }
}

/// Writes `batch` as JSON lines, nulls written out (`"a":null`) rather than omitted.
pub fn write_jsonl<W: std::io::Write>(
    out: W,
    batch: &RecordBatch,
) -> Result<(), arrow::error::ArrowError> {
    let mut writer = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::LineDelimited>(out);
    writer.write(batch)?;
    writer.finish()
}

/// Row `row` of `batch` as one JSON object (no newline), nulls written out:
/// the raw form of a dead letter whose source has no bytes of its own
/// (Delta and Parquet rows). `None` for a row out of range or a type JSON
/// cannot hold.
pub fn row_json(batch: &RecordBatch, row: usize) -> Option<Vec<u8>> {
    if row >= batch.num_rows() {
        return None;
    }
    let mut out = Vec::new();
    write_jsonl(&mut out, &batch.slice(row, 1)).ok()?;
    if out.last() == Some(&b'\n') {
        out.pop();
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::Field;

    fn sample() -> RecordBatch {
        RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![1, 2])) as _),
            (
                "name",
                Arc::new(StringArray::from(vec![Some("a"), None])) as _,
            ),
        ])
        .unwrap()
    }

    #[test]
    fn a_row_as_json_writes_its_nulls() {
        assert_eq!(row_json(&sample(), 1).unwrap(), br#"{"id":2,"name":null}"#);
        assert_eq!(row_json(&sample(), 2), None);
    }

    #[test]
    fn round_trips_every_format() {
        let dir = tempfile::tempdir().unwrap();
        for format in [Format::Jsonl, Format::Arrow, Format::Parquet] {
            let path = dir.path().join(format!("t.{}", format.extension()));
            write_batch(&path, &sample(), format).unwrap();
            let back = read_batch(&path, Some(&sample().schema())).unwrap();
            assert_eq!(back, sample(), "{format:?}");
        }
    }

    #[test]
    fn reads_jsonl_raw_for_a_binary_port_keeping_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        std::fs::write(&path, "{\"a\":1}\n\n{broken\r\n").unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new(
            "value",
            DataType::Binary,
            true,
        )]));
        let batch = read_batch(&path, Some(&schema)).unwrap();
        let values = batch
            .column(0)
            .as_any()
            .downcast_ref::<BinaryArray>()
            .unwrap();
        assert_eq!(values.value(0), b"{\"a\":1}");
        assert_eq!(values.value(1), b"{broken");
        assert_eq!(batch.num_rows(), 2);
    }

    #[test]
    fn infers_a_schema_for_any_port() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        std::fs::write(&path, "{\"id\":1,\"s\":\"x\"}\n{\"id\":2}\n").unwrap();
        let batch = read_batch(&path, None).unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(
            batch.schema().field_with_name("id").unwrap().data_type(),
            &DataType::Int64
        );
    }

    #[test]
    fn json_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders.jsonl");
        std::fs::write(&path, "{\"id\":1}\n\n{\"id\": }\n{\"id\":3}\n").unwrap();
        let err = read_batch(&path, None).unwrap_err().to_string();
        assert!(
            err.contains("orders.jsonl: line 3: not valid JSON"),
            "{err}"
        );
        std::fs::write(&path, "{\"id\":1}\n{\"id\":\"two\"}\n").unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
        let err = read_batch(&path, Some(&schema)).unwrap_err().to_string();
        assert!(err.contains("orders.jsonl: line 2: "), "{err}");
    }

    #[test]
    fn errors_name_the_file() {
        let err = read_batch(Path::new("/nonexistent/in.jsonl"), None).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/in.jsonl"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.csv");
        std::fs::write(&path, "a,b").unwrap();
        assert!(matches!(
            read_batch(&path, None),
            Err(FileError::UnknownFormat { .. })
        ));
        let path = dir.path().join("bad.arrow");
        std::fs::write(&path, "not arrow at all").unwrap();
        let err = read_batch(&path, None).unwrap_err();
        assert!(
            err.to_string().starts_with(&path.display().to_string()),
            "{err}"
        );
    }
}
