//! Parquet landing files: typed columns reach the first stage unchanged
//! (decimals beyond `f64`'s exact range, nested structs, timestamps), each
//! file once across runs, and a file that does not fit the schema stops the
//! run before its epoch is planned, naming the file and the column, with
//! nothing committed from it — the run goes on once the file is moved away.

use arrow::array::{
    ArrayRef, Decimal128Array, RecordBatch, StringArray, StructArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use weir_runtime::delta::query::query;
use weir_tests::orders::strings;

/// One landed order: id, status, amount in cents, customer id.
type Order = (&'static str, &'static str, i128, &'static str);

fn customer_fields() -> Fields {
    Fields::from(vec![
        Field::new("id", DataType::Utf8, true),
        Field::new("country", DataType::Utf8, true),
    ])
}

fn orders_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, true),
        Field::new("amount", DataType::Decimal128(20, 2), true),
        Field::new("customer", DataType::Struct(customer_fields()), true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]))
}

/// Writes `orders` as a Parquet file, under a temporary name renamed when done.
fn land(dir: &Path, name: &str, orders: &[Order]) {
    let customers = StructArray::new(
        customer_fields(),
        vec![
            Arc::new(StringArray::from_iter_values(orders.iter().map(|o| o.3))) as ArrayRef,
            Arc::new(StringArray::from_iter_values(orders.iter().map(|_| "SE"))),
        ],
        None,
    );
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(orders.iter().map(|o| o.0))),
        Arc::new(StringArray::from_iter_values(orders.iter().map(|o| o.1))),
        Arc::new(
            Decimal128Array::from_iter_values(orders.iter().map(|o| o.2))
                .with_precision_and_scale(20, 2)
                .unwrap(),
        ),
        Arc::new(customers),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(
                (0..orders.len()).map(|i| 1_700_000_000_000_000 + i as i64),
            )
            .with_timezone("UTC"),
        ),
    ];
    write(
        dir,
        name,
        RecordBatch::try_new(orders_schema(), columns).unwrap(),
    );
}

fn write(dir: &Path, name: &str, batch: RecordBatch) {
    let temporary = dir.join(format!("{name}.tmp"));
    let file = std::fs::File::create(&temporary).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    std::fs::rename(temporary, dir.join(name)).unwrap();
}

fn pipeline_file(data: &Path, landing: &Path) -> PathBuf {
    pipeline_file_with(data, landing, "")
}

/// [`pipeline_file`] with `extra` (say a `[pipeline.batch]` table) after the source.
fn pipeline_file_with(data: &Path, landing: &Path, extra: &str) -> PathBuf {
    let text = format!(
        r#"
checkpoint_dir = "{data}/checkpoints"
dead_letters = "{data}/tables/dead_letters"

[[pipeline]]
name = "silver"

[pipeline.source.files]
dir = "{landing}"
format = "parquet"
stable_for = "100ms"
{extra}

[[pipeline.stage]]
name = "filter"
plugin = "{plugin}"
config = {{ keep = ["PAID"], flatten = [{{ path = "customer.id", as = "customer_id" }}] }}

[[pipeline.sink]]
name = "silver"
table = "{data}/tables/silver"
mode = "append"
"#,
        data = data.display(),
        landing = landing.display(),
        plugin = weir_tests::wasm_path("filter-paid").display(),
    );
    let path = data.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn silver(data: &Path) -> Vec<String> {
    let batches = query(
        &data.join("tables/silver"),
        "SELECT concat(event_id, ' ', CAST(amount AS VARCHAR), ' ', customer_id, ' ', _file, ':', CAST(_row AS VARCHAR)) FROM t ORDER BY event_id",
    )
    .await
    .unwrap();
    strings(&batches, 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_files_arrive_typed_once_and_a_misfit_file_is_named() {
    let data = tempfile::tempdir().unwrap();
    let landing = data.path().join("landing");
    std::fs::create_dir_all(&landing).unwrap();
    // 18 significant digits: beyond what a float carries exactly.
    let big = 999_999_999_999_999_999_i128; // cents: 9999999999999999.99
    land(
        &landing,
        "2026-12-01.parquet",
        &[
            ("e1", "PAID", 1999, "c1"),
            ("e2", "CANCELLED", 500, "c2"),
            ("e3", "PAID", big, "c3"),
            ("e1", "PAID", 1999, "c1"),
        ],
    );
    let file = pipeline_file(data.path(), &landing);
    let load = || weir_runtime::pipeline::read(&file).unwrap_or_else(|e| panic!("{e}"));
    let reports = weir_tests::run_once(load()).await.expect("first run");
    assert_eq!(reports[0].records_in, 4);
    assert_eq!(
        silver(data.path()).await,
        [
            "e1 19.99 c1 2026-12-01.parquet:1",
            "e3 9999999999999999.99 c3 2026-12-01.parquet:3"
        ]
    );

    // A file with an extra column stops the run before it is planned.
    let mut fields = orders_schema().fields().to_vec();
    fields.push(Arc::new(Field::new("coupon", DataType::Utf8, true)));
    let wide = land_wide(fields);
    write(&landing, "2026-12-02.parquet", wide);
    let error = weir_tests::run_once(load())
        .await
        .expect_err("a file with a column the schema lacks")
        .to_string();
    assert!(
        error.contains("2026-12-02.parquet") && error.contains("column `coupon`"),
        "{error}"
    );
    assert_eq!(
        silver(data.path()).await.len(),
        2,
        "nothing committed from it"
    );

    // Moved away, the run goes on with the next file, and reads nothing twice.
    std::fs::rename(
        landing.join("2026-12-02.parquet"),
        data.path().join("2026-12-02.parquet"),
    )
    .unwrap();
    land(&landing, "2026-12-03.parquet", &[("e4", "PAID", -1, "c4")]);
    let reports = weir_tests::run_once(load()).await.expect("third run");
    assert_eq!(reports[0].records_in, 1);
    assert_eq!(
        silver(data.path()).await.last().map(String::as_str),
        Some("e4 -0.01 c4 2026-12-03.parquet:1")
    );

    // The schema taken at the first start is kept: a file lacking a column
    // is refused even when it sorts first at a later start.
    let fields: Vec<Arc<Field>> = orders_schema()
        .fields()
        .iter()
        .filter(|f| f.name() != "customer")
        .cloned()
        .collect();
    write(&landing, "0000-early.parquet", land_wide(fields));
    let error = weir_tests::run_once(load())
        .await
        .expect_err("a file lacking a column of the kept schema")
        .to_string();
    assert!(
        error.contains("0000-early.parquet") && error.contains("column `customer` is missing"),
        "{error}"
    );
}

/// One order with every column of `fields` (event id `e9`, the rest null).
fn land_wide(fields: Vec<Arc<Field>>) -> RecordBatch {
    let schema = Arc::new(Schema::new(fields));
    let columns = schema
        .fields()
        .iter()
        .map(|f| match f.name().as_str() {
            "event_id" => Arc::new(StringArray::from(vec!["e9"])) as ArrayRef,
            _ => arrow::array::new_null_array(f.data_type(), 1),
        })
        .collect();
    RecordBatch::try_new(schema, columns).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_parquet_landing_zone_needs_schema_from() {
    let data = tempfile::tempdir().unwrap();
    let landing = data.path().join("landing");
    std::fs::create_dir_all(&landing).unwrap();
    let file = pipeline_file(data.path(), &landing);
    let loaded = weir_runtime::pipeline::read(&file).unwrap();
    let problems = match weir_runtime::pipeline::validate_file(loaded, weir_tests::engine()).await {
        Ok(_) => panic!("validated without a file to take the schema from"),
        Err(e) => e.to_string(),
    };
    assert!(problems.contains("set `schema_from`"), "{problems}");

    // With `schema_from`, an empty directory validates.
    let samples = data.path().join("samples");
    std::fs::create_dir_all(&samples).unwrap();
    land(&samples, "orders.parquet", &[]);
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "stable_for = \"100ms\"",
        &format!(
            "stable_for = \"100ms\"\nschema_from = \"{}\"",
            samples.join("orders.parquet").display()
        ),
    );
    std::fs::write(&file, text).unwrap();
    let loaded = weir_runtime::pipeline::read(&file).unwrap();
    weir_runtime::pipeline::validate_file(loaded, weir_tests::engine())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A Parquet file holding more rows than an epoch may is split across
/// epochs: each part's rows keep their row numbers in the file, each row
/// arrives once, and the file counts as processed only after its last part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parquet_file_larger_than_an_epoch_is_split_across_epochs() {
    let data = tempfile::tempdir().unwrap();
    let landing = data.path().join("landing");
    std::fs::create_dir_all(&landing).unwrap();
    let orders: [Order; 5] = [
        ("e1", "PAID", 100, "c1"),
        ("e2", "PAID", 200, "c2"),
        ("e3", "PAID", 300, "c3"),
        ("e4", "PAID", 400, "c4"),
        ("e5", "PAID", 500, "c5"),
    ];
    land(&landing, "big.parquet", &orders);
    land(&landing, "small.parquet", &[("e6", "PAID", 600, "c6")]);
    let file = pipeline_file_with(data.path(), &landing, "[pipeline.batch]\nmax_records = 2");
    let load = || weir_runtime::pipeline::read(&file).unwrap_or_else(|e| panic!("{e}"));
    let reports = weir_tests::run_once(load()).await.expect("run");
    assert_eq!(reports[0].records_in, 6);
    assert_eq!(
        reports[0].epochs, 3,
        "rows 1-2, 3-4, then 5 and the small file"
    );
    assert_eq!(
        silver(data.path()).await,
        [
            "e1 1.00 c1 big.parquet:1",
            "e2 2.00 c2 big.parquet:2",
            "e3 3.00 c3 big.parquet:3",
            "e4 4.00 c4 big.parquet:4",
            "e5 5.00 c5 big.parquet:5",
            "e6 6.00 c6 small.parquet:1",
        ]
    );
    let reports = weir_tests::run_once(load()).await.expect("again");
    assert_eq!(reports[0].records_in, 0, "nothing is read twice");
}
