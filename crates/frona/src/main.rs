//! `frona`: run AI agents without ambient credentials. The binary is thin: argument parsing,
//! one module per subcommand, and turning library errors into messages and exit codes.

mod aws_credentials;
mod backends;
mod broker;
mod cli;
mod cmd;
mod dirs;
mod dotenv;
mod env_vars;
mod failure;
mod logging;
mod policies;
mod prompt;
mod settings;
mod systemd;

use std::process::ExitCode;

use frona_sandbox::EnvSnapshot;

fn main() -> ExitCode {
    quiet_broken_pipe();
    // Before anything else: frona is about to read credentials from its environment. The init
    // helper holds none and hardens itself once it has written its namespace's id maps.
    let is_init_helper = std::env::args_os().nth(1).is_some_and(|a| a == "__init");
    if !is_init_helper && let Err(err) = frona_sandbox::hardening::harden_self() {
        return failure::Failure::from_error(&err).report();
    }
    let env = EnvSnapshot::capture();
    let cli = match <cli::Cli as clap::Parser>::try_parse() {
        Ok(cli) => cli,
        Err(err) => return failure::clap_exit(&err),
    };
    logging::init(&env);
    let code = match cmd::dispatch(cli, env) {
        Ok(code) => code,
        Err(failure) => return failure.report(),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX))
}

/// `frona credential list | head -1`: a closed stdout ends frona quietly with 141 (128 +
/// SIGPIPE, what a shell reports for `cat`), instead of a panic. Rust ignores SIGPIPE, so
/// writing to a closed pipe is an error, which `println!` turns into a panic; restoring
/// SIGPIPE instead would let any closed socket kill the broker.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}
