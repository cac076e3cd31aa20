//! Ad-hoc SQL over a Delta table (registered as `t`), for `weir demo`'s gold
//! tables and for tests checking table contents.

use super::{DeltaError, table};
use arrow::array::RecordBatch;
use deltalake::datafusion::prelude::SessionContext;
use std::path::Path;

/// Runs `sql` against the table at `path`, which is visible as `t`.
pub async fn query(path: &Path, sql: &str) -> Result<Vec<RecordBatch>, DeltaError> {
    let failed = |source| DeltaError::Query {
        table: path.to_path_buf(),
        operation: "query",
        source: Box::new(source),
    };
    let opened = table::open_existing(path).await?;
    let context = SessionContext::new();
    opened
        .update_datafusion_session(&context.state())
        .map_err(|source| DeltaError::Delta {
            table: path.to_path_buf(),
            operation: "query",
            source: Box::new(source),
        })?;
    let provider = opened.table_provider().await.map_err(failed)?;
    context.register_table("t", provider).map_err(failed)?;
    context
        .sql(sql)
        .await
        .map_err(failed)?
        .collect()
        .await
        .map_err(failed)
}
