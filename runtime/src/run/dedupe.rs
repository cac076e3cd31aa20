//! Host-kept cross-batch dedupe (Spark's `withWatermark(t, d).dropDuplicates(k)`):
//! a row whose key was seen in an earlier row, batch or run is dropped; keys
//! are remembered until the watermark (newest event time seen in earlier
//! epochs minus the retention) passes their event time, so state stays
//! bounded. A row older than the watermark is too late to dedupe reliably and
//! goes to dead letters instead of being dropped silently. The state is
//! snapshotted per epoch as Arrow IPC and restored to the last committed epoch.

use super::RunError;
use crate::pipeline::spec::DedupeSpec;
use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Int64Array, RecordBatch};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use arrow::ipc::writer::StreamWriter;
use arrow::row::{RowConverter, SortField};
use foldhash::quality::RandomState;
use smallvec::SmallVec;
use std::collections::HashMap;
use std::sync::Arc;

/// Keys per record batch of a state snapshot.
const SNAPSHOT_CHUNK: usize = 65536;

/// A remembered key (Arrow row format). Keys of up to 24 bytes — a string
/// key of up to 16 bytes, an integer, a short compound key — are kept inline
/// in the map's entry: no allocation per key to make, free or chase.
type Key = SmallVec<[u8; 24]>;

/// What one batch did to the state.
#[derive(Debug)]
pub struct DedupeOutcome {
    /// The rows kept, in input order.
    pub kept: RecordBatch,
    /// Rows (input index, reason) that are too late or have no event time.
    pub late: Vec<(usize, String)>,
    /// How many rows were dropped as duplicates.
    pub duplicates: usize,
}

/// The remembered keys of one stage.
pub struct DedupeState {
    spec: DedupeSpec,
    converter: RowConverter,
    /// Key bytes (Arrow row format) → event time in µs. Hashed with
    /// foldhash, seeded per process: several times faster than the standard
    /// SipHash on short keys, and the random seed keeps keys chosen to
    /// collide (the keys are user data) from degrading the map.
    seen: HashMap<Key, i64, RandomState>,
    /// Newest event time in µs over committed epochs.
    max_event: Option<i64>,
}

impl DedupeState {
    /// Empty state for rows of `schema` (validated to hold the columns).
    pub fn new(spec: DedupeSpec, schema: &Schema) -> Result<Self, RunError> {
        let column = |name: &str| {
            schema.index_of(name).map_err(|_| RunError::Dedupe {
                reason: format!("column `{name}` is missing"),
            })
        };
        let key_indices = spec
            .key
            .iter()
            .map(|k| column(k))
            .collect::<Result<Vec<_>, _>>()?;
        column(&spec.event_time)?;
        let converter = RowConverter::new(
            key_indices
                .iter()
                .map(|&i| SortField::new(schema.field(i).data_type().clone()))
                .collect(),
        )
        .map_err(|e| RunError::Dedupe {
            reason: e.to_string(),
        })?;
        Ok(DedupeState {
            spec,
            converter,
            seen: HashMap::default(),
            max_event: None,
        })
    }

    /// The current watermark in µs: rows older than this are late.
    pub fn watermark(&self) -> Option<i64> {
        let retention = i64::try_from(self.spec.retention.as_micros()).unwrap_or(i64::MAX);
        self.max_event.map(|m| m.saturating_sub(retention))
    }

    /// The configuration.
    pub fn spec(&self) -> &DedupeSpec {
        &self.spec
    }

    /// How many keys are remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Dedupes one batch, then advances the watermark and forgets keys behind
    /// it. Columns are found by name in every batch.
    pub fn apply(&mut self, batch: &RecordBatch) -> Result<DedupeOutcome, RunError> {
        let failed = |e: arrow::error::ArrowError| RunError::Dedupe {
            reason: e.to_string(),
        };
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .cloned()
                .ok_or_else(|| RunError::Dedupe {
                    reason: format!("column `{name}` is missing from the batch"),
                })
        };
        let keys: Vec<ArrayRef> = self
            .spec
            .key
            .iter()
            .map(|k| column(k))
            .collect::<Result<_, _>>()?;
        let rows = self.converter.convert_columns(&keys).map_err(failed)?;
        let times = cast(
            &column(&self.spec.event_time)?,
            &DataType::Timestamp(TimeUnit::Microsecond, None),
        )
        .map_err(failed)?;
        let times = times.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        let watermark = self.watermark();
        let mut keep = Vec::with_capacity(batch.num_rows());
        let mut late = Vec::new();
        let mut duplicates = 0;
        let mut newest = self.max_event;
        // At most one new key per row: grow once, not by doubling mid-batch.
        self.seen.reserve(rows.num_rows());
        for (index, row) in rows.iter().enumerate() {
            if times.is_null(index) {
                late.push((
                    index,
                    format!(
                        "`{}` is null; dedupe needs an event time",
                        self.spec.event_time
                    ),
                ));
                keep.push(false);
                continue;
            }
            let time = times.value(index);
            if watermark.is_some_and(|w| time < w) {
                late.push((
                    index,
                    format!(
                        "late: `{}` is older than the dedupe watermark (newest event time minus {:?})",
                        self.spec.event_time, self.spec.retention
                    ),
                ));
                keep.push(false);
                continue;
            }
            let fresh = match self.seen.get_mut(row.as_ref()) {
                Some(_) => false,
                None => {
                    self.seen.insert(Key::from_slice(row.as_ref()), time);
                    true
                }
            };
            if !fresh {
                duplicates += 1;
            }
            keep.push(fresh);
            newest = Some(newest.map_or(time, |n| n.max(time)));
        }
        let kept = filter_record_batch(batch, &BooleanArray::from(keep)).map_err(failed)?;
        self.max_event = newest;
        if let Some(watermark) = self.watermark() {
            self.seen.retain(|_, &mut time| time >= watermark);
        }
        Ok(DedupeOutcome {
            kept,
            late,
            duplicates,
        })
    }

    fn snapshot_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("key", DataType::Binary, false),
            Field::new("event_time", DataType::Int64, false),
        ]))
    }

    /// The state as Arrow IPC bytes (newest event time in the schema
    /// metadata), keys in no particular order: restoring it gives the same
    /// set whatever the order.
    pub fn snapshot(&self) -> Result<Vec<u8>, RunError> {
        let failed = |e: arrow::error::ArrowError| RunError::Dedupe {
            reason: e.to_string(),
        };
        let mut metadata = HashMap::new();
        if let Some(max) = self.max_event {
            metadata.insert("max_event".to_string(), max.to_string());
        }
        let schema = Arc::new(
            Self::snapshot_schema()
                .as_ref()
                .clone()
                .with_metadata(metadata),
        );
        // Encoded a slice of keys at a time, so only the encoded stream is
        // ever whole in memory (the state can hold millions of keys).
        let mut writer = StreamWriter::try_new(Vec::new(), &schema).map_err(failed)?;
        let mut entries = self.seen.iter();
        for _ in (0..self.seen.len()).step_by(SNAPSHOT_CHUNK) {
            let (keys, times): (Vec<&[u8]>, Vec<i64>) = entries
                .by_ref()
                .take(SNAPSHOT_CHUNK)
                .map(|(key, &time)| (key.as_ref(), time))
                .unzip();
            let columns: Vec<ArrayRef> = vec![
                Arc::new(BinaryArray::from_vec(keys)),
                Arc::new(Int64Array::from(times)),
            ];
            let batch = RecordBatch::try_new(schema.clone(), columns).map_err(failed)?;
            writer.write(&batch).map_err(failed)?;
        }
        writer.into_inner().map_err(failed)
    }

    /// Replaces the state with a snapshot taken by [`Self::snapshot`].
    pub fn restore(&mut self, bytes: Vec<u8>) -> Result<(), RunError> {
        let corrupt = |reason: String| RunError::Dedupe {
            reason: format!("unreadable dedupe snapshot: {reason}"),
        };
        let batch = weir_sdk::ipc::decode_batch(bytes).map_err(|e| corrupt(e.to_string()))?;
        let max_event = match batch.schema().metadata().get("max_event") {
            Some(text) => Some(text.parse::<i64>().map_err(|e| corrupt(e.to_string()))?),
            None => None,
        };
        let keys = batch
            .column_by_name("key")
            .and_then(|c| c.as_binary_opt::<i32>())
            .ok_or_else(|| corrupt("no key column".into()))?;
        let times = batch
            .column_by_name("event_time")
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .ok_or_else(|| corrupt("no event_time column".into()))?;
        self.seen = keys
            .iter()
            .zip(times.iter())
            .filter_map(|(k, t)| Some((Key::from_slice(k?), t?)))
            .collect();
        self.max_event = max_event;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{StringArray, TimestampMicrosecondArray};
    use std::time::Duration;

    fn spec() -> DedupeSpec {
        DedupeSpec {
            key: vec!["id".into()],
            event_time: "t".into(),
            retention: Duration::from_secs(10),
        }
    }

    fn batch(rows: &[(Option<&str>, Option<i64>)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]));
        let ids = StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>());
        let times = TimestampMicrosecondArray::from(
            rows.iter()
                .map(|r| r.1.map(|s| s * 1_000_000))
                .collect::<Vec<_>>(),
        )
        .with_timezone("UTC");
        RecordBatch::try_new(schema, vec![Arc::new(ids), Arc::new(times)]).unwrap()
    }

    fn ids(batch: &RecordBatch) -> Vec<Option<String>> {
        batch
            .column(0)
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect()
    }

    #[test]
    fn drops_keys_seen_in_this_or_earlier_batches_first_wins() {
        let mut state = DedupeState::new(spec(), &batch(&[]).schema()).unwrap();
        let first = state
            .apply(&batch(&[
                (Some("a"), Some(100)),
                (Some("b"), Some(101)),
                (Some("a"), Some(102)),
            ]))
            .unwrap();
        assert_eq!(ids(&first.kept), [Some("a".into()), Some("b".into())]);
        assert_eq!(first.duplicates, 1);
        let second = state
            .apply(&batch(&[
                (Some("b"), Some(103)),
                (None, Some(104)),
                (None, Some(104)),
                (Some("c"), Some(104)),
            ]))
            .unwrap();
        assert_eq!(
            ids(&second.kept),
            [None, Some("c".into())],
            "null keys are one value"
        );
        assert_eq!(second.duplicates, 2);
    }

    #[test]
    fn late_and_timeless_rows_are_reported_not_dropped_and_old_keys_are_forgotten() {
        let mut state = DedupeState::new(spec(), &batch(&[]).schema()).unwrap();
        state.apply(&batch(&[(Some("a"), Some(100))])).unwrap();
        state.apply(&batch(&[(Some("b"), Some(200))])).unwrap();
        assert_eq!(state.watermark(), Some(190 * 1_000_000));
        assert_eq!(state.len(), 1, "`a` is behind the watermark and forgotten");
        let outcome = state
            .apply(&batch(&[
                (Some("a"), Some(150)),
                (Some("z"), None),
                (Some("a"), Some(195)),
            ]))
            .unwrap();
        assert_eq!(outcome.late.iter().map(|l| l.0).collect::<Vec<_>>(), [0, 1]);
        assert!(
            outcome.late[0].1.starts_with("late"),
            "{}",
            outcome.late[0].1
        );
        assert!(outcome.late[1].1.contains("null"));
        assert_eq!(ids(&outcome.kept), [Some("a".into())]);
    }

    #[test]
    fn a_snapshot_of_more_keys_than_one_chunk_restores_them_all() {
        let ids: Vec<String> = (0..SNAPSHOT_CHUNK + 10).map(|i| format!("k{i}")).collect();
        let rows: Vec<(Option<&str>, Option<i64>)> = ids
            .iter()
            .map(|id| (Some(id.as_str()), Some(100)))
            .collect();
        let mut state = DedupeState::new(spec(), &batch(&[]).schema()).unwrap();
        state.apply(&batch(&rows)).unwrap();
        let mut restored = DedupeState::new(spec(), &batch(&[]).schema()).unwrap();
        restored.restore(state.snapshot().unwrap()).unwrap();
        assert_eq!(restored.watermark(), state.watermark());
        let again = restored.apply(&batch(&rows)).unwrap();
        assert_eq!(again.duplicates, rows.len(), "every key is remembered");
    }

    #[test]
    fn snapshots_restore_the_same_decisions() {
        let mut state = DedupeState::new(spec(), &batch(&[]).schema()).unwrap();
        state
            .apply(&batch(&[(Some("a"), Some(100)), (Some("b"), Some(105))]))
            .unwrap();
        let bytes = state.snapshot().unwrap();
        let mut restored = DedupeState::new(spec(), &batch(&[]).schema()).unwrap();
        restored.restore(bytes).unwrap();
        assert_eq!(restored.watermark(), state.watermark());
        let probe = batch(&[(Some("a"), Some(106)), (Some("c"), Some(106))]);
        assert_eq!(
            ids(&restored.apply(&probe).unwrap().kept),
            ids(&state.apply(&probe).unwrap().kept)
        );
    }
}
