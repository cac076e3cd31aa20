//! What a (re)starting pipeline must do, decided by a pure function of what
//! survived: the checkpoint directory (last plan written, sinks it knew,
//! state snapshots) and each sink's last committed epoch (its `txn` version).
//! The runner gathers the facts, calls [`decide`], then fetches the plans the
//! decision names (from the checkpoint, else from a sink's `commitInfo`) and
//! carries it out. Rules (`docs/exactly-once.md`, "Recovery"):
//!
//! * The last epoch is the newest one any sink holds or any plan names: an
//!   epoch committed somewhere is never planned again under another range.
//! * A sink never writes an epoch it holds (`txn` version ≥ epoch), so no
//!   recovery path appends twice, even with the checkpoint directory gone.
//! * A sink the checkpoint has never seen and that holds nothing is *new*: it
//!   starts with the next new epoch (it does not receive history).
//!   Without a checkpoint directory no sink can be recognised as new, so a
//!   sink that holds nothing then receives every epoch whose plan is still
//!   recorded in another sink's commits.
//! * Stateful stages restore the newest snapshot at or before the epoch every
//!   sink holds; epochs after it are re-run (from their recorded plans) to
//!   rebuild state, written only to the sinks that lack them.

/// What survived, per sink and in the checkpoint directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The newest plan in the checkpoint directory.
    pub latest_planned: Option<u64>,
    /// The sinks the checkpoint recorded at the last start; `None` when the
    /// directory is new or was deleted.
    pub known_sinks: Option<Vec<String>>,
    /// Epochs with a complete state snapshot.
    pub snapshots: Vec<u64>,
    /// Whether any stage keeps state between epochs (dedupe).
    pub stateful: bool,
    /// `(sink name, last epoch it holds)`, in the pipeline's sink order.
    pub sinks: Vec<(String, Option<u64>)>,
}

/// One epoch to run again from its recorded plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// The epoch.
    pub epoch: u64,
    /// Indices (into [`Facts::sinks`]) of the sinks that lack it; empty when
    /// it is re-run only to rebuild stage state.
    pub sinks: Vec<usize>,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The newest epoch number in use; new epochs start at `last + 1`.
    pub last: u64,
    /// Per sink, the epoch it is treated as holding (new sinks: `last`).
    pub committed: Vec<u64>,
    /// Indices of sinks that join the pipeline now.
    pub joined: Vec<usize>,
    /// The state snapshot to restore, if any.
    pub restore: Option<u64>,
    /// Epochs to run again, ascending.
    pub replays: Vec<Replay>,
    /// The epoch whose plan says where the source resumes (`None`: from its
    /// configured start).
    pub resume_from: Option<u64>,
}

/// Decides recovery from `facts`. Pure: no I/O, no clock.
pub fn decide(facts: &Facts) -> Recovery {
    let held = |i: usize| facts.sinks[i].1;
    let ahead = (0..facts.sinks.len()).filter_map(held).max().unwrap_or(0);
    let last = facts.latest_planned.unwrap_or(0).max(ahead);
    let mut committed: Vec<u64> = (0..facts.sinks.len())
        .map(|i| held(i).unwrap_or(0))
        .collect();
    let mut joined = Vec::new();
    if let Some(known) = &facts.known_sinks {
        for (i, (name, epoch)) in facts.sinks.iter().enumerate() {
            if epoch.is_none() && !known.contains(name) {
                committed[i] = last;
                joined.push(i);
            }
        }
    }
    let done = committed.iter().copied().min().unwrap_or(0);
    let restore = if facts.stateful {
        facts
            .snapshots
            .iter()
            .copied()
            .filter(|&e| e <= done && e > 0)
            .max()
    } else {
        (done > 0).then_some(done)
    };
    let from = restore.unwrap_or(0) + 1;
    let replays = (from..=last)
        .map(|epoch| Replay {
            epoch,
            sinks: (0..committed.len())
                .filter(|&i| committed[i] < epoch)
                .collect(),
        })
        .collect();
    Recovery {
        last,
        committed,
        joined,
        restore: restore.filter(|_| facts.stateful),
        replays,
        resume_from: (last > 0).then_some(last),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sinks(held: &[(&str, Option<u64>)]) -> Vec<(String, Option<u64>)> {
        held.iter().map(|(n, e)| (n.to_string(), *e)).collect()
    }

    fn known(names: &[&str]) -> Option<Vec<String>> {
        Some(names.iter().map(|n| n.to_string()).collect())
    }

    fn replay(epoch: u64, sinks: &[usize]) -> Replay {
        Replay {
            epoch,
            sinks: sinks.to_vec(),
        }
    }

    /// Each case: what survived → what must happen.
    #[test]
    fn recovery_cases() {
        struct Case {
            name: &'static str,
            facts: Facts,
            last: u64,
            committed: Vec<u64>,
            joined: Vec<usize>,
            restore: Option<u64>,
            replays: Vec<Replay>,
        }
        let cases = vec![
            Case {
                name: "first start: nothing anywhere",
                facts: Facts {
                    sinks: sinks(&[("silver", None), ("dead_letters", None)]),
                    ..Facts::default()
                },
                last: 0,
                committed: vec![0, 0],
                joined: vec![],
                restore: None,
                replays: vec![],
            },
            Case {
                name: "clean stop: every sink holds the last plan",
                facts: Facts {
                    latest_planned: Some(4),
                    known_sinks: known(&["silver", "dead_letters"]),
                    sinks: sinks(&[("silver", Some(4)), ("dead_letters", Some(4))]),
                    ..Facts::default()
                },
                last: 4,
                committed: vec![4, 4],
                joined: vec![],
                restore: None,
                replays: vec![],
            },
            Case {
                name: "crash after the plan, before any commit: the planned epoch is replayed everywhere",
                facts: Facts {
                    latest_planned: Some(5),
                    known_sinks: known(&["silver", "dead_letters"]),
                    sinks: sinks(&[("silver", Some(4)), ("dead_letters", Some(4))]),
                    ..Facts::default()
                },
                last: 5,
                committed: vec![4, 4],
                joined: vec![],
                restore: None,
                replays: vec![replay(5, &[0, 1])],
            },
            Case {
                name: "plan lost but commit present: resume after the committed epoch, write nothing again",
                facts: Facts {
                    latest_planned: Some(3),
                    known_sinks: known(&["silver", "dead_letters"]),
                    sinks: sinks(&[("silver", Some(5)), ("dead_letters", Some(5))]),
                    ..Facts::default()
                },
                last: 5,
                committed: vec![5, 5],
                joined: vec![],
                restore: None,
                replays: vec![],
            },
            Case {
                name: "commit of one sink done, another not: only the lagging sink gets the epoch",
                facts: Facts {
                    latest_planned: Some(6),
                    known_sinks: known(&["a", "b", "dead_letters"]),
                    sinks: sinks(&[("a", Some(6)), ("b", Some(5)), ("dead_letters", Some(6))]),
                    ..Facts::default()
                },
                last: 6,
                committed: vec![6, 5, 6],
                joined: vec![],
                restore: None,
                replays: vec![replay(6, &[1])],
            },
            Case {
                name: "sink added to an existing pipeline: it joins at the next new epoch, no history",
                facts: Facts {
                    latest_planned: Some(7),
                    known_sinks: known(&["a", "dead_letters"]),
                    sinks: sinks(&[("a", Some(7)), ("b", None), ("dead_letters", Some(7))]),
                    ..Facts::default()
                },
                last: 7,
                committed: vec![7, 7, 7],
                joined: vec![1],
                restore: None,
                replays: vec![],
            },
            Case {
                name: "checkpoint directory deleted: resume from the sinks, re-append nothing",
                facts: Facts {
                    sinks: sinks(&[("a", Some(9)), ("dead_letters", Some(9))]),
                    ..Facts::default()
                },
                last: 9,
                committed: vec![9, 9],
                joined: vec![],
                restore: None,
                replays: vec![],
            },
            Case {
                name: "checkpoint deleted, stateful stage: state rebuilt from recorded plans, written nowhere",
                facts: Facts {
                    stateful: true,
                    sinks: sinks(&[("a", Some(3)), ("dead_letters", Some(3))]),
                    ..Facts::default()
                },
                last: 3,
                committed: vec![3, 3],
                joined: vec![],
                restore: None,
                replays: vec![replay(1, &[]), replay(2, &[]), replay(3, &[])],
            },
            Case {
                name: "stateful: restore the newest snapshot every sink holds, re-run after it",
                facts: Facts {
                    latest_planned: Some(8),
                    known_sinks: known(&["a", "dead_letters"]),
                    snapshots: vec![5, 6, 8],
                    stateful: true,
                    sinks: sinks(&[("a", Some(8)), ("dead_letters", Some(7))]),
                },
                last: 8,
                committed: vec![8, 7],
                joined: vec![],
                restore: Some(6),
                replays: vec![replay(7, &[]), replay(8, &[1])],
            },
            Case {
                name: "checkpoint deleted and a sink that holds nothing: it cannot be told from a new one, so it gets every recorded epoch",
                facts: Facts {
                    sinks: sinks(&[("a", Some(2)), ("b", None), ("dead_letters", Some(2))]),
                    ..Facts::default()
                },
                last: 2,
                committed: vec![2, 0, 2],
                joined: vec![],
                restore: None,
                replays: vec![replay(1, &[1]), replay(2, &[1])],
            },
        ];
        for case in cases {
            let got = decide(&case.facts);
            assert_eq!(got.last, case.last, "{}: last", case.name);
            assert_eq!(got.committed, case.committed, "{}: committed", case.name);
            assert_eq!(got.joined, case.joined, "{}: joined", case.name);
            assert_eq!(got.restore, case.restore, "{}: restore", case.name);
            assert_eq!(got.replays, case.replays, "{}: replays", case.name);
            assert_eq!(
                got.resume_from,
                (case.last > 0).then_some(case.last),
                "{}: resume",
                case.name
            );
            // Whatever the case: no sink is asked to write an epoch it holds.
            for r in &got.replays {
                for &i in &r.sinks {
                    let held = case.facts.sinks[i].1.unwrap_or(0);
                    assert!(
                        held < r.epoch,
                        "{}: sink {i} re-appends {}",
                        case.name,
                        r.epoch
                    );
                }
            }
        }
    }
}
