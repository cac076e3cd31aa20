//! The profiles scenario end to end against a real tansu broker and Delta
//! tables: seed 002's multiplex (three topics) routed into raw bronze
//! tables, `user_info` changes applied as SCD type 1 to silver users, then
//! seed 000's profiles denormalized from the changes of silver users and
//! four related tables and published to Kafka. The expected users table is
//! computed from the generated events alone (`latest_state`: newest
//! timestamp per user, first on a tie, deleted users absent), with updates,
//! deletes, re-inserts, duplicates, ties and late events in the stream, and
//! the run split in two so late events also cross epochs and runs. The
//! `profiles` topic is checked by an independent client (Python
//! `confluent-kafka`) against profiles computed from the tables as the
//! Python `deltalake` package reads them.

use std::collections::BTreeMap;
use weir_runtime::delta::query::query;
use weir_runtime::demo::profiles::{
    Message, TOPICS, UserChange, latest_state, multiplex, newest_changes,
};
use weir_runtime::demo::related;
use weir_runtime::kafka::producer;
use weir_runtime::pipeline;
use weir_tests::orders::{OrdersFixture, strings};

fn pipeline_file() -> std::path::PathBuf {
    weir_tests::workspace_dir().join("examples/profiles/pipeline.toml")
}

async fn produce(fixture: &OrdersFixture, messages: &[Message]) {
    for topic in TOPICS {
        let of_topic = messages.iter().filter(|m| m.topic == topic);
        producer::produce(
            &fixture.connection(),
            topic,
            of_topic.map(|m| (m.key.clone(), m.value.clone())),
        )
        .await
        .expect("messages produced");
    }
}

async fn run_once(fixture: &OrdersFixture) {
    let file = pipeline::read_with(&pipeline_file(), &fixture.variables())
        .expect("the example file loads");
    weir_tests::run_once(file)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// `user_id micros first last city state` per row, by user id.
fn rows(batches: &[arrow::array::RecordBatch]) -> Vec<String> {
    let columns: Vec<Vec<String>> = (0..6).map(|c| strings(batches, c)).collect();
    (0..columns[0].len())
        .map(|r| {
            columns
                .iter()
                .map(|c| c[r].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn expected(state: &BTreeMap<i64, UserChange>) -> Vec<String> {
    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "<null>".into());
    state
        .values()
        .map(|c| {
            let micros = c.millis * 1000;
            let (first, last) = (text(&c.first_name), text(&c.last_name));
            let (city, state) = (text(&c.city), text(&c.state));
            format!("{} {micros} {first} {last} {city} {state}", c.user_id)
        })
        .collect()
}

async fn silver_users(fixture: &OrdersFixture) -> Vec<String> {
    let sql = "SELECT user_id, CAST(\"timestamp\" AS BIGINT), first_name, last_name, \
               address['city'], address['state'] FROM t ORDER BY user_id";
    rows(&query(&fixture.table("silver_users"), sql).await.unwrap())
}

/// Runs the independent check of the `profiles` topic; returns its summary
/// after asserting that every changed user's latest message is their
/// profile (or a tombstone), replays are byte-identical and no epoch
/// publishes a user twice.
fn check_profiles(fixture: &OrdersFixture) -> serde_json::Value {
    let script = weir_tests::workspace_dir().join("tests/python/profiles_topic.py");
    let output = std::process::Command::new("python3")
        .arg(&script)
        .arg(fixture.broker.bootstrap())
        .arg("profiles")
        .arg(fixture.data.path().join("tables"))
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "the Python profiles check failed (install its packages with `bash .ci/setup`):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    eprintln!("profiles topic: {summary}");
    assert_eq!(summary["mismatch_count"], 0, "{summary}");
    assert_eq!(
        summary["replays_differ"],
        serde_json::json!([]),
        "{summary}"
    );
    assert_eq!(
        summary["twice_in_an_epoch"],
        serde_json::json!([]),
        "{summary}"
    );
    assert_eq!(summary["missing_headers"], 0, "{summary}");
    assert_eq!(summary["at_end"], true, "{summary}");
    assert!(summary["keys"].as_u64().unwrap() >= 300, "{summary}");
    summary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silver_users_hold_the_latest_state_of_every_user_across_runs() {
    let fixture = OrdersFixture::start(1).await;
    for topic in TOPICS {
        producer::ensure_topic(&fixture.connection(), topic, 2)
            .await
            .expect("topic created");
    }
    let messages = multiplex(6_000, 300, 5);
    let users: Vec<i64> = (10_000..10_300).collect();
    let tables = fixture.data.path().join("tables");
    related::write_round(&tables, 5, &users, 0).await.unwrap();
    let (first, later) = messages.split_at(4_000);
    produce(&fixture, first).await;
    run_once(&fixture).await;
    assert_eq!(silver_users(&fixture).await, expected(&latest_state(first)));
    check_profiles(&fixture);

    // Round 1: 10% of the users' related rows change, and two of their
    // tables change in the same epoch.
    produce(&fixture, later).await;
    let changed: Vec<i64> = users.iter().copied().filter(|u| u % 10 == 3).collect();
    related::write_round(&tables, 5, &changed, 1).await.unwrap();
    run_once(&fixture).await;
    let state = latest_state(&messages);
    assert_eq!(silver_users(&fixture).await, expected(&state));
    let summary = check_profiles(&fixture);
    assert!(
        summary["tombstones"].as_u64().unwrap() > 0,
        "deleted users end with a tombstone: {summary}"
    );

    // Tombstones: exactly the users whose newest change is a delete.
    let deleted: BTreeMap<i64, i64> = newest_changes(&messages)
        .into_iter()
        .filter(|(_, c)| c.update_type == "delete")
        .map(|(user, c)| (user, c.millis * 1000))
        .collect();
    let tombstones = query(
        &fixture.table("silver_users_tombstones"),
        "SELECT user_id, CAST(\"timestamp\" AS BIGINT) FROM t ORDER BY user_id",
    )
    .await
    .unwrap();
    let (users, micros) = (strings(&tombstones, 0), strings(&tombstones, 1));
    let found: BTreeMap<i64, i64> = users
        .iter()
        .zip(&micros)
        .map(|(u, m)| (u.parse().unwrap(), m.parse().unwrap()))
        .collect();
    assert_eq!(found, deleted);

    // Every message reached its topic's bronze table once.
    for topic in TOPICS {
        let sql = "SELECT count(*) FROM t";
        let count = strings(
            &query(&fixture.table(&format!("bronze_{topic}")), sql)
                .await
                .unwrap(),
            0,
        );
        let produced = messages.iter().filter(|m| m.topic == topic).count();
        assert_eq!(count, [produced.to_string()], "bronze_{topic}");
    }

    // The bad change events are in the dead-letter table, each with its reason.
    let bad = messages
        .iter()
        .filter(|m| m.topic == "user_info" && m.change.is_none())
        .count();
    let dead = query(
        &fixture.table("dead_letters"),
        "SELECT stage, reason FROM t WHERE pipeline = 'silver_users' ORDER BY reason",
    )
    .await
    .unwrap();
    let (stages, reasons) = (strings(&dead, 0), strings(&dead, 1));
    assert_eq!(reasons.len(), bad, "{reasons:?}");
    for (stage, reason) in stages.iter().zip(&reasons) {
        let known = match stage.as_str() {
            "parse" => reason.contains("user_id") || reason.contains("last tuesday"),
            "latest" => reason.contains("unknown operation `rename`"),
            _ => false,
        };
        assert!(known, "{stage}: {reason}");
    }
}

/// The example file with small epochs (bronze 500 records, profiles 300
/// change rows), so kills land inside epochs of every pipeline.
fn small_epochs_file(fixture: &OrdersFixture) -> std::path::PathBuf {
    let examples = weir_tests::workspace_dir().join("examples/profiles");
    let dir = fixture.data.path().join("pipeline");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(examples.join("user_info.json"), dir.join("user_info.json")).unwrap();
    let text = std::fs::read_to_string(examples.join("pipeline.toml")).unwrap();
    for size in ["max_records = 16384", "max_records = 50000"] {
        assert!(text.contains(size), "the example's batch sizes changed");
    }
    let path = dir.join("pipeline.toml");
    let text = text
        .replace("max_records = 16384", "max_records = 500")
        .replace("max_records = 50000", "max_records = 300");
    std::fs::write(&path, text).unwrap();
    path
}

/// The newest epoch the `profiles` pipeline planned, and the newest its
/// Kafka sink recorded as fully acknowledged.
fn profiles_progress(fixture: &OrdersFixture) -> (u64, u64) {
    let dir = fixture.data.path().join("checkpoints/profiles");
    let planned = std::fs::read_dir(dir.join("epochs"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json")?.parse().ok())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    let sent = std::fs::read(dir.join("sinks/profiles.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["epoch"].as_u64())
        .unwrap_or(0);
    (planned, sent)
}

/// `kill -9` of the streaming chained flow at random moments while change
/// events and related-table changes keep arriving; after the last restart
/// the tables and the `profiles` topic hold exactly the expected results,
/// and every re-sent message is byte-identical to its first sending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// The guard only serializes whole tests, each on its own runtime.
#[allow(clippy::await_holding_lock)]
async fn killed_at_random_moments_the_chained_flow_publishes_exactly_the_expected_profiles() {
    use std::process::Stdio;
    let _harness = weir_tests::exclusive_kill_harness();
    let wanted: usize = std::env::var("WEIR_PROFILES_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let fixture = OrdersFixture::start(1).await;
    for topic in TOPICS {
        producer::ensure_topic(&fixture.connection(), topic, 2)
            .await
            .expect("topic created");
    }
    let messages = multiplex(12_000, 400, 11);
    let users: Vec<i64> = (10_000..10_400).collect();
    let tables = fixture.data.path().join("tables");
    related::write_round(&tables, 11, &users, 0).await.unwrap();
    let file = small_epochs_file(&fixture);
    let warm = weir_tests::orders::weir(&fixture, &["validate", file.to_str().unwrap()])
        .status()
        .expect("weir validate");
    assert!(warm.success(), "the pipeline file must validate");

    let checkpoints = fixture.data.path().join("checkpoints");
    let chunks: Vec<&[Message]> = messages.chunks(messages.len() / wanted + 1).collect();
    let mut schedule = weir_runtime::demo::random::Rng(20_261_206);
    let (mut kills, mut interrupted) = (0, 0);
    while kills < wanted || (interrupted == 0 && kills < 2 * wanted) {
        // New events and a round of related changes before each start.
        if let Some(chunk) = chunks.get(kills) {
            produce(&fixture, chunk).await;
            let round = kills as u64 + 1;
            let changed: Vec<i64> = users
                .iter()
                .copied()
                .filter(|u| (u % 13) as u64 == round % 13)
                .collect();
            related::write_round(&tables, 11, &changed, round)
                .await
                .unwrap();
        }
        let before = weir_tests::start_marker(&checkpoints, "profiles");
        let mut child = weir_tests::orders::weir(&fixture, &["run", file.to_str().unwrap()])
            .stderr(Stdio::inherit())
            .spawn()
            .expect("weir starts");
        weir_tests::wait_until_up(&mut child, &checkpoints, "profiles", before).await;
        let wait = std::time::Duration::from_millis(300 + schedule.below(2_200));
        if kills % 2 == 0 {
            tokio::time::sleep(wait).await;
        } else {
            // Right after a profiles epoch is planned, before its messages are all acknowledged.
            let deadline = std::time::Instant::now() + wait * 2;
            let start = profiles_progress(&fixture).0;
            while profiles_progress(&fixture).0 == start && std::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
        if let Some(status) = child.try_wait().expect("poll child") {
            panic!("weir run exited by itself with {status}");
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        kills += 1;
        let (planned, sent) = profiles_progress(&fixture);
        if planned > sent {
            interrupted += 1;
        }
    }
    println!("{kills} kills, {interrupted} with a profiles epoch planned but not all sent");
    assert!(interrupted > 0, "no kill interrupted a profiles epoch");
    let rest: Vec<Message> = chunks
        .iter()
        .skip(kills)
        .flat_map(|c| c.iter().cloned())
        .collect();
    produce(&fixture, &rest).await;

    let status = weir_tests::orders::weir(&fixture, &["run", file.to_str().unwrap(), "--once"])
        .stderr(Stdio::inherit())
        .status()
        .expect("weir run --once");
    assert!(status.success(), "the final run --once failed: {status}");
    assert_eq!(
        silver_users(&fixture).await,
        expected(&latest_state(&messages))
    );
    let summary = check_profiles(&fixture);
    println!("profiles topic after the kills: {summary}");

    // The state a crash leaves between the last acknowledgement of an epoch's
    // messages and the sink's record of it, for the last three epochs: they
    // are sent again, byte-identical, and the latest profiles are unchanged.
    let (planned, sent) = profiles_progress(&fixture);
    assert_eq!(planned, sent, "the final run sent every planned epoch");
    assert!(sent >= 3, "too few profiles epochs to replay ({sent})");
    let marker = fixture
        .data
        .path()
        .join("checkpoints/profiles/sinks/profiles.json");
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&marker).unwrap()).unwrap();
    record["epoch"] = serde_json::json!(sent - 3);
    std::fs::write(&marker, record.to_string()).unwrap();
    let status = weir_tests::orders::weir(&fixture, &["run", file.to_str().unwrap(), "--once"])
        .stderr(Stdio::inherit())
        .status()
        .expect("weir run --once");
    assert!(status.success(), "the replaying run failed: {status}");
    let replayed = check_profiles(&fixture);
    assert_eq!(
        profiles_progress(&fixture),
        (planned, sent),
        "replays plan nothing new"
    );
    let resent = replayed["messages"].as_u64().unwrap() - summary["messages"].as_u64().unwrap();
    assert!(
        resent > 0,
        "the last three epochs were sent again: {replayed}"
    );
    assert_eq!(
        replayed["replayed"].as_u64().unwrap(),
        summary["replayed"].as_u64().unwrap() + resent,
        "{replayed}"
    );
}
