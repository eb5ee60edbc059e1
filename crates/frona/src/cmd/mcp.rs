//! `frona mcp`: MCP servers registered on frona's side (`add`, `list`, `remove`), and the
//! agent's end of the gateway (`connect`): a pipe between the agent's MCP client (its stdin and
//! stdout) and the broker's socket. It holds no credential and starts nothing; the broker starts
//! the server (`frona_broker::mcp_gateway`).

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read, Write};

use frona_backends::registry::mcp::{McpCredential, McpServer};
use frona_broker::protocol::{Call, Event, VERSION};
use frona_sandbox::EnvSnapshot;

use crate::cli::{McpCommand, McpConfigFormat, McpPinsCommand};
use crate::failure::Failure;

/// Exit status when the broker could not start the server (sysexits' EX_UNAVAILABLE).
const EXIT_UNAVAILABLE: i32 = 69;

pub fn mcp(command: McpCommand, env: &EnvSnapshot) -> Result<i32, Failure> {
    let registry = super::credential::registry(env);
    let err = |e: &dyn std::error::Error| Failure::from_error(e);
    match command {
        McpCommand::Add {
            name,
            credentials,
            env: vars,
            scope,
            call_timeout,
            command,
        } => {
            let pair = |text: &str, what: &str| {
                text.split_once('=')
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
                    .ok_or_else(|| Failure::new(125, format!("`{text}` is not {what}")))
            };
            let credentials = credentials
                .iter()
                .map(|c| {
                    let (credential, env) = pair(c, "CREDENTIAL=VAR")?;
                    Ok(McpCredential { credential, env })
                })
                .collect::<Result<Vec<_>, Failure>>()?;
            let env: BTreeMap<String, String> = vars
                .iter()
                .map(|v| pair(v, "VAR=VALUE"))
                .collect::<Result<_, _>>()?;
            // `--env` is stored in clear: a credential belongs in the store and `--credential`.
            if let Some((var, what)) = env.iter().find_map(|(var, value)| {
                frona_sandbox::scrub::detect_credential_value(value.as_bytes()).map(|w| (var, w))
            }) {
                return Err(Failure::new(
                    125,
                    format!("--env {var}=…: the value looks like {what}; it would be stored in clear"),
                )
                .with_hint(format!(
                    "store it (`frona secret set NAME`), register it (`frona credential register`), \
                     and pass it with --credential NAME={var}"
                )));
            }
            let server = McpServer {
                name,
                command,
                credentials,
                env,
                scope: super::credential::parse_scope(&scope)?,
                call_timeout_secs: call_timeout.map(|d| d.as_secs().max(1)),
            };
            let replaced = registry.add_mcp(server.clone()).map_err(|e| err(&e))?;
            eprintln!(
                "frona: {} MCP server `{}` (scope {}); inside `frona run`, start it with `frona mcp connect {}`",
                if replaced { "replaced" } else { "registered" },
                server.name,
                server.scope,
                server.name
            );
            Ok(0)
        }
        McpCommand::List { json } => {
            let servers = registry.mcp_servers().map_err(|e| err(&e))?;
            if json {
                let text = serde_json::to_string_pretty(&servers).map_err(|e| err(&e))?;
                println!("{text}");
            } else {
                println!("NAME\tSCOPE\tCREDENTIALS\tCOMMAND");
                for s in servers {
                    let credentials: Vec<String> = s
                        .credentials
                        .iter()
                        .map(|c| format!("{}={}", c.credential, c.env))
                        .collect();
                    let credentials = if credentials.is_empty() {
                        "-".to_owned()
                    } else {
                        credentials.join(",")
                    };
                    println!(
                        "{}\t{}\t{credentials}\t{}",
                        s.name,
                        s.scope,
                        s.command.join(" ")
                    );
                }
            }
            Ok(0)
        }
        McpCommand::Remove { name, scope } => {
            let scope = scope
                .map(|s| super::credential::parse_scope(&s))
                .transpose()?;
            match registry
                .remove_mcp(&name, scope.as_ref())
                .map_err(|e| err(&e))?
            {
                0 => Err(Failure::new(1, format!("no MCP server named `{name}`"))
                    .with_hint("`frona mcp list` shows the names")),
                _ => Ok(0),
            }
        }
        McpCommand::Connect { name } => connect(&name, env),
        McpCommand::Pins(command) => {
            let pins = frona_broker::mcp_gateway::pins::Pins::in_dir(&crate::dirs::state_dir(env));
            match command {
                McpPinsCommand::List { json } => {
                    let all = pins.list();
                    if json {
                        let rows: Vec<serde_json::Value> = all
                            .iter()
                            .map(|(s, t, d)| serde_json::json!({"server": s, "tool": t, "sha256": d}))
                            .collect();
                        let text = serde_json::to_string_pretty(&rows).map_err(|e| err(&e))?;
                        println!("{text}");
                    } else {
                        println!("SERVER\tTOOL\tSHA256");
                        for (server, tool, digest) in all {
                            println!("{server}\t{tool}\t{digest}");
                        }
                    }
                    Ok(0)
                }
                McpPinsCommand::Approve { server, tool } => {
                    if pins.approve(&server, &tool).map_err(|e| err(&e))? {
                        eprintln!(
                            "frona: the next listing of `{server}` pins the definition of `{tool}` it shows then"
                        );
                        Ok(0)
                    } else {
                        Err(
                            Failure::new(1, format!("no pin for `{tool}` of `{server}`"))
                                .with_hint("`frona mcp pins list` shows the pins"),
                        )
                    }
                }
            }
        }
        McpCommand::Config { names, agent } => {
            let registered = registry.mcp_servers().map_err(|e| err(&e))?;
            if let Some(name) = names
                .iter()
                .find(|n| !registered.iter().any(|s| &s.name == *n))
            {
                return Err(Failure::new(1, format!("no MCP server named `{name}`"))
                    .with_hint("register it first: `frona mcp add NAME -- COMMAND…`"));
            }
            print!("{}", agent_config(&names, agent));
            Ok(0)
        }
    }
}

/// The snippet each agent's configuration wants: every server is `frona mcp connect NAME`.
fn agent_config(names: &[String], format: McpConfigFormat) -> String {
    match format {
        McpConfigFormat::Codex => names
            .iter()
            .map(|name| {
                // TOML basic strings: names are letters, digits, `.`, `_`, `-` (registry rule).
                format!(
                    "[mcp_servers.\"{name}\"]\ncommand = \"frona\"\nargs = [\"mcp\", \"connect\", \"{name}\"]\n"
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        McpConfigFormat::ClaudeCode | McpConfigFormat::Gemini | McpConfigFormat::Json => {
            let servers: serde_json::Map<String, serde_json::Value> = names
                .iter()
                .map(|name| {
                    let entry = serde_json::json!({
                        "command": "frona",
                        "args": ["mcp", "connect", name],
                    });
                    (name.clone(), entry)
                })
                .collect();
            let doc = serde_json::json!({ "mcpServers": servers });
            format!("{}\n", serde_json::to_string_pretty(&doc).unwrap_or_default())
        }
    }
}

/// Asks the broker for server `name`, then pipes: stdin to the broker, the broker to stdout,
/// one whole JSON-RPC line at a time, until either side ends.
fn connect(name: &str, env: &EnvSnapshot) -> Result<i32, Failure> {
    let call = Call::Mcp {
        v: VERSION,
        server: name.to_owned(),
        cwd: super::tool::cwd(),
    };
    let stream = super::tool::send(&call, env)?;
    let mut from_broker = BufReader::new(stream.try_clone().map_err(|e| Failure::from_error(&e))?);
    let mut first = String::new();
    from_broker
        .read_line(&mut first)
        .map_err(|e| Failure::from_error(&e))?;
    match serde_json::from_str::<Event>(&first) {
        Ok(Event::Mcp { .. }) => {}
        Ok(Event::Error { message }) => {
            return Err(Failure::new(EXIT_UNAVAILABLE, message)
                .with_hint("`frona mcp list` shows the registered servers"));
        }
        Ok(Event::Decision { reason, .. }) => {
            return Err(Failure::new(super::tool::EXIT_DENIED, reason));
        }
        _ => {
            return Err(Failure::new(
                EXIT_UNAVAILABLE,
                "the broker did not answer as an MCP gateway",
            ));
        }
    }
    let mut to_broker = stream;
    let upstream = std::thread::spawn(move || {
        pipe(&mut std::io::stdin().lock(), &mut to_broker);
        // The agent closed its end: so does the gateway's connection, and the server stops.
        let _ = to_broker.shutdown(std::net::Shutdown::Write);
    });
    pipe(&mut from_broker, &mut std::io::stdout().lock());
    drop(upstream);
    Ok(0)
}

/// Copies until either end closes, flushing each read: a JSON-RPC message goes on as it
/// arrives. (`std::io::copy`, which may take a kernel fast path between a pipe and a socket,
/// stalled the agent's connection in the tests.)
fn pipe(from: &mut impl Read, to: &mut impl Write) {
    let mut buffer = [0u8; 64 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() || to.flush().is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_agent_gets_its_own_format() {
        let names = ["github".to_owned(), "pg-prod".to_owned()];
        let json: serde_json::Value =
            serde_json::from_str(&agent_config(&names, McpConfigFormat::ClaudeCode)).unwrap();
        assert_eq!(
            json["mcpServers"]["pg-prod"]["args"],
            serde_json::json!(["mcp", "connect", "pg-prod"])
        );
        let toml = agent_config(&names, McpConfigFormat::Codex);
        assert!(toml.contains("[mcp_servers.\"github\"]\ncommand = \"frona\"\nargs = [\"mcp\", \"connect\", \"github\"]"), "{toml}");
    }
}
