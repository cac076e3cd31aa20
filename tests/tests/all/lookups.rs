//! Multi-input stages: seed 002's stream–static join (workout heart-rate
//! summaries joined with user demographics) end to end. One pipeline lands
//! users into a Delta table; another joins landed workouts with that table as
//! a lookup input, read as of the version recorded in each epoch's plan.

use std::path::Path;
use weir_runtime::delta::query::query;
use weir_tests::orders::strings;

fn write(dir: &Path, name: &str, lines: &[&str]) {
    std::fs::write(dir.join(name), lines.join("\n") + "\n").unwrap();
}

fn pipeline_file(data: &Path) -> std::path::PathBuf {
    let parse = weir_tests::wasm_path("parse-json");
    let text = format!(
        r#"
checkpoint_dir = "{data}/checkpoints"
dead_letters = "{data}/tables/dead_letters"

[[pipeline]]
name = "users"
[pipeline.source.files]
dir = "{data}/landing/users"
format = "jsonl"
[[pipeline.stage]]
name = "parse"
plugin = "{parse}"
[pipeline.stage.config]
fields = [
  {{ name = "user_id", type = "long", required = true }},
  {{ name = "gender", type = "string" }},
  {{ name = "age", type = "int" }},
  {{ name = "city", type = "string" }},
  {{ name = "state", type = "string" }},
]
[[pipeline.sink]]
name = "users"
table = "{data}/tables/users"
mode = "merge"
[pipeline.sink.merge]
on = ["user_id"]

[[pipeline]]
name = "workouts"
[pipeline.source.files]
dir = "{data}/landing/workouts"
format = "jsonl"
[[pipeline.stage]]
name = "parse"
plugin = "{parse}"
[pipeline.stage.config]
fields = [
  {{ name = "user_id", type = "long", required = true }},
  {{ name = "workout_id", type = "long", required = true }},
  {{ name = "avg_bpm", type = "double" }},
  {{ name = "max_bpm", type = "int" }},
]
[[pipeline.stage]]
name = "demographics"
plugin = "{join}"
[pipeline.stage.config]
lookup = "users"
type = "left"
on = ["user_id"]
select = ["age", "gender", {{ column = "city", as = "home_city" }}]
[pipeline.stage.lookup.users]
table = "{data}/tables/users"
[[pipeline.sink]]
name = "enriched"
table = "{data}/tables/workouts_enriched"
mode = "append"
"#,
        data = data.display(),
        parse = parse.display(),
        join = weir_tests::wasm_path("join").display(),
    );
    let path = data.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn enriched(data: &Path) -> Vec<String> {
    let batches = query(
        &data.join("tables/workouts_enriched"),
        "SELECT concat_ws('|', CAST(workout_id AS STRING), CAST(user_id AS STRING), \
         coalesce(CAST(age AS STRING), '-'), coalesce(gender, '-'), coalesce(home_city, '-')) \
         FROM t ORDER BY workout_id",
    )
    .await
    .unwrap();
    strings(&batches, 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workouts_join_user_demographics_as_of_the_planned_version() {
    let data = tempfile::tempdir().unwrap();
    let users = data.path().join("landing/users");
    let workouts = data.path().join("landing/workouts");
    std::fs::create_dir_all(&users).unwrap();
    std::fs::create_dir_all(&workouts).unwrap();
    write(
        &users,
        "users-1.jsonl",
        &[
            r#"{"user_id": 1, "gender": "F", "age": 34, "city": "Austin", "state": "TX"}"#,
            r#"{"user_id": 2, "gender": "M", "age": 51, "city": "Boise", "state": "ID"}"#,
        ],
    );
    write(
        &workouts,
        "w-1.jsonl",
        &[
            r#"{"user_id": 1, "workout_id": 10, "avg_bpm": 131.5, "max_bpm": 171}"#,
            r#"{"user_id": 3, "workout_id": 11, "avg_bpm": 120.0, "max_bpm": 150}"#,
            r#"{"user_id": 2, "workout_id": 12, "avg_bpm": 99.25, "max_bpm": 140}"#,
        ],
    );
    let file = pipeline_file(data.path());
    let load = || weir_runtime::pipeline::read(&file).unwrap_or_else(|e| panic!("{e}"));
    weir_tests::run_once(load()).await.expect("first run");
    assert_eq!(
        enriched(data.path()).await,
        ["10|1|34|F|Austin", "11|3|-|-|-", "12|2|51|M|Boise"],
        "a left join: the unknown user keeps its workout with null demographics"
    );

    // User 3 arrives and user 1 moves; later workouts see the new version,
    // earlier rows stay as they were joined.
    write(
        &users,
        "users-2.jsonl",
        &[
            r#"{"user_id": 3, "gender": "F", "age": 27, "city": "Reno", "state": "NV"}"#,
            r#"{"user_id": 1, "gender": "F", "age": 35, "city": "Denver", "state": "CO"}"#,
        ],
    );
    write(
        &workouts,
        "w-2.jsonl",
        &[
            r#"{"user_id": 3, "workout_id": 13, "avg_bpm": 140.0, "max_bpm": 180}"#,
            r#"{"user_id": 1, "workout_id": 14, "avg_bpm": 128.0, "max_bpm": 166}"#,
        ],
    );
    weir_tests::run_once(load()).await.expect("second run");
    assert_eq!(
        enriched(data.path()).await,
        [
            "10|1|34|F|Austin",
            "11|3|-|-|-",
            "12|2|51|M|Boise",
            "13|3|27|F|Reno",
            "14|1|35|F|Denver"
        ]
    );

    // Each workouts plan records the users version it read.
    let plans = std::fs::read_dir(data.path().join("checkpoints/workouts/epochs")).unwrap();
    let mut versions: Vec<u64> = plans
        .filter_map(Result::ok)
        .map(|e| {
            let plan: serde_json::Value =
                serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
            plan["lookups"][0]["version"]
                .as_u64()
                .expect("a recorded lookup version")
        })
        .collect();
    versions.sort();
    assert_eq!(versions.len(), 2);
    assert!(versions[0] < versions[1], "{versions:?}");
}
