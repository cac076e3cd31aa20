//! `weir bench orders`: the end-to-end benchmark (`weir bench profiles`:
//! see `bench_profiles.rs`) (`--source files`: against
//! Spark, see `bench_files.rs`). Produces N order events,
//! measures in the same run the raw consume rate of the same broker (every
//! message read back by a plain librdkafka consumer, no processing), then
//! runs the orders pipeline file once (Kafka → bronze → silver → gold) in a
//! child `weir run --once` whose peak RSS is sampled, and prints records/s end
//! to end, the ratio to the raw rate, and the peak RSS against their targets.

use super::demo::{broker, produce_orders, variables};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use weir_runtime::kafka::source::{OffsetRange, read_range};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, clap::Subcommand)]
enum Scenario {
    /// Kafka → bronze → silver → gold on the orders scenario.
    Orders(OrdersArgs),
    /// SCD1 MERGE rows/s and profiles (five tables' changes → Kafka) users/s.
    Profiles(super::bench_profiles::ProfilesArgs),
    /// The processing stall a hot swap causes, p50 and p99 over 50 swaps.
    Swap(super::bench_swap::SwapArgs),
}

#[derive(Debug, clap::Args)]
struct OrdersArgs {
    /// Kafka bootstrap servers; without it a local in-memory broker is started.
    #[arg(long)]
    brokers: Option<String>,
    /// Order events to process.
    #[arg(long, default_value_t = 1_000_000)]
    count: usize,
    /// Partitions of the benchmark topic.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Where the events come from: `kafka` (against the broker's raw consume
    /// rate) or `files` (JSON-lines files, against Spark on the same files).
    #[arg(long, value_enum, default_value_t = BenchSource::Kafka)]
    source: BenchSource,
    /// The pipeline file to run (default `examples/orders/pipeline.toml`, or
    /// `examples/orders/landing.toml` with `--source files`).
    #[arg(long)]
    pipeline: Option<PathBuf>,
    /// Where tables and checkpoints go (emptied first; a directory `weir
    /// bench` did not make must be empty).
    #[arg(long, default_value = "out/bench-orders")]
    data: PathBuf,
    /// `--source files`: how many files the events are spread over.
    #[arg(long, default_value_t = 8)]
    files: usize,
    /// `--source files`: run Weir alone, without the Spark side.
    #[arg(long)]
    no_spark: bool,
    /// `--source files`: the Python with pyspark 4.3 installed.
    #[arg(long, default_value = "python3")]
    python: String,
    /// `--source files`: the Spark side of the benchmark.
    #[arg(long, default_value = "bench/spark_orders.py")]
    spark_script: PathBuf,
    /// `--source files`: how many times Weir runs (one before Spark, the
    /// rest after it); the median run is compared.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

/// Where `weir bench orders` reads the events from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BenchSource {
    /// A Kafka topic.
    Kafka,
    /// A landing directory of JSON-lines files.
    Files,
}

/// Targets from the issue: end-to-end rate at least half the raw consume rate,
/// peak RSS at most 512 MiB.
const TARGET_RATIO: f64 = 0.5;
const TARGET_RSS_BYTES: u64 = 512 * 1024 * 1024;

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.scenario {
        Scenario::Orders(args) => orders(args),
        Scenario::Profiles(args) => super::bench_profiles::profiles(args),
        Scenario::Swap(args) => super::bench_swap::swap(args),
    }
}

fn orders(args: OrdersArgs) -> anyhow::Result<()> {
    if args.source == BenchSource::Files {
        let pipeline = args
            .pipeline
            .unwrap_or_else(|| PathBuf::from("examples/orders/landing.toml"));
        return super::bench_files::run(super::bench_files::FilesBench {
            count: args.count,
            files: args.files,
            pipeline: &pipeline,
            data: &std::path::absolute(&args.data)?,
            spark: (!args.no_spark).then_some(super::bench_files::SparkCommand {
                python: &args.python,
                script: &args.spark_script,
            }),
            runs: args.runs,
        });
    }
    let pipeline = args
        .pipeline
        .unwrap_or_else(|| PathBuf::from("examples/orders/pipeline.toml"));
    let runtime = super::tokio_runtime()?;
    let (_broker, connection) = broker(args.brokers.as_deref())?;
    let topic = format!("bench-orders-{}", std::process::id());
    let produced = runtime.block_on(produce_orders(
        &connection,
        &topic,
        args.partitions,
        args.count,
        7,
    ))?;

    let ranges: Vec<OffsetRange> = produced
        .ends
        .iter()
        .map(|(&partition, &end)| OffsetRange {
            topic: topic.clone(),
            partition,
            start: 0,
            end,
            records: None,
            lost: 0,
        })
        .collect();
    let started = Instant::now();
    let consumed = runtime.block_on(read_range(&connection, &ranges))?.len();
    let raw_seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        consumed == produced.count,
        "the raw consumer read {consumed} of {} messages",
        produced.count
    );
    let raw_rate = consumed as f64 / raw_seconds;
    println!("raw consume:  {consumed} messages in {raw_seconds:.2}s = {raw_rate:.0} msg/s");

    let data = std::path::absolute(&args.data)?;
    fresh_data_dir(&data)?;
    let (seconds, peak_rss) =
        run_pipeline_child(&pipeline, &variables(&connection, &topic, &data))?;
    let rate = produced.count as f64 / seconds;
    let ratio = rate / raw_rate;
    println!(
        "end to end:   {} records in {seconds:.2}s = {rate:.0} records/s (Kafka → bronze → silver → gold)",
        produced.count
    );
    println!(
        "ratio:        {ratio:.2} of the raw consume rate (target ≥ {TARGET_RATIO}) {}",
        verdict(ratio >= TARGET_RATIO)
    );
    print_rss(peak_rss);
    Ok(())
}

/// The file marking a directory as made by `weir bench` (so it may be emptied).
const MARKER: &str = ".weir-bench";

/// Empties `data` for a new run, or creates it. Refuses a directory that
/// holds anything and was not made by `weir bench`: `--data` is emptied,
/// and a mistyped path must not lose someone's files.
pub(super) fn fresh_data_dir(data: &Path) -> anyhow::Result<()> {
    let holds_anything = std::fs::read_dir(data).is_ok_and(|mut entries| entries.next().is_some());
    if holds_anything {
        anyhow::ensure!(
            data.join(MARKER).exists(),
            "--data {} holds files `weir bench` did not make; it would empty it: give a new or empty directory",
            data.display()
        );
        std::fs::remove_dir_all(data)?;
    }
    std::fs::create_dir_all(data)?;
    std::fs::write(
        data.join(MARKER),
        b"made by weir bench; emptied by the next run\n",
    )?;
    Ok(())
}

/// Prints a run's peak RSS against the target.
pub(super) fn print_rss(peak_rss: u64) {
    println!(
        "peak RSS:     {:.0} MiB (target ≤ {} MiB) {}",
        peak_rss as f64 / 1048576.0,
        TARGET_RSS_BYTES / 1048576,
        verdict(peak_rss <= TARGET_RSS_BYTES)
    );
}

/// `met` or `NOT met`.
pub(super) fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

/// Runs `weir run FILE --once` as a child, sampling its peak RSS (VmHWM).
pub(super) fn run_pipeline_child(
    file: &Path,
    variables: &std::collections::HashMap<String, String>,
) -> anyhow::Result<(f64, u64)> {
    let started = Instant::now();
    let mut child = Command::new(std::env::current_exe()?)
        .args(["run", &file.display().to_string(), "--once"])
        .envs(variables)
        .stdout(Stdio::null())
        .spawn()?;
    let status_file = PathBuf::from(format!("/proc/{}/status", child.id()));
    let mut peak = 0u64;
    let status = loop {
        if let Some(kib) = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|l| l.starts_with("VmHWM:"))?
                    .split_whitespace()
                    .nth(1)?
                    .parse::<u64>()
                    .ok()
            })
        {
            peak = peak.max(kib * 1024);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    anyhow::ensure!(status.success(), "weir run --once failed: {status}");
    Ok((started.elapsed().as_secs_f64(), peak))
}
