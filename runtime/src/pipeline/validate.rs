//! Everything checked before a pipeline file starts, with every problem
//! collected: the pipelines' dependency order (a Delta source fed by another
//! pipeline's sink), each plugin loads and accepts its config, each stage's
//! input schema fits what feeds it, the output schemas (learnt by running
//! each configured plugin on an empty batch of its input schema) fit the
//! sink tables or can create them, key and partition columns exist, and merge
//! expressions parse. Nothing is written.

use super::model::{Pipeline, PipelineFile, PortRef, Problem, Source};
use super::spec::SinkMode;
use crate::delta::{dead_letters, table};
use crate::determinism::CallContext;
use crate::engine::PluginEngine;
use crate::kafka::records;
use crate::plugin::LoadedPlugin;
use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A pipeline whose plugins are loaded and whose port schemas are known.
#[derive(Clone)]
pub struct PreparedPipeline {
    /// The pipeline as declared.
    pub spec: Pipeline,
    /// One loaded plugin per stage, in stage order.
    pub plugins: Vec<LoadedPlugin>,
    /// The schema of the source and of every stage output port.
    pub schemas: HashMap<PortRef, SchemaRef>,
    /// The schema of every lookup input, `(stage index, port)` → schema, as
    /// validated at start: lookup batches are given to plugins in this shape.
    pub lookup_schemas: HashMap<(usize, String), SchemaRef>,
    /// The engine the plugins were loaded with, for loading the versions a
    /// recorded plan names.
    pub engine: PluginEngine,
}

/// A validated file: pipelines in dependency order (producers first).
#[derive(Clone)]
pub struct PreparedFile {
    /// The file as loaded.
    pub file: PipelineFile,
    /// Producers before the pipelines that read their tables.
    pub pipelines: Vec<PreparedPipeline>,
    /// What each pipeline (same positions as `pipelines`) reads that others write.
    pub upstream: Vec<Upstream>,
}

/// The pipelines of the file writing what one pipeline reads, as positions
/// in [`PreparedFile::pipelines`] (all before it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Upstream {
    /// Writers of its Delta source table.
    pub source: Vec<usize>,
    /// Writers of its stages' lookup tables.
    pub lookups: Vec<usize>,
}

/// Checks `file` completely; returns every problem found.
pub async fn validate(
    file: PipelineFile,
    engine: &PluginEngine,
) -> Result<PreparedFile, Vec<Problem>> {
    let mut problems = Vec::new();
    let upstream = upstream_of(&file.pipelines);
    let order = match dependency_order(&file.pipelines, &upstream) {
        Ok(order) => order,
        Err(problem) => return Err(vec![problem]),
    };
    // Positions in `order`, for the upstream lists of the prepared file.
    let mut position = vec![0; order.len()];
    for (at, &index) in order.iter().enumerate() {
        position[index] = at;
    }
    let upstream_in_order = order
        .iter()
        .map(|&index| Upstream {
            source: upstream[index]
                .source
                .iter()
                .map(|&u| position[u])
                .collect(),
            lookups: upstream[index]
                .lookups
                .iter()
                .map(|&u| position[u])
                .collect(),
        })
        .collect();
    // The schema each sink table will have, by table directory, for downstream Delta sources.
    let mut produced: HashMap<PathBuf, SchemaRef> = HashMap::new();
    let mut prepared = Vec::new();
    for index in order {
        let pipeline = &file.pipelines[index];
        let checkpoint = file.checkpoint_dir.join(&pipeline.name);
        if let Some(p) =
            check_pipeline(pipeline, &checkpoint, engine, &mut produced, &mut problems).await
        {
            prepared.push(p);
        }
    }
    if problems.is_empty() {
        Ok(PreparedFile {
            file,
            pipelines: prepared,
            upstream: upstream_in_order,
        })
    } else {
        Err(problems)
    }
}

/// Whether two table paths name the same directory.
pub(crate) fn same_table(a: &Path, b: &Path) -> bool {
    let normal = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    normal(a).components().eq(normal(b).components())
}

/// For each pipeline, the pipelines writing its Delta source table and its
/// stages' lookup tables (positions in `pipelines`).
fn upstream_of(pipelines: &[Pipeline]) -> Vec<Upstream> {
    // Sinks only: every pipeline writes the file's dead-letter table, so
    // counting it would make two pipelines reading it depend on each other.
    let writers_of = |table: &Path| -> Vec<usize> {
        (0..pipelines.len())
            .filter(|&w| {
                pipelines[w]
                    .sinks
                    .iter()
                    .any(|s| same_table(&s.table, table))
            })
            .collect()
    };
    pipelines
        .iter()
        .map(|p| Upstream {
            source: match &p.source {
                Source::Delta { table, .. } => writers_of(table),
                Source::Changes(changes) => {
                    let mut writers: Vec<usize> = changes
                        .tables
                        .iter()
                        .flat_map(|(_, table)| writers_of(table))
                        .collect();
                    writers.sort_unstable();
                    writers.dedup();
                    writers
                }
                _ => Vec::new(),
            },
            lookups: {
                let mut writers: Vec<usize> = p
                    .stages
                    .iter()
                    .flat_map(|s| s.lookups.iter().flat_map(|l| writers_of(&l.table)))
                    .collect();
                writers.sort_unstable();
                writers.dedup();
                writers
            },
        })
        .collect()
}

/// Orders pipelines so a pipeline reading a table (source or lookup) comes
/// after the ones writing it.
fn dependency_order(pipelines: &[Pipeline], upstream: &[Upstream]) -> Result<Vec<usize>, Problem> {
    let upstream: Vec<Vec<usize>> = upstream
        .iter()
        .map(|u| u.source.iter().chain(&u.lookups).copied().collect())
        .collect();
    let mut order = Vec::new();
    let mut state = vec![0u8; pipelines.len()]; // 0 new, 1 visiting, 2 done
    fn visit(
        i: usize,
        upstream: &[Vec<usize>],
        state: &mut [u8],
        order: &mut Vec<usize>,
        pipelines: &[Pipeline],
    ) -> Result<(), Problem> {
        match state[i] {
            2 => return Ok(()),
            1 => {
                return Err(Problem {
                    location: format!("pipeline \"{}\"", pipelines[i].name),
                    message:
                        "its source or lookup table is (indirectly) written by itself: pipelines form a cycle"
                            .into(),
                });
            }
            _ => {}
        }
        state[i] = 1;
        for &up in &upstream[i] {
            visit(up, upstream, state, order, pipelines)?;
        }
        state[i] = 2;
        order.push(i);
        Ok(())
    }
    for i in 0..pipelines.len() {
        visit(i, &upstream, &mut state, &mut order, pipelines)?;
    }
    Ok(order)
}

/// The Arrow schema a Delta table written from `schema` reads back as.
fn as_read_back(schema: &Schema) -> Result<SchemaRef, String> {
    let delta = table::to_delta_schema(schema)?;
    let arrow: Schema = (&delta).try_into_arrow().map_err(|e| e.to_string())?;
    Ok(Arc::new(arrow))
}

async fn check_pipeline(
    pipeline: &Pipeline,
    checkpoint: &Path,
    engine: &PluginEngine,
    produced: &mut HashMap<PathBuf, SchemaRef>,
    problems: &mut Vec<Problem>,
) -> Option<PreparedPipeline> {
    let here = format!("pipeline \"{}\"", pipeline.name);
    let mut problem =
        |location: String, message: String| problems.push(Problem { location, message });
    let mut schemas: HashMap<PortRef, SchemaRef> = HashMap::new();
    let mut lookup_schemas: HashMap<(usize, String), SchemaRef> = HashMap::new();

    match &pipeline.source {
        Source::Kafka { .. } => {
            schemas.insert(PortRef::Source, records::schema());
        }
        Source::Files(spec) => {
            if !spec.dir.is_dir() {
                problem(
                    format!("{here} > source.files.dir"),
                    format!("{} is not a directory", spec.dir.display()),
                );
            } else {
                match crate::landing::source_schema(spec, checkpoint) {
                    Ok(schema) => {
                        schemas.insert(PortRef::Source, schema);
                    }
                    Err(e) => problem(format!("{here} > source.files"), e.to_string()),
                }
            }
        }
        Source::Changes(changes) => {
            let mut found = Vec::new();
            if let Some(schema) =
                super::validate_changes::source_schema(&here, changes, produced, &mut found).await
            {
                schemas.insert(PortRef::Source, schema);
            }
            for p in found {
                problem(p.location, p.message);
            }
        }
        Source::Delta { table: path, .. } => {
            let upstream = produced
                .iter()
                .find(|(t, _)| same_table(t, path))
                .map(|(_, s)| s.clone());
            match table::open(path).await {
                Ok(Some(existing)) => {
                    match table::change_data_feed_enabled(path, &existing) {
                        Ok(true) => {}
                        Ok(false) => problem(
                            format!("{here} > source.delta.table"),
                            format!(
                                "{} does not have Change Data Feed enabled, which the Delta source reads; \
                                 set the table property delta.enableChangeDataFeed = true",
                                path.display()
                            ),
                        ),
                        Err(e) => problem(format!("{here} > source.delta.table"), e.to_string()),
                    }
                    match table::arrow_schema(path, &existing) {
                        Ok(schema) => {
                            schemas.insert(PortRef::Source, schema);
                        }
                        Err(e) => problem(format!("{here} > source.delta.table"), e.to_string()),
                    }
                }
                Ok(None) => match upstream {
                    Some(schema) => {
                        schemas.insert(PortRef::Source, schema);
                    }
                    None => problem(
                        format!("{here} > source.delta.table"),
                        format!(
                            "{} is not a Delta table, and no pipeline in this file writes it",
                            path.display()
                        ),
                    ),
                },
                Err(e) => problem(format!("{here} > source.delta.table"), e.to_string()),
            }
        }
    }

    let mut loaded: Vec<Option<LoadedPlugin>> = vec![None; pipeline.stages.len()];
    for (index, stage) in pipeline.stages.iter().enumerate() {
        let at = format!("{here} > stage \"{}\"", stage.name);
        let plugin = match engine.load(&stage.plugin) {
            Ok(plugin) => plugin,
            Err(e) => {
                problem(format!("{at} > plugin"), e.to_string());
                continue;
            }
        };
        loaded[index] = Some(plugin.clone());
        let mut instance = match plugin.instantiate(&stage.config_json, stage.limits) {
            Ok(instance) => instance,
            Err(e) => {
                problem(format!("{at} > config"), e.to_string());
                continue;
            }
        };
        if !schemas.contains_key(&stage.input)
            && let Some(message) = undeclared_output(pipeline, &loaded, &schemas, &stage.input)
        {
            problem(format!("{at} > input"), message);
        }
        let Some(input_schema) = schemas.get(&stage.input).cloned() else {
            continue; // the upstream problem is already reported
        };
        let Some(input_port) = instance.ports().inputs.first().cloned() else {
            problem(
                at.clone(),
                format!("{} declares no input port", plugin.identity()),
            );
            continue;
        };
        if let Some(declared) = &input_port.schema
            && let Err(reason) = weir_sdk::schema::check_input_fits(declared, &input_schema)
        {
            {
                problem(
                    format!("{at} > input"),
                    format!(
                        "{} (from {}) does not fit input port `{}` of {}: {reason}",
                        pipeline.port_name(&stage.input),
                        describe_schema(&input_schema),
                        input_port.name,
                        plugin.identity()
                    ),
                );
                continue;
            }
        }
        let mut probe = vec![(
            input_port.name.clone(),
            RecordBatch::new_empty(input_schema),
        )];
        let mut lookups_known = true;
        for lookup in &stage.lookups {
            let (port, path) = (&lookup.port, &lookup.table);
            let at = format!("{at} > lookup.{port}");
            if !instance.ports().inputs.iter().any(|p| &p.name == port) {
                let ports: Vec<String> = instance
                    .ports()
                    .inputs
                    .iter()
                    .map(|p| format!("`{}`", p.name))
                    .collect();
                problem(
                    at.clone(),
                    format!(
                        "{} has no input port `{port}` (its input ports: {})",
                        plugin.identity(),
                        ports.join(", ")
                    ),
                );
            }
            let upstream = produced
                .iter()
                .find(|(t, _)| same_table(t, path))
                .map(|(_, s)| s.clone());
            let schema = match table::open(path).await {
                Ok(Some(existing)) => table::arrow_schema(path, &existing)
                    .map_err(|e| problem(at.clone(), e.to_string()))
                    .ok(),
                Ok(None) => {
                    if upstream.is_none() {
                        problem(
                            at.clone(),
                            format!(
                                "{} is not a Delta table, and no pipeline in this file writes it",
                                path.display()
                            ),
                        );
                    }
                    upstream
                }
                Err(e) => {
                    problem(at.clone(), e.to_string());
                    None
                }
            };
            if let (Some(key), Some(schema)) = (&lookup.key, &schema) {
                let input = probe[0].1.schema();
                match (schema.field_with_name(key), input.field_with_name(key)) {
                    (Err(_), _) => problem(
                        format!("{at}.key"),
                        format!(
                            "{} has no column `{key}` (its columns: {})",
                            path.display(),
                            describe_schema(schema)
                        ),
                    ),
                    (_, Err(_)) => problem(
                        format!("{at}.key"),
                        format!(
                            "the stage's input ({}) has no column `{key}`",
                            describe_schema(&input)
                        ),
                    ),
                    (Ok(table), Ok(stream)) if table.data_type() != stream.data_type() => problem(
                        format!("{at}.key"),
                        format!(
                            "column `{key}` is {} in {} but {} in the stage's input; the types must match",
                            table.data_type(),
                            path.display(),
                            stream.data_type()
                        ),
                    ),
                    _ => {}
                }
            }
            match schema {
                Some(schema) => {
                    lookup_schemas.insert((index, port.clone()), schema.clone());
                    probe.push((port.clone(), RecordBatch::new_empty(schema)));
                }
                None => lookups_known = false,
            }
        }
        if !lookups_known {
            continue;
        }
        match instance.process(&probe, CallContext::default()) {
            Ok(outputs) => {
                let mut found: BTreeMap<String, SchemaRef> = outputs
                    .into_iter()
                    .map(|(port, batch)| (port, batch.schema()))
                    .collect();
                for port in &instance.ports().outputs {
                    let schema = found.remove(&port.name).or_else(|| port.schema.clone());
                    if let Some(schema) = schema {
                        schemas.insert(
                            PortRef::Stage {
                                stage: index,
                                port: port.name.clone(),
                            },
                            schema,
                        );
                    }
                }
            }
            Err(e) => problem(
                at.clone(),
                format!("running the plugin on an empty batch of its input schema failed: {e}"),
            ),
        }
        if let Some(dedupe) = &stage.dedupe {
            let out = PortRef::Stage {
                stage: index,
                port: "out".into(),
            };
            if let Some(schema) = schemas.get(&out) {
                for key in &dedupe.key {
                    if schema.field_with_name(key).is_err() {
                        problem(
                            format!("{at} > dedupe.key"),
                            format!(
                                "column `{key}` is not in `out` ({})",
                                describe_schema(schema)
                            ),
                        );
                    }
                }
                match schema.field_with_name(&dedupe.event_time) {
                    Ok(field) if matches!(field.data_type(), DataType::Timestamp(_, _)) => {}
                    Ok(field) => problem(
                        format!("{at} > dedupe.event_time"),
                        format!(
                            "column `{}` is {}, not a timestamp",
                            dedupe.event_time,
                            field.data_type()
                        ),
                    ),
                    Err(_) => problem(
                        format!("{at} > dedupe.event_time"),
                        format!(
                            "column `{}` is not in `out` ({})",
                            dedupe.event_time,
                            describe_schema(schema)
                        ),
                    ),
                }
            } else {
                problem(
                    format!("{at} > dedupe"),
                    "the stage has no `out` port to dedupe".into(),
                );
            }
        }
    }
    let plugins: Vec<LoadedPlugin> = loaded.iter().cloned().collect::<Option<_>>()?;

    for sink in &pipeline.sinks {
        let at = format!("{here} > sink \"{}\"", sink.name);
        let Some(schema) = schemas.get(&sink.from).cloned() else {
            if let Some(message) = undeclared_output(pipeline, &loaded, &schemas, &sink.from) {
                problem(format!("{at} > from"), message);
            }
            continue;
        };
        let stored = sink.table_schema(&schema);
        let incoming = match table::to_delta_schema(&stored) {
            Ok(delta) => delta,
            Err(reason) => {
                problem(
                    format!("{at} > from"),
                    format!("{}: {reason}", pipeline.port_name(&sink.from)),
                );
                continue;
            }
        };
        let mut require_column = |key: &str, column: &str| {
            if schema.field_with_name(column).is_err() {
                problem(
                    format!("{at} > {key}"),
                    format!(
                        "column `{column}` is not in {} ({})",
                        pipeline.port_name(&sink.from),
                        describe_schema(&schema)
                    ),
                );
            }
        };
        for column in &sink.partition_by {
            require_column("partition_by", column);
        }
        if let (SinkMode::Merge, Some(merge)) = (sink.mode, &sink.merge) {
            for column in &merge.on {
                require_column("merge.on", column);
            }
            for column in merge.update.keys() {
                require_column("merge.update", column);
            }
            if let Some(when) = &merge.when
                && let Err(reason) = crate::delta::merge_update::plan_predicate(when, &schema)
            {
                problem(
                    format!("{at} > merge.when"),
                    format!("`{when}` is not a valid condition over `t` and `s`: {reason}"),
                );
            }
            for (column, expression) in &merge.update {
                if schema.field_with_name(column).is_err() {
                    continue; // reported above
                }
                if let Err(reason) =
                    crate::delta::merge_update::plan(expression, column, &schema, &merge.on)
                {
                    problem(
                        format!("{at} > merge.update.{column}"),
                        format!(
                            "`{expression}` is not a valid SQL expression over `t` and `s`: {reason}"
                        ),
                    );
                }
            }
        }
        if let Some(upsert) = &sink.upsert {
            for (key, message) in crate::delta::upsert::check_columns(&schema, upsert) {
                problem(format!("{at} > upsert.{key}"), message);
            }
            if let Err(message) = crate::delta::upsert::check_tombstones(&stored, upsert).await {
                problem(format!("{at} > upsert.tombstones"), message);
            }
        }
        match table::open(&sink.table).await {
            Ok(Some(existing)) => match table::delta_schema(&sink.table, &existing) {
                Ok(current) => {
                    if let Err(reason) = table::check_fits(&current, &incoming) {
                        problem(
                            format!("{at} > table"),
                            format!(
                                "{} does not fit the existing table {}: {reason}",
                                pipeline.port_name(&sink.from),
                                sink.table.display()
                            ),
                        );
                    }
                }
                Err(e) => problem(format!("{at} > table"), e.to_string()),
            },
            Ok(None) => {}
            Err(e) => problem(format!("{at} > table"), e.to_string()),
        }
        match as_read_back(&stored) {
            Ok(read_back) => {
                produced.insert(sink.table.clone(), read_back);
            }
            Err(reason) => problem(format!("{at} > from"), reason),
        }
    }

    for sink in &pipeline.kafka_sinks {
        let at = format!("{here} > sink \"{}\"", sink.name);
        let Some(schema) = schemas.get(&sink.from).cloned() else {
            if let Some(message) = undeclared_output(pipeline, &loaded, &schemas, &sink.from) {
                problem(format!("{at} > from"), message);
            }
            continue;
        };
        let columns = sink
            .key
            .iter()
            .map(|c| {
                (
                    "kafka.key",
                    c,
                    crate::kafka::sink::key_type as fn(&DataType) -> bool,
                    "text, bytes or an integer",
                )
            })
            .chain([(
                "kafka.value",
                &sink.value,
                crate::kafka::sink::value_type as fn(&DataType) -> bool,
                "text, bytes or a struct (sent as JSON)",
            )])
            .chain(sink.headers.iter().map(|(_, c)| {
                (
                    "kafka.headers",
                    c,
                    crate::kafka::sink::text_or_bytes as fn(&DataType) -> bool,
                    "text or bytes",
                )
            }));
        for (key, column, fits, expected) in columns {
            match schema.field_with_name(column) {
                Err(_) => problem(
                    format!("{at} > {key}"),
                    format!(
                        "column `{column}` is not in {} ({})",
                        pipeline.port_name(&sink.from),
                        describe_schema(&schema)
                    ),
                ),
                Ok(field) if !fits(field.data_type()) => problem(
                    format!("{at} > {key}"),
                    format!(
                        "column `{column}` has type {}; it must be {expected}",
                        field.data_type()
                    ),
                ),
                Ok(_) => {}
            }
        }
    }

    match table::open(&pipeline.dead_letters).await {
        Ok(Some(existing)) => {
            let fits = table::delta_schema(&pipeline.dead_letters, &existing)
                .map_err(|e| e.to_string())
                .and_then(|current| {
                    // Tables written before the generic origin columns get them at start.
                    let expected =
                        table::to_delta_schema(&dead_letters::expected_schema(|column| {
                            current.field(column).is_some()
                        }))?;
                    table::check_fits(&current, &expected)
                });
            if let Err(reason) = fits {
                problem(
                    format!("{here} > dead_letters"),
                    format!(
                        "{} is not a Weir dead-letter table: {reason}",
                        pipeline.dead_letters.display()
                    ),
                );
            }
        }
        Ok(None) => {}
        Err(e) => problem(format!("{here} > dead_letters"), e.to_string()),
    }

    Some(PreparedPipeline {
        spec: pipeline.clone(),
        plugins,
        schemas,
        lookup_schemas,
        engine: engine.clone(),
    })
}

/// Says so when `port` names an output port its stage's plugin does not
/// declare: the configured ports when the stage was configured (a `route`
/// stage's ports come from its config), else the manifest's.
fn undeclared_output(
    pipeline: &Pipeline,
    loaded: &[Option<LoadedPlugin>],
    schemas: &HashMap<PortRef, SchemaRef>,
    port: &PortRef,
) -> Option<String> {
    let PortRef::Stage { stage, port } = port else {
        return None;
    };
    let mut declared: Vec<&str> = schemas
        .keys()
        .filter_map(|known| match known {
            PortRef::Stage { stage: s, port } if s == stage => Some(port.as_str()),
            _ => None,
        })
        .collect();
    declared.sort_unstable();
    if declared.is_empty() {
        declared = loaded[*stage]
            .as_ref()?
            .manifest()
            .outputs
            .iter()
            .map(|p| p.name.as_str())
            .collect();
    }
    (!declared.contains(&port.as_str())).then(|| {
        format!(
            "stage `{}` has no output port `{port}` (its ports: {})",
            pipeline.stages[*stage].name,
            declared.join(", ")
        )
    })
}

/// `(a: Utf8, b: Int64)`, for messages.
pub fn describe_schema(schema: &Schema) -> String {
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect();
    format!("({})", columns.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 10): counting the file's dead-letter table as
    /// written by every pipeline made two pipelines reading it depend on
    /// each other, and the file was refused as a cycle.
    #[test]
    fn regression_issue_10_dead_letter_readers_do_not_depend_on_each_other() {
        let mut text = String::from(
            "checkpoint_dir = \"/w/checkpoints\"\ndead_letters = \"/w/dead_letters\"\n\
             [[pipeline]]\nname = \"bronze\"\n[pipeline.source.files]\ndir = \"/w/landing\"\nformat = \"jsonl\"\n\
             [[pipeline.stage]]\nname = \"s\"\nplugin = \"/w/p.wasm\"\n\
             [[pipeline.sink]]\nname = \"bronze\"\ntable = \"/w/bronze\"\nmode = \"append\"\n",
        );
        for reader in ["triage", "triage2"] {
            text.push_str(&format!(
                "[[pipeline]]\nname = \"{reader}\"\n[pipeline.source.delta]\ntable = \"/w/dead_letters\"\n\
                 [[pipeline.stage]]\nname = \"s\"\nplugin = \"/w/p.wasm\"\n\
                 [[pipeline.sink]]\nname = \"{reader}\"\ntable = \"/w/{reader}\"\nmode = \"append\"\n"
            ));
        }
        let file = super::super::load::parse(Path::new("/w/p.toml"), &text, &|_| None)
            .unwrap_or_else(|problems| panic!("{problems:?}"));
        let upstream = upstream_of(&file.pipelines);
        assert!(upstream.iter().all(|u| u.source.is_empty()));
        assert_eq!(
            dependency_order(&file.pipelines, &upstream).unwrap().len(),
            3
        );
    }
}
