//! `weir audit FILE [--json]`: checks from the tables alone that every
//! pipeline of a file delivered each source record exactly once (see
//! `weir_runtime::audit`). Prints the report and exits 0 when there is no
//! finding; otherwise, or when a table's log cannot be read, exits 1.

use std::path::PathBuf;
use weir_runtime::{audit, pipeline};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline file (TOML) whose tables to audit.
    file: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs the audit; fails (exit 1) when it has findings, after printing them.
pub fn run(args: Args) -> anyhow::Result<()> {
    let file = super::explain_problems(pipeline::read(&args.file))?;
    let report = audit::audit_file(&file)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    let findings = report.findings().count();
    anyhow::ensure!(
        findings == 0,
        "{}: the audit found {findings} problem(s); see the FINDING lines above",
        args.file.display()
    );
    Ok(())
}
