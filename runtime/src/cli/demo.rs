//! `weir demo orders` (and `weir demo profiles`, in `demo_profiles.rs`): produces realistic order events to Kafka and (unless
//! `--produce-only`) runs the orders pipeline file once over them, then prints
//! the gold tables. Without `--brokers` it starts a throwaway in-memory broker
//! (tansu) as a child process and says so.

use super::explain_problems;
use anyhow::Context;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use weir_runtime::delta::query::query;
use weir_runtime::demo::broker::TansuBroker;
use weir_runtime::demo::orders::{EventKind, generate};
use weir_runtime::kafka::producer;
use weir_runtime::pipeline;
use weir_runtime::pipeline::spec::{KafkaConnection, SinkMode};
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
    /// User changes → SCD1 silver users → profiles from five tables' changes → Kafka (seeds 002, 000).
    Profiles(super::demo_profiles::ProfilesArgs),
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
    /// Afterwards keep streaming (new events arriving a few times a second)
    /// with the admin API on this address, token from WEIR_ADMIN_TOKEN, until
    /// Ctrl-C: the playground of README's operator section.
    #[arg(long, num_args = 0..=1, default_missing_value = "127.0.0.1:9870")]
    serve: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.scenario {
        Scenario::Orders(args) => orders(args),
        Scenario::Profiles(args) => super::demo_profiles::profiles(args),
    }
}

/// The broker to use: the given one, or a fresh local tansu (kept alive by
/// the returned guard), announced on stdout.
pub(super) fn broker(
    brokers: Option<&str>,
) -> anyhow::Result<(Option<TansuBroker>, KafkaConnection)> {
    let (guard, brokers) = match brokers {
        Some(brokers) => (None, brokers.to_string()),
        None => {
            let broker = TansuBroker::start()?;
            println!(
                "no --brokers given: started a local Kafka-compatible broker (tansu, in-memory) at {}",
                broker.bootstrap()
            );
            let address = broker.bootstrap();
            (Some(broker), address)
        }
    };
    let connection = KafkaConnection {
        brokers,
        properties: Default::default(),
        connect_timeout: std::time::Duration::from_secs(10),
    };
    Ok((guard, connection))
}

/// Creates the topic and produces `count` order events for `seed`.
pub(super) async fn produce_orders(
    connection: &KafkaConnection,
    topic: &str,
    partitions: i32,
    count: usize,
    seed: u64,
) -> anyhow::Result<producer::Produced> {
    let events = generate(count, seed);
    let kinds = |kind| events.iter().filter(|e| e.kind == kind).count();
    let (valid, duplicates, malformed) = (
        kinds(EventKind::Valid),
        kinds(EventKind::Duplicate),
        kinds(EventKind::Malformed),
    );
    producer::ensure_topic(connection, topic, partitions).await?;
    let produced = producer::produce(
        connection,
        topic,
        events.into_iter().map(|e| (e.key, e.value)),
    )
    .await?;
    println!(
        "produced {} order events to `{topic}` at {} ({valid} distinct, {duplicates} duplicates, {malformed} malformed)",
        produced.count, connection.brokers
    );
    Ok(produced)
}

/// `${VAR}` values pointing a pipeline file at a broker, topic and data directory.
pub(super) fn variables(
    connection: &KafkaConnection,
    topic: &str,
    data: &std::path::Path,
) -> HashMap<String, String> {
    HashMap::from([
        ("WEIR_BROKERS".to_string(), connection.brokers.clone()),
        ("WEIR_TOPIC".to_string(), topic.to_string()),
        ("WEIR_DATA".to_string(), data.display().to_string()),
    ])
}

fn orders(args: OrdersArgs) -> anyhow::Result<()> {
    let serving = args
        .serve
        .as_deref()
        .map(super::demo_serve::settings)
        .transpose()?;
    let runtime = super::tokio_runtime()?;
    let (_broker, connection) = broker(args.brokers.as_deref())?;
    runtime.block_on(produce_orders(
        &connection,
        &args.topic,
        args.partitions,
        args.count,
        args.seed,
    ))?;
    if args.produce_only {
        return Ok(());
    }

    let data = std::path::absolute(&args.data)?;
    let overrides = variables(&connection, &args.topic, &data);
    let engine = PluginEngine::new(EngineOptions::default())?;
    runtime.block_on(async {
        let file = pipeline::read_with(&args.pipeline, &overrides)?;
        let prepared = explain_problems(pipeline::validate_file(file, &engine).await)?;
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
        let streaming = prepared.clone();
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
        if let Some(settings) = serving {
            super::demo_serve::serve(
                streaming,
                settings,
                &engine,
                &connection,
                &args.topic,
                (args.seed, args.count),
            )
            .await?;
        }
        anyhow::Ok(())
    })
}
