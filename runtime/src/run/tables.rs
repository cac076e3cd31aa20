//! Creates every sink and dead-letter table a file needs before any pipeline
//! starts (sequentially, so pipelines sharing a table never race to create
//! it). New tables take the schema of the port that feeds them, the sink's
//! partition columns and properties, and Change Data Feed on by default so a
//! downstream Delta source can read them.

use super::RunError;
use crate::delta::{dead_letters, table};
use crate::pipeline::PreparedFile;
use std::collections::BTreeMap;

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
            properties
                .entry("delta.enableChangeDataFeed".into())
                .or_insert_with(|| "true".into());
            wanted.push((
                sink.table.clone(),
                schema,
                sink.partition_by.clone(),
                properties,
            ));
        }
        wanted.push((
            pipeline.dead_letters.clone(),
            dead_letters::schema(),
            vec!["pipeline".to_string()],
            BTreeMap::from([("delta.enableChangeDataFeed".to_string(), "true".to_string())]),
        ));
        for (path, schema, partition_by, properties) in wanted {
            if table::open(&path).await.map_err(fail)?.is_some() {
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
