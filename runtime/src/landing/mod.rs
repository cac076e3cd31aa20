//! The landing-zone file source (Spark's Auto Loader / file stream source):
//! a directory where other systems drop JSON-lines or CSV files. Each file
//! is read exactly once across restarts and crashes: an epoch's plan names
//! its files with size and modification time, and every plan carries the
//! names already processed that are still in the directory, so a restart
//! knows what not to read again. Files still being written are skipped
//! ([`scan`]); records reach plugins unparsed ([`read`]); after an epoch
//! commits its files can be kept, deleted or moved away.

pub mod epoch_source;
pub mod parquet;
pub mod read;
pub mod scan;

use std::path::PathBuf;

/// Problems with a landing directory or one of its files; each names it.
#[derive(Debug, thiserror::Error)]
pub enum LandingError {
    /// The directory cannot be listed.
    #[error("landing directory {dir}: cannot list it: {source}")]
    List {
        /// The directory.
        dir: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file cannot be read.
    #[error("landed file {file}: cannot read it: {source}")]
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file an epoch recorded is gone, so the epoch cannot be replayed.
    #[error(
        "landed file {file} of epoch range is gone (not in the landing directory{}); a replay must read exactly the recorded files — put it back",
        moved_to.as_ref().map(|d| format!(" nor in {}", d.display())).unwrap_or_default()
    )]
    Missing {
        /// The file.
        file: PathBuf,
        /// Where processed files are moved, if configured.
        moved_to: Option<PathBuf>,
    },
    /// A recorded file changed after it was planned.
    #[error(
        "landed file {file} changed after it was planned: recorded {recorded_size} bytes modified at {recorded_modified} ns, now {size} bytes modified at {modified} ns; files must not be rewritten once landed — write a new file instead"
    )]
    Changed {
        /// The file.
        file: PathBuf,
        /// Size in the plan.
        recorded_size: u64,
        /// Modification time in the plan.
        recorded_modified: i64,
        /// Size now.
        size: u64,
        /// Modification time now.
        modified: i64,
    },
    /// The same bytes cut into another number of records than the plan says
    /// (the record framing changed, e.g. after an upgrade).
    #[error(
        "landed file {file}: cut into {now} records now, but its epoch was planned reading records {start}..{end} {}; the replay would not be exact",
        if *ended { "as the end of the file" } else { "with more after them" }
    )]
    Recut {
        /// The file.
        file: PathBuf,
        /// The part's first record (0-based) in the plan.
        start: u64,
        /// One past the part's last record in the plan.
        end: u64,
        /// Whether the plan says the part ended the file.
        ended: bool,
        /// Records the file is cut into now.
        now: u64,
    },
    /// A file too large to read into one epoch.
    #[error(
        "landed file {file} is {size} bytes; files above 1 GiB are not read (split it into smaller files)"
    )]
    TooLarge {
        /// The file.
        file: PathBuf,
        /// Its size.
        size: u64,
    },
    /// `after_commit = "move"` would overwrite a file already in `move_to`.
    #[error(
        "cannot move landed file {file} to {target}: a file of that name is already there; landed file names must be unique"
    )]
    MoveTargetExists {
        /// The file.
        file: PathBuf,
        /// The existing target.
        target: PathBuf,
    },
    /// A Parquet file does not decode.
    #[error("landed Parquet file {file}: {reason}")]
    Parquet {
        /// The file.
        file: PathBuf,
        /// The decoder's reason.
        reason: String,
    },
    /// A Parquet file's column does not fit the pipeline's schema.
    #[error("landed Parquet file {file}: column `{column}` {reason}")]
    ParquetColumn {
        /// The file.
        file: PathBuf,
        /// The column.
        column: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The source schema kept in the checkpoint cannot be read.
    #[error("the source schema kept in {dir}: {reason}")]
    KeptSchema {
        /// The pipeline's checkpoint directory.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// No Parquet file to take the pipeline's schema from.
    #[error(
        "no Parquet file matching `{glob}` in {dir} to take the source schema from; set `schema_from` to a Parquet file with the columns the landed files will have"
    )]
    NoSchemaSample {
        /// The landing directory.
        dir: PathBuf,
        /// The glob.
        glob: String,
    },
    /// A processed file cannot be moved or deleted after its epoch committed.
    #[error("landed file {file}: cannot {action} it after its epoch committed: {source}")]
    AfterCommit {
        /// The file.
        file: PathBuf,
        /// `move` or `delete`.
        action: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Resolves `[pipeline.source.files]` (paths relative to `base`); every
/// problem as `(key, message)`.
pub fn resolve(
    spec: crate::pipeline::spec::FilesSourceSpec,
    base: &std::path::Path,
) -> Result<epoch_source::LandingSpec, Vec<(&'static str, String)>> {
    use crate::pipeline::spec::AfterCommitSpec;
    use epoch_source::AfterCommit;
    let mut problems = Vec::new();
    let glob = spec
        .glob
        .clone()
        .unwrap_or_else(|| spec.format.default_glob().to_string());
    let pattern = glob::Pattern::new(&glob)
        .map_err(|e| problems.push(("glob", format!("`{glob}` is not a glob pattern: {e}"))))
        .ok();
    let after_commit = match (spec.after_commit, &spec.move_to) {
        (AfterCommitSpec::Move, Some(to)) => AfterCommit::Move(base.join(to)),
        (AfterCommitSpec::Move, None) => {
            problems.push((
                "move_to",
                "after_commit = \"move\" needs `move_to`, the directory processed files go to"
                    .into(),
            ));
            AfterCommit::Keep
        }
        (other, Some(_)) => {
            problems.push((
                "move_to",
                format!("is only used with after_commit = \"move\", not {other:?}").to_lowercase(),
            ));
            AfterCommit::Keep
        }
        (AfterCommitSpec::Keep, None) => AfterCommit::Keep,
        (AfterCommitSpec::Delete, None) => AfterCommit::Delete,
    };
    if spec.stable_for.is_zero() {
        problems.push((
            "stable_for",
            "must be positive: a file still being written would be read half-way".into(),
        ));
    }
    if spec.schema_from.is_some() && spec.format != read::Format::Parquet {
        problems.push((
            "schema_from",
            format!(
                "is only used with format = \"parquet\"; {:?} records arrive as raw bytes",
                spec.format
            )
            .to_lowercase(),
        ));
    }
    match pattern {
        Some(pattern) if problems.is_empty() => Ok(epoch_source::LandingSpec {
            dir: base.join(&spec.dir),
            format: spec.format,
            pattern,
            stable_for: spec.stable_for,
            poll_interval: spec.poll_interval,
            after_commit,
            schema_from: spec.schema_from.map(|p| base.join(p)),
        }),
        _ => Err(problems),
    }
}

/// The schema of the source's batches: `value`, `file`, `line` for JSON
/// lines and CSV ([`read::schema`]); for Parquet, that of `schema_from`, else
/// the one kept in the pipeline's `checkpoint` directory at its first start,
/// else that of the first Parquet file (by name) in the directory, else in
/// `move_to`, whose footer reads ([`parquet::schema_of`]).
///
/// Errors: no Parquet file to take the schema from, or it cannot be read.
pub fn source_schema(
    spec: &epoch_source::LandingSpec,
    checkpoint: &std::path::Path,
) -> Result<arrow::datatypes::SchemaRef, LandingError> {
    if spec.format != read::Format::Parquet {
        return Ok(read::schema());
    }
    if let Some(sample) = &spec.schema_from {
        return parquet::schema_of(sample);
    }
    match crate::run::checkpoint::kept_source_schema(checkpoint) {
        Ok(Some(kept)) => return Ok(std::sync::Arc::new(kept)),
        Ok(None) => {}
        Err(error) => {
            return Err(LandingError::KeptSchema {
                dir: checkpoint.to_path_buf(),
                reason: error.to_string(),
            });
        }
    }
    let mut places = vec![spec.dir.clone()];
    if let epoch_source::AfterCommit::Move(to) = &spec.after_commit
        && to.is_dir()
    {
        places.push(to.clone());
    }
    // The first file (by name) whose footer reads: a file still being
    // written in place has none yet.
    let mut first_error = None;
    for dir in places {
        for listed in scan::list(&dir, &spec.pattern)? {
            match parquet::schema_of(&dir.join(&listed.name)) {
                Ok(schema) => return Ok(schema),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
    }
    Err(first_error.unwrap_or_else(|| LandingError::NoSchemaSample {
        dir: spec.dir.clone(),
        glob: spec.pattern.as_str().to_string(),
    }))
}
