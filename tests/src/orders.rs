//! The orders scenario as a test fixture: a real tansu broker, the example
//! pipeline file pointed at a temporary data directory and the freshly built
//! plugins, the events produced, and the expected contents of every table
//! computed independently from the generated events.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use weir_runtime::delta::query::query;
use weir_runtime::demo::broker::TansuBroker;
use weir_runtime::demo::orders::{EventKind, OrderEvent};
use weir_runtime::kafka::producer;
use weir_runtime::pipeline::spec::KafkaConnection;

/// A broker, a topic and a data directory for one test.
pub struct OrdersFixture {
    /// The broker (killed on drop).
    pub broker: TansuBroker,
    /// Tables and checkpoints.
    pub data: tempfile::TempDir,
    /// The topic.
    pub topic: String,
}

impl OrdersFixture {
    /// Starts a broker and creates the topic with `partitions` partitions.
    pub async fn start(partitions: i32) -> Self {
        let broker = tokio::task::spawn_blocking(TansuBroker::start)
            .await
            .unwrap()
            .expect(
                "tansu starts (install it with `cargo install tansu@0.6.0 --features dynostore`)",
            );
        let fixture = OrdersFixture {
            broker,
            data: tempfile::tempdir().unwrap(),
            topic: "orders".into(),
        };
        producer::ensure_topic(&fixture.connection(), &fixture.topic, partitions)
            .await
            .expect("topic created");
        fixture
    }

    /// The connection to the broker.
    pub fn connection(&self) -> KafkaConnection {
        KafkaConnection {
            brokers: self.broker.bootstrap(),
            properties: Default::default(),
            connect_timeout: std::time::Duration::from_secs(10),
        }
    }

    /// Produces the events' messages; returns one past the last offset written per partition.
    pub async fn produce(&self, events: &[OrderEvent]) -> BTreeMap<i32, i64> {
        let sent = producer::produce(
            &self.connection(),
            &self.topic,
            events.iter().map(|e| (e.key.clone(), e.value.clone())),
        )
        .await
        .expect("events produced");
        assert_eq!(sent.count, events.len());
        sent.ends
    }

    /// The `${VAR}` values that point the example pipeline file at this fixture.
    pub fn variables(&self) -> HashMap<String, String> {
        HashMap::from([
            ("WEIR_BROKERS".to_string(), self.broker.bootstrap()),
            ("WEIR_TOPIC".to_string(), self.topic.clone()),
            (
                "WEIR_DATA".to_string(),
                self.data.path().display().to_string(),
            ),
            (
                "WEIR_PLUGINS".to_string(),
                plugin_dir().display().to_string(),
            ),
        ])
    }

    /// The offsets a consumer group has committed on the topic, per partition
    /// (what `kafka-consumer-groups --describe` shows), read with a plain client.
    pub fn committed_offsets(&self, group: &str) -> BTreeMap<i32, i64> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", self.broker.bootstrap())
            .set("group.id", group)
            .create()
            .expect("client");
        let metadata = consumer
            .fetch_metadata(Some(&self.topic), std::time::Duration::from_secs(10))
            .expect("metadata");
        let mut partitions = rdkafka::TopicPartitionList::new();
        for partition in metadata.topics()[0].partitions() {
            partitions.add_partition(&self.topic, partition.id());
        }
        consumer
            .committed_offsets(partitions, std::time::Duration::from_secs(10))
            .expect("committed offsets")
            .elements()
            .iter()
            .filter_map(|e| Some((e.partition(), e.offset().to_raw()?)))
            .collect()
    }

    /// A table directory under the data directory.
    pub fn table(&self, name: &str) -> PathBuf {
        self.data.path().join("tables").join(name)
    }
}

/// A `weir` command pointed at the fixture (variables, a private compile
/// cache, quiet logs), stdout discarded.
pub fn weir(fixture: &OrdersFixture, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(crate::weir_binary());
    command
        .args(args)
        .envs(fixture.variables())
        .env("WEIR_LOG", "error")
        .env("WEIR_CACHE_DIR", fixture.data.path().join("cache"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    command
}

/// Runs `weir audit FILE` on the fixture's tables; returns whether it found
/// nothing, and its report.
pub fn audit(fixture: &OrdersFixture, file: &Path) -> (bool, String) {
    let output = weir(fixture, &["audit", file.to_str().expect("UTF-8 path")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("weir audit runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), report)
}

/// Commits in a table's log (including the one that created it).
pub fn commits(table: &Path) -> usize {
    std::fs::read_dir(table.join("_delta_log"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0)
}

/// The directory the build script put the plugin components in.
pub fn plugin_dir() -> PathBuf {
    crate::wasm_path("parse-json")
        .parent()
        .expect("a directory")
        .to_path_buf()
}

/// The example orders pipeline file.
pub fn pipeline_file() -> PathBuf {
    crate::workspace_dir().join("examples/orders/pipeline.toml")
}

/// A copy of the example pipeline file (with its plugin configs) in the
/// fixture's data directory whose bronze epochs close at `max_records`
/// records, so epoch boundaries fall inside the broker's record batches.
pub fn pipeline_file_with_bronze_epochs_of(fixture: &OrdersFixture, max_records: usize) -> PathBuf {
    let examples = crate::workspace_dir().join("examples/orders");
    let dir = fixture.data.path().join("pipeline");
    std::fs::create_dir_all(&dir).expect("pipeline directory");
    for config in ["bronze.json", "silver.json"] {
        std::fs::copy(examples.join(config), dir.join(config)).expect("plugin config copied");
    }
    let text = std::fs::read_to_string(examples.join("pipeline.toml")).expect("example file");
    let bronze = "max_records = 16384";
    assert!(
        text.contains(bronze),
        "the example's bronze batch size changed"
    );
    let path = dir.join("pipeline.toml");
    std::fs::write(
        &path,
        text.replacen(bronze, &format!("max_records = {max_records}"), 1),
    )
    .expect("pipeline file written");
    path
}

/// What every table must hold after the events were processed.
#[derive(Debug)]
pub struct Expected {
    /// event_id of every well-formed message (duplicates included), sorted.
    pub bronze_event_ids: Vec<String>,
    /// Distinct event_ids of PAID orders, sorted.
    pub silver_event_ids: Vec<String>,
    /// category → (revenue, orders).
    pub revenue_by_category: BTreeMap<String, (f64, i64)>,
    /// product_id → total quantity.
    pub top_products: BTreeMap<String, i64>,
    /// customer_id → (spend, orders).
    pub customer_spend: BTreeMap<String, (f64, i64)>,
    /// The raw bytes of every malformed message, sorted.
    pub malformed: Vec<Vec<u8>>,
}

/// Computes the expected tables from the produced events, the way the Spark
/// job of seed 004 would: bronze keeps every parseable message, silver the
/// first occurrence of each PAID event_id, gold sums over silver.
pub fn expected(events: &[OrderEvent]) -> Expected {
    let mut bronze_event_ids = Vec::new();
    let mut seen = HashSet::new();
    let mut silver_event_ids = Vec::new();
    let mut revenue_by_category: BTreeMap<String, (f64, i64)> = BTreeMap::new();
    let mut top_products: BTreeMap<String, i64> = BTreeMap::new();
    let mut customer_spend: BTreeMap<String, (f64, i64)> = BTreeMap::new();
    let mut malformed = Vec::new();
    for event in events {
        let Some(order) = &event.order else {
            assert_eq!(event.kind, EventKind::Malformed);
            malformed.push(event.value.clone());
            continue;
        };
        bronze_event_ids.push(order.event_id.clone());
        if order.status != "PAID" || !seen.insert(order.event_id.clone()) {
            continue;
        }
        silver_event_ids.push(order.event_id.clone());
        let amount = order.quantity as f64 * order.unit_price;
        let entry = revenue_by_category
            .entry(order.category.clone())
            .or_default();
        entry.0 += amount;
        entry.1 += 1;
        *top_products.entry(order.product_id.clone()).or_default() += order.quantity;
        let entry = customer_spend.entry(order.customer_id.clone()).or_default();
        entry.0 += amount;
        entry.1 += 1;
    }
    bronze_event_ids.sort();
    silver_event_ids.sort();
    malformed.sort();
    Expected {
        bronze_event_ids,
        silver_event_ids,
        revenue_by_category,
        top_products,
        customer_spend,
        malformed,
    }
}

async fn rows(table: &Path, sql: &str) -> Vec<RecordBatch> {
    query(table, sql)
        .await
        .unwrap_or_else(|e| panic!("querying {}: {e}", table.display()))
}

/// Column `column` of `batches` as strings (any string type; nulls as `<null>`).
pub fn strings(batches: &[RecordBatch], column: usize) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let column =
                arrow::compute::cast(b.column(column), &arrow::datatypes::DataType::Utf8).unwrap();
            column
                .as_string::<i32>()
                .iter()
                .map(|v| v.unwrap_or("<null>").to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn floats(batches: &[RecordBatch], column: usize) -> Vec<f64> {
    batches
        .iter()
        .flat_map(|b| {
            b.column(column)
                .as_primitive::<Float64Type>()
                .values()
                .to_vec()
        })
        .collect()
}

fn ints(batches: &[RecordBatch], column: usize) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            b.column(column)
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
}

/// Asserts every table holds exactly what `expected` says.
pub async fn assert_tables(fixture: &OrdersFixture, expected: &Expected) {
    let bronze = rows(
        &fixture.table("bronze"),
        "SELECT event_id FROM t ORDER BY event_id",
    )
    .await;
    let bronze_ids = strings(&bronze, 0);
    assert_eq!(
        bronze_ids.len(),
        expected.bronze_event_ids.len(),
        "bronze row count"
    );
    assert!(
        bronze_ids == expected.bronze_event_ids,
        "bronze holds every parseable message exactly once"
    );

    let silver = rows(
        &fixture.table("silver"),
        "SELECT event_id, status FROM t ORDER BY event_id",
    )
    .await;
    let silver_ids = strings(&silver, 0);
    assert_eq!(
        silver_ids.len(),
        expected.silver_event_ids.len(),
        "silver row count"
    );
    assert!(
        silver_ids == expected.silver_event_ids,
        "silver holds each PAID event_id exactly once"
    );
    assert!(strings(&silver, 1).iter().all(|s| s == "PAID"));

    let revenue = rows(
        &fixture.table("gold_revenue_by_category"),
        "SELECT category, revenue, orders FROM t ORDER BY category",
    )
    .await;
    let got: Vec<(String, f64, i64)> = strings(&revenue, 0)
        .into_iter()
        .zip(floats(&revenue, 1))
        .zip(ints(&revenue, 2))
        .map(|((c, r), o)| (c, r, o))
        .collect();
    assert_eq!(
        got.len(),
        expected.revenue_by_category.len(),
        "one gold row per category"
    );
    for ((category, revenue, orders), (want_category, (want_revenue, want_orders))) in
        got.iter().zip(&expected.revenue_by_category)
    {
        assert_eq!(category, want_category);
        assert!(
            close(*revenue, *want_revenue),
            "{category}: revenue {revenue} != {want_revenue}"
        );
        assert_eq!(orders, want_orders, "{category}: orders");
    }

    let products = rows(
        &fixture.table("gold_top_products"),
        "SELECT product_id, total_qty FROM t ORDER BY product_id",
    )
    .await;
    let got: BTreeMap<String, i64> = strings(&products, 0)
        .into_iter()
        .zip(ints(&products, 1))
        .collect();
    assert_eq!(got, expected.top_products, "top products");

    let spend = rows(
        &fixture.table("gold_customer_spend"),
        "SELECT customer_id, spend, orders FROM t ORDER BY customer_id",
    )
    .await;
    let got: Vec<(String, f64, i64)> = strings(&spend, 0)
        .into_iter()
        .zip(floats(&spend, 1))
        .zip(ints(&spend, 2))
        .map(|((c, s), o)| (c, s, o))
        .collect();
    assert_eq!(
        got.len(),
        expected.customer_spend.len(),
        "one gold row per customer"
    );
    for ((customer, spend, orders), (want_customer, (want_spend, want_orders))) in
        got.iter().zip(&expected.customer_spend)
    {
        assert_eq!(customer, want_customer);
        assert!(
            close(*spend, *want_spend),
            "{customer}: spend {spend} != {want_spend}"
        );
        assert_eq!(orders, want_orders);
    }

    let dead = rows(
        &fixture.table("dead_letters"),
        "SELECT raw, pipeline, stage, plugin, reason, source_kind, source_position FROM t WHERE pipeline = 'bronze' ORDER BY raw",
    )
    .await;
    let raws: Vec<Vec<u8>> = dead
        .iter()
        .flat_map(|b| {
            let raw =
                arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Binary).unwrap();
            raw.as_binary::<i32>()
                .iter()
                .map(|v| v.unwrap_or_default().to_vec())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        raws.len(),
        expected.malformed.len(),
        "dead letters: one per malformed message"
    );
    assert!(
        raws == expected.malformed,
        "dead letters hold exactly the malformed messages' bytes"
    );
    for batch in &dead {
        assert_eq!(
            batch.column(3).null_count(),
            0,
            "every dead letter names the plugin"
        );
        assert_eq!(
            batch.column(5).null_count(),
            0,
            "every dead letter names its source kind"
        );
        let positions =
            arrow::compute::cast(batch.column(6), &arrow::datatypes::DataType::Utf8).unwrap();
        let positions = positions.as_string::<i32>();
        assert!(
            positions.iter().all(|p| p.is_some_and(|p| {
                (p.contains("\"topic\"") && p.contains("\"offset\""))
                    || (p.contains("\"file\"") && p.contains("\"line\""))
            })),
            "every dead letter names its topic and offset, or its file and line"
        );
    }
}
