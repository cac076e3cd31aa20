//! Crash safety: `weir run` on the orders pipeline file is killed with
//! SIGKILL at random moments, more than ten times, while events keep arriving;
//! each time it is restarted. At the end every table holds exactly what a
//! reference computes from the produced events — nothing lost, nothing twice.

use std::process::{Child, Stdio};
use std::time::Duration;
use weir_runtime::demo::orders::generate;
use weir_tests::orders::{OrdersFixture, assert_tables, commits, expected, pipeline_file, weir};

/// SplitMix64, so the kill schedule is reproducible from the printed seed.
struct Schedule(u64);

impl Schedule {
    fn next_millis(&mut self, low: u64, high: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        low + (z ^ (z >> 31)) % (high - low)
    }
}

/// The newest epoch planned by `pipeline`, from its checkpoint directory.
fn latest_plan(fixture: &OrdersFixture, pipeline: &str) -> usize {
    let plans = fixture
        .data
        .path()
        .join("checkpoints")
        .join(pipeline)
        .join("epochs");
    std::fs::read_dir(plans)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .strip_suffix(".json")?
                        .parse::<usize>()
                        .ok()
                })
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// The pipelines whose newest planned epoch is not yet in their first sink's
/// table (version 0 creates a table; epoch n is its version n).
fn mid_epoch(fixture: &OrdersFixture) -> Vec<&'static str> {
    [
        ("bronze", "bronze"),
        ("silver", "silver"),
        ("gold", "gold_top_products"),
    ]
    .into_iter()
    .filter(|(pipeline, table)| latest_plan(fixture, pipeline) + 1 > commits(&fixture.table(table)))
    .map(|(pipeline, _)| pipeline)
    .collect()
}

fn start(fixture: &OrdersFixture) -> Child {
    let file = pipeline_file();
    weir(fixture, &["run", file.to_str().unwrap()])
        .stderr(Stdio::inherit())
        .spawn()
        .expect("weir starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_moments_and_restarted_loses_and_duplicates_nothing() {
    let seed = std::env::var("WEIR_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_121u64);
    println!("kill schedule seed: {seed} (rerun with WEIR_CRASH_SEED={seed})");
    let mut schedule = Schedule(seed);
    let fixture = OrdersFixture::start(3).await;
    let events = generate(6_000, seed);
    let chunks: Vec<_> = events.chunks(300).collect();

    // Compile the plugins into the cache once, so every restart is quick and the
    // kills land while epochs run rather than while Cranelift compiles.
    let file = pipeline_file();
    let warm = weir(&fixture, &["validate", file.to_str().unwrap()])
        .status()
        .expect("weir validate");
    assert!(warm.success(), "the example pipeline file must validate");

    let mut kills = 0;
    let mut produced = 0;
    let mut interrupted = 0;
    while kills < 20 {
        let mut child = start(&fixture);
        // Keep data flowing while the process runs.
        if let Some(chunk) = chunks.get(produced) {
            fixture.produce(chunk).await;
            produced += 1;
        }
        let wait = Duration::from_millis(schedule.next_millis(200, 2_500));
        if kills % 2 == 0 {
            // At a random moment.
            tokio::time::sleep(wait).await;
        } else {
            // Right after an epoch is planned, before its sinks commit (or at the random moment).
            let deadline = std::time::Instant::now() + wait * 2;
            while mid_epoch(&fixture).is_empty() && std::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        if let Some(status) = child.try_wait().expect("poll child") {
            panic!("weir run exited by itself with {status}");
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        kills += 1;
        if !mid_epoch(&fixture).is_empty() {
            interrupted += 1;
        }
    }
    let bronze_commits = commits(&fixture.table("bronze"));
    println!(
        "{kills} kills, {interrupted} between an epoch's plan and its commits; bronze has {bronze_commits} commits before the final run"
    );
    assert!(
        interrupted >= 3,
        "too few kills interrupted an epoch ({interrupted})"
    );
    assert!(
        bronze_commits >= 4,
        "the streaming runs made too little progress to test anything ({bronze_commits} commits)"
    );
    for chunk in &chunks[produced..] {
        fixture.produce(chunk).await;
    }

    let status = weir(&fixture, &["run", file.to_str().unwrap(), "--once"])
        .stderr(Stdio::inherit())
        .status()
        .expect("weir run --once");
    assert!(status.success(), "the final run --once failed: {status}");
    assert_tables(&fixture, &expected(&events)).await;
}
