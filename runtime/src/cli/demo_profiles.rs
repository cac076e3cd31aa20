//! `weir demo profiles`: the user-profile scenario end to end. Produces seed
//! 002's multiplex (user_info change events with updates, deletes,
//! re-inserts, duplicates, ties and late events; workout and bpm readings),
//! writes seed 000's related tables (accounts, education, work experience,
//! tags), runs `examples/profiles/pipeline.toml` once, changes the related
//! rows of 10% of the users and produces the rest of the events, runs it
//! again, and prints a few profiles as published on the `profiles` topic.

use super::demo::{broker, variables};
use super::explain_problems;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use weir_runtime::demo::profiles::{TOPICS, multiplex};
use weir_runtime::demo::related;
use weir_runtime::kafka::producer;
use weir_runtime::pipeline;
use weir_runtime::pipeline::spec::KafkaConnection;
use weir_runtime::run::{RunOptions, run_file};
use weir_runtime::{EngineOptions, PluginEngine};

#[derive(Debug, clap::Args)]
pub struct ProfilesArgs {
    /// Kafka bootstrap servers; without it a local in-memory broker is started.
    #[arg(long)]
    brokers: Option<String>,
    /// How many users.
    #[arg(long, default_value_t = 1_000)]
    users: u64,
    /// How many multiplex messages (user_info, workout, bpm) in all.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Seed of the generators (same seed, same data).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The pipeline file to run.
    #[arg(long, default_value = "examples/profiles/pipeline.toml")]
    pipeline: PathBuf,
    /// Where tables and checkpoints go (sets WEIR_DATA for the pipeline file).
    #[arg(long, default_value = "out/profiles")]
    data: PathBuf,
    /// How many published profiles to print.
    #[arg(long, default_value_t = 2)]
    show: usize,
}

pub(super) fn profiles(args: ProfilesArgs) -> anyhow::Result<()> {
    let runtime = super::tokio_runtime()?;
    let (local, connection) = broker(args.brokers.as_deref())?;
    let data = std::path::absolute(&args.data)?;
    if local.is_some() && data.exists() {
        // Checkpoints of an earlier broker point past the new broker's topics.
        println!(
            "the local broker is new: starting afresh in {}",
            data.display()
        );
        std::fs::remove_dir_all(&data)?;
    }
    let tables = data.join("tables");
    let overrides = variables(&connection, "user_info", &data);
    let engine = PluginEngine::new(EngineOptions::default())?;
    let users: Vec<i64> = (0..args.users as i64).map(|u| 10_000 + u).collect();
    let messages = multiplex(args.events, args.users, args.seed);
    let (first, later) = messages.split_at(args.events * 2 / 3);
    runtime.block_on(async {
        for topic in TOPICS {
            producer::ensure_topic(&connection, topic, 2).await?;
        }
        for (round, batch) in [first, later].into_iter().enumerate() {
            let round = round as u64;
            for topic in TOPICS {
                let of_topic = batch.iter().filter(|m| m.topic == topic);
                producer::produce(&connection, topic, of_topic.map(|m| (m.key.clone(), m.value.clone())))
                    .await?;
            }
            let changed: Vec<i64> = match round {
                0 => users.clone(),
                _ => users.iter().copied().filter(|u| u % 10 == 3).collect(),
            };
            related::write_round(&tables, args.seed, &changed, round).await?;
            println!(
                "round {}: produced {} user_info/workout/bpm messages to {}; wrote the related rows of {} users",
                round + 1,
                batch.len(),
                connection.brokers,
                changed.len()
            );
            let file = pipeline::read_with(&args.pipeline, &overrides)?;
            let prepared = explain_problems(pipeline::validate_file(file, &engine).await)?;
            let reports = run_file(prepared, RunOptions { once: true }, Arc::new(AtomicBool::new(false))).await?;
            for report in &reports {
                println!(
                    "  {}: {} epochs, {} records in, {} dead letters",
                    report.pipeline, report.epochs, report.records_in, report.dead_letters
                );
            }
        }
        anyhow::Ok(())
    })?;
    let latest = latest_per_key(&connection, "profiles")?;
    let deleted = latest.values().filter(|v| v.is_none()).count();
    println!(
        "\n== profiles topic: {} users, {} of them deleted (their last message is a tombstone)",
        latest.len(),
        deleted
    );
    for (key, value) in latest
        .iter()
        .filter_map(|(k, v)| Some((k, v.as_ref()?)))
        .take(args.show)
    {
        println!("key {key}: {}", String::from_utf8_lossy(value));
    }
    if let Some((key, _)) = latest.iter().find(|(_, v)| v.is_none()) {
        println!("key {key}: tombstone (user deleted)");
    }
    println!("\ntables and checkpoints are in {}", data.display());
    Ok(())
}

/// librdkafka reports reaching a partition's end as an error; here it is the
/// point, so only other errors are logged.
struct QuietEof;

impl rdkafka::ClientContext for QuietEof {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        let end = rdkafka::types::RDKafkaErrorCode::PartitionEOF;
        if !matches!(error, rdkafka::error::KafkaError::PartitionEOF(_))
            && error.rdkafka_error_code() != Some(end)
        {
            tracing::warn!("reading the profiles topic: {error}: {reason}");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for QuietEof {}

/// The latest value per key of `topic`, read from the beginning to the end
/// of every partition (`None`: a tombstone).
fn latest_per_key(
    connection: &KafkaConnection,
    topic: &str,
) -> anyhow::Result<BTreeMap<String, Option<Vec<u8>>>> {
    let mut config = weir_runtime::kafka::client::consumer_config(connection, None, "earliest");
    config.set("enable.partition.eof", "true");
    let consumer: BaseConsumer<QuietEof> = config.create_with_context(QuietEof)?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut assignment = TopicPartitionList::new();
    for partition in &partitions {
        assignment.add_partition_offset(topic, *partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let mut latest = BTreeMap::new();
    let mut at_end = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while at_end.len() < partitions.len() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "reading `{topic}` took over a minute"
        );
        match consumer.poll(Duration::from_millis(500)) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition);
            }
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(message)) => {
                at_end.remove(&message.partition());
                let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
                latest.insert(key, message.payload().map(<[u8]>::to_vec));
            }
        }
    }
    Ok(latest)
}
