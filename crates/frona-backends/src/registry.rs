//! The credential registry: which secret (backend + path + field) a credential name refers to,
//! for which scope, and how a tool receives it. References only, never values.
//!
//! One YAML file (`$XDG_CONFIG_HOME/frona/credentials.yaml`), changed under an exclusive
//! `flock` and replaced atomically, so concurrent `frona credential register` runs lose nothing.
//! When names collide, the narrowest scope wins: `agent:NAME` over `project:DIR` (the nearest
//! enclosing directory) over `global`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use frona_policy::network::{HostPattern, Target};
use serde::{Deserialize, Serialize};

use crate::BackendKind;

/// Where a credential applies.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    #[default]
    Global,
    /// A project directory (absolute) and everything beneath it.
    Project(PathBuf),
    /// One agent, by the id given to `frona run --agent`.
    Agent(String),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => f.write_str("global"),
            Scope::Project(dir) => write!(f, "project:{}", dir.display()),
            Scope::Agent(name) => write!(f, "agent:{name}"),
        }
    }
}

impl FromStr for Scope {
    type Err = RegistryError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once(':') {
            None if text == "global" => Ok(Scope::Global),
            Some(("project", dir)) if Path::new(dir).is_absolute() => {
                Ok(Scope::Project(dir.into()))
            }
            Some(("agent", name)) if valid_name(name) => Ok(Scope::Agent(name.into())),
            _ => Err(RegistryError::Invalid(format!(
                "scope `{text}` is not `global`, `project:/absolute/dir` or `agent:NAME`"
            ))),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

// `kind: aws-sts`: what such a registration must look like.
mod aws_sts;
pub mod mcp;

/// How the credential is used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialKind {
    /// A stored value, handed out as is (within a grant).
    #[default]
    Static,
    /// Issued per use by the backend (Vault child token or lease, AWS STS session).
    Dynamic,
    /// An RFC 6238 seed; tools receive the current code.
    Totp,
    /// An AWS role (its ARN in `path`): `frona run --net proxy` serves STS sessions of it to
    /// the agent's AWS SDKs at the container credentials endpoint (see `aws_sts.rs`).
    #[serde(rename = "aws-sts")]
    AwsSts,
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CredentialKind::Static => "static",
            CredentialKind::Dynamic => "dynamic",
            CredentialKind::Totp => "totp",
            CredentialKind::AwsSts => "aws-sts",
        })
    }
}

/// One registered credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    pub name: String,
    pub backend: BackendKind,
    /// The backend's own path or name for the secret.
    pub path: String,
    /// One field of a structured secret (KV v2 key, JSON key, 1Password field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A pinned version (default: the latest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The environment variable a tool receives the value in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(default)]
    pub scope: Scope,
    #[serde(default)]
    pub kind: CredentialKind,
    /// Where the HTTP proxy may send this credential, and how it attaches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,
    /// Hosts (`HOST`, `*.DOMAIN`, with `:PORT` when not 443) this credential is bound to: under
    /// `frona run --net proxy` the agent gets a placeholder in `env`, and the egress proxy swaps
    /// it for the value in requests to these hosts only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inject_hosts: Vec<String>,
    /// Query parameters in which the placeholder is swapped too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inject_query: Vec<String>,
    /// Headers in which the placeholder is swapped, besides [`PLACEHOLDER_HEADERS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inject_headers: Vec<String>,
}

/// The headers a bound credential's placeholder is swapped in by default: where SDKs send API
/// credentials (`Authorization` for bearer and basic schemes, and the API-key headers of
/// Anthropic, Azure OpenAI, Google and GitLab). Only there: a placeholder in any other header
/// (one an upstream might store or show, such as `User-Agent`) stays a placeholder.
pub const PLACEHOLDER_HEADERS: &[&str] = &[
    "authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "private-token",
];

impl Credential {
    /// A global, static credential `name` for the secret at `path` in `backend`, with nothing
    /// else set.
    pub fn new(name: impl Into<String>, backend: BackendKind, path: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            backend,
            path: path.into(),
            field: None,
            version: None,
            env: None,
            scope: Scope::Global,
            kind: CredentialKind::Static,
            route: None,
            inject_hosts: Vec::new(),
            inject_query: Vec::new(),
            inject_headers: Vec::new(),
        }
    }

    /// Whether the placeholder is swapped in header `name` (lower case).
    pub fn swaps_in_header(&self, name: &str) -> bool {
        PLACEHOLDER_HEADERS.contains(&name)
            || self
                .inject_headers
                .iter()
                .any(|h| h.eq_ignore_ascii_case(name))
    }
}

/// An HTTP route of the credential proxy: requests to `http://frona/NAME/PATH` go to
/// `UPSTREAM/PATH` with the credential attached. The credential goes nowhere else.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// The first path segment on the proxy.
    pub name: String,
    /// `https://host[:port][/base/path]`.
    pub upstream: String,
    pub inject: Inject,
}

/// How the proxy attaches the credential to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inject {
    /// `Authorization: Bearer VALUE`.
    Bearer,
    /// `Authorization: Basic`: with `user`, the value is the password; without, the value is
    /// the user name and the password is empty (Stripe's convention).
    Basic { user: Option<String> },
    /// `NAME: VALUE`.
    Header(String),
    /// `?NAME=VALUE` added to the query.
    Query(String),
}

impl fmt::Display for Inject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Inject::Bearer => f.write_str("bearer"),
            Inject::Basic { user: None } => f.write_str("basic"),
            Inject::Basic { user: Some(user) } => write!(f, "basic:{user}"),
            Inject::Header(name) => write!(f, "header:{name}"),
            Inject::Query(name) => write!(f, "query:{name}"),
        }
    }
}

/// Headers the HTTP proxy never forwards in either direction: hop-by-hop (RFC 9110 §7.6.1),
/// proxy credentials, and those it sets itself.
pub const UNFORWARDED_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// Headers a route may not inject into: those the proxy manages itself.
fn reserved_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    UNFORWARDED_HEADERS.contains(&name.as_str())
        || ["content-encoding", "accept-encoding"].contains(&name.as_str())
}

/// An HTTP header name (RFC 9110 token).
fn header_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl FromStr for Inject {
    type Err = RegistryError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let token = header_token;
        let inject = match text.split_once(':') {
            None if text == "bearer" => Inject::Bearer,
            None if text == "basic" => Inject::Basic { user: None },
            Some(("basic", user)) if !user.is_empty() && !user.contains(':') => Inject::Basic {
                user: Some(user.into()),
            },
            Some(("header", name)) if token(name) && !reserved_header(name) => {
                Inject::Header(name.into())
            }
            Some(("query", name))
                if !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)) =>
            {
                Inject::Query(name.into())
            }
            _ => {
                return Err(RegistryError::Invalid(format!(
                    "injection `{text}` is not bearer, basic, basic:USER, header:NAME or query:NAME \
                     (NAME an HTTP token, not a header the proxy manages such as Host)"
                )));
            }
        };
        Ok(inject)
    }
}

impl Serialize for Inject {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Inject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Route {
    /// The upstream's scheme, host and port must be fixed and the base path plain: `https`,
    /// no user info, query or fragment.
    pub fn validate(&self) -> Result<(), RegistryError> {
        if !valid_name(&self.name) {
            return Err(RegistryError::Invalid(format!(
                "route name `{}` must be letters, digits, `.`, `_` or `-`",
                self.name
            )));
        }
        let rest = self.upstream.strip_prefix("https://").ok_or_else(|| {
            RegistryError::Invalid(format!(
                "upstream `{}` must start with https:// (credentials never travel in clear)",
                self.upstream
            ))
        })?;
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty()
            || rest.contains(['?', '#', '@', '\\', ' '])
            || rest.contains("%")
            || rest
                .split('/')
                .any(|segment| segment == ".." || segment == ".")
        {
            return Err(RegistryError::Invalid(format!(
                "upstream `{}` must be https://host[:port][/path], without user, query, fragment, \
                 escapes or dot segments",
                self.upstream
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    #[serde(default)]
    credentials: Vec<Credential>,
    /// MCP servers (`frona mcp add`), started by the broker with their credentials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    mcp_servers: Vec<mcp::McpServer>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid credential: {0}")]
    Invalid(String),
    #[error("cannot use the registry `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the registry `{}` is not valid YAML: {detail}", path.display())]
    Parse { path: PathBuf, detail: String },
}

/// Puts `item` where `same` finds its namesake, or at the end; whether it replaced one.
fn replace_or_push<T>(list: &mut Vec<T>, item: T, same: impl Fn(&T) -> bool) -> bool {
    match list.iter_mut().find(|x| same(x)) {
        Some(slot) => {
            *slot = item;
            true
        }
        None => {
            list.push(item);
            false
        }
    }
}

/// Removes what `matches`; how many went.
fn remove_where<T>(list: &mut Vec<T>, matches: impl Fn(&T) -> bool) -> usize {
    let before = list.len();
    list.retain(|x| !matches(x));
    before - list.len()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A query parameter name the proxy may inject into or swap in.
fn query_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// A host a credential is bound to (`--inject-host`): where its placeholder is swapped for the
/// value. Written in the policy's host pattern language ([`HostPattern`]: `HOST`, `*.DOMAIN`,
/// an address, each with an optional `:PORT`), in lower case, and never a network: the proxy
/// presents a certificate for the host, and a network has none. Without a port it covers 443
/// only, since placeholders are swapped in HTTPS requests.
#[derive(Clone, Debug)]
pub struct BoundHost(HostPattern);

/// The port a bound host without one of its own covers.
pub const BOUND_HOST_PORT: u16 = 443;

impl BoundHost {
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        let invalid = |why: String| {
            RegistryError::Invalid(format!(
                "inject host `{text}`: {why}; use HOST, *.DOMAIN or HOST:PORT (lower case)"
            ))
        };
        let pattern = HostPattern::parse(text).map_err(|e| invalid(e.to_string()))?;
        if text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid("is not in lower case".into()));
        }
        if text.contains('/') {
            return Err(invalid(
                "is a network; a placeholder is bound to hosts the proxy can present a \
                 certificate for"
                    .into(),
            ));
        }
        Ok(Self(pattern))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Whether a request to `host` (as the agent named it) on `port` goes to this bound host.
    pub fn covers(&self, host: &str, port: u16) -> bool {
        self.0.port().unwrap_or(BOUND_HOST_PORT) == port
            && Target::parse(host).is_some_and(|target| self.0.matches_target(&target))
    }
}

fn valid_env(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_uppercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

impl Credential {
    /// The hosts this credential is bound to; those that do not parse (a registry file
    /// edited by hand, since [`Credential::validate`] refuses them) bind nothing.
    pub fn bound_hosts(&self) -> Vec<BoundHost> {
        self.inject_hosts
            .iter()
            .filter_map(|text| BoundHost::parse(text).ok())
            .collect()
    }

    /// Checks the fields a typo would break.
    pub fn validate(&self) -> Result<(), RegistryError> {
        if !valid_name(&self.name) {
            return Err(RegistryError::Invalid(format!(
                "name `{}` must be letters, digits, `.`, `_` or `-`",
                self.name
            )));
        }
        if self.path.trim().is_empty() {
            return Err(RegistryError::Invalid("the path is empty".into()));
        }
        // A systemd credential is one file name: refused now rather than at the first call.
        if self.backend == crate::BackendKind::SystemdCreds {
            crate::systemd_creds::check_name(&self.path)
                .map_err(|e| RegistryError::Invalid(e.to_string()))?;
        }
        if let Some(env) = &self.env
            && !valid_env(env)
        {
            return Err(RegistryError::Invalid(format!(
                "`{env}` is not an environment variable name (A-Z, 0-9, _)"
            )));
        }
        if let Some(route) = &self.route {
            route.validate()?;
        }
        if self.kind == CredentialKind::AwsSts {
            aws_sts::check(self)?;
        }
        for host in &self.inject_hosts {
            BoundHost::parse(host)?;
        }
        for name in &self.inject_query {
            if !query_name(name) {
                return Err(RegistryError::Invalid(format!(
                    "query parameter `{name}` must be letters, digits, `-`, `.`, `_` or `~`"
                )));
            }
        }
        if !self.inject_hosts.is_empty() && self.kind == CredentialKind::Dynamic {
            return Err(RegistryError::Invalid(
                "a dynamic credential is issued per call and cannot be bound to hosts".into(),
            ));
        }
        for name in &self.inject_headers {
            if !header_token(name) || reserved_header(name) {
                return Err(RegistryError::Invalid(format!(
                    "`{name}` is not a header the placeholder can be swapped in (an HTTP token, \
                     not one the proxy manages such as Host)"
                )));
            }
        }
        if self.inject_hosts.is_empty()
            && !(self.inject_query.is_empty() && self.inject_headers.is_empty())
        {
            return Err(RegistryError::Invalid(
                "--inject-query and --inject-header need --inject-host: it says where the \
                 placeholder is swapped"
                    .into(),
            ));
        }
        Ok(())
    }

    /// How specific the scope is for a lookup from `agent` in `cwd`: higher wins, `None` when
    /// the credential does not apply there.
    fn specificity(&self, agent: Option<&str>, cwd: &Path) -> Option<usize> {
        self.scope.specificity(agent, cwd)
    }
}

impl Scope {
    /// How specific this scope is for a lookup from `agent` in `cwd`: higher wins, `None` when
    /// it does not apply there.
    pub fn specificity(&self, agent: Option<&str>, cwd: &Path) -> Option<usize> {
        match self {
            Scope::Agent(name) => (Some(name.as_str()) == agent).then_some(usize::MAX),
            Scope::Project(dir) => cwd.starts_with(dir).then(|| 1 + dir.components().count()),
            Scope::Global => Some(0),
        }
    }
}

/// The registry file.
#[derive(Clone, Debug)]
pub struct Registry {
    path: PathBuf,
    /// The last parse, with the identity of the file it came from: the broker resolves a
    /// credential on every call, and a `stat` is much cheaper than re-parsing the YAML. Changes
    /// (always an atomic replace by frona, or an edit) change the identity and are seen at once.
    parsed: std::sync::Arc<std::sync::Mutex<Option<Parsed>>>,
}

/// A parse of the file and the identity of the file it came from.
type Parsed = (FileIdentity, Vec<Credential>);

/// What changes whenever the file's content may have: inode, size, modification time.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileIdentity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
}

impl FileIdentity {
    fn of(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(path).ok()?;
        Some(Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        })
    }
}

impl Registry {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            parsed: Default::default(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
        |source| RegistryError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn read(&self) -> Result<RegistryFile, RegistryError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) if text.trim().is_empty() => Ok(RegistryFile::default()),
            Ok(text) => frona_policy::yaml::from_str(&text).map_err(|e| RegistryError::Parse {
                path: self.path.clone(),
                detail: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RegistryFile::default()),
            Err(e) => Err(self.io()(e)),
        }
    }

    /// Every registered credential, in file order.
    pub fn list(&self) -> Result<Vec<Credential>, RegistryError> {
        let Some(identity) = FileIdentity::of(&self.path) else {
            return Ok(self.read()?.credentials);
        };
        let mut parsed = self.parsed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((cached, credentials)) = &*parsed
            && *cached == identity
        {
            return Ok(credentials.clone());
        }
        let credentials = self.read()?.credentials;
        // Cached only if the file did not change while it was read.
        if FileIdentity::of(&self.path).as_ref() == Some(&identity) {
            *parsed = Some((identity, credentials.clone()));
        }
        Ok(credentials)
    }

    /// The credential `name` as seen by `agent` working in `cwd`, narrowest scope first.
    pub fn resolve(
        &self,
        name: &str,
        agent: Option<&str>,
        cwd: &Path,
    ) -> Result<Option<Credential>, RegistryError> {
        Ok(Self::narrowest(&self.list()?, name, agent, cwd).cloned())
    }

    /// [`Registry::resolve`] within a listing already made.
    pub fn narrowest<'a>(
        listed: &'a [Credential],
        name: &str,
        agent: Option<&str>,
        cwd: &Path,
    ) -> Option<&'a Credential> {
        listed
            .iter()
            .filter(|c| c.name == name)
            .filter_map(|c| Some((c.specificity(agent, cwd)?, c)))
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, c)| c)
    }

    /// The credentials bound to hosts that `agent` working in `cwd` sees: for each name, its
    /// narrowest registration, if that one is bound. In name order.
    pub fn bound<'a>(
        listed: &'a [Credential],
        agent: Option<&str>,
        cwd: &Path,
    ) -> Vec<&'a Credential> {
        let mut names: Vec<&str> = listed
            .iter()
            .filter(|c| !c.inject_hosts.is_empty())
            .map(|c| c.name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
            .into_iter()
            .filter_map(|name| Self::narrowest(listed, name, agent, cwd))
            .filter(|c| !c.inject_hosts.is_empty())
            .collect()
    }

    /// Adds `credential`, replacing one with the same name and scope. Returns whether it
    /// replaced one.
    pub fn register(&self, credential: Credential) -> Result<bool, RegistryError> {
        credential.validate()?;
        self.update(|file| {
            let same = |c: &Credential| c.name == credential.name && c.scope == credential.scope;
            Ok(replace_or_push(
                &mut file.credentials,
                credential.clone(),
                same,
            ))
        })
    }

    /// Removes `name` (in `scope`, or in every scope); returns how many entries went.
    pub fn remove(&self, name: &str, scope: Option<&Scope>) -> Result<usize, RegistryError> {
        self.update(|file| {
            Ok(remove_where(&mut file.credentials, |c| {
                c.name == name && scope.is_none_or(|s| *s == c.scope)
            }))
        })
    }

    fn update<T>(
        &self,
        change: impl FnOnce(&mut RegistryFile) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(self.io())?;
        let _guard =
            crate::files::lock_exclusive(&self.path.with_extension("lock")).map_err(self.io())?;
        let mut file = self.read()?;
        let result = change(&mut file)?;
        let text = frona_policy::yaml::to_string(&file).map_err(|e| RegistryError::Parse {
            path: self.path.clone(),
            detail: e.to_string(),
        })?;
        let body =
            format!("# frona credential registry: references to secrets, never values.\n{text}");
        crate::files::replace(&self.path, body.as_bytes()).map_err(self.io())?;
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(name: &str, scope: Scope, path: &str) -> Credential {
        Credential {
            field: Some("value".into()),
            env: Some("STRIPE_API_KEY".into()),
            scope,
            ..Credential::new(name, BackendKind::Vault, path)
        }
    }

    fn registry(name: &str) -> (Registry, PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("frona-registry-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (Registry::new(dir.join("credentials.yaml")), dir)
    }

    #[test]
    fn register_list_replace_remove() {
        let (reg, dir) = registry("crud");
        assert!(
            !reg.register(cred("stripe-key", Scope::Global, "secret/data/stripe"))
                .unwrap()
        );
        assert!(
            reg.register(cred("stripe-key", Scope::Global, "secret/data/stripe2"))
                .unwrap()
        );
        assert!(
            !reg.register(cred(
                "stripe-key",
                Scope::Agent("ci".into()),
                "secret/data/ci"
            ))
            .unwrap()
        );
        let all = reg.list().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].path, "secret/data/stripe2");
        let text = std::fs::read_to_string(reg.path()).unwrap();
        assert!(text.contains("scope: agent:ci"), "{text}");
        assert_eq!(reg.remove("stripe-key", Some(&Scope::Global)).unwrap(), 1);
        assert_eq!(reg.remove("stripe-key", None).unwrap(), 1);
        assert!(reg.list().unwrap().is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// The parsed file is reused only while the file is unchanged: an edit by another process
    /// (or by hand) is seen by the next lookup of a long-lived registry (the broker's).
    #[test]
    fn a_changed_file_is_read_again() {
        let (reg, dir) = registry("cache");
        reg.register(cred("k", Scope::Global, "first")).unwrap();
        assert_eq!(reg.list().unwrap()[0].path, "first");
        assert_eq!(reg.list().unwrap()[0].path, "first");
        Registry::new(reg.path())
            .register(cred("k", Scope::Global, "second"))
            .unwrap();
        assert_eq!(reg.list().unwrap()[0].path, "second");
        let text = std::fs::read_to_string(reg.path()).unwrap();
        std::fs::write(reg.path(), text.replace("second", "third!")).unwrap();
        assert_eq!(
            reg.list().unwrap()[0].path,
            "third!",
            "an in-place edit too"
        );
        std::fs::remove_file(reg.path()).unwrap();
        assert!(reg.list().unwrap().is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn narrowest_scope_wins() {
        let (reg, dir) = registry("scopes");
        reg.register(cred("k", Scope::Global, "global")).unwrap();
        reg.register(cred("k", Scope::Project("/src".into()), "project"))
            .unwrap();
        reg.register(cred("k", Scope::Project("/src/app".into()), "nested"))
            .unwrap();
        reg.register(cred("k", Scope::Agent("bot".into()), "agent"))
            .unwrap();
        let at = |agent: Option<&str>, cwd: &str| {
            reg.resolve("k", agent, Path::new(cwd))
                .unwrap()
                .unwrap()
                .path
        };
        assert_eq!(at(Some("bot"), "/elsewhere"), "agent");
        assert_eq!(at(Some("other"), "/src/app/lib"), "nested");
        assert_eq!(at(None, "/src/tool"), "project");
        assert_eq!(at(None, "/home"), "global");
        assert_eq!(reg.resolve("missing", None, Path::new("/")).unwrap(), None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn validation_and_unknown_keys() {
        let (reg, dir) = registry("valid");
        assert!(reg.register(cred("bad name", Scope::Global, "p")).is_err());
        let mut c = cred("ok", Scope::Global, "p");
        c.env = Some("lower".into());
        assert!(reg.register(c).is_err());
        assert!("project:relative".parse::<Scope>().is_err());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            reg.path(),
            "credentials:\n- name: x\n  backend: vault\n  path: p\n  feild: typo\n",
        )
        .unwrap();
        assert!(matches!(reg.list(), Err(RegistryError::Parse { .. })));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bound_hosts() {
        let mut c = cred("gh", Scope::Global, "p");
        for good in [
            "api.github.com",
            "*.github.com",
            "localhost:8443",
            "10.0.0.1",
        ] {
            c.inject_hosts = vec![good.into()];
            assert!(c.validate().is_ok(), "{good}");
        }
        for bad in [
            "*",
            "*.com",
            "API.github.com",
            "a..b",
            "host:0",
            "host:x",
            "-a.b",
            "",
            "10.0.0.0/8",
        ] {
            c.inject_hosts = vec![bad.into()];
            assert!(c.validate().is_err(), "{bad}");
        }
        c.inject_hosts = Vec::new();
        c.inject_query = vec!["access_token".into()];
        assert!(c.validate().is_err(), "a query name without hosts");
        let bound_host_matches =
            |pattern: &str, host: &str, port| BoundHost::parse(pattern).unwrap().covers(host, port);
        assert!(bound_host_matches("api.github.com", "api.github.com", 443));
        assert!(!bound_host_matches(
            "api.github.com",
            "api.github.com",
            8443
        ));
        assert!(!bound_host_matches(
            "api.github.com",
            "evilapi.github.com",
            443
        ));
        assert!(bound_host_matches("*.github.com", "api.github.com", 443));
        assert!(!bound_host_matches("*.github.com", "github.com", 443));
        assert!(!bound_host_matches("*.github.com", "evilgithub.com", 443));
        assert!(bound_host_matches("localhost:8443", "localhost", 8443));
        assert!(bound_host_matches("10.0.0.1", "10.0.0.1", 443));
        assert!(bound_host_matches("api.github.com", "API.GitHub.com.", 443));
    }

    #[test]
    fn concurrent_registrations_lose_nothing() {
        let (reg, dir) = registry("concurrent");
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let reg = reg.clone();
                std::thread::spawn(move || {
                    for i in 0..5 {
                        reg.register(cred(&format!("c{t}-{i}"), Scope::Global, "p"))
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(reg.list().unwrap().len(), 40);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
