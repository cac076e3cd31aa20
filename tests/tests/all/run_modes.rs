//! `weir run` modes: streaming stops cleanly on SIGTERM after finishing the
//! current epoch (exit 0, no epoch left half-done), and a restart resumes
//! without replaying anything, ending with exactly the expected tables.

use std::process::Stdio;
use std::time::{Duration, Instant};
use weir_runtime::demo::orders::generate;
use weir_tests::orders::{OrdersFixture, assert_tables, commits, expected, pipeline_file, weir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_epoch_and_a_restart_replays_nothing() {
    let fixture = OrdersFixture::start(2).await;
    let events = generate(2_000, 5);
    let (first, second) = events.split_at(1_000);
    fixture.produce(first).await;

    let file = pipeline_file();
    let mut child = weir(&fixture, &["run", file.to_str().unwrap()])
        .stderr(Stdio::inherit())
        .spawn()
        .expect("weir run starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while commits(&fixture.table("gold_top_products")) < 2 {
        assert!(Instant::now() < deadline, "no gold epoch within a minute");
        assert!(child.try_wait().unwrap().is_none(), "weir run exited early");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Stop it while the second half flows: once bronze has taken an epoch of it.
    let bronze_before = commits(&fixture.table("bronze"));
    fixture.produce(second).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while commits(&fixture.table("bronze")) == bronze_before {
        assert!(
            Instant::now() < deadline,
            "the second half was not picked up within a minute"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let terminate = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(terminate.success());
    let stopped = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(30),
            "weir run did not stop after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        status.success(),
        "SIGTERM must end in a clean exit, got {status}"
    );

    let output = weir(&fixture, &["run", file.to_str().unwrap(), "--once"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(output.status.success());
    let summary = String::from_utf8_lossy(&output.stdout);
    for pipeline in ["bronze", "silver", "gold"] {
        let line = summary
            .lines()
            .find(|l| l.starts_with(&format!("pipeline {pipeline}:")))
            .unwrap_or_else(|| panic!("no summary for {pipeline} in:\n{summary}"));
        assert!(
            line.contains(" 0 replayed"),
            "a clean stop leaves nothing to replay: {line}"
        );
    }
    assert_tables(&fixture, &expected(&events)).await;
}
