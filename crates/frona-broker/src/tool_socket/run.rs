//! Running one permitted tool: under the tools' isolation (frona's init helper), with its
//! credentials in its environment only, both outputs streamed back through the redactor.

use std::ffi::OsString;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use frona_backends::Secret;
use frona_sandbox::isolation::Plan;
use frona_sandbox::supervise::InitConfig;

use super::Replies;
use crate::protocol::Event;
use crate::redact::Redactor;

/// How long a tool gets to exit after SIGTERM (when frona stops) before it is killed.
const TOOL_STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs each tool under its own isolation: `exe` (frona) `__init … -- TOOL ARGS…`, the same
/// helper, with the same argv, that isolates the agent ([`InitConfig::to_args`]).
#[derive(Clone, Debug)]
pub struct ToolLauncher {
    exe: PathBuf,
    /// The helper's argv up to and including `--`, made once.
    argv: Vec<OsString>,
}

impl ToolLauncher {
    /// Tools isolated by `plan`, their init helper a child of `parent` (frona).
    pub fn new(exe: PathBuf, parent: i32, plan: Plan) -> Self {
        let argv = InitConfig {
            parent,
            stop_timeout: TOOL_STOP_TIMEOUT,
            plan,
            command: Vec::new(),
        }
        .to_args();
        Self { exe, argv }
    }

    pub(crate) fn command(&self, program: &Path, args: &[String]) -> Command {
        use std::os::unix::process::CommandExt as _;
        let mut command = Command::new(&self.exe);
        if let Some((arg0, rest)) = self.argv.split_first() {
            command.arg0(arg0).args(rest);
        }
        command.arg(program).args(args);
        command
    }
}

/// Runs the tool, streaming both outputs back redacted; returns its shell status.
pub(super) fn run_tool(
    launcher: Option<&ToolLauncher>,
    program: &Path,
    args: &[String],
    cwd: &str,
    base_env: &[(OsString, OsString)],
    credentials: &[(String, Secret)],
    replies: &Replies,
) -> i32 {
    use std::os::unix::ffi::OsStrExt as _;
    let mut command = match launcher {
        Some(launcher) => launcher.command(program, args),
        None => {
            let mut command = Command::new(program);
            command.args(args);
            command
        }
    };
    command
        .current_dir(cwd)
        .env_clear()
        .envs(base_env.iter().map(|(k, v)| (k, v)));
    for (name, value) in credentials {
        command.env(name, std::ffi::OsStr::from_bytes(value.expose()));
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            replies.send(&Event::Error {
                message: format!("cannot start `{}`: {e}", program.display()),
            });
            return 127;
        }
    };
    let secrets: Vec<&[u8]> = credentials.iter().map(|(_, v)| v.expose()).collect();
    std::thread::scope(|scope| {
        let pipes: [(Option<Box<dyn std::io::Read + Send>>, bool); 2] = [
            (
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
                true,
            ),
            (
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
                false,
            ),
        ];
        for (pipe, is_stdout) in pipes {
            let Some(mut pipe) = pipe else { continue };
            let secrets = secrets.clone();
            scope.spawn(move || {
                let mut redactor = Redactor::new(secrets);
                let mut buffer = [0u8; 16 * 1024];
                let emit = |bytes: Vec<u8>| {
                    if bytes.is_empty() {
                        return;
                    }
                    let data = base64::engine::general_purpose::STANDARD.encode(bytes);
                    replies.send(&if is_stdout {
                        Event::Stdout { data }
                    } else {
                        Event::Stderr { data }
                    });
                };
                loop {
                    match pipe.read(&mut buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => emit(redactor.push(&buffer[..n])),
                    }
                }
                emit(redactor.finish());
            });
        }
    });
    match child.wait() {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt as _;
            status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
        }
        Err(_) => 125,
    }
}
