//! The continuity invariant of epoch ranges (I6 in `docs/exactly-once.md`):
//! every epoch's source range starts exactly where the previous epoch's
//! ended. For Kafka, each partition's range starts at the position the
//! previous plan recorded for it, and positions move only by the ranges that
//! cover them; for a Delta source the first version is one past the previous
//! last. The epoch runner checks every new plan against the last committed
//! (or replayed) one before writing it; `weir audit` checks whole histories.

use super::epoch::SourceRange;
use crate::landing::epoch_source::LandedFile;
use std::collections::BTreeMap;

/// One way an epoch's range fails to continue the previous one, or is not
/// consistent in itself. Each names the partition (or table) and the offsets
/// (or versions) involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Discontinuity {
    /// A partition's range does not start at its previous position.
    #[error(
        "{partition}: range starts at offset {start} but the previous epoch ended at {previous_end} ({})",
        offsets_between(*previous_end, *start)
    )]
    Offsets {
        /// `topic[partition]`.
        partition: String,
        /// The previous epoch's recorded position.
        previous_end: i64,
        /// This epoch's range start.
        start: i64,
    },
    /// A partition's position changed without a range covering the move.
    #[error("{partition}: position moved from {from} to {to} without a range covering the offsets")]
    PositionMoved {
        /// `topic[partition]`.
        partition: String,
        /// The previous position.
        from: i64,
        /// The new position.
        to: i64,
    },
    /// A partition the previous epoch had a position for has none.
    #[error("{partition}: the position {from} recorded by the previous epoch is missing")]
    PositionDropped {
        /// `topic[partition]`.
        partition: String,
        /// The previous position.
        from: i64,
    },
    /// A range is not consistent in itself.
    #[error("{partition}: range [{start}, {end}) {reason}")]
    BadRange {
        /// `topic[partition]`.
        partition: String,
        /// Range start.
        start: i64,
        /// Range end.
        end: i64,
        /// What is wrong.
        reason: String,
    },
    /// A Delta source skipped or re-read versions.
    #[error(
        "{table}: starts at version {first} but the previous epoch ended at version {previous_last} ({})",
        versions_between(*previous_last, *first)
    )]
    Versions {
        /// The source table.
        table: String,
        /// The previous epoch's last version.
        previous_last: u64,
        /// This epoch's first version.
        first: u64,
    },
    /// A Delta range ends before it starts.
    #[error("{table}: version range {first}..={last} is reversed")]
    ReversedVersions {
        /// The source table.
        table: String,
        /// First version.
        first: u64,
        /// Last version.
        last: u64,
    },
    /// A table of a change source does not start where the previous epoch
    /// ended (`first` differs from the previous `end`).
    #[error(
        "{table}: starts at version {first} but the previous epoch ended before version {previous_end} ({})",
        if first > previous_end { format!("versions {previous_end}..{first} were never read") } else { format!("versions {first}..{previous_end} would be read twice") }
    )]
    TableVersions {
        /// The table's name and directory.
        table: String,
        /// The first version the previous epoch left unread.
        previous_end: u64,
        /// This epoch's first version.
        first: u64,
    },
    /// A change-source table's range is not consistent in itself.
    #[error("{table}: versions {first}..{end} {reason}")]
    BadTableRange {
        /// The table's name and directory.
        table: String,
        /// First version.
        first: u64,
        /// First version not read.
        end: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A table the previous epoch read is missing from this one.
    #[error("{table}: read by the previous epoch but missing from this one")]
    TableDropped {
        /// The table's name and directory.
        table: String,
    },
    /// A landed file would be read by two epochs (or twice in one).
    #[error("{dir}: file {file} {reason}")]
    FileTwice {
        /// The landing directory.
        dir: String,
        /// The file.
        file: String,
        /// Where else it was read.
        reason: &'static str,
    },
    /// A file split across epochs is not continued where the previous part
    /// ended (or not continued at all).
    #[error(
        "{dir}: file {file} was read up to record {previous_end} by the previous epoch, {}",
        match start { Some(s) => format!("but this epoch starts it at record {s}"), None => "but this epoch does not continue it first".into() }
    )]
    FilePart {
        /// The landing directory.
        dir: String,
        /// The file.
        file: String,
        /// Records read by the previous epochs.
        previous_end: u64,
        /// Where this epoch starts it, if it reads it.
        start: Option<u64>,
    },
    /// A file left unfinished by an epoch that reads another file after it.
    #[error("{dir}: file {file} is left unfinished although the epoch goes on with another file")]
    FileUnfinished {
        /// The landing directory.
        dir: String,
        /// The file.
        file: String,
    },
    /// A file is recorded as processed although no epoch read it.
    #[error("{dir}: file {file} is recorded as processed but no earlier epoch read it")]
    FileSkipped {
        /// The landing directory.
        dir: String,
        /// The file.
        file: String,
    },
    /// The source changed between epochs (another table, or another kind).
    #[error("the source changed between epochs: {from} then {to}")]
    SourceChanged {
        /// The previous source.
        from: String,
        /// This epoch's source.
        to: String,
    },
}

fn offsets_between(previous_end: i64, start: i64) -> String {
    if start > previous_end {
        format!("offsets {previous_end}..{start} were never read")
    } else {
        format!("offsets {start}..{previous_end} would be read twice")
    }
}

fn versions_between(previous_last: u64, first: u64) -> String {
    if first > previous_last.saturating_add(1) {
        format!(
            "versions {}..={} were never read",
            previous_last + 1,
            first - 1
        )
    } else {
        format!("versions {first}..={previous_last} would be read twice")
    }
}

fn source_name(range: &SourceRange) -> String {
    match range {
        SourceRange::Kafka { .. } => "a Kafka source".into(),
        SourceRange::Delta { table, .. } => format!("Delta table {table}"),
        SourceRange::Files { dir, .. } => format!("landing directory {dir}"),
        SourceRange::Changes { tables } => format!(
            "the changes of {}",
            tables
                .iter()
                .map(|t| t.table.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Every way `next` is inconsistent in itself or, when given, fails to
/// continue `previous`. Empty when the invariant holds.
pub fn violations(previous: Option<&SourceRange>, next: &SourceRange) -> Vec<Discontinuity> {
    let mut found = consistency(next);
    if let Some(previous) = previous {
        found.extend(continuation(previous, next));
    }
    found
}

/// Checks of one range on its own.
fn consistency(range: &SourceRange) -> Vec<Discontinuity> {
    let mut found = Vec::new();
    match range {
        SourceRange::Kafka { ranges, positions } => {
            let after: BTreeMap<(&str, i32), i64> = positions
                .iter()
                .map(|p| ((p.topic.as_str(), p.partition), p.offset))
                .collect();
            let mut seen = std::collections::BTreeSet::new();
            for r in ranges {
                let bad = |reason: String| Discontinuity::BadRange {
                    partition: r.partition_name(),
                    start: r.start,
                    end: r.end,
                    reason,
                };
                if !seen.insert((r.topic.as_str(), r.partition)) {
                    found.push(bad("appears twice in one epoch".into()));
                }
                if r.end <= r.start {
                    found.push(bad("is empty or reversed".into()));
                    continue;
                }
                let width = u64::try_from(r.end - r.start).unwrap_or(u64::MAX);
                let accounted = r.records.unwrap_or(0).saturating_add(r.lost);
                if accounted > width {
                    found.push(bad(format!(
                        "claims {accounted} records and lost offsets in {width} offsets"
                    )));
                }
                match after.get(&(r.topic.as_str(), r.partition)) {
                    Some(&position) if position == r.end => {}
                    Some(&position) => found.push(bad(format!(
                        "ends at {} but the recorded next position is {position}",
                        r.end
                    ))),
                    None => found.push(bad("has no recorded next position".into())),
                }
            }
        }
        SourceRange::Files {
            dir,
            files,
            processed,
        } => {
            // Only the first file may continue a split file; only the last
            // may be left unfinished.
            for (i, file) in files.iter().enumerate() {
                if i > 0 && file.skip > 0 {
                    found.push(Discontinuity::FilePart {
                        dir: dir.clone(),
                        file: file.name.clone(),
                        previous_end: 0,
                        start: Some(file.skip),
                    });
                }
                if i + 1 < files.len() && !file.ends {
                    found.push(Discontinuity::FileUnfinished {
                        dir: dir.clone(),
                        file: file.name.clone(),
                    });
                }
            }
            let mut seen = std::collections::BTreeSet::new();
            for file in files {
                let twice = |reason| Discontinuity::FileTwice {
                    dir: dir.clone(),
                    file: file.name.clone(),
                    reason,
                };
                if !seen.insert(file.name.as_str()) {
                    found.push(twice("appears twice in one epoch"));
                }
                if processed.contains(&file.name) {
                    found.push(twice("was already read by an earlier epoch"));
                }
            }
        }
        SourceRange::Changes { tables } => {
            let mut seen = std::collections::BTreeSet::new();
            for t in tables {
                let bad = |reason| Discontinuity::BadTableRange {
                    table: t.describe(),
                    first: t.first,
                    end: t.end,
                    reason,
                };
                if !seen.insert(t.name.as_str()) {
                    found.push(bad("appears twice in one epoch"));
                }
                if t.end < t.first {
                    found.push(bad("is reversed"));
                } else if t.first == t.end && t.rows > 0 {
                    found.push(bad("is empty but claims rows"));
                }
            }
        }
        SourceRange::Delta { table, first, last } => {
            if last < first {
                found.push(Discontinuity::ReversedVersions {
                    table: table.clone(),
                    first: *first,
                    last: *last,
                });
            }
        }
    }
    found
}

/// Checks that `next` starts where `previous` ended.
fn continuation(previous: &SourceRange, next: &SourceRange) -> Vec<Discontinuity> {
    let mut found = Vec::new();
    match (previous, next) {
        (
            SourceRange::Kafka {
                positions: before, ..
            },
            SourceRange::Kafka { ranges, positions },
        ) => {
            let name = |topic: &str, partition: i32| format!("{topic}[{partition}]");
            let before: BTreeMap<(&str, i32), i64> = before
                .iter()
                .map(|p| ((p.topic.as_str(), p.partition), p.offset))
                .collect();
            let after: BTreeMap<(&str, i32), i64> = positions
                .iter()
                .map(|p| ((p.topic.as_str(), p.partition), p.offset))
                .collect();
            let ranged: BTreeMap<(&str, i32), i64> = ranges
                .iter()
                .map(|r| ((r.topic.as_str(), r.partition), r.start))
                .collect();
            for (&(topic, partition), &start) in &ranged {
                // A partition without a previous position is new: it starts
                // wherever the source chose (its earliest offset).
                if let Some(&previous_end) = before.get(&(topic, partition))
                    && previous_end != start
                {
                    found.push(Discontinuity::Offsets {
                        partition: name(topic, partition),
                        previous_end,
                        start,
                    });
                }
            }
            for (&(topic, partition), &from) in &before {
                match after.get(&(topic, partition)) {
                    None => found.push(Discontinuity::PositionDropped {
                        partition: name(topic, partition),
                        from,
                    }),
                    Some(&to) if to != from && !ranged.contains_key(&(topic, partition)) => found
                        .push(Discontinuity::PositionMoved {
                            partition: name(topic, partition),
                            from,
                            to,
                        }),
                    Some(_) => {}
                }
            }
        }
        (
            SourceRange::Delta {
                table: before,
                last: previous_last,
                ..
            },
            SourceRange::Delta { table, first, .. },
        ) => {
            if before != table {
                found.push(Discontinuity::SourceChanged {
                    from: source_name(previous),
                    to: source_name(next),
                });
            } else if *first != previous_last.saturating_add(1) {
                found.push(Discontinuity::Versions {
                    table: table.clone(),
                    previous_last: *previous_last,
                    first: *first,
                });
            }
        }
        (
            SourceRange::Files {
                dir: before,
                files: read_before,
                processed: processed_before,
            },
            SourceRange::Files {
                dir,
                files,
                processed,
            },
        ) => {
            if before != dir {
                found.push(Discontinuity::SourceChanged {
                    from: source_name(previous),
                    to: source_name(next),
                });
            } else {
                let known = |name: &String| {
                    processed_before.contains(name) || read_before.iter().any(|f| &f.name == name)
                };
                // A file the previous epoch read only part of must open this
                // epoch, continuing exactly where that part ended.
                let unfinished = read_before
                    .iter()
                    .find_map(|f| f.next_part().map(|end| (f, end)));
                match unfinished {
                    Some((part, end)) => {
                        let first = files.first().filter(|f| f.name == part.name);
                        if first.is_none_or(|f| f.skip != end) {
                            found.push(Discontinuity::FilePart {
                                dir: dir.clone(),
                                file: part.name.clone(),
                                previous_end: end,
                                start: files.iter().find(|f| f.name == part.name).map(|f| f.skip),
                            });
                        }
                    }
                    // Nothing to continue: no file may start past its beginning.
                    None => {
                        if let Some(first) = files.first().filter(|f| f.skip > 0) {
                            found.push(Discontinuity::FilePart {
                                dir: dir.clone(),
                                file: first.name.clone(),
                                previous_end: 0,
                                start: Some(first.skip),
                            });
                        }
                    }
                }
                let continued = |f: &&LandedFile| {
                    unfinished.is_some_and(|(part, end)| part.name == f.name && f.skip == end)
                };
                for file in files.iter().filter(|f| known(&f.name) && !continued(f)) {
                    found.push(Discontinuity::FileTwice {
                        dir: dir.clone(),
                        file: file.name.clone(),
                        reason: "was already read by an earlier epoch",
                    });
                }
                for name in processed.iter().filter(|n| !known(n)) {
                    found.push(Discontinuity::FileSkipped {
                        dir: dir.clone(),
                        file: name.clone(),
                    });
                }
            }
        }
        (SourceRange::Changes { tables: before }, SourceRange::Changes { tables }) => {
            for old in before {
                match tables.iter().find(|t| t.name == old.name) {
                    None => found.push(Discontinuity::TableDropped {
                        table: old.describe(),
                    }),
                    Some(new) if new.table != old.table => {
                        found.push(Discontinuity::SourceChanged {
                            from: old.describe(),
                            to: new.describe(),
                        })
                    }
                    // A snapshot only ever opens a table's history: it
                    // continues only a snapshot still pending.
                    Some(new)
                        if new.first != old.end
                            || (new.snapshot && !(old.snapshot && old.first == old.end)) =>
                    {
                        found.push(Discontinuity::TableVersions {
                            table: new.describe(),
                            previous_end: old.end,
                            first: new.first,
                        })
                    }
                    Some(_) => {}
                }
            }
            // A table the previous epoch lacked is new to the source: it
            // starts wherever the source's start says.
        }
        _ => found.push(Discontinuity::SourceChanged {
            from: source_name(previous),
            to: source_name(next),
        }),
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(read: &[&str], processed: &[&str]) -> SourceRange {
        SourceRange::Files {
            dir: "/landing".into(),
            files: read
                .iter()
                .map(|name| LandedFile {
                    records: 1,
                    ..LandedFile::listed(name.to_string(), 1, 1)
                })
                .collect(),
            processed: processed.iter().map(|n| n.to_string()).collect(),
        }
    }

    /// An epoch reading `parts` (name, skip, records, ends), after `processed`.
    fn parts(parts: &[(&str, u64, u64, bool)], processed: &[&str]) -> SourceRange {
        SourceRange::Files {
            dir: "/landing".into(),
            files: parts
                .iter()
                .map(|&(name, skip, records, ends)| LandedFile {
                    records,
                    skip,
                    ends,
                    ..LandedFile::listed(name.to_string(), 1, 1)
                })
                .collect(),
            processed: processed.iter().map(|n| n.to_string()).collect(),
        }
    }

    #[test]
    fn a_split_file_continues_exactly_where_its_last_part_ended() {
        let first = parts(&[("a", 0, 10, true), ("b", 0, 5, false)], &[]);
        assert!(violations(None, &first).is_empty());
        let next = parts(&[("b", 5, 5, false)], &["a"]);
        assert!(
            violations(Some(&first), &next).is_empty(),
            "{:?}",
            violations(Some(&first), &next)
        );
        let last = parts(&[("b", 10, 3, true), ("c", 0, 7, true)], &["a"]);
        assert!(violations(Some(&next), &last).is_empty());
        // After its last part, the file is processed and never read again.
        let after = parts(&[("b", 13, 1, true)], &["a", "b"]);
        assert!(!violations(Some(&last), &after).is_empty());
        // Parts only at the edges of an epoch, and none out of nowhere.
        let inside = violations(None, &parts(&[("a", 0, 3, false), ("c", 2, 1, true)], &[]));
        assert_eq!(inside.len(), 2, "{inside:?}");
        let from_nowhere = violations(Some(&last), &parts(&[("d", 4, 1, true)], &["a", "b"]));
        assert_eq!(from_nowhere.len(), 1, "{from_nowhere:?}");
        // A gap, an overlap, and another file first are each refused.
        for (bad, start) in [
            (parts(&[("b", 6, 4, true)], &["a"]), Some(6)),
            (parts(&[("b", 4, 6, true)], &["a"]), Some(4)),
            (
                parts(&[("c", 0, 1, true), ("b", 5, 5, true)], &["a"]),
                Some(5),
            ),
            (parts(&[("c", 0, 1, true)], &["a"]), None),
        ] {
            let found = violations(Some(&first), &bad);
            assert!(
                found.contains(&Discontinuity::FilePart {
                    dir: "/landing".into(),
                    file: "b".into(),
                    previous_end: 5,
                    start,
                }),
                "{found:?}"
            );
        }
    }

    #[test]
    fn file_epochs_never_read_a_file_twice_nor_skip_one() {
        let first = files(&["a", "b"], &[]);
        assert!(violations(None, &first).is_empty());
        // Moved files drop out of `processed`; that is fine.
        assert!(violations(Some(&first), &files(&["c"], &["b"])).is_empty());
        let again = violations(Some(&first), &files(&["b", "c"], &["a"]));
        assert_eq!(again.len(), 1);
        assert!(
            again[0].to_string().contains("file b was already read"),
            "{}",
            again[0]
        );
        let skipped = violations(Some(&first), &files(&["c"], &["a", "b", "x"]));
        assert_eq!(skipped.len(), 1);
        assert!(
            skipped[0]
                .to_string()
                .contains("file x is recorded as processed")
        );
        let inside = violations(None, &files(&["a", "a"], &["a"]));
        assert_eq!(inside.len(), 3, "{inside:?}");
    }
    use crate::kafka::source::OffsetRange;
    use crate::run::epoch::PartitionPosition;

    fn range(partition: i32, start: i64, end: i64, records: u64) -> OffsetRange {
        OffsetRange {
            topic: "orders".into(),
            partition,
            start,
            end,
            records: Some(records),
            lost: 0,
        }
    }

    fn kafka(ranges: Vec<OffsetRange>, positions: &[(i32, i64)]) -> SourceRange {
        SourceRange::Kafka {
            ranges,
            positions: positions
                .iter()
                .map(|&(partition, offset)| PartitionPosition {
                    topic: "orders".into(),
                    partition,
                    offset,
                })
                .collect(),
        }
    }

    fn delta(first: u64, last: u64) -> SourceRange {
        SourceRange::Delta {
            table: "/t/bronze".into(),
            first,
            last,
        }
    }

    #[test]
    fn consecutive_kafka_epochs_pass() {
        let previous = kafka(vec![range(2, 13962, 14922, 960)], &[(1, 50), (2, 14922)]);
        let next = kafka(vec![range(2, 14922, 15316, 394)], &[(1, 50), (2, 15316)]);
        assert_eq!(violations(Some(&previous), &next), vec![]);
    }

    /// The epoch that followed a replay in issue 9's incident: positions
    /// continued from 14922 but the range began at 14979.
    #[test]
    fn regression_issue_9_a_range_after_a_replay_that_skips_offsets_is_refused() {
        let previous = kafka(vec![range(2, 13962, 14922, 960)], &[(2, 14922)]);
        let next = kafka(vec![range(2, 14979, 15316, 337)], &[(2, 15316)]);
        let found = violations(Some(&previous), &next);
        assert_eq!(
            found,
            vec![Discontinuity::Offsets {
                partition: "orders[2]".into(),
                previous_end: 14922,
                start: 14979
            }]
        );
        assert_eq!(
            found[0].to_string(),
            "orders[2]: range starts at offset 14979 but the previous epoch ended at 14922 (offsets 14922..14979 were never read)"
        );
    }

    #[test]
    fn table_of_kafka_violations() {
        let previous = kafka(vec![range(0, 0, 10, 10)], &[(0, 10), (1, 7)]);
        let cases: Vec<(&str, SourceRange, &str)> = vec![
            (
                "overlap",
                kafka(vec![range(0, 8, 12, 4)], &[(0, 12), (1, 7)]),
                "orders[0]: range starts at offset 8 but the previous epoch ended at 10 (offsets 8..10 would be read twice)",
            ),
            (
                "position moved without a range",
                kafka(vec![range(0, 10, 12, 2)], &[(0, 12), (1, 9)]),
                "orders[1]: position moved from 7 to 9 without a range covering the offsets",
            ),
            (
                "partition forgotten",
                kafka(vec![range(0, 10, 12, 2)], &[(0, 12)]),
                "orders[1]: the position 7 recorded by the previous epoch is missing",
            ),
            (
                "position disagrees with range end",
                kafka(vec![range(0, 10, 12, 2)], &[(0, 13), (1, 7)]),
                "orders[0]: range [10, 12) ends at 12 but the recorded next position is 13",
            ),
            (
                "more records than offsets",
                kafka(vec![range(0, 10, 12, 3)], &[(0, 12), (1, 7)]),
                "orders[0]: range [10, 12) claims 3 records and lost offsets in 2 offsets",
            ),
            (
                "empty range",
                kafka(vec![range(0, 10, 10, 0)], &[(0, 10), (1, 7)]),
                "orders[0]: range [10, 10) is empty or reversed",
            ),
            (
                "kind changed",
                delta(4, 5),
                "the source changed between epochs: a Kafka source then Delta table /t/bronze",
            ),
        ];
        for (name, next, message) in cases {
            let found: Vec<String> = violations(Some(&previous), &next)
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(found, vec![message.to_string()], "{name}");
        }
    }

    #[test]
    fn a_new_partition_may_start_anywhere_and_lost_offsets_count_toward_the_range() {
        let previous = kafka(vec![range(0, 0, 10, 10)], &[(0, 10)]);
        let mut lost = range(0, 10, 40, 5);
        lost.lost = 25;
        let next = kafka(vec![lost, range(3, 100, 104, 4)], &[(0, 40), (3, 104)]);
        assert_eq!(violations(Some(&previous), &next), vec![]);
    }

    #[test]
    fn delta_versions_must_follow_on() {
        assert_eq!(violations(Some(&delta(3, 5)), &delta(6, 9)), vec![]);
        let gap = violations(Some(&delta(3, 5)), &delta(8, 9));
        assert_eq!(
            gap[0].to_string(),
            "/t/bronze: starts at version 8 but the previous epoch ended at version 5 (versions 6..=7 were never read)"
        );
        let overlap = violations(Some(&delta(3, 5)), &delta(5, 9));
        assert_eq!(
            overlap[0].to_string(),
            "/t/bronze: starts at version 5 but the previous epoch ended at version 5 (versions 5..=5 would be read twice)"
        );
        let other = SourceRange::Delta {
            table: "/t/other".into(),
            first: 6,
            last: 6,
        };
        assert!(matches!(
            violations(Some(&delta(3, 5)), &other)[..],
            [Discontinuity::SourceChanged { .. }]
        ));
        assert!(matches!(
            violations(None, &delta(5, 4))[..],
            [Discontinuity::ReversedVersions { .. }]
        ));
    }
}

#[cfg(test)]
mod change_tests {
    use super::*;
    use crate::run::epoch::TableVersions;

    fn table(name: &str, first: u64, end: u64, snapshot: bool) -> TableVersions {
        TableVersions {
            name: name.into(),
            table: format!("/t/{name}"),
            first,
            end,
            snapshot,
            rows: end - first,
        }
    }

    fn changes(tables: Vec<TableVersions>) -> SourceRange {
        SourceRange::Changes { tables }
    }

    #[test]
    fn each_table_continues_where_it_ended_and_new_tables_may_join() {
        let previous = changes(vec![table("a", 3, 5, true), table("b", 0, 0, false)]);
        let next = changes(vec![
            table("a", 5, 9, false),
            table("b", 0, 2, false),
            table("c", 7, 8, false),
        ]);
        assert_eq!(violations(Some(&previous), &next), vec![]);
    }

    #[test]
    fn gaps_overlaps_drops_moves_and_late_snapshots_are_named() {
        let previous = changes(vec![table("a", 0, 5, false), table("b", 0, 2, false)]);
        let gap = changes(vec![table("a", 6, 7, false), table("b", 2, 2, false)]);
        assert_eq!(
            violations(Some(&previous), &gap)[0].to_string(),
            "a (/t/a): starts at version 6 but the previous epoch ended before version 5 (versions 5..6 were never read)"
        );
        let overlap = changes(vec![table("a", 4, 7, false), table("b", 2, 2, false)]);
        assert!(
            violations(Some(&previous), &overlap)[0]
                .to_string()
                .contains("versions 4..5 would be read twice")
        );
        let dropped = changes(vec![table("a", 5, 7, false)]);
        assert_eq!(
            violations(Some(&previous), &dropped),
            vec![Discontinuity::TableDropped {
                table: "b (/t/b)".into()
            }]
        );
        let mut moved = table("b", 2, 3, false);
        moved.table = "/elsewhere/b".into();
        let moved = changes(vec![table("a", 5, 7, false), moved]);
        assert!(matches!(
            violations(Some(&previous), &moved)[0],
            Discontinuity::SourceChanged { .. }
        ));
        let pending = changes(vec![table("a", 0, 5, false), table("b", 2, 2, true)]);
        let taken = changes(vec![table("a", 5, 5, false), table("b", 2, 4, true)]);
        assert_eq!(
            violations(Some(&pending), &taken),
            vec![],
            "a pending snapshot is read later"
        );
        let late_snapshot = changes(vec![table("a", 5, 6, true), table("b", 2, 2, false)]);
        assert!(matches!(
            violations(Some(&previous), &late_snapshot)[0],
            Discontinuity::TableVersions { .. }
        ));
    }

    #[test]
    fn a_range_must_be_consistent_in_itself() {
        let mut reversed = table("a", 5, 5, false);
        reversed.first = 6;
        reversed.rows = 0;
        let twice = changes(vec![table("a", 0, 1, false), table("a", 1, 2, false)]);
        assert!(
            violations(None, &changes(vec![reversed]))[0]
                .to_string()
                .contains("is reversed")
        );
        assert!(
            violations(None, &twice)[0]
                .to_string()
                .contains("appears twice")
        );
        // A snapshot whose table's turn did not come is still pending.
        assert!(violations(None, &changes(vec![table("a", 3, 3, true)])).is_empty());
    }
}
