//! `weir status`, `weir swap`, `weir rollback`, `weir shadow` and
//! `weir history`: operators' commands against a running `weir run`'s admin
//! API. Human output by default, the API's JSON with `--json`; a refused
//! change prints every reason and exits 1.

use super::admin_client::{AdminArgs, Answer, encode};
use anyhow::bail;
use reqwest::Method;
use serde_json::Value;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    admin: AdminArgs,
}

#[derive(Debug, clap::Args)]
pub struct SwapArgs {
    /// The pipeline.
    #[arg(long)]
    pipeline: String,
    /// The stage whose plugin is replaced.
    #[arg(long)]
    stage: String,
    /// The new version's component (.wasm).
    file: PathBuf,
    /// Run the new version beside the live one for this many epochs and
    /// compare outputs first (nothing of it is written); it takes over after.
    #[arg(long)]
    shadow: Option<u64>,
    /// With --shadow: only compare, never take over.
    #[arg(long, requires = "shadow")]
    no_cut_over: bool,
    /// With --shadow: columns pairing live and shadow rows (default: the stage's dedupe key).
    #[arg(long, value_delimiter = ',', requires = "shadow")]
    key: Vec<String>,
    /// How long to wait for the epoch boundary where the swap happens.
    #[arg(long, default_value = "60s")]
    wait: String,
    #[command(flatten)]
    admin: AdminArgs,
}

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// The pipeline.
    #[arg(long)]
    pipeline: String,
    /// The stage returned to its previous version.
    #[arg(long)]
    stage: String,
    #[command(flatten)]
    admin: AdminArgs,
}

#[derive(Debug, clap::Args)]
pub struct StageArgs {
    /// The pipeline.
    #[arg(long)]
    pipeline: String,
    /// The stage (history: every stage when left out).
    #[arg(long)]
    stage: Option<String>,
    #[command(flatten)]
    admin: AdminArgs,
}

fn text(value: &Value, key: &str) -> String {
    match value.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

pub fn status(args: StatusArgs) -> anyhow::Result<()> {
    let answer = args.admin.request(Method::GET, "/status", None)?;
    if answer.status != 200 {
        bail!("{}", answer.error());
    }
    if args.admin.printed_json(&answer) {
        return Ok(());
    }
    let pipelines = answer.body["pipelines"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if pipelines.is_empty() {
        println!("no pipeline runs");
    }
    for p in pipelines {
        let lag: Vec<String> = p["lag"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
            .unwrap_or_default();
        println!(
            "pipeline {} ({}): {}, last epoch {}{}{}",
            text(&p, "name"),
            text(&p, "deployment"),
            text(&p, "state"),
            text(&p, "last_epoch"),
            if lag.is_empty() {
                String::new()
            } else {
                format!(", lag {}", lag.join(" "))
            },
            match text(&p, "error") {
                e if e.is_empty() => String::new(),
                e => format!("\n  error: {e}"),
            }
        );
        for s in p["stages"].as_array().cloned().unwrap_or_default() {
            let hash = text(&s, "hash");
            let mut line = format!(
                "  stage {}: {}@{} ({})",
                text(&s, "name"),
                text(&s, "plugin"),
                text(&s, "version"),
                &hash[..hash.len().min(12)]
            );
            if s["swapped"].as_bool() == Some(true) {
                line.push_str(&format!(
                    ", swapped in (the file names {})",
                    text(&s, "file_version")
                ));
            }
            if let Some(left) = s["probation_epochs_left"].as_u64().filter(|&n| n > 0) {
                line.push_str(&format!(", on probation for {left} more epoch(s)"));
            }
            if let Some(shadow) = s.get("shadow").filter(|v| !v.is_null()) {
                line.push_str(&format!(
                    ", shadow {} {}: {}/{} epochs compared, {} differing rows",
                    text(shadow, "candidate"),
                    text(shadow, "state"),
                    text(shadow, "compared"),
                    text(shadow, "epochs"),
                    text(shadow, "differing_rows")
                ));
            }
            println!("{line}");
        }
    }
    Ok(())
}

/// Prints the outcome of a swap or rollback; fails on a refusal.
fn report_change(admin: &AdminArgs, answer: &Answer, pipeline: &str) -> anyhow::Result<()> {
    if admin.printed_json(answer) {
        return match answer.status {
            200 | 202 => Ok(()),
            _ => bail!("{}", answer.error()),
        };
    }
    let body = &answer.body;
    match (answer.status, text(body, "result").as_str()) {
        (200, _) => println!(
            "stage {} runs {} from epoch {} (was {})",
            text(body, "stage"),
            text(body, "to"),
            text(body, "epoch"),
            text(body, "from")
        ),
        (202, "shadowing") => println!(
            "stage {}: shadowing {} from epoch {} beside {}; see `weir shadow --pipeline {pipeline} --stage {}`",
            text(body, "stage"),
            text(body, "to"),
            text(body, "epoch"),
            text(body, "from"),
            text(body, "stage")
        ),
        (202, _) => println!("{}", text(body, "message")),
        _ => {
            let problems = answer.problems();
            for problem in &problems {
                eprintln!("  - {problem}");
            }
            bail!("{}", answer.error());
        }
    }
    for note in body["notes"].as_array().cloned().unwrap_or_default() {
        println!("  note: {}", note.as_str().unwrap_or_default());
    }
    Ok(())
}

pub fn swap(args: SwapArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.file.display()))?;
    let mut path = format!(
        "/pipelines/{}/stages/{}/swap?wait={}&file={}",
        encode(&args.pipeline),
        encode(&args.stage),
        encode(&args.wait),
        encode(&args.file.display().to_string())
    );
    if let Some(epochs) = args.shadow {
        path.push_str(&format!("&shadow={epochs}"));
        if args.no_cut_over {
            path.push_str("&cut_over=false");
        }
        if !args.key.is_empty() {
            path.push_str(&format!("&key={}", encode(&args.key.join(","))));
        }
    }
    let answer = args.admin.request(Method::POST, &path, Some(bytes))?;
    report_change(&args.admin, &answer, &args.pipeline)
}

pub fn rollback(args: RollbackArgs) -> anyhow::Result<()> {
    let path = format!(
        "/pipelines/{}/stages/{}/rollback",
        encode(&args.pipeline),
        encode(&args.stage)
    );
    let answer = args.admin.request(Method::POST, &path, None)?;
    report_change(&args.admin, &answer, &args.pipeline)
}

pub fn shadow(args: StageArgs) -> anyhow::Result<()> {
    let Some(stage) = &args.stage else {
        bail!("name the stage: --stage S");
    };
    let path = format!(
        "/pipelines/{}/stages/{}/shadow",
        encode(&args.pipeline),
        encode(stage)
    );
    let answer = args.admin.request(Method::GET, &path, None)?;
    if answer.status != 200 {
        bail!("{}", answer.error());
    }
    if args.admin.printed_json(&answer) {
        return Ok(());
    }
    let r = &answer.body;
    println!(
        "stage {}: candidate {} beside {}: {}, {}/{} epochs compared{}",
        text(r, "stage"),
        text(r, "candidate"),
        text(r, "live"),
        text(r, "state"),
        text(r, "compared"),
        text(r, "epochs"),
        match text(r, "failure") {
            f if f.is_empty() => String::new(),
            f => format!("; failed: {f}"),
        }
    );
    for (port, c) in r["ports"].as_object().cloned().unwrap_or_default() {
        println!(
            "  port {port}: live {} rows, shadow {} rows, {}",
            text(&c, "live_rows"),
            text(&c, "shadow_rows"),
            if c["same_schema"].as_bool() == Some(false) {
                format!("the shadow's schema differs: {}", text(&c, "shadow_schema"))
            } else {
                "same schema".to_string()
            }
        );
    }
    println!("  {} differing rows", text(r, "differing_rows"));
    for sample in r["samples"].as_array().cloned().unwrap_or_default() {
        println!(
            "    epoch {} {}{}: live {} | shadow {}",
            text(&sample, "epoch"),
            text(&sample, "port"),
            match text(&sample, "key") {
                k if k.is_empty() => String::new(),
                k => format!(" key {k}"),
            },
            match text(&sample, "live") {
                l if l.is_empty() => "-".to_string(),
                l => l,
            },
            match text(&sample, "shadow") {
                s if s.is_empty() => "-".to_string(),
                s => s,
            }
        );
    }
    Ok(())
}

pub fn history(args: StageArgs) -> anyhow::Result<()> {
    let path = match &args.stage {
        Some(stage) => format!(
            "/pipelines/{}/stages/{}/history",
            encode(&args.pipeline),
            encode(stage)
        ),
        None => format!("/pipelines/{}/history", encode(&args.pipeline)),
    };
    let answer = args.admin.request(Method::GET, &path, None)?;
    if answer.status != 200 {
        bail!("{}", answer.error());
    }
    if args.admin.printed_json(&answer) {
        return Ok(());
    }
    let describe = |pin: &Value| {
        if pin.is_null() {
            return String::new();
        }
        let hash = text(pin, "hash");
        format!(
            "{}@{} ({})",
            text(pin, "plugin"),
            text(pin, "version"),
            &hash[..hash.len().min(12)]
        )
    };
    for e in answer.body["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let mut line = format!(
            "{} stage {} {} by {}",
            text(&e, "at"),
            text(&e, "stage"),
            text(&e, "action"),
            text(&e, "by")
        );
        if !e["epoch"].is_null() {
            line.push_str(&format!(" at epoch {}", text(&e, "epoch")));
        }
        if !e["from"].is_null() || !e["to"].is_null() {
            line.push_str(&format!(
                ": {} -> {}",
                describe(&e["from"]),
                describe(&e["to"])
            ));
        }
        println!("{line}");
        for reason in e["reasons"].as_array().cloned().unwrap_or_default() {
            println!("    {}", reason.as_str().unwrap_or_default());
        }
    }
    Ok(())
}
