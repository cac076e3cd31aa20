//! The audit's checks, as a pure function of what the tables' logs hold: for
//! one pipeline, every sink's commits (epoch, `txn` version, Weir record,
//! rows found in the files) and, for a Delta source, the rows each source
//! version added. See `docs/exactly-once.md` ("Auditing") for the list.

use crate::run::continuity;
use crate::run::epoch::{EpochPlan, SourceRange};
use crate::run::stages::StageCounts;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The row counts an epoch recorded in its Weir record.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RecordedCounts {
    /// Rows the source gave the epoch.
    pub source_records: u64,
    /// Per stage, in stage order.
    pub stages: Vec<StageCounts>,
    /// Dead letters the epoch produced.
    pub dead_letters: u64,
    /// Source records an operator sent to the dead-letter table with `weir
    /// quarantine` (the stages did not run).
    #[serde(default)]
    pub quarantined: u64,
}

/// Weir's record in one sink commit (the fields the audit reads).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WeirRecord {
    /// The epoch.
    pub epoch: u64,
    /// Rows the sink was given.
    #[serde(default)]
    pub rows: Option<u64>,
    /// The epoch's plan.
    #[serde(default)]
    pub plan: Option<EpochPlan>,
    /// `STAGE.PORT` the sink reads; absent for the dead-letter table.
    #[serde(default)]
    pub from: Option<String>,
    /// Row counts (absent in records written before Weir kept them).
    #[serde(default)]
    pub counts: Option<RecordedCounts>,
}

/// One commit of a sink that carries the sink's Weir record.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkCommit {
    /// The table version.
    pub table_version: u64,
    /// The commit's `txn` version for the sink's application id.
    pub txn: Option<i64>,
    /// Weir's record.
    pub record: WeirRecord,
    /// Rows actually in the commit (added files of an append; a merge's
    /// source rows from its metrics), when known.
    pub rows_found: Option<u64>,
}

/// One sink's history.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkHistory {
    /// The sink's name (`dead_letters` for the dead-letter table).
    pub name: String,
    /// Its commits, in table-version order.
    pub commits: Vec<SinkCommit>,
}

/// Everything the audit knows of one pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineHistory {
    /// The pipeline.
    pub pipeline: String,
    /// Every sink, the dead-letter table included.
    pub sinks: Vec<SinkHistory>,
    /// Stages fed by the source: each must have been given every source row.
    pub source_stages: Vec<String>,
    /// For a Delta source: rows each source-table version added, `None` for
    /// versions that also deleted or rewrote data (not countable as appends).
    pub source_versions: Option<BTreeMap<u64, Option<u64>>>,
}

/// What kind of problem a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A sink holds an epoch twice.
    EpochTwice,
    /// A sink lacks epochs between two it holds.
    EpochsMissing,
    /// A commit's `txn` version disagrees with its Weir record.
    TxnMismatch,
    /// A sink is more than one epoch behind the others.
    SinkBehind,
    /// No sink recorded the epoch's plan.
    PlanMissing,
    /// Sinks recorded different plans for one epoch.
    PlansDiffer,
    /// An epoch's range does not continue the previous one (gap or overlap).
    Range,
    /// Offsets were deleted by retention before they were read.
    DataLost,
    /// The source's record count disagrees with what the stages were given.
    SourceRecords,
    /// A sink commit holds a different number of rows than recorded.
    RowsInFiles,
    /// A sink was given a different number of rows than its stage produced.
    RowsFromStage,
    /// The dead-letter table holds a different number of rows than the
    /// stages rejected.
    DeadLetters,
}

/// One problem, naming the epoch and sink (or partition) where known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What kind.
    pub kind: FindingKind,
    /// The epoch, when the finding is about one.
    pub epoch: Option<u64>,
    /// The sink, when the finding is about one.
    pub sink: Option<String>,
    /// What is wrong, in words.
    pub message: String,
}

/// One partition's (or source table's) totals over the audited epochs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionSummary {
    /// `topic[partition]`, or the source table.
    pub partition: String,
    /// First offset (version) of the first epoch that read it.
    pub start: i64,
    /// One past the last offset (version) read.
    pub end: i64,
    /// Epochs that read it.
    pub epochs: u64,
    /// Records read (where recorded).
    pub records: u64,
    /// Offsets holding no record (compaction, transaction markers).
    pub absent: u64,
    /// Offsets lost to retention.
    pub lost: u64,
}

/// What one sink holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SinkSummary {
    /// The sink's name in the pipeline file.
    pub sink: String,
    /// First and last epoch it holds.
    pub epochs: Option<(u64, u64)>,
    /// Rows its commits recorded as written.
    pub rows: u64,
}

/// The audit of one pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PipelineAudit {
    /// The pipeline.
    pub pipeline: String,
    /// First and last epoch any sink holds.
    pub epochs: Option<(u64, u64)>,
    /// Per sink.
    pub sinks: Vec<SinkSummary>,
    /// Per source partition.
    pub partitions: Vec<PartitionSummary>,
    /// Source records over the epochs that recorded counts.
    pub records: u64,
    /// Problems.
    pub findings: Vec<Finding>,
    /// Facts worth knowing that are not problems.
    pub notes: Vec<String>,
}

/// Audits one pipeline's history.
pub fn audit(history: &PipelineHistory) -> PipelineAudit {
    let mut audit = PipelineAudit {
        pipeline: history.pipeline.clone(),
        epochs: None,
        sinks: Vec::new(),
        partitions: Vec::new(),
        records: 0,
        findings: Vec::new(),
        notes: Vec::new(),
    };
    // Epoch → (sink, commit) for every sink.
    let mut by_epoch: BTreeMap<u64, Vec<(&str, &SinkCommit)>> = BTreeMap::new();
    for sink in &history.sinks {
        check_sink_sequence(sink, &mut audit.findings);
        let epochs: Vec<u64> = sink.commits.iter().map(|c| c.record.epoch).collect();
        let span = epochs.first().zip(epochs.last()).map(|(a, b)| (*a, *b));
        let written = sink.commits.iter().filter_map(|c| c.record.rows).sum();
        audit.sinks.push(SinkSummary {
            sink: sink.name.clone(),
            epochs: span,
            rows: written,
        });
        for commit in &sink.commits {
            by_epoch
                .entry(commit.record.epoch)
                .or_default()
                .push((&sink.name, commit));
        }
    }
    let Some((&first, _)) = by_epoch.first_key_value() else {
        audit.notes.push("no sink holds an epoch yet".into());
        return audit;
    };
    let last = *by_epoch.keys().next_back().expect("non-empty");
    audit.epochs = Some((first, last));
    let sink_spans = audit.sinks.clone();
    check_sinks_caught_up(history, &sink_spans, last, &mut audit);

    let mut previous: Option<(u64, SourceRange)> = None;
    let mut uncounted = Vec::new();
    let mut partitions: BTreeMap<String, PartitionSummary> = BTreeMap::new();
    for (&epoch, commits) in &by_epoch {
        let plan = epoch_plan(epoch, commits, &mut audit.findings);
        if let Some(plan) = &plan {
            let prior = previous
                .as_ref()
                .filter(|(e, _)| *e + 1 == epoch)
                .map(|(_, range)| range);
            for problem in continuity::violations(prior, &plan.source) {
                audit.findings.push(Finding {
                    kind: FindingKind::Range,
                    epoch: Some(epoch),
                    sink: None,
                    message: format!("epoch {epoch}: {problem}"),
                });
            }
        }
        let counts = commits.iter().find_map(|(_, c)| c.record.counts.as_ref());
        if let Some(plan) = &plan {
            summarize(
                &plan.source,
                epoch,
                counts,
                &mut partitions,
                &mut audit.findings,
            );
        }
        match counts {
            Some(counts) => {
                audit.records += counts.source_records;
                check_counts(
                    history,
                    epoch,
                    plan.as_ref(),
                    counts,
                    commits,
                    &mut audit.findings,
                );
            }
            None => uncounted.push(epoch),
        }
        previous = plan.map(|p| (epoch, p.source));
    }
    audit.partitions = partitions.into_values().collect();
    for summary in &audit.partitions {
        if summary.absent > 0 {
            audit.notes.push(format!(
                "{}: {} offsets hold no record (a compacted topic or transaction markers)",
                summary.partition, summary.absent
            ));
        }
    }
    if !uncounted.is_empty() {
        audit.notes.push(format!(
            "{} epoch(s) ({}) were written before Weir recorded row counts; their rows were not checked",
            uncounted.len(),
            spans(&uncounted)
        ));
    }
    audit
}

/// Each epoch at most once, consecutive after the first, `txn` == epoch.
fn check_sink_sequence(sink: &SinkHistory, findings: &mut Vec<Finding>) {
    let mut seen: BTreeMap<u64, u64> = BTreeMap::new();
    let mut last: Option<u64> = None;
    for commit in &sink.commits {
        let epoch = commit.record.epoch;
        let finding = |kind, message| Finding {
            kind,
            epoch: Some(epoch),
            sink: Some(sink.name.clone()),
            message,
        };
        if commit.txn != i64::try_from(epoch).ok() {
            findings.push(finding(
                FindingKind::TxnMismatch,
                format!(
                    "sink `{}`: table version {} records epoch {epoch} but its txn version is {}",
                    sink.name,
                    commit.table_version,
                    commit
                        .txn
                        .map_or_else(|| "missing".to_string(), |t| t.to_string())
                ),
            ));
        }
        if let Some(&earlier) = seen.get(&epoch) {
            findings.push(finding(
                FindingKind::EpochTwice,
                format!(
                    "sink `{}`: epoch {epoch} is committed twice (table versions {earlier} and {})",
                    sink.name, commit.table_version
                ),
            ));
            continue;
        }
        seen.insert(epoch, commit.table_version);
        if let Some(last) = last
            && epoch != last + 1
        {
            let message = if epoch > last {
                format!(
                    "sink `{}`: epochs {}..={} are missing between epochs {last} and {epoch}",
                    sink.name,
                    last + 1,
                    epoch - 1
                )
            } else {
                format!(
                    "sink `{}`: epoch {epoch} is committed after epoch {last}",
                    sink.name
                )
            };
            findings.push(finding(FindingKind::EpochsMissing, message));
        }
        last = Some(last.map_or(epoch, |l| l.max(epoch)));
    }
}

/// Sinks lagging the pipeline's last epoch: one epoch is a crash mid-commit
/// (the next run completes it); more is a finding.
fn check_sinks_caught_up(
    history: &PipelineHistory,
    spans: &[SinkSummary],
    last: u64,
    audit: &mut PipelineAudit,
) {
    let first_of_all = spans.iter().filter_map(|s| s.epochs.map(|(a, _)| a)).min();
    for SinkSummary {
        sink, epochs: span, ..
    } in spans
    {
        let sink_last = span.map_or(0, |(_, l)| l);
        if sink_last + 1 == last {
            audit.notes.push(format!(
                "epoch {last} is in flight: committed to some sinks but not to `{sink}`; the next `weir run` completes it"
            ));
        } else if sink_last + 1 < last {
            audit.findings.push(Finding {
                kind: FindingKind::SinkBehind,
                epoch: Some(last),
                sink: Some(sink.clone()),
                message: format!(
                    "pipeline `{}`: sink `{sink}` holds epochs up to {sink_last} while others hold {last}",
                    history.pipeline
                ),
            });
        }
        if let (Some((sink_first, _)), Some(first)) = (span, first_of_all)
            && *sink_first > first
        {
            audit.notes.push(format!(
                "sink `{sink}` joined the pipeline at epoch {sink_first}"
            ));
        }
    }
}

/// The epoch's plan, checking every sink recorded the same one.
fn epoch_plan(
    epoch: u64,
    commits: &[(&str, &SinkCommit)],
    findings: &mut Vec<Finding>,
) -> Option<EpochPlan> {
    let mut chosen: Option<(&str, &EpochPlan)> = None;
    for (sink, commit) in commits {
        let Some(plan) = &commit.record.plan else {
            continue;
        };
        match chosen {
            None => chosen = Some((sink, plan)),
            Some((first_sink, first)) if first.source != plan.source => {
                findings.push(Finding {
                    kind: FindingKind::PlansDiffer,
                    epoch: Some(epoch),
                    sink: Some(sink.to_string()),
                    message: format!(
                        "epoch {epoch}: sinks `{first_sink}` and `{sink}` recorded different source ranges"
                    ),
                });
            }
            Some(_) => {}
        }
    }
    if chosen.is_none() {
        findings.push(Finding {
            kind: FindingKind::PlanMissing,
            epoch: Some(epoch),
            sink: None,
            message: format!(
                "epoch {epoch}: no sink recorded its plan, so its range cannot be checked"
            ),
        });
    }
    chosen.map(|(_, plan)| plan.clone())
}

/// Adds one epoch's range to the per-partition totals; lost offsets are findings.
fn summarize(
    range: &SourceRange,
    epoch: u64,
    counts: Option<&RecordedCounts>,
    partitions: &mut BTreeMap<String, PartitionSummary>,
    findings: &mut Vec<Finding>,
) {
    let mut add = |name: String, start: i64, end: i64, records: u64, absent: u64, lost: u64| {
        let summary = partitions.entry(name.clone()).or_insert(PartitionSummary {
            partition: name,
            start,
            end,
            epochs: 0,
            records: 0,
            absent: 0,
            lost: 0,
        });
        summary.start = summary.start.min(start);
        summary.end = summary.end.max(end);
        summary.epochs += 1;
        summary.records += records;
        summary.absent += absent;
        summary.lost += lost;
    };
    match range {
        SourceRange::Kafka { ranges, .. } => {
            for r in ranges {
                let width = u64::try_from(r.end - r.start).unwrap_or(0);
                let records = r.records.unwrap_or(width.saturating_sub(r.lost));
                let absent = width.saturating_sub(records).saturating_sub(r.lost);
                add(r.partition_name(), r.start, r.end, records, absent, r.lost);
                if r.lost > 0 {
                    findings.push(Finding {
                        kind: FindingKind::DataLost,
                        epoch: Some(epoch),
                        sink: None,
                        message: format!(
                            "epoch {epoch}: {}: offsets {}..{} were deleted by retention before they were read",
                            r.partition_name(),
                            r.start,
                            r.start.saturating_add(i64::try_from(r.lost).unwrap_or(i64::MAX))
                        ),
                    });
                }
            }
        }
        SourceRange::Delta { table, first, last } => {
            let (first, last) = (*first as i64, *last as i64);
            let records = counts.map_or(0, |c| c.source_records);
            add(table.clone(), first, last + 1, records, 0, 0);
        }
        SourceRange::Changes { tables } => {
            for t in tables {
                let version = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                add(t.describe(), version(t.first), version(t.end), t.rows, 0, 0);
            }
        }
        SourceRange::Files { dir, files, .. } => {
            // Each file is a stream of records, read whole by one epoch or
            // in consecutive parts by several.
            for file in files {
                let start = i64::try_from(file.skip).unwrap_or(i64::MAX);
                let end = start.saturating_add(i64::try_from(file.records).unwrap_or(i64::MAX));
                add(
                    format!("{dir}/{}", file.name),
                    start,
                    end,
                    file.records,
                    0,
                    0,
                );
            }
        }
    }
}

/// Row counts of one epoch: source vs stages, stages vs sinks, sinks vs files.
fn check_counts(
    history: &PipelineHistory,
    epoch: u64,
    plan: Option<&EpochPlan>,
    counts: &RecordedCounts,
    commits: &[(&str, &SinkCommit)],
    findings: &mut Vec<Finding>,
) {
    let range = plan.map(|p| &p.source);
    let mut finding = |kind, sink: Option<&str>, message: String| {
        findings.push(Finding {
            kind,
            epoch: Some(epoch),
            sink: sink.map(str::to_string),
            message: format!("epoch {epoch}: {message}"),
        })
    };
    // The source's own count of the range.
    let read = match range {
        Some(SourceRange::Kafka { ranges, .. }) => ranges
            .iter()
            .map(|r| r.records)
            .sum::<Option<u64>>()
            .map(|n| (n, "records in its Kafka ranges".to_string())),
        Some(SourceRange::Files { files, .. }) => Some((
            files.iter().map(|f| f.records).sum(),
            "records in its landed files".to_string(),
        )),
        Some(SourceRange::Changes { tables }) => Some((
            tables.iter().map(|t| t.rows).sum(),
            "change rows in its table ranges".to_string(),
        )),
        Some(SourceRange::Delta { table, first, last }) => history
            .source_versions
            .as_ref()
            .and_then(|versions| {
                (*first..=*last)
                    .map(|v| versions.get(&v).copied().flatten())
                    .sum::<Option<u64>>()
            })
            .map(|n| {
                (
                    n,
                    format!("rows added by versions {first}..={last} of {table}"),
                )
            }),
        None => None,
    };
    if let Some((n, what)) = read
        && n != counts.source_records
    {
        finding(
            FindingKind::SourceRecords,
            None,
            format!(
                "the source holds {n} {what} but the epoch recorded {} source records",
                counts.source_records
            ),
        );
    }
    for stage in counts
        .stages
        .iter()
        .filter(|s| history.source_stages.contains(&s.stage))
    {
        if stage.rows_in as u64 != counts.source_records {
            finding(
                FindingKind::SourceRecords,
                None,
                format!(
                    "stage `{}` was given {} rows of {} source records",
                    stage.stage, stage.rows_in, counts.source_records
                ),
            );
        }
    }
    let rejected: u64 = counts
        .stages
        .iter()
        .map(|s| (s.rejected + s.late) as u64)
        .sum();
    // A quarantined epoch: every source record, and only then.
    let decided = plan.is_some_and(|p| p.quarantine.is_some());
    if (decided && counts.quarantined != counts.source_records)
        || (!decided && counts.quarantined > 0)
    {
        finding(
            FindingKind::DeadLetters,
            None,
            format!(
                "{} of its {} source records are recorded as quarantined, but its plan {}",
                counts.quarantined,
                counts.source_records,
                if decided {
                    "quarantines all of them"
                } else {
                    "holds no quarantine decision"
                }
            ),
        );
    }
    if rejected + counts.quarantined != counts.dead_letters {
        let quarantined = match counts.quarantined {
            0 => String::new(),
            n => format!(" and {n} were quarantined"),
        };
        finding(
            FindingKind::DeadLetters,
            None,
            format!(
                "the stages rejected {rejected} rows{quarantined} but the epoch recorded {} dead letters",
                counts.dead_letters
            ),
        );
    }
    for (sink, commit) in commits {
        let Some(rows) = commit.record.rows else {
            continue;
        };
        if let Some(found) = commit.rows_found
            && found != rows
        {
            finding(
                FindingKind::RowsInFiles,
                Some(sink),
                format!(
                    "sink `{sink}`: table version {} holds {found} rows but {rows} were written",
                    commit.table_version
                ),
            );
        }
        let produced = match &commit.record.from {
            None => Some((counts.dead_letters, "dead letters recorded".to_string())),
            Some(port) => port.split_once('.').and_then(|(stage, port)| {
                let count = counts.stages.iter().find(|s| s.stage == stage)?;
                Some((
                    count.ports.get(port).copied().unwrap_or(0) as u64,
                    format!("rows `{stage}.{port}` produced"),
                ))
            }),
        };
        if let Some((produced, what)) = produced
            && produced != rows
        {
            let kind = if commit.record.from.is_none() {
                FindingKind::DeadLetters
            } else {
                FindingKind::RowsFromStage
            };
            finding(
                kind,
                Some(sink),
                format!("sink `{sink}` was written {rows} rows but {produced} {what}"),
            );
        }
    }
}

/// `1..=4, 7, 9..=10` for a sorted list of epochs.
fn spans(epochs: &[u64]) -> String {
    let mut parts = Vec::new();
    let mut iter = epochs.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end = iter.next().expect("peeked");
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}..={end}")
        });
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::source::OffsetRange;
    use crate::run::epoch::PartitionPosition;

    /// Epoch `epoch` of a one-partition Kafka source covering `start..end`.
    fn plan(epoch: u64, start: i64, end: i64) -> EpochPlan {
        EpochPlan {
            pipeline: "bronze".into(),
            epoch,
            source: SourceRange::Kafka {
                ranges: vec![OffsetRange {
                    topic: "orders".into(),
                    partition: 0,
                    start,
                    end,
                    records: Some((end - start) as u64),
                    lost: 0,
                }],
                positions: vec![PartitionPosition {
                    topic: "orders".into(),
                    partition: 0,
                    offset: end,
                }],
            },
            clock_nanos: 0,
            stages: Vec::new(),
            lookups: Vec::new(),
            quarantine: None,
        }
    }

    /// Counts of a parse stage that read `records` rows and rejected `rejected`.
    fn counts(records: u64, rejected: u64) -> RecordedCounts {
        RecordedCounts {
            source_records: records,
            stages: vec![StageCounts {
                stage: "parse".into(),
                rows_in: records as usize,
                rows_out: (records - rejected) as usize,
                ports: BTreeMap::from([("out".to_string(), (records - rejected) as usize)]),
                rejected: rejected as usize,
                duplicates: 0,
                late: 0,
                poisoned: 0,
            }],
            dead_letters: rejected,
            quarantined: 0,
        }
    }

    fn commit(
        version: u64,
        plan: &EpochPlan,
        from: Option<&str>,
        rows: u64,
        counts: &RecordedCounts,
    ) -> SinkCommit {
        SinkCommit {
            table_version: version,
            txn: Some(plan.epoch as i64),
            record: WeirRecord {
                epoch: plan.epoch,
                rows: Some(rows),
                plan: Some(plan.clone()),
                from: from.map(str::to_string),
                counts: Some(counts.clone()),
            },
            rows_found: Some(rows),
        }
    }

    /// Three clean epochs of 10 records each (1 rejected per epoch) into
    /// `bronze` and the dead-letter table.
    fn clean() -> PipelineHistory {
        let mut bronze = Vec::new();
        let mut dead = Vec::new();
        for epoch in 1..=3u64 {
            let plan = plan(epoch, (epoch as i64 - 1) * 10, epoch as i64 * 10);
            let c = counts(10, 1);
            bronze.push(commit(epoch, &plan, Some("parse.out"), 9, &c));
            dead.push(commit(epoch + 100, &plan, None, 1, &c));
        }
        PipelineHistory {
            pipeline: "bronze".into(),
            sinks: vec![
                SinkHistory {
                    name: "bronze".into(),
                    commits: bronze,
                },
                SinkHistory {
                    name: "dead_letters".into(),
                    commits: dead,
                },
            ],
            source_stages: vec!["parse".into()],
            source_versions: None,
        }
    }

    fn kinds(history: &PipelineHistory) -> Vec<(FindingKind, Option<u64>)> {
        audit(history)
            .findings
            .iter()
            .map(|f| (f.kind, f.epoch))
            .collect()
    }

    #[test]
    fn a_clean_history_has_no_findings_and_adds_up() {
        let report = audit(&clean());
        assert_eq!(report.findings, vec![]);
        assert_eq!(report.epochs, Some((1, 3)));
        assert_eq!(report.records, 30);
        assert_eq!(report.partitions[0].partition, "orders[0]");
        assert_eq!(
            (report.partitions[0].start, report.partitions[0].end),
            (0, 30)
        );
        let summary = |sink: &str, rows| SinkSummary {
            sink: sink.to_string(),
            epochs: Some((1, 3)),
            rows,
        };
        assert_eq!(report.sinks[0], summary("bronze", 27));
        assert_eq!(report.sinks[1], summary("dead_letters", 3));
    }

    /// Each case breaks a clean history in one way; the audit must name
    /// exactly that finding, at that epoch.
    #[test]
    fn table_of_findings() {
        type Break = fn(&mut PipelineHistory);
        type Expected = Vec<(FindingKind, Option<u64>)>;
        let cases: Vec<(&str, Break, Expected)> = vec![
            (
                "epoch committed twice",
                |h| {
                    let again = h.sinks[0].commits[1].clone();
                    h.sinks[0].commits.insert(
                        2,
                        SinkCommit {
                            table_version: 99,
                            ..again
                        },
                    );
                },
                vec![(FindingKind::EpochTwice, Some(2))],
            ),
            (
                "epoch missing from a sink",
                |h| {
                    h.sinks[0].commits.remove(1);
                },
                vec![(FindingKind::EpochsMissing, Some(3))],
            ),
            (
                "txn disagrees",
                |h| {
                    h.sinks[1].commits[0].txn = Some(7);
                },
                vec![(FindingKind::TxnMismatch, Some(1))],
            ),
            (
                "sink two epochs behind",
                |h| {
                    h.sinks[1].commits.truncate(1);
                },
                vec![(FindingKind::SinkBehind, Some(3))],
            ),
            (
                "plans differ between sinks",
                |h| {
                    h.sinks[1].commits[1].record.plan = Some(plan(2, 10, 21));
                },
                vec![(FindingKind::PlansDiffer, Some(2))],
            ),
            // Issue 9: the epoch after a replay started past the replayed end.
            (
                "gap between epochs",
                |h| {
                    for sink in &mut h.sinks {
                        sink.commits[2].record.plan = Some(plan(3, 25, 30));
                        sink.commits[2].record.counts = Some(counts(5, 1));
                    }
                    h.sinks[0].commits[2].record.rows = Some(4);
                    h.sinks[0].commits[2].rows_found = Some(4);
                },
                vec![(FindingKind::Range, Some(3))],
            ),
            (
                "overlap between epochs",
                |h| {
                    for sink in &mut h.sinks {
                        sink.commits[2].record.plan = Some(plan(3, 15, 30));
                        sink.commits[2].record.counts = Some(counts(15, 1));
                    }
                    h.sinks[0].commits[2].record.rows = Some(14);
                    h.sinks[0].commits[2].rows_found = Some(14);
                },
                vec![(FindingKind::Range, Some(3))],
            ),
            (
                "rows missing from a sink's files",
                |h| {
                    h.sinks[0].commits[0].rows_found = Some(8);
                },
                vec![(FindingKind::RowsInFiles, Some(1))],
            ),
            (
                "sink given fewer rows than its stage produced",
                |h| {
                    h.sinks[0].commits[1].record.rows = Some(8);
                    h.sinks[0].commits[1].rows_found = Some(8);
                },
                vec![(FindingKind::RowsFromStage, Some(2))],
            ),
            (
                "dead letters lost",
                |h| {
                    h.sinks[1].commits[2].record.rows = Some(0);
                    h.sinks[1].commits[2].rows_found = Some(0);
                },
                vec![(FindingKind::DeadLetters, Some(3))],
            ),
            (
                "stage given fewer rows than the range holds",
                |h| {
                    for sink in &mut h.sinks {
                        let counts = sink.commits[0].record.counts.as_mut().unwrap();
                        counts.source_records = 9;
                        counts.stages[0].rows_in = 9;
                    }
                },
                vec![(FindingKind::SourceRecords, Some(1))],
            ),
            (
                "offsets lost to retention",
                |h| {
                    for sink in &mut h.sinks {
                        let plan = sink.commits[1].record.plan.as_mut().unwrap();
                        let SourceRange::Kafka { ranges, .. } = &mut plan.source else {
                            unreachable!()
                        };
                        ranges[0].lost = 4;
                        ranges[0].records = Some(6);
                        let counts = sink.commits[1].record.counts.as_mut().unwrap();
                        *counts = super::tests::counts(6, 1);
                    }
                    h.sinks[0].commits[1].record.rows = Some(5);
                    h.sinks[0].commits[1].rows_found = Some(5);
                },
                vec![(FindingKind::DataLost, Some(2))],
            ),
        ];
        for (name, break_it, expected) in cases {
            let mut history = clean();
            break_it(&mut history);
            assert_eq!(kinds(&history), expected, "{name}");
        }
    }

    #[test]
    fn a_sink_one_epoch_behind_is_in_flight_not_a_finding() {
        let mut history = clean();
        history.sinks[1].commits.truncate(2);
        let report = audit(&history);
        assert_eq!(report.findings, vec![]);
        assert!(
            report
                .notes
                .iter()
                .any(|n| n.contains("epoch 3 is in flight")),
            "{:?}",
            report.notes
        );
    }

    #[test]
    fn records_without_counts_are_noted_not_checked() {
        let mut history = clean();
        for sink in &mut history.sinks {
            sink.commits[0].record.counts = None;
            sink.commits[1].record.counts = None;
        }
        history.sinks[0].commits[0].rows_found = Some(9);
        let report = audit(&history);
        assert_eq!(report.findings, vec![]);
        assert!(
            report.notes.iter().any(|n| n.contains("(1..=2)")),
            "{:?}",
            report.notes
        );
    }

    #[test]
    fn a_delta_source_is_checked_against_the_rows_its_versions_added() {
        let mut history = clean();
        for sink in &mut history.sinks {
            for commit in &mut sink.commits {
                let epoch = commit.record.epoch;
                commit.record.plan.as_mut().unwrap().source = SourceRange::Delta {
                    table: "/t/bronze".into(),
                    first: epoch,
                    last: epoch,
                };
            }
        }
        history.source_versions = Some(BTreeMap::from([
            (1, Some(10)),
            (2, Some(10)),
            (3, Some(12)),
        ]));
        assert_eq!(kinds(&history), vec![(FindingKind::SourceRecords, Some(3))]);
        // A version that rewrote data cannot be counted as appends: not checked.
        history.source_versions = Some(BTreeMap::from([(1, Some(10)), (2, Some(10)), (3, None)]));
        assert_eq!(kinds(&history), vec![]);
    }

    /// Epoch 2 quarantined: its 10 source records are the epoch's dead
    /// letters, bronze commits it empty, the stages did not run.
    fn quarantined_epoch_2(decided: bool) -> PipelineHistory {
        let mut history = clean();
        let mut plan = plan(2, 10, 20);
        if decided {
            plan.quarantine = Some(crate::run::epoch::Quarantine {
                reason: "poison".into(),
                decided_nanos: 1,
            });
        }
        let counts = RecordedCounts {
            source_records: 10,
            stages: Vec::new(),
            dead_letters: 10,
            quarantined: 10,
        };
        history.sinks[0].commits[1] = commit(2, &plan, Some("parse.out"), 0, &counts);
        history.sinks[1].commits[1] = commit(102, &plan, None, 10, &counts);
        history
    }

    #[test]
    fn a_quarantined_epoch_adds_up_only_with_its_decision() {
        assert_eq!(kinds(&quarantined_epoch_2(true)), vec![]);
        assert_eq!(
            kinds(&quarantined_epoch_2(false)),
            vec![(FindingKind::DeadLetters, Some(2))]
        );
    }

    #[test]
    fn spans_compress_consecutive_epochs() {
        assert_eq!(spans(&[1, 2, 3, 5, 7, 8]), "1..=3, 5, 7..=8");
    }
}
