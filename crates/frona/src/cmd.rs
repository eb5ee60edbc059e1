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
mod mcp;
mod policy;
mod run;
mod secret;
mod tool;

use frona_sandbox::EnvSnapshot;

use crate::cli::{Cli, Command, ConfigCommand, EnvCommand};
use crate::failure::Failure;

/// Runs the chosen subcommand and returns the process exit status. Commands that act as
/// `frona run` would (`run`, `env check`, `doctor`) resolve their settings here, once: the
/// config files and `FRONA_*` variables under the flags they were given.
pub fn dispatch(cli: Cli, env: EnvSnapshot) -> Result<i32, Failure> {
    match cli.command {
        Command::Run(args) => {
            let settings = crate::settings::load(&env)?.resolve(&args.flags())?;
            run::run(args, settings, env)
        }
        Command::Env(EnvCommand::Check(args)) => {
            let settings = crate::settings::load(&env)?.resolve(&args.env.layer)?;
            env::check(&settings.run, args.json, &env)
        }
        Command::Doctor(args) => {
            let settings = crate::settings::load(&env)?.resolve(&args.isolation.layer)?;
            doctor::doctor(&settings.run, args.json, &env)
        }
        Command::Config(ConfigCommand::Show(args)) => config::show(&args, &env),
        Command::Completions { shell } => completions::completions(shell),
        Command::Man => completions::man(),
        Command::Secret(command) => secret::secret(command, &env),
        Command::Policy(command) => policy::policy(command, &env),
        Command::Mcp(command) => mcp::mcp(command, &env),
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
