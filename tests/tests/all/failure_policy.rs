//! The failure policy against a real broker and Delta tables, driven by the
//! `drift` test plugin (its input decides what it does): a `bad-input` error
//! dead-letters the batch; an `internal` error or a trap stops the pipeline
//! after one retry and commits nothing; output that drifts from the schema
//! validated at start stops it with an error naming plugin, port and column;
//! `max_rejected_ratio` stops an epoch that rejects too much; and a replay
//! runs the plugin version its plan recorded, or refuses naming the stage.

use std::path::{Path, PathBuf};
use weir_runtime::audit::delta_log;
use weir_runtime::kafka::producer;
use weir_runtime::pipeline;
use weir_runtime::run::{PipelineReport, RunError};
use weir_tests::orders::OrdersFixture;

/// One pipeline, `tag`: Kafka topic → the `drift` plugin → Delta table `tagged`.
struct Drifting<'a> {
    fixture: &'a OrdersFixture,
    topic: String,
    dir: PathBuf,
    plugin: PathBuf,
}

impl<'a> Drifting<'a> {
    /// A pipeline on its own topic and data directory, running a copy of the
    /// `drift` component that the test may replace.
    async fn new(fixture: &'a OrdersFixture, name: &str) -> Self {
        let dir = fixture.data.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let plugin = dir.join("drift.wasm");
        std::fs::copy(weir_tests::wasm_path("drift"), &plugin).unwrap();
        producer::ensure_topic(&fixture.connection(), name, 1)
            .await
            .unwrap();
        Drifting {
            fixture,
            topic: name.to_string(),
            dir,
            plugin,
        }
    }

    async fn produce(&self, values: &[&str]) {
        let messages = values.iter().map(|v| (Vec::new(), v.as_bytes().to_vec()));
        producer::produce(&self.fixture.connection(), &self.topic, messages)
            .await
            .unwrap();
    }

    fn table(&self, name: &str) -> PathBuf {
        self.dir.join("tables").join(name)
    }

    /// Writes the pipeline file (with `stage_extra` in the stage) and runs it once.
    async fn run(&self, stage_extra: &str) -> Result<Vec<PipelineReport>, RunError> {
        let file = self.dir.join("pipeline.toml");
        let text = format!(
            r#"
checkpoint_dir = "{dir}/checkpoints"
dead_letters = "{dir}/tables/dead_letters"

[kafka]
brokers = "{brokers}"

[[pipeline]]
name = "tag"

[pipeline.source.kafka]
topics = ["{topic}"]
group_id = "weir-{topic}"

# One epoch per run: the few records produced before it arrive well within
# the wait.
[pipeline.batch]
max_wait = "3s"

[[pipeline.stage]]
name = "tag"
plugin = "{plugin}"
{stage_extra}

[[pipeline.sink]]
name = "tagged"
table = "{dir}/tables/tagged"
mode = "append"
"#,
            dir = self.dir.display(),
            brokers = self.fixture.broker.bootstrap(),
            topic = self.topic,
            plugin = self.plugin.display(),
        );
        std::fs::write(&file, text).unwrap();
        weir_tests::run_once(pipeline::read(&file).unwrap_or_else(|e| panic!("{e}"))).await
    }
}

/// Weir records (`commitInfo.weir`) of a table's epochs, in order.
fn records(table: &Path) -> Vec<serde_json::Value> {
    delta_log::read(table)
        .unwrap()
        .commits
        .into_iter()
        .filter_map(|c| c.weir)
        .filter(|record| record.get("epoch").is_some())
        .collect()
}

fn rows(table: &Path) -> u64 {
    delta_log::read(table)
        .unwrap()
        .commits
        .iter()
        .map(|c| c.added_rows())
        .sum()
}

fn stopped_with(result: Result<Vec<PipelineReport>, RunError>) -> String {
    match result {
        Ok(reports) => panic!("the pipeline should have stopped, but ran: {reports:?}"),
        Err(error) => error.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_bugs_stop_the_pipeline_and_bad_input_goes_to_dead_letters() {
    let fixture = OrdersFixture::start(1).await;

    // A bug (an `internal` error or a trap) stops the pipeline: nothing committed.
    for (name, value, expected) in [
        ("internal", "fail:internal", "asked to fail"),
        ("trap", "panic", "drift was asked to panic"),
    ] {
        let pipeline = Drifting::new(&fixture, name).await;
        pipeline.produce(&["a", value, "b"]).await;
        let error = stopped_with(pipeline.run("").await);
        assert!(
            error.contains("stage `tag`")
                && error.contains("drift@0.1.0")
                && error.contains(expected),
            "{name}: {error}"
        );
        let tagged = records(&pipeline.table("tagged"));
        assert!(tagged.is_empty(), "{name}: {tagged:#?}");
        assert!(
            records(&pipeline.table("dead_letters")).is_empty(),
            "{name}"
        );
    }

    // Bad input is a data error: the batch goes to dead letters, the pipeline goes on.
    let pipeline = Drifting::new(&fixture, "bad-input").await;
    pipeline.produce(&["a", "fail:bad-input"]).await;
    let reports = pipeline.run("").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reports[0].dead_letters, 2);
    assert_eq!(rows(&pipeline.table("tagged")), 0);
    assert_eq!(rows(&pipeline.table("dead_letters")), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_that_drifts_from_the_validated_schema_names_plugin_port_and_column() {
    let fixture = OrdersFixture::start(1).await;
    for (kind, expected) in [
        ("add", "column `extra` (Boolean) is not expected"),
        ("drop", "column `length` (Int64) is missing"),
        ("retype", "column `length` has type Utf8, expected Int64"),
        (
            "reorder",
            "columns are out of order: column `length` is at position 0, where `value` is expected",
        ),
    ] {
        let pipeline = Drifting::new(&fixture, &format!("drift-{kind}")).await;
        // A first epoch as validated, then one whose output changes shape.
        pipeline.produce(&["a", "b"]).await;
        pipeline.run("").await.unwrap_or_else(|e| panic!("{e}"));
        pipeline.produce(&["c", &format!("drift:{kind}")]).await;
        let error = stopped_with(pipeline.run("").await);
        assert!(
            error.contains("drift@0.1.0")
                && error
                    .contains("output port `out` no longer matches the schema validated at start")
                && error.contains(expected),
            "{kind}: {error}"
        );
        assert_eq!(error.matches(expected).count(), 1, "said once: {error}");
        assert_eq!(
            rows(&pipeline.table("tagged")),
            2,
            "{kind}: epoch 2 is not committed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_epoch_rejecting_more_than_max_rejected_ratio_stops_the_pipeline() {
    let fixture = OrdersFixture::start(1).await;
    let pipeline = Drifting::new(&fixture, "ratio").await;
    let limit = "max_rejected_ratio = 0.5";
    pipeline.produce(&["reject", "a", "b", "c"]).await;
    pipeline.run(limit).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows(&pipeline.table("dead_letters")), 1);

    pipeline.produce(&["reject", "reject", "d"]).await;
    let error = stopped_with(pipeline.run(limit).await);
    assert!(
        error.contains(
            "stage `tag`, epoch 2: rejected 2 of 3 rows, more than max_rejected_ratio = 0.5"
        ),
        "{error}"
    );
    assert_eq!(rows(&pipeline.table("tagged")), 3);
    assert_eq!(rows(&pipeline.table("dead_letters")), 1);

    // The operator raises the limit: the stuck epoch goes through, exactly once.
    pipeline
        .run("max_rejected_ratio = 1.0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows(&pipeline.table("tagged")), 4);
    assert_eq!(rows(&pipeline.table("dead_letters")), 3);
}

/// The component with a custom section appended: the same plugin, another hash.
fn another_build(component: &Path, tag: &str) {
    let mut bytes = std::fs::read(component).unwrap();
    let name = b"weir-test";
    let payload = tag.as_bytes();
    let size = 1 + name.len() + payload.len();
    assert!(size < 128 && name.len() < 128, "one-byte LEB128 sizes");
    bytes.extend([0u8, size as u8, name.len() as u8]);
    bytes.extend(name);
    bytes.extend(payload);
    std::fs::write(component, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_runs_the_plugin_version_its_plan_recorded_or_refuses_naming_the_stage() {
    let fixture = OrdersFixture::start(1).await;
    let pipeline = Drifting::new(&fixture, "pins").await;
    let strict = "max_rejected_ratio = 0.0";
    pipeline.produce(&["a"]).await;
    pipeline.run(strict).await.unwrap_or_else(|e| panic!("{e}"));
    let tagged = records(&pipeline.table("tagged"));
    let first = tagged[0]["plugins"][0].clone();
    assert!(first.is_object(), "{tagged:#?}");
    assert_eq!(first["stage"], "tag");
    assert_eq!(first["plugin"], "drift");
    assert!(first["config_hash"].is_string());

    // Epoch 2 is planned with that build and stopped; then the file is replaced.
    pipeline.produce(&["reject"]).await;
    stopped_with(pipeline.run(strict).await);
    another_build(&pipeline.plugin, "v2");
    pipeline.produce(&["b"]).await;
    pipeline.run("").await.unwrap_or_else(|e| panic!("{e}"));
    let tagged = records(&pipeline.table("tagged"));
    assert_eq!(tagged.len(), 3);
    assert_eq!(tagged[1]["epoch"], 2);
    assert_eq!(
        tagged[1]["plugins"][0]["hash"], first["hash"],
        "the replayed epoch ran the recorded build"
    );
    assert_ne!(
        tagged[2]["plugins"][0]["hash"], first["hash"],
        "new epochs run the new build"
    );
    assert_eq!(tagged[1]["plan"]["stages"][0]["hash"], first["hash"]);

    // When the recorded build is gone, the replay refuses and names the stage.
    pipeline.produce(&["reject"]).await;
    stopped_with(pipeline.run(strict).await);
    let recorded = tagged[2]["plugins"][0]["hash"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::remove_file(
        pipeline
            .dir
            .join("checkpoints/tag/versions")
            .join(format!("{recorded}.wasm")),
    )
    .unwrap();
    another_build(&pipeline.plugin, "v3");
    let error = stopped_with(pipeline.run("").await);
    assert!(
        error.contains("epoch 4 was planned with stage `tag` running drift@0.1.0")
            && error
                .contains("that plugin is neither the one the pipeline file names now nor kept"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weir_quarantine_moves_past_a_poison_epoch_and_records_the_decision() {
    let fixture = OrdersFixture::start(1).await;
    let pipeline = Drifting::new(&fixture, "poison").await;
    pipeline.produce(&["a"]).await;
    pipeline.run("").await.unwrap_or_else(|e| panic!("{e}"));

    // Epoch 2 traps every time: the error says how to move past it.
    pipeline.produce(&["b", "panic", "c"]).await;
    let error = stopped_with(pipeline.run("").await);
    assert!(
        error.contains("weir quarantine FILE --pipeline tag --epoch 2 --reason TEXT"),
        "{error}"
    );
    let file = pipeline.dir.join("pipeline.toml");
    let quarantine = |epoch: &str| {
        let output = weir_tests::orders::weir(
            &fixture,
            &[
                "quarantine",
                file.to_str().unwrap(),
                "--pipeline",
                "tag",
                "--epoch",
                epoch,
                "--reason",
                "ticket 42: drift panics on this batch",
            ],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    };
    // Not the pending epoch: refused, nothing written.
    let (ok, text) = quarantine("1");
    assert!(
        !ok && text.contains("sink `tagged` already holds epoch 1"),
        "{text}"
    );
    let (ok, text) = quarantine("3");
    assert!(!ok && text.contains("has no plan of epoch 3"), "{text}");

    let (ok, text) = quarantine("2");
    assert!(
        ok && text.contains("epoch 2 quarantined: 3 source record(s)"),
        "{text}"
    );
    // The input is in the dead-letter table with the reason and its offsets;
    // every sink's commit of epoch 2 records the decision.
    let dead = weir_runtime::delta::query::query(
        &pipeline.table("dead_letters"),
        "SELECT CAST(raw AS VARCHAR), stage, reason, source_kind, source_position FROM t WHERE epoch = 2 ORDER BY source_position",
    )
    .await
    .unwrap();
    let column = |i| weir_tests::orders::strings(&dead, i);
    assert_eq!(column(0), ["b", "panic", "c"]);
    assert!(column(1).iter().all(|s| s == "quarantine"));
    assert!(
        column(2)
            .iter()
            .all(|r| r == "quarantined by an operator: ticket 42: drift panics on this batch")
    );
    assert!(column(3).iter().all(|k| k == "kafka"));
    assert!(column(4)[0].contains("\"offset\":1"), "{:?}", column(4));
    let tagged = records(&pipeline.table("tagged"));
    assert_eq!(tagged.len(), 2);
    assert_eq!(tagged[1]["rows"], 0);
    assert_eq!(
        tagged[1]["plan"]["quarantine"]["reason"],
        "ticket 42: drift panics on this batch"
    );
    assert_eq!(tagged[1]["counts"]["quarantined"], 3);

    // Doing it again is refused; the next run starts after the epoch.
    let (ok, text) = quarantine("2");
    assert!(!ok && text.contains("already holds epoch 2"), "{text}");
    pipeline.produce(&["d"]).await;
    let reports = pipeline.run("").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((reports[0].records_in, reports[0].last_epoch), (1, 3));
    assert_eq!(rows(&pipeline.table("tagged")), 2);
    let (clean, report) = weir_tests::orders::audit(&fixture, &file);
    assert!(clean, "{report}");
}

/// Produces 10,000 values, `panic` at `poison`, `v<i>` elsewhere.
async fn ten_thousand_with_poison_at(pipeline: &Drifting<'_>, poison: &[usize]) {
    let values: Vec<String> = (0..10_000)
        .map(|i| match poison.contains(&i) {
            true => "panic".to_string(),
            false => format!("v{i}"),
        })
        .collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    pipeline.produce(&refs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_poison_rows_among_ten_thousand_go_to_dead_letters_and_the_rest_through() {
    let fixture = OrdersFixture::start(1).await;
    let pipeline = Drifting::new(&fixture, "poison").await;
    ten_thousand_with_poison_at(&pipeline, &[17, 4_242, 9_999]).await;
    let reports = pipeline.run("").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reports[0].epochs, 1, "one epoch holds all 10,000 records");
    assert_eq!(reports[0].stages[0].poisoned, 3);
    assert_eq!(rows(&pipeline.table("tagged")), 9_997);
    let dead = weir_runtime::delta::query::query(
        &pipeline.table("dead_letters"),
        "SELECT CAST(raw AS VARCHAR) AS r, CAST(source_offset AS VARCHAR) AS o, plugin, plugin_version, reason FROM t ORDER BY source_offset",
    )
    .await
    .unwrap();
    let column = |i| weir_tests::orders::strings(&dead, i);
    assert_eq!(column(0), ["panic", "panic", "panic"]);
    assert_eq!(column(1), ["17", "4242", "9999"]);
    assert!(column(2).iter().all(|p| p == "drift"));
    assert!(column(3).iter().all(|v| v == "0.1.0"));
    assert!(
        column(4)
            .iter()
            .all(|r| r.contains("this row makes plugin drift@0.1.0")
                && r.contains("drift was asked to panic")),
        "{:?}",
        column(4)
    );
    // The 9,997 others went through in the same epoch, each once.
    let kept = weir_runtime::delta::query::query(
        &pipeline.table("tagged"),
        "SELECT CAST(count(DISTINCT value) AS VARCHAR) FROM t WHERE value <> 'panic'",
    )
    .await
    .unwrap();
    assert_eq!(weir_tests::orders::strings(&kept, 0), ["9997"]);
    let tagged = records(&pipeline.table("tagged"));
    assert_eq!(tagged[0]["counts"]["stages"][0]["poisoned"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_poison_than_the_share_allows_stops_or_quarantines_as_the_policy_says() {
    let fixture = OrdersFixture::start(1).await;
    let poison: Vec<usize> = (0..12).map(|i| i * 800).collect();
    // 12 poison rows among 10,000 are more than 0.1 %: the stage stops.
    let pipeline = Drifting::new(&fixture, "poison-stop").await;
    ten_thousand_with_poison_at(&pipeline, &poison).await;
    let error = stopped_with(pipeline.run("").await);
    assert!(
        error.contains("more than 10 of 10000 rows (poison.max_ratio = 0.001)")
            && error.contains("drift was asked to panic")
            && error.contains("weir quarantine"),
        "{error}"
    );
    assert_eq!(rows(&pipeline.table("tagged")), 0);
    // With on_exceed = "quarantine" the epoch's input goes to the dead-letter
    // table instead, and the decision is recorded in the commit.
    let pipeline = Drifting::new(&fixture, "poison-quarantine").await;
    ten_thousand_with_poison_at(&pipeline, &poison).await;
    let reports = pipeline
        .run("poison = { max_ratio = 0.001, on_exceed = \"quarantine\" }")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reports[0].quarantined, 10_000);
    assert_eq!(rows(&pipeline.table("dead_letters")), 10_000);
    assert_eq!(rows(&pipeline.table("tagged")), 0);
    let tagged = records(&pipeline.table("tagged"));
    let reason = tagged[0]["plan"]["quarantine"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("stage `tag`: more than 10 of 10000 rows"),
        "{reason}"
    );
}
