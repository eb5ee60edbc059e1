//! Rules for MCP calls through frona's gateway (`mcp:` in a rule): `tools/call` requests from
//! the agent to a server registered with `frona mcp add`, matched by server name, tool name and
//! top-level argument values.

use serde::{Deserialize, Serialize};

use crate::glob::Glob;
use crate::schema::Patterns;

/// The tool name of MCP calls.
pub const MCP_TOOL: &str = "mcp";

/// A `tools/call` as the gateway sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpCall {
    /// The registered server's name.
    pub server: String,
    /// The tool's name, as the agent asked for it.
    pub tool: String,
    /// The call's arguments (a JSON object; anything else is an empty one).
    #[serde(default)]
    pub arguments: serde_json::Map<String, serde_json::Value>,
}

/// What an `mcp:` rule matches, as written; every key present must match.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpSpec {
    /// Globs on the registered server's name.
    #[serde(default)]
    pub server: Option<Patterns>,
    /// Globs on the tool's name.
    #[serde(default)]
    pub tool: Option<Patterns>,
    /// Top-level arguments: a string is a glob on a string argument, a number or a boolean
    /// must be equal; a missing argument does not match.
    #[serde(default)]
    pub arguments: Option<serde_json::Map<String, serde_json::Value>>,
}

/// One compiled argument condition.
#[derive(Debug)]
enum Expected {
    Glob(Glob),
    Equal(serde_json::Value),
}

/// A compiled `mcp:` matcher; empty lists match anything.
#[derive(Debug)]
pub(crate) struct McpMatch {
    servers: Vec<Glob>,
    tools: Vec<Glob>,
    arguments: Vec<(String, Expected)>,
}

impl McpMatch {
    pub(crate) fn new(spec: McpSpec) -> Result<Self, String> {
        let arguments = spec
            .arguments
            .unwrap_or_default()
            .into_iter()
            .map(|(key, value)| {
                let expected = match value {
                    serde_json::Value::String(text) => Expected::Glob(Glob::new(&text)?),
                    v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => {
                        Expected::Equal(v)
                    }
                    _ => {
                        return Err(format!(
                            "mcp argument `{key}`: a string (glob), a number or a boolean"
                        ));
                    }
                };
                Ok((key, expected))
            })
            .collect::<Result<_, String>>()?;
        Ok(Self {
            servers: spec.server.map(|p| p.0).unwrap_or_default(),
            tools: spec.tool.map(|p| p.0).unwrap_or_default(),
            arguments,
        })
    }

    /// Whether the server and tool are this matcher's (arguments aside): the tools the gateway
    /// lists.
    pub(crate) fn covers_tool(&self, server: &str, tool: &str) -> bool {
        let any = |globs: &[Glob], value: &str| {
            globs.is_empty() || globs.iter().any(|g| g.matches(value))
        };
        any(&self.servers, server) && any(&self.tools, tool)
    }

    /// Why `call` is not matched, or `None` when it is; the text only when `explain`.
    pub(crate) fn mismatch(&self, call: &McpCall, explain: bool) -> Option<String> {
        let why = |text: &dyn Fn() -> String| Some(if explain { text() } else { String::new() });
        if !self.covers_tool(&call.server, &call.tool) {
            return why(&|| {
                format!(
                    "{}/{} is not {:?}/{:?}",
                    call.server, call.tool, self.servers, self.tools
                )
            });
        }
        for (key, expected) in &self.arguments {
            let matched = match (expected, call.arguments.get(key)) {
                (Expected::Glob(glob), Some(serde_json::Value::String(text))) => glob.matches(text),
                (Expected::Equal(value), Some(given)) => value == given,
                _ => false,
            };
            if !matched {
                return why(&|| format!("argument `{key}` does not match"));
            }
        }
        None
    }
}
