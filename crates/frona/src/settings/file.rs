//! The schema of one config file (system, user or project layer; see [`crate::settings`] for
//! how the layers combine): backend settings that are not secrets plus paths of files that hold
//! secrets (`backends:`), and defaults for `frona run` flags (`run:`). Unknown keys are errors.
//!
//! Paths in a file may start with `~/` (the home directory); a relative path is taken from the
//! file's base: the project directory (the one holding `.frona/`) for a project file, the
//! file's own directory otherwise.
//!
//! ```yaml
//! run:
//!   isolation: required        # required | best-effort | off
//!   net: proxy                 # host (default) | proxy | none
//!   allow_host: [api.github.com, "*.githubusercontent.com"]   # with net: proxy
//!   env_mode: default          # default | allowlist
//!   stop_timeout: 10s
//!   cache_ttl: 60s             # how long the broker keeps a fetched value
//!   quiet: false
//!   agent: default
//!   policy: ~/.config/frona/policies
//!   keep: [EDITOR_TOKEN]
//!   strip: ["ACME_*"]
//!   hide: [~/.config/acme]
//!   unhide: [~/.ssh/known_hosts]
//!   fs_write: [~/src, /tmp]
//!   protect: [Makefile, ~/.cache/pre-commit]
//!   writable: [.vscode]
//!   aws_credential: aws-deploy  # with net: proxy, the aws-sts credential the agent's AWS SDKs get
//! backends:
//!   timeout: 5s                # per backend call, retries included
//!   vault: { addr: https://vault.internal:8200, token_file: /run/credentials/frona.service/vault-token }
//!   aws: { region: eu-west-1 }
//!   onepassword: { host: http://op-connect:8080, token_file: ~/.config/frona/op-token }
//!   infisical: { host: https://app.infisical.com, client_id: …, client_secret_file: …, project_id: …, environment: prod }
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::layer::RunLayer;
use crate::backends::BackendsSection;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Defaults for `frona run` (and for `frona env check` and `frona doctor`, which show what
    /// it would do), defined in [`super::defs`]. A flag given on the command line always wins.
    #[serde(default)]
    pub run: RunLayer,
    /// Each backend's section (`crate::backends`).
    #[serde(default)]
    pub backends: BackendsSection,
}

impl ConfigFile {
    /// Parses one file's text; an empty file is an empty configuration. The error has the
    /// line and column.
    pub fn parse(text: &str) -> Result<Self, frona_policy::yaml::YamlError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        frona_policy::yaml::from_str(text)
    }

    /// Makes every path absolute: `~/x` from `home`, a relative path from `base`.
    pub fn resolve_paths(&mut self, base: &Path, home: &Path) {
        let fix = |p: &Path| resolve(p, base, home);
        self.run.resolve_paths(&fix);
        self.backends.resolve_paths(&fix);
    }
}

fn resolve(path: &Path, base: &Path, home: &Path) -> PathBuf {
    match path.strip_prefix("~") {
        Ok(rest) => home.join(rest),
        Err(_) => base.join(path),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::settings::value::Timeout;
    use crate::settings::value::{EnvModeArg, IsolationArg, NetArg};

    #[test]
    fn parses_and_rejects_typos() {
        let ok = ConfigFile::parse(
            "backends:\n  vault:\n    addr: http://v:8200\n  aws:\n    region: eu-west-1\n",
        )
        .unwrap();
        assert_eq!(ok.backends.vault.addr.as_deref(), Some("http://v:8200"));
        assert!(ConfigFile::parse("backends:\n  vault:\n    adrr: x\n").is_err());
        assert!(ConfigFile::parse("run:\n  isolaton: off\n").is_err());
        assert!(ConfigFile::parse("runn: {}\n").is_err());
    }

    /// YAML 1.1 would read `off` as a boolean; frona's YAML is 1.2.
    #[test]
    fn run_section_values() {
        let file = ConfigFile::parse(
            "run:\n  isolation: off\n  net: none\n  env_mode: allowlist\n  stop_timeout: 500ms\n  quiet: true\n",
        )
        .unwrap();
        assert!(matches!(file.run.isolation, Some(IsolationArg::Off)));
        assert!(matches!(file.run.net, Some(NetArg::None)));
        assert!(matches!(file.run.env_mode, Some(EnvModeArg::Allowlist)));
        assert_eq!(
            file.run.stop_timeout,
            Some(Timeout(Duration::from_millis(500)))
        );
        let file = ConfigFile::parse("run: {isolation: best-effort, stop_timeout: 3}").unwrap();
        assert!(matches!(file.run.isolation, Some(IsolationArg::BestEffort)));
        assert_eq!(file.run.stop_timeout, Some(Timeout(Duration::from_secs(3))));
        assert!(ConfigFile::parse("run: {isolation: maybe}").is_err());
        // Days are durations since the one syntax (`frona_policy::duration`); months are not.
        let file = ConfigFile::parse("run: {stop_timeout: 5d}").unwrap();
        assert_eq!(
            file.run.stop_timeout,
            Some(Timeout(Duration::from_secs(5 * 86_400)))
        );
        assert!(ConfigFile::parse("run: {stop_timeout: 1mo}").is_err());
        assert!(ConfigFile::parse("run: {stop_timeout: -1s}").is_err());
        assert_eq!(String::from(Timeout(Duration::from_millis(1500))), "1500ms");
        assert_eq!(String::from(Timeout(Duration::from_secs(10))), "10s");
    }

    /// The shipped, commented example is a valid file that sets every section.
    #[test]
    fn example_parses() {
        let file = ConfigFile::parse(include_str!("../../../../examples/config.yaml")).unwrap();
        assert!(matches!(file.run.isolation, Some(IsolationArg::Required)));
        assert_eq!(
            file.backends.vault.addr.as_deref(),
            Some("https://vault.internal:8200")
        );
        assert!(file.backends.infisical.client_secret_file.is_some());
    }

    #[test]
    fn paths_are_made_absolute() {
        let mut file = ConfigFile::parse(
            "run: {policy: pol, hide: [~/x, /abs, rel/y]}\nbackends: {vault: {token_file: ~/t}}",
        )
        .unwrap();
        file.resolve_paths(Path::new("/proj"), Path::new("/home/u"));
        assert_eq!(file.run.policy, Some(PathBuf::from("/proj/pol")));
        assert_eq!(
            file.run.hide,
            Some(vec![
                PathBuf::from("/home/u/x"),
                PathBuf::from("/abs"),
                PathBuf::from("/proj/rel/y")
            ])
        );
        assert_eq!(
            file.backends.vault.token_file,
            Some(PathBuf::from("/home/u/t"))
        );
    }
}
