//! The `weir` binary without any plugin: help on every command, the version,
//! and one-line errors for bad arguments and missing files. (Being an
//! integration test of this package also makes `cargo test --workspace` build
//! the binary, which the plugin CLI tests in `tests/` drive.)

use std::process::{Command, Output};

fn weir(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .output()
        .expect("weir runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["plugin", "--help"],
        vec!["plugin", "inspect", "--help"],
        vec!["plugin", "run", "--help"],
        vec!["plugin", "new", "--help"],
        vec!["plugin", "build", "--help"],
    ] {
        let output = weir(&args);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        assert!(
            stdout(&output).contains("Usage:"),
            "{args:?}: {}",
            stdout(&output)
        );
    }
}

#[test]
fn prints_its_version() {
    let output = weir(&["--version"]);
    assert!(output.status.success());
    assert_eq!(
        stdout(&output).trim(),
        format!("weir {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn failures_exit_non_zero_with_one_error_line() {
    for (args, expected) in [
        (
            vec!["plugin", "inspect", "/nonexistent/p.wasm"],
            "cannot read plugin /nonexistent/p.wasm",
        ),
        (
            vec!["plugin", "build", "/nonexistent/crate"],
            "/nonexistent/crate has no Cargo.toml",
        ),
        (vec!["plugin", "new", "Bad_Name"], "not a valid plugin name"),
    ] {
        let output = weir(&args);
        assert!(!output.status.success(), "{args:?} should fail");
        let errors: Vec<String> = stderr(&output)
            .lines()
            .filter(|l| l.starts_with("error:"))
            .map(str::to_string)
            .collect();
        assert_eq!(errors.len(), 1, "{args:?}: {}", stderr(&output));
        assert!(errors[0].contains(expected), "{args:?}: {}", errors[0]);
    }
    let output = weir(&["plugin", "frobnicate"]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "clap reports usage errors with exit code 2"
    );
}
