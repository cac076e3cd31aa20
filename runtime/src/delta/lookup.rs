//! Reading a whole Delta table as of one version, for a stage's lookup input
//! (a stream–static join's static side). The version comes from the epoch
//! plan, so a replay sees exactly the rows the first run saw.

use super::{DeltaError, sink, table};
use arrow::array::RecordBatch;
use deltalake::datafusion::prelude::{SessionConfig, SessionContext};
use std::path::Path;

/// The table's latest version.
pub async fn latest(path: &Path) -> Result<u64, DeltaError> {
    let mut opened = table::open_existing(path).await?;
    super::source::latest_version(path, &mut opened).await
}

/// Every row of the table at `version`, as one batch with the table's schema.
pub async fn read_version(path: &Path, version: u64) -> Result<RecordBatch, DeltaError> {
    let failed = |operation| {
        move |source| DeltaError::Delta {
            table: path.to_path_buf(),
            operation,
            source: Box::new(source),
        }
    };
    let query_failed = |source| DeltaError::Query {
        table: path.to_path_buf(),
        operation: "read lookup",
        source: Box::new(source),
    };
    let mut opened = table::open_existing(path).await?;
    opened
        .load_version(version)
        .await
        .map_err(failed("load version"))?;
    let schema = table::arrow_schema(path, &opened)?;
    // One partition: the same rows in the same order on every read (a
    // replay must see what the first run saw).
    let context = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    opened
        .update_datafusion_session(&context.state())
        .map_err(failed("read lookup"))?;
    let provider = opened.table_provider().await.map_err(query_failed)?;
    context
        .register_table("t", provider)
        .map_err(query_failed)?;
    let batches = context
        .sql("SELECT * FROM t")
        .await
        .map_err(query_failed)?
        .collect()
        .await
        .map_err(query_failed)?;
    let conformed = batches
        .iter()
        .map(|b| sink::conform(path, b, &schema))
        .collect::<Result<Vec<_>, _>>()?;
    arrow::compute::concat_batches(&schema, &conformed).map_err(|e| DeltaError::Schema {
        table: path.to_path_buf(),
        reason: e.to_string(),
    })
}
