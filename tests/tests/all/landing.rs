//! The landing-zone file source: JSON-lines files dropped into a directory
//! reach bronze exactly once — across `--once` runs, with files still being
//! written (temporary names, or growing) ignored until done, processed files
//! moved away after their epoch commits, and across 10 `kill -9`s of a
//! streaming `weir run` while files keep arriving.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use weir_runtime::delta::query::query;
use weir_runtime::demo::orders::{OrderEvent, generate};
use weir_tests::orders::{commits, expected, strings};

/// Events whose value is one JSON line (the generator's malformed events
/// include some with raw newlines or blank values; as files those would be
/// other records than as Kafka messages).
fn one_line_events(count: usize, seed: u64) -> Vec<OrderEvent> {
    generate(count, seed)
        .into_iter()
        .filter(|e| !e.value.contains(&b'\n') && !e.value.trim_ascii().is_empty())
        .collect()
}

/// Writes `events` as a JSON-lines file the way a careful producer does:
/// under a temporary name, renamed when complete.
fn land(dir: &Path, name: &str, events: &[OrderEvent]) {
    let mut bytes = Vec::new();
    for event in events {
        bytes.extend_from_slice(&event.value);
        bytes.push(b'\n');
    }
    land_bytes(dir, name, bytes);
}

/// Writes file `name` holding `bytes` under a temporary name, then renames it.
fn land_bytes(dir: &Path, name: &str, bytes: Vec<u8>) {
    let temporary = dir.join(format!("{name}.tmp"));
    std::fs::write(&temporary, bytes).unwrap();
    std::fs::rename(temporary, dir.join(name)).unwrap();
}

/// A bronze-only pipeline reading `landing` (files moved to `processed`
/// when `move_processed`).
fn pipeline_file(data: &Path, landing: &Path, move_processed: bool) -> PathBuf {
    let examples = weir_tests::workspace_dir().join("examples/orders");
    let after = if move_processed {
        format!(
            "after_commit = \"move\"\nmove_to = \"{}\"",
            data.join("processed").display()
        )
    } else {
        String::new()
    };
    let text = format!(
        r#"
checkpoint_dir = "{data}/checkpoints"
dead_letters = "{data}/tables/dead_letters"

[[pipeline]]
name = "bronze"

[pipeline.source.files]
dir = "{landing}"
format = "jsonl"
stable_for = "200ms"
poll_interval = "50ms"
{after}

[pipeline.batch]
max_records = 700

[[pipeline.stage]]
name = "parse"
plugin = "{plugin}"
config_file = "{config}"

[[pipeline.sink]]
name = "bronze"
table = "{data}/tables/bronze"
mode = "append"
"#,
        data = data.display(),
        landing = landing.display(),
        plugin = weir_tests::wasm_path("parse-json").display(),
        config = examples.join("bronze.json").display(),
    );
    let path = data.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn bronze_ids(data: &Path) -> Vec<String> {
    let batches = query(
        &data.join("tables/bronze"),
        "SELECT event_id FROM t ORDER BY event_id",
    )
    .await
    .unwrap();
    strings(&batches, 0)
}

fn weir(data: &Path, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(weir_tests::weir_binary());
    command
        .args(args)
        .env("WEIR_LOG", "error")
        .env("WEIR_CACHE_DIR", data.join("cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    command
}

/// `weir audit FILE` finds every file in exactly one epoch and every row accounted for.
fn assert_audit_clean(data: &Path, file: &Path) {
    let audit = weir(data, &["audit", file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn landed_files_are_read_once_and_moved_and_unfinished_files_wait() {
    let data = tempfile::tempdir().unwrap();
    let landing = data.path().join("landing");
    std::fs::create_dir_all(&landing).unwrap();
    let events = one_line_events(3_000, 7);
    let (first, second) = events.split_at(2_000);
    land(&landing, "a.jsonl", &first[..1_000]);
    land(&landing, "b.jsonl", &first[1_000..]);
    // Still being written: a temporary name, and a hidden file.
    std::fs::write(landing.join("c.jsonl.tmp"), &second[0].value).unwrap();
    std::fs::write(landing.join(".d.jsonl"), &second[0].value).unwrap();
    let file = pipeline_file(data.path(), &landing, true);

    let load = || weir_runtime::pipeline::read(&file).unwrap_or_else(|e| panic!("{e}"));
    let reports = weir_tests::run_once(load()).await.expect("first run");
    assert_eq!(reports[0].records_in, 2_000);
    assert_eq!(
        bronze_ids(data.path()).await,
        expected(first).bronze_event_ids
    );
    let processed = data.path().join("processed");
    assert!(processed.join("a.jsonl").exists() && processed.join("b.jsonl").exists());
    assert!(landing.join("c.jsonl.tmp").exists() && landing.join(".d.jsonl").exists());

    // New files are picked up; nothing is read twice.
    land(&landing, "e.jsonl", second);
    let reports = weir_tests::run_once(load()).await.expect("second run");
    assert_eq!(reports[0].records_in, second.len() as u64);
    assert_eq!(
        bronze_ids(data.path()).await,
        expected(&events).bronze_event_ids
    );

    assert_audit_clean(data.path(), &file);
}

/// A JSON-lines file holding more records than an epoch may is split: each
/// epoch takes at most `max_records` (700 here), the next continues the file
/// where the last part ended, and the file is moved only after its last part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_larger_than_an_epoch_is_split_and_each_part_read_once() {
    let data = tempfile::tempdir().unwrap();
    let landing = data.path().join("landing");
    std::fs::create_dir_all(&landing).unwrap();
    let events = one_line_events(2_200, 29);
    land(&landing, "big.jsonl", &events[..2_000]);
    let file = pipeline_file(data.path(), &landing, true);
    let load = || weir_runtime::pipeline::read(&file).unwrap_or_else(|e| panic!("{e}"));
    let reports = weir_tests::run_once(load()).await.expect("first run");
    assert_eq!(reports[0].records_in, 2_000);
    assert_eq!(reports[0].epochs, 3, "700 + 700 + 600 records");
    assert!(data.path().join("processed/big.jsonl").exists());
    land(&landing, "small.jsonl", &events[2_000..]);
    let reports = weir_tests::run_once(load()).await.expect("second run");
    assert_eq!(reports[0].records_in, 200);
    assert_eq!(
        bronze_ids(data.path()).await,
        expected(&events).bronze_event_ids
    );
    assert_audit_clean(data.path(), &file);
}

/// `max_call_records` cuts an epoch's input into several plugin calls: bronze
/// and the dead letters (reasons, raw lines and their positions in the file)
/// are the same as with one call per epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_on_parts_of_an_epoch_give_what_one_call_gives() {
    let events = one_line_events(2_000, 11);
    let mut runs = Vec::new();
    for most in [None, Some(64)] {
        let data = tempfile::tempdir().unwrap();
        let landing = data.path().join("landing");
        std::fs::create_dir_all(&landing).unwrap();
        land(&landing, "a.jsonl", &events);
        let file = pipeline_file(data.path(), &landing, false);
        if let Some(most) = most {
            let text = std::fs::read_to_string(&file).unwrap();
            let text = text.replace(
                "config_file = ",
                &format!("max_call_records = {most}\nconfig_file = "),
            );
            std::fs::write(&file, text).unwrap();
        }
        let pipeline = weir_runtime::pipeline::read(&file).unwrap_or_else(|e| panic!("{e}"));
        let reports = weir_tests::run_once(pipeline).await.expect("run");
        assert_eq!(reports[0].records_in, 2_000);
        assert_eq!(reports[0].epochs, 3, "700 + 700 + 600 records");
        let bronze = bronze_ids(data.path()).await;
        assert_eq!(bronze, expected(&events).bronze_event_ids);
        let dead = query(
            &data.path().join("tables/dead_letters"),
            "SELECT epoch, source_position, reason, CAST(raw AS STRING) FROM t \
             ORDER BY epoch, source_position",
        )
        .await
        .unwrap();
        let dead: Vec<String> = (0..4).map(|c| strings(&dead, c).join("|")).collect();
        assert!(
            !dead[1].is_empty(),
            "the generator's malformed lines are dead letters"
        );
        runs.push((bronze, dead));
    }
    assert_eq!(runs[0], runs[1]);
}

/// Runs 2,000 landed events through bronze plus a `counts` stage (orders
/// per status) feeding two sinks, `counts_a` and `counts_b`, on one table
/// `tables/counts`; `mode` is each sink's `mode = ...` line and what follows
/// it. Returns the data directory and the pipeline file.
async fn run_two_counts_sinks(mode: &str) -> (tempfile::TempDir, PathBuf) {
    let events = one_line_events(2_000, 13);
    let data = tempfile::tempdir().unwrap();
    let landing = data.path().join("landing");
    std::fs::create_dir_all(&landing).unwrap();
    land(&landing, "a.jsonl", &events);
    let file = pipeline_file(data.path(), &landing, false);
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "mode = \"append\"",
        "mode = \"append\"\nfrom = \"parse.out\"",
    );
    let counts_sink = |name: &str| {
        format!(
            r#"
[[pipeline.sink]]
name = "{name}"
from = "counts.out"
table = "{data}/tables/counts"
{mode}
"#,
            data = data.path().display()
        )
    };
    let text = format!(
        r#"{text}
[[pipeline.stage]]
name = "counts"
input = "parse.out"
plugin = "{plugin}"
[pipeline.stage.config]
group_by = ["status"]
aggregates = [{{ name = "orders", function = "count" }}]
{a}{b}"#,
        plugin = weir_tests::wasm_path("aggregate").display(),
        a = counts_sink("counts_a"),
        b = counts_sink("counts_b"),
    );
    std::fs::write(&file, text).unwrap();
    let pipeline = weir_runtime::pipeline::read(&file).unwrap_or_else(|e| panic!("{e}"));
    let reports = weir_tests::run_once(pipeline).await.expect("run");
    assert_eq!(reports[0].epochs, 3, "700 + 700 + 600 records");
    (data, file)
}

/// The one BIGINT `sql` returns over the table `table` of `data`.
async fn scalar(data: &Path, table: &str, sql: &str) -> i64 {
    let batches = query(&data.join("tables").join(table), sql).await.unwrap();
    batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .value(0)
}

/// Two sinks appending to one table (each an epoch's counts) both land
/// every epoch, each with its own `txn` application id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sinks_appending_to_one_table_both_land_every_epoch() {
    let (data, file) = run_two_counts_sinks("mode = \"append\"").await;
    let data = data.path();
    assert_eq!(
        scalar(data, "counts", "SELECT CAST(SUM(orders) AS BIGINT) FROM t").await,
        2 * scalar(data, "bronze", "SELECT COUNT(*) FROM t").await,
        "both sinks added every epoch's counts"
    );
    assert_audit_clean(data, &file);
}

/// Two merge sinks of one pipeline on one table: each merge reads the table
/// the other just wrote. With a table handle per sink the second merge read
/// a stale version and failed every epoch with a commit conflict; sinks of
/// one table now share its handle (`delta::shared`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_issue_10_two_merge_sinks_on_one_table_commit_every_epoch() {
    let merge = r#"mode = "merge"
[pipeline.sink.merge]
on = ["status"]
update = { orders = "t.orders + s.orders" }"#;
    let (data, file) = run_two_counts_sinks(merge).await;
    let data = data.path();
    assert_eq!(
        scalar(data, "counts", "SELECT CAST(SUM(orders) AS BIGINT) FROM t").await,
        2 * scalar(data, "bronze", "SELECT COUNT(*) FROM t").await,
        "both sinks merged every epoch's counts"
    );
    assert_eq!(
        scalar(data, "counts", "SELECT COUNT(*) FROM t").await,
        scalar(data, "bronze", "SELECT COUNT(DISTINCT status) FROM t").await,
        "one row per status"
    );
    assert_audit_clean(data, &file);
}

/// A table sink failing on an epoch for good (a merge whose sum overflows)
/// stops the pipeline before the dead-letter table commits it: the epoch is
/// held by no sink, so `weir quarantine` can move past it. (Dead letters
/// commit after the tables; committing them beside the tables, tried for
/// speed, would leave such an epoch held by the dead-letter table and
/// unquarantinable.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_issue_10_a_failed_table_commit_leaves_the_epoch_quarantinable() {
    let data = tempfile::tempdir().unwrap();
    let landing = data.path().join("landing");
    std::fs::create_dir_all(&landing).unwrap();
    land_bytes(
        &landing,
        "a.jsonl",
        b"{\"k\":\"x\",\"n\":9223372036854775000}\n".to_vec(),
    );
    land_bytes(&landing, "b.jsonl", b"{\"k\":\"x\",\"n\":1000}\n".to_vec());
    let schema = data.path().join("schema.json");
    std::fs::write(
        &schema,
        r#"{"fields": [{"name": "k", "type": "string", "required": true}, {"name": "n", "type": "long", "required": true}]}"#,
    )
    .unwrap();
    let file = data.path().join("pipeline.toml");
    std::fs::write(
        &file,
        format!(
            r#"
checkpoint_dir = "{data}/checkpoints"
dead_letters = "{data}/tables/dead_letters"

[[pipeline]]
name = "sums"

[pipeline.source.files]
dir = "{landing}"
format = "jsonl"

[pipeline.batch]
max_records = 1

[[pipeline.stage]]
name = "parse"
plugin = "{parse}"
config_file = "{schema}"

[[pipeline.stage]]
name = "sum"
plugin = "{aggregate}"
[pipeline.stage.config]
group_by = ["k"]
aggregates = [{{ name = "n", function = "sum", of = "n" }}]

[[pipeline.sink]]
name = "sums"
table = "{data}/tables/sums"
mode = "merge"
[pipeline.sink.merge]
on = ["k"]
update = {{ n = "t.n + s.n" }}
"#,
            data = data.path().display(),
            landing = landing.display(),
            parse = weir_tests::wasm_path("parse-json").display(),
            aggregate = weir_tests::wasm_path("aggregate").display(),
            schema = schema.display(),
        ),
    )
    .unwrap();
    let pipeline = weir_runtime::pipeline::read(&file).unwrap_or_else(|e| panic!("{e}"));
    let error = weir_tests::run_once(pipeline)
        .await
        .expect_err("epoch 2's merge overflows")
        .to_string();
    assert!(error.contains("overflow"), "{error}");
    let quarantine = weir(
        data.path(),
        &[
            "quarantine",
            file.to_str().unwrap(),
            "--pipeline",
            "sums",
            "--epoch",
            "2",
            "--reason",
            "the sum overflows",
        ],
    )
    .stdout(Stdio::piped())
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&quarantine.stdout);
    assert!(
        quarantine.status.success() && text.contains("epoch 2 quarantined: 1 source record(s)"),
        "{text}"
    );
    let sums = query(
        &data.path().join("tables/sums"),
        "SELECT CAST(n AS VARCHAR) FROM t",
    )
    .await
    .unwrap();
    assert_eq!(strings(&sums, 0), ["9223372036854775000"]);
}

/// The file source under the kill harness: a streaming `weir run` is killed
/// 10 times at random moments while new files keep landing; at the end every
/// file's records are in bronze exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// The guard only serializes whole tests, each on its own runtime: holding it
// across awaits cannot deadlock.
#[allow(clippy::await_holding_lock)]
async fn landed_files_are_read_exactly_once_across_kills() {
    let _harness = weir_tests::exclusive_kill_harness();
    let data = tempfile::tempdir().unwrap();
    let landing = data.path().join("landing");
    std::fs::create_dir_all(&landing).unwrap();
    let events = one_line_events(24_000, 11);
    let chunks: Vec<&[OrderEvent]> = events.chunks(500).collect();
    let file = pipeline_file(data.path(), &landing, false);
    let warm = weir(data.path(), &["validate", file.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(warm.success());

    let mut landed = 0;
    let mut seed = 0x5eed_u64;
    let checkpoints = data.path().join("checkpoints");
    for kill in 0..10 {
        let started = weir_tests::start_marker(&checkpoints, "bronze");
        let mut child = weir(data.path(), &["run", file.to_str().unwrap()])
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        weir_tests::wait_until_up(&mut child, &checkpoints, "bronze", started).await;
        let before = commits(&data.path().join("tables/bronze"));
        // Files arrive while it runs.
        for _ in 0..3 {
            if landed < chunks.len() {
                land(
                    &landing,
                    &format!("orders-{landed:04}.jsonl"),
                    chunks[landed],
                );
                landed += 1;
            }
        }
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let wait = Duration::from_millis(300 + (seed >> 33) % 1_500);
        if kill % 2 == 0 {
            tokio::time::sleep(wait).await;
        } else {
            // Right after a commit.
            let deadline = Instant::now() + wait * 4;
            while commits(&data.path().join("tables/bronze")) == before && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("weir run exited by itself with {status}");
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let streamed = commits(&data.path().join("tables/bronze"));
    assert!(
        streamed >= 5,
        "the streaming runs made too little progress to test anything ({streamed} commits)"
    );
    while landed < chunks.len() {
        land(
            &landing,
            &format!("orders-{landed:04}.jsonl"),
            chunks[landed],
        );
        landed += 1;
    }
    let status = weir(data.path(), &["run", file.to_str().unwrap(), "--once"])
        .stderr(Stdio::inherit())
        .status()
        .unwrap();
    assert!(status.success());
    let ids = bronze_ids(data.path()).await;
    let wanted = expected(&events).bronze_event_ids;
    assert_eq!(ids.len(), wanted.len(), "bronze row count");
    assert!(ids == wanted, "every landed record exactly once");
    assert_audit_clean(data.path(), &file);
}

/// Regression (issue 10 review): with the checkpoint directory deleted, a
/// stateful pipeline rebuilds its dedupe state by re-reading the epochs its
/// sinks hold; when their landed files were deleted after commit, those
/// epochs are skipped with a warning instead of stopping the pipeline, and
/// new files are read exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_issue_10_state_rebuild_skips_epochs_whose_files_are_gone() {
    let data = tempfile::tempdir().unwrap();
    let landing = data.path().join("landing");
    std::fs::create_dir_all(&landing).unwrap();
    let events = one_line_events(1_500, 23);
    let (first, second) = events.split_at(1_000);
    land(&landing, "a.jsonl", &first[..500]);
    land(&landing, "b.jsonl", &first[500..]);
    let file = pipeline_file(data.path(), &landing, false);
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace(
            "poll_interval = \"50ms\"",
            "poll_interval = \"50ms\"\nafter_commit = \"delete\"",
        )
        .replace(
            "[[pipeline.sink]]",
            "[pipeline.stage.dedupe]\nkey = [\"event_id\"]\nevent_time = \"event_time\"\nretention = \"24h\"\n\n[[pipeline.sink]]",
        );
    std::fs::write(&file, text).unwrap();
    let load = || weir_runtime::pipeline::read(&file).unwrap_or_else(|e| panic!("{e}"));
    weir_tests::run_once(load()).await.expect("first run");
    assert!(!landing.join("a.jsonl").exists() && !landing.join("b.jsonl").exists());

    std::fs::remove_dir_all(data.path().join("checkpoints")).unwrap();
    land(&landing, "c.jsonl", second);
    let reports = weir_tests::run_once(load())
        .await
        .expect("restart without a checkpoint");
    assert_eq!(reports[0].records_in, second.len() as u64);
    // Each run dropped its own duplicates; the keys of the first are
    // forgotten (the documented price), so nothing of `c.jsonl` is lost.
    let distinct = |events: &[OrderEvent]| -> Vec<String> {
        let ids: std::collections::BTreeSet<String> =
            expected(events).bronze_event_ids.into_iter().collect();
        ids.into_iter().collect()
    };
    let mut wanted = distinct(first);
    wanted.extend(distinct(second));
    wanted.sort();
    assert_eq!(bronze_ids(data.path()).await, wanted);
}

/// 6,000 one-line order events (generator seed `seed`) landed as files of
/// `per_file` events, and the variables that point the orders example at them.
async fn landed_orders(
    seed: u64,
    per_file: usize,
) -> (
    weir_tests::orders::OrdersFixture,
    Vec<OrderEvent>,
    std::collections::HashMap<String, String>,
) {
    let (fixture, landing, variables) = landing_fixture().await;
    let events = one_line_events(6_000, seed);
    for (index, chunk) in events.chunks(per_file).enumerate() {
        land(&landing, &format!("orders-{index:04}.jsonl"), chunk);
    }
    (fixture, events, variables)
}

/// An orders fixture with an empty landing directory, and the variables
/// that point the orders example at it.
async fn landing_fixture() -> (
    weir_tests::orders::OrdersFixture,
    PathBuf,
    std::collections::HashMap<String, String>,
) {
    let fixture = weir_tests::orders::OrdersFixture::start(1).await;
    let landing = fixture.data.path().join("landing");
    std::fs::create_dir_all(&landing).unwrap();
    let mut variables = fixture.variables();
    variables.insert("WEIR_LANDING".into(), landing.display().to_string());
    (fixture, landing, variables)
}

/// Runs `examples/orders/landing.toml` once as changed by `edit`, from a
/// copy in the fixture (its stage configs named by full path, as the copy
/// lives elsewhere).
async fn run_edited_landing_example(
    fixture: &weir_tests::orders::OrdersFixture,
    variables: &std::collections::HashMap<String, String>,
    edit: impl FnOnce(String) -> String,
) -> Vec<weir_runtime::run::PipelineReport> {
    let examples = weir_tests::workspace_dir().join("examples/orders");
    let text = std::fs::read_to_string(examples.join("landing.toml"))
        .unwrap()
        .replace(
            "config_file = \"",
            &format!("config_file = \"{}/", examples.display()),
        );
    let file = fixture.data.path().join("landing-edited.toml");
    std::fs::write(&file, edit(text)).unwrap();
    let loaded =
        weir_runtime::pipeline::read_with(&file, variables).unwrap_or_else(|e| panic!("{e}"));
    weir_tests::run_once(loaded)
        .await
        .expect("the run succeeds")
}

/// `examples/orders/landing.toml` (the file `weir bench orders --source
/// files` runs against Spark): the orders scenario from landed JSON-lines
/// files gives exactly the tables the reference computes, as from Kafka.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_landing_example_runs_the_orders_scenario_from_files() {
    let (fixture, events, variables) = landed_orders(5, 1_500).await;
    let file = weir_tests::workspace_dir().join("examples/orders/landing.toml");
    let loaded =
        weir_runtime::pipeline::read_with(&file, &variables).unwrap_or_else(|e| panic!("{e}"));
    let reports = weir_tests::run_once(loaded)
        .await
        .expect("the landing example runs");
    assert_eq!(reports[0].records_in, events.len() as u64);
    weir_tests::orders::assert_tables(&fixture, &expected(&events)).await;
}

/// `--once` runs bronze, silver and gold at the same time; each downstream
/// layer reads its upstream table until that pipeline has finished. With
/// small epochs every layer commits many, interleaved, and every table must
/// still hold exactly what a one-after-another run writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_runs_the_layers_side_by_side_and_each_reads_all_its_upstream_wrote() {
    let (fixture, events, variables) = landed_orders(11, 400).await;
    let reports = run_edited_landing_example(&fixture, &variables, |text| {
        text.replace("max_records = 131072", "max_records = 300")
            .replace("max_records = 65536", "max_records = 300")
    })
    .await;
    let epochs: Vec<u64> = reports.iter().map(|r| r.epochs).collect();
    assert!(
        epochs.iter().all(|&e| e >= 5),
        "every layer commits many small epochs: {epochs:?}"
    );
    assert_eq!(reports[0].records_in, events.len() as u64);
    weir_tests::orders::assert_tables(&fixture, &expected(&events)).await;
}

/// Regression (issue 10, side-by-side `--once`): silver once ended an epoch
/// whenever it caught up with bronze, so its epoch boundaries — and with
/// them dedupe's watermark — depended on timing. Bronze lands one file per
/// epoch: the first at 12:00, five more at 10:00, 1h retention. Run one
/// after another, silver reads all six versions in one epoch and drops
/// nothing; side by side it must do the same, never calling the 10:00
/// events late because it happened to see the 12:00 file alone first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_issue_10_once_epochs_do_not_depend_on_how_far_the_upstream_got() {
    let (fixture, landing, variables) = landing_fixture().await;
    for file in 0..6 {
        let hour = if file == 0 { 12 } else { 10 };
        let lines: Vec<String> = (0..200)
            .map(|i| {
                let id = file * 200 + i;
                format!(
                    r#"{{"event_id":"e-{id}","order_id":"o-{id}","status":"PAID","event_time":"2024-05-01T{hour}:{:02}:{:02}Z","customer":{{"id":"c-{}"}},"product":{{"id":"p-1","name":"Lamp","category":"Home"}},"quantity":1,"unit_price":0.1}}"#,
                    i / 60,
                    i % 60,
                    id % 7
                )
            })
            .collect();
        land_bytes(
            &landing,
            &format!("orders-{file}.jsonl"),
            lines.join("\n").into_bytes(),
        );
    }
    let reports = run_edited_landing_example(&fixture, &variables, |text| {
        text.replace("max_records = 131072", "max_records = 200")
            .replace("retention = \"24h\"", "retention = \"1h\"")
    })
    .await;
    assert_eq!(reports[0].epochs, 6, "bronze: one epoch per file");
    assert_eq!(
        reports[1].epochs, 1,
        "silver: all six versions in one epoch"
    );
    assert_eq!(reports[1].dead_letters, 0, "nothing late");
    let silver = query(&fixture.table("silver"), "SELECT count(*) FROM t")
        .await
        .unwrap();
    assert_eq!(
        silver[0]
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap()
            .value(0),
        1200
    );
    // Gold sums 1,200 times 0.1 in one epoch, as one after another.
    let revenue = query(
        &fixture.table("gold_revenue_by_category"),
        "SELECT revenue FROM t",
    )
    .await
    .unwrap();
    let revenue = revenue[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Float64Array>()
        .unwrap()
        .value(0);
    let one_pass: f64 = (0..1200).map(|_| 0.1).sum();
    assert_eq!(revenue.to_bits(), one_pass.to_bits());
}
