//! [`RunLayer`]: what one layer (defaults, a config file's `run:` section, the `FRONA_*`
//! variables, the flags) says about the run settings: each `None` unless that layer sets it.
//! Layers are combined key by key by the table ([`super::defs::RUN`]): a higher layer's value
//! replaces a lower one's, or adds to it for an accumulating list.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::defs::RUN;
use super::value::{HostPatternText, Timeout, VarName};
use crate::cli::{EnvModeArg, IsolationArg, NetArg};

/// The run settings one layer gives; also the `run:` section of a config file (unknown keys
/// are errors). Each field is defined in [`RUN`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunLayer {
    #[serde(default)]
    pub isolation: Option<IsolationArg>,
    #[serde(default)]
    pub net: Option<NetArg>,
    #[serde(default)]
    pub allow_host: Option<Vec<HostPatternText>>,
    #[serde(default)]
    pub env_mode: Option<EnvModeArg>,
    #[serde(default)]
    pub stop_timeout: Option<Timeout>,
    #[serde(default)]
    pub quiet: Option<bool>,
    #[serde(default)]
    pub cache_ttl: Option<Timeout>,
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub policy: Option<PathBuf>,
    #[serde(default)]
    pub keep: Option<Vec<VarName>>,
    #[serde(default)]
    pub strip: Option<Vec<String>>,
    #[serde(default)]
    pub hide: Option<Vec<PathBuf>>,
    #[serde(default)]
    pub unhide: Option<Vec<PathBuf>>,
    #[serde(default)]
    pub fs_write: Option<Vec<PathBuf>>,
    #[serde(default)]
    pub protect: Option<Vec<PathBuf>>,
    #[serde(default)]
    pub writable: Option<Vec<PathBuf>>,
    #[serde(default)]
    pub aws_credential: Option<String>,
}

impl RunLayer {
    /// The built-in defaults: what `frona run` does with no flag and no config.
    pub fn defaults(env: &frona_sandbox::EnvSnapshot) -> RunLayer {
        let mut layer = RunLayer::default();
        for def in RUN {
            def.set_default(env, &mut layer);
        }
        layer
    }

    /// Lays a higher layer over this one, key by key.
    pub fn overlay(&mut self, higher: &RunLayer) {
        for def in RUN {
            def.overlay(self, higher);
        }
    }

    /// This layer over `lower` (uv's `Combine`: `self` wins, accumulating lists add up).
    pub fn combine(self, mut lower: RunLayer) -> RunLayer {
        lower.overlay(&self);
        lower
    }

    /// Makes every path absolute with `fix`.
    pub fn resolve_paths(&mut self, fix: &dyn Fn(&Path) -> PathBuf) {
        for def in RUN {
            def.resolve_paths(self, fix);
        }
    }
}
