//! The run settings resolved: every layer and the flags merged, defaults filled in, as the
//! commands use them (ripgrep's `HiArgs`). Made once per command by
//! [`Loaded::resolve`](super::Loaded::resolve).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use super::layer::RunLayer;
use crate::failure::Failure;
use crate::settings::value::{EnvModeArg, IsolationArg, NetArg};

/// Everything `frona run` (and `env check`, `doctor`, `config show`) decides with.
#[derive(Clone, Debug)]
pub struct Run {
    pub env: EnvSettings,
    pub isolation: IsolationSettings,
    pub quiet: bool,
    /// The agent's id, which policies and credential scopes match on.
    pub agent: String,
    /// The policy directory (`run.policy`, default `$XDG_CONFIG_HOME/frona/policies`).
    pub policy: PathBuf,
    /// Hosts the agent may reach under `--net proxy`.
    pub allow_host: Vec<String>,
    pub stop_timeout: Duration,
    /// How long the broker keeps a fetched static value.
    pub cache_ttl: Duration,
    /// The `aws-sts` credential served to the agent's AWS SDKs under `--net proxy`.
    pub aws_credential: Option<String>,
}

/// How the agent's environment is built.
#[derive(Clone, Debug)]
pub struct EnvSettings {
    pub env_mode: EnvModeArg,
    pub keep: Vec<OsString>,
    pub strip: Vec<String>,
}

/// How the agent is isolated.
#[derive(Clone, Debug)]
pub struct IsolationSettings {
    pub isolation: IsolationArg,
    pub net: NetArg,
    pub hide: Vec<PathBuf>,
    pub unhide: Vec<PathBuf>,
    pub allow_socket: Vec<PathBuf>,
    pub reveal: Vec<PathBuf>,
    pub fs_write: Vec<PathBuf>,
    pub protect: Vec<PathBuf>,
    pub writable: Vec<PathBuf>,
}

/// A setting the defaults always give.
fn given<T>(value: Option<T>, key: &str) -> Result<T, Failure> {
    value.ok_or_else(|| {
        Failure::new(
            125,
            format!("`{key}` has no value (a bug: it has a default)"),
        )
    })
}

impl Run {
    /// From the merged layers (the defaults among them).
    pub fn from_layer(layer: RunLayer) -> Result<Self, Failure> {
        Ok(Self {
            env: EnvSettings {
                env_mode: given(layer.env_mode, "run.env_mode")?,
                keep: layer
                    .keep
                    .unwrap_or_default()
                    .into_iter()
                    .map(|name| name.0)
                    .collect(),
                strip: layer.strip.unwrap_or_default(),
            },
            isolation: IsolationSettings {
                isolation: given(layer.isolation, "run.isolation")?,
                net: given(layer.net, "run.net")?,
                hide: layer.hide.unwrap_or_default(),
                unhide: layer.unhide.unwrap_or_default(),
                allow_socket: layer.allow_socket.unwrap_or_default(),
                reveal: layer.reveal.unwrap_or_default(),
                fs_write: layer.fs_write.unwrap_or_default(),
                protect: layer.protect.unwrap_or_default(),
                writable: layer.writable.unwrap_or_default(),
            },
            quiet: given(layer.quiet, "run.quiet")?,
            agent: given(layer.agent, "run.agent")?,
            policy: given(layer.policy, "run.policy")?,
            allow_host: layer
                .allow_host
                .unwrap_or_default()
                .into_iter()
                .map(|pattern| pattern.0)
                .collect(),
            stop_timeout: given(layer.stop_timeout, "run.stop_timeout")?.0,
            cache_ttl: given(layer.cache_ttl, "run.cache_ttl")?.0,
            aws_credential: layer.aws_credential,
        })
    }
}

impl EnvSettings {
    /// The scrubbing rules these settings describe, validated; the variables naming
    /// `allow_socket` (`--allow-socket`) pass.
    pub fn scrub_options(
        &self,
        allow_socket: &[PathBuf],
    ) -> Result<frona_sandbox::ScrubOptions, Failure> {
        let options = frona_sandbox::ScrubOptions {
            mode: match self.env_mode {
                EnvModeArg::Default => frona_sandbox::EnvMode::Default,
                EnvModeArg::Allowlist => frona_sandbox::EnvMode::Allowlist,
            },
            keep: self.keep.clone(),
            strip: self.strip.clone(),
            allow_socket: allow_socket.to_vec(),
        };
        options.validate().map_err(|e| {
            Failure::from_error(&e)
                .with_hint("a pattern is a variable name with `*` or `?`, e.g. --strip 'ACME_*'")
        })?;
        Ok(options)
    }
}

impl IsolationSettings {
    /// The isolation options these settings describe.
    fn options(&self) -> frona_sandbox::isolation::IsolationOptions {
        use frona_sandbox::isolation::{IsolationMode, IsolationOptions, NetMode};
        IsolationOptions {
            mode: match self.isolation {
                IsolationArg::Required => IsolationMode::Required,
                IsolationArg::BestEffort => IsolationMode::BestEffort,
                IsolationArg::Off => IsolationMode::Off,
            },
            net: match self.net {
                NetArg::Host => NetMode::Host,
                NetArg::None => NetMode::None,
                NetArg::Proxy => NetMode::Proxy,
            },
            hide: self.hide.clone(),
            unhide: self.unhide.clone(),
            allow_socket: self.allow_socket.clone(),
            // As the files were found (`..` resolved), so that `--reveal ../.env` names one.
            reveal: self
                .reveal
                .iter()
                .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
                .collect(),
            fs_write: self.fs_write.clone(),
            protect: self.protect.clone(),
            writable: self.writable.clone(),
        }
    }

    /// The plan for this machine, or the failure `--isolation required` calls for.
    pub fn plan(
        &self,
        facts: &frona_sandbox::isolation::Facts,
    ) -> Result<frona_sandbox::isolation::Plan, Failure> {
        frona_sandbox::isolation::plan(&self.options(), facts).map_err(|e| {
            Failure::from_error(&e)
                .with_hint(format!("{}; or run with --isolation best-effort", e.hint))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use frona_sandbox::isolation::probe::apparmor_hint;
    use frona_sandbox::isolation::{Facts, KernelFeatures};

    /// `frona run --isolation required` refuses with the same hint `frona doctor` prints: the
    /// AppArmor profile for this binary, or the sysctl.
    #[test]
    fn required_isolation_fails_with_the_apparmor_hint() {
        use clap::Parser as _;
        let cli = Cli::try_parse_from(["frona", "run", "--", "agent"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        let env = frona_sandbox::EnvSnapshot::from_pairs(Vec::new());
        let settings = Run::from_layer(args.flags().combine(RunLayer::defaults(&env))).unwrap();
        let hint = apparmor_hint(std::path::Path::new("/opt/frona/bin/frona"));
        let mut kernel = KernelFeatures::all_available();
        kernel.user_namespaces = Err((
            "AppArmor restricts unprivileged user namespaces".into(),
            hint.clone(),
        ));
        let facts = Facts {
            uid: 1000,
            gid: 1000,
            home: Some("/home/dev".into()),
            cwd: "/home/dev/src".into(),
            tmpdir: None,
            xdg_cache_home: None,
            xdg_config_home: None,
            xdg_data_home: None,
            xdg_state_home: None,
            zdotdir: None,
            repo: None,
            kernel,
            runtime_dir: None,
            ssh_auth_sock: None,
            bound_sockets: Vec::new(),
            env_files: Vec::new(),
        };
        let failure = settings.isolation.plan(&facts).unwrap_err();
        assert!(failure.message.contains("AppArmor"), "{}", failure.message);
        let given = failure.hint.unwrap();
        assert!(given.starts_with(&hint), "{given}");
        assert!(given.contains("profile frona /opt/frona/bin/frona flags=(unconfined)"));
    }
}
