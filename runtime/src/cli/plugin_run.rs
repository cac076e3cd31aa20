//! `weir plugin run`: the plugin author's inner loop. Runs a plugin once on
//! local files, writes every output port to a directory and prints row counts,
//! with the reasons of rejected rows.

use anyhow::{Context, bail};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::UInt64Type;
use std::path::{Path, PathBuf};
use weir_runtime::files::{self, Format};
use weir_runtime::{CallContext, EngineOptions, PluginEngine, PluginLimits, units};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plugin component (.wasm).
    file: PathBuf,
    /// The plugin config: a JSON object, or @FILE to read it from a file.
    #[arg(long, default_value = "{}")]
    config: String,
    /// An input: PORT=FILE (.jsonl, .arrow or .parquet). Repeat for several ports.
    #[arg(long = "input", value_name = "PORT=FILE", required = true)]
    inputs: Vec<String>,
    /// Directory to write each output port to, as PORT.EXT.
    #[arg(long, default_value = "out")]
    output: PathBuf,
    /// Format of the written outputs.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    format: Format,
    /// The plugin's memory cap, e.g. 256MiB.
    #[arg(long, default_value = "256MiB", value_parser = units::parse_bytes)]
    memory: usize,
    /// The time budget of the call, e.g. 5s.
    #[arg(long, default_value = "5s", value_parser = units::parse_duration)]
    time_budget: std::time::Duration,
    /// Seed of the plugin's random source (replay a run with the same seed).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// What the plugin's clock reads, in nanoseconds since the epoch (default: now).
    #[arg(long)]
    clock_nanos: Option<u64>,
    /// How many rejected rows to print.
    #[arg(long, default_value_t = 20)]
    show_rejected: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = read_config(&args.config)?;
    let engine = PluginEngine::new(EngineOptions::default())?;
    let plugin = engine.load(&args.file)?;
    let limits = PluginLimits {
        memory_bytes: args.memory,
        time_budget: args.time_budget,
    };
    let mut instance = plugin.instantiate(&config, limits)?;

    let mut inputs = Vec::new();
    for spec in &args.inputs {
        let (port_name, path) = spec
            .split_once('=')
            .with_context(|| format!("--input `{spec}` should be PORT=FILE"))?;
        let Some(port) = instance.ports().input(port_name) else {
            let declared: Vec<&str> = instance
                .ports()
                .inputs
                .iter()
                .map(|p| p.name.as_str())
                .collect();
            bail!(
                "{} has no input port `{port_name}` (declared: {declared:?})",
                plugin.identity()
            );
        };
        let batch = files::read_batch(Path::new(path), port.schema.as_ref())?;
        inputs.push((port_name.to_string(), batch));
    }

    let mut context = CallContext::now(args.seed);
    if let Some(nanos) = args.clock_nanos {
        context.clock_nanos = nanos;
    }
    let started = std::time::Instant::now();
    let outputs = instance.process(&inputs, context)?;
    let elapsed = started.elapsed();

    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    let rows_in: usize = inputs.iter().map(|(_, b)| b.num_rows()).sum();
    println!(
        "{} read {rows_in} rows in {:.1} ms",
        plugin.identity(),
        elapsed.as_secs_f64() * 1e3
    );
    for (port, batch) in &outputs {
        let path = args
            .output
            .join(format!("{port}.{}", args.format.extension()));
        files::write_batch(&path, batch, args.format)?;
        println!(
            "  {port:<10} {:>8} rows -> {}",
            batch.num_rows(),
            path.display()
        );
        if port == weir_sdk::REJECTED_PORT {
            print_rejected(batch, args.show_rejected);
        }
    }
    Ok(())
}

fn read_config(config: &str) -> anyhow::Result<String> {
    let text = match config.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {path}"))?,
        None => config.to_string(),
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).context("--config is not valid JSON")?;
    if !value.is_object() {
        bail!("--config must be a JSON object");
    }
    Ok(text)
}

/// Prints `row N: reason` for the first `limit` rejected rows.
fn print_rejected(batch: &RecordBatch, limit: usize) {
    let (Some(rows), Some(reasons)) = (batch.column_by_name("row"), batch.column_by_name("reason"))
    else {
        return;
    };
    let (Some(rows), Some(reasons)) = (
        rows.as_primitive_opt::<UInt64Type>(),
        reasons.as_string_opt::<i32>(),
    ) else {
        return;
    };
    for i in 0..batch.num_rows().min(limit) {
        let reason = if reasons.is_null(i) {
            ""
        } else {
            reasons.value(i)
        };
        println!("      row {}: {reason}", rows.value(i));
    }
    if batch.num_rows() > limit {
        println!("      ... and {} more", batch.num_rows() - limit);
    }
}
