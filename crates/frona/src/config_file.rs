//! The schema of one config file (system, user or project layer; see [`crate::config`] for how
//! the layers combine): backend settings that are not secrets plus paths of files that hold
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
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cli::{EnvModeArg, IsolationArg, NetArg};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub run: RunSection,
    #[serde(default)]
    pub backends: BackendsSection,
}

/// Defaults for `frona run` (and for `frona env check` and `frona doctor`, which show what it
/// would do). A flag given on the command line always wins.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isolation: Option<IsolationArg>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net: Option<NetArg>,
    /// Hosts the agent may reach under `net: proxy` (`--allow-host`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_host: Option<Vec<HostPatternText>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_mode: Option<EnvModeArg>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<Timeout>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quiet: Option<bool>,
    /// How long the broker keeps a fetched static value before asking the backend again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_ttl: Option<Timeout>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strip: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hide: Option<Vec<PathBuf>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unhide: Option<Vec<PathBuf>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs_write: Option<Vec<PathBuf>>,
    /// More paths the agent may not create or change (accumulates; a project file may add).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protect: Option<Vec<PathBuf>>,
    /// Paths lifted from the protected list (not in a project file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writable: Option<Vec<PathBuf>>,
    /// The `aws-sts` credential served to the agent's AWS SDKs under `net: proxy`
    /// (`--aws-credential`; not in a project file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_credential: Option<String>,
}

/// An `--allow-host` pattern, checked when the file is read.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct HostPatternText(pub String);

impl TryFrom<String> for HostPatternText {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        crate::cli::parse_host_pattern(&text).map(Self)
    }
}

impl From<HostPatternText> for String {
    fn from(pattern: HostPatternText) -> String {
        pattern.0
    }
}

/// A duration in frona's one syntax (`10s`, `500ms`, `1h30m`, `1d`; see
/// `frona_policy::duration`) or a number of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "DurationText", into = "String")]
pub struct Timeout(pub Duration);

#[derive(Deserialize)]
#[serde(untagged)]
enum DurationText {
    Seconds(u64),
    Text(String),
}

impl TryFrom<DurationText> for Timeout {
    type Error = String;
    fn try_from(text: DurationText) -> Result<Self, String> {
        match text {
            DurationText::Seconds(s) => Ok(Self(Duration::from_secs(s))),
            DurationText::Text(t) => frona_policy::duration::parse(&t)
                .map(Self)
                .map_err(|e| e.to_string()),
        }
    }
}

impl From<Timeout> for String {
    fn from(t: Timeout) -> String {
        let ms = t.0.as_millis();
        if ms.is_multiple_of(1000) {
            format!("{}s", ms / 1000)
        } else {
            format!("{ms}ms")
        }
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // sections of backends not compiled in are parsed, not read
pub struct BackendsSection {
    /// How long a backend may take to answer, retries included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Timeout>,
    #[serde(default)]
    pub vault: VaultSection,
    #[serde(default)]
    pub aws: AwsSection,
    #[serde(default)]
    pub gcp: GcpSection,
    #[serde(default)]
    pub azure: AzureSection,
    #[serde(default)]
    pub onepassword: OnePasswordSection,
    #[serde(default)]
    pub infisical: InfisicalSection,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_id_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read by the backend when it is compiled in
pub struct AwsSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read by the backend when it is compiled in
pub struct GcpSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read by the backend when it is compiled in
pub struct AzureSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vault_url: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OnePasswordSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InfisicalSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

impl ConfigFile {
    /// Parses one file's text; an empty file is an empty configuration. The error is serde's,
    /// with line and column.
    pub fn parse(text: &str) -> Result<Self, serde_norway::Error> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_norway::from_str(text)
    }

    /// Makes every path absolute: `~/x` from `home`, a relative path from `base`.
    pub fn resolve_paths(&mut self, base: &Path, home: &Path) {
        let fix = |p: &mut PathBuf| *p = resolve(p, base, home);
        let fix_all = |list: &mut Option<Vec<PathBuf>>| {
            list.iter_mut()
                .flatten()
                .for_each(|p| *p = resolve(p, base, home));
        };
        let run = &mut self.run;
        run.policy.as_mut().map(fix);
        fix_all(&mut run.hide);
        fix_all(&mut run.unhide);
        fix_all(&mut run.fs_write);
        fix_all(&mut run.protect);
        fix_all(&mut run.writable);
        let b = &mut self.backends;
        for path in [
            &mut b.vault.token_file,
            &mut b.vault.secret_id_file,
            &mut b.onepassword.token_file,
            &mut b.infisical.client_secret_file,
        ] {
            path.as_mut().map(fix);
        }
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
    use super::*;

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
        let file = ConfigFile::parse(include_str!("../../../examples/config.yaml")).unwrap();
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
