//! `weir deploy FILE [--name N]`, `weir deploy --list`, `weir deploy --stop N`:
//! pipeline deployment through a running `weir run`'s admin API, so a CI job
//! can deploy without shell access. A file with problems gets every one of
//! them back and nothing starts (exit 1).

use super::admin_client::{AdminArgs, encode};
use anyhow::bail;
use reqwest::Method;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline file to deploy (relative paths in it resolve on the
    /// server, against the directory of the file `weir run` was started with).
    #[arg(required_unless_present_any = ["list", "stop"])]
    file: Option<PathBuf>,
    /// The deployment's name (default: the file's stem).
    #[arg(long)]
    name: Option<String>,
    /// List the deployments instead.
    #[arg(long, conflicts_with_all = ["file", "stop"])]
    list: bool,
    /// Stop this deployment's pipelines (after their current epoch) instead.
    #[arg(long, conflicts_with = "file")]
    stop: Option<String>,
    #[command(flatten)]
    admin: AdminArgs,
}

/// The `pipelines` list of an answer.
fn pipelines(answer: &serde_json::Value) -> Vec<String> {
    answer["pipelines"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.list {
        let answer = args.admin.request(Method::GET, "/deployments", None)?;
        if !args.admin.printed_json(&answer) {
            for d in answer.body["deployments"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                println!(
                    "{} ({}, deployed by {}): {}{}",
                    d["name"].as_str().unwrap_or_default(),
                    pipelines(&d).join(", "),
                    d["deployed_by"].as_str().unwrap_or_default(),
                    d["state"].as_str().unwrap_or_default(),
                    d["error"]
                        .as_str()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                );
            }
        }
        return Ok(());
    }
    if let Some(name) = &args.stop {
        let answer = args.admin.request(
            Method::DELETE,
            &format!("/deployments/{}", encode(name)),
            None,
        )?;
        if !args.admin.printed_json(&answer) {
            match answer.status {
                200 | 202 => println!(
                    "deployment {name}: {}",
                    answer.body["state"].as_str().unwrap_or_default()
                ),
                _ => bail!("{}", answer.error()),
            }
        }
        return Ok(());
    }
    let file = args
        .file
        .expect("clap requires FILE without --list or --stop");
    let text =
        std::fs::read(&file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let name = args.name.clone().unwrap_or_else(|| {
        file.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "pipelines".into())
    });
    let answer = args.admin.request(
        Method::POST,
        &format!("/deployments?name={}", encode(&name)),
        Some(text),
    )?;
    if args.admin.printed_json(&answer) {
        if answer.status != 201 {
            bail!("{}", answer.error());
        }
        return Ok(());
    }
    if answer.status != 201 {
        for problem in answer.problems() {
            eprintln!("  - {problem}");
        }
        bail!("{}", answer.error());
    }
    println!(
        "deployed {name}: {} running",
        pipelines(&answer.body).join(", ")
    );
    Ok(())
}
