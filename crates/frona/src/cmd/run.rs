//! `frona run`: scrub the environment, then start and supervise the agent.

use std::process::Command;

use frona_sandbox::EnvSnapshot;
use frona_sandbox::environ::wipe_process_environ;
use frona_sandbox::scrub::scrub;
use frona_sandbox::supervise::{SuperviseError, supervise_init};

use crate::cli::RunArgs;
use crate::failure::Failure;

pub fn run(args: RunArgs, env: EnvSnapshot) -> Result<i32, Failure> {
    let options = args.env.scrub_options()?;
    let (report, agent_env) = scrub(&env, &options);
    // Everything stripped leaves frona's exposed environment block now; the snapshot (zeroized
    // on drop) is the only copy left.
    wipe_process_environ(report.stripped().map(|(name, _)| name));
    drop(env);
    if !args.quiet
        && let Some(line) = report.summary_line()
    {
        eprintln!("{line}");
    }

    let mut init = Command::new(self_exe());
    init.arg("__init")
        .arg("--parent")
        .arg(std::process::id().to_string())
        .arg("--stop-timeout")
        .arg(format!("{}ms", args.stop_timeout.as_millis()))
        .arg("--")
        .args(&args.command)
        .env_clear()
        .envs(agent_env);
    set_arg0(&mut init);
    supervise_init(init).map_err(|e| failure(&e))
}

fn failure(err: &SuperviseError) -> Failure {
    let failure = Failure::from_error(err).with_code(err.exit_code());
    match err {
        SuperviseError::Spawn { .. } => failure.with_hint("frona re-executes itself to supervise the agent; check that its binary is still in place"),
        _ => failure,
    }
}

/// The running binary, by a path that survives the file being replaced during an upgrade.
fn self_exe() -> std::path::PathBuf {
    if cfg!(target_os = "linux") {
        "/proc/self/exe".into()
    } else {
        std::env::current_exe().unwrap_or_else(|_| "frona".into())
    }
}

fn set_arg0(cmd: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    cmd.arg0("frona");
}
