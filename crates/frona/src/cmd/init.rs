//! `frona __init`: the supervisor process between frona and the agent (see
//! `frona_sandbox::supervise`). Its environment is already the agent's.

use frona_sandbox::supervise::{InitConfig, SuperviseError, run_init, take_started_fd};

use crate::cli::InitArgs;
use crate::failure::Failure;

pub fn init(args: InitArgs) -> Result<i32, Failure> {
    // First: the pipe reporting the agent's start is marked close-on-exec before anything else.
    let started = args
        .started_fd
        // SAFETY: `--started-fd` names the pipe `frona run` opened for this helper alone;
        // nothing else in this process holds or closes it.
        .map(|fd| {
            #[allow(unsafe_code)]
            unsafe {
                take_started_fd(fd)
            }
        })
        .transpose()
        .map_err(|e| Failure::from_error(&e))?;
    let plan = serde_json::from_str(&args.plan).map_err(|e| {
        Failure::from_error(&e).with_hint("`frona __init` is started by `frona run`, not by hand")
    })?;
    let config = InitConfig {
        parent: args.parent,
        stop_timeout: args.stop_timeout,
        plan,
        command: args.command,
    };
    run_init(&config, started).map_err(|err| {
        let failure = Failure::from_error(&err).with_code(err.exit_code());
        match &err {
            SuperviseError::NotFound { .. } => failure.with_hint(
                "check the spelling, or give the full path; the agent runs with the scrubbed PATH (see `frona env check`)",
            ),
            SuperviseError::CannotExecute { .. } => {
                failure.with_hint("check that the file is an executable program and has its execute bit set")
            }
            SuperviseError::Isolation(e) => failure.with_hint(e.hint()),
            _ => failure,
        }
    })
}
