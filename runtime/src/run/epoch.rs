//! An epoch's plan: its number, the exact source range it covers and the
//! virtual clock its plugins see. The plan is written to the checkpoint
//! directory before the epoch runs and is copied into every sink commit's
//! Weir record, so a crashed epoch can be replayed exactly.

use crate::kafka::source::OffsetRange;
use serde::{Deserialize, Serialize};

/// The source records an epoch covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceRange {
    /// Half-open offset ranges per Kafka partition.
    Kafka {
        /// In canonical (topic, partition) order.
        ranges: Vec<OffsetRange>,
        /// The next offset of every partition once this epoch is done
        /// (including partitions it read nothing from): where a restart resumes.
        positions: Vec<PartitionPosition>,
    },
    /// Whole files of a landing directory.
    Files {
        /// The landing directory.
        dir: String,
        /// This epoch's files, in the order read.
        files: Vec<crate::landing::epoch_source::LandedFile>,
        /// Names read by earlier epochs and still in the directory when
        /// this epoch was planned: never read again.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        processed: Vec<String>,
    },
    /// Table versions `first..=last` of a Delta table.
    Delta {
        /// The table directory.
        table: String,
        /// First version read.
        first: u64,
        /// Last version read.
        last: u64,
    },
    /// Versions of each table of a change source.
    Changes {
        /// Every table the source reads, in name order (a table whose
        /// range is empty included, so its position is kept).
        tables: Vec<TableVersions>,
    },
}

/// The versions of one table a change-source epoch read: `first..end`
/// (half-open; empty when the table had nothing new or its turn did not
/// come). With `snapshot`, version `first` is read as the whole table as of
/// that version (every row an insert) and `first + 1..end` as changes; an
/// empty range with `snapshot` leaves that snapshot to a later epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableVersions {
    /// The table's name in the pipeline file (the `_table` column).
    pub name: String,
    /// The table directory.
    pub table: String,
    /// The first version read.
    pub first: u64,
    /// The first version not read: where the next epoch starts.
    pub end: u64,
    /// Whether `first` is read as a snapshot (still to read when the range is empty).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub snapshot: bool,
    /// Change rows read from this table.
    pub rows: u64,
}

/// The next offset to read from one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionPosition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Next offset.
    pub offset: i64,
}

impl TableVersions {
    /// `name (directory)`, for messages.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.name, self.table)
    }
}

/// A planned epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochPlan {
    /// The pipeline.
    pub pipeline: String,
    /// Epoch number, from 1.
    pub epoch: u64,
    /// What it reads.
    pub source: SourceRange,
    /// The virtual time (ns since the Unix epoch) its plugins see.
    pub clock_nanos: u64,
    /// The plugin version and config of every stage, in stage order; a
    /// replay runs exactly these. Empty in plans written before Weir recorded
    /// them (those replay with the current plugins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StagePin>,
    /// The version of every lookup table the stages read; a replay reads
    /// exactly these versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lookups: Vec<LookupPin>,
    /// Set by `weir quarantine`: the epoch's source rows go to the
    /// dead-letter table and its stages do not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<Quarantine>,
}

/// An operator's decision to move past an epoch without running its stages
/// (`weir quarantine`), recorded in the plan and so in every sink's commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantine {
    /// Why, as the operator gave it.
    pub reason: String,
    /// When it was decided, ns since the Unix epoch.
    pub decided_nanos: u64,
}

/// The version of one lookup input an epoch read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LookupPin {
    /// The stage.
    pub stage: String,
    /// Its input port.
    pub port: String,
    /// The table directory.
    pub table: String,
    /// The table version read.
    pub version: u64,
}

/// Which plugin, exactly, and which config one stage ran an epoch with.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StagePin {
    /// The stage.
    pub stage: String,
    /// Manifest name of the plugin.
    pub plugin: String,
    /// Manifest version.
    pub version: String,
    /// SHA-256 of the component bytes, hex.
    pub hash: String,
    /// SHA-256 of the config JSON passed to `configure`, hex.
    pub config_hash: String,
}

impl EpochPlan {
    /// The plugin call context for `stage` in this epoch: the clock is the
    /// plan's, the random seed is derived from pipeline, stage and epoch, so a
    /// replay sees exactly the same values.
    pub fn call_context(&self, stage: &str) -> crate::CallContext {
        let mut seed = 0xcbf2_9ce4_8422_2325u64; // FNV-1a
        for byte in self
            .pipeline
            .bytes()
            .chain([0])
            .chain(stage.bytes())
            .chain(self.epoch.to_le_bytes())
        {
            seed ^= u64::from(byte);
            seed = seed.wrapping_mul(0x0100_0000_01b3);
        }
        crate::CallContext {
            clock_nanos: self.clock_nanos,
            seed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_context_is_a_pure_function_of_pipeline_stage_and_epoch() {
        let plan = EpochPlan {
            pipeline: "orders".into(),
            epoch: 7,
            source: SourceRange::Delta {
                table: "/t".into(),
                first: 1,
                last: 2,
            },
            clock_nanos: 42,
            stages: Vec::new(),
            lookups: Vec::new(),
            quarantine: None,
        };
        let again = plan.clone();
        assert_eq!(plan.call_context("parse"), again.call_context("parse"));
        assert_ne!(
            plan.call_context("parse").seed,
            plan.call_context("filter").seed
        );
        let next = EpochPlan {
            epoch: 8,
            ..plan.clone()
        };
        assert_ne!(
            plan.call_context("parse").seed,
            next.call_context("parse").seed
        );
        assert_eq!(plan.call_context("parse").clock_nanos, 42);
    }

    /// Plans written before ranges recorded their record counts still read.
    #[test]
    fn plans_without_record_counts_still_read() {
        let json = r#"{"pipeline":"p","epoch":3,"clock_nanos":1,"source":{"kafka":{
            "ranges":[{"topic":"t","partition":0,"start":4,"end":9}],
            "positions":[{"topic":"t","partition":0,"offset":9}]}}}"#;
        let plan: EpochPlan = serde_json::from_str(json).unwrap();
        let SourceRange::Kafka { ranges, .. } = plan.source else {
            panic!("a Kafka plan")
        };
        assert_eq!((ranges[0].records, ranges[0].lost), (None, 0));
    }

    #[test]
    fn plans_round_trip_through_json() {
        let plan = EpochPlan {
            pipeline: "p".into(),
            epoch: 1,
            source: SourceRange::Kafka {
                ranges: vec![OffsetRange {
                    topic: "t".into(),
                    partition: 0,
                    start: 0,
                    end: 5,
                    records: Some(5),
                    lost: 0,
                }],
                positions: vec![PartitionPosition {
                    topic: "t".into(),
                    partition: 0,
                    offset: 5,
                }],
            },
            clock_nanos: 1,
            stages: Vec::new(),
            lookups: Vec::new(),
            quarantine: None,
        };
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(serde_json::from_str::<EpochPlan>(&json).unwrap(), plan);
    }
}
