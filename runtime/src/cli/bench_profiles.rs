//! `weir bench profiles`: the profiles scenario's throughput. Writes a raw
//! table of `new` events for N users and seed 000's related tables (about
//! five rows per user), then loads them (round 0); then, per round, 10% of
//! the users change — an `update` event each, and their rows in all four
//! related tables replaced — and the two pipelines of
//! `bench/profiles.toml` run one after the other, each timed in-process
//! (plugins compiled beforehand): silver users' SCD type 1 MERGE (rows
//! merged per second) and the profile builder from the five tables' change
//! feeds to acknowledged Kafka messages (changed users per second).

use super::bench::fresh_data_dir;
use super::demo::broker;
use super::explain_problems;
use arrow::array::{ArrayRef, BinaryArray, RecordBatch};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;
use weir_runtime::demo::profiles::change_event;
use weir_runtime::demo::random::START_MILLIS;
use weir_runtime::demo::related;
use weir_runtime::pipeline::{self, PreparedFile, Upstream};
use weir_runtime::run::{RunOptions, run_file};
use weir_runtime::{EngineOptions, PluginEngine};

#[derive(Debug, clap::Args)]
pub struct ProfilesArgs {
    /// Kafka bootstrap servers; without it a local in-memory broker is started.
    #[arg(long)]
    brokers: Option<String>,
    /// Users (each with about five related rows).
    #[arg(long, default_value_t = 100_000)]
    users: u64,
    /// Rounds of changes after the initial load, each changing 10% of the users.
    #[arg(long, default_value_t = 3)]
    rounds: u64,
    /// The pipeline file.
    #[arg(long, default_value = "bench/profiles.toml")]
    pipeline: PathBuf,
    /// Where tables and checkpoints go (emptied first; a directory `weir
    /// bench` did not make must be empty).
    #[arg(long, default_value = "out/bench-profiles")]
    data: PathBuf,
}

const SEED: u64 = 17;

pub(super) fn profiles(args: ProfilesArgs) -> anyhow::Result<()> {
    let runtime = super::tokio_runtime()?;
    let (_broker, connection) = broker(args.brokers.as_deref())?;
    let data = std::path::absolute(&args.data)?;
    fresh_data_dir(&data)?;
    let tables = data.join("tables");
    let variables = HashMap::from([
        ("WEIR_BROKERS".to_string(), connection.brokers.clone()),
        ("WEIR_DATA".to_string(), data.display().to_string()),
    ]);
    let engine = PluginEngine::new(EngineOptions::default())?;
    let users: Vec<i64> = (0..args.users as i64).map(|u| 10_000 + u).collect();
    println!(
        "{} users, {} rounds changing 10% of them (tables in {})",
        users.len(),
        args.rounds,
        data.display()
    );
    println!("round  changed   silver MERGE        profiles (CDF → acknowledged)");
    runtime.block_on(async {
        for round in 0..=args.rounds {
            let changed: Vec<i64> = match round {
                0 => users.clone(),
                _ => users
                    .iter()
                    .copied()
                    .filter(|u| (u % 10) as u64 == round % 10)
                    .collect(),
            };
            let kind = if round == 0 { "new" } else { "update" };
            let millis = START_MILLIS + 3_600_000 * round as i64;
            append_events(&tables.join("bronze_user_info"), &changed, kind, millis).await?;
            related::write_round(&tables, SEED, &changed, round).await?;
            let file = pipeline::read_with(&args.pipeline, &variables)?;
            let prepared = explain_problems(pipeline::validate_file(file, &engine).await)?;
            let (silver, _, merged) = timed(&prepared, "silver_users").await?;
            anyhow::ensure!(
                merged == changed.len() as u64,
                "round {round}: {merged} changes merged for {} changed users",
                changed.len()
            );
            let (profiles, change_rows, published) = timed(&prepared, "profiles").await?;
            anyhow::ensure!(
                published == changed.len() as u64,
                "round {round}: {published} profiles published for {} changed users",
                changed.len()
            );
            let rate = |seconds: f64| changed.len() as f64 / seconds;
            println!(
                "{:<6} {:<9} {:>6.2} s {:>9.0} rows/s   {:>6.2} s {:>9.0} users/s ({change_rows} change rows){}",
                round,
                changed.len(),
                silver,
                rate(silver),
                profiles,
                rate(profiles),
                if round == 0 { "   (initial load)" } else { "" }
            );
        }
        anyhow::Ok(())
    })
}

/// Runs only pipeline `name` of `prepared` once; its seconds, the source
/// rows it read and the rows its last stage put out.
async fn timed(prepared: &PreparedFile, name: &str) -> anyhow::Result<(f64, u64, u64)> {
    let index = prepared
        .pipelines
        .iter()
        .position(|p| p.spec.name == name)
        .ok_or_else(|| {
            anyhow::anyhow!("{} has no pipeline `{name}`", prepared.file.path.display())
        })?;
    let only = PreparedFile {
        file: prepared.file.clone(),
        pipelines: vec![prepared.pipelines[index].clone()],
        upstream: vec![Upstream::default()],
    };
    let started = Instant::now();
    let reports = run_file(
        only,
        RunOptions { once: true },
        Arc::new(AtomicBool::new(false)),
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    let read = reports.first().map_or(0, |r| r.records_in);
    let sent = reports
        .first()
        .and_then(|r| r.stages.last())
        .map_or(0, |s| s.rows_out as u64);
    Ok((seconds, read, sent))
}

/// Appends one `kind` event per user at `millis` (plus the user's index in
/// ms, so events are distinct) to the raw table, creating it (Change Data
/// Feed on) when missing.
async fn append_events(
    path: &Path,
    users: &[i64],
    kind: &'static str,
    millis: i64,
) -> anyhow::Result<()> {
    let (keys, values): (Vec<Vec<u8>>, Vec<Vec<u8>>) = users
        .iter()
        .enumerate()
        .map(|(i, &user)| {
            let event = change_event(SEED, user, kind, millis + i as i64);
            (event.key, event.value)
        })
        .unzip();
    let batch = RecordBatch::try_from_iter([
        (
            "key",
            Arc::new(BinaryArray::from_iter_values(keys)) as ArrayRef,
        ),
        (
            "value",
            Arc::new(BinaryArray::from_iter_values(values)) as ArrayRef,
        ),
    ])?;
    let opened = related::open_or_create(path, &batch.schema()).await?;
    opened
        .write(vec![batch])
        .with_save_mode(deltalake::protocol::SaveMode::Append)
        .await?;
    Ok(())
}
