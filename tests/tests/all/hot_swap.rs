//! Operators against a real `weir run` process (its admin API, the `weir`
//! CLI), a real broker and Delta tables, with the `tag` test plugins
//! (`tests/plugins/tag.rs`: each row says which version made it and carries
//! its epoch's virtual clock). While data flows: 20 swaps, and kills with
//! SIGKILL in the middle of swaps, never lose or repeat a record, and every
//! epoch is entirely one version's — the version its plan and commit name;
//! incompatible versions are refused with the column named while the old
//! one runs on; a shadow run compares without writing, then takes over; a
//! version that traps is rolled back automatically; the token is required;
//! `/metrics` parses with the Prometheus client library; a deployment with
//! errors gets every problem back and starts nothing; `watch = true` swaps
//! a replaced plugin file in.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use weir_runtime::audit::delta_log;
use weir_runtime::kafka::producer;
use weir_tests::orders::{OrdersFixture, strings};

const TOKEN: &str = "s3cret-admin-token";

/// A data directory with the `tag` pipeline's file, token and plugin copy.
struct Setup {
    dir: PathBuf,
    topic: String,
    brokers: String,
}

impl Setup {
    async fn new(fixture: &OrdersFixture, name: &str, partitions: i32) -> Self {
        let dir = fixture.data.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
        std::fs::copy(weir_tests::wasm_path("tag-v1"), dir.join("tag.wasm")).unwrap();
        producer::ensure_topic(&fixture.connection(), name, partitions)
            .await
            .unwrap();
        Setup {
            dir,
            topic: name.to_string(),
            brokers: fixture.broker.bootstrap(),
        }
    }

    /// The `[[pipeline]]` running `tag` over the topic into table `tagged`.
    fn pipeline(&self, stage_extra: &str) -> String {
        format!(
            r#"
[[pipeline]]
name = "{topic}"

[pipeline.source.kafka]
topics = ["{topic}"]
group_id = "weir-{topic}"

[pipeline.batch]
max_records = 60
max_wait = "50ms"

[[pipeline.stage]]
name = "tag"
plugin = "{dir}/tag.wasm"
{stage_extra}

[[pipeline.sink]]
name = "tagged"
table = "{dir}/tables/tagged"
mode = "append"
"#,
            topic = self.topic,
            dir = self.dir.display(),
        )
    }

    /// A pipeline file's settings (with an admin API on a free port unless
    /// `deployed`), then `pipelines`.
    fn file_text(&self, pipelines: &str, deployed: bool) -> String {
        let admin = match deployed {
            true => "",
            false => "[admin]\naddress = \"127.0.0.1:0\"\ntoken_file = \"token\"\n",
        };
        format!(
            r#"
checkpoint_dir = "{dir}/checkpoints"
dead_letters = "{dir}/tables/dead_letters"

[kafka]
brokers = "{brokers}"

{admin}{pipelines}"#,
            dir = self.dir.display(),
            brokers = self.brokers,
        )
    }

    /// Writes a pipeline file with an admin API on a free port.
    fn write_file(&self, name: &str, pipelines: &str) -> PathBuf {
        let file = self.dir.join(name);
        std::fs::write(&file, self.file_text(pipelines, false)).unwrap();
        file
    }

    fn table(&self) -> PathBuf {
        self.dir.join("tables/tagged")
    }
}

/// A running `weir run` with its admin address.
struct Server {
    child: Child,
    address: String,
}

impl Server {
    /// Starts `weir run FILE` and waits for its admin API to listen.
    fn start(file: &Path, cache: &Path) -> Self {
        let mut child = Command::new(weir_tests::weir_binary())
            .args(["run", file.to_str().unwrap()])
            .env("WEIR_LOG", "warn")
            .env("WEIR_CACHE_DIR", cache)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("weir starts");
        let stdout = child.stdout.take().unwrap();
        let (found, address) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = line.strip_prefix("admin API listening on http://") {
                    let _ = found.send(address.to_string());
                }
            }
        });
        let address = address
            .recv_timeout(Duration::from_secs(120))
            .expect("the admin API listens within 120 s");
        Server { child, address }
    }

    /// `weir ARGS` against this server's admin API: (success, stdout, stderr).
    fn weir(&self, args: &[&str]) -> (bool, String, String) {
        let output = Command::new(weir_tests::weir_binary())
            .args(args)
            .env("WEIR_ADMIN", &self.address)
            .env("WEIR_ADMIN_TOKEN", TOKEN)
            .env("WEIR_LOG", "error")
            .output()
            .expect("weir runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// `weir ARGS --json`, parsed; panics if it fails.
    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut args = args.to_vec();
        args.push("--json");
        let (ok, out, err) = self.weir(&args);
        assert!(ok, "weir {args:?} failed: {out}{err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// The version stage `tag` of `pipeline` runs, from `weir status`.
    fn running(&self, pipeline: &str) -> String {
        let status = self.json(&["status"]);
        let p = status["pipelines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == pipeline)
            .unwrap_or_else(|| panic!("no pipeline {pipeline} in {status}"))
            .clone();
        p["stages"][0]["version"].as_str().unwrap().to_string()
    }

    /// The stage history's actions.
    fn actions(&self, pipeline: &str) -> Vec<String> {
        self.json(&["history", "--pipeline", pipeline, "--stage", "tag"])["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_string())
            .collect()
    }

    /// Stops it with SIGTERM and waits.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "weir run exited with {status}");
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    /// A failing test must not leave `weir run` behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP request with std only: (status, body).
fn http(address: &str, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Produces `m-<n>` values in chunks of 30 every 40 ms until `stop`; counts them.
fn keep_producing(
    fixture: Arc<OrdersFixture>,
    topic: String,
    stop: Arc<AtomicBool>,
    produced: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        while !stop.load(Ordering::SeqCst) {
            let from = produced.load(Ordering::SeqCst);
            let messages = (from..from + 30).map(|n| (Vec::new(), format!("m-{n}").into_bytes()));
            runtime
                .block_on(producer::produce(&fixture.connection(), &topic, messages))
                .unwrap();
            produced.fetch_add(30, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(40));
        }
    })
}

/// Waits until `check` holds, up to `seconds`.
async fn wait_for(what: &str, seconds: u64, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn rows(table: &Path) -> u64 {
    delta_log::read(table)
        .map(|log| log.commits.iter().map(|c| c.added_rows()).sum())
        .unwrap_or(0)
}

/// The exactly-once and epoch-boundary checks: the table holds `m-0 ..
/// m-<produced>` once each; rows of one epoch (one virtual clock) carry one
/// tag; and that tag is the version the epoch's commit record names.
/// Returns the tags seen per epoch, in epoch order.
async fn assert_once_and_one_version_per_epoch(table: &Path, produced: usize) -> Vec<String> {
    let batches = weir_runtime::delta::query::query(
        table,
        "SELECT value, tag, CAST(clock AS VARCHAR) FROM t",
    )
    .await
    .unwrap();
    let (values, tags, clocks) = (
        strings(&batches, 0),
        strings(&batches, 1),
        strings(&batches, 2),
    );
    let distinct: BTreeSet<&String> = values.iter().collect();
    assert_eq!(values.len(), produced, "every produced record once");
    assert_eq!(distinct.len(), produced, "no record twice");
    let expected: BTreeSet<String> = (0..produced).map(|n| format!("m-{n}")).collect();
    assert!(
        distinct.iter().all(|v| expected.contains(*v)),
        "only produced records"
    );
    let mut by_epoch: BTreeMap<&String, BTreeSet<&String>> = BTreeMap::new();
    for (clock, tag) in clocks.iter().zip(&tags) {
        by_epoch.entry(clock).or_default().insert(tag);
    }
    for (clock, seen) in &by_epoch {
        assert_eq!(
            seen.len(),
            1,
            "the epoch at clock {clock} mixes versions {seen:?}"
        );
    }
    // Each commit's plan names the version that made its rows.
    let mut order = Vec::new();
    for commit in delta_log::read(table).unwrap().commits {
        let Some(record) = commit.weir.filter(|r| r.get("epoch").is_some()) else {
            continue;
        };
        let clock = record["plan"]["clock_nanos"].to_string();
        let named = record["plugins"][0]["version"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            record["plan"]["stages"][0]["version"].as_str().unwrap(),
            named
        );
        if let Some(seen) = by_epoch.get(&clock) {
            let tag = seen.iter().next().unwrap();
            assert_eq!(
                **tag, named,
                "epoch {} rows vs its commit record",
                record["epoch"]
            );
            order.push(named);
        }
    }
    order
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_swaps_while_data_flows_lose_and_repeat_nothing_and_fall_on_epoch_boundaries() {
    let fixture = Arc::new(OrdersFixture::start(2).await);
    let setup = Setup::new(&fixture, "swaps", 2).await;
    let file = setup.write_file("pipeline.toml", &setup.pipeline(""));
    let server = Server::start(&file, &fixture.data.path().join("cache"));
    let (stop, produced) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let producer = keep_producing(
        fixture.clone(),
        setup.topic.clone(),
        stop.clone(),
        produced.clone(),
    );
    let versions = [
        weir_tests::wasm_path("tag-v2"),
        weir_tests::wasm_path("tag-v1"),
    ];
    for swap in 0..20 {
        let next = &versions[swap % 2];
        let (ok, out, err) = server.weir(&[
            "swap",
            "--pipeline",
            "swaps",
            "--stage",
            "tag",
            next.to_str().unwrap(),
        ]);
        assert!(ok && out.contains("runs tag@"), "swap {swap}: {out}{err}");
        // Let each version run at least one epoch with records.
        let table = setup.table();
        let before = rows(&table);
        wait_for("an epoch after the swap", 60, || rows(&table) > before).await;
    }
    stop.store(true, Ordering::SeqCst);
    producer.join().unwrap();
    let total = produced.load(Ordering::SeqCst);
    let table = setup.table();
    wait_for("every record in the table", 120, || {
        rows(&table) as usize >= total
    })
    .await;
    assert_eq!(
        server
            .actions("swaps")
            .iter()
            .filter(|a| *a == "swapped")
            .count(),
        20
    );
    server.stop();
    let order = assert_once_and_one_version_per_epoch(&table, total).await;
    let switches = order.windows(2).filter(|w| w[0] != w[1]).count();
    assert_eq!(switches, 20, "20 version boundaries: {order:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// The guard only serializes whole tests, each on its own runtime.
#[allow(clippy::await_holding_lock)]
async fn killed_during_swaps_the_pipeline_restarts_without_losing_or_repeating_a_record() {
    let _harness = weir_tests::exclusive_kill_harness();
    let fixture = Arc::new(OrdersFixture::start(2).await);
    let setup = Setup::new(&fixture, "killed", 2).await;
    let file = setup.write_file("pipeline.toml", &setup.pipeline(""));
    let cache = fixture.data.path().join("cache");
    let (stop, produced) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let producer = keep_producing(
        fixture.clone(),
        setup.topic.clone(),
        stop.clone(),
        produced.clone(),
    );
    let versions = [
        weir_tests::wasm_path("tag-v2"),
        weir_tests::wasm_path("tag-v1"),
    ];
    for round in 0..8u64 {
        let server = Server::start(&file, &cache);
        let table = setup.table();
        let before = rows(&table);
        wait_for("an epoch after the restart", 60, || rows(&table) > before).await;
        // Swap to the version not running (the last swap may or may not
        // have happened before its kill).
        let next = match server.running("killed").as_str() {
            "v1" => &versions[0],
            _ => &versions[1],
        };
        let swap = Command::new(weir_tests::weir_binary())
            .args([
                "swap",
                "--pipeline",
                "killed",
                "--stage",
                "tag",
                next.to_str().unwrap(),
            ])
            .env("WEIR_ADMIN", &server.address)
            .env("WEIR_ADMIN_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if round % 2 == 0 {
            // Killed just after the cut-over: the new version's first epochs in flight.
            let done = swap.wait_with_output().unwrap();
            assert!(done.status.success(), "round {round}: the swap completes");
            tokio::time::sleep(Duration::from_millis(round * 20)).await;
            server.kill();
        } else {
            // Killed while the swap is checked, queued or cutting over.
            tokio::time::sleep(Duration::from_millis(30 + round * 60)).await;
            server.kill();
            let _ = swap.wait_with_output();
        }
    }
    let server = Server::start(&file, &cache);
    stop.store(true, Ordering::SeqCst);
    producer.join().unwrap();
    let total = produced.load(Ordering::SeqCst);
    let table = setup.table();
    wait_for("every record in the table", 120, || {
        rows(&table) as usize >= total
    })
    .await;
    server.stop();
    let order = assert_once_and_one_version_per_epoch(&table, total).await;
    assert!(
        order.iter().collect::<BTreeSet<_>>().len() == 2,
        "both versions ran: {order:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_refuse_shadow_roll_back_and_read_metrics_through_the_api() {
    let fixture = Arc::new(OrdersFixture::start(1).await);
    let setup = Setup::new(&fixture, "operated", 1).await;
    let file = setup.write_file("pipeline.toml", &setup.pipeline(""));
    let server = Server::start(&file, &fixture.data.path().join("cache"));
    let (stop, produced) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let producer = keep_producing(
        fixture.clone(),
        setup.topic.clone(),
        stop.clone(),
        produced.clone(),
    );
    let table = setup.table();
    wait_for("a first epoch", 60, || rows(&table) > 0).await;

    // The token is required everywhere but the health checks; refusals are 401.
    assert_eq!(http(&server.address, "GET", "/healthz", None).0, 200);
    assert_eq!(http(&server.address, "GET", "/status", None).0, 401);
    assert_eq!(
        http(&server.address, "GET", "/metrics", Some("wrong")).0,
        401
    );
    assert_eq!(
        http(
            &server.address,
            "POST",
            "/pipelines/operated/stages/tag/rollback",
            None
        )
        .0,
        401
    );
    assert_eq!(http(&server.address, "GET", "/status", Some(TOKEN)).0, 200);

    // An incompatible version is refused, naming the column; the old one runs on.
    let swap = |file: &Path, extra: &[&str]| {
        let mut args = vec![
            "swap",
            "--pipeline",
            "operated",
            "--stage",
            "tag",
            file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        server.weir(&args)
    };
    let (ok, _, err) = swap(&weir_tests::wasm_path("tag-narrow"), &[]);
    assert!(!ok, "{err}");
    assert!(
        err.contains("column `tag` (Utf8) is dropped") && err.contains("keeps running tag@v1"),
        "{err}"
    );
    let garbage = setup.dir.join("garbage.wasm");
    std::fs::write(&garbage, b"not a component").unwrap();
    let (ok, _, err) = swap(&garbage, &[]);
    assert!(
        !ok && err.contains("not a plugin implementing weir:plugin@0.1"),
        "{err}"
    );
    assert_eq!(server.running("operated"), "v1");
    let before = rows(&table);
    wait_for("epochs after the refusals", 60, || rows(&table) > before).await;

    // A shadow run compares v2 with v1 for 2 epochs (writing nothing of v2), then v2 takes over.
    let (ok, out, err) = swap(&weir_tests::wasm_path("tag-v2"), &["--shadow", "2"]);
    assert!(ok && out.contains("shadowing tag@v2"), "{out}{err}");
    wait_for("v2 to take over after its shadow run", 60, || {
        server.running("operated") == "v2"
    })
    .await;
    let report = server.json(&["shadow", "--pipeline", "operated", "--stage", "tag"]);
    assert_eq!(report["state"], "finished", "{report}");
    assert_eq!(report["compared"], 2);
    let out = &report["ports"]["out"];
    assert_eq!(out["live_rows"], out["shadow_rows"], "{report}");
    assert!(out["live_rows"].as_u64().unwrap() > 0);
    // Every row differs (its tag), and the samples show both sides.
    assert_eq!(
        report["differing_rows"].as_u64(),
        out["live_rows"].as_u64().map(|n| 2 * n)
    );
    let sample = &report["samples"][0];
    assert!(
        sample["live"].is_string() || sample["shadow"].is_string(),
        "{report}"
    );

    // A version that traps is rolled back automatically; its epoch runs on v2.
    let (ok, out, err) = swap(&weir_tests::wasm_path("tag-trap"), &[]);
    assert!(
        ok,
        "the trapping version passes the checks (it traps only on records): {out}{err}"
    );
    wait_for("the automatic rollback", 60, || {
        server
            .actions("operated")
            .iter()
            .any(|a| a == "auto_rolled_back")
    })
    .await;
    assert_eq!(server.running("operated"), "v2");
    // By hand: back to v1, then nothing left to undo.
    let (ok, out, err) = server.weir(&["rollback", "--pipeline", "operated", "--stage", "tag"]);
    assert!(ok && out.contains("runs tag@v1"), "{out}{err}");
    let (ok, _, err) = server.weir(&["rollback", "--pipeline", "operated", "--stage", "tag"]);
    assert!(!ok && err.contains("no swap left to undo"), "{err}");
    let before = rows(&table);
    wait_for("an epoch after the rollback", 60, || rows(&table) > before).await;
    assert_eq!(
        server.actions("operated"),
        [
            "refused",
            "refused",
            "shadow_started",
            "shadow_finished",
            "swapped",
            "swapped",
            "auto_rolled_back",
            "rolled_back"
        ]
    );

    // /metrics, parsed by the Prometheus client library.
    let output = Command::new("python3")
        .arg(weir_tests::workspace_dir().join("tests/python/metrics.py"))
        .arg(format!("http://{}/metrics", server.address))
        .arg(TOKEN)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let families: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let samples = |family: &str| {
        families[family]["samples"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let value = |family: &str, name: &str, label: (&str, &str)| -> f64 {
        samples(family)
            .iter()
            .filter(|s| s[0] == name && s[1][label.0] == label.1)
            .map(|s| s[2].as_f64().unwrap())
            .sum()
    };
    assert_eq!(families["weir_stage_records_in"]["type"], "counter");
    assert!(
        value(
            "weir_stage_records_in",
            "weir_stage_records_in_total",
            ("stage", "tag")
        ) > 0.0
    );
    assert_eq!(
        families["weir_plugin_call_duration_seconds"]["type"],
        "histogram"
    );
    assert!(
        value(
            "weir_plugin_memory_bytes",
            "weir_plugin_memory_bytes",
            ("stage", "tag")
        ) > 0.0
    );
    assert!(
        value(
            "weir_epoch_duration_seconds",
            "weir_epoch_duration_seconds_count",
            ("pipeline", "operated")
        ) > 0.0
    );
    assert_eq!(
        value(
            "weir_stage_swaps",
            "weir_stage_swaps_total",
            ("stage", "tag")
        ),
        2.0
    );
    assert_eq!(
        value(
            "weir_stage_rollbacks",
            "weir_stage_rollbacks_total",
            ("reason", "automatic")
        ),
        1.0
    );
    assert_eq!(
        value(
            "weir_stage_rollbacks",
            "weir_stage_rollbacks_total",
            ("reason", "manual")
        ),
        1.0
    );
    assert_eq!(
        value(
            "weir_stage_plugin_info",
            "weir_stage_plugin_info",
            ("version", "v1")
        ),
        1.0
    );
    assert_eq!(
        value(
            "weir_stage_plugin_info",
            "weir_stage_plugin_info",
            ("version", "v2")
        ),
        0.0
    );
    assert!(!samples("weir_source_lag_records").is_empty());
    assert!(
        samples("weir_source_lag_records")
            .iter()
            .all(|s| s[1]["partition"] == "operated/0"),
        "{:?}",
        samples("weir_source_lag_records")
    );

    stop.store(true, Ordering::SeqCst);
    producer.join().unwrap();
    let total = produced.load(Ordering::SeqCst);
    wait_for("every record in the table", 120, || {
        rows(&table) as usize >= total
    })
    .await;
    server.stop();
    let order = assert_once_and_one_version_per_epoch(&table, total).await;
    assert!(
        !order.iter().any(|v| v == "v3-trap"),
        "no epoch of the trapping version committed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_are_validated_whole_and_a_watched_plugin_file_is_swapped_in() {
    let fixture = Arc::new(OrdersFixture::start(1).await);
    let setup = Setup::new(&fixture, "deployed", 1).await;
    // A server with no pipeline of its own.
    let file = setup.write_file("server.toml", "");
    let server = Server::start(&file, &fixture.data.path().join("cache"));
    assert_eq!(http(&server.address, "GET", "/readyz", None).0, 503);

    // Every problem comes back, and nothing starts: two in reading the
    // file (an unknown stage key, a sink without its table)...
    let bad = setup.dir.join("bad.toml");
    let broken = setup.pipeline("colour = \"blue\"").replace(
        &format!("table = \"{}/tables/tagged\"\n", setup.dir.display()),
        "",
    );
    std::fs::write(&bad, setup.file_text(&broken, true)).unwrap();
    let (ok, _, err) = server.weir(&["deploy", bad.to_str().unwrap()]);
    assert!(!ok, "{err}");
    let listed_problems = |err: &str| {
        err.lines()
            .filter(|l| l.trim_start().starts_with("- "))
            .count()
    };
    assert!(
        err.contains("nothing was started") && listed_problems(&err) == 2,
        "{err}"
    );
    assert!(
        err.contains("colour") && err.contains("sink \"tagged\""),
        "{err}"
    );
    // ... and, in a file that reads well, what the plugins and tables show.
    let missing = setup.pipeline("").replace("tag.wasm", "missing.wasm");
    std::fs::write(&bad, setup.file_text(&missing, true)).unwrap();
    let (ok, _, err) = server.weir(&["deploy", bad.to_str().unwrap()]);
    assert!(
        !ok && err.contains("missing.wasm") && listed_problems(&err) >= 1,
        "{err}"
    );
    let listed = server.json(&["deploy", "--list"]);
    assert_eq!(
        listed["deployments"].as_array().unwrap().len(),
        0,
        "{listed}"
    );
    assert!(
        !setup.dir.join("checkpoints/deployed").exists(),
        "nothing started"
    );

    // A valid file starts streaming; its plugin file is watched.
    let good = setup.dir.join("good.toml");
    std::fs::write(
        &good,
        setup.file_text(&setup.pipeline("watch = true"), true),
    )
    .unwrap();
    let (ok, out, err) = server.weir(&["deploy", good.to_str().unwrap(), "--name", "tagging"]);
    assert!(
        ok && out.contains("deployed tagging: deployed running"),
        "{out}{err}"
    );
    assert_eq!(server.running("deployed"), "v1");
    let (stop, produced) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let producer = keep_producing(
        fixture.clone(),
        setup.topic.clone(),
        stop.clone(),
        produced.clone(),
    );
    let table = setup.table();
    wait_for("the deployed pipeline's first epoch", 60, || {
        rows(&table) > 0
    })
    .await;
    assert_eq!(http(&server.address, "GET", "/readyz", None).0, 200);

    // Replacing the plugin file swaps the new version in (checked first);
    // an incompatible replacement is refused and the stage keeps its version.
    let replace = |with: &str| {
        let temporary = setup.dir.join("tag.wasm.new");
        std::fs::copy(weir_tests::wasm_path(with), &temporary).unwrap();
        std::fs::rename(&temporary, setup.dir.join("tag.wasm")).unwrap();
    };
    replace("tag-v2");
    wait_for("the watched file's new version", 60, || {
        server.running("deployed") == "v2"
    })
    .await;
    replace("tag-narrow");
    wait_for("the refusal of the narrow version", 60, || {
        server.actions("deployed").iter().any(|a| a == "refused")
    })
    .await;
    assert_eq!(server.running("deployed"), "v2");
    let history = server.json(&["history", "--pipeline", "deployed", "--stage", "tag"]);
    let by: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["by"].as_str().unwrap())
        .collect();
    assert_eq!(by, ["watch", "watch"], "{history}");

    stop.store(true, Ordering::SeqCst);
    producer.join().unwrap();
    let total = produced.load(Ordering::SeqCst);
    wait_for("every record in the table", 120, || {
        rows(&table) as usize >= total
    })
    .await;
    let (ok, out, err) = server.weir(&["deploy", "--stop", "tagging"]);
    assert!(
        ok && out.contains("deployment tagging: stopped"),
        "{out}{err}"
    );
    let listed = server.json(&["deploy", "--list"]);
    assert_eq!(listed["deployments"][0]["state"], "stopped", "{listed}");
    server.stop();
    assert_once_and_one_version_per_epoch(&table, total).await;
}
