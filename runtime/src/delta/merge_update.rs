//! Overflow-checked merge expressions. DataFusion evaluates `t.s + s.s` on
//! `BIGINT` columns with wrapping arithmetic (its `fail_on_overflow` is off
//! for SQL), and `DECIMAL(38,s)` sums wrap past `i128`, so a gold total past
//! the column's range would silently turn into another number. Weir
//! therefore plans every update expression of a numeric column, and the
//! `when` predicate, itself: integer and decimal column references are
//! widened to `DECIMAL(76,s)` (256-bit), where sums and products of a few
//! 64-bit or 128-bit values are exact, and an update's result goes through
//! `weir_checked_update`, which returns it in the column's type or fails the
//! merge with an error naming the column, the expression, the value and the
//! row's merge key. Nothing is committed when it fails (the merge is one
//! Delta commit). A float column gets the exact value of integer
//! sub-expressions rounded once to a double (Spark's ANSI mode would raise
//! instead); float arithmetic follows IEEE 754 (an overflow is `±inf`,
//! visible). Expressions are type-checked when planned, so an operation the
//! widened types do not support (bitwise operators) is a validation error.

#[cfg(test)]
use arrow::array::RecordBatch;
use arrow::array::{Array, ArrayRef};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use deltalake::datafusion::common::tree_node::{Transformed, TreeNode};
use deltalake::datafusion::common::{DFSchema, DataFusionError, ExprSchema, Result as DfResult};
use deltalake::datafusion::logical_expr::expr::Cast;
use deltalake::datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use deltalake::datafusion::prelude::col;

/// Target alias of merge expressions (`t.column`).
pub const TARGET: &str = "t";
/// Source alias of merge expressions (`s.column`).
pub const SOURCE: &str = "s";

/// Plans the update expression `sql` for `column` of a table with `schema`
/// (both `t` and `s` have this schema), exact and checked against overflow
/// when the column is numeric. `keys` are the merge key columns, named in
/// the error. Errors: the expression does not parse, names unknown columns
/// or cannot be typed (message from DataFusion).
pub fn plan(sql: &str, column: &str, schema: &Schema, keys: &[String]) -> Result<Expr, String> {
    let both = both(schema)?;
    let parsed = parse(sql, &both)?;
    let target = schema
        .field_with_name(column)
        .map_err(|_| format!("the table has no column `{column}`"))?
        .data_type()
        .clone();
    if !target.is_numeric() {
        return Ok(parsed);
    }
    let widened_expr = widen(parsed, &both)?;
    let check = ScalarUDF::from(CheckedUpdate {
        column: column.to_string(),
        expression: sql.to_string(),
        keys: keys.to_vec(),
        target,
        signature: Signature::variadic_any(Volatility::Immutable),
    });
    let mut args = vec![widened_expr];
    args.extend(
        keys.iter()
            .map(|k| col(format!("{SOURCE}.{}", quote_ident(k)))),
    );
    Ok(check.call(args))
}

/// Plans the `when` predicate `sql` over `t` and `s`, its integer and
/// decimal arithmetic exact (widened as in [`plan`]). Errors as [`plan`].
pub fn plan_predicate(sql: &str, schema: &Schema) -> Result<Expr, String> {
    let both = both(schema)?;
    let predicate = widen(parse(sql, &both)?, &both)?;
    match predicate.get_type(&both).map_err(|e| e.to_string())? {
        DataType::Boolean | DataType::Null => Ok(predicate),
        other => Err(format!("is of type {other}, not a condition")),
    }
}

/// `t` and `s`, both with `schema`.
fn both(schema: &Schema) -> Result<DFSchema, String> {
    qualified(TARGET, schema)?
        .join(&qualified(SOURCE, schema)?)
        .map_err(|e| e.to_string())
}

fn parse(sql: &str, both: &DFSchema) -> Result<Expr, String> {
    // deltalake's session: unquoted identifiers keep their case.
    super::session::context()
        .parse_sql_expr(sql, both)
        .map_err(|e| e.to_string())
}

/// Casts every integer or decimal column reference of `expr` to its exact
/// wide type, and checks the result can be typed.
fn widen(expr: Expr, both: &DFSchema) -> Result<Expr, String> {
    let widened_expr = expr
        .transform_up(|expr| {
            let Expr::Column(reference) = &expr else {
                return Ok(Transformed::no(expr));
            };
            let data_type = both.field_from_column(reference)?.data_type().clone();
            Ok(match widened(&data_type) {
                Some(wide) => Transformed::yes(Expr::Cast(Cast::new(Box::new(expr), wide))),
                None => Transformed::no(expr),
            })
        })
        .map_err(|e| e.to_string())?
        .data;
    widened_expr
        .get_type(both)
        .map_err(|e| format!("cannot be computed exactly: {e}"))?;
    Ok(widened_expr)
}

fn qualified(alias: &str, schema: &Schema) -> Result<DFSchema, String> {
    DFSchema::try_from_qualified_schema(alias, schema).map_err(|e| e.to_string())
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The exact wide type arithmetic on `data_type` is done in, if it is an
/// integer or decimal type: 256-bit decimals of precision 76 (a product of
/// two 38-digit decimals, or of four 64-bit integers, fits).
fn widened(data_type: &DataType) -> Option<DataType> {
    match data_type {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => Some(DataType::Decimal256(76, 0)),
        DataType::Decimal128(_, scale) | DataType::Decimal256(_, scale) => {
            Some(DataType::Decimal256(76, *scale))
        }
        _ => None,
    }
}

/// `weir_checked_update(value, key...)`: `value` in the target column's type,
/// or an error naming the column, expression, value and key.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedUpdate {
    column: String,
    expression: String,
    keys: Vec<String>,
    target: DataType,
    signature: Signature,
}

impl ScalarUDFImpl for CheckedUpdate {
    fn name(&self) -> &str {
        "weir_checked_update"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(self.target.clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<DfResult<Vec<ArrayRef>>>()?;
        let value = &arrays[0];
        // A safe cast turns values out of the target's range into nulls; any
        // null that was not null before is an overflow.
        let options = CastOptions {
            safe: true,
            ..CastOptions::default()
        };
        let fitted = cast_with_options(value, &self.target, &options)?;
        if fitted.null_count() != value.null_count()
            && let Some(row) = (0..rows).find(|&r| value.is_valid(r) && fitted.is_null(r))
        {
            return Err(DataFusionError::Execution(self.overflow(&arrays, row)));
        }
        Ok(ColumnarValue::Array(fitted))
    }
}

impl CheckedUpdate {
    fn overflow(&self, arrays: &[ArrayRef], row: usize) -> String {
        let show = |array: &ArrayRef| {
            ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())
                .map(|f| f.value(row).to_string())
                .unwrap_or_else(|_| "?".into())
        };
        let key = self
            .keys
            .iter()
            .zip(&arrays[1..])
            .map(|(k, a)| format!("{k} = {}", show(a)))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "{OVERFLOW}: merge update of column `{}` = `{}` gives {} for the row with {key}, which does not fit the column's type {}; nothing of this epoch was committed. Widen the column (e.g. DECIMAL(38,0)) or change the expression",
            self.column,
            self.expression,
            show(&arrays[0]),
            self.target,
        )
    }
}

/// The start of every overflow message, for callers that classify errors.
pub const OVERFLOW: &str = "numeric overflow";

/// Evaluates planned update expressions over `batch` joined with itself on
/// `k` as `t` and `s` (the merge itself runs them inside deltalake).
#[cfg(test)]
async fn evaluate(batch: RecordBatch, exprs: Vec<Expr>) -> DfResult<Vec<RecordBatch>> {
    let context = deltalake::datafusion::prelude::SessionContext::new();
    let target = context.read_batch(batch.clone())?.alias(TARGET)?;
    let source = context.read_batch(batch)?.alias(SOURCE)?;
    target
        .join_on(
            source,
            deltalake::datafusion::common::JoinType::Inner,
            [col("t.k").eq(col("s.k"))],
        )?
        .select(exprs)?
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::Field;
    use std::sync::Arc;

    fn table(values: Vec<i64>) -> RecordBatch {
        let keys: Vec<String> = (0..values.len()).map(|i| format!("k{i}")).collect();
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("k", DataType::Utf8, false),
                Field::new("total", DataType::Int64, true),
            ])),
            vec![
                Arc::new(StringArray::from(keys)),
                Arc::new(Int64Array::from(values)),
            ],
        )
        .unwrap()
    }

    #[tokio::test]
    async fn sums_in_range_are_exact() {
        let batch = table(vec![4_611_686_018_427_387_903, -7]);
        let expr = plan("t.total + s.total", "total", &batch.schema(), &["k".into()]).unwrap();
        let out = evaluate(batch, vec![expr]).await.unwrap();
        let column = out[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let mut values: Vec<i64> = column.values().to_vec();
        values.sort();
        assert_eq!(values, vec![-14, 9_223_372_036_854_775_806]);
    }

    #[tokio::test]
    async fn regression_issue_10_merge_update_sum_past_i64_max_is_an_error_not_a_wrap() {
        let batch = table(vec![9_223_372_036_854_775_000, 1]);
        let expr = plan("t.total + s.total", "total", &batch.schema(), &["k".into()]).unwrap();
        let error = evaluate(batch, vec![expr]).await.unwrap_err().to_string();
        assert!(error.contains(OVERFLOW), "{error}");
        assert!(
            error.contains("column `total` = `t.total + s.total`"),
            "{error}"
        );
        assert!(error.contains("18446744073709550000"), "{error}");
        assert!(error.contains("k = k0"), "{error}");
    }

    /// Mixed-case column names plan as written (deltalake does not fold them).
    #[test]
    fn mixed_case_columns_keep_their_case() {
        let schema = Schema::new(vec![Field::new("totalRevenue", DataType::Int64, true)]);
        plan(
            "t.totalRevenue + s.totalRevenue",
            "totalRevenue",
            &schema,
            &[],
        )
        .unwrap();
    }

    #[test]
    fn unknown_columns_are_reported_when_planning() {
        let batch = table(vec![1]);
        let error = plan("t.totl + 1", "total", &batch.schema(), &[]).unwrap_err();
        assert!(error.contains("totl"), "{error}");
    }

    #[test]
    fn string_columns_keep_the_expression_as_written() {
        let schema = Schema::new(vec![Field::new("name", DataType::Utf8, true)]);
        let planned = plan("s.name", "name", &schema, &[]).unwrap();
        assert!(!planned.to_string().contains("weir_checked_update"));
    }

    /// Keys `k0..` with one `Decimal128(38, 2)` column `amount` (cents).
    fn amounts(cents: Vec<i128>) -> RecordBatch {
        let keys: Vec<String> = (0..cents.len()).map(|i| format!("k{i}")).collect();
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("k", DataType::Utf8, false),
                Field::new("amount", DataType::Decimal128(38, 2), true),
            ])),
            vec![
                Arc::new(StringArray::from(keys)),
                Arc::new(
                    arrow::array::Decimal128Array::from(cents)
                        .with_precision_and_scale(38, 2)
                        .unwrap(),
                ),
            ],
        )
        .unwrap()
    }

    /// Regression (issue 10 review): `DECIMAL(38,2)` sums past 38 digits
    /// (and past `i128`) are an error, not a wrapped value.
    #[tokio::test]
    async fn regression_issue_10_decimal_38_sum_past_its_precision_is_an_error() {
        let near_max = 10_i128.pow(38) - 1;
        let sum = |batch: &RecordBatch| {
            plan(
                "t.amount + s.amount",
                "amount",
                &batch.schema(),
                &["k".into()],
            )
            .unwrap()
        };
        let batch = amounts(vec![near_max, 5]);
        let expr = sum(&batch);
        let error = evaluate(batch, vec![expr]).await.unwrap_err().to_string();
        assert!(error.contains(OVERFLOW), "{error}");
        assert!(error.contains("k = k0"), "{error}");
        // In range: exact.
        let batch = amounts(vec![near_max / 2, 5]);
        let expr = sum(&batch);
        let out = evaluate(batch, vec![expr]).await.unwrap();
        let column = out[0]
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Decimal128Array>()
            .unwrap();
        let mut values: Vec<i128> = column.values().to_vec();
        values.sort();
        assert_eq!(values, vec![10, (near_max / 2) * 2]);
    }

    /// An integer product past `i64::MAX` into a float column is the exact
    /// product rounded once, not a wrapped (negative) number.
    #[tokio::test]
    async fn integer_sub_expressions_of_a_float_column_do_not_wrap() {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("k", DataType::Utf8, false),
                Field::new("n", DataType::Int64, true),
                Field::new("x", DataType::Float64, true),
            ])),
            vec![
                Arc::new(StringArray::from(vec!["k0"])),
                Arc::new(Int64Array::from(vec![4_000_000_000])),
                Arc::new(arrow::array::Float64Array::from(vec![0.0])),
            ],
        )
        .unwrap();
        let expr = plan("t.n * s.n + t.x", "x", &batch.schema(), &["k".into()]).unwrap();
        let out = evaluate(batch, vec![expr]).await.unwrap();
        let column = out[0]
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Float64Array>()
            .unwrap();
        assert_eq!(column.value(0), 1.6e19);
    }

    #[tokio::test]
    async fn a_when_predicate_compares_exact_sums() {
        let batch = table(vec![9_223_372_036_854_775_000]);
        let predicate = plan_predicate("t.total + s.total > 0", &batch.schema()).unwrap();
        let out = evaluate(batch, vec![predicate]).await.unwrap();
        let column = out[0]
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::BooleanArray>()
            .unwrap();
        assert!(column.value(0), "a wrapped sum would be negative");
        let error = plan_predicate("t.total + s.total", &table(vec![1]).schema()).unwrap_err();
        assert!(error.contains("not a condition"), "{error}");
    }

    #[test]
    fn operations_the_exact_types_lack_are_refused_when_planning() {
        let batch = table(vec![1]);
        let error = plan("t.total & s.total", "total", &batch.schema(), &[]).unwrap_err();
        assert!(error.contains("cannot be computed exactly"), "{error}");
    }
}
