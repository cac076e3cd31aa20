//! Golden tests: for every case directory `tests/golden/<plugin>/<case>/` the
//! plugin is configured with `config.json`, fed `input/<port>.jsonl` (one file
//! per input port, e.g. a join's `in` and lookup), and each
//! output port must equal `expected/<port>.jsonl` — both inside the wasm
//! sandbox and natively through the SDK harness. `UPDATE_GOLDEN=1` rewrites the
//! expected files (review the diff before committing it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use weir_runtime::files::read_batch;
use weir_runtime::{CallContext, PluginLimits};
use weir_sdk::testing::Harness;
use weir_sdk::{Inputs, Plugin, Ports};
use weir_tests::{load, to_jsonl, workspace_dir};

type PortText = BTreeMap<String, String>;

fn cases(plugin: &str) -> Vec<PathBuf> {
    let dir = workspace_dir().join("tests/golden").join(plugin);
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no golden cases in {}", dir.display());
    cases
}

fn config(case: &Path) -> String {
    std::fs::read_to_string(case.join("config.json"))
        .unwrap_or_else(|e| panic!("{}: {e}", case.display()))
}

fn inputs(case: &Path, ports: &Ports) -> Vec<(String, arrow::array::RecordBatch)> {
    let mut inputs: Vec<_> = std::fs::read_dir(case.join("input"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .map(|path| {
            let port = path.file_stem().unwrap().to_str().unwrap().to_string();
            let schema = ports
                .input(&port)
                .unwrap_or_else(|| panic!("{}: no input port {port}", path.display()))
                .schema
                .clone();
            (port, read_batch(&path, schema.as_ref()).unwrap())
        })
        .collect();
    inputs.sort_by(|a, b| a.0.cmp(&b.0));
    inputs
}

fn run_wasm(plugin: &str, case: &Path) -> PortText {
    let mut instance = load(plugin)
        .instantiate(&config(case), PluginLimits::default())
        .unwrap();
    let inputs = inputs(case, &instance.ports().clone());
    let outputs = instance.process(&inputs, CallContext::default()).unwrap();
    outputs
        .iter()
        .map(|(port, batch)| (port.clone(), to_jsonl(batch)))
        .collect()
}

fn run_native<P: Plugin>(case: &Path) -> PortText {
    let mut harness = Harness::<P>::from_json(&config(case)).unwrap();
    let inputs = inputs(case, harness.ports())
        .into_iter()
        .fold(Inputs::new(), |acc, (port, batch)| acc.with(port, batch));
    let outputs = harness.run(inputs).unwrap();
    outputs
        .iter()
        .map(|(port, batch)| (port.to_string(), to_jsonl(batch)))
        .collect()
}

fn check(case: &Path, actual: &PortText, how: &str) {
    let expected_dir = case.join("expected");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(&expected_dir).unwrap();
        for (port, text) in actual {
            std::fs::write(expected_dir.join(format!("{port}.jsonl")), text).unwrap();
        }
    }
    let mut expected = PortText::new();
    for entry in std::fs::read_dir(&expected_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", expected_dir.display()))
    {
        let path = entry.unwrap().path();
        let port = path.file_stem().unwrap().to_str().unwrap().to_string();
        expected.insert(port, std::fs::read_to_string(&path).unwrap());
    }
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "{} ({how}): output ports differ",
        case.display()
    );
    for (port, text) in actual {
        assert_eq!(
            text,
            &expected[port],
            "{} ({how}): port `{port}` differs from expected/{port}.jsonl",
            case.display()
        );
    }
}

fn golden<P: Plugin>(plugin: &str) {
    for case in cases(plugin) {
        let wasm = run_wasm(plugin, &case);
        check(&case, &wasm, "wasm");
        check(&case, &run_native::<P>(&case), "native");
    }
}

#[test]
fn parse_json_golden() {
    golden::<parse_json::ParseJson>("parse-json");
}

#[test]
fn parse_csv_golden() {
    golden::<parse_csv::ParseCsv>("parse-csv");
}

#[test]
fn filter_paid_golden() {
    golden::<filter_paid::FilterPaid>("filter-paid");
}

#[test]
fn aggregate_golden() {
    golden::<aggregate::Aggregate>("aggregate");
}

#[test]
fn join_golden() {
    golden::<join::Join>("join");
}

#[test]
fn route_golden() {
    golden::<route::Router>("route");
}

#[test]
fn cdc_upsert_golden() {
    golden::<cdc_upsert::CdcUpsert>("cdc-upsert");
}

#[test]
fn denormalize_profile_golden() {
    golden::<denormalize_profile::Denormalize>("denormalize-profile");
}
