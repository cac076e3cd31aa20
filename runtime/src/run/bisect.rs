//! Poison-pill bisection. When a plugin traps, times out or runs out of
//! memory on a batch (after one retry on a fresh instance), the batch is
//! split in halves, and halves of failing halves, until single failing rows
//! — the poison — are found; every other row then runs in one call, so the
//! plugin still sees the epoch as one batch (aggregates and per-key logic
//! are unchanged) minus those rows. The split order is fixed, so a replay of
//! the epoch finds the same rows. The search stops as soon as more rows are
//! poison than the stage's bound allows. A failure that needs several rows
//! together (no single row fails) is not isolated: the final call fails and
//! its error stops the stage.

use crate::error::HostError;
use crate::plugin::PortBatch;
use arrow::array::{RecordBatch, UInt32Array};

/// What bisection found.
#[derive(Debug)]
pub struct Bisected {
    /// Positions (in the input batch) of the rows that make the plugin fail, ascending.
    pub poison: Vec<usize>,
    /// Positions of every other row, ascending: row `i` of the final call's
    /// input is input row `kept[i]`.
    pub kept: Vec<usize>,
    /// The final call's outputs (the input without the poison rows).
    pub outputs: Vec<PortBatch>,
    /// Plugin calls made, the final one included.
    pub calls: usize,
}

/// Why bisection gave up.
#[derive(Debug)]
pub enum Failure {
    /// More than `bound` rows are poison.
    TooMany {
        /// The most poison rows allowed.
        bound: usize,
    },
    /// A call failed in a way bisection does not isolate (an invalid
    /// output, an `internal` error, or the final call without the poison).
    Call(HostError),
}

/// One plugin call on some inputs.
pub type Call<'a> = dyn FnMut(&[PortBatch]) -> Result<Vec<PortBatch>, HostError> + 'a;

/// Whether a failed call is the kind bisection isolates: a trap, a timeout
/// or running out of memory in `process`.
pub fn is_poison(error: &HostError) -> bool {
    matches!(
        error,
        HostError::Trap { .. } | HostError::Timeout { .. } | HostError::OutOfMemory { .. }
    )
}

/// Finds the rows of `input` (fed to port `port`, beside `lookups`) that make
/// `call` fail, at most `bound` of them, then calls it once on the rest.
pub fn bisect(
    call: &mut Call<'_>,
    port: &str,
    input: &RecordBatch,
    lookups: &[PortBatch],
    bound: usize,
) -> Result<Bisected, Failure> {
    let mut calls = 0;
    let mut run = |batch: RecordBatch| {
        calls += 1;
        let mut inputs = vec![(port.to_string(), batch)];
        inputs.extend(lookups.iter().cloned());
        call(&inputs)
    };
    let mut poison = Vec::new();
    // Ranges still to try, `(start, length)`; popped left half first.
    let mut pending = vec![(0, input.num_rows())];
    while let Some((start, length)) = pending.pop() {
        match run(input.slice(start, length)) {
            Ok(_) => {}
            // An empty batch that fails has no row to blame.
            Err(error) if is_poison(&error) && length > 0 => {
                if length == 1 {
                    poison.push(start);
                    if poison.len() > bound {
                        return Err(Failure::TooMany { bound });
                    }
                } else {
                    let half = length / 2;
                    pending.push((start + half, length - half));
                    pending.push((start, half));
                }
            }
            Err(error) => return Err(Failure::Call(error)),
        }
    }
    let kept: Vec<usize> = (0..input.num_rows())
        .filter(|row| poison.binary_search(row).is_err())
        .collect();
    let indices = UInt32Array::from_iter_values(kept.iter().map(|&r| r as u32));
    let rest =
        arrow::compute::take_record_batch(input, &indices).expect("indices are rows of the batch");
    let outputs = run(rest).map_err(Failure::Call)?;
    Ok(Bisected {
        poison,
        kept,
        outputs,
        calls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::PluginIdentity;
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use std::sync::Arc;

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))]).unwrap()
    }

    fn trap() -> HostError {
        HostError::Trap {
            plugin: Arc::new(PluginIdentity {
                name: "p".into(),
                version: "1".into(),
                hash: "00".into(),
            }),
            call: "process",
            reason: "unreachable".into(),
        }
    }

    /// A plugin that traps on any batch holding a negative value and else
    /// returns the sum of its input (so the final call is seen whole).
    fn plugin(inputs: &[PortBatch]) -> Result<Vec<PortBatch>, HostError> {
        let values = inputs[0].1.column(0).as_primitive::<Int64Type>();
        if values.iter().flatten().any(|v| v < 0) {
            return Err(trap());
        }
        let sum: i64 = values.iter().flatten().sum();
        Ok(vec![("out".into(), batch(&[sum]))])
    }

    #[test]
    fn three_poison_rows_among_ten_thousand_are_found_and_the_rest_run_in_one_call() {
        let mut values: Vec<i64> = (0..10_000).collect();
        for poison in [17, 4_242, 9_999] {
            values[poison] = -1;
        }
        let input = batch(&values);
        let found = bisect(&mut plugin, "in", &input, &[], 10).unwrap();
        assert_eq!(found.poison, vec![17, 4_242, 9_999]);
        assert_eq!(found.kept.len(), 9_997);
        let expected: i64 = (0..10_000)
            .filter(|v| ![17, 4_242, 9_999].contains(v))
            .sum();
        let sum = found.outputs[0]
            .1
            .column(0)
            .as_primitive::<Int64Type>()
            .value(0);
        assert_eq!(sum, expected);
        // Roughly 2 calls per halving level per poison row, not one per row.
        assert!(found.calls < 3 * 2 * 15, "{} calls", found.calls);
        // The same search again finds the same rows (replays bisect the same way).
        let again = bisect(&mut plugin, "in", &input, &[], 10).unwrap();
        assert_eq!(again.poison, found.poison);
    }

    #[test]
    fn more_poison_than_the_bound_stops_the_search_early() {
        let values: Vec<i64> = (0..1_000)
            .map(|v| if v % 2 == 0 { -1 } else { v })
            .collect();
        let mut calls = 0;
        let mut counting = |inputs: &[PortBatch]| {
            calls += 1;
            plugin(inputs)
        };
        match bisect(&mut counting, "in", &batch(&values), &[], 5) {
            Err(Failure::TooMany { bound: 5 }) => {}
            other => panic!("expected TooMany, got {other:?}"),
        }
        assert!(calls < 100, "{calls} calls");
    }

    #[test]
    fn regression_issue_12_an_empty_batch_that_fails_is_not_bisected_forever() {
        let mut always = |_: &[PortBatch]| -> Result<Vec<PortBatch>, HostError> { Err(trap()) };
        match bisect(&mut always, "in", &batch(&[]), &[], 10) {
            Err(Failure::Call(HostError::Trap { .. })) => {}
            other => panic!("expected the call's trap, got {other:?}"),
        }
    }

    #[test]
    fn a_failure_that_needs_two_rows_together_is_not_blamed_on_either() {
        // Traps only when 1 and 2 are in the same batch.
        let mut pair = |inputs: &[PortBatch]| {
            let values = inputs[0].1.column(0).as_primitive::<Int64Type>();
            let has = |x| values.iter().flatten().any(|v| v == x);
            if has(1) && has(999) {
                Err(trap())
            } else {
                plugin(inputs)
            }
        };
        let values: Vec<i64> = (0..1_000).collect();
        match bisect(&mut pair, "in", &batch(&values), &[], 10) {
            Err(Failure::Call(HostError::Trap { .. })) => {}
            other => panic!("expected the final call's trap, got {other:?}"),
        }
    }
}
