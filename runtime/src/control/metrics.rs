//! The Prometheus metrics of a `weir run` process (`GET /metrics`, text
//! format; `docs/metrics.md` lists them). Names follow Prometheus
//! conventions: counters end in `_total`, durations are `_seconds`, sizes
//! `_bytes`; every series carries `pipeline`, stage series `stage`.

use crate::run::epoch::StagePin;
use crate::run::stages::{StageCall, StageCounts};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Mutex;

type Labels = Vec<(String, String)>;

/// Histogram buckets from 0.5 ms to ~16 s, doubling.
#[derive(Clone)]
struct Buckets;

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(0.0005, 2.0, 16))
    }
}

/// Every metric Weir exports.
pub struct Metrics {
    registry: Registry,
    records_in: Family<Labels, Counter>,
    records_out: Family<Labels, Counter>,
    records_rejected: Family<Labels, Counter>,
    poison_records: Family<Labels, Counter>,
    call_seconds: Family<Labels, Histogram, Buckets>,
    memory_bytes: Family<Labels, Gauge>,
    epoch_seconds: Family<Labels, Histogram, Buckets>,
    epochs: Family<Labels, Counter>,
    last_epoch: Family<Labels, Gauge>,
    source_lag: Family<Labels, Gauge>,
    plugin_info: Family<Labels, Gauge>,
    swaps: Family<Labels, Counter>,
    rollbacks: Family<Labels, Counter>,
    bisections: Family<Labels, Counter>,
    /// The info labels each stage reports now, to drop them when it changes.
    shown: Mutex<Vec<Labels>>,
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let records_in = Family::default();
        let records_out = Family::default();
        let records_rejected = Family::default();
        let poison_records = Family::default();
        let call_seconds = Family::new_with_constructor(Buckets);
        let memory_bytes = Family::default();
        let epoch_seconds = Family::new_with_constructor(Buckets);
        let epochs = Family::default();
        let last_epoch = Family::default();
        let source_lag = Family::default();
        let plugin_info = Family::default();
        let swaps = Family::default();
        let rollbacks = Family::default();
        let bisections = Family::default();
        registry.register(
            "weir_stage_records_in",
            "Rows given to a stage's plugin",
            records_in.clone(),
        );
        registry.register(
            "weir_stage_records_out",
            "Rows on a stage's out port (after dedupe)",
            records_out.clone(),
        );
        registry.register(
            "weir_stage_records_rejected",
            "Rows a stage sent to the dead-letter table (rejected, failed batches, poison)",
            records_rejected.clone(),
        );
        registry.register(
            "weir_stage_poison_records",
            "Rows bisection found to make a stage's plugin trap or time out",
            poison_records.clone(),
        );
        registry.register(
            "weir_plugin_call_duration_seconds",
            "Time of one plugin call (one epoch of one stage)",
            call_seconds.clone(),
        );
        registry.register(
            "weir_plugin_memory_bytes",
            "Linear memory of a stage's running plugin instance",
            memory_bytes.clone(),
        );
        registry.register(
            "weir_epoch_duration_seconds",
            "Time from planning an epoch to its commit in every sink",
            epoch_seconds.clone(),
        );
        registry.register(
            "weir_epochs",
            "New epochs committed by this process",
            epochs.clone(),
        );
        registry.register(
            "weir_last_epoch",
            "The last epoch committed",
            last_epoch.clone(),
        );
        registry.register(
            "weir_source_lag_records",
            "Records (Kafka messages; versions or files for other sources) the source is behind, per partition",
            source_lag.clone(),
        );
        registry.register(
            "weir_stage_plugin_info",
            "The plugin version a stage runs (value 1; the version is in the labels)",
            plugin_info.clone(),
        );
        registry.register("weir_stage_swaps", "Versions swapped in", swaps.clone());
        registry.register(
            "weir_stage_rollbacks",
            "Rollbacks to the previous version, by reason (manual, automatic)",
            rollbacks.clone(),
        );
        registry.register(
            "weir_stage_bisections",
            "Batches bisected to isolate poison rows",
            bisections.clone(),
        );
        Metrics {
            registry,
            records_in,
            records_out,
            records_rejected,
            poison_records,
            call_seconds,
            memory_bytes,
            epoch_seconds,
            epochs,
            last_epoch,
            source_lag,
            plugin_info,
            swaps,
            rollbacks,
            bisections,
            shown: Mutex::new(Vec::new()),
        }
    }
}

impl Metrics {
    /// The exposition in Prometheus text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }

    /// Records one committed epoch of `pipeline`.
    pub fn epoch(
        &self,
        pipeline: &str,
        epoch: u64,
        seconds: f64,
        counts: &[StageCounts],
        calls: &[StageCall],
        bisections: &[String],
    ) {
        let of = |stage: &str| labels(&[("pipeline", pipeline), ("stage", stage)]);
        for count in counts {
            let at = of(&count.stage);
            self.records_in
                .get_or_create(&at)
                .inc_by(count.rows_in as u64);
            self.records_out
                .get_or_create(&at)
                .inc_by(count.rows_out as u64);
            self.records_rejected
                .get_or_create(&at)
                .inc_by((count.rejected + count.late) as u64);
            self.poison_records
                .get_or_create(&at)
                .inc_by(count.poisoned as u64);
        }
        for call in calls {
            let at = of(&call.stage);
            self.call_seconds.get_or_create(&at).observe(call.seconds);
            self.memory_bytes
                .get_or_create(&at)
                .set(i64::try_from(call.memory_bytes).unwrap_or(i64::MAX));
        }
        for stage in bisections {
            self.bisections.get_or_create(&of(stage)).inc();
        }
        let at = labels(&[("pipeline", pipeline)]);
        self.epoch_seconds.get_or_create(&at).observe(seconds);
        self.epochs.get_or_create(&at).inc();
        self.last_epoch
            .get_or_create(&at)
            .set(i64::try_from(epoch).unwrap_or(i64::MAX));
    }

    /// Sets the source lag of `pipeline`, per partition.
    pub fn lag(&self, pipeline: &str, parts: &[(String, i64)]) {
        for (partition, lag) in parts {
            self.source_lag
                .get_or_create(&labels(&[("pipeline", pipeline), ("partition", partition)]))
                .set(*lag);
        }
    }

    /// Shows the versions `pipeline`'s stages run now.
    pub fn versions(&self, pipeline: &str, pins: &[StagePin]) {
        let mut shown = self.shown.lock().unwrap_or_else(|p| p.into_inner());
        shown.retain(|old| {
            let mine = old.iter().any(|(k, v)| k == "pipeline" && v == pipeline);
            if mine {
                self.plugin_info.remove(old);
            }
            !mine
        });
        for pin in pins {
            let at = labels(&[
                ("pipeline", pipeline),
                ("stage", &pin.stage),
                ("plugin", &pin.plugin),
                ("version", &pin.version),
                ("hash", pin.hash.get(..12).unwrap_or(&pin.hash)),
            ]);
            self.plugin_info.get_or_create(&at).set(1);
            shown.push(at);
        }
    }

    /// Counts a swap of `stage`.
    pub fn swapped(&self, pipeline: &str, stage: &str) {
        self.swaps
            .get_or_create(&labels(&[("pipeline", pipeline), ("stage", stage)]))
            .inc();
    }

    /// Counts a rollback of `stage` (`manual` or `automatic`).
    pub fn rolled_back(&self, pipeline: &str, stage: &str, reason: &str) {
        self.rollbacks
            .get_or_create(&labels(&[
                ("pipeline", pipeline),
                ("stage", stage),
                ("reason", reason),
            ]))
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_carry_total_and_versions_replace_their_labels() {
        let metrics = Metrics::default();
        let counts = [StageCounts {
            stage: "parse".into(),
            rows_in: 10,
            rows_out: 9,
            rejected: 1,
            ..StageCounts::default()
        }];
        metrics.epoch("p", 1, 0.01, &counts, &[], &[]);
        let pin = |hash: &str| StagePin {
            stage: "parse".into(),
            plugin: "parse-json".into(),
            version: "1.0.0".into(),
            hash: hash.into(),
            config_hash: "c".into(),
        };
        metrics.versions("p", &[pin("aaaa")]);
        metrics.versions("p", &[pin("bbbb")]);
        let text = metrics.render();
        assert!(
            text.contains("weir_stage_records_in_total{pipeline=\"p\",stage=\"parse\"} 10"),
            "{text}"
        );
        assert!(text.contains("hash=\"bbbb\""), "{text}");
        assert!(!text.contains("hash=\"aaaa\""), "{text}");
    }
}
