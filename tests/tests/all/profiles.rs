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
