//! Command-line definitions (clap derive). Behaviour lives in [`crate::cmd`].

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::backends::BackendArgs;
use crate::settings::value::parse_host_pattern;
use crate::settings::{EnvFlags, Flags, IsolationFlags, RunLayer, RunOnlyFlags, SharedFlags};

const AFTER_HELP: &str = "\
Exit status:
  the agent's own status passes through (128+N when it dies of signal N);
  125 frona failed, 126 the command cannot be executed, 127 the command was not found;
  77 `frona tool`/`frona issue`: the broker refused the call.

Environment:
  FRONA_LOG         log level on stderr (error, warn, info, debug, trace; default warn)
  FRONA_LOG_FORMAT  `text` (default) or `json`: one JSON object per log line
  NO_COLOR          disable colour

Configuration: flags win over FRONA_* variables, then the project file (.frona/config.yaml),
the user file ($XDG_CONFIG_HOME/frona/config.yaml), the system file (/etc/frona/config.yaml).
`frona config show` prints every value and where it came from.";

/// Run AI agents without ambient credentials.
#[derive(Debug, Parser)]
#[command(name = "frona", version, about, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an agent with every credential stripped from its environment, supervised.
    #[command(after_help = AFTER_HELP)]
    Run(RunArgs),
    /// Inspect what `frona run` would strip from the environment.
    #[command(subcommand)]
    Env(EnvCommand),
    /// Show what isolation this system offers and what `frona run` would apply.
    Doctor(DoctorArgs),
    /// Manage secrets in frona's embedded, encrypted store.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Register and inspect credentials: names that refer to secrets in a backend.
    #[command(subcommand)]
    Credential(CredentialCommand),
    /// Register MCP servers that frona starts with their credentials, and connect to them
    /// through frona's gateway (`frona mcp connect`, agent side).
    #[command(subcommand)]
    Mcp(McpCommand),
    /// Run a tool through the broker, with credentials the policy grants (agent side).
    Tool(ToolArgs),
    /// Receive credential values in the agent itself, where a rule says `deliver: value`
    /// (agent side); prints `ENV=value` lines.
    Issue {
        /// A credential (repeatable).
        #[arg(long = "credential", value_name = "NAME", required = true)]
        credentials: Vec<String>,
        /// The program that will use the values (what the policy matches).
        #[arg(long)]
        tool: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// One HTTPS request with a credential attached by frona, through the same policy, injection,
    /// redaction and audit as the agent's HTTP proxy (inside `frona run`: through it).
    Call(CallArgs),
    /// Approve a call waiting for a human (operator side).
    Approve {
        /// The approval id (`frona approvals` lists them).
        id: String,
        /// once, a duration (30m, 2h, 3d) or permanent.
        #[arg(long = "for", default_value = "once", value_name = "LIFETIME")]
        lifetime: String,
    },
    /// Deny a call waiting for a human (operator side).
    Deny {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// List calls waiting for a human.
    Approvals {
        #[arg(long)]
        json: bool,
    },
    /// List or revoke remembered approvals.
    #[command(subcommand)]
    Grant(GrantCommand),
    /// Show or verify the audit log.
    Audit(AuditArgs),
    /// Check, test and explain policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Show the effective configuration and where each value came from.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script, e.g.
    /// `frona completions bash > ~/.local/share/bash-completion/completions/frona`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the frona(1) manual page (roff), e.g. `frona man | man -l -`.
    Man,
    /// Internal: the supervisor that runs inside the agent's session. Not for direct use.
    #[command(name = "__init", hide = true)]
    Init(InitArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The run settings' flags (`crate::settings::defs`), shared with `config show`.
    #[command(flatten)]
    pub settings: Flags<SharedFlags>,

    /// Do not start the broker (the agent gets no FRONA_BROKER_SOCKET). With `--net proxy`
    /// the egress proxy still runs.
    #[arg(long)]
    pub no_broker: bool,

    /// With `--net proxy`: the egress proxy resolves HOST to ADDR (`HOST=ADDR[,ADDR…]`)
    /// instead of asking DNS, like curl's `--resolve` (repeatable). The address is still
    /// checked: a private one must be allowed too (`--allow-host ADDR`).
    #[arg(long, value_name = "HOST=ADDR", value_parser = parse_proxy_resolve)]
    pub proxy_resolve: Vec<(String, Vec<std::net::IpAddr>)>,

    /// `--aws-credential` (`run.aws_credential`).
    #[command(flatten)]
    pub aws: Flags<RunOnlyFlags>,

    /// The agent command and its arguments.
    #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

impl RunArgs {
    /// The layer of run settings its flags give.
    pub fn flags(&self) -> RunLayer {
        (*self.aws.layer)
            .clone()
            .combine((*self.settings.layer).clone())
    }
}

/// Checks a `--proxy-resolve HOST=ADDR[,ADDR…]`.
pub fn parse_proxy_resolve(text: &str) -> Result<(String, Vec<std::net::IpAddr>), String> {
    frona_proxy::egress::parse_override(text).map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub isolation: Flags<IsolationFlags>,

    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum GrantCommand {
    /// Every live grant.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a grant: the next call it would have covered is decided afresh.
    Revoke { id: String },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: Option<AuditCommand>,
    /// Only records at or after this time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Print JSON: one record per line; for `verify`, one object.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every setting, its value and its source: flag, env NAME, project, user or system
    /// file, or default. Secret-bearing values print as `<set>`.
    Show(ConfigShowArgs),
}

/// `frona run`'s flags that have config defaults, so that `config show` can show a flag
/// winning.
#[derive(Debug, Args)]
pub struct ConfigShowArgs {
    /// The flags of `frona run` whose effective values are shown.
    #[command(flatten)]
    pub settings: Flags<SharedFlags>,

    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of the whole log; exits 1 if it was changed or is torn.
    Verify,
}

#[derive(Debug, Args)]
pub struct ToolArgs {
    /// A credential the tool needs (repeatable); it reaches only the tool's environment.
    #[arg(long = "credential", value_name = "NAME")]
    pub credentials: Vec<String>,
    /// Why the agent makes this call (recorded in the audit log).
    #[arg(long)]
    pub reason: Option<String>,
    /// The tool and its arguments.
    #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CallArgs {
    /// The credential to attach (default: the one whose route covers URL).
    #[arg(long = "credential", value_name = "NAME")]
    pub credential: Option<String>,
    /// The HTTP method.
    #[arg(
        short = 'X',
        long = "request",
        default_value = "GET",
        value_name = "METHOD"
    )]
    pub method: String,
    /// A request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// The request body; `@FILE` reads a file, `@-` standard input.
    #[arg(short = 'd', long = "data", value_name = "DATA")]
    pub data: Option<String>,
    /// Print the response status line and headers before the body.
    #[arg(short = 'i', long)]
    pub include: bool,
    /// The agent id whose policies and scopes apply (outside `frona run`).
    #[arg(long, default_value = "default", value_name = "NAME")]
    pub agent: String,
    /// The policy directory (outside `frona run`; default: `run.policy` in the config, else
    /// $XDG_CONFIG_HOME/frona/policies).
    #[arg(long, value_name = "DIR")]
    pub policy: Option<PathBuf>,
    /// The upstream URL, `https://host/path?query`, covered by a registered route.
    pub url: String,
}

#[derive(Debug, Subcommand)]
// Parsed once per process: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum PolicyCommand {
    /// Parse and validate every policy file of a directory; errors give file:line:column.
    Check {
        /// The policy directory (default: `run.policy` in the config, else
        /// $XDG_CONFIG_HOME/frona/policies).
        dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Run a file of test cases (request → expected decision) against the policies.
    Test {
        /// The cases file.
        file: PathBuf,
        /// The policy directory (default: `run.policy` in the config, else
        /// $XDG_CONFIG_HOME/frona/policies).
        #[arg(long)]
        policy: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Show which rule decides a call, and why the rules before it did not; or, with
    /// `--connect`, what the egress proxy of `frona run --net proxy` decides for a host.
    Explain {
        /// The tool (program) called.
        #[arg(
            long,
            required_unless_present_any = ["http", "connect", "mcp"],
            conflicts_with_all = ["http", "connect", "mcp"]
        )]
        tool: Option<String>,
        /// An MCP `tools/call` through the gateway instead: `--mcp github create_issue
        /// '{"owner":"acme","repo":"x"}'` (the arguments as a JSON object; default `{}`).
        #[arg(
            long,
            num_args = 2..=3,
            value_names = ["SERVER", "TOOL", "ARGUMENTS"],
            conflicts_with_all = ["http", "connect", "args", "credentials"]
        )]
        mcp: Option<Vec<String>>,
        /// A call through the HTTP proxy instead: `--http GET https://api.example.com/v1/x`
        /// (decided as the proxy would, with one `--credential`).
        #[arg(long, num_args = 2, value_names = ["METHOD", "URL"], requires = "credentials")]
        http: Option<Vec<String>>,
        /// A request to the egress proxy instead: `HOST[:PORT]`, a CONNECT (default port 443),
        /// or `http://HOST[:PORT]/PATH`, plain HTTP (default port 80); decided by the
        /// policies' `network:` entries and `--allow-host`, as `frona run --net proxy` decides.
        #[arg(
            long,
            value_name = "HOST[:PORT]|URL",
            conflicts_with_all = ["http", "args", "credentials"]
        )]
        connect: Option<String>,
        /// With `--connect`: a host the agent may reach, as `frona run --allow-host` takes it
        /// (repeatable; default: `run.allow_host` from the config, as for `frona run`).
        #[arg(long, value_name = "PATTERN", value_parser = parse_host_pattern, requires = "connect")]
        allow_host: Vec<String>,
        /// With `--connect`: as `frona run --proxy-resolve` (`HOST=ADDR[,ADDR…]`, repeatable).
        #[arg(long, value_name = "HOST=ADDR", value_parser = parse_proxy_resolve, requires = "connect")]
        proxy_resolve: Vec<(String, Vec<std::net::IpAddr>)>,
        /// With `--connect`: do not resolve the name; decide the host and port only.
        #[arg(long, requires = "connect")]
        no_resolve: bool,
        /// An argument (repeatable, in order).
        #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
        args: Vec<String>,
        /// A credential the call asks for (repeatable).
        #[arg(long = "credential", value_name = "NAME")]
        credentials: Vec<String>,
        /// The agent id.
        #[arg(long, default_value = "default")]
        agent: String,
        /// The time of the call, RFC 3339 (default: now).
        #[arg(long)]
        at: Option<String>,
        /// The policy directory (default: `run.policy` in the config, else
        /// $XDG_CONFIG_HOME/frona/policies).
        #[arg(long)]
        policy: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Store a secret; the value is read from stdin, or typed at a prompt that does not echo.
    Set {
        /// The secret's name.
        name: String,
    },
    /// List stored secrets (names and versions, never values).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete a stored secret.
    Rm { name: String },
}

#[derive(Debug, Subcommand)]
pub enum McpCommand {
    /// Register (or replace) a stdio MCP server: the command frona's gateway starts, and the
    /// credentials that reach its environment. Stores no value.
    Add {
        /// The server's name (letters, digits, `.`, `_`, `-`).
        name: String,
        /// A registered credential, and the variable the server gets it in (repeatable).
        #[arg(long = "credential", value_name = "CREDENTIAL=VAR")]
        credentials: Vec<String>,
        /// A variable the server gets, in clear (no secrets; repeatable).
        #[arg(long = "env", value_name = "VAR=VALUE")]
        env: Vec<String>,
        /// global, project (this directory), project:/dir, or agent:NAME.
        #[arg(long, default_value = "global")]
        scope: String,
        /// How long a `tools/call` may wait for the server (default 60s): then the agent gets
        /// an error result, and a late answer is dropped.
        #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
        call_timeout: Option<Duration>,
        /// The server's program and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// List registered MCP servers (never values).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove an MCP server from the registry.
    Remove {
        name: String,
        /// Only in this scope (default: every scope).
        #[arg(long)]
        scope: Option<String>,
    },
    /// Connect to a registered server through frona's gateway (agent side, inside `frona
    /// run`): name this command as the agent's stdio MCP server.
    Connect { name: String },
    /// The tool definitions pinned on first sight: a tool whose definition changed is withheld
    /// from the agent until approved here.
    #[command(subcommand)]
    Pins(McpPinsCommand),
    /// Print the MCP configuration an agent wants for these servers, each one
    /// `frona mcp connect NAME`.
    Config {
        /// Registered servers (one or more).
        #[arg(required = true)]
        names: Vec<String>,
        /// claude-code (`.mcp.json`, `--mcp-config`), codex (`~/.codex/config.toml`), gemini
        /// (`.gemini/settings.json`), or json (the common `mcpServers` object).
        #[arg(long = "for", value_name = "AGENT", default_value = "json")]
        agent: McpConfigFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum McpPinsCommand {
    /// List the pinned definitions (server, tool, SHA-256).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Accept a tool's changed definition: the next listing pins what the server says then.
    Approve { server: String, tool: String },
}

/// The configuration formats `frona mcp config` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum McpConfigFormat {
    ClaudeCode,
    Codex,
    Gemini,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum CredentialCommand {
    /// Add (or replace) a credential: a name for a secret in a backend. Stores no value.
    Register(RegisterArgs),
    /// List registered credentials (never values).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a credential from the registry (the secret stays in its backend).
    Remove {
        #[arg(long)]
        name: String,
        /// Only in this scope (default: every scope).
        #[arg(long)]
        scope: Option<String>,
    },
    /// Fetch a credential and print only a fingerprint of its value.
    Test {
        #[arg(long)]
        name: String,
        /// Resolve as this agent would (for `agent:NAME` scopes).
        #[arg(long)]
        agent: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        backend: BackendArgs,
    },
    /// Rotate a credential in its backend; where the backend stores what it is given, the new
    /// value is read from stdin (or a prompt).
    Rotate {
        #[arg(long)]
        name: String,
        #[arg(long)]
        agent: Option<String>,
        #[command(flatten)]
        backend: BackendArgs,
    },
    /// Probe every configured backend; exits 1 if any is unhealthy.
    Health {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        backend: BackendArgs,
    },
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The credential's name (letters, digits, `.`, `_`, `-`).
    #[arg(long)]
    pub name: String,
    /// local, vault, aws, gcp, azure, onepassword, infisical or systemd-creds.
    #[arg(long)]
    pub backend: String,
    /// The secret's path or name in the backend.
    #[arg(long)]
    pub path: String,
    /// One field of a structured secret.
    #[arg(long)]
    pub field: Option<String>,
    /// Pin one version of the secret (default: the latest).
    #[arg(long, value_name = "VERSION")]
    pub secret_version: Option<String>,
    /// The environment variable a tool receives the value in.
    #[arg(long)]
    pub env: Option<String>,
    /// global, project (this directory), project:/dir, or agent:NAME.
    #[arg(long, default_value = "global")]
    pub scope: String,
    /// static, dynamic, totp, or aws-sts (an AWS role ARN served to the agent's AWS SDKs
    /// under `frona run --net proxy`).
    #[arg(long, default_value = "static")]
    pub kind: String,
    /// Serve this credential on the HTTP proxy: requests to `http://frona/NAME/PATH` go to
    /// `URL/PATH`, and nowhere else, with the credential attached.
    #[arg(long, value_name = "NAME=URL", requires = "inject")]
    pub route: Option<String>,
    /// How the proxy attaches it: bearer, basic, basic:USER, header:NAME or query:NAME.
    #[arg(long, value_name = "STYLE", requires = "route")]
    pub inject: Option<String>,
    /// Bind the credential to a host (HOST, *.DOMAIN, HOST:PORT; repeatable): under `frona run
    /// --net proxy` the agent gets a placeholder in --env, which the egress proxy swaps for the
    /// value in request headers to these hosts only.
    #[arg(long, value_name = "HOST")]
    pub inject_host: Vec<String>,
    /// Swap the placeholder in this query parameter too (repeatable; needs --inject-host).
    #[arg(long, value_name = "NAME")]
    pub inject_query: Vec<String>,
    /// Swap the placeholder in this request header too (repeatable; needs --inject-host).
    /// Authorization, X-Api-Key, Api-Key, X-Goog-Api-Key and Private-Token always are.
    #[arg(long, value_name = "NAME")]
    pub inject_header: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Print which variables of the current environment `frona run` would strip, and why.
    Check(EnvCheckArgs),
}

#[derive(Debug, Args)]
pub struct EnvCheckArgs {
    #[command(flatten)]
    pub env: Flags<EnvFlags>,

    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[arg(long)]
    pub parent: i32,
    #[arg(long, value_parser = frona_policy::duration::parse)]
    pub stop_timeout: Duration,
    /// The isolation plan, as JSON.
    #[arg(long)]
    pub plan: String,
    /// A pipe to frona, written once the agent started (for systemd's READY=1).
    #[arg(long)]
    pub started_fd: Option<i32>,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<OsString>,
}

fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    frona_policy::duration::parse_positive(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The helper's argv, as the sandbox crate writes it, parses back into the same config.
    #[test]
    fn init_args_round_trip() {
        let config = frona_sandbox::supervise::InitConfig {
            parent: 42,
            stop_timeout: Duration::from_millis(1500),
            plan: frona_sandbox::isolation::Plan::default(),
            command: vec!["agent".into(), "--flag".into(), "x".into()],
        };
        let cli = Cli::try_parse_from(config.to_args()).unwrap();
        let Command::Init(args) = cli.command else {
            panic!("not __init")
        };
        assert_eq!(args.parent, 42);
        assert_eq!(args.stop_timeout, Duration::from_millis(1500));
        assert_eq!(args.command, config.command);
        let plan: frona_sandbox::isolation::Plan = serde_json::from_str(&args.plan).unwrap();
        assert_eq!(plan, config.plan);
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
