//! Creates every sink and dead-letter table a file needs before any pipeline
//! starts (sequentially, so pipelines sharing a table never race to create
//! it). New tables take the schema of the port that feeds them (an upsert
//! sink's without its delete marker, plus its tombstone table), the sink's
//! partition columns and properties, Change Data Feed on by default so a
//! downstream Delta source can read them, and an explicit
//! `delta.checkpointInterval` (Spark's default, 10) so every reader agrees on
//! when `_delta_log` checkpoints are written; the `txn` versions recovery
//! relies on survive them (Delta protocol: checkpoints carry `txn` actions).

use crate::delta::{dead_letters, table};
use crate::pipeline::PreparedFile;
use crate::run::RunError;
use std::collections::BTreeMap;

/// Table properties of every table Weir creates, unless the sink sets them.
pub const DEFAULT_PROPERTIES: [(&str, &str); 2] = [
    ("delta.enableChangeDataFeed", "true"),
    ("delta.checkpointInterval", "10"),
];

/// Creates the missing tables; returns the directories it created.
pub async fn create_missing(file: &PreparedFile) -> Result<Vec<std::path::PathBuf>, RunError> {
    let mut created = Vec::new();
    for prepared in &file.pipelines {
        let pipeline = &prepared.spec;
        let fail = |source| RunError::Delta {
            pipeline: pipeline.name.clone(),
            source,
        };
        let mut wanted = Vec::new();
        for sink in &pipeline.sinks {
            let schema = prepared.schemas.get(&sink.from).cloned().ok_or_else(|| {
                fail(crate::delta::DeltaError::Schema {
                    table: sink.table.clone(),
                    reason: format!("no schema is known for {}", pipeline.port_name(&sink.from)),
                })
            })?;
            let mut properties = sink.properties.clone();
            for (key, value) in DEFAULT_PROPERTIES {
                properties
                    .entry(key.to_string())
                    .or_insert_with(|| value.to_string());
            }
            let stored = sink.table_schema(&schema);
            if let Some(upsert) = &sink.upsert {
                let tombstones =
                    crate::delta::upsert::tombstone_schema(&stored, upsert).map_err(|reason| {
                        fail(crate::delta::DeltaError::Schema {
                            table: upsert.tombstones.clone(),
                            reason,
                        })
                    })?;
                // No Change Data Feed: nothing reads the tombstones' changes.
                let properties = DEFAULT_PROPERTIES
                    .iter()
                    .filter(|(k, _)| *k != "delta.enableChangeDataFeed")
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                wanted.push((upsert.tombstones.clone(), tombstones, vec![], properties));
            }
            wanted.push((
                sink.table.clone(),
                stored,
                sink.partition_by.clone(),
                properties,
            ));
        }
        wanted.push((
            pipeline.dead_letters.clone(),
            dead_letters::schema(),
            vec!["pipeline".to_string()],
            DEFAULT_PROPERTIES
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        ));
        let dead_letter_table = pipeline.dead_letters.clone();
        for (path, schema, partition_by, properties) in wanted {
            if let Some(existing) = table::open(&path).await.map_err(fail)? {
                if path == dead_letter_table {
                    // A dead-letter table of the first version gets the
                    // generic origin columns here, once, before any pipeline
                    // (several may share it) starts writing.
                    table::add_missing_nullable_columns(&path, existing, &schema)
                        .await
                        .map_err(fail)?;
                }
                continue;
            }
            let delta_schema = table::to_delta_schema(&schema).map_err(|reason| {
                fail(crate::delta::DeltaError::Schema {
                    table: path.clone(),
                    reason,
                })
            })?;
            let record = vec![(
                crate::delta::commit_info::KEY.to_string(),
                serde_json::json!({ "pipeline": pipeline.name, "created_by": "weir" }),
            )];
            table::create(&path, &delta_schema, &partition_by, &properties, record)
                .await
                .map_err(fail)?;
            tracing::info!(pipeline = %pipeline.name, table = %path.display(), "created Delta table");
            created.push(path);
        }
    }
    Ok(created)
}
