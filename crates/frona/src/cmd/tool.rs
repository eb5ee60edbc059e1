//! `frona tool` and `frona issue`: the agent's side of the broker. Sends one call, plays the
//! answer (the tool's output as it streams back, credentials already redacted; or delivered
//! values as `ENV=value` lines), and exits with the tool's status.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;

use base64::Engine as _;
use frona_broker::protocol::{Call, Event, VERSION};
use frona_policy::Effect;
use frona_sandbox::EnvSnapshot;

use crate::cli::ToolArgs;
use crate::env_vars::FRONA_BROKER_SOCKET;
use crate::failure::Failure;

/// Exit status when the broker refuses the call (sysexits' EX_NOPERM).
pub const EXIT_DENIED: i32 = 77;

pub fn tool(args: ToolArgs, env: &EnvSnapshot) -> Result<i32, Failure> {
    let (tool, tool_args) = args
        .command
        .split_first()
        .ok_or_else(|| Failure::new(125, "no command"))?;
    let call = Call::Tool {
        v: VERSION,
        tool: tool.clone(),
        args: tool_args.to_vec(),
        credentials: args.credentials,
        reason: args.reason,
        cwd: cwd(),
    };
    exchange(&call, env)
}

pub fn issue(
    credentials: Vec<String>,
    tool: String,
    reason: Option<String>,
    env: &EnvSnapshot,
) -> Result<i32, Failure> {
    exchange(
        &Call::Issue {
            v: VERSION,
            tool,
            credentials,
            reason,
            cwd: cwd(),
        },
        env,
    )
}

pub(super) fn cwd() -> String {
    std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|_| "/".into())
}

/// Sends `call` and plays the broker's answer.
fn exchange(call: &Call, env: &EnvSnapshot) -> Result<i32, Failure> {
    let stream = send(call, env)?;
    let decode = |data: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap_or_default()
    };
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        let Ok(event) = serde_json::from_str::<Event>(&line) else {
            continue;
        };
        match event {
            Event::Decision {
                effect: Effect::Permit,
                ..
            } => {}
            Event::Decision { rule, reason, .. } => {
                let by = rule.map(|r| format!(" by rule `{r}`")).unwrap_or_default();
                return Err(Failure::new(EXIT_DENIED, format!("denied{by}: {reason}"))
                    .with_hint("`frona policy explain` shows which rule decides a call"));
            }
            Event::Pending {
                approval,
                timeout_secs,
            } => eprintln!(
                "frona: waiting up to {timeout_secs}s for a human: `frona approve {approval} --for once` (or 2h, 3d, permanent) or `frona deny {approval}`"
            ),
            Event::Stdout { data } => {
                let _ = std::io::stdout().write_all(&decode(&data));
                let _ = std::io::stdout().flush();
            }
            Event::Stderr { data } => {
                let _ = std::io::stderr().write_all(&decode(&data));
            }
            Event::Credential { env, value, .. } => println!("{env}={value}"),
            // The end of the call (the connection could carry another).
            Event::Exit { code } => return Ok(code),
            Event::Error { message } => return Err(Failure::new(125, message)),
            // Only an MCP connection is answered so.
            Event::Mcp { .. } => break,
        }
    }
    Err(Failure::new(
        125,
        "the broker closed the connection before the call ended",
    ))
}

/// Connects to the broker's socket and sends `call`.
pub(super) fn send(call: &Call, env: &EnvSnapshot) -> Result<UnixStream, Failure> {
    let socket = env.get(FRONA_BROKER_SOCKET).map(|v| String::from_utf8_lossy(v).into_owned()).ok_or_else(|| {
        Failure::new(125, format!("`{FRONA_BROKER_SOCKET}` is not set")).with_hint(
            "`frona tool`, `frona issue` and `frona mcp connect` work inside `frona run`, which starts the broker when a policy directory exists ($XDG_CONFIG_HOME/frona/policies or --policy)",
        )
    })?;
    let mut stream = UnixStream::connect(&socket).map_err(|e| {
        Failure::from_error(&e).with_hint(format!(
            "is the frona that started this agent still running? ({socket})"
        ))
    })?;
    let mut line = serde_json::to_vec(call).map_err(|e| Failure::from_error(&e))?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .map_err(|e| Failure::from_error(&e))?;
    Ok(stream)
}
