//! The cost of the sandbox: each standard plugin on 1M rows through the full
//! wasm path (Arrow IPC in, plugin, IPC out, output validated) against the same
//! plugin code compiled natively over the same IPC path, measured in the same
//! run and reported as a ratio. Also the fixed cost of one call and the copy
//! throughput of the boundary.
//!
//! `cargo bench -p weir-tests --bench plugin_overhead`
//! (`WEIR_BENCH_ROWS`, default 1000000; `WEIR_BENCH_BATCH`, default 16384 rows, the pipelines' default batch;
//! `WEIR_BENCH_RUNS`, default 3 — the best run counts; `WEIR_BENCH_ONLY=NAME`
//! measures that plugin alone, for profiling.)

use arrow::array::{BinaryArray, RecordBatch};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_runtime::{CallContext, PluginInstance, PluginLimits};
use weir_sdk::testing::Harness;
use weir_sdk::{Inputs, Plugin, ipc};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Realistic order events (skewed categories and customers), deterministic.
fn order_lines(rows: usize) -> Vec<Vec<u8>> {
    let categories = [
        "Kitchen", "Home", "Garden", "Toys", "Books", "Sports", "Beauty", "Tools",
    ];
    let statuses = ["PAID", "PAID", "PAID", "NEW", "SHIPPED", "CANCELLED"];
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..rows)
        .map(|i| {
            let r = next();
            let category = categories[((r % 64) as f64).sqrt() as usize % categories.len()];
            let customer = (r >> 8) % 5000 / (1 + (r >> 20) % 7);
            format!(
                r#"{{"event_id":"e-{i:08}","order_id":"o-{}","status":"{}","event_time":"2024-05-01T10:{:02}:{:02}Z","customer":{{"id":"c-{customer}","name":"Customer {customer}","country":"ES"}},"product":{{"id":"p-{}","name":"Product {}","category":"{category}"}},"quantity":{},"unit_price":{}.{:02},"currency":"EUR"}}"#,
                i / 2,
                statuses[(r >> 32) as usize % statuses.len()],
                (r >> 40) % 60,
                (r >> 46) % 60,
                (r >> 12) % 300,
                (r >> 12) % 300,
                1 + (r >> 24) % 5,
                1 + (r >> 28) % 200,
                (r >> 36) % 100
            )
            .into_bytes()
        })
        .collect()
}

fn chunks(batch: &RecordBatch, size: usize) -> Vec<RecordBatch> {
    (0..batch.num_rows())
        .step_by(size)
        .map(|at| batch.slice(at, size.min(batch.num_rows() - at)))
        .collect()
}

/// Best-of-`runs` wall time of `f`, after one warm-up.
fn best(runs: usize, mut f: impl FnMut()) -> Duration {
    f();
    (0..runs)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .min()
        .expect("at least one run")
}

fn wasm_pass(instance: &mut PluginInstance, batches: &[RecordBatch]) {
    for batch in batches {
        let outputs = instance
            .process(&[("in".to_string(), batch.clone())], CallContext::default())
            .expect("wasm process");
        std::hint::black_box(outputs);
    }
}

/// The same IPC path as the host's: encode the input, decode it trusted inside
/// the plugin, process, encode the outputs, decode them validated and check
/// them against the ports.
fn native_pass<P: Plugin>(harness: &mut Harness<P>, batches: &[RecordBatch]) {
    for batch in batches {
        let outputs = harness
            .run(Inputs::new().with("in", batch.clone()))
            .expect("native process");
        std::hint::black_box(outputs);
    }
}

struct Measured {
    name: &'static str,
    rows: usize,
    wasm: Duration,
    native: Duration,
}

fn measure<P: Plugin>(
    name: &'static str,
    config: &str,
    batches: &[RecordBatch],
    runs: usize,
) -> Measured {
    let mut instance = weir_tests::load(name)
        .instantiate(
            config,
            PluginLimits {
                memory_bytes: 1 << 30,
                ..Default::default()
            },
        )
        .unwrap();
    let mut harness = Harness::<P>::from_json(config).unwrap();
    let rows = batches.iter().map(RecordBatch::num_rows).sum();
    let native = best(runs, || native_pass(&mut harness, batches));
    let wasm = best(runs, || wasm_pass(&mut instance, batches));
    Measured {
        name,
        rows,
        wasm,
        native,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rows = env_or("WEIR_BENCH_ROWS", 1_000_000);
    let batch_rows = env_or("WEIR_BENCH_BATCH", 16_384);
    let runs = env_or("WEIR_BENCH_RUNS", 3);
    let parse_config = std::fs::read_to_string(
        weir_tests::workspace_dir().join("tests/golden/parse-json/orders/config.json"),
    )
    .unwrap();
    let filter_config = std::fs::read_to_string(
        weir_tests::workspace_dir().join("tests/golden/filter-paid/orders/config.json"),
    )
    .unwrap();

    let raw = BinaryArray::from_iter_values(order_lines(rows));
    let raw = RecordBatch::try_from_iter([("value", Arc::new(raw) as _)]).unwrap();
    let bronze = Harness::<parse_json::ParseJson>::from_json(&parse_config)
        .unwrap()
        .run(Inputs::new().with("in", raw.clone()))
        .unwrap()
        .get("out")
        .unwrap()
        .clone();

    println!(
        "weir plugin overhead: {rows} rows, batches of {batch_rows} rows, best of {runs} runs"
    );
    println!(
        "{:<12} {:>14} {:>14} {:>8} {:>8}",
        "plugin", "native rows/s", "wasm rows/s", "ratio", "target"
    );
    let only = std::env::var("WEIR_BENCH_ONLY").ok();
    let wanted = |name: &str| only.as_deref().is_none_or(|only| only == name);
    let mut results = Vec::new();
    if wanted("parse-json") {
        let batches = chunks(&raw, batch_rows);
        let measured =
            measure::<parse_json::ParseJson>("parse-json", &parse_config, &batches, runs);
        results.push((measured, 1.2));
    }
    if wanted("filter-paid") {
        let batches = chunks(&bronze, batch_rows);
        let measured =
            measure::<filter_paid::FilterPaid>("filter-paid", &filter_config, &batches, runs);
        results.push((measured, 1.5));
    }
    for (m, target) in &results {
        let rate = |d: &Duration| m.rows as f64 / d.as_secs_f64();
        let ratio = m.wasm.as_secs_f64() / m.native.as_secs_f64();
        println!(
            "{:<12} {:>14.0} {:>14.0} {:>8.2} {:>8}",
            m.name,
            rate(&m.native),
            rate(&m.wasm),
            ratio,
            format!("<= {target}")
        );
    }

    if only.is_some() {
        return;
    }

    // The fixed cost of a call: one-row batches.
    let one_row = chunks(&bronze, 1)
        .into_iter()
        .take(2000)
        .collect::<Vec<_>>();
    let tiny = measure::<filter_paid::FilterPaid>("filter-paid", &filter_config, &one_row, runs);
    let per_call = (tiny.wasm.as_secs_f64() - tiny.native.as_secs_f64()) / one_row.len() as f64;
    println!(
        "boundary cost per call (1-row filter-paid, wasm minus native): {:.1} us",
        per_call * 1e6
    );

    // Copy throughput: a wide batch that filter-paid passes through whole.
    let keep_all = r#"{"keep": ["PAID", "NEW", "SHIPPED", "CANCELLED"], "dedupe_on": null}"#;
    let wide = chunks(&bronze, batch_rows);
    let copied = measure::<filter_paid::FilterPaid>("filter-paid", keep_all, &wide, runs);
    let bytes: usize = wide
        .iter()
        .map(|b| 2 * ipc::encode_batch(b).unwrap().len())
        .sum();
    let extra = (copied.wasm.as_secs_f64() - copied.native.as_secs_f64()).max(1e-9);
    println!(
        "boundary copy: {:.1} MiB in+out per pass, {:.2} GB/s over the native path",
        bytes as f64 / (1 << 20) as f64,
        bytes as f64 / extra / 1e9
    );
}
