//! Reads a pipeline file into a [`PipelineFile`]: TOML syntax, `${VAR}`
//! substitution, the structure of every table, names and references. Each
//! `[[pipeline]]`, stage and sink is read on its own, so every broken part is
//! reported, not only the first; nothing here loads plugins or opens tables
//! (that is [`super::validate`]).

use super::env;
use super::model::{
    KafkaSink, Pipeline, PipelineFile, PortRef, Problem, Sink, Source, Stage, Upsert,
};
use super::spec::{
    FileSettings, KafkaConnection, PipelineHeader, SinkMode, SinkSpec, SourceSpec, StageSpec,
};
use serde::de::DeserializeOwned;
use std::collections::HashSet;
use std::path::Path;

/// Collects problems while a file is read.
pub(crate) struct Problems(pub Vec<Problem>);

impl Problems {
    pub(crate) fn push(&mut self, location: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            location: location.into(),
            message: message.into(),
        });
    }
}

/// Reads `text` (the contents of `path`). `lookup` resolves `${VAR}`s.
pub fn parse(
    path: &Path,
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<PipelineFile, Vec<Problem>> {
    let mut problems = Problems(Vec::new());
    let mut root: toml::Table = match toml::from_str(text) {
        Ok(root) => root,
        Err(error) => {
            let (line, column) = error
                .span()
                .map(|span| line_and_column(text, span.start))
                .unwrap_or((1, 1));
            problems.push(
                format!("line {line}, column {column}"),
                error.message().to_string(),
            );
            return Err(problems.0);
        }
    };
    let mut env_errors = Vec::new();
    for (key, value) in root.iter_mut() {
        env::substitute_tree(value, key, lookup, &mut env_errors);
    }
    for (key, message) in env_errors {
        problems.push(key, message);
    }

    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf());
    let pipeline_tables = match root.remove("pipeline") {
        Some(toml::Value::Array(items)) => items,
        Some(_) => {
            problems.push(
                "pipeline",
                "must be an array of tables: write `[[pipeline]]`",
            );
            Vec::new()
        }
        None => Vec::new(),
    };
    let settings: Option<FileSettings> =
        read_section(toml::Value::Table(root), "file", &mut problems);
    // A file with an admin API and no pipeline is a server waiting for deployments.
    if pipeline_tables.is_empty() && settings.as_ref().is_none_or(|s| s.admin.is_none()) {
        problems.push("file", "declares no pipeline; add a `[[pipeline]]` table");
    }

    let mut pipelines = Vec::new();
    let mut names = HashSet::new();
    for (index, table) in pipeline_tables.into_iter().enumerate() {
        if let Some(name) = table.get("name").and_then(|n| n.as_str())
            && !names.insert(name.to_string())
        {
            problems.push(
                format!("pipeline \"{name}\""),
                "the name is used by an earlier pipeline; names must be unique",
            );
        }
        if let Some(pipeline) = read_pipeline(index, table, &base, settings.as_ref(), &mut problems)
        {
            pipelines.push(pipeline);
        }
    }
    let admin = settings
        .as_ref()
        .and_then(|s| s.admin.as_ref())
        .and_then(|spec| read_admin(spec, &base, lookup, &mut problems));
    match settings {
        Some(settings) if problems.0.is_empty() => Ok(PipelineFile {
            path: path.to_path_buf(),
            checkpoint_dir: base.join(settings.checkpoint_dir),
            pipelines,
            admin,
        }),
        _ => Err(problems.0),
    }
}

/// Resolves `[admin]`: the address must parse, and exactly one token source
/// must be named and hold a non-empty token (read now, so a missing token
/// stops the file before anything starts; the token is never printed).
fn read_admin(
    spec: &super::spec::AdminSpec,
    base: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Option<super::model::Admin> {
    let address = match spec.address.parse::<std::net::SocketAddr>() {
        Ok(address) => Some(address),
        Err(_) => {
            problems.push(
                "admin.address",
                format!(
                    "`{}` is not an IP:port address such as \"127.0.0.1:9870\"",
                    spec.address
                ),
            );
            None
        }
    };
    let token = match (&spec.token_env, &spec.token_file) {
        (Some(_), Some(_)) => {
            problems.push("admin", "set either `token_env` or `token_file`, not both");
            None
        }
        (None, None) => {
            problems.push(
                "admin",
                "the admin API needs a bearer token: set `token_env = \"VAR\"` (an environment \
                 variable holding it) or `token_file = \"PATH\"`",
            );
            None
        }
        (Some(var), None) => match lookup(var).map(|t| t.trim().to_string()) {
            Some(token) if !token.is_empty() => Some(token),
            _ => {
                problems.push(
                    "admin.token_env",
                    format!("the environment variable {var} is not set or empty"),
                );
                None
            }
        },
        (None, Some(file)) => {
            let file = base.join(file);
            match std::fs::read_to_string(&file).map(|t| t.trim().to_string()) {
                Ok(token) if !token.is_empty() => Some(token),
                Ok(_) => {
                    problems.push("admin.token_file", format!("{} is empty", file.display()));
                    None
                }
                Err(e) => {
                    problems.push(
                        "admin.token_file",
                        format!("cannot read {}: {e}", file.display()),
                    );
                    None
                }
            }
        }
    };
    Some(super::model::Admin {
        address: address?,
        token: token?,
    })
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// Deserializes one table, recording a problem located at `location` plus the
/// key path inside the table on failure.
fn read_section<T: DeserializeOwned>(
    value: toml::Value,
    location: &str,
    problems: &mut Problems,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(parsed) => Some(parsed),
        Err(error) => {
            let key = error.path().to_string();
            let location = if key == "." || key.is_empty() {
                location.to_string()
            } else {
                format!("{location} > {key}")
            };
            problems.push(location, error.into_inner().message().to_string());
            None
        }
    }
}

/// Takes the `[[KEY]]` array out of a pipeline table.
fn take_array(
    table: &mut toml::Table,
    key: &str,
    location: &str,
    problems: &mut Problems,
) -> Vec<toml::Value> {
    match table.remove(key) {
        Some(toml::Value::Array(items)) => items,
        Some(_) => {
            problems.push(
                format!("{location} > {key}"),
                format!("must be an array of tables: write `[[pipeline.{key}]]`"),
            );
            Vec::new()
        }
        None => Vec::new(),
    }
}

fn read_pipeline(
    index: usize,
    value: toml::Value,
    base: &Path,
    settings: Option<&FileSettings>,
    problems: &mut Problems,
) -> Option<Pipeline> {
    let toml::Value::Table(mut table) = value else {
        problems.push(format!("pipeline[{index}]"), "must be a table");
        return None;
    };
    let location = match table.get("name").and_then(|n| n.as_str()) {
        Some(name) => format!("pipeline \"{name}\""),
        None => format!("pipeline[{index}]"),
    };
    let stage_tables = take_array(&mut table, "stage", &location, problems);
    let sink_tables = take_array(&mut table, "sink", &location, problems);
    let header: Option<PipelineHeader> =
        read_section(toml::Value::Table(table), &location, problems);

    let mut stages = Vec::new();
    let mut stage_names: Vec<String> = Vec::new();
    for (i, value) in stage_tables.into_iter().enumerate() {
        let stage_location = stage_location(&location, "stage", i, &value);
        let Some(spec) = read_section::<StageSpec>(value, &stage_location, problems) else {
            stage_names.push(String::new());
            continue;
        };
        let name = spec.name.clone();
        if stage_names.contains(&name) {
            problems.push(
                &stage_location,
                "the name is used by an earlier stage of this pipeline",
            );
        }
        if let Some(stage) = resolve_stage(i, spec, &stage_names, base, &stage_location, problems) {
            stages.push(stage);
        }
        stage_names.push(name);
    }
    if stage_names.is_empty() {
        problems.push(
            &location,
            "has no stage; add a `[[pipeline.stage]]` with a plugin",
        );
    }

    let mut sinks = Vec::new();
    let mut kafka_sinks = Vec::new();
    let declared_sinks = sink_tables.len();
    for (i, value) in sink_tables.into_iter().enumerate() {
        let sink_location = stage_location(&location, "sink", i, &value);
        let Some(spec) = read_section::<SinkSpec>(value, &sink_location, problems) else {
            continue;
        };
        if sinks.iter().any(|s: &Sink| s.name == spec.name)
            || kafka_sinks.iter().any(|s: &KafkaSink| s.name == spec.name)
        {
            problems.push(
                &sink_location,
                "the name is used by an earlier sink of this pipeline",
            );
        }
        if spec.kafka.is_some() {
            let connection = settings.and_then(|s| s.kafka.as_ref());
            if let Some(sink) =
                resolve_kafka_sink(spec, &stage_names, connection, &sink_location, problems)
            {
                kafka_sinks.push(sink);
            }
        } else if let Some(sink) = resolve_sink(spec, &stage_names, base, &sink_location, problems)
        {
            sinks.push(sink);
        }
    }
    if declared_sinks == 0 {
        problems.push(
            &location,
            "has no sink; add a `[[pipeline.sink]]` with a Delta table or a Kafka topic",
        );
    }

    let header = header?;
    let source = match header.source {
        SourceSpec::Kafka(kafka) => {
            let connection = kafka
                .connection
                .or_else(|| settings.and_then(|s| s.kafka.clone()));
            if kafka.topics.is_empty() || kafka.topics.iter().any(|t| t.trim().is_empty()) {
                problems.push(
                    format!("{location} > source.kafka.topics"),
                    "needs at least one non-empty topic name",
                );
            }
            if kafka.group_id.trim().is_empty() {
                problems.push(
                    format!("{location} > source.kafka.group_id"),
                    "must not be empty",
                );
            }
            let Some(connection) = connection else {
                // Without file settings the file-level problem is already reported.
                settings?;
                problems.push(
                    format!("{location} > source.kafka"),
                    "no Kafka connection: add a top-level `[kafka]` table with `brokers`, or `[pipeline.source.kafka.connection]`",
                );
                return None;
            };
            if connection.brokers.trim().is_empty() {
                problems.push(
                    format!("{location} > source.kafka"),
                    "the Kafka connection's `brokers` is empty",
                );
            }
            Source::Kafka {
                topics: kafka.topics,
                group_id: kafka.group_id,
                start: kafka.start,
                connection,
                fail_on_data_loss: kafka.fail_on_data_loss,
            }
        }
        SourceSpec::Delta(delta) => Source::Delta {
            table: base.join(delta.table),
            start: delta.start,
            poll_interval: delta.poll_interval,
        },
        SourceSpec::Changes(changes) => {
            let at = format!("{location} > source.changes");
            if changes.tables.is_empty() {
                problems.push(
                    format!("{at}.tables"),
                    "names no table; add `NAME = \"path/to/table\"`",
                );
            }
            match &changes.columns {
                None if changes.tables.len() > 1 => problems.push(
                    format!("{at}.columns"),
                    "is required with several tables: list the columns every table has (e.g. the key) that the changes should carry",
                ),
                Some(columns) if columns.is_empty() => {
                    problems.push(format!("{at}.columns"), "is empty; list at least one column")
                }
                Some(columns) => {
                    for column in columns {
                        if column.starts_with('_') && crate::delta::change_source::EXTRA_COLUMNS.contains(&column.as_str()) {
                            problems.push(
                                format!("{at}.columns"),
                                format!("`{column}` is added by the source itself; leave it out"),
                            );
                        }
                    }
                }
                None => {}
            }
            Source::Changes(super::model::Changes {
                tables: changes
                    .tables
                    .into_iter()
                    .map(|(name, table)| (name, base.join(table)))
                    .collect(),
                columns: changes.columns,
                start: changes.start,
                pre_images: changes.pre_images,
                poll_interval: changes.poll_interval,
            })
        }
        SourceSpec::Files(files) => match crate::landing::resolve(files, base) {
            Ok(spec) => Source::Files(spec),
            Err(found) => {
                for (key, message) in found {
                    problems.push(format!("{location} > source.files.{key}"), message);
                }
                return None;
            }
        },
    };
    let batch = header.batch;
    if batch.max_records == 0 || batch.max_bytes == 0 {
        problems.push(
            format!("{location} > batch"),
            "max_records and max_bytes must be positive",
        );
    }
    if header.name.trim().is_empty()
        || !header
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        problems.push(
            &location,
            "name must be non-empty and use only letters, digits, `-` and `_`",
        );
    }
    let dead_letters = header
        .dead_letters
        .or_else(|| settings.and_then(|s| s.dead_letters.clone()));
    let Some(dead_letters) = dead_letters else {
        settings?;
        problems.push(
            &location,
            "has no dead-letter table: set `dead_letters` on the pipeline or at the top of the file",
        );
        return None;
    };
    Some(Pipeline {
        name: header.name,
        source,
        batch,
        dead_letters: base.join(dead_letters),
        stages,
        sinks,
        kafka_sinks,
    })
}

fn stage_location(pipeline: &str, kind: &str, index: usize, value: &toml::Value) -> String {
    match value.get("name").and_then(|n| n.as_str()) {
        Some(name) => format!("{pipeline} > {kind} \"{name}\""),
        None => format!("{pipeline} > {kind}[{index}]"),
    }
}

/// Parses `"source"` or `"STAGE.PORT"` against the stages declared so far.
fn resolve_port(
    text: &str,
    earlier: &[String],
    key: &str,
    location: &str,
    problems: &mut Problems,
) -> Option<PortRef> {
    if text == "source" {
        return Some(PortRef::Source);
    }
    let Some((stage, port)) = text.split_once('.') else {
        problems.push(
            format!("{location} > {key}"),
            format!("`{text}` is neither `source` nor `STAGE.PORT` (e.g. `parse.out`)"),
        );
        return None;
    };
    match earlier.iter().position(|name| name == stage) {
        Some(index) => Some(PortRef::Stage {
            stage: index,
            port: port.to_string(),
        }),
        None => {
            let known = earlier
                .iter()
                .filter(|n| !n.is_empty())
                .cloned()
                .collect::<Vec<_>>();
            problems.push(
                format!("{location} > {key}"),
                format!(
                    "`{text}` names stage `{stage}`, which is not declared before this point (declared: {})",
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                ),
            );
            None
        }
    }
}

fn resolve_stage(
    index: usize,
    spec: StageSpec,
    earlier: &[String],
    base: &Path,
    location: &str,
    problems: &mut Problems,
) -> Option<Stage> {
    let input = match &spec.input {
        Some(text) => resolve_port(text, earlier, "input", location, problems)?,
        None if index == 0 => PortRef::Source,
        None => PortRef::Stage {
            stage: index - 1,
            port: "out".into(),
        },
    };
    let config_json = match (&spec.config, &spec.config_file) {
        (Some(_), Some(_)) => {
            problems.push(location, "set either `config` or `config_file`, not both");
            return None;
        }
        (Some(table), None) => match serde_json::to_string(table) {
            Ok(json) => json,
            Err(e) => {
                problems.push(
                    format!("{location} > config"),
                    format!("cannot be expressed as JSON: {e}"),
                );
                return None;
            }
        },
        (None, Some(file)) => {
            let file = base.join(file);
            match std::fs::read_to_string(&file) {
                Ok(json) => json,
                Err(e) => {
                    problems.push(
                        format!("{location} > config_file"),
                        format!("cannot read {}: {e}", file.display()),
                    );
                    return None;
                }
            }
        }
        (None, None) => "{}".to_string(),
    };
    if let Err(message) = spec.limits.validate() {
        problems.push(format!("{location} > limits"), message);
    }
    if spec.max_call_records == Some(0) {
        problems.push(
            format!("{location} > max_call_records"),
            "must be at least 1 (leave it out for one call per epoch)",
        );
    }
    if let Some(dedupe) = &spec.dedupe
        && dedupe.key.is_empty()
    {
        problems.push(
            format!("{location} > dedupe.key"),
            "needs at least one column",
        );
    }
    for (key, ratio) in [
        ("max_rejected_ratio", spec.max_rejected_ratio),
        (
            "swap.max_rejected_ratio",
            Some(spec.swap.max_rejected_ratio),
        ),
        ("poison.max_ratio", Some(spec.poison.max_ratio)),
    ] {
        if let Some(ratio) = ratio
            && !(0.0..=1.0).contains(&ratio)
        {
            problems.push(
                format!("{location} > {key}"),
                format!("{ratio} is not a share between 0.0 and 1.0"),
            );
        }
    }
    for (port, lookup) in &spec.lookup {
        if lookup.key.is_some() && input != PortRef::Source {
            problems.push(
                format!("{location} > lookup.{port}.key"),
                "a keyed lookup reads the keys of the epoch's source rows, so its stage must take \
                 `input = \"source\"`; drop `key` to read the whole table",
            );
        }
    }
    Some(Stage {
        name: spec.name,
        plugin: base.join(spec.plugin),
        input,
        config_json,
        limits: spec.limits,
        dedupe: spec.dedupe,
        max_rejected_ratio: spec.max_rejected_ratio,
        max_call_records: spec.max_call_records,
        lookups: spec
            .lookup
            .into_iter()
            .map(|(port, lookup)| super::model::Lookup {
                port,
                table: base.join(lookup.table),
                key: lookup.key,
            })
            .collect(),
        watch: spec.watch,
        swap: spec.swap,
        poison: spec.poison,
    })
}

/// The stage output a sink writes (default: the last stage's `out`).
fn resolve_sink_from(
    from: Option<&String>,
    stages: &[String],
    location: &str,
    problems: &mut Problems,
) -> Option<PortRef> {
    let from = match from {
        Some(text) => resolve_port(text, stages, "from", location, problems)?,
        None if stages.is_empty() => return None,
        None => PortRef::Stage {
            stage: stages.len() - 1,
            port: "out".into(),
        },
    };
    if from == PortRef::Source {
        problems.push(
            format!("{location} > from"),
            "a sink writes a stage output (`STAGE.PORT`), not the raw source",
        );
        return None;
    }
    Some(from)
}

/// A `[pipeline.sink.kafka]` sink; the Delta keys must be absent.
fn resolve_kafka_sink(
    spec: SinkSpec,
    stages: &[String],
    file_connection: Option<&KafkaConnection>,
    location: &str,
    problems: &mut Problems,
) -> Option<KafkaSink> {
    let kafka = spec.kafka?;
    let delta_keys = [
        ("table", spec.table.is_some()),
        ("mode", spec.mode.is_some()),
        ("merge", spec.merge.is_some()),
        ("upsert", spec.upsert.is_some()),
        ("partition_by", !spec.partition_by.is_empty()),
        ("properties", !spec.properties.is_empty()),
    ];
    for (key, present) in delta_keys {
        if present {
            problems.push(
                format!("{location} > {key}"),
                "applies to Delta sinks only; a `[pipeline.sink.kafka]` sink writes a topic",
            );
        }
    }
    let at = format!("{location} > kafka");
    if spec.name.is_empty()
        || !spec
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        problems.push(
            format!("{location} > name"),
            "a Kafka sink's name must be non-empty and use only letters, digits, `-` and `_` (it names a file in the checkpoint directory)",
        );
    }
    if kafka.topic.trim().is_empty() {
        problems.push(format!("{at}.topic"), "is empty");
    }
    if kafka.partitions < 1 {
        problems.push(format!("{at}.partitions"), "must be at least 1");
    }
    for name in kafka.headers.keys() {
        if crate::kafka::sink::RESERVED_HEADERS.contains(&name.as_str()) {
            problems.push(
                format!("{at}.headers"),
                format!("`{name}` is set by Weir on every message; name the header otherwise"),
            );
        }
    }
    let Some(connection) = kafka.connection.or_else(|| file_connection.cloned()) else {
        problems.push(
            at,
            "no Kafka connection: add a top-level `[kafka]` table with `brokers`, or `[pipeline.sink.kafka.connection]`",
        );
        return None;
    };
    let from = resolve_sink_from(spec.from.as_ref(), stages, location, problems)?;
    Some(KafkaSink {
        name: spec.name,
        from,
        topic: kafka.topic,
        key: kafka.key,
        value: kafka.value,
        headers: kafka.headers.into_iter().collect(),
        partitions: kafka.partitions,
        connection,
    })
}

fn resolve_sink(
    spec: SinkSpec,
    stages: &[String],
    base: &Path,
    location: &str,
    problems: &mut Problems,
) -> Option<Sink> {
    let (Some(table), Some(mode)) = (spec.table.clone(), spec.mode) else {
        problems.push(
            location,
            "needs `table` and `mode` (a Delta sink), or a `[pipeline.sink.kafka]` table (a Kafka sink)",
        );
        return None;
    };
    match (mode, &spec.merge) {
        (SinkMode::Merge, None) => {
            problems.push(
                location,
                "mode = \"merge\" needs a `[pipeline.sink.merge]` table with `on` key columns",
            );
        }
        (SinkMode::Merge, Some(merge)) if merge.on.is_empty() => {
            problems.push(
                format!("{location} > merge.on"),
                "needs at least one key column",
            );
        }
        (SinkMode::Append | SinkMode::Upsert, Some(_)) => {
            problems.push(location, "a `merge` table only applies to mode = \"merge\"");
        }
        _ => {}
    }
    let upsert = match (mode, spec.upsert) {
        (SinkMode::Upsert, None) => {
            problems.push(
                location,
                "mode = \"upsert\" needs a `[pipeline.sink.upsert]` table with `key` and `order_by`",
            );
            None
        }
        (SinkMode::Upsert, Some(upsert)) => {
            if upsert.key.is_empty() {
                let at = format!("{location} > upsert.key");
                problems.push(at, "needs at least one key column");
            }
            if upsert.key.contains(&upsert.order_by) {
                let message = format!(
                    "`{}` is a key column; the ordering column must be another one (a key's changes would always tie)",
                    upsert.order_by
                );
                problems.push(format!("{location} > upsert.order_by"), message);
            }
            if upsert.key.contains(&upsert.deleted) || upsert.order_by == upsert.deleted {
                let message = format!(
                    "`{}` marks deletes; it cannot also be a key or the ordering column",
                    upsert.deleted
                );
                problems.push(format!("{location} > upsert.deleted"), message);
            }
            let table = base.join(&table);
            let tombstones = match upsert.tombstones {
                Some(path) => base.join(path),
                None => {
                    let mut name = table.file_name().unwrap_or_default().to_os_string();
                    name.push("_tombstones");
                    table.with_file_name(name)
                }
            };
            if tombstones == table {
                let message = "the tombstone table must not be the table itself";
                problems.push(format!("{location} > upsert.tombstones"), message);
            }
            Some(Upsert {
                key: upsert.key,
                order_by: upsert.order_by,
                deleted: upsert.deleted,
                tombstones,
            })
        }
        (_, Some(_)) => {
            problems.push(
                location,
                "an `upsert` table only applies to mode = \"upsert\"",
            );
            None
        }
        (_, None) => None,
    };
    let from = resolve_sink_from(spec.from.as_ref(), stages, location, problems)?;
    let mut properties = spec.properties;
    if mode != SinkMode::Append {
        properties
            .entry("delta.enableChangeDataFeed".into())
            .or_insert_with(|| "true".into());
    }
    Some(Sink {
        name: spec.name,
        from,
        table: base.join(table),
        mode,
        merge: spec.merge,
        upsert,
        partition_by: spec.partition_by,
        properties,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::spec::SinkMode;

    fn parse_text(text: &str) -> Result<PipelineFile, Vec<Problem>> {
        parse(Path::new("/pipelines/p.toml"), text, &|name| {
            (name == "BROKERS").then(|| "k:9092".to_string())
        })
    }

    const MINIMAL: &str = r#"
checkpoint_dir = "chk"
dead_letters = "tables/dl"
[kafka]
brokers = "${BROKERS}"
[[pipeline]]
name = "p"
[pipeline.source.kafka]
topics = ["t"]
group_id = "g"
[[pipeline.stage]]
name = "a"
plugin = "a.wasm"
config = { x = 1 }
[[pipeline.stage]]
name = "b"
plugin = "b.wasm"
[[pipeline.sink]]
name = "s"
table = "tables/s"
mode = "merge"
merge = { on = ["k"] }
"#;

    #[test]
    fn defaults_resolve_wiring_paths_and_properties() {
        let file = parse_text(MINIMAL).unwrap();
        assert_eq!(file.checkpoint_dir, Path::new("/pipelines/chk"));
        let p = &file.pipelines[0];
        assert_eq!(p.dead_letters, Path::new("/pipelines/tables/dl"));
        assert_eq!(p.stages[0].input, PortRef::Source);
        assert_eq!(
            p.stages[1].input,
            PortRef::Stage {
                stage: 0,
                port: "out".into()
            }
        );
        assert_eq!(p.stages[0].config_json, r#"{"x":1}"#);
        assert_eq!(p.stages[1].config_json, "{}");
        assert_eq!(
            p.sinks[0].from,
            PortRef::Stage {
                stage: 1,
                port: "out".into()
            }
        );
        assert_eq!(p.sinks[0].mode, SinkMode::Merge);
        assert_eq!(
            p.sinks[0]
                .properties
                .get("delta.enableChangeDataFeed")
                .map(String::as_str),
            Some("true")
        );
        assert_eq!(p.app_id("s"), "weir:p:s");
        let Source::Kafka { connection, .. } = &p.source else {
            panic!("kafka source")
        };
        assert_eq!(connection.brokers, "k:9092");
    }

    #[test]
    fn max_call_records_is_read_and_zero_is_refused_by_key() {
        let file = parse_text(&MINIMAL.replace(
            "plugin = \"a.wasm\"",
            "plugin = \"a.wasm\"\nmax_call_records = 16384",
        ))
        .unwrap();
        assert_eq!(file.pipelines[0].stages[0].max_call_records, Some(16384));
        assert_eq!(file.pipelines[0].stages[1].max_call_records, None);
        let problems = parse_text(&MINIMAL.replace(
            "plugin = \"a.wasm\"",
            "plugin = \"a.wasm\"\nmax_call_records = 0",
        ))
        .unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|p| p.contains("max_call_records") && p.contains("at least 1")),
            "{text:?}"
        );
    }

    #[test]
    fn syntax_errors_give_line_and_column() {
        let problems = parse_text("checkpoint_dir = \"x\"\n[[pipeline]\n").unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].location.starts_with("line 2"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn a_file_without_pipelines_or_checkpoint_dir_says_so() {
        let problems = parse_text("").unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(
            text.iter().any(|p| p.contains("checkpoint_dir")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|p| p.contains("declares no pipeline")),
            "{text:?}"
        );
    }

    #[test]
    fn a_stage_input_must_name_an_earlier_stage() {
        let text = MINIMAL.replace("name = \"a\"\n", "name = \"a\"\ninput = \"b.out\"\n");
        let problems = parse_text(&text).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.message.contains("not declared before this point")),
            "{problems:?}"
        );
    }

    #[test]
    fn an_upsert_sink_resolves_its_tombstones_and_refuses_ambiguous_columns() {
        let upsert = MINIMAL.replace(
            "mode = \"merge\"\nmerge = { on = [\"k\"] }",
            "mode = \"upsert\"\nupsert = { key = [\"k\"], order_by = \"ts\" }",
        );
        let file = parse_text(&upsert).unwrap();
        let resolved = file.pipelines[0].sinks[0].upsert.clone().unwrap();
        assert_eq!(
            resolved.tombstones,
            Path::new("/pipelines/tables/s_tombstones")
        );
        assert_eq!(resolved.deleted, "_deleted");

        let bad = upsert.replace("order_by = \"ts\"", "order_by = \"k\", deleted = \"k\"");
        let problems = parse_text(&bad).unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|p| p.contains("upsert.order_by: `k` is a key column")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|p| p.contains("upsert.deleted: `k` marks deletes")),
            "{text:?}"
        );
        let merge_table = upsert.replace("mode = \"upsert\"", "mode = \"merge\"");
        let problems = parse_text(&merge_table).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.message.contains("only applies to mode = \"upsert\"")),
            "{problems:?}"
        );
    }
}
