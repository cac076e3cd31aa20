//! The orders scenario end to end against a real tansu broker and Delta
//! tables on disk: bronze holds every parseable message exactly once, silver
//! the distinct PAID orders, gold the totals a reference computes from the
//! produced events, dead letters exactly the malformed messages; a second run
//! reprocesses nothing; more events later are added incrementally.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use weir_runtime::demo::orders::generate;
use weir_runtime::pipeline;
use weir_runtime::run::{PipelineReport, RunOptions, run_file};
use weir_tests::orders::{OrdersFixture, assert_tables, expected, pipeline_file};

async fn run_once(fixture: &OrdersFixture) -> Vec<PipelineReport> {
    let file = pipeline::read_with(&pipeline_file(), &fixture.variables())
        .expect("the example file loads");
    let prepared = pipeline::validate_file(file, weir_tests::engine())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    run_file(
        prepared,
        RunOptions { once: true },
        Arc::new(AtomicBool::new(false)),
    )
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
