//! A call to decide, whichever front end it came through: who makes it, what it does, which
//! credentials it asks for, and why (the agent says). [`Call::request`] is what the policy sees.

use frona_policy::{
    AWS_CREDENTIALS_TOOL, HTTP_TOOL, HttpCall, MCP_TOOL, McpCall, Request, SSH_TOOL, SshCall,
};

use crate::peer::Peer;

/// One call for the [`crate::Decider`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The caller, when the front end knows it (`None`: frona's own user, `frona call`).
    pub peer: Option<Peer>,
    pub action: Action,
    pub credentials: Vec<String>,
    /// The agent's stated reason: untrusted text, shown to a human only escaped.
    pub reason: Option<String>,
    pub time: jiff::Timestamp,
}

/// What a call does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Run a tool (or hand its credentials to the agent): the program as the agent named it,
    /// its arguments, and the binary's SHA-256 when a policy pins binaries.
    Tool {
        tool: String,
        args: Vec<String>,
        sha256: Option<String>,
    },
    /// An HTTPS request: the method, the host, the percent-decoded path.
    Http {
        method: String,
        host: String,
        path: String,
    },
    /// A fetch at the AWS container credentials endpoint.
    AwsCredentials,
    /// A signature through frona's SSH agent: the key, and the host the connection was bound
    /// to when the client proved it (the data signed is never part of a call).
    SshSign(SshCall),
    /// A `tools/call` through the MCP gateway: the server, the tool, the arguments.
    Mcp(McpCall),
}

impl Call {
    /// A call made now.
    pub fn new(peer: Option<Peer>, action: Action, credentials: Vec<String>) -> Self {
        Self {
            peer,
            action,
            credentials,
            reason: None,
            time: jiff::Timestamp::now(),
        }
    }

    /// The tool name rules and grants match: the program's name, [`HTTP_TOOL`],
    /// [`AWS_CREDENTIALS_TOOL`] or [`SSH_TOOL`].
    pub fn tool_name(&self) -> &str {
        match &self.action {
            Action::Tool { tool, .. } => tool.rsplit('/').next().unwrap_or(tool),
            Action::Http { .. } => HTTP_TOOL,
            Action::AwsCredentials => AWS_CREDENTIALS_TOOL,
            Action::SshSign(_) => SSH_TOOL,
            Action::Mcp(_) => MCP_TOOL,
        }
    }

    /// What a grant made for this call covers besides the agent and the tool: the credentials
    /// asked for; for a signature, the key and the verified hosts (an approval of one key for
    /// one host is not an approval of every key for every host); for an MCP call, the server,
    /// the tool and the digest of the arguments (an approval of `delete_repo {"name":"a"}` does
    /// not cover `{"name":"b"}`).
    pub fn grant_scope(&self) -> Vec<String> {
        match &self.action {
            Action::SshSign(ssh) => std::iter::once(format!("ssh-key:{}", ssh.key))
                .chain(
                    ssh.hosts
                        .iter()
                        .map(|h| format!("ssh-host:{}:{}", h.name, h.port)),
                )
                .collect(),
            Action::Mcp(mcp) => vec![
                format!("mcp-server:{}", mcp.server),
                format!("mcp-tool:{}", mcp.tool),
                format!("mcp-arguments:{}", arguments_sha256(&mcp.arguments)),
            ],
            _ => self.credentials.clone(),
        }
    }

    /// The arguments an approval shows (an HTTP call's method and URL).
    pub fn args(&self) -> Vec<String> {
        self.request(String::new()).args
    }

    /// The policy's request for this call by `agent`. An HTTP call is tool [`HTTP_TOOL`] with
    /// the method and the URL as its arguments (so that `args` conditions work too), and its
    /// method, host and path.
    pub fn request(&self, agent: String) -> Request {
        let (tool, args, sha256, http) = match &self.action {
            Action::Tool { tool, args, sha256 } => {
                (tool.clone(), args.clone(), sha256.clone(), None)
            }
            Action::Http { method, host, path } => (
                HTTP_TOOL.to_owned(),
                vec![method.clone(), format!("https://{host}{path}")],
                None,
                Some(HttpCall {
                    method: method.clone(),
                    host: host.clone(),
                    path: path.clone(),
                }),
            ),
            Action::AwsCredentials => (AWS_CREDENTIALS_TOOL.to_owned(), Vec::new(), None, None),
            Action::SshSign(ssh) => {
                let hosts: Vec<String> = ssh
                    .hosts
                    .iter()
                    .map(|h| format!("{}:{}", h.name, h.port))
                    .collect();
                let host = if hosts.is_empty() {
                    "(no verified host)".to_owned()
                } else {
                    hosts.join(",")
                };
                (
                    SSH_TOOL.to_owned(),
                    vec![ssh.key.clone(), ssh.comment.clone(), host],
                    None,
                    None,
                )
            }
            Action::Mcp(mcp) => (
                MCP_TOOL.to_owned(),
                vec![
                    mcp.server.clone(),
                    mcp.tool.clone(),
                    serde_json::Value::Object(mcp.arguments.clone()).to_string(),
                ],
                None,
                None,
            ),
        };
        Request {
            tool,
            args,
            credentials: self.credentials.clone(),
            agent,
            time: self.time,
            sha256,
            http,
            ssh: match &self.action {
                Action::SshSign(ssh) => Some(ssh.clone()),
                _ => None,
            },
            mcp: match &self.action {
                Action::Mcp(mcp) => Some(mcp.clone()),
                _ => None,
            },
        }
    }
}

/// SHA-256 (hex) of MCP arguments as JSON with keys sorted (`serde_json`'s map is ordered):
/// the same arguments always have the same digest.
pub fn arguments_sha256(arguments: &serde_json::Map<String, serde_json::Value>) -> String {
    use sha2::Digest as _;
    let text = serde_json::Value::Object(arguments.clone()).to_string();
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}
