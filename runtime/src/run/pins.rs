//! Which plugin version and config each stage runs, per epoch. Every plan
//! records a [`StagePin`] per stage; the pipeline keeps a copy of every
//! component and config it ran in its checkpoint (`versions/`), so replaying
//! an epoch runs exactly the recorded versions even after the plugin file or
//! the config changed — the prerequisite for hot swap. A recorded version that
//! is neither current nor kept stops the replay with an error naming the stage.

use super::RunError;
use super::checkpoint::Checkpoint;
use super::epoch::StagePin;
use crate::cache::content_hash;
use crate::pipeline::PreparedPipeline;
use crate::plugin::LoadedPlugin;
use std::path::Path;

/// A stage's plugin and config, ready to instantiate.
#[derive(Clone)]
pub struct StageVersion {
    /// The loaded component.
    pub plugin: LoadedPlugin,
    /// The config JSON for `configure`.
    pub config: String,
    /// What a plan records of it.
    pub pin: StagePin,
}

impl StageVersion {
    /// `plugin` configured with `config` in `stage`.
    pub fn new(stage: &str, plugin: LoadedPlugin, config: String) -> Self {
        let id = plugin.identity();
        let pin = StagePin {
            stage: stage.to_string(),
            plugin: id.name.clone(),
            version: id.version.clone(),
            hash: id.hash.clone(),
            config_hash: content_hash(config.as_bytes()),
        };
        StageVersion {
            plugin,
            config,
            pin,
        }
    }
}

/// The versions the pipeline file names now, in stage order.
pub fn current(prepared: &PreparedPipeline) -> Vec<StageVersion> {
    prepared
        .spec
        .stages
        .iter()
        .zip(&prepared.plugins)
        .map(|(stage, plugin)| {
            StageVersion::new(&stage.name, plugin.clone(), stage.config_json.clone())
        })
        .collect()
}

/// Keeps every current component and config in the checkpoint.
pub fn keep_current(checkpoint: &Checkpoint, versions: &[StageVersion]) -> Result<(), RunError> {
    for version in versions {
        checkpoint.keep("wasm", &version.pin.hash, version.plugin.bytes())?;
        checkpoint.keep("json", &version.pin.config_hash, version.config.as_bytes())?;
    }
    Ok(())
}

/// The version `pin` names: the current one when it matches, else the copy
/// kept in the checkpoint.
pub fn resolve(
    prepared: &PreparedPipeline,
    current: &StageVersion,
    pin: &StagePin,
    checkpoint: &Checkpoint,
    epoch: u64,
) -> Result<StageVersion, RunError> {
    if current.pin == *pin {
        return Ok(current.clone());
    }
    let unavailable = |what: &'static str| RunError::RecordedVersionMissing {
        pipeline: prepared.spec.name.clone(),
        epoch,
        pin: Box::new(pin.clone()),
        what,
        kept: checkpoint.dir().join("versions"),
    };
    let plugin = if current.pin.hash == pin.hash {
        current.plugin.clone()
    } else {
        let bytes = checkpoint
            .kept("wasm", &pin.hash)?
            .ok_or_else(|| unavailable("plugin"))?;
        let origin = Path::new(&pin.plugin).with_extension("wasm");
        prepared
            .engine
            .load_bytes(&bytes, &origin)
            .map(|(plugin, _)| plugin)
            .map_err(|source| RunError::Plugin {
                pipeline: prepared.spec.name.clone(),
                stage: pin.stage.clone(),
                epoch: None,
                source: Box::new(source),
            })?
    };
    let config = if current.pin.config_hash == pin.config_hash {
        current.config.clone()
    } else {
        let bytes = checkpoint
            .kept("json", &pin.config_hash)?
            .ok_or_else(|| unavailable("config"))?;
        String::from_utf8(bytes).map_err(|_| RunError::CorruptCheckpoint {
            path: checkpoint.dir().join("versions"),
            reason: format!("the kept config {} is not UTF-8", pin.config_hash),
        })?
    };
    Ok(StageVersion::new(&pin.stage, plugin, config))
}
