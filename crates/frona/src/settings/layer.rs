//! [`RunLayer`]: what one layer (defaults, a config file's `run:` section, the `FRONA_*`
//! variables, the flags) says about the run settings: each `None` unless that layer sets it.
//! Layers are combined key by key by the table (`defs.rs`, which also makes the defaults): a
//! higher layer's value replaces a lower one's, or adds to it for an accumulating list.

use std::path::PathBuf;

use serde::Deserialize;

use super::value::{HostPatternText, Timeout, VarName};
use crate::settings::value::{EnvModeArg, IsolationArg, NetArg};

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
    pub allow_socket: Option<Vec<PathBuf>>,
    #[serde(default)]
    pub reveal: Option<Vec<PathBuf>>,
    #[serde(default)]
    pub fs_write: Option<Vec<PathBuf>>,
    #[serde(default)]
    pub protect: Option<Vec<PathBuf>>,
    #[serde(default)]
    pub writable: Option<Vec<PathBuf>>,
    #[serde(default)]
    pub aws_credential: Option<String>,
}
