//! Properties over thousands of mutated messages: parse-json accounts for every
//! input row exactly once (on `out` or on `rejected`, with its raw bytes), and
//! both standard plugins give byte-identical results inside the sandbox and
//! natively.

use arrow::array::{AsArray, BinaryArray, RecordBatch};
use arrow::datatypes::UInt64Type;
use std::sync::Arc;
use weir_runtime::{CallContext, PluginLimits};
use weir_sdk::testing::Harness;
use weir_sdk::{Inputs, REJECTED_PORT};
use weir_tests::{load, to_jsonl, workspace_dir};

/// Deterministic xorshift, so a failure replays.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The example orders, each copied many times with a random mutation:
/// truncation, a flipped or inserted byte, a swapped value, or none.
fn mutated_messages(count: usize) -> Vec<Vec<u8>> {
    let text =
        std::fs::read_to_string(workspace_dir().join("examples/orders/orders.jsonl")).unwrap();
    let seeds: Vec<&[u8]> = text.lines().map(str::as_bytes).collect();
    let replacements: [&[u8]; 6] = [b"null", b"\"x\"", b"1e400", b"[]", b"{}", b"-0"];
    let mut random = Random(0x9E37_79B9_7F4A_7C15);
    (0..count)
        .map(|_| {
            let mut message = seeds[random.below(seeds.len())].to_vec();
            let at = random.below(message.len().max(1));
            match random.below(6) {
                0 => message.truncate(at),
                1 => message[at] = random.next() as u8,
                2 => {
                    let noise = b"\"{}[]:,\\ \xff\x00";
                    message.insert(at, noise[random.below(noise.len())]);
                }
                3 => {
                    if let Some(colon) = message[at..].iter().position(|&b| b == b':') {
                        let value = replacements[random.below(replacements.len())];
                        message.splice(at + colon + 1..at + colon + 1, value.iter().copied());
                    }
                }
                _ => {}
            }
            message
        })
        .collect()
}

fn run_both<P: weir_sdk::Plugin>(
    name: &str,
    config: &str,
    input: RecordBatch,
) -> Vec<(String, RecordBatch)> {
    let mut sandboxed = load(name)
        .instantiate(config, PluginLimits::default())
        .unwrap();
    let wasm = sandboxed
        .process(&[("in".into(), input.clone())], CallContext::default())
        .unwrap();
    let native = Harness::<P>::from_json(config)
        .unwrap()
        .run(Inputs::new().with("in", input))
        .unwrap();
    assert_eq!(
        wasm.len(),
        native.iter().count(),
        "{name}: output ports differ"
    );
    for (port, batch) in &wasm {
        let twin = native
            .get(port)
            .unwrap_or_else(|| panic!("{name}: native has no port {port}"));
        assert_eq!(
            to_jsonl(batch),
            to_jsonl(twin),
            "{name}: port {port} differs between wasm and native"
        );
    }
    wasm
}

#[test]
fn every_mutated_message_is_accounted_for_and_sandbox_equals_native() {
    let messages = mutated_messages(5000);
    let values = BinaryArray::from_iter_values(messages.iter());
    let raw = RecordBatch::try_from_iter([("value", Arc::new(values) as _)]).unwrap();
    let parse_config =
        std::fs::read_to_string(workspace_dir().join("examples/orders/bronze.json")).unwrap();
    let outputs = run_both::<parse_json::ParseJson>("parse-json", &parse_config, raw);

    let out = &outputs.iter().find(|(p, _)| p == "out").unwrap().1;
    let rejected = &outputs.iter().find(|(p, _)| p == REJECTED_PORT).unwrap().1;
    assert_eq!(
        out.num_rows() + rejected.num_rows(),
        messages.len(),
        "every row lands on exactly one port"
    );
    assert!(
        out.num_rows() > 500 && rejected.num_rows() > 500,
        "the corpus mixes good and bad rows"
    );
    let rows = rejected.column(0).as_primitive::<UInt64Type>();
    let raws = rejected.column(1).as_binary::<i32>();
    let reasons = rejected.column(3).as_string::<i32>();
    for i in 0..rejected.num_rows() {
        let row = rows.value(i) as usize;
        assert_eq!(
            raws.value(i),
            messages[row].as_slice(),
            "rejected row {row} keeps its raw bytes"
        );
        assert!(!reasons.value(i).is_empty());
    }
    assert!(
        rows.values().windows(2).all(|w| w[0] < w[1]),
        "rejected rows are reported once each, in order"
    );

    let silver_config =
        std::fs::read_to_string(workspace_dir().join("examples/orders/silver.json")).unwrap();
    run_both::<filter_paid::FilterPaid>("filter-paid", &silver_config, out.clone());
}
