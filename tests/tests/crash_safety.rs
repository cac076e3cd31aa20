//! Crash safety: `weir run` on the orders pipeline file is killed with
//! SIGKILL at random moments, more than ten times, while events keep arriving;
//! each time it is restarted. At the end every table holds exactly what a
//! reference computes from the produced events — nothing lost, nothing twice.

use std::process::{Child, Command, Stdio};
use std::time::Duration;
use weir_runtime::demo::orders::generate;
use weir_tests::orders::{OrdersFixture, assert_tables, expected, pipeline_file};

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

/// Commits in a table's log (including the one that created it).
fn commits(table: &std::path::Path) -> usize {
    std::fs::read_dir(table.join("_delta_log"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0)
}

/// Whether the last planned bronze epoch is newer than what the bronze table holds.
fn planned_but_uncommitted(fixture: &OrdersFixture) -> bool {
    let plans = fixture.data.path().join("checkpoints/bronze/epochs");
    let latest_plan = std::fs::read_dir(plans)
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
        .unwrap_or(0);
    // Version 0 creates the table; epoch n is version n when nothing else writes it.
    latest_plan + 1 > commits(&fixture.table("bronze"))
}

fn weir(fixture: &OrdersFixture, args: &[&str]) -> Command {
    let mut command = Command::new(weir_tests::weir_binary());
    command
        .args(args)
        .envs(fixture.variables())
        .env("WEIR_LOG", "error")
        .env("WEIR_CACHE_DIR", fixture.data.path().join("cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    command
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
        tokio::time::sleep(Duration::from_millis(schedule.next_millis(200, 2_500))).await;
        if let Some(status) = child.try_wait().expect("poll child") {
            panic!("weir run exited by itself with {status}");
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        kills += 1;
        if planned_but_uncommitted(&fixture) {
            interrupted += 1;
        }
    }
    let bronze_commits = commits(&fixture.table("bronze"));
    println!(
        "{kills} kills, {interrupted} in the middle of a bronze epoch; bronze has {bronze_commits} commits before the final run"
    );
    assert!(
        bronze_commits >= 4,
        "the streaming runs made too little progress to test anything ({bronze_commits} commits)"
    );
    for chunk in &chunks[produced..] {
        fixture.produce(chunk).await;
    }

    let file = pipeline_file();
    let status = weir(&fixture, &["run", file.to_str().unwrap(), "--once"])
        .stderr(Stdio::inherit())
        .status()
        .expect("weir run --once");
    assert!(status.success(), "the final run --once failed: {status}");
    assert_tables(&fixture, &expected(&events)).await;
}
