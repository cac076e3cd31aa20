//! Shadow runs: for a number of epochs a candidate version of a stage
//! processes the same inputs as the live one, beside it, and the two outputs
//! are compared — rows per port, schemas, and a sample of differing rows
//! (paired by key columns when the stage has them, else as whole rows).
//! Nothing the shadow produces is written anywhere; the report is what the
//! admin API shows (`GET /pipelines/P/stages/S/shadow`).

use super::swap::Ready;
use arrow::array::RecordBatch;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// How many differing rows a report keeps as examples.
const SAMPLE: usize = 10;

/// A candidate running beside the live version.
pub struct Shadow {
    /// The candidate (its instance runs the shadow calls).
    pub ready: Ready,
    /// Epochs still to shadow.
    pub remaining: u64,
    /// Whether the candidate takes over once the shadow run ends well.
    pub cut_over: bool,
    /// Columns pairing live and shadow rows, if any.
    pub key: Vec<String>,
    /// The pins of every stage when the candidate was checked: it takes over
    /// only if they are still what the stages run.
    pub based_on: Vec<crate::run::epoch::StagePin>,
    /// What was seen so far.
    pub report: ShadowReport,
}

/// The comparison of a shadow run so far.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ShadowReport {
    /// The stage.
    pub stage: String,
    /// `name@version (hash)` of the live version.
    pub live: String,
    /// `name@version (hash)` of the candidate.
    pub candidate: String,
    /// `running`, `finished` or `failed`.
    pub state: String,
    /// Epochs asked for.
    pub epochs: u64,
    /// Epochs compared so far.
    pub compared: u64,
    /// The first and last epoch compared.
    pub first_epoch: Option<u64>,
    /// The last epoch compared.
    pub last_epoch: Option<u64>,
    /// Per output port: rows and schemas on each side.
    pub ports: BTreeMap<String, PortComparison>,
    /// Rows present on one side only (or changed, when paired by key).
    pub differing_rows: u64,
    /// Up to ten differing rows.
    pub samples: Vec<DifferingRow>,
    /// Why the candidate failed, if it did (it then never takes over).
    pub failure: Option<String>,
    /// Whether it takes over when the run ends.
    pub cut_over: bool,
}

/// One output port compared.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PortComparison {
    /// Rows the live version produced.
    pub live_rows: u64,
    /// Rows the candidate produced.
    pub shadow_rows: u64,
    /// Whether the schemas were equal in every epoch.
    pub same_schema: bool,
    /// The candidate's schema when it differs.
    pub shadow_schema: Option<String>,
}

/// A row found on one side only, or changed between them.
#[derive(Debug, Clone, Serialize)]
pub struct DifferingRow {
    /// The epoch.
    pub epoch: u64,
    /// The port.
    pub port: String,
    /// The key columns' values, when rows are paired by key.
    pub key: Option<String>,
    /// The live row as JSON (absent: the candidate added it).
    pub live: Option<String>,
    /// The candidate's row as JSON (absent: the candidate dropped it).
    pub shadow: Option<String>,
}

impl Shadow {
    /// Adds one epoch's outputs (live and candidate, each per port) to the report.
    pub fn compare(
        &mut self,
        epoch: u64,
        live: &[(String, RecordBatch)],
        shadow: &[(String, RecordBatch)],
    ) {
        let report = &mut self.report;
        report.compared += 1;
        report.first_epoch.get_or_insert(epoch);
        report.last_epoch = Some(epoch);
        let mut ports: Vec<&String> = live.iter().chain(shadow).map(|(p, _)| p).collect();
        ports.sort();
        ports.dedup();
        for port in ports {
            let find = |side: &[(String, RecordBatch)]| {
                side.iter().find(|(p, _)| p == port).map(|(_, b)| b.clone())
            };
            let (a, b) = (find(live), find(shadow));
            let entry = report
                .ports
                .entry(port.clone())
                .or_insert_with(|| PortComparison {
                    same_schema: true,
                    ..PortComparison::default()
                });
            entry.live_rows += a.as_ref().map_or(0, |b| b.num_rows() as u64);
            entry.shadow_rows += b.as_ref().map_or(0, |b| b.num_rows() as u64);
            if let (Some(a), Some(b)) = (&a, &b)
                && a.schema() != b.schema()
            {
                entry.same_schema = false;
                entry.shadow_schema = Some(crate::pipeline::validate::describe_schema(&b.schema()));
            }
            let rows = |batch: &Option<RecordBatch>| -> Vec<(Option<String>, String)> {
                batch
                    .as_ref()
                    .map(|batch| keyed_rows(batch, &self.key))
                    .unwrap_or_default()
            };
            for difference in differences(rows(&a), rows(&b)) {
                report.differing_rows += 1;
                if report.samples.len() < SAMPLE {
                    report.samples.push(DifferingRow {
                        epoch,
                        port: port.clone(),
                        ..difference
                    });
                }
            }
        }
    }
}

/// Each row as `(key JSON when every key column exists, row JSON)`.
fn keyed_rows(batch: &RecordBatch, key: &[String]) -> Vec<(Option<String>, String)> {
    let whole = super::stages::rows_as_json(batch);
    let keyed = !key.is_empty() && key.iter().all(|k| batch.column_by_name(k).is_some());
    if !keyed {
        return whole.into_iter().map(|row| (None, row)).collect();
    }
    let projection: Vec<usize> = key
        .iter()
        .filter_map(|k| batch.schema().index_of(k).ok())
        .collect();
    let keys = batch
        .project(&projection)
        .map(|b| super::stages::rows_as_json(&b))
        .unwrap_or_default();
    keys.into_iter().map(Some).zip(whole).collect()
}

/// Rows on one side only (multiset difference), or, for rows with a key,
/// rows whose key is on both sides with different contents.
fn differences(
    live: Vec<(Option<String>, String)>,
    shadow: Vec<(Option<String>, String)>,
) -> Vec<DifferingRow> {
    let mut counts: HashMap<(Option<String>, String), i64> = HashMap::new();
    for row in &live {
        *counts.entry(row.clone()).or_default() += 1;
    }
    for row in &shadow {
        *counts.entry(row.clone()).or_default() -= 1;
    }
    let mut only_live: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
    let mut only_shadow: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
    // In input order, so samples are stable.
    for row in live.iter().chain(&shadow) {
        let Some(count) = counts.get_mut(row) else {
            continue;
        };
        let (key, json) = row.clone();
        if *count > 0 {
            only_live.entry(key).or_default().push(json);
            *count -= 1;
        } else if *count < 0 {
            only_shadow.entry(key).or_default().push(json);
            *count += 1;
        }
    }
    let mut out = Vec::new();
    let row = |key: Option<String>, live, shadow| DifferingRow {
        epoch: 0,
        port: String::new(),
        key,
        live,
        shadow,
    };
    for (key, rows) in only_live {
        let mut others = match &key {
            Some(_) => only_shadow.remove(&key).unwrap_or_default().into_iter(),
            None => Vec::new().into_iter(),
        };
        for json in rows {
            out.push(row(key.clone(), Some(json), others.next()));
        }
        for json in others {
            out.push(row(key.clone(), None, Some(json)));
        }
    }
    for (key, rows) in only_shadow {
        for json in rows {
            out.push(row(key.clone(), None, Some(json)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(list: &[(&str, &str)]) -> Vec<(Option<String>, String)> {
        list.iter()
            .map(|(k, v)| (Some(k.to_string()), v.to_string()))
            .collect()
    }

    #[test]
    fn rows_paired_by_key_show_both_sides_and_equal_rows_are_not_reported() {
        let live = rows(&[("1", "a"), ("2", "b"), ("3", "c")]);
        let shadow = rows(&[("1", "a"), ("2", "B"), ("4", "d")]);
        let found = differences(live, shadow);
        let shown: Vec<_> = found
            .iter()
            .map(|d| (d.key.clone().unwrap(), d.live.clone(), d.shadow.clone()))
            .collect();
        assert_eq!(
            shown,
            vec![
                ("2".into(), Some("b".into()), Some("B".into())),
                ("3".into(), Some("c".into()), None),
                ("4".into(), None, Some("d".into())),
            ]
        );
    }

    #[test]
    fn whole_rows_are_compared_as_multisets() {
        let plain = |list: &[&str]| -> Vec<(Option<String>, String)> {
            list.iter().map(|v| (None, v.to_string())).collect()
        };
        let found = differences(plain(&["a", "a", "b"]), plain(&["a", "b", "b"]));
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].live.as_deref(), Some("a"));
        assert_eq!(found[1].shadow.as_deref(), Some("b"));
    }
}
