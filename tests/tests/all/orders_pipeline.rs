//! The orders scenario end to end against a real tansu broker and Delta
//! tables on disk: bronze holds every parseable message exactly once, silver
//! the distinct PAID orders, gold the totals a reference computes from the
//! produced events, dead letters exactly the malformed messages; a second run
//! reprocesses nothing; more events later are added incrementally.

use weir_runtime::demo::orders::generate;
use weir_runtime::pipeline;
use weir_runtime::run::PipelineReport;
use weir_tests::orders::{OrdersFixture, assert_tables, expected, pipeline_file};

async fn run_once(fixture: &OrdersFixture) -> Vec<PipelineReport> {
    let file = pipeline::read_with(&pipeline_file(), &fixture.variables())
        .expect("the example file loads");
    weir_tests::run_once(file)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_end_to_end_then_resume_without_reprocessing_then_incremental() {
    let fixture = OrdersFixture::start(3).await;
    let all = generate(4_000, 11);
    let (first, later) = all.split_at(3_000);
    let ends = fixture.produce(first).await;

    let reports = run_once(&fixture).await;
    assert_tables(&fixture, &expected(first)).await;
    assert_eq!(
        fixture.committed_offsets("weir-orders-bronze"),
        ends,
        "the consumer group shows the final position to lag tools"
    );
    let bronze = &reports[0];
    assert_eq!(bronze.pipeline, "bronze");
    assert_eq!(bronze.records_in, 3_000);
    assert_eq!(
        bronze.dead_letters as usize,
        expected(first).malformed.len()
    );

    let again = run_once(&fixture).await;
    for report in &again {
        assert_eq!(
            report.epochs, 0,
            "{}: a restart after a clean finish reprocesses nothing",
            report.pipeline
        );
        assert_eq!(report.replayed, 0, "{}", report.pipeline);
    }
    assert_tables(&fixture, &expected(first)).await;

    fixture.produce(later).await;
    let more = run_once(&fixture).await;
    assert_eq!(more[0].records_in, 1_000, "only the new events are read");
    assert_tables(&fixture, &expected(&all)).await;
}

/// Pointing a running pipeline at other topics under its checkpoint would
/// silently abandon the old partitions' positions: the runner refuses the
/// first new epoch, naming each partition, and writes no plan for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_topics_under_a_checkpoint_is_refused_naming_the_partitions() {
    let mut fixture = OrdersFixture::start(2).await;
    fixture.produce(&generate(300, 21)).await;
    run_once(&fixture).await;

    fixture.topic = "orders-v2".into();
    weir_runtime::kafka::producer::ensure_topic(&fixture.connection(), &fixture.topic, 1)
        .await
        .expect("topic created");
    fixture.produce(&generate(50, 22)).await;
    let file = pipeline::read_with(&pipeline_file(), &fixture.variables()).unwrap();
    let error = weir_tests::run_once(file)
        .await
        .expect_err("the changed source is refused");
    let message = error.to_string();
    for expected in [
        "pipeline `bronze`: refusing to plan epoch 2: its source range does not continue epoch 1",
        "orders[0]: the position",
        "orders[1]: the position",
    ] {
        assert!(
            message.contains(expected),
            "`{expected}` missing from: {message}"
        );
    }
    let plans = std::fs::read_dir(fixture.data.path().join("checkpoints/bronze/epochs"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .count();
    assert_eq!(plans, 1, "no plan was written for the refused epoch");
}

/// `weir audit` on clean tables exits 0; after a commit of bronze is
/// duplicated (as a second writer or a restored backup would), it exits 1
/// and names the sink, the epoch and both table versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_is_clean_after_a_run_and_names_an_epoch_committed_twice() {
    let fixture = OrdersFixture::start(2).await;
    fixture.produce(&generate(500, 23)).await;
    run_once(&fixture).await;
    let (clean, report) = weir_tests::orders::audit(&fixture, &pipeline_file());
    assert!(clean, "{report}");
    assert!(
        report.contains("audit: 0 findings in 3 pipelines"),
        "{report}"
    );
    assert!(report.contains("source records accounted for"), "{report}");

    let log = fixture.table("bronze").join("_delta_log");
    let last = weir_tests::orders::commits(&fixture.table("bronze")) - 1;
    std::fs::copy(
        log.join(format!("{last:020}.json")),
        log.join(format!("{:020}.json", last + 1)),
    )
    .unwrap();
    let (clean, report) = weir_tests::orders::audit(&fixture, &pipeline_file());
    assert!(!clean, "a duplicated epoch must fail the audit:\n{report}");
    let expected = format!(
        "FINDING sink `bronze`: epoch {last} is committed twice (table versions {last} and {})",
        last + 1
    );
    assert!(
        report.contains(&expected),
        "`{expected}` missing from:\n{report}"
    );
    assert!(report.contains("the audit found 1 problem(s)"), "{report}");
}
