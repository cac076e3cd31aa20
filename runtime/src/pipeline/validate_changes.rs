//! Validation of a `[pipeline.source.changes]` source: every table is a
//! Delta table (or one a pipeline of the file writes, created with the
//! Change Data Feed on), its latest version can be read by Weir's change
//! reader (Change Data Feed on, no column mapping), and the kept columns
//! exist in every table with one type. The version the source starts from
//! is checked again when the source opens, where the sinks' position is
//! known (a checked `start` would be stale on a restart).

use super::model::{Changes, Problem};
use crate::delta::change_source::{self, EXTRA_COLUMNS};
use crate::delta::{changes, table};
use arrow::datatypes::{Field, SchemaRef};
use std::collections::HashMap;
use std::path::PathBuf;

/// The schema of the source's rows, or `None` after reporting every
/// problem to `problems` (located under `here`).
pub async fn source_schema(
    here: &str,
    spec: &Changes,
    produced: &HashMap<PathBuf, SchemaRef>,
    problems: &mut Vec<Problem>,
) -> Option<SchemaRef> {
    let mut problem =
        |location: String, message: String| problems.push(Problem { location, message });
    let mut schemas: Vec<(&str, SchemaRef)> = Vec::new();
    for (name, path) in &spec.tables {
        let at = format!("{here} > source.changes.tables.{name}");
        let upstream = produced
            .iter()
            .find(|(t, _)| super::validate::same_table(t, path))
            .map(|(_, s)| s.clone());
        match table::open(path).await {
            Ok(Some(existing)) => {
                let latest = existing.version().unwrap_or(0);
                if let Err(e) = changes::check_readable(path, latest).await {
                    problem(at.clone(), e.to_string());
                }
                match table::arrow_schema(path, &existing) {
                    Ok(schema) => schemas.push((name, schema)),
                    Err(e) => problem(at, e.to_string()),
                }
            }
            Ok(None) => match upstream {
                Some(schema) => schemas.push((name, schema)),
                None => problem(
                    at,
                    format!(
                        "{} is not a Delta table, and no pipeline in this file writes it",
                        path.display()
                    ),
                ),
            },
            Err(e) => problem(at, e.to_string()),
        }
    }
    if schemas.len() != spec.tables.len() {
        return None;
    }
    let at = format!("{here} > source.changes.columns");
    let columns: Vec<String> = match &spec.columns {
        Some(columns) => columns.clone(),
        // Load allows no `columns` with one table only.
        None => schemas
            .first()?
            .1
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect(),
    };
    let mut kept: Vec<Field> = Vec::new();
    let mut complete = true;
    for column in &columns {
        if EXTRA_COLUMNS.contains(&column.as_str()) {
            problem(
                at.clone(),
                format!("a table has a column `{column}`, a name the change source adds itself"),
            );
            complete = false;
            continue;
        }
        if kept.iter().any(|f| f.name() == column) {
            problem(at.clone(), format!("`{column}` is listed twice"));
            continue;
        }
        let mut field: Option<(&str, Field)> = None;
        for (name, schema) in &schemas {
            let Ok(found) = schema.field_with_name(column) else {
                let known: Vec<String> = schema
                    .fields()
                    .iter()
                    .map(|f| format!("`{}`", f.name()))
                    .collect();
                problem(
                    at.clone(),
                    format!(
                        "table `{name}` has no column `{column}` (its columns: {})",
                        known.join(", ")
                    ),
                );
                complete = false;
                continue;
            };
            field = match field {
                None => Some((name, found.clone())),
                Some((first, so_far)) if !so_far.data_type().equals_datatype(found.data_type()) => {
                    problem(
                        at.clone(),
                        format!(
                            "column `{column}` is {} in table `{first}` but {} in table `{name}`; \
                             the kept columns must have one type",
                            so_far.data_type(),
                            found.data_type()
                        ),
                    );
                    complete = false;
                    Some((first, so_far))
                }
                Some((first, so_far)) => {
                    let nullable = so_far.is_nullable() || found.is_nullable();
                    Some((first, so_far.with_nullable(nullable)))
                }
            };
        }
        if let Some((_, field)) = field {
            kept.push(field);
        }
    }
    complete.then(|| change_source::output_schema(&kept))
}
