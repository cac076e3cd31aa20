//! The `weir` command line on real plugins, run as a user would: inspect, run
//! on local files (with rejected reasons printed), one-line
//! errors with a non-zero exit, and the full scaffold → test → build → run loop.

use std::path::Path;
use std::process::{Command, Output};
use weir_tests::{wasm_path, weir_binary, workspace_dir};

fn weir(args: &[&str]) -> Output {
    Command::new(weir_binary())
        .args(args)
        .env("WEIR_CACHE_DIR", cache_dir())
        .output()
        .expect("weir runs")
}

fn cache_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("weir-cli-test-cache")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "weir failed:\nstdout: {}\nstderr: {}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// A failing command exits non-zero and ends with exactly one `error:` line.
fn assert_fails_with(output: &Output, expected: &str) {
    assert!(
        !output.status.success(),
        "weir should have failed: {}",
        text(&output.stdout)
    );
    let stderr = text(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "expected one error line:\n{stderr}");
    assert!(
        errors[0].contains(expected),
        "{:?} should mention {expected:?}",
        errors[0]
    );
}

/// True when stdout has the line `PORT  N rows -> ...` that `weir plugin run` prints.
fn reports_rows(stdout: &str, port: &str, rows: usize) -> bool {
    let rows = rows.to_string();
    stdout.lines().any(|line| {
        line.split_whitespace()
            .take(3)
            .eq([port, rows.as_str(), "rows"])
    })
}

fn golden(path: &str) -> String {
    workspace_dir()
        .join("tests/golden")
        .join(path)
        .display()
        .to_string()
}

#[test]
fn inspect_prints_the_manifest() {
    let wasm = wasm_path("parse-json").display().to_string();
    let stdout = assert_ok(&weir(&["plugin", "inspect", &wasm]));
    assert!(stdout.starts_with("parse-json 0.1.0 (sha256 "), "{stdout}");
    assert!(
        stdout.contains("rejected")
            && stdout.contains("row: UInt64, raw: Binary?, field: Utf8?, reason: Utf8"),
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&assert_ok(&weir(&["plugin", "inspect", &wasm, "--json"]))).unwrap();
    assert_eq!(json["name"], "parse-json");
    assert_eq!(json["outputs"][1]["schema"][3]["name"], "reason");
    assert_eq!(json["config_schema"]["required"][0], "fields");
}

#[test]
fn run_writes_every_port_and_prints_rejected_reasons() {
    let out = tempfile::tempdir().unwrap();
    let config = format!("@{}", golden("parse-json/orders/config.json"));
    let input = format!("in={}", golden("parse-json/orders/input/in.jsonl"));
    let wasm = wasm_path("parse-json").display().to_string();
    let out_dir = out.path().display().to_string();
    let stdout = assert_ok(&weir(&[
        "plugin", "run", &wasm, "--config", &config, "--input", &input, "--output", &out_dir,
    ]));
    assert!(stdout.contains("read 14 rows"), "{stdout}");
    assert!(reports_rows(&stdout, "out", 4), "{stdout}");
    assert!(reports_rows(&stdout, "rejected", 10), "{stdout}");
    assert!(stdout.contains("row 2: invalid JSON"), "{stdout}");
    assert!(
        stdout.contains("row 3: required field `event_id` is missing"),
        "{stdout}"
    );
    let written = std::fs::read_to_string(out.path().join("out.jsonl")).unwrap();
    assert_eq!(
        written,
        std::fs::read_to_string(golden("parse-json/orders/expected/out.jsonl")).unwrap()
    );
    assert!(out.path().join("rejected.jsonl").exists());

    let stdout = assert_ok(&weir(&[
        "plugin", "run", &wasm, "--config", &config, "--input", &input, "--output", &out_dir,
        "--format", "parquet",
    ]));
    assert!(stdout.contains("out.parquet"), "{stdout}");
    assert!(out.path().join("rejected.parquet").exists());
}

#[test]
fn run_reports_bad_config_by_key_on_one_line() {
    let wasm = wasm_path("parse-json").display().to_string();
    let input = format!("in={}", golden("parse-json/orders/input/in.jsonl"));
    let output = weir(&[
        "plugin",
        "run",
        &wasm,
        "--config",
        r#"{"fields":[{"name":"a","type":"strin"}]}"#,
        "--input",
        &input,
    ]);
    assert_fails_with(&output, "bad-config at config key `fields[0].type`");
    let output = weir(&[
        "plugin",
        "run",
        &wasm,
        "--config",
        "{not json",
        "--input",
        &input,
    ]);
    assert_fails_with(&output, "--config is not valid JSON");
}

#[test]
fn run_names_missing_files_and_ports() {
    let wasm = wasm_path("filter-paid").display().to_string();
    assert_fails_with(
        &weir(&[
            "plugin",
            "run",
            &wasm,
            "--input",
            "in=/nonexistent/orders.jsonl",
        ]),
        "/nonexistent/orders.jsonl",
    );
    assert_fails_with(
        &weir(&["plugin", "run", &wasm, "--input", "orders=x.jsonl"]),
        "no input port `orders`",
    );
    assert_fails_with(
        &weir(&["plugin", "run", &wasm, "--input", "in"]),
        "should be PORT=FILE",
    );
    assert_fails_with(
        &weir(&["plugin", "inspect", "/nonexistent/p.wasm"]),
        "cannot read plugin /nonexistent/p.wasm",
    );
    assert_fails_with(
        &weir(&[
            "plugin",
            "run",
            &wasm,
            "--memory",
            "lots",
            "--input",
            "in=x.jsonl",
        ]),
        "lots",
    );
}

#[test]
fn plugin_logs_and_stdout_reach_the_host_log_tagged_with_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "{\"action\":\"log\",\"arg\":\"hi there\"}\n").unwrap();
    let wasm = wasm_path("misbehave").display().to_string();
    let out_dir = dir.path().join("out").display().to_string();
    let output = weir(&[
        "plugin",
        "run",
        &wasm,
        "--input",
        &format!("in={}", input.display()),
        "--output",
        &out_dir,
    ]);
    assert_ok(&output);
    let stderr = text(&output.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("hello from misbehave: hi there"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.contains("plugin=\"misbehave\""), "{line}");
    assert!(
        !stderr.contains('\u{1b}'),
        "no colour codes when stderr is not a terminal: {stderr}"
    );
    assert!(stderr.contains("stdout line from misbehave"), "{stderr}");
}

#[test]
fn a_trapping_plugin_fails_the_command_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "{\"action\":\"spin\"}\n").unwrap();
    let wasm = wasm_path("misbehave").display().to_string();
    let output = weir(&[
        "plugin",
        "run",
        &wasm,
        "--time-budget",
        "200ms",
        "--input",
        &format!("in={}", input.display()),
    ]);
    assert_fails_with(&output, "plugin misbehave@0.1.0");
    assert!(text(&output.stderr).contains("exceeded its time budget of 200ms"));
}

/// The five-minute path from README: scaffold, unit-test natively, build to
/// wasm, run on a JSONL file and see the rejected rows with reasons.
#[test]
fn scaffolded_plugin_tests_builds_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = dir.path().join("keep-paid");
    let crate_arg = crate_dir.display().to_string();
    assert_ok(&weir(&["plugin", "new", "keep-paid", "--path", &crate_arg]));
    assert_fails_with(
        &weir(&["plugin", "new", "keep-paid", "--path", &crate_arg]),
        "already exists",
    );
    assert_fails_with(
        &weir(&["plugin", "new", "Keep_Paid"]),
        "not a valid plugin name",
    );

    // Reuse one target directory across runs so only the first run compiles Arrow.
    let shared_target = weir_binary().parent().unwrap().join("scaffold-target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let test = Command::new(&cargo)
        .args(["test", "--quiet"])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", shared_target.join("native"))
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    assert_ok(&test);

    let wasm_target = shared_target.join("wasm").display().to_string();
    let built = assert_ok(&weir(&[
        "plugin",
        "build",
        &crate_arg,
        "--target-dir",
        &wasm_target,
    ]));
    let wasm = built.split_whitespace().next().unwrap().to_string();
    assert!(
        wasm.ends_with("keep_paid.wasm") && Path::new(&wasm).exists(),
        "{built}"
    );

    let input = dir.path().join("orders.jsonl");
    std::fs::write(
        &input,
        "{\"status\":\"PAID\",\"id\":1}\n{\"status\":\"NEW\",\"id\":2}\n",
    )
    .unwrap();
    let out_dir = dir.path().join("out").display().to_string();
    let stdout = assert_ok(&weir(&[
        "plugin",
        "run",
        &wasm,
        "--config",
        r#"{"column":"status","value":"PAID"}"#,
        "--input",
        &format!("in={}", input.display()),
        "--output",
        &out_dir,
    ]));
    assert!(reports_rows(&stdout, "out", 1), "{stdout}");
    assert!(stdout.contains("row 1: `status` is NEW"), "{stdout}");
}
