//! One module per subcommand.

mod env;
mod init;
mod run;

use frona_sandbox::EnvSnapshot;

use crate::cli::{Cli, Command, EnvArgs, EnvCommand, EnvModeArg};
use crate::failure::Failure;

/// Runs the chosen subcommand and returns the process exit status.
pub fn dispatch(cli: Cli, env: EnvSnapshot) -> Result<i32, Failure> {
    match cli.command {
        Command::Run(args) => run::run(args, env),
        Command::Env(EnvCommand::Check(args)) => env::check(&args, &env),
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
