//! frona's policy: which tool calls may use which credentials, decided per call.
//!
//! Pure: no I/O. The caller reads the files and hands their text to [`PolicySet::load`], which
//! parses (errors carry file, line and column), validates and compiles them once: globs and
//! regexes are built, and rules are indexed by literal tool name so that evaluation looks only
//! at rules that can match. Rules are tried in order (files by name, rules as written); the
//! first that matches decides; nothing matching means deny.

pub mod duration;
pub mod glob;
pub mod mcp;
pub mod network;
pub mod schema;
pub mod ssh;
pub mod testing;
pub mod yaml;

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use glob::Glob;
pub use mcp::{MCP_TOOL, McpCall};
pub use schema::{Deliver, Effect, IssueSpec};
use schema::{PolicyFile, RuleSpec};
pub use ssh::{SSH_TOOL, SshCall, SshHost};

/// A tool call as the broker sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The program (a path or a name; rules match its basename).
    pub tool: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub credentials: Vec<String>,
    #[serde(default = "default_agent")]
    pub agent: String,
    /// When the call is made (default in test cases: Monday 2026-01-05 12:00 UTC).
    #[serde(default = "default_time")]
    pub time: Timestamp,
    /// SHA-256 of the tool binary, when the broker computed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// For a call through the HTTP proxy (its `tool` is [`HTTP_TOOL`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCall>,
    /// For a signature through frona's SSH agent (its `tool` is [`SSH_TOOL`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshCall>,
    /// For a `tools/call` through frona's MCP gateway (its `tool` is [`MCP_TOOL`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpCall>,
}

/// Which kind of call a rule or a request is about: a rule decides calls of its kind only, so
/// that a catch-all tool rule opens no HTTP route, no SSH key and no MCP tool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CallKind {
    Tool,
    Http,
    Ssh,
    Mcp,
}

impl CallKind {
    fn of(http: bool, ssh: bool, mcp: bool) -> Self {
        match (http, ssh, mcp) {
            (true, _, _) => CallKind::Http,
            (_, true, _) => CallKind::Ssh,
            (_, _, true) => CallKind::Mcp,
            _ => CallKind::Tool,
        }
    }

    fn name(self) -> &'static str {
        match self {
            CallKind::Tool => "tool calls",
            CallKind::Http => "HTTP proxy calls",
            CallKind::Ssh => "SSH signatures",
            CallKind::Mcp => "MCP calls",
        }
    }
}

impl Request {
    fn kind(&self) -> CallKind {
        CallKind::of(self.http.is_some(), self.ssh.is_some(), self.mcp.is_some())
    }
}

/// The tool name of calls through the HTTP proxy.
pub const HTTP_TOOL: &str = "http";

/// The tool name of fetches at `frona run`'s AWS container credentials endpoint: a rule with
/// `tool: aws-credentials` and the `aws-sts` credential's name permits the agent's AWS SDKs an
/// STS session of that role, shaped by the rule's `issue:` (`ttl`, `session_policy`).
pub const AWS_CREDENTIALS_TOOL: &str = "aws-credentials";

/// An HTTP request as the proxy will send it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCall {
    pub method: String,
    pub host: String,
    /// Percent-decoded, dot segments resolved, without the query.
    pub path: String,
}

fn default_agent() -> String {
    "default".into()
}

fn default_time() -> Timestamp {
    Timestamp::from_second(1_767_614_400).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// What the policy decided and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub effect: Effect,
    /// The deciding rule's name (`None`: default deny).
    pub rule: Option<String>,
    pub reason: String,
    /// For a permit, or an ask once approved: the short-lived credential to issue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issue: Option<IssueSpec>,
    /// For an ask: how long to wait for a human.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_secs"
    )]
    pub ask_timeout: Option<Duration>,
}

fn ser_opt_secs<S: serde::Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(d) => s.serialize_u64(d.as_secs()),
        None => s.serialize_none(),
    }
}

/// A policy file that cannot be used, with where the problem is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct PolicyError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl PolicyError {
    /// A YAML error in `file`, where the parser saw it.
    pub(crate) fn yaml(file: &str, error: yaml::YamlError) -> Self {
        Self {
            file: file.into(),
            line: error.line,
            column: error.column,
            message: error.message,
        }
    }
}

/// A compiled rule.
#[derive(Debug)]
struct Rule {
    name: String,
    file: String,
    tools: Vec<Glob>,
    args: Vec<Glob>,
    args_regex: Option<regex::Regex>,
    agents: Vec<Glob>,
    credentials: Vec<Glob>,
    when: Option<schema::WhenSpec>,
    rate: Option<schema::RateSpec>,
    sha256: Option<String>,
    http: Option<HttpMatch>,
    ssh: Option<ssh::SshMatch>,
    mcp: Option<mcp::McpMatch>,
    effect: Effect,
    reason: Option<String>,
    issue: Option<IssueSpec>,
    timeout: Option<Duration>,
}

impl Rule {
    fn kind(&self) -> CallKind {
        CallKind::of(self.http.is_some(), self.ssh.is_some(), self.mcp.is_some())
    }
}

/// A compiled `http:` matcher; empty lists match anything.
#[derive(Debug)]
struct HttpMatch {
    methods: Vec<Glob>,
    hosts: Vec<Glob>,
    paths: Vec<Glob>,
}

/// Why a rule did not apply (for `explain`), or that it did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    pub rule: String,
    pub file: String,
    /// `None`: this rule matched and decided.
    pub skipped: Option<String>,
}

/// All rules, compiled and indexed.
#[derive(Debug, Default)]
pub struct PolicySet {
    rules: Vec<Rule>,
    /// Rules whose tool patterns are all literal, by tool name.
    by_tool: HashMap<String, Vec<usize>>,
    /// Rules for any tool or with a wildcard tool pattern.
    wildcard: Vec<usize>,
    /// `network:` entries and `--allow-host` lists, in order (see [`network`]).
    network: Vec<network::NetRule>,
}

/// Calls counted for rate limits: per rule, agent and tool, in a sliding window.
#[derive(Debug, Default)]
pub struct RateTracker {
    calls: HashMap<(usize, String, String), VecDeque<Timestamp>>,
}

fn basename(tool: &str) -> &str {
    tool.rsplit('/').next().unwrap_or(tool)
}

impl PolicySet {
    /// Parses and compiles `(file name, text)` pairs, in the order given.
    pub fn load<'a>(
        files: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, PolicyError> {
        let mut set = PolicySet::default();
        let mut names: HashMap<String, String> = HashMap::new();
        for (file, text) in files {
            let parsed: PolicyFile =
                yaml::from_str(text).map_err(|e| PolicyError::yaml(file, e))?;
            if let Some(version) = parsed.version
                && version != 1
            {
                return Err(PolicyError {
                    file: file.into(),
                    line: 1,
                    column: 1,
                    message: format!("unknown policy version {version}"),
                });
            }
            for spec in parsed.rules {
                if let Some(previous) = names.insert(spec.name.clone(), file.to_owned()) {
                    return Err(PolicyError {
                        file: file.into(),
                        line: 1,
                        column: 1,
                        message: format!("rule name `{}` is already used in {previous}", spec.name),
                    });
                }
                set.push(file, spec).map_err(|message| PolicyError {
                    file: file.into(),
                    line: 1,
                    column: 1,
                    message,
                })?;
            }
            for spec in parsed.network {
                let error = |message| PolicyError {
                    file: file.into(),
                    line: 1,
                    column: 1,
                    message,
                };
                if let Some(previous) = names.insert(spec.name.clone(), file.to_owned()) {
                    return Err(error(format!(
                        "rule name `{}` is already used in {previous}",
                        spec.name
                    )));
                }
                set.network
                    .push(network::NetRule::compile(spec).map_err(error)?);
            }
        }
        Ok(set)
    }

    fn push(&mut self, file: &str, spec: RuleSpec) -> Result<(), String> {
        if spec.issue.is_some() && spec.effect == Effect::Deny {
            return Err(format!(
                "rule `{}`: `issue` only goes with `effect: permit` or `effect: ask`",
                spec.name
            ));
        }
        if spec.timeout.is_some() && spec.effect != Effect::Ask {
            return Err(format!(
                "rule `{}`: `timeout` only goes with `effect: ask`",
                spec.name
            ));
        }
        if let Some(sha) = &spec.sha256
            && (sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(format!(
                "rule `{}`: sha256 must be 64 hex digits",
                spec.name
            ));
        }
        if spec.http.is_some()
            && (spec.tool.is_some()
                || spec.args.is_some()
                || spec.args_regex.is_some()
                || spec.sha256.is_some())
        {
            return Err(format!(
                "rule `{}`: an `http` rule matches proxied requests by method, host and path; \
                 `tool`, `args`, `args_regex` and `sha256` are for tool calls",
                spec.name
            ));
        }
        if spec.ssh.is_some()
            && (spec.tool.is_some()
                || spec.args.is_some()
                || spec.args_regex.is_some()
                || spec.sha256.is_some()
                || spec.http.is_some()
                || spec.credentials.is_some()
                || spec.issue.is_some())
        {
            return Err(format!(
                "rule `{}`: an `ssh` rule matches signatures by key and host; `tool`, `args`, \
                 `args_regex`, `sha256`, `http`, `credentials` and `issue` are for other calls",
                spec.name
            ));
        }
        if spec.mcp.is_some()
            && (spec.tool.is_some()
                || spec.args.is_some()
                || spec.args_regex.is_some()
                || spec.sha256.is_some()
                || spec.http.is_some()
                || spec.ssh.is_some()
                || spec.credentials.is_some()
                || spec.issue.is_some())
        {
            return Err(format!(
                "rule `{}`: an `mcp` rule matches MCP calls by server, tool and arguments (the \
                 server holds its credentials); `tool`, `args`, `args_regex`, `sha256`, `http`, \
                 `ssh`, `credentials` and `issue` are for other calls",
                spec.name
            ));
        }
        let mcp = spec
            .mcp
            .map(mcp::McpMatch::new)
            .transpose()
            .map_err(|e| format!("rule `{}`: {e}", spec.name))?;
        let index = self.rules.len();
        let tools = spec.tool.map(|p| p.0).unwrap_or_default();
        match tools.iter().map(Glob::literal).collect::<Option<Vec<_>>>() {
            Some(literals) if !literals.is_empty() => {
                for name in literals {
                    self.by_tool.entry(name.to_owned()).or_default().push(index);
                }
            }
            _ => self.wildcard.push(index),
        }
        self.rules.push(Rule {
            name: spec.name,
            file: file.to_owned(),
            tools,
            args: spec.args.map(|p| p.0).unwrap_or_default(),
            args_regex: spec.args_regex.map(|p| p.0),
            agents: spec.agent.map(|p| p.0).unwrap_or_default(),
            credentials: spec.credentials.map(|p| p.0).unwrap_or_default(),
            when: spec.when,
            rate: spec.rate,
            sha256: spec.sha256.map(|s| s.to_ascii_lowercase()),
            http: spec.http.map(|h| HttpMatch {
                methods: h.method.map(|p| p.0).unwrap_or_default(),
                hosts: h.host.map(|p| p.0).unwrap_or_default(),
                paths: h.path.map(|p| p.0).unwrap_or_default(),
            }),
            ssh: spec.ssh.map(ssh::SshMatch::new),
            mcp,
            effect: spec.effect,
            reason: spec.reason,
            issue: spec.issue,
            timeout: spec.timeout.map(|t| t.0),
        });
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether any rule pins a tool binary (so the broker must hash the tool it would run).
    pub fn pins_binaries(&self) -> bool {
        self.rules.iter().any(|r| r.sha256.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether any rule is about signatures through frona's SSH agent.
    pub fn has_ssh_rules(&self) -> bool {
        self.rules.iter().any(|r| r.ssh.is_some())
    }

    /// Whether some rule could let `agent` sign with this key (a permit or an ask for it,
    /// whatever the host, time or rate): the keys frona's SSH agent lists.
    pub fn may_sign(&self, agent: &str, key: &str, comment: &str) -> bool {
        self.could_permit(agent, |r| {
            r.ssh.as_ref().is_some_and(|m| m.covers_key(key, comment))
        })
    }

    /// Whether some rule could let `agent` call `tool` of MCP server `server` (a permit or an
    /// ask for it, whatever the arguments, time or rate): the tools the gateway lists.
    pub fn may_call_mcp(&self, agent: &str, server: &str, tool: &str) -> bool {
        self.could_permit(agent, |r| {
            r.mcp.as_ref().is_some_and(|m| m.covers_tool(server, tool))
        })
    }

    /// Whether a `permit` or `ask` rule for `agent` has `covers` true: what a front end may
    /// show the agent at all.
    fn could_permit(&self, agent: &str, covers: impl Fn(&Rule) -> bool) -> bool {
        self.rules.iter().any(|r| {
            r.effect != Effect::Deny
                && (r.agents.is_empty() || r.agents.iter().any(|g| g.matches(agent)))
                && covers(r)
        })
    }

    /// The host names `ssh:` rules spell out, with the port where a rule names one.
    pub fn ssh_host_names(&self) -> Vec<(String, Option<u16>)> {
        let mut names: Vec<(String, Option<u16>)> = self
            .rules
            .iter()
            .filter_map(|r| r.ssh.as_ref())
            .flat_map(|m| m.literal_hosts().map(|(n, p)| (n.to_owned(), p)))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Indices of the rules that may match `tool`, in rule order.
    fn candidates(&self, tool: &str) -> impl Iterator<Item = usize> + '_ {
        let exact = self
            .by_tool
            .get(tool)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let (mut i, mut j) = (0, 0);
        std::iter::from_fn(move || {
            let next = match (exact.get(i), self.wildcard.get(j)) {
                (Some(&a), Some(&b)) if a < b => {
                    i += 1;
                    a
                }
                (_, Some(&b)) => {
                    j += 1;
                    b
                }
                (Some(&a), None) => {
                    i += 1;
                    a
                }
                (None, None) => return None,
            };
            Some(next)
        })
    }

    /// Why `rule` does not apply to `request`, or `None` when it does (rate limit aside). The
    /// text is built only when `explain` asks for it: evaluation allocates nothing per rule.
    fn mismatch(rule: &Rule, request: &Request, explain: bool) -> Option<String> {
        let why = |text: &dyn Fn() -> String| Some(if explain { text() } else { String::new() });
        let (kind, wanted) = (rule.kind(), request.kind());
        if kind != wanted {
            return why(&|| format!("the rule is for {}, not {}", kind.name(), wanted.name()));
        }
        if let (Some(matcher), Some(call)) = (&rule.http, &request.http) {
            let miss = |globs: &[Glob], value: &str| {
                !globs.is_empty() && !globs.iter().any(|g| g.matches(value))
            };
            if miss(&matcher.methods, &call.method) {
                return why(&|| format!("method {} is not {:?}", call.method, matcher.methods));
            }
            if miss(&matcher.hosts, &call.host) {
                return why(&|| format!("host `{}` is not {:?}", call.host, matcher.hosts));
            }
            if miss(&matcher.paths, &call.path) {
                return why(&|| format!("path `{}` is not {:?}", call.path, matcher.paths));
            }
        }
        if let (Some(matcher), Some(call)) = (&rule.ssh, &request.ssh)
            && let Some(reason) = matcher.mismatch(call, explain)
        {
            return Some(reason);
        }
        if let (Some(matcher), Some(call)) = (&rule.mcp, &request.mcp)
            && let Some(reason) = matcher.mismatch(call, explain)
        {
            return Some(reason);
        }
        let tool = basename(&request.tool);
        if !rule.tools.is_empty() && !rule.tools.iter().any(|g| g.matches(tool)) {
            return why(&|| format!("tool `{tool}` is not {:?}", rule.tools));
        }
        for (position, pattern) in rule.args.iter().enumerate() {
            match request.args.get(position) {
                Some(arg) if pattern.matches(arg) => {}
                Some(arg) => {
                    return why(&|| {
                        format!(
                            "argument {} `{arg}` does not match `{}`",
                            position + 1,
                            pattern.as_str()
                        )
                    });
                }
                None => {
                    return why(&|| {
                        format!("no argument {} for `{}`", position + 1, pattern.as_str())
                    });
                }
            }
        }
        if let Some(regex) = &rule.args_regex
            && !regex.is_match(&request.args.join(" "))
        {
            return why(&|| format!("arguments do not match /{}/", regex.as_str()));
        }
        if !rule.agents.is_empty() && !rule.agents.iter().any(|g| g.matches(&request.agent)) {
            return why(&|| format!("agent `{}` is not {:?}", request.agent, rule.agents));
        }
        // A rule listing credentials applies to calls asking for some of them (and nothing
        // else); a rule listing none applies only to calls asking for none. A permit never
        // reaches further than what it names.
        if let Some(wanted) = request
            .credentials
            .iter()
            .find(|c| !rule.credentials.iter().any(|g| g.matches(c)))
        {
            return why(&|| {
                format!(
                    "credential `{wanted}` is not covered by {:?}",
                    rule.credentials
                )
            });
        }
        if request.credentials.is_empty() && !rule.credentials.is_empty() {
            return why(&|| {
                format!(
                    "the call asks for no credential, the rule is about {:?}",
                    rule.credentials
                )
            });
        }
        if let Some(when) = &rule.when
            && let Some(reason) = outside(when, request.time)
        {
            return Some(reason);
        }
        if let Some(expected) = &rule.sha256
            && !request
                .sha256
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case(expected))
        {
            return why(&|| "the tool binary's SHA-256 is not the pinned one".into());
        }
        None
    }

    fn decide(rule: &Rule, rate_limited: Option<String>) -> Decision {
        if let Some(why) = rate_limited {
            return Decision {
                effect: Effect::Deny,
                rule: Some(rule.name.clone()),
                reason: why,
                issue: None,
                ask_timeout: None,
            };
        }
        let reason = rule
            .reason
            .clone()
            .unwrap_or_else(|| format!("rule `{}`", rule.name));
        Decision {
            effect: rule.effect,
            rule: Some(rule.name.clone()),
            reason,
            issue: (rule.effect != Effect::Deny).then(|| rule.issue.clone().unwrap_or_default()),
            ask_timeout: (rule.effect == Effect::Ask)
                .then(|| rule.timeout.unwrap_or(Duration::from_secs(300))),
        }
    }

    fn default_deny() -> Decision {
        Decision {
            effect: Effect::Deny,
            rule: None,
            reason: "no rule matches this call (default deny)".into(),
            issue: None,
            ask_timeout: None,
        }
    }

    /// Decides `request`, counting it against the deciding rule's rate limit.
    pub fn evaluate(&self, request: &Request, rates: &mut RateTracker) -> Decision {
        let tool = basename(&request.tool);
        for index in self.candidates(tool) {
            let rule = &self.rules[index];
            if Self::mismatch(rule, request, false).is_none() {
                return Self::decide(rule, rates.check(index, rule, request));
            }
        }
        Self::default_deny()
    }

    /// Decides `request` without counting it, and says why each candidate rule did or did not
    /// apply (`frona policy explain`).
    pub fn explain(&self, request: &Request) -> (Decision, Vec<Step>) {
        let mut steps = Vec::new();
        for index in self.candidates(basename(&request.tool)) {
            let rule = &self.rules[index];
            let skipped = Self::mismatch(rule, request, true);
            let matched = skipped.is_none();
            steps.push(Step {
                rule: rule.name.clone(),
                file: rule.file.clone(),
                skipped,
            });
            if matched {
                return (Self::decide(rule, None), steps);
            }
        }
        (Self::default_deny(), steps)
    }
}

/// Why `time` is outside the window, if it is.
fn outside(when: &schema::WhenSpec, time: Timestamp) -> Option<String> {
    let zone = when
        .tz
        .as_ref()
        .map_or(jiff::tz::TimeZone::UTC, |z| z.0.clone());
    let local = time.to_zoned(zone);
    if let Some(days) = when.days {
        let day = local.weekday().to_monday_zero_offset();
        if days.0 & (1 << day) == 0 {
            return Some(format!("{:?} is outside the allowed days", local.weekday()));
        }
    }
    if let Some(schema::Hours(from, to)) = when.hours {
        let minute = (local.hour() as u16) * 60 + local.minute() as u16;
        let inside = if from < to {
            minute >= from && minute < to
        } else {
            minute >= from || minute < to
        };
        if !inside {
            return Some(format!(
                "{:02}:{:02} is outside the allowed hours",
                local.hour(),
                local.minute()
            ));
        }
    }
    None
}

impl RateTracker {
    /// Records a call for `rule` unless it would exceed the limit; returns why it is refused.
    fn check(&mut self, index: usize, rule: &Rule, request: &Request) -> Option<String> {
        let rate = rule.rate?;
        let window =
            jiff::SignedDuration::try_from(rate.per.0).unwrap_or(jiff::SignedDuration::MAX);
        let calls = self
            .calls
            .entry((
                index,
                request.agent.clone(),
                basename(&request.tool).to_owned(),
            ))
            .or_default();
        while calls
            .front()
            .is_some_and(|t| request.time.duration_since(*t) >= window)
        {
            calls.pop_front();
        }
        if calls.len() >= rate.max as usize {
            return Some(format!(
                "rate limit of rule `{}`: at most {} calls per {}s for agent `{}`",
                rule.name,
                rate.max,
                rate.per.0.as_secs(),
                request.agent
            ));
        }
        calls.push_back(request.time);
        None
    }
}

#[cfg(test)]
mod tests;
