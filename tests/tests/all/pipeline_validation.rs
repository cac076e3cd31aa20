//! Bad pipeline files: every problem is collected and reported together, each
//! naming where it is, before anything starts; an unreachable broker fails
//! within a bounded time with a clear message.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use weir_runtime::pipeline::{self, PipelineFileError, Problem};
use weir_runtime::run::{RunError, RunOptions, run_file};
use weir_tests::orders::plugin_dir;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn variables() -> HashMap<String, String> {
    HashMap::from([("PLUGINS".to_string(), plugin_dir().display().to_string())])
}

async fn problems(path: &Path) -> Vec<Problem> {
    let loaded = pipeline::read_with(path, &variables());
    let result = match loaded {
        Ok(file) => pipeline::validate_file(file, weir_tests::engine())
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    match result {
        Err(PipelineFileError::Invalid { problems, .. }) => problems,
        Err(other) => panic!("expected collected problems, got {other}"),
        Ok(()) => panic!("the file was accepted"),
    }
}

fn assert_reported(problems: &[Problem], location: &str, message: &str) {
    assert!(
        problems
            .iter()
            .any(|p| p.location.contains(location) && p.message.contains(message)),
        "no problem at `{location}` mentioning `{message}` in:\n{}",
        problems
            .iter()
            .map(|p| format!("  {p}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structural_problems_are_all_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "bad.toml",
        r#"
checkpoint_dir = "chk"
dead_letters = "dl"
retries = 3

[kafka]
brokers = "${MISSING_BROKERS}"

[[pipeline]]
name = "bronze"
[pipeline.source.kafka]
topics = ["orders"]
group_id = "g"

[[pipeline.stage]]
name = "parse"
plugin = "${PLUGINS}/parse_json.wasm"
confg = {}

[[pipeline.sink]]
name = "out"
from = "nope.out"
table = "t"
mode = "merge"

[[pipeline]]
name = "bronze"
[pipeline.source.delta]
table = "t"
[[pipeline.stage]]
name = "x"
plugin = "${PLUGINS}/filter_paid.wasm"
[[pipeline.sink]]
name = "s"
table = "t2"
mode = "overwrite"
"#,
    );
    let problems = problems(&path).await;
    assert_reported(&problems, "file", "unknown field `retries`");
    assert_reported(&problems, "kafka.brokers", "MISSING_BROKERS is not set");
    assert_reported(&problems, "stage \"parse\"", "unknown field `confg`");
    assert_reported(&problems, "sink \"out\" > from", "stage `nope`");
    assert_reported(&problems, "sink \"out\"", "needs a `[pipeline.sink.merge]`");
    assert_reported(&problems, "pipeline \"bronze\"", "unique");
    assert_reported(
        &problems,
        "sink \"s\" > mode",
        "unknown variant `overwrite`",
    );
    assert!(problems.len() >= 7, "{problems:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_config_schema_and_table_problems_are_all_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // An existing silver table whose schema does not fit what filter-paid emits.
    let wrong = arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new(
        "event_id",
        arrow::datatypes::DataType::Int64,
        true,
    )]);
    let delta = weir_runtime::delta::table::to_delta_schema(&wrong).unwrap();
    weir_runtime::delta::table::create(
        &dir.path().join("silver"),
        &delta,
        &[],
        &Default::default(),
        vec![],
    )
    .await
    .unwrap();
    let path = write(
        dir.path(),
        "bad.toml",
        r#"
checkpoint_dir = "chk"
dead_letters = "dl"
[kafka]
brokers = "127.0.0.1:9"

[[pipeline]]
name = "bronze"
[pipeline.source.kafka]
topics = ["orders"]
group_id = "g"
[[pipeline.stage]]
name = "parse"
plugin = "${PLUGINS}/parse_json.wasm"
config = { fields = [{ name = "event_id", type = "strin" }] }
[[pipeline.sink]]
name = "bronze"
table = "bronze"
mode = "append"

[[pipeline]]
name = "missing"
[pipeline.source.kafka]
topics = ["orders"]
group_id = "g2"
[[pipeline.stage]]
name = "nothing"
plugin = "no/such/plugin.wasm"
[[pipeline.sink]]
name = "x"
table = "x"
mode = "append"

[[pipeline]]
name = "silver"
[pipeline.source.kafka]
topics = ["orders"]
group_id = "g3"
[[pipeline.stage]]
name = "parse"
plugin = "${PLUGINS}/parse_json.wasm"
config = { fields = [{ name = "event_id", type = "string" }, { name = "status", type = "string" }] }
[[pipeline.stage]]
name = "paid"
plugin = "${PLUGINS}/filter_paid.wasm"
config = { dedupe_on = "event_id" }
[pipeline.stage.dedupe]
key = ["order_id"]
event_time = "status"
retention = "1h"
[[pipeline.sink]]
name = "silver"
table = "silver"
mode = "merge"
partition_by = ["day"]
[pipeline.sink.merge]
on = ["event_id"]
when = "s.x >>> t.x"
"#,
    );
    let problems = problems(&path).await;
    assert_reported(&problems, "stage \"parse\" > config", "fields[0].type");
    assert_reported(
        &problems,
        "stage \"nothing\" > plugin",
        "no/such/plugin.wasm",
    );
    assert_reported(&problems, "dedupe.key", "column `order_id`");
    assert_reported(&problems, "dedupe.event_time", "not a timestamp");
    assert_reported(&problems, "sink \"silver\" > partition_by", "column `day`");
    assert_reported(
        &problems,
        "sink \"silver\" > merge.when",
        "is not a valid condition over `t` and `s`",
    );
    assert_reported(
        &problems,
        "sink \"silver\" > table",
        "column `event_id` is \"string\" in the stream but \"long\" in the table",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_fails_within_the_connect_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = write(
        dir.path(),
        "pipeline.toml",
        &format!(
            r#"
checkpoint_dir = "chk"
dead_letters = "dl"
[kafka]
brokers = "127.0.0.1:{port}"
connect_timeout = "2s"
[[pipeline]]
name = "bronze"
[pipeline.source.kafka]
topics = ["orders"]
group_id = "g"
[[pipeline.stage]]
name = "parse"
plugin = "${{PLUGINS}}/parse_json.wasm"
config = {{ fields = [{{ name = "event_id", type = "string" }}] }}
[[pipeline.sink]]
name = "bronze"
table = "bronze"
mode = "append"
"#
        ),
    );
    let file = pipeline::read_with(&path, &variables()).unwrap();
    let prepared = pipeline::validate_file(file, weir_tests::engine())
        .await
        .unwrap();
    let started = Instant::now();
    let error = run_file(
        prepared,
        RunOptions { once: true },
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .expect_err("no broker listens there");
    let elapsed = started.elapsed();
    assert!(matches!(error, RunError::Kafka { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains(&format!("cannot reach Kafka at 127.0.0.1:{port}")),
        "{message}"
    );
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
}

#[test]
fn weir_validate_lists_every_problem_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "bad.toml",
        "checkpoint_dir = 1\n[[pipeline]]\nname = \"p\"\nsauce = 2\n",
    );
    let output = std::process::Command::new(weir_tests::weir_binary())
        .args(["validate", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("checkpoint_dir"), "{stderr}");
    assert!(stderr.contains("unknown field `sauce`"), "{stderr}");
    assert!(
        stderr.contains("problem(s); nothing was started"),
        "{stderr}"
    );
}

/// Regression (issue 10 review): a plugin that panics on the empty batch
/// validation probes it with (here `misbehave`, which reads row 0) is a
/// problem naming the stage, not a crash of the host: the panic message it
/// writes to stderr used to start a runtime inside the async validation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_issue_10_a_plugin_panicking_at_validation_is_a_problem_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("landing")).unwrap();
    let path = write(
        dir.path(),
        "panics.toml",
        &format!(
            r#"
checkpoint_dir = "chk"
dead_letters = "dl"

[[pipeline]]
name = "m"
[pipeline.source.files]
dir = "landing"
format = "jsonl"
[[pipeline.stage]]
name = "parse"
plugin = "${{PLUGINS}}/parse_json.wasm"
config = {{ fields = [{{ name = "action", type = "string" }}] }}
[[pipeline.stage]]
name = "mis"
plugin = "{misbehave}"
[[pipeline.sink]]
name = "out"
table = "out"
mode = "append"
"#,
            misbehave = weir_tests::wasm_path("misbehave").display()
        ),
    );
    let problems = problems(&path).await;
    assert_reported(&problems, "stage \"mis\"", "misbehave");
}

/// An upsert sink fed by a stage without the columns it needs: each problem
/// names the `upsert` key and the column, before anything runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_sink_column_problems_name_the_key_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "bad.toml",
        r#"
checkpoint_dir = "chk"
dead_letters = "dl"
[kafka]
brokers = "127.0.0.1:9"

[[pipeline]]
name = "users"
[pipeline.source.kafka]
topics = ["user_info"]
group_id = "g"
[[pipeline.stage]]
name = "parse"
plugin = "${PLUGINS}/parse_json.wasm"
config = { fields = [{ name = "user_id", type = "long" }, { name = "at", type = "string" }] }
[[pipeline.sink]]
name = "users"
table = "users"
mode = "upsert"
upsert = { key = ["user_id", "tenant"], order_by = "at" }
"#,
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let same = write(
        dir.path(),
        "same.toml",
        &text.replace(
            "order_by = \"at\"",
            "order_by = \"at\", tombstones = \"users\"",
        ),
    );
    assert_reported(
        &problems(&same).await,
        "sink \"users\" > upsert.tombstones",
        "must not be the table itself",
    );
    let problems = problems(&path).await;
    assert_reported(
        &problems,
        "sink \"users\" > upsert.key",
        "column `tenant` is not in the stream",
    );
    assert_reported(
        &problems,
        "sink \"users\" > upsert.order_by",
        "column `at` has type Utf8; the ordering column must be an integer",
    );
    assert_reported(
        &problems,
        "sink \"users\" > upsert.deleted",
        "column `_deleted` is not in the stream",
    );
}

/// A sink reading a route port that does not exist is told the ports the
/// configured `route` stage has, not its manifest's placeholder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misspelled_route_port_lists_the_configured_routes() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "bad.toml",
        r#"
checkpoint_dir = "chk"
dead_letters = "dl"
[kafka]
brokers = "127.0.0.1:9"

[[pipeline]]
name = "bronze"
[pipeline.source.kafka]
topics = ["user_info", "bpm"]
group_id = "g"
[[pipeline.stage]]
name = "route"
plugin = "${PLUGINS}/route.wasm"
config = { column = "topic", routes = ["user_info", "bpm"] }
[[pipeline.sink]]
name = "users"
from = "route.userinfo"
table = "users"
mode = "append"
"#,
    );
    assert_reported(
        &problems(&path).await,
        "sink \"users\" > from",
        "stage `route` has no output port `userinfo` (its ports: bpm, unmatched, user_info)",
    );
}

/// A change source, a keyed lookup and a Kafka sink: what the loader
/// refuses, then what validation refuses, each naming the key and column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_source_keyed_lookup_and_kafka_sink_problems_name_table_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let tables = dir.path().join("tables");
    weir_runtime::demo::related::write_round(&tables, 1, &[1, 2], 0)
        .await
        .unwrap();
    // A table without the Change Data Feed.
    let schema =
        weir_runtime::delta::table::to_delta_schema(&weir_runtime::demo::related::schema("tags"))
            .unwrap();
    weir_runtime::delta::table::create(
        &tables.join("plain"),
        &schema,
        &[],
        &Default::default(),
        vec![],
    )
    .await
    .unwrap();
    let header = r#"
checkpoint_dir = "chk"
dead_letters = "dl"
[kafka]
brokers = "127.0.0.1:9"
[[pipeline]]
name = "profiles"
"#;
    let loading = write(
        dir.path(),
        "load.toml",
        &format!(
            r#"{header}
[pipeline.source.changes]
tables = {{ accounts = "tables/accounts", tags = "tables/tags" }}
[[pipeline.stage]]
name = "first"
plugin = "${{PLUGINS}}/denormalize_profile.wasm"
config = {{ key = "user_id", profile = "accounts" }}
[[pipeline.stage]]
name = "second"
plugin = "${{PLUGINS}}/denormalize_profile.wasm"
config = {{ key = "user_id", profile = "accounts" }}
[pipeline.stage.lookup.accounts]
table = "tables/accounts"
key = "user_id"
[[pipeline.sink]]
name = "out"
[pipeline.sink.kafka]
topic = "profiles"
value = "profile"
headers = {{ "weir-seq" = "user_id" }}
"#
        ),
    );
    let found = problems(&loading).await;
    assert_reported(
        &found,
        "source.changes.columns",
        "is required with several tables",
    );
    assert_reported(
        &found,
        "stage \"second\" > lookup.accounts.key",
        "its stage must take `input = \"source\"`",
    );
    assert_reported(
        &found,
        "sink \"out\" > kafka.headers",
        "`weir-seq` is set by Weir",
    );

    let sources = write(
        dir.path(),
        "sources.toml",
        &format!(
            r#"{header}
[pipeline.source.changes]
tables = {{ accounts = "tables/accounts", tags = "tables/tags", plain = "tables/plain", gone = "tables/gone" }}
columns = ["user_id", "kind"]
[[pipeline.stage]]
name = "profile"
plugin = "${{PLUGINS}}/denormalize_profile.wasm"
config = {{ key = "user_id", profile = "accounts" }}
[[pipeline.sink]]
name = "out"
[pipeline.sink.kafka]
topic = "profiles"
value = "profile"
"#
        ),
    );
    let found = problems(&sources).await;
    assert_reported(
        &found,
        "source.changes.tables.plain",
        "version 0: the Change Data Feed is off",
    );
    assert_reported(
        &found,
        "source.changes.tables.gone",
        "is not a Delta table, and no pipeline in this file writes it",
    );

    let columns = write(
        dir.path(),
        "columns.toml",
        &std::fs::read_to_string(&sources)
            .unwrap()
            .replace(", plain = \"tables/plain\", gone = \"tables/gone\"", ""),
    );
    assert_reported(
        &problems(&columns).await,
        "source.changes.columns",
        "table `tags` has no column `kind`",
    );

    let stages = write(
        dir.path(),
        "stages.toml",
        &format!(
            r#"{header}
[pipeline.source.changes]
tables = {{ accounts = "tables/accounts" }}
[[pipeline.stage]]
name = "profile"
plugin = "${{PLUGINS}}/denormalize_profile.wasm"
config = {{ key = "user_id", profile = "accounts" }}
[pipeline.stage.lookup.accounts]
table = "tables/accounts"
key = "account"
[[pipeline.sink]]
name = "out"
[pipeline.sink.kafka]
topic = "profiles"
key = "nope"
value = "user_id"
"#
        ),
    );
    let found = problems(&stages).await;
    assert_reported(
        &found,
        "stage \"profile\" > lookup.accounts.key",
        "has no column `account`",
    );
    assert_reported(
        &found,
        "sink \"out\" > kafka.key",
        "column `nope` is not in",
    );
    assert_reported(
        &found,
        "sink \"out\" > kafka.value",
        "column `user_id` has type Int64; it must be text, bytes or a struct",
    );
}
