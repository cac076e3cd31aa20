//! Command-line interface: the command tree and dispatch to one module per command.

mod admin_client;
pub mod allocator;
mod audit;
mod bench;
mod bench_files;
mod bench_profiles;
mod bench_swap;
mod demo;
mod demo_profiles;
mod demo_serve;
mod deploy;
mod operate;
mod pipeline_run;
mod pipeline_validate;
mod plugin_build;
mod plugin_inspect;
mod plugin_new;
mod plugin_run;
mod quarantine;

use clap::{Parser, Subcommand};

/// Weir runs streaming data pipelines whose per-layer logic is sandboxed
/// WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about, propagate_version = true)]
pub struct Cli {
    /// Log debug detail (or set WEIR_LOG, e.g. WEIR_LOG=weir=trace).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the pipelines of a pipeline file (until SIGINT/SIGTERM, or --once).
    Run(pipeline_run::Args),
    /// Check a pipeline file (plugins, configs, schemas, tables) without running it.
    Validate(pipeline_validate::Args),
    /// Prove exactly-once from the tables: gaps, overlaps, repeated epochs, rows that do not add up.
    Audit(audit::Args),
    /// Move a pipeline past a poison epoch: its input goes to the dead-letter table, the decision into every commit.
    Quarantine(quarantine::Args),
    /// Show what a running `weir run` runs: pipelines, stage versions, epochs, lag (admin API).
    Status(operate::StatusArgs),
    /// Replace a running stage's plugin without a restart: checked first, optionally shadowed, cut over at an epoch boundary.
    Swap(operate::SwapArgs),
    /// Return a running stage to the version it ran before its last swap.
    Rollback(operate::RollbackArgs),
    /// Show a stage's shadow report: live and candidate outputs compared.
    Shadow(operate::StageArgs),
    /// Show the swaps, rollbacks and refusals of a pipeline's stages.
    History(operate::StageArgs),
    /// Deploy a pipeline file to a running `weir run` (validated first; every problem returned), list or stop deployments.
    Deploy(deploy::Args),
    /// Work with plugins: inspect, run on local files, scaffold, build.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Produce demo data and run a scenario end to end (no Kafka needed).
    Demo(demo::Args),
    /// Measure a scenario end to end: against the broker's raw consume rate, or (--source files) against Spark.
    Bench(bench::Args),
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Print a plugin's manifest: name, version, ports and config schema.
    Inspect(plugin_inspect::Args),
    /// Run a plugin on local files (.jsonl, .arrow, .parquet) and write each output port.
    Run(plugin_run::Args),
    /// Scaffold a new plugin crate that builds and passes its test out of the box.
    New(plugin_new::Args),
    /// Build a plugin crate into a WebAssembly component (wasm32-wasip2, release).
    Build(plugin_build::Args),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => pipeline_run::run(args),
        Command::Validate(args) => pipeline_validate::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Quarantine(args) => quarantine::run(args),
        Command::Status(args) => operate::status(args),
        Command::Swap(args) => operate::swap(args),
        Command::Rollback(args) => operate::rollback(args),
        Command::Shadow(args) => operate::shadow(args),
        Command::History(args) => operate::history(args),
        Command::Deploy(args) => deploy::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Plugin(PluginCommand::Inspect(args)) => plugin_inspect::run(args),
        Command::Plugin(PluginCommand::Run(args)) => plugin_run::run(args),
        Command::Plugin(PluginCommand::New(args)) => plugin_new::run(args),
        Command::Plugin(PluginCommand::Build(args)) => plugin_build::run(args),
    }
}

/// An error and its causes on one line, each cause once: Weir's errors
/// already quote their source in their message, so a cause whose text is
/// already there is not repeated (`cannot read x: No such file` rather than
/// `cannot read x: No such file: No such file`).
pub fn one_line(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text.replace('\n', " ")
}

/// The multi-threaded runtime pipelines run on.
fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Passes a loaded or validated file through; for an invalid one prints every
/// problem, one per line, to stderr and fails with a one-line summary.
fn explain_problems<T>(
    validated: Result<T, weir_runtime::pipeline::PipelineFileError>,
) -> anyhow::Result<T> {
    match validated {
        Ok(prepared) => Ok(prepared),
        Err(weir_runtime::pipeline::PipelineFileError::Invalid { path, problems }) => {
            for problem in &problems {
                eprintln!("  - {problem}");
            }
            anyhow::bail!(
                "{}: {} problem(s); nothing was started",
                path.display(),
                problems.len()
            )
        }
        Err(other) => Err(other.into()),
    }
}

/// Describes a schema (or "any") in one line, for human output.
fn describe_schema(schema: Option<&arrow::datatypes::SchemaRef>) -> String {
    match schema {
        None => "any".to_string(),
        Some(schema) => schema
            .fields()
            .iter()
            .map(|f| {
                format!(
                    "{}: {}{}",
                    f.name(),
                    f.data_type(),
                    if f.is_nullable() { "?" } else { "" }
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read x: {source}")]
    struct Quoting {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_quoted_is_not_repeated() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let quoted = anyhow::Error::new(Quoting { source: io() });
        assert_eq!(one_line(&quoted), "cannot read x: No such file");
        let wrapped = anyhow::Error::new(io()).context("opening the cache\nfor writing");
        assert_eq!(
            one_line(&wrapped),
            "opening the cache for writing: No such file"
        );
    }
}
