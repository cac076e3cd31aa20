//! Weir's Change Data Feed reader against a table another Delta writer made:
//! the Python `deltalake` package (delta-rs's Python binding, installed by
//! `.ci/setup`) creates a table with the feed on, appends, updates and
//! deletes; every version's changes as Weir reads them must equal what that
//! package's own `load_cdf` reports.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use weir_runtime::delta::changes::{CHANGE_TYPE, COMMIT_VERSION, read_version};
use weir_runtime::delta::table;
use weir_tests::orders::strings;

/// Writes the table at `argv[1]` and prints `load_cdf` from version 0 as JSON
/// lines `[version, change type, user_id, name, city]`.
const WRITER: &str = r#"
import sys, json
import pyarrow as pa
from deltalake import write_deltalake, DeltaTable
path = sys.argv[1]
schema = pa.schema([("user_id", pa.int64()), ("name", pa.string()), ("city", pa.string())])
write_deltalake(path, pa.table({"user_id": [1, 2, 3], "name": ["a", "b", "c"], "city": ["x", "y", "z"]}, schema=schema),
                configuration={"delta.enableChangeDataFeed": "true"})
write_deltalake(path, pa.table({"user_id": [4], "name": ["d"], "city": [None]}, schema=schema), mode="append")
DeltaTable(path).update(predicate="user_id = 2", updates={"city": "'Denver'"})
DeltaTable(path).delete("user_id = 3")
cdf = pa.table(DeltaTable(path).load_cdf(starting_version=0).read_all())
for r in cdf.to_pylist():
    print(json.dumps([r["_commit_version"], r["_change_type"], r["user_id"], r["name"], r["city"]]))
"#;

fn python_writes(path: &Path) -> Vec<String> {
    let output = Command::new("python3")
        .args(["-c", WRITER])
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "the Python deltalake writer failed (install it with `bash .ci/setup`):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut rows: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            let cell = |v: &serde_json::Value| match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => "<null>".into(),
                other => other.to_string(),
            };
            row.as_array()
                .unwrap()
                .iter()
                .map(cell)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    rows.sort();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_written_by_python_deltalake_reads_the_changes_its_own_reader_reports() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users");
    let expected = python_writes(&path);
    assert!(
        expected.iter().any(|r| r.contains("delete")),
        "{expected:?}"
    );

    let opened = table::open_existing(&path).await.unwrap();
    let schema = table::arrow_schema(&path, &opened).unwrap();
    let mut found = Vec::new();
    let mut per_version = BTreeMap::new();
    for version in 0..=3 {
        let batches = read_version(&path, &opened, version, &schema)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("version {version} is in the log"));
        let column = |name: &str| strings(&batches, batches[0].schema().index_of(name).unwrap());
        let (versions, kinds) = (column(COMMIT_VERSION), column(CHANGE_TYPE));
        let (ids, names, cities) = (column("user_id"), column("name"), column("city"));
        per_version.insert(version, kinds.len());
        for r in 0..kinds.len() {
            let row = [&versions[r], &kinds[r], &ids[r], &names[r], &cities[r]];
            found.push(row.map(String::as_str).join(" "));
        }
    }
    found.sort();
    assert_eq!(found, expected, "rows per version: {per_version:?}");
}
