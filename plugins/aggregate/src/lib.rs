//! `aggregate` (gold): group-by aggregates of one batch — `sum`, `count`,
//! `min`, `max` of a measure expression such as `quantity * unit_price`,
//! optionally per tumbling event-time window. Each batch yields partial
//! aggregates per group, which a merge sink adds into the gold table
//! (`t.revenue + s.revenue`), so gold is maintained without recomputing.

mod expr;
mod group;

use expr::{Expr, Values};
use serde::Deserialize;
use std::sync::Arc;
use weir_sdk::prelude::*;

/// The plugin's config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Grouping columns (dotted paths allowed; output names use `_` for `.`).
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Optional tumbling window over an event-time column.
    #[serde(default)]
    pub window: Option<WindowConfig>,
    /// The aggregates, in output order after the group columns.
    pub aggregates: Vec<AggregateConfig>,
}

/// `{"column": "event_time", "size": "1h"}`: adds a `window_start` column.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// A timestamp column.
    pub column: String,
    /// `30s`, `15m`, `1h`, `1d`.
    pub size: String,
}

/// One output aggregate.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateConfig {
    /// Output column name.
    pub name: String,
    /// `sum`, `count`, `min` or `max`.
    pub function: Function,
    /// The measure expression (required except for `count`, which then counts rows).
    #[serde(default)]
    pub of: Option<String>,
}

/// Aggregate functions.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Function {
    /// Sum of non-null values (null if there are none).
    Sum,
    /// Rows, or non-null values of `of`.
    Count,
    /// Smallest non-null value.
    Min,
    /// Largest non-null value.
    Max,
}

/// The configured aggregator.
pub struct Aggregate {
    group_by: Vec<String>,
    window: Option<(String, i64)>,
    measures: Vec<(String, Function, Option<Expr>)>,
}

fn parse_window_size(text: &str) -> Option<i64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    (number > 0).then_some(number * seconds)
}

impl Plugin for Aggregate {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest {
            name: "aggregate".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "Group-by sum/count/min/max of measure expressions per batch (optionally per \
                          tumbling window), for incremental merges into gold tables."
                    .into(),
            inputs: vec![Port::any("in", "Rows to aggregate (e.g. silver orders).")],
            outputs: vec![
                Port::any(
                    "out",
                    "One row per group: group columns, then the aggregates.",
                ),
                rejected_port(),
            ],
            config_schema: json!({"type": "object", "required": ["aggregates"], "additionalProperties": false,
                "properties": {
                    "group_by": {"type": "array", "items": {"type": "string"}},
                    "window": {"type": "object", "required": ["column", "size"],
                        "properties": {"column": {"type": "string"}, "size": {"type": "string"}}},
                    "aggregates": {"type": "array", "items": {"type": "object", "required": ["name", "function"],
                        "properties": {"name": {"type": "string"},
                            "function": {"enum": ["sum", "count", "min", "max"]},
                            "of": {"type": "string"}}}}}}),
        }
    }

    fn configure(config: Config) -> Result<Self, PluginError> {
        if config.aggregates.is_empty() {
            return Err(PluginError::bad_config(
                "aggregates",
                "needs at least one aggregate",
            ));
        }
        let mut measures = Vec::new();
        for (i, aggregate) in config.aggregates.iter().enumerate() {
            let expr = match (&aggregate.of, aggregate.function) {
                (Some(text), _) => Some(
                    expr::parse(text)
                        .map_err(|m| PluginError::bad_config(format!("aggregates[{i}].of"), m))?,
                ),
                (None, Function::Count) => None,
                (None, _) => {
                    return Err(PluginError::bad_config(
                        format!("aggregates[{i}].of"),
                        "sum, min and max need a measure expression in `of`",
                    ));
                }
            };
            measures.push((aggregate.name.clone(), aggregate.function, expr));
        }
        let window = match &config.window {
            Some(w) => {
                let seconds = parse_window_size(&w.size).ok_or_else(|| {
                    PluginError::bad_config(
                        "window.size",
                        format!("`{}` is not a size like 30s, 15m, 1h or 1d", w.size),
                    )
                })?;
                Some((w.column.clone(), seconds))
            }
            None => None,
        };
        Ok(Aggregate {
            group_by: config.group_by,
            window,
            measures,
        })
    }

    fn process(&mut self, inputs: &Inputs) -> Result<Outputs, PluginError> {
        let input = inputs.get("in")?;
        let mut rejects = Rejects::new();
        let mut key_columns: Vec<(String, ArrayRef)> = Vec::new();
        let mut usable = vec![true; input.num_rows()];
        if let Some((column, seconds)) = &self.window {
            let starts = window_starts(&input, column, *seconds)?;
            for (row, ok) in usable.iter_mut().enumerate() {
                if starts.is_null(row) {
                    *ok = false;
                    rejects.push(row, None, Some(column), "the window's event time is null");
                }
            }
            key_columns.push(("window_start".into(), starts));
        }
        for path in &self.group_by {
            let column = if path.contains('.') {
                input.column_path(path)?
            } else {
                input.column_any(path)?.clone()
            };
            key_columns.push((path.replace('.', "_"), column));
        }
        let groups = group::assign(&key_columns, &usable)?;
        let mut fields = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        for (name, column) in &key_columns {
            let taken =
                weir_sdk::arrow_select::take::take(column.as_ref(), &groups.first_rows, None)?;
            fields.push(Field::new(name.as_str(), taken.data_type().clone(), true));
            columns.push(taken);
        }
        for (name, function, expr) in &self.measures {
            let values = match expr {
                Some(expr) => Some(expr.evaluate(&input)?),
                None => None,
            };
            let column = aggregate(*function, values.as_ref(), &groups, &usable).map_err(
                |overflow| {
                    let group = group::describe(&key_columns, overflow.first_row_of_group);
                    let mut error = PluginError::bad_input(
                        "in",
                        format!(
                            "`{name}` (sum of `{}`) overflows a 64-bit integer in group {group}: {} + {}",
                            expr.as_ref().map(ToString::to_string).unwrap_or_default(),
                            overflow.total,
                            overflow.value
                        ),
                    );
                    error.row = Some(overflow.row as u64);
                    error
                },
            )?;
            let nullable = *function != Function::Count;
            fields.push(Field::new(
                name.as_str(),
                column.data_type().clone(),
                nullable,
            ));
            columns.push(column);
        }
        let out = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        Ok(Outputs::new()
            .with("out", out)
            .with(REJECTED_PORT, rejects.finish()))
    }
}

/// `floor(t / size) * size` of a timestamp column, same type.
fn window_starts(input: &Input<'_>, column: &str, seconds: i64) -> Result<ArrayRef, PluginError> {
    let array = input.column_any(column)?;
    let DataType::Timestamp(unit, zone) = array.data_type() else {
        return Err(PluginError::bad_input(
            "in",
            format!(
                "window column `{column}` is {}, not a timestamp",
                array.data_type()
            ),
        ));
    };
    let per_second = match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    };
    let size = seconds.checked_mul(per_second).ok_or_else(|| {
        PluginError::bad_input(
            "in",
            format!("a window of {seconds}s does not fit the `{column}` timestamps"),
        )
    })?;
    let data = array.to_data();
    let raw = &data.buffers()[0].typed_data::<i64>()[data.offset()..data.offset() + data.len()];
    let floored: Int64Array = raw
        .iter()
        .enumerate()
        .map(|(row, t)| array.is_valid(row).then(|| t.div_euclid(size) * size))
        .collect();
    let floored = floored
        .into_data()
        .into_builder()
        .data_type(DataType::Timestamp(*unit, zone.clone()))
        .build()?;
    Ok(weir_sdk::arrow_array::make_array(floored))
}

/// An integer sum that left the 64-bit range: the group's total so far, the
/// value that did not fit, its row and the group's first row.
struct SumOverflow {
    total: i64,
    value: i64,
    row: usize,
    first_row_of_group: usize,
}

/// One aggregate per group. Integer sums are checked: a total beyond 64 bits
/// is an error (as in Spark's ANSI mode), never a wrapped value.
fn aggregate(
    function: Function,
    values: Option<&Values>,
    groups: &group::Groups,
    usable: &[bool],
) -> Result<ArrayRef, SumOverflow> {
    let n = groups.first_rows.len();
    let rows = groups
        .of_row
        .iter()
        .zip(usable)
        .enumerate()
        .filter(|(_, (_, ok))| **ok);
    match (function, values) {
        (Function::Count, None) => {
            let mut counts = vec![0i64; n];
            for (_, (group, _)) in rows {
                counts[*group as usize] += 1;
            }
            Ok(Arc::new(Int64Array::from(counts)))
        }
        (Function::Count, Some(values)) => {
            let mut counts = vec![0i64; n];
            for (row, (group, _)) in rows {
                let present = match values {
                    Values::Int(v) => v[row].is_some(),
                    Values::Float(v) => v[row].is_some(),
                };
                counts[*group as usize] += i64::from(present);
            }
            Ok(Arc::new(Int64Array::from(counts)))
        }
        (_, None) => Ok(Arc::new(Int64Array::from(vec![None::<i64>; n]))),
        (function, Some(Values::Int(v))) => {
            let mut out: Vec<Option<i64>> = vec![None; n];
            for (row, (group, _)) in rows {
                if let Some(x) = v[row] {
                    let slot = &mut out[*group as usize];
                    *slot = Some(match (*slot, function) {
                        (None, _) => x,
                        (Some(a), Function::Sum) => a.checked_add(x).ok_or(SumOverflow {
                            total: a,
                            value: x,
                            row,
                            first_row_of_group: groups.first_rows.value(*group as usize) as usize,
                        })?,
                        (Some(a), Function::Min) => a.min(x),
                        (Some(a), _) => a.max(x),
                    });
                }
            }
            Ok(Arc::new(Int64Array::from(out)))
        }
        (function, Some(Values::Float(v))) => {
            let mut out: Vec<Option<f64>> = vec![None; n];
            for (row, (group, _)) in rows {
                if let Some(x) = v[row] {
                    let slot = &mut out[*group as usize];
                    *slot = Some(match (*slot, function) {
                        (None, _) => x,
                        (Some(a), Function::Sum) => a + x,
                        (Some(a), Function::Min) => a.min(x),
                        (Some(a), _) => a.max(x),
                    });
                }
            }
            Ok(Arc::new(Float64Array::from(out)))
        }
    }
}

weir_sdk::export!(Aggregate);

#[cfg(test)]
mod tests;
