//! `weir demo orders`: produces realistic order events to Kafka and (unless
//! `--produce-only`) runs the orders pipeline file once over them, then prints
//! the gold tables. Without `--brokers` it starts a throwaway in-memory broker
//! (tansu) as a child process and says so.

use super::print_problems;
use anyhow::Context;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use weir_runtime::delta::query::query;
use weir_runtime::demo::broker::TansuBroker;
use weir_runtime::demo::orders::{EventKind, generate};
use weir_runtime::kafka::producer;
use weir_runtime::pipeline::spec::{KafkaConnection, SinkMode};
use weir_runtime::pipeline::{self, PipelineFileError};
use weir_runtime::run::{RunOptions, run_file};
use weir_runtime::{EngineOptions, PluginEngine};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, clap::Subcommand)]
enum Scenario {
    /// Order events → bronze → silver → gold (seed 004).
    Orders(OrdersArgs),
}

#[derive(Debug, clap::Args)]
struct OrdersArgs {
    /// Kafka bootstrap servers; without it a local in-memory broker is started.
    #[arg(long)]
    brokers: Option<String>,
    /// How many events to produce.
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    /// Topic to produce to (created if missing).
    #[arg(long, default_value = "orders")]
    topic: String,
    /// Partitions of a newly created topic.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Seed of the event generator (same seed, same events).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Only produce the events; do not run the pipeline.
    #[arg(long)]
    produce_only: bool,
    /// The pipeline file to run.
    #[arg(long, default_value = "examples/orders/pipeline.toml")]
    pipeline: PathBuf,
    /// Where tables and checkpoints go (sets WEIR_DATA for the pipeline file).
    #[arg(long, default_value = "out/orders")]
    data: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.scenario {
        Scenario::Orders(args) => orders(args),
    }
}

fn orders(args: OrdersArgs) -> anyhow::Result<()> {
    let runtime = super::tokio_runtime()?;
    let _broker;
    let brokers = match &args.brokers {
        Some(brokers) => brokers.clone(),
        None => {
            let broker = TansuBroker::start()?;
            println!(
                "no --brokers given: started a local Kafka-compatible broker (tansu, in-memory) at {}",
                broker.bootstrap()
            );
            let address = broker.bootstrap();
            _broker = broker;
            address
        }
    };
    let connection = KafkaConnection {
        brokers: brokers.clone(),
        properties: Default::default(),
        connect_timeout: std::time::Duration::from_secs(10),
    };
    let events = generate(args.count, args.seed);
    let count = |kind| events.iter().filter(|e| e.kind == kind).count();
    let (valid, duplicates, malformed) = (
        count(EventKind::Valid),
        count(EventKind::Duplicate),
        count(EventKind::Malformed),
    );
    runtime.block_on(async {
        producer::ensure_topic(&connection, &args.topic, args.partitions).await?;
        let sent = producer::produce(&connection, &args.topic, events.into_iter().map(|e| (e.key, e.value))).await?;
        println!(
            "produced {sent} order events to `{}` at {brokers} ({valid} distinct, {duplicates} duplicates, {malformed} malformed)",
            args.topic
        );
        anyhow::Ok(())
    })?;
    if args.produce_only {
        return Ok(());
    }

    let data = std::path::absolute(&args.data)?;
    let overrides = HashMap::from([
        ("WEIR_BROKERS".to_string(), brokers.clone()),
        ("WEIR_TOPIC".to_string(), args.topic.clone()),
        ("WEIR_DATA".to_string(), data.display().to_string()),
    ]);
    let engine = PluginEngine::new(EngineOptions::default())?;
    runtime.block_on(async {
        let file = pipeline::read_with(&args.pipeline, &overrides)?;
        let prepared = match pipeline::validate_file(file, &engine).await {
            Ok(prepared) => prepared,
            Err(PipelineFileError::Invalid { path, problems }) => {
                print_problems(&problems);
                anyhow::bail!(
                    "{}: {} problem(s); nothing was started",
                    path.display(),
                    problems.len()
                );
            }
            Err(other) => return Err(other.into()),
        };
        println!(
            "running {} once (tables and checkpoints in {})",
            args.pipeline.display(),
            data.display()
        );
        // Each gold table is shown ordered by its first measure (first non-key numeric column).
        let merge_sinks: Vec<_> = prepared
            .pipelines
            .iter()
            .flat_map(|p| {
                p.spec
                    .sinks
                    .iter()
                    .filter(|s| s.mode == SinkMode::Merge)
                    .map(|sink| {
                        let keys = sink
                            .merge
                            .as_ref()
                            .map(|m| m.on.clone())
                            .unwrap_or_default();
                        let measure = p.schemas.get(&sink.from).and_then(|schema| {
                            schema
                                .fields()
                                .iter()
                                .find(|f| !keys.contains(f.name()) && f.data_type().is_numeric())
                                .map(|f| f.name().clone())
                        });
                        (
                            sink.clone(),
                            measure.unwrap_or_else(|| keys.first().cloned().unwrap_or_default()),
                        )
                    })
            })
            .collect();
        let reports = run_file(
            prepared,
            RunOptions { once: true },
            Arc::new(AtomicBool::new(false)),
        )
        .await?;
        for report in &reports {
            println!(
                "  {}: {} epochs, {} records in, {} dead letters",
                report.pipeline, report.epochs, report.records_in, report.dead_letters
            );
        }
        for (sink, measure) in merge_sinks {
            let sql = format!("SELECT * FROM t ORDER BY \"{measure}\" DESC LIMIT 10");
            let batches = query(&sink.table, &sql)
                .await
                .with_context(|| format!("reading {}", sink.table.display()))?;
            println!("\n== {} (top 10 by {measure})", sink.name);
            println!("{}", arrow::util::pretty::pretty_format_batches(&batches)?);
        }
        anyhow::Ok(())
    })
}
