//! The agent-side protocol (version 1): JSON lines over the Unix socket in
//! `FRONA_BROKER_SOCKET`. The client sends a [`Call`]; the broker answers with [`Event`]s: a
//! decision, then for a permitted tool call the tool's output (base64 chunks, credentials
//! redacted) and its exit status. A call's answer ends with its final event: `exit`, `error`,
//! or a `decision` that is not `permit`. The client may then send its next call on the same
//! connection (calls on one connection are answered in order; open several for parallel calls).
//!
//! ```text
//! → {"v":1,"op":"tool","tool":"gh","args":["api","repos/acme/app"],"credentials":["github-token"],"cwd":"/src/app"}
//! ← {"type":"decision","effect":"permit","rule":"github-read","reason":"rule `github-read`"}
//! ← {"type":"stdout","data":"eyJ…"}
//! ← {"type":"exit","code":0}
//! ```

use serde::{Deserialize, Serialize};

pub const VERSION: u32 = 1;

/// The longest request line accepted (bytes).
pub const MAX_REQUEST: usize = 64 * 1024;

/// What the agent asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Call {
    /// Run a tool with credentials.
    Tool {
        v: u32,
        tool: String,
        #[serde(default)]
        args: Vec<String>,
        #[serde(default)]
        credentials: Vec<String>,
        #[serde(default)]
        reason: Option<String>,
        /// The agent's working directory; the tool runs there.
        cwd: String,
    },
    /// Hand credential values to the agent itself (for an SDK that must hold a token). Only a
    /// permit rule with `issue: { deliver: value }` for `tool` allows it.
    Issue {
        v: u32,
        /// The program that will use the values (what the policy matches).
        tool: String,
        credentials: Vec<String>,
        #[serde(default)]
        reason: Option<String>,
        cwd: String,
    },
    /// Connect to a registered MCP server through the gateway (`frona mcp connect`): once the
    /// broker answers [`Event::Mcp`], the connection carries the server's JSON-RPC messages,
    /// one per line, both ways.
    Mcp { v: u32, server: String, cwd: String },
}

impl Call {
    /// The protocol version the client speaks.
    pub fn version(&self) -> u32 {
        match self {
            Call::Tool { v, .. } | Call::Issue { v, .. } | Call::Mcp { v, .. } => *v,
        }
    }
}

/// Why a request line is refused before the policy sees it. The text never quotes the line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not a call of this protocol: `kind` says how (not JSON, truncated, unknown fields …).
    #[error("malformed request: {kind}")]
    Malformed { kind: &'static str },
    #[error("protocol version {version} is not supported (frona speaks {VERSION})")]
    Version { version: u32 },
}

/// Decodes one request line (its trailing newline may be included) into a [`Call`] of this
/// protocol version. The caller bounds the line's length ([`MAX_REQUEST`]).
pub fn decode(line: &[u8]) -> Result<Call, DecodeError> {
    let call: Call = serde_json::from_slice(line).map_err(|e| DecodeError::Malformed {
        kind: frona_backends::json_error_kind(&e),
    })?;
    match call.version() {
        VERSION => Ok(call),
        version => Err(DecodeError::Version { version }),
    }
}

/// What the broker answers, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Decision {
        effect: frona_policy::Effect,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rule: Option<String>,
        reason: String,
    },
    /// The call waits for a human (`frona approve ID`), at most `timeout_secs`.
    Pending {
        approval: String,
        timeout_secs: u64,
    },
    /// Output of the tool, base64, with every credential value redacted.
    Stdout {
        data: String,
    },
    Stderr {
        data: String,
    },
    /// The tool's exit status (128 + N for a signal).
    Exit {
        code: i32,
    },
    /// A delivered credential value (`Issue` calls only).
    Credential {
        name: String,
        env: String,
        value: String,
    },
    /// The call failed after it was permitted (a backend, the tool could not start …).
    Error {
        message: String,
    },
    /// The MCP server is running: JSON-RPC lines follow.
    Mcp {
        server: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_call_with_or_without_its_newline() {
        let line = br#"{"v":1,"op":"tool","tool":"gh","args":["api"],"credentials":["github-token"],"cwd":"/src"}"#;
        let expected = Call::Tool {
            v: 1,
            tool: "gh".into(),
            args: vec!["api".into()],
            credentials: vec!["github-token".into()],
            reason: None,
            cwd: "/src".into(),
        };
        assert_eq!(decode(line), Ok(expected.clone()));
        assert_eq!(decode(&[line.as_slice(), b"\n"].concat()), Ok(expected));
    }

    #[test]
    fn refusals_say_why_without_quoting_the_line() {
        let cases: [(&[u8], &str); 5] = [
            (b"GET / HTTP/1.1\r\n", "malformed request: not JSON"),
            (br#"{"v":1,"op":"tool""#, "malformed request: truncated"),
            (
                br#"{"v":1,"op":"tool","tool":"gh","cwd":"/","env":{"SECRET_X":"1"}}"#,
                "malformed request: unexpected or missing fields",
            ),
            (
                br#"{"v":1,"op":"exec","tool":"gh","cwd":"/"}"#,
                "malformed request: unexpected or missing fields",
            ),
            (
                br#"{"v":2,"op":"tool","tool":"gh","cwd":"/"}"#,
                "protocol version 2 is not supported (frona speaks 1)",
            ),
        ];
        for (line, message) in cases {
            let error = decode(line).err().map(|e| e.to_string());
            assert_eq!(error.as_deref(), Some(message));
        }
    }
}
