//! The Kafka source against a real tansu broker: epochs continue exactly
//! where the last committed (or replayed) epoch ended, whatever the consumer
//! fetched meanwhile, and exact reads do not trust the broker to start a
//! fetch in the middle of a record batch (tansu 0.6 returns the next batch
//! instead, which is how issue 9 lost records).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use weir_runtime::demo::orders::generate;
use weir_runtime::kafka::records::Record;
use weir_runtime::kafka::source::{KafkaSource, Mode, OffsetRange, Positions, read_range};
use weir_runtime::pipeline::spec::{BatchPolicy, KafkaStart};
use weir_tests::orders::OrdersFixture;

const TOPIC: &str = "orders";

fn policy() -> BatchPolicy {
    BatchPolicy {
        max_records: 100_000,
        max_wait: Duration::from_millis(300),
        ..BatchPolicy::default()
    }
}

fn offsets(records: &[Record]) -> Vec<i64> {
    records.iter().map(|r| r.offset).collect()
}

/// Produces `count` events to partition 0 (the fixture's topic has one
/// partition) in one burst, so they land in few large batches.
async fn produce(fixture: &OrdersFixture, count: usize, seed: u64) -> i64 {
    let ends = fixture.produce(&generate(count, seed)).await;
    ends[&0]
}

/// Collects epochs from `source` until `wanted` records came or the deadline
/// passes; returns every epoch's ranges and all records.
async fn collect(source: &KafkaSource, wanted: usize) -> (Vec<Vec<OffsetRange>>, Vec<Record>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut ranges, mut records) = (Vec::new(), Vec::new());
    let stop = AtomicBool::new(false);
    let policy = policy();
    while records.len() < wanted && Instant::now() < deadline {
        // A streaming source waits for records forever; a missing record must
        // fail the test, not hang it.
        let next = source.next_epoch(&policy, Mode::Stream, &stop);
        let Ok(epoch) = tokio::time::timeout(Duration::from_secs(15), next).await else {
            break;
        };
        let epoch = epoch.expect("next epoch");
        if epoch.records.is_empty() {
            continue;
        }
        let next: Positions = epoch
            .ranges
            .iter()
            .map(|r| ((r.topic.clone(), r.partition), r.end))
            .collect();
        source.committed(&next).expect("positions move");
        ranges.push(epoch.ranges);
        records.extend(epoch.records);
    }
    (ranges, records)
}

/// Issue 9: after a crash, the interrupted epoch `[0, 120)` is replayed while
/// the restarted consumer (positioned at 120, in the middle of a batch) keeps
/// fetching and more records arrive. The next epoch must start at 120 and
/// hold every record from there, none skipped and none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_issue_9_records_fetched_past_a_replayed_epoch_are_kept() {
    let fixture = OrdersFixture::start(1).await;
    let first_end = produce(&fixture, 300, 1).await;
    let resume = Positions::from([((TOPIC.to_string(), 0), 120)]);
    let source = KafkaSource::connect(
        &fixture.connection(),
        &[TOPIC.to_string()],
        "regression-issue-9",
        KafkaStart::Earliest,
        resume,
        false,
    )
    .await
    .expect("the source connects");
    // More data arrives while the replay runs; the consumer buffers it.
    let end = produce(&fixture, 200, 2).await;
    assert!(end > first_end);

    let replayed = read_range(
        &fixture.connection(),
        &[OffsetRange {
            topic: TOPIC.into(),
            partition: 0,
            start: 0,
            end: 120,
            records: Some(120),
            lost: 0,
        }],
    )
    .await
    .expect("the interrupted epoch replays");
    assert_eq!(offsets(&replayed), (0..120).collect::<Vec<_>>());

    let (ranges, records) = collect(&source, (end - 120) as usize).await;
    assert_eq!(
        offsets(&records),
        (120..end).collect::<Vec<_>>(),
        "every record after the replayed epoch, exactly once"
    );
    assert_eq!(
        ranges[0][0].start, 120,
        "the next epoch starts where the replay ended"
    );
    for pair in ranges.windows(2) {
        assert_eq!(
            pair[1][0].start, pair[0][0].end,
            "epochs tile the partition"
        );
    }
}

/// A replay whose range starts and ends inside batches reads exactly the
/// recorded records, and refuses a range whose record count changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_a_range_that_starts_mid_batch_reads_every_record() {
    let fixture = OrdersFixture::start(1).await;
    let end = produce(&fixture, 400, 3).await;
    assert!(end >= 400);
    let range = |records| OffsetRange {
        topic: TOPIC.into(),
        partition: 0,
        start: 57,
        end: 333,
        records: Some(records),
        lost: 0,
    };
    let read = read_range(&fixture.connection(), &[range(276)])
        .await
        .expect("the range replays");
    assert_eq!(offsets(&read), (57..333).collect::<Vec<_>>());

    let error = read_range(&fixture.connection(), &[range(270)])
        .await
        .expect_err("a count that does not match is refused");
    let message = error.to_string();
    assert!(
        message.contains("orders[0] offsets 57..333") && message.contains("270"),
        "{message}"
    );
}

/// The positions move back under a running consumer (as when recovery
/// replays an earlier epoch than the one the consumer was placed after):
/// the consumer is positioned again, so the next epoch starts exactly at the
/// new position and skips nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_the_positions_back_under_a_running_consumer_skips_nothing() {
    let fixture = OrdersFixture::start(1).await;
    let middle = produce(&fixture, 250, 4).await;
    let source = KafkaSource::connect(
        &fixture.connection(),
        &[TOPIC.to_string()],
        "gap-fill",
        KafkaStart::Earliest,
        Positions::from([((TOPIC.to_string(), 0), middle)]),
        false,
    )
    .await
    .expect("the source connects");
    source
        .committed(&BTreeMap::from([((TOPIC.to_string(), 0), 100)]))
        .expect("the consumer is positioned again");
    let end = produce(&fixture, 150, 5).await;
    let (ranges, records) = collect(&source, (end - 100) as usize).await;
    assert_eq!(offsets(&records), (100..end).collect::<Vec<_>>());
    assert_eq!(ranges[0][0].start, 100);
}

/// Issue 10: a `--once` epoch ends once the source is idle at the start
/// watermarks, not when `max_wait` runs out (the receive used to block for
/// the whole remaining `max_wait` after the last record).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_issue_10_once_does_not_sit_out_max_wait() {
    let fixture = OrdersFixture::start(1).await;
    let end = produce(&fixture, 50, 3).await;
    let source = KafkaSource::connect(
        &fixture.connection(),
        &[TOPIC.to_string()],
        "regression-issue-10-once",
        KafkaStart::Earliest,
        Positions::new(),
        false,
    )
    .await
    .expect("the source connects");
    let max_wait = Duration::from_secs(600);
    let policy = BatchPolicy {
        max_wait,
        ..policy()
    };
    let stop = AtomicBool::new(false);
    let next = source.next_epoch(&policy, Mode::UntilStartWatermarks, &stop);
    let epoch = tokio::time::timeout(max_wait / 4, next)
        .await
        .expect("the epoch closes long before max_wait")
        .expect("next epoch");
    assert_eq!(offsets(&epoch.records), (0..end).collect::<Vec<_>>());
}
