//! One module per subcommand.

mod audit;
mod call;
mod completions;
mod config;
mod control;
mod credential;
mod doctor;
mod env;
mod init;
mod policy;
mod run;
mod secret;
mod tool;

pub use policy::read_dir as read_policy_dir;
pub use run::self_exe;

use clap::ArgMatches;
use frona_sandbox::EnvSnapshot;

use crate::cli::{
    Cli, Command, ConfigCommand, EnvArgs, EnvCommand, EnvModeArg, IsolationArg, IsolationArgs,
    NetArg,
};
use crate::config::Given;
use crate::failure::Failure;

/// The matches of the subcommand at `path` (`["env", "check"]`), to tell given flags from
/// defaults.
fn sub<'a>(matches: &'a ArgMatches, path: &[&str]) -> Given<'a> {
    Given(
        path.iter()
            .try_fold(matches, |m, name| m.subcommand_matches(name)),
    )
}

/// Runs the chosen subcommand and returns the process exit status. Commands that act as
/// `frona run` would (`run`, `env check`, `doctor`) take the flags they were not given from
/// the configuration.
pub fn dispatch(cli: Cli, matches: &ArgMatches, env: EnvSnapshot) -> Result<i32, Failure> {
    match cli.command {
        Command::Run(mut args) => {
            crate::config::load(&env)?.apply_run(sub(matches, &["run"]), &mut args);
            run::run(args, env)
        }
        Command::Env(EnvCommand::Check(mut args)) => {
            crate::config::load(&env)?.apply_env(sub(matches, &["env", "check"]), &mut args.env);
            env::check(&args, &env)
        }
        Command::Doctor(mut args) => {
            crate::config::load(&env)?
                .apply_isolation(sub(matches, &["doctor"]), &mut args.isolation);
            doctor::doctor(&args, &env)
        }
        Command::Config(ConfigCommand::Show(args)) => {
            config::show(&args, sub(matches, &["config", "show"]), &env)
        }
        Command::Completions { shell } => completions::completions(shell),
        Command::Man => completions::man(),
        Command::Secret(command) => secret::secret(command, &env),
        Command::Policy(command) => policy::policy(command, &env),
        Command::Tool(args) => tool::tool(args, &env),
        Command::Issue {
            credentials,
            tool,
            reason,
        } => tool::issue(credentials, tool, reason, &env),
        Command::Call(args) => call::call(args, &env),
        Command::Approve { id, lifetime } => control::approve(&id, &lifetime, &env),
        Command::Deny { id, reason } => control::deny(&id, reason, &env),
        Command::Approvals { json } => control::approvals(json, &env),
        Command::Grant(command) => control::grant(command, &env),
        Command::Audit(args) => audit::audit(args, &env),
        Command::Credential(command) => credential::credential(command, &env),
        Command::Init(args) => init::init(args),
    }
}

impl EnvArgs {
    /// The scrubbing rules these flags describe, validated.
    fn scrub_options(&self) -> Result<frona_sandbox::ScrubOptions, Failure> {
        let options = frona_sandbox::ScrubOptions {
            mode: match self.env_mode {
                EnvModeArg::Default => frona_sandbox::EnvMode::Default,
                EnvModeArg::Allowlist => frona_sandbox::EnvMode::Allowlist,
            },
            keep: self.keep.clone(),
            strip: self.strip.clone(),
        };
        options.validate().map_err(|e| {
            Failure::from_error(&e)
                .with_hint("a pattern is a variable name with `*` or `?`, e.g. --strip 'ACME_*'")
        })?;
        Ok(options)
    }
}

impl IsolationArgs {
    /// The isolation options these flags describe.
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
            fs_write: self.fs_write.clone(),
            protect: self.protect.clone(),
            writable: self.writable.clone(),
        }
    }

    /// The plan for this machine, or the failure `--isolation required` calls for.
    fn plan(
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
        };
        let failure = args.settings.isolation.plan(&facts).unwrap_err();
        assert!(failure.message.contains("AppArmor"), "{}", failure.message);
        let given = failure.hint.unwrap();
        assert!(given.starts_with(&hint), "{given}");
        assert!(given.contains("profile frona /opt/frona/bin/frona flags=(unconfined)"));
    }
}
