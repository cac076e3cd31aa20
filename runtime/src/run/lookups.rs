//! The lookup inputs of a pipeline's stages: for a new epoch, pin every
//! lookup table's current version (recorded in the plan); for any epoch,
//! load the pinned versions, re-reading a table only when its version moved
//! (the cache holds the versions the last epoch used).

use super::RunError;
use super::epoch::LookupPin;
use crate::delta::lookup;
use crate::pipeline::Pipeline;
use arrow::array::RecordBatch;
use std::collections::HashMap;
use std::path::PathBuf;

/// A stage's lookup batches, by stage index: `(input port, whole table)`.
pub type LookupBatches = HashMap<usize, Vec<(String, RecordBatch)>>;

/// The lookup inputs of one pipeline and the cache of their tables.
pub struct Lookups {
    pipeline: String,
    /// `(stage index, stage name, port, table)`.
    inputs: Vec<(usize, String, String, PathBuf)>,
    cache: HashMap<(PathBuf, u64), RecordBatch>,
}

impl Lookups {
    /// The lookup inputs `pipeline` declares.
    pub fn new(pipeline: &Pipeline) -> Self {
        let inputs = pipeline
            .stages
            .iter()
            .enumerate()
            .flat_map(|(index, stage)| {
                stage.lookups.iter().map(move |(port, table)| {
                    (index, stage.name.clone(), port.clone(), table.clone())
                })
            })
            .collect();
        Lookups {
            pipeline: pipeline.name.clone(),
            inputs,
            cache: HashMap::new(),
        }
    }

    fn failed(&self) -> impl Fn(crate::delta::DeltaError) -> RunError + '_ {
        |source| RunError::Delta {
            pipeline: self.pipeline.clone(),
            source,
        }
    }

    /// Every lookup table's current version, for a new epoch's plan.
    pub async fn pin_current(&self) -> Result<Vec<LookupPin>, RunError> {
        let mut pins = Vec::new();
        for (_, stage, port, table) in &self.inputs {
            pins.push(LookupPin {
                stage: stage.clone(),
                port: port.clone(),
                table: table.display().to_string(),
                version: lookup::latest(table).await.map_err(self.failed())?,
            });
        }
        Ok(pins)
    }

    /// The lookup batches of an epoch with `pins` (a plan written before
    /// lookups were recorded, or before a lookup was added, reads the
    /// current version of what it lacks).
    pub async fn load(&mut self, pins: &[LookupPin]) -> Result<LookupBatches, RunError> {
        let mut batches = LookupBatches::new();
        let mut used = Vec::new();
        for (index, stage, port, table) in self.inputs.clone() {
            // A replay reads the table and version the plan recorded, even if
            // the pipeline file now points the port at another table.
            let recorded = pins
                .iter()
                .find(|p| p.stage == stage && p.port == port)
                .map(|p| (PathBuf::from(&p.table), p.version));
            let (table, version) = match recorded {
                Some(pinned) => pinned,
                None => {
                    let version = lookup::latest(&table).await.map_err(self.failed())?;
                    (table, version)
                }
            };
            let key = (table.clone(), version);
            let batch = match self.cache.get(&key) {
                Some(batch) => batch.clone(),
                None => {
                    tracing::debug!(pipeline = %self.pipeline, stage = %stage, table = %table.display(), version, "reading lookup table");
                    let batch = lookup::read_version(&table, version)
                        .await
                        .map_err(self.failed())?;
                    self.cache.insert(key.clone(), batch.clone());
                    batch
                }
            };
            used.push(key);
            batches.entry(index).or_default().push((port, batch));
        }
        self.cache.retain(|key, _| used.contains(key));
        Ok(batches)
    }
}
