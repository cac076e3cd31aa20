//! Reading a Delta table's commits straight from its `_delta_log` JSON files
//! (Delta protocol, "Delta Log Entries"), independently of the code that
//! wrote them: each commit's `commitInfo` (with Weir's record), its `txn`
//! actions and the rows its `add` actions hold. Row counts come from the
//! file statistics (`numRecords`) or, when a writer left none, from the
//! Parquet footer.

use super::AuditError;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One data file a commit added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedFile {
    /// Path relative to the table (percent-encoded, as in the log).
    pub path: String,
    /// Rows in the file, from statistics or the Parquet footer.
    pub rows: u64,
    /// Whether the file carries new data (`false` for compaction rewrites).
    pub data_change: bool,
}

/// One commit (table version).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Commit {
    /// The table version.
    pub version: u64,
    /// `commitInfo.operation` (`WRITE`, `MERGE`, `CREATE TABLE`, ...).
    pub operation: Option<String>,
    /// `commitInfo.operationMetrics`.
    pub metrics: Option<Value>,
    /// Weir's record under `commitInfo.weir`.
    pub weir: Option<Value>,
    /// `txn` actions: application id → version.
    pub txns: BTreeMap<String, i64>,
    /// Files added.
    pub added: Vec<AddedFile>,
    /// Files removed with `dataChange = true` (a delete, update or overwrite).
    pub data_removes: usize,
}

impl Commit {
    /// Rows in the files this commit added with `dataChange = true`.
    pub fn added_rows(&self) -> u64 {
        self.added
            .iter()
            .filter(|f| f.data_change)
            .map(|f| f.rows)
            .sum()
    }
}

/// The commits of a table whose JSON files are still in its log.
#[derive(Debug, Clone, Default)]
pub struct TableLog {
    /// The table directory.
    pub table: PathBuf,
    /// In version order.
    pub commits: Vec<Commit>,
}

/// Reads every JSON commit in `table/_delta_log`.
pub fn read(table: &Path) -> Result<TableLog, AuditError> {
    let log = table.join("_delta_log");
    let entries = std::fs::read_dir(&log).map_err(|source| AuditError::Read {
        path: log.clone(),
        source,
    })?;
    let mut versions: Vec<(u64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".json")?;
            (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
                .then(|| Some((stem.parse().ok()?, entry.path())))?
        })
        .collect();
    versions.sort();
    let commits = versions
        .into_iter()
        .map(|(version, path)| read_commit(table, version, &path))
        .collect::<Result<_, _>>()?;
    Ok(TableLog {
        table: table.to_path_buf(),
        commits,
    })
}

fn read_commit(table: &Path, version: u64, path: &Path) -> Result<Commit, AuditError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuditError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |reason: String| AuditError::Log {
        path: path.to_path_buf(),
        reason,
    };
    let mut commit = Commit {
        version,
        ..Commit::default()
    };
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let action: Value = serde_json::from_str(line)
            .map_err(|e| bad(format!("line {}: not JSON: {e}", number + 1)))?;
        if let Some(info) = action.get("commitInfo") {
            commit.operation = info
                .get("operation")
                .and_then(Value::as_str)
                .map(str::to_string);
            commit.metrics = info.get("operationMetrics").cloned();
            commit.weir = info.get(crate::delta::commit_info::KEY).cloned();
        } else if let Some(txn) = action.get("txn") {
            let app = txn.get("appId").and_then(Value::as_str);
            let txn_version = txn.get("version").and_then(Value::as_i64);
            match (app, txn_version) {
                (Some(app), Some(txn_version)) => {
                    commit.txns.insert(app.to_string(), txn_version);
                }
                _ => {
                    return Err(bad(format!(
                        "line {}: txn without appId or version",
                        number + 1
                    )));
                }
            }
        } else if let Some(add) = action.get("add") {
            let file = add
                .get("path")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("line {}: add without path", number + 1)))?;
            let rows = match stats_rows(add) {
                Some(rows) => rows,
                None => footer_rows(table, file)?,
            };
            commit.added.push(AddedFile {
                path: file.to_string(),
                rows,
                data_change: add
                    .get("dataChange")
                    .and_then(Value::as_bool)
                    .unwrap_or(true),
            });
        } else if let Some(remove) = action.get("remove")
            && remove
                .get("dataChange")
                .and_then(Value::as_bool)
                .unwrap_or(true)
        {
            commit.data_removes += 1;
        }
    }
    Ok(commit)
}

/// `numRecords` from an add action's statistics (a JSON string).
fn stats_rows(add: &Value) -> Option<u64> {
    let stats: Value = serde_json::from_str(add.get("stats")?.as_str()?).ok()?;
    stats.get("numRecords")?.as_u64()
}

/// Rows in a data file, from its Parquet footer.
fn footer_rows(table: &Path, file: &str) -> Result<u64, AuditError> {
    // Log paths are URIs relative to the table (percent-encoded).
    let path = crate::delta::table::table_url(table)
        .ok()
        .and_then(|base| base.join(file).ok())
        .and_then(|url| url.to_file_path().ok())
        .unwrap_or_else(|| table.join(file));
    let handle = std::fs::File::open(&path).map_err(|source| AuditError::Read {
        path: path.clone(),
        source,
    })?;
    let reader =
        parquet::file::reader::SerializedFileReader::new(handle).map_err(|e| AuditError::Log {
            path: path.clone(),
            reason: format!("not a readable Parquet file: {e}"),
        })?;
    use parquet::file::reader::FileReader;
    u64::try_from(reader.metadata().file_metadata().num_rows()).map_err(|_| AuditError::Log {
        path,
        reason: "negative row count in the Parquet footer".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_commit_info_txns_and_added_rows() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("_delta_log");
        std::fs::create_dir_all(&log).unwrap();
        std::fs::write(
            log.join("00000000000000000000.json"),
            r#"{"protocol":{"minReaderVersion":1,"minWriterVersion":2}}
{"commitInfo":{"operation":"CREATE TABLE"}}
"#,
        )
        .unwrap();
        std::fs::write(
            log.join("00000000000000000001.json"),
            r#"{"add":{"path":"part-1.parquet","dataChange":true,"stats":"{\"numRecords\":7}"}}
{"add":{"path":"part-2.parquet","dataChange":false,"stats":"{\"numRecords\":3}"}}
{"remove":{"path":"old.parquet","dataChange":true}}
{"txn":{"appId":"weir:p:s","version":4}}
{"commitInfo":{"operation":"WRITE","weir":{"epoch":4}}}
"#,
        )
        .unwrap();
        std::fs::write(log.join("00000000000000000002.checkpoint.parquet"), b"").unwrap();
        std::fs::write(log.join("_last_checkpoint"), b"{}").unwrap();
        let read = read(dir.path()).unwrap();
        assert_eq!(read.commits.len(), 2);
        let commit = &read.commits[1];
        assert_eq!(commit.version, 1);
        assert_eq!(commit.operation.as_deref(), Some("WRITE"));
        assert_eq!(commit.txns.get("weir:p:s"), Some(&4));
        assert_eq!(commit.added_rows(), 7);
        assert_eq!(commit.data_removes, 1);
        assert_eq!(commit.weir.as_ref().unwrap()["epoch"], 4);
    }

    #[test]
    fn a_broken_log_line_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("_delta_log");
        std::fs::create_dir_all(&log).unwrap();
        std::fs::write(
            log.join("00000000000000000000.json"),
            "{\"commitInfo\":{}}\n{oops\n",
        )
        .unwrap();
        let error = read(dir.path()).unwrap_err().to_string();
        assert!(error.contains("00000000000000000000.json"), "{error}");
        assert!(error.contains("line 2"), "{error}");
    }
}
