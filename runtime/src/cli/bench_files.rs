//! `weir bench orders --source files`: Weir against Spark on identical
//! files. Writes N order events (the generator of `weir demo orders`) as
//! JSON-lines files into a landing directory, runs the orders scenario from
//! it (`examples/orders/landing.toml`: files → bronze → silver → gold) in a
//! child `weir run --once` whose peak RSS is sampled, then runs the same
//! logic with PySpark (`bench/spark_orders.py`) on the same files, runs Weir
//! again (`--runs`, the median counts), checks that every gold table holds
//! the same rows (doubles bit for bit), and prints both rates, the ratio and
//! Weir's peak RSS against their targets.

use anyhow::Context;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use weir_runtime::delta::query::query;
use weir_runtime::pipeline::spec::SinkMode;
use weir_runtime::pipeline::{self, PortRef};

/// Targets from the issue: Weir at least 10× Spark's records/s, peak RSS at
/// most 512 MiB.
const TARGET_SPEEDUP: f64 = 10.0;

/// What `--source files` needs besides the shared orders options.
pub struct FilesBench<'a> {
    /// Order events.
    pub count: usize,
    /// Files they are spread over.
    pub files: usize,
    /// The pipeline file (its bronze reads `${WEIR_LANDING}`).
    pub pipeline: &'a Path,
    /// Emptied, then holds `landing/`, `weir/` and `spark/`.
    pub data: &'a Path,
    /// The Spark script, or `None` to run Weir alone.
    pub spark: Option<SparkCommand<'a>>,
    /// Weir runs (at least 1): the first before Spark, the rest after it.
    pub runs: usize,
}

/// Weir's measured runs: each a child `weir run --once` into an emptied
/// `weir/` directory.
#[derive(Default)]
struct WeirRuns {
    /// Wall time of each run, process start included, in seconds.
    seconds: Vec<f64>,
    /// The highest peak RSS of any run, in bytes.
    peak_rss: u64,
}

impl WeirRuns {
    fn run(
        &mut self,
        bench: &FilesBench<'_>,
        weir_data: &Path,
        variables: &HashMap<String, String>,
    ) -> anyhow::Result<()> {
        if weir_data.exists() {
            std::fs::remove_dir_all(weir_data)?;
        }
        let (seconds, peak_rss) = super::bench::run_pipeline_child(bench.pipeline, variables)?;
        println!(
            "weir:         run {} of {}: {seconds:.2}s, peak RSS {:.0} MiB",
            self.seconds.len() + 1,
            bench.runs,
            peak_rss as f64 / 1048576.0
        );
        self.seconds.push(seconds);
        self.peak_rss = self.peak_rss.max(peak_rss);
        Ok(())
    }

    /// Prints the median run and the highest peak RSS; returns the median
    /// run's records/s.
    fn print(&self, count: usize) -> f64 {
        let mut sorted = self.seconds.clone();
        sorted.sort_by(f64::total_cmp);
        let middle = sorted.len() / 2;
        let median = match sorted.len() % 2 {
            1 => sorted[middle],
            _ => (sorted[middle - 1] + sorted[middle]) / 2.0,
        };
        let rate = count as f64 / median;
        println!(
            "weir:         {count} records in {median:.2}s (median of {} runs, {:.2}–{:.2}s) = {rate:.0} records/s (files → bronze → silver → gold, process start included)",
            sorted.len(),
            sorted[0],
            sorted[sorted.len() - 1]
        );
        super::bench::print_rss(self.peak_rss);
        rate
    }
}

/// How to start the Spark side.
pub struct SparkCommand<'a> {
    /// The Python interpreter with pyspark 4.3.
    pub python: &'a str,
    /// `bench/spark_orders.py`.
    pub script: &'a Path,
}

/// One gold cell, compared exactly (doubles by their bits).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Cell {
    Null,
    Int(i64),
    Float(u64),
    Text(String),
}

/// A gold table: its columns' types and rows, sorted.
struct Gold {
    types: Vec<DataType>,
    rows: Vec<Vec<Cell>>,
}

pub fn run(bench: FilesBench<'_>) -> anyhow::Result<()> {
    anyhow::ensure!(bench.count > 0, "--count must be at least 1");
    anyhow::ensure!(bench.runs > 0, "--runs must be at least 1");
    let landing = bench.data.join("landing");
    let weir_data = bench.data.join("weir");
    let variables = HashMap::from([
        ("WEIR_LANDING".to_string(), landing.display().to_string()),
        ("WEIR_DATA".to_string(), weir_data.display().to_string()),
    ]);
    // Problems found before anything is written: the pipeline file, Spark.
    let file = pipeline::read_with(bench.pipeline, &variables)?;
    anyhow::ensure!(
        file.pipelines
            .iter()
            .any(|p| matches!(p.source, pipeline::Source::Files(_))),
        "{} reads no landing directory; --source files needs a pipeline file like examples/orders/landing.toml",
        bench.pipeline.display()
    );
    // Every Weir run and Spark read the same landed files: none may be
    // moved or deleted after its epoch.
    let consuming = file.pipelines.iter().find(|p| {
        matches!(&p.source, pipeline::Source::Files(spec)
            if !matches!(spec.after_commit, weir_runtime::landing::epoch_source::AfterCommit::Keep))
    });
    if let Some(pipeline) = consuming {
        anyhow::bail!(
            "{}: pipeline `{}` moves or deletes its landed files after each epoch (`after_commit`); the benchmark runs Weir {} times and Spark on the same files, so it needs after_commit = \"keep\"",
            bench.pipeline.display(),
            pipeline.name,
            bench.runs
        );
    }
    if let Some(spark) = &bench.spark {
        let found = Command::new(spark.python)
            .args(["-c", "import pyspark"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        anyhow::ensure!(
            found.is_ok_and(|s| s.success()),
            "`{} -c \"import pyspark\"` failed: install PySpark 4.3 (`pip install pyspark==4.3.0`, Java 17; bench/README.md), or pass --no-spark",
            spark.python
        );
    }
    super::bench::fresh_data_dir(bench.data)?;
    let written = land_orders(&landing, bench.count, bench.files)?;
    println!(
        "landed {} order events in {} JSON-lines files ({:.0} MiB) in {}",
        bench.count,
        bench.files,
        written as f64 / 1048576.0,
        landing.display()
    );
    // As Spark's warm-up: the plugins are compiled into the cache first, so
    // the measured run starts from it (as every run after the first does).
    let started = std::time::Instant::now();
    let warmed = Command::new(std::env::current_exe()?)
        .args(["validate", &bench.pipeline.display().to_string()])
        .envs(&variables)
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(warmed.success(), "weir validate failed: {warmed}");
    println!(
        "weir:         plugins compiled into the cache by `weir validate` in {:.2}s (not counted)",
        started.elapsed().as_secs_f64()
    );
    // Weir's run lasts seconds, Spark's half a minute, and this machine's
    // speed drifts by tens of percent over minutes: one Weir run before
    // Spark and the others after it, and their median taken, so both sides
    // are measured over the same stretch of time.
    let mut runs = WeirRuns::default();
    runs.run(&bench, &weir_data, &variables)?;
    let spark = bench
        .spark
        .as_ref()
        .map(|spark| run_spark(spark, &landing, &bench.data.join("spark"), bench.pipeline))
        .transpose()?;
    while runs.seconds.len() < bench.runs {
        runs.run(&bench, &weir_data, &variables)?;
    }
    let weir_rate = runs.print(bench.count);
    let weir_gold = super::tokio_runtime()?.block_on(weir_gold(&file))?;
    let Some(result) = spark else {
        println!("spark:        not run (--no-spark)");
        return Ok(());
    };
    let transform = result["transform_seconds"]
        .as_f64()
        .context("the Spark script printed no transform_seconds")?;
    let startup = result["startup_seconds"].as_f64().unwrap_or(0.0);
    let spark_rate = bench.count as f64 / transform;
    println!(
        "spark:        {} records in {transform:.2}s of transform = {spark_rate:.0} records/s (PySpark {} local[2]; JVM start {startup:.1}s and warm-up not counted), JVM peak RSS {:.0} MiB",
        bench.count,
        result["spark_version"].as_str().unwrap_or("?"),
        result["jvm_peak_rss_bytes"].as_f64().unwrap_or(0.0) / 1048576.0
    );
    let phases = &result["phase_seconds"];
    println!(
        "spark:        bronze {:.2}s, silver {:.2}s, gold {:.2}s",
        phases["bronze"].as_f64().unwrap_or(f64::NAN),
        phases["silver"].as_f64().unwrap_or(f64::NAN),
        phases["gold"].as_f64().unwrap_or(f64::NAN)
    );
    let speedup = weir_rate / spark_rate;
    println!(
        "ratio:        Weir {speedup:.2}× Spark's records/s (median Weir run; target ≥ {TARGET_SPEEDUP}×) {}",
        super::bench::verdict(speedup >= TARGET_SPEEDUP)
    );
    let differences = compare_gold(&weir_gold, &result["gold"]);
    if differences.is_empty() {
        let rows: usize = weir_gold.values().map(|g| g.rows.len()).sum();
        println!(
            "gold:         identical ({} tables, {rows} rows; doubles bit for bit)",
            weir_gold.len()
        );
        Ok(())
    } else {
        for difference in &differences {
            eprintln!("  - {difference}");
        }
        anyhow::bail!(
            "Weir's and Spark's gold tables differ ({} differences)",
            differences.len()
        )
    }
}

/// Writes `count` events (seed 7, as the Kafka benchmark) round-robin into
/// `files` files, each under a temporary name renamed when complete; returns
/// the bytes written.
fn land_orders(landing: &Path, count: usize, files: usize) -> anyhow::Result<u64> {
    anyhow::ensure!(files > 0, "--files must be at least 1");
    std::fs::create_dir_all(landing)?;
    let events = weir_runtime::demo::orders::generate(count, 7);
    let per_file = count.div_ceil(files).max(1);
    let mut written = 0u64;
    for (index, chunk) in events.chunks(per_file).enumerate() {
        let name = format!("orders-{index:04}.jsonl");
        let temporary = landing.join(format!("{name}.tmp"));
        let mut out = std::io::BufWriter::new(std::fs::File::create(&temporary)?);
        for event in chunk {
            out.write_all(&event.value)?;
            out.write_all(b"\n")?;
            written += event.value.len() as u64 + 1;
        }
        let file = out.into_inner()?;
        file.sync_all()?;
        // Landed a minute ago, as files that wait in a landing zone: Weir
        // reads them at first sight instead of waiting `stable_for`.
        file.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(60))?;
        std::fs::rename(&temporary, landing.join(name))?;
    }
    Ok(written)
}

/// The gold tables Weir wrote: per aggregate stage feeding a merge sink, its
/// group columns then its aggregates, sorted.
async fn weir_gold(file: &pipeline::PipelineFile) -> anyhow::Result<HashMap<String, Gold>> {
    let mut gold = HashMap::new();
    for pipeline in &file.pipelines {
        for sink in pipeline.sinks.iter().filter(|s| s.mode == SinkMode::Merge) {
            let PortRef::Stage { stage, .. } = &sink.from else {
                continue;
            };
            let stage = &pipeline.stages[*stage];
            let config: serde_json::Value = serde_json::from_str(&stage.config_json)?;
            let mut columns: Vec<String> = config["group_by"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|g| g.as_str().map(|g| g.replace('.', "_")))
                .collect();
            columns.extend(
                config["aggregates"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a["name"].as_str().map(str::to_string)),
            );
            let select = columns
                .iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(", ");
            let batches = query(&sink.table, &format!("SELECT {select} FROM t"))
                .await
                .with_context(|| format!("reading {}", sink.table.display()))?;
            gold.insert(stage.name.clone(), gold_of(&batches));
        }
    }
    Ok(gold)
}

fn gold_of(batches: &[RecordBatch]) -> Gold {
    let types = batches
        .first()
        .map(|b| {
            b.schema()
                .fields()
                .iter()
                .map(|f| f.data_type().clone())
                .collect()
        })
        .unwrap_or_default();
    let mut rows = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .map(|column| cell(column.as_ref(), row))
                    .collect(),
            );
        }
    }
    rows.sort();
    Gold { types, rows }
}

fn cell(column: &dyn Array, row: usize) -> Cell {
    if column.is_null(row) {
        return Cell::Null;
    }
    match column.data_type() {
        DataType::Utf8 => Cell::Text(column.as_string::<i32>().value(row).to_string()),
        DataType::Float64 => Cell::Float(column.as_primitive::<Float64Type>().value(row).to_bits()),
        DataType::Int64 => Cell::Int(column.as_primitive::<Int64Type>().value(row)),
        _ => match arrow::compute::cast(&column.slice(row, 1), &DataType::Int64) {
            Ok(int) if int.is_valid(0) && column.data_type().is_integer() => {
                Cell::Int(int.as_primitive::<Int64Type>().value(0))
            }
            _ => Cell::Text(
                arrow::util::display::array_value_to_string(column, row).unwrap_or_default(),
            ),
        },
    }
}

/// Spark's gold rows (from the script's JSON) as cells typed like Weir's
/// columns: doubles come as their shortest round-trip text.
fn spark_cells(row: &serde_json::Value, types: &[DataType]) -> Option<Vec<Cell>> {
    let values = row.as_array()?;
    if values.len() != types.len() {
        return None;
    }
    values
        .iter()
        .zip(types)
        .map(|(value, data_type)| {
            Some(match value {
                serde_json::Value::Null => Cell::Null,
                serde_json::Value::String(text) if data_type == &DataType::Float64 => {
                    Cell::Float(text.parse::<f64>().ok()?.to_bits())
                }
                serde_json::Value::String(text) => Cell::Text(text.clone()),
                serde_json::Value::Number(n) => Cell::Int(n.as_i64()?),
                _ => return None,
            })
        })
        .collect()
}

/// Every difference between Weir's and Spark's gold tables, one line each
/// (at most five rows per table).
fn compare_gold(weir: &HashMap<String, Gold>, spark: &serde_json::Value) -> Vec<String> {
    let mut differences = Vec::new();
    let mut names: Vec<&String> = weir.keys().collect();
    names.sort();
    for name in names {
        let ours = &weir[name];
        let Some(theirs) = spark[name.as_str()].as_array() else {
            differences.push(format!("Spark wrote no gold table `{name}`"));
            continue;
        };
        let mut rows = Vec::new();
        for row in theirs {
            match spark_cells(row, &ours.types) {
                Some(cells) => rows.push(cells),
                None => differences.push(format!(
                    "`{name}`: Spark row {row} does not fit Weir's columns"
                )),
            }
        }
        rows.sort();
        if rows.len() != ours.rows.len() {
            differences.push(format!(
                "`{name}`: Weir has {} rows, Spark {}",
                ours.rows.len(),
                rows.len()
            ));
        }
        let only_weir = ours.rows.iter().filter(|r| !rows.contains(r));
        for row in only_weir.take(5) {
            differences.push(format!("`{name}`: only in Weir: {row:?}"));
        }
        let only_spark = rows.iter().filter(|r| !ours.rows.contains(r));
        for row in only_spark.take(5) {
            differences.push(format!("`{name}`: only in Spark: {row:?}"));
        }
    }
    differences
}

/// Runs the Spark script on `landing`; its one line of JSON.
fn run_spark(
    spark: &SparkCommand<'_>,
    landing: &Path,
    output: &Path,
    pipeline: &Path,
) -> anyhow::Result<serde_json::Value> {
    let command = format!(
        "{} {} --input {} --output {} --pipeline {} --blank-lines skip --json",
        spark.python,
        spark.script.display(),
        landing.display(),
        output.display(),
        pipeline.display()
    );
    println!("spark:        running `{command}` (JVM start, warm-up, then the measured run)");
    let log = output.with_extension("log");
    std::fs::create_dir_all(output)?;
    let out = Command::new(spark.python)
        .arg(spark.script)
        .args(["--input", &landing.display().to_string()])
        .args(["--output", &output.display().to_string()])
        .args(["--pipeline", &pipeline.display().to_string()])
        .args(["--blank-lines", "skip", "--json"])
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .output()
        .with_context(|| format!("starting `{}`", spark.python))?;
    if !out.status.success() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        for line in tail.iter().rev() {
            eprintln!("  {line}");
        }
        anyhow::bail!(
            "the Spark side failed ({}; its log is {}); it needs `pip install pyspark==4.3.0` and Java 17 (bench/README.md), or pass --no-spark",
            out.status,
            log.display()
        );
    }
    serde_json::from_slice(&out.stdout).context("the Spark script's stdout is not one JSON object")
}
