//! The rules for whether a batch fits a port, shared by the host (which enforces
//! them on plugin output) and the native test harness (so tests see the same).

use arrow_schema::{Field, Schema};

/// Checks that `actual` provides every column `declared` lists for an input
/// port, with the same type. Extra columns are allowed.
pub fn check_input_fits(declared: &Schema, actual: &Schema) -> Result<(), String> {
    join(
        declared
            .fields()
            .iter()
            .filter_map(|want| column_problem(want, actual))
            .collect(),
    )
}

/// What is wrong with `actual`'s column for the declared field `want`:
/// missing, or of another type.
fn column_problem(want: &Field, actual: &Schema) -> Option<String> {
    match actual.field_with_name(want.name()) {
        Err(_) => Some(format!(
            "column `{}` ({}) is missing",
            want.name(),
            want.data_type()
        )),
        Ok(got) if !got.data_type().equals_datatype(want.data_type()) => Some(format!(
            "column `{}` has type {}, expected {}",
            want.name(),
            got.data_type(),
            want.data_type()
        )),
        Ok(_) => None,
    }
}

/// Checks that `actual` is exactly `declared` for an output port: same columns,
/// in the same order, same types, and no nullable column where the port
/// declares a non-null one. The error names every column at fault: missing,
/// added, retyped, made nullable, or (when the set is right) the first
/// column out of place.
pub fn check_output_fits(declared: &Schema, actual: &Schema) -> Result<(), String> {
    let mut problems = Vec::new();
    for want in declared.fields() {
        match (
            column_problem(want, actual),
            actual.field_with_name(want.name()),
        ) {
            (Some(problem), _) => problems.push(problem),
            (None, Ok(got)) if got.is_nullable() && !want.is_nullable() => problems.push(format!(
                "column `{}` is nullable, but the port declares it non-null",
                want.name()
            )),
            _ => {}
        }
    }
    for got in actual.fields() {
        if declared.field_with_name(got.name()).is_err() {
            problems.push(format!(
                "column `{}` ({}) is not expected",
                got.name(),
                got.data_type()
            ));
        }
    }
    if problems.is_empty() {
        let misplaced = declared
            .fields()
            .iter()
            .zip(actual.fields())
            .enumerate()
            .find(|(_, (want, got))| want.name() != got.name());
        if let Some((position, (want, got))) = misplaced {
            problems.push(format!(
                "columns are out of order: column `{}` is at position {position}, where `{}` is expected",
                got.name(),
                want.name()
            ));
        }
    }
    join(problems)
}

fn join(problems: Vec<String>) -> Result<(), String> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::{DataType, Field};

    fn schema(fields: &[(&str, DataType, bool)]) -> Schema {
        Schema::new(
            fields
                .iter()
                .map(|(n, t, null)| Field::new(*n, t.clone(), *null))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn inputs_may_carry_extra_columns_but_not_miss_any() {
        let declared = schema(&[("value", DataType::Binary, true)]);
        let actual = schema(&[
            ("key", DataType::Binary, true),
            ("value", DataType::Binary, true),
        ]);
        assert!(check_input_fits(&declared, &actual).is_ok());
        let err =
            check_input_fits(&declared, &schema(&[("key", DataType::Binary, true)])).unwrap_err();
        assert_eq!(err, "column `value` (Binary) is missing");
        let err =
            check_input_fits(&declared, &schema(&[("value", DataType::Utf8, true)])).unwrap_err();
        assert_eq!(err, "column `value` has type Utf8, expected Binary");
    }

    #[test]
    fn outputs_must_match_exactly() {
        let declared = schema(&[("a", DataType::Int64, false), ("b", DataType::Utf8, true)]);
        assert!(
            check_output_fits(
                &declared,
                &schema(&[("a", DataType::Int64, false), ("b", DataType::Utf8, false)])
            )
            .is_ok()
        );
        let err = check_output_fits(
            &declared,
            &schema(&[("b", DataType::Utf8, true), ("a", DataType::Int64, false)]),
        )
        .unwrap_err();
        assert_eq!(
            err,
            "columns are out of order: column `b` is at position 0, where `a` is expected"
        );
        let err =
            check_output_fits(&declared, &schema(&[("a", DataType::Int64, false)])).unwrap_err();
        assert_eq!(err, "column `b` (Utf8) is missing");
        let err = check_output_fits(
            &declared,
            &schema(&[
                ("a", DataType::Int64, false),
                ("b", DataType::Utf8, true),
                ("c", DataType::Boolean, true),
            ]),
        )
        .unwrap_err();
        assert_eq!(err, "column `c` (Boolean) is not expected");
        let err = check_output_fits(
            &declared,
            &schema(&[("a", DataType::Int64, true), ("b", DataType::Utf8, true)]),
        )
        .unwrap_err();
        assert!(err.contains("`a` is nullable"), "{err}");
        let err = check_output_fits(
            &declared,
            &schema(&[("a", DataType::Int32, false), ("b", DataType::Utf8, true)]),
        )
        .unwrap_err();
        assert!(err.contains("`a` has type Int32, expected Int64"), "{err}");
    }
}
