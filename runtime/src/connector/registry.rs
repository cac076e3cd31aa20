//! The one place that maps a pipeline file's `[pipeline.source.*]` and
//! `[[pipeline.sink]]` entries to connector implementations. A new connector
//! adds its arm here (and its config variant in `pipeline/spec.rs`, its range
//! variant in `run/epoch.rs`); the epoch runner stays untouched.

use super::{Reach, Sink, Source};
use crate::delta::change_source::ChangeSource;
use crate::delta::epoch_source::DeltaEpochSource;
use crate::delta::sink::{DeltaSink, SinkTarget};
use crate::kafka::epoch_source::{KafkaEpochSource, KafkaSourceSpec};
use crate::kafka::sink::KafkaTopicSink;
use crate::landing::epoch_source::LandingSource;
use crate::pipeline::spec::SinkMode;
use crate::pipeline::{PortRef, PreparedFile, PreparedPipeline, Source as SourceSpec};
use crate::run::RunError;
use crate::run::epoch::SourceRange;

/// Opens the pipeline's source, positioned after `resume` (the range of the
/// last epoch every sink holds, or the one a replay ended with), reading as
/// far as `reach` says.
pub async fn open_source(
    prepared: &PreparedPipeline,
    resume: Option<&SourceRange>,
    reach: &Reach,
) -> Result<Box<dyn Source>, RunError> {
    let pipeline = &prepared.spec;
    Ok(match &pipeline.source {
        SourceSpec::Kafka {
            topics,
            group_id,
            start,
            connection,
            fail_on_data_loss,
        } => Box::new(
            KafkaEpochSource::open(
                &pipeline.name,
                KafkaSourceSpec {
                    topics,
                    group_id,
                    start: *start,
                    connection,
                    fail_on_data_loss: *fail_on_data_loss,
                },
                resume,
            )
            .await?,
        ),
        SourceSpec::Files(spec) => Box::new(LandingSource::open(
            &pipeline.name,
            spec.clone(),
            prepared
                .schemas
                .get(&PortRef::Source)
                .cloned()
                .unwrap_or_else(crate::landing::read::schema),
            resume,
            reach.once(),
        )?),
        SourceSpec::Changes(spec) => {
            let output = prepared
                .schemas
                .get(&PortRef::Source)
                .cloned()
                .ok_or_else(|| RunError::SourceSchemaUnknown {
                    pipeline: pipeline.name.clone(),
                })?;
            Box::new(ChangeSource::open(&pipeline.name, spec, output, resume, reach).await?)
        }
        SourceSpec::Delta {
            table,
            start,
            poll_interval,
        } => Box::new(
            DeltaEpochSource::open(&pipeline.name, table, *start, *poll_interval, resume, reach)
                .await?,
        ),
    })
}

/// Opens every sink of the pipeline (Delta sinks, then Kafka sinks), then
/// its dead-letter sink (always last). `checkpoint` is the pipeline's
/// checkpoint directory.
pub async fn open_sinks(
    prepared: &PreparedPipeline,
    checkpoint: &std::path::Path,
) -> Result<Vec<Box<dyn Sink>>, RunError> {
    let pipeline = &prepared.spec;
    let failed = |source| RunError::Delta {
        pipeline: pipeline.name.clone(),
        source,
    };
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    for sink in &pipeline.sinks {
        let target = SinkTarget {
            path: sink.table.clone(),
            app_id: pipeline.app_id(&sink.name),
            mode: sink.mode,
            merge: sink.merge.clone(),
            upsert: sink.upsert.clone(),
        };
        let opened = DeltaSink::open(&pipeline.name, &sink.name, Some(sink.from.clone()), target)
            .await
            .map_err(failed)?;
        sinks.push(Box::new(opened));
    }
    for sink in &pipeline.kafka_sinks {
        sinks.push(Box::new(KafkaTopicSink::open(
            &pipeline.name,
            sink,
            checkpoint,
        )?));
    }
    let dead = SinkTarget {
        path: pipeline.dead_letters.clone(),
        app_id: pipeline.app_id("dead_letters"),
        mode: SinkMode::Append,
        merge: None,
        upsert: None,
    };
    let opened = DeltaSink::open(&pipeline.name, "dead_letters", None, dead)
        .await
        .map_err(failed)?;
    sinks.push(Box::new(opened));
    Ok(sinks)
}

/// Creates what every sink of the file needs before any pipeline starts
/// (sequentially, so pipelines sharing a table never race to create it).
pub async fn prepare_sinks(file: &PreparedFile) -> Result<(), RunError> {
    crate::delta::provision::create_missing(file).await?;
    for prepared in &file.pipelines {
        let pipeline = &prepared.spec;
        for sink in &pipeline.kafka_sinks {
            crate::kafka::producer::ensure_topic(&sink.connection, &sink.topic, sink.partitions)
                .await
                .map_err(|source| RunError::Kafka {
                    pipeline: pipeline.name.clone(),
                    source,
                })?;
        }
    }
    Ok(())
}
