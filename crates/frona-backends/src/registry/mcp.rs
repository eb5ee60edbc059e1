//! MCP servers registered with `frona mcp add`: the command frona's gateway starts (outside the
//! agent's reach) and the credentials that reach that server's environment only. Stored in the
//! registry file beside the credentials, scoped the same way.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Registry, RegistryError, Scope, remove_where, replace_or_push, valid_name};

/// One registered server (stdio transport).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServer {
    pub name: String,
    /// The program and its arguments.
    pub command: Vec<String>,
    /// Credentials the server gets, each under a variable of its environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<McpCredential>,
    /// Other variables the server gets (no secrets: these are stored in clear).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub scope: Scope,
    /// How long a `tools/call` may wait for the server's answer before the agent gets an error
    /// result (default [`DEFAULT_CALL_TIMEOUT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_timeout_secs: Option<u64>,
}

/// How long a call waits for a server that does not say otherwise.
pub const DEFAULT_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl McpServer {
    /// How long a call to this server may take.
    pub fn call_timeout(&self) -> std::time::Duration {
        self.call_timeout_secs
            .map_or(DEFAULT_CALL_TIMEOUT, std::time::Duration::from_secs)
    }
}

/// A credential for a server, and the variable it goes in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpCredential {
    pub credential: String,
    pub env: String,
}

fn valid_var(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl McpServer {
    pub fn validate(&self) -> Result<(), RegistryError> {
        let invalid = |m: String| Err(RegistryError::Invalid(m));
        if !valid_name(&self.name) {
            return invalid(format!(
                "MCP server name `{}`: letters, digits, `.`, `_`, `-` (at most 128)",
                self.name
            ));
        }
        if self.command.first().is_none_or(|c| c.is_empty()) {
            return invalid(format!("MCP server `{}` has no command", self.name));
        }
        for c in &self.credentials {
            if !valid_name(&c.credential) || !valid_var(&c.env) {
                return invalid(format!(
                    "MCP server `{}`: `{}={}` is not CREDENTIAL=VARIABLE",
                    self.name, c.credential, c.env
                ));
            }
        }
        if let Some(var) = self.env.keys().find(|v| !valid_var(v)) {
            return invalid(format!(
                "MCP server `{}`: `{var}` is not a variable name",
                self.name
            ));
        }
        Ok(())
    }
}

impl Registry {
    /// Every registered MCP server, in file order.
    pub fn mcp_servers(&self) -> Result<Vec<McpServer>, RegistryError> {
        Ok(self.read()?.mcp_servers)
    }

    /// The server `name` as `agent` working in `cwd` sees it, narrowest scope first.
    pub fn resolve_mcp(
        &self,
        name: &str,
        agent: Option<&str>,
        cwd: &Path,
    ) -> Result<Option<McpServer>, RegistryError> {
        Ok(self
            .mcp_servers()?
            .into_iter()
            .filter(|s| s.name == name)
            .filter_map(|s| Some((s.scope.specificity(agent, cwd)?, s)))
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, s)| s))
    }

    /// Adds `server`, replacing one with the same name and scope; whether it replaced one.
    pub fn add_mcp(&self, server: McpServer) -> Result<bool, RegistryError> {
        server.validate()?;
        self.update(|file| {
            let same = |s: &McpServer| s.name == server.name && s.scope == server.scope;
            Ok(replace_or_push(&mut file.mcp_servers, server.clone(), same))
        })
    }

    /// Removes the server `name` (in `scope`, or in every scope); how many entries went.
    pub fn remove_mcp(&self, name: &str, scope: Option<&Scope>) -> Result<usize, RegistryError> {
        self.update(|file| {
            Ok(remove_where(&mut file.mcp_servers, |s| {
                s.name == name && scope.is_none_or(|sc| *sc == s.scope)
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, scope: Scope) -> McpServer {
        McpServer {
            name: name.into(),
            command: vec!["python3".into(), "server.py".into()],
            credentials: vec![McpCredential {
                credential: "gh".into(),
                env: "GITHUB_TOKEN".into(),
            }],
            env: BTreeMap::from([("LOG".into(), "1".into())]),
            scope,
            call_timeout_secs: None,
        }
    }

    #[test]
    fn servers_are_added_resolved_by_scope_and_removed() {
        let dir = std::env::temp_dir().join(format!("frona-mcp-reg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let registry = Registry::new(dir.join("credentials.yaml"));
        assert!(!registry.add_mcp(server("github", Scope::Global)).unwrap());
        let project = Scope::Project(dir.join("p"));
        assert!(!registry.add_mcp(server("github", project.clone())).unwrap());
        assert!(registry.add_mcp(server("github", Scope::Global)).unwrap());
        let inside = registry
            .resolve_mcp("github", None, &dir.join("p/x"))
            .unwrap();
        assert_eq!(inside.unwrap().scope, project);
        let outside = registry.resolve_mcp("github", None, &dir).unwrap();
        assert_eq!(outside.unwrap().scope, Scope::Global);
        assert!(
            registry.list().unwrap().is_empty(),
            "no credential appeared"
        );
        assert_eq!(registry.remove_mcp("github", None).unwrap(), 2);
        assert!(registry.mcp_servers().unwrap().is_empty());
        let mut bad = server("x y", Scope::Global);
        assert!(registry.add_mcp(bad.clone()).is_err());
        bad.name = "x".into();
        bad.command.clear();
        assert!(registry.add_mcp(bad).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
