//! Checking a new plugin version against a running pipeline before it may
//! replace a stage's (the swap protocol of `docs/hot-swap.md`). Everything
//! here runs off the processing path, on fresh instances: the new version is
//! configured with the stage's config, its input port must take what feeds
//! the stage and its lookup ports must exist, and its output schemas —
//! learnt, as validation learns them, by running it on empty batches — must
//! stay compatible with every reader: each port a stage or sink reads keeps
//! every column with its type; a new column must be nullable (stages
//! downstream are re-checked with it, Delta sinks do not store it). The
//! result is a [`Ready`] version: compiled, configured, and the pipeline's
//! port schemas as they will be once it runs, so the cut-over at the next
//! epoch boundary only exchanges instances.

use super::pins::StageVersion;
use crate::determinism::CallContext;
use crate::error::HostError;
use crate::pipeline::{PortRef, PreparedPipeline};
use crate::plugin::{LoadedPlugin, PluginInstance};
use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use std::collections::HashMap;
use weir_sdk::REJECTED_PORT;

/// Port → schema, for every port of a pipeline (the source and each stage output).
pub type Schemas = HashMap<PortRef, SchemaRef>;

/// A checked version, ready to take over its stage at an epoch boundary.
pub struct Ready {
    /// The stage's index.
    pub index: usize,
    /// The version (plugin, config, pin).
    pub version: StageVersion,
    /// A configured instance of it.
    pub instance: PluginInstance,
    /// Its first input port (fed by the stage's input).
    pub input_port: String,
    /// Every port's schema once it runs.
    pub schemas: Schemas,
    /// What the operator should know (e.g. a new column a sink will not store).
    pub notes: Vec<String>,
}

/// Checks `plugin` as the new version of stage `index`, given the versions
/// the stages run now (`active`) and the port schemas they produce
/// (`schemas`). Returns every reason it is refused, each naming the port,
/// column or reader at fault.
pub fn prepare(
    prepared: &PreparedPipeline,
    active: &[StageVersion],
    schemas: &Schemas,
    index: usize,
    plugin: LoadedPlugin,
) -> Result<Ready, Vec<String>> {
    let pipeline = &prepared.spec;
    let stage = &pipeline.stages[index];
    let version = StageVersion::new(&stage.name, plugin, active[index].config.clone());
    let mut instance = version
        .plugin
        .instantiate(&version.config, stage.limits)
        .map_err(|e| vec![format!("the stage's config is refused: {e}")])?;
    let (input_port, outputs) =
        probe(prepared, index, &mut instance, schemas).map_err(|reason| vec![reason])?;
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let mut next = schemas.clone();
    replace_outputs(&mut next, index, outputs);
    check_readers(prepared, index, schemas, &next, &mut problems, &mut notes);
    // Stages reading a changed port are re-checked with its new schema, on
    // fresh instances of the versions they run now.
    for (later, version) in active.iter().enumerate().skip(index + 1) {
        let feeds = &pipeline.stages[later].input;
        if schemas.get(feeds) == next.get(feeds) {
            continue;
        }
        let mut fresh = match version
            .plugin
            .instantiate(&version.config, pipeline.stages[later].limits)
        {
            Ok(instance) => instance,
            Err(e) => {
                problems.push(format!(
                    "stage `{}` could not be started to re-check it: {e}",
                    pipeline.stages[later].name
                ));
                continue;
            }
        };
        match probe(prepared, later, &mut fresh, &next) {
            Ok((_, outputs)) => {
                replace_outputs(&mut next, later, outputs);
                check_readers(prepared, later, schemas, &next, &mut problems, &mut notes);
            }
            Err(reason) => problems.push(format!(
                "stage `{}` reads {} and no longer accepts it: {reason}",
                pipeline.stages[later].name,
                pipeline.port_name(feeds)
            )),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Ready {
        index,
        version,
        instance,
        input_port,
        schemas: next,
        notes,
    })
}

/// Runs `instance` (stage `index`) on empty batches of what feeds it, as
/// validation does: returns its input port and its output port schemas, or
/// why its inputs do not fit.
pub fn probe(
    prepared: &PreparedPipeline,
    index: usize,
    instance: &mut PluginInstance,
    schemas: &Schemas,
) -> Result<(String, HashMap<String, SchemaRef>), String> {
    let stage = &prepared.spec.stages[index];
    let identity = instance.identity().clone();
    let Some(port) = instance.ports().inputs.first().cloned() else {
        return Err(format!("{identity} declares no input port"));
    };
    let Some(input) = schemas.get(&stage.input) else {
        return Err(format!(
            "the schema of {} is unknown",
            prepared.spec.port_name(&stage.input)
        ));
    };
    if let Some(declared) = &port.schema {
        weir_sdk::schema::check_input_fits(declared, input).map_err(|reason| {
            format!(
                "{} does not fit input port `{}` of {identity}: {reason}",
                prepared.spec.port_name(&stage.input),
                port.name
            )
        })?;
    }
    let mut inputs = vec![(port.name.clone(), RecordBatch::new_empty(input.clone()))];
    for lookup in &stage.lookups {
        if !instance
            .ports()
            .inputs
            .iter()
            .any(|p| p.name == lookup.port)
        {
            return Err(format!(
                "{identity} has no input port `{}`, which lookup `{}` feeds",
                lookup.port, lookup.port
            ));
        }
        if let Some(schema) = prepared.lookup_schemas.get(&(index, lookup.port.clone())) {
            inputs.push((lookup.port.clone(), RecordBatch::new_empty(schema.clone())));
        }
    }
    let outputs = instance
        .process(&inputs, CallContext::default())
        .map_err(|e: HostError| format!("running it on an empty batch failed: {e}"))?;
    let mut found: HashMap<String, SchemaRef> = outputs
        .into_iter()
        .filter(|(port, _)| port != REJECTED_PORT)
        .map(|(port, batch)| (port, batch.schema()))
        .collect();
    for declared in &instance.ports().outputs {
        if declared.name != REJECTED_PORT
            && !found.contains_key(&declared.name)
            && let Some(schema) = &declared.schema
        {
            found.insert(declared.name.clone(), schema.clone());
        }
    }
    Ok((port.name, found))
}

/// Puts stage `index`'s new output schemas into `schemas`, dropping its old ports.
fn replace_outputs(schemas: &mut Schemas, index: usize, outputs: HashMap<String, SchemaRef>) {
    schemas.retain(|port, _| !matches!(port, PortRef::Stage { stage, .. } if *stage == index));
    for (port, schema) in outputs {
        schemas.insert(PortRef::Stage { stage: index, port }, schema);
    }
}

/// Checks every reader (stage input, dedupe, sink) of stage `index`'s
/// ports: the port must still exist and keep what it had.
fn check_readers(
    prepared: &PreparedPipeline,
    index: usize,
    before: &Schemas,
    after: &Schemas,
    problems: &mut Vec<String>,
    notes: &mut Vec<String>,
) {
    let pipeline = &prepared.spec;
    let mut readers: Vec<(PortRef, String, Option<&std::path::Path>)> = Vec::new();
    for stage in &pipeline.stages {
        readers.push((stage.input.clone(), format!("stage `{}`", stage.name), None));
    }
    if pipeline.stages[index].dedupe.is_some() {
        readers.push((
            PortRef::Stage {
                stage: index,
                port: "out".into(),
            },
            format!("stage `{}`'s dedupe", pipeline.stages[index].name),
            None,
        ));
    }
    for sink in &pipeline.sinks {
        readers.push((
            sink.from.clone(),
            format!("sink `{}`", sink.name),
            Some(&sink.table),
        ));
    }
    for sink in &pipeline.kafka_sinks {
        readers.push((sink.from.clone(), format!("sink `{}`", sink.name), None));
    }
    for (port, reader, table) in readers {
        if !matches!(&port, PortRef::Stage { stage, .. } if *stage == index) {
            continue;
        }
        let name = pipeline.port_name(&port);
        let Some(old) = before.get(&port) else {
            continue;
        };
        let Some(new) = after.get(&port) else {
            problems.push(format!(
                "the new version has no output port `{name}`, which {reader} reads"
            ));
            continue;
        };
        let (refused, added) = compare(old, new);
        for reason in refused {
            problems.push(format!("{name} (read by {reader}): {reason}"));
        }
        if let Some(table) = table {
            for column in added {
                notes.push(format!(
                    "new column `{column}` of {name} is not in {reader}'s table {}; it is not stored there",
                    table.display()
                ));
            }
        }
    }
}

/// What a reader of a port with schema `old` cannot take in `new` (each
/// naming the column), and the columns `new` adds.
pub fn compare(old: &Schema, new: &Schema) -> (Vec<String>, Vec<String>) {
    let mut refused = Vec::new();
    for field in old.fields() {
        match new.field_with_name(field.name()) {
            Err(_) => refused.push(format!(
                "column `{}` ({}) is dropped",
                field.name(),
                field.data_type()
            )),
            Ok(got) if got.data_type() != field.data_type() => refused.push(format!(
                "column `{}` changes type from {} to {}",
                field.name(),
                field.data_type(),
                got.data_type()
            )),
            Ok(got) if got.is_nullable() && !field.is_nullable() => {
                refused.push(format!("column `{}` becomes nullable", field.name()))
            }
            Ok(_) => {}
        }
    }
    let mut added = Vec::new();
    for field in new.fields() {
        if old.field_with_name(field.name()).is_err() {
            if field.is_nullable() {
                added.push(field.name().clone());
            } else {
                refused.push(format!(
                    "new column `{}` ({}) is not nullable",
                    field.name(),
                    field.data_type()
                ));
            }
        }
    }
    (refused, added)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field};

    fn schema(fields: &[(&str, DataType, bool)]) -> Schema {
        Schema::new(
            fields
                .iter()
                .map(|(n, t, null)| Field::new(*n, t.clone(), *null))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn a_new_nullable_column_is_compatible_and_reported() {
        let old = schema(&[("id", DataType::Int64, false)]);
        let new = schema(&[
            ("id", DataType::Int64, false),
            ("tag", DataType::Utf8, true),
        ]);
        assert_eq!(compare(&old, &new), (vec![], vec!["tag".to_string()]));
    }

    #[test]
    fn dropped_retyped_and_required_new_columns_are_refused_by_name() {
        let old = schema(&[
            ("id", DataType::Int64, false),
            ("amount", DataType::Int64, false),
            ("note", DataType::Utf8, false),
        ]);
        let new = schema(&[
            ("id", DataType::Utf8, false),
            ("note", DataType::Utf8, true),
            ("extra", DataType::Int32, false),
        ]);
        let (refused, added) = compare(&old, &new);
        assert!(added.is_empty());
        assert_eq!(
            refused,
            vec![
                "column `id` changes type from Int64 to Utf8",
                "column `amount` (Int64) is dropped",
                "column `note` becomes nullable",
                "new column `extra` (Int32) is not nullable",
            ]
        );
    }
}
