//! Starting the broker for `frona run`: its policy, registry, backends, audit log and grants,
//! and the sockets the agent reaches it on: the broker's and the credential proxy's when there
//! are policies to serve calls with, the egress proxy's under `--net proxy`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use frona_backends::registry::Registry;
use frona_broker::audit::AuditLog;
use frona_broker::credentials::CredentialsConfig;
use frona_broker::grants::Grants;
use frona_broker::ssh_agent::{KnownHosts, SshAgent};
use frona_broker::tool_socket::{ToolLauncher, ToolSocket, Tools};
use frona_broker::{Broker, BrokerConfig};
use frona_policy::PolicySet;
use frona_proxy::egress::Egress;
use frona_proxy::intercept::Intercept;
use frona_sandbox::EnvSnapshot;

use crate::dirs;
use crate::failure::Failure;
use crate::settings::Settings;

/// A running broker: where its sockets are (removed on drop).
#[derive(Debug)]
pub struct RunningBroker {
    /// The broker's socket, when it serves calls.
    pub socket: Option<PathBuf>,
    /// The HTTP credential proxy's socket, when the broker serves calls.
    pub proxy: Option<PathBuf>,
    /// frona's SSH agent's socket, when the policies have `ssh:` rules and frona has an
    /// ssh-agent to relay to.
    pub ssh_agent: Option<PathBuf>,
    /// Where frona's init helper hands the agent's listening socket to the egress proxy, under
    /// `--net proxy`. (The proxy also listens on `egress.sock` beside it, for processes of the
    /// agent's tree that speak to it over a Unix socket.)
    pub egress_handoff: Option<PathBuf>,
    /// How many `network:` entries and `--allow-host` lists the egress proxy decides with.
    pub egress_rules: usize,
    /// The token of the AWS container credentials endpoint, when it is served.
    pub aws_token: Option<frona_backends::Secret>,
    /// The placeholders of credentials bound to hosts, `(variable, placeholder)`, under
    /// `--net proxy`.
    pub placeholders: Vec<(String, frona_backends::Secret)>,
    /// The CA bundle (system roots and the session CA) the agent trusts when there are any.
    pub ca_bundle: Option<PathBuf>,
    /// Set to the init helper's pid once it runs: only its descendants may call.
    pub agent_root: std::sync::Arc<std::sync::atomic::AtomicI32>,
    dir: PathBuf,
    control: PathBuf,
    broker: Broker,
    egress: Option<Arc<Egress>>,
}

impl Drop for RunningBroker {
    /// At the end of `frona run`: audit records still queued reach the log, the sockets go.
    fn drop(&mut self) {
        // A tunnel whose agent end has just closed (the agent is gone) records its byte counts
        // first; one that stays open longer than this goes unrecorded.
        if let Some(egress) = &self.egress {
            egress.tunnels().wait(std::time::Duration::from_secs(1));
        }
        self.broker.finish();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(&self.control);
    }
}

fn load_policy(dir: &Path) -> Result<PolicySet, Failure> {
    crate::policies::load(dir).map_err(|f| f.or_hint("`frona policy check` shows every problem"))
}

/// Builds the broker: policy, audit log, grants, backend clients. `frona run` serves it to the
/// agent; `frona call` uses it in-process.
pub fn build(
    env: &EnvSnapshot,
    settings: &Settings,
    agent: &str,
    policy_dir: &Path,
) -> Result<Built, Failure> {
    build_with(env, settings, agent, load_policy(policy_dir)?, true)
}

/// The broker, and where to record the agent's init helper's pid once it runs.
type Built = (Broker, Arc<std::sync::atomic::AtomicI32>);

/// [`build`] with the policy already loaded; without `with_backends` (a broker that serves
/// only the egress proxy) no backend client is made, and nothing is created for one.
fn build_with(
    env: &EnvSnapshot,
    settings: &Settings,
    agent: &str,
    policy: PolicySet,
    with_backends: bool,
) -> Result<Built, Failure> {
    let audit = AuditLog::open(&dirs::audit_log(env)).map_err(|e| {
        Failure::from_error(&e).with_hint(
            "`frona audit verify` shows the damage; move the log aside to start a new one",
        )
    })?;
    let grants = Grants::open(&dirs::grants_db(env)).map_err(|e| Failure::from_error(&e))?;
    let mut clients = HashMap::new();
    if with_backends {
        let mut backends = crate::backends::backends(env, &settings.backends, None)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::from_error(&e))?;
        for kind in backends.configured() {
            match runtime.block_on(backends.client(kind)) {
                Ok(client) => {
                    clients.insert(kind, client);
                }
                Err(e) => tracing::warn!("backend {kind} unavailable to the broker: {e}"),
            }
        }
    }
    let agent_root = Arc::new(std::sync::atomic::AtomicI32::new(0));
    let broker = Broker::new(BrokerConfig {
        agent: agent.to_owned(),
        session: format!(
            "{}-{}",
            std::process::id(),
            jiff::Timestamp::now().as_second()
        ),
        policy,
        credentials: CredentialsConfig {
            registry: Registry::new(dirs::registry_file(env)),
            backends: clients,
            cache_ttl: settings.run.cache_ttl,
            backend_timeout: crate::backends::backend_timeout(&settings.backends, None),
            cwd: std::env::current_dir().unwrap_or_else(|_| "/".into()),
        },
        audit,
        grants,
        agent_root: Arc::clone(&agent_root),
    })
    .map_err(|e| Failure::from_error(&e))?;
    Ok((broker, agent_root))
}

/// What the broker of a `frona run` serves.
#[derive(Debug)]
pub struct Serve<'a> {
    /// The broker's and the credential proxy's sockets (there are policies, no `--no-broker`).
    pub calls: bool,
    /// `--net proxy`: the egress proxy, with these `--allow-host` patterns.
    pub egress: Option<&'a [String]>,
    /// `--proxy-resolve HOST=ADDR`: names the egress proxy resolves without DNS.
    pub resolve: &'a [(String, Vec<std::net::IpAddr>)],
    /// Under `--net proxy`: the `aws-sts` credential served to the agent's AWS SDKs.
    pub aws_credential: Option<&'a str>,
    /// The user's ssh-agent, which frona's SSH agent relays permitted signatures to.
    pub ssh_upstream: Option<PathBuf>,
}

/// A Unix listener for the broker's async side.
fn async_listener(path: &Path) -> Result<std::os::unix::net::UnixListener, Failure> {
    let listener = std::os::unix::net::UnixListener::bind(path).map_err(|e| {
        Failure::from_error(&e).with_hint(format!(
            "cannot listen at `{}`; a Unix socket path has at most 107 bytes: set \
             XDG_RUNTIME_DIR to a shorter directory",
            path.display()
        ))
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Failure::from_error(&e))?;
    Ok(listener)
}

/// Builds and starts the broker on its own threads.
pub fn start(
    env: &EnvSnapshot,
    settings: &Settings,
    agent: &str,
    policy_dir: &Path,
    tool_env: Vec<(OsString, OsString)>,
    tool_plan: &frona_sandbox::isolation::Plan,
    serve: Serve<'_>,
) -> Result<RunningBroker, Failure> {
    // The egress proxy decides with the policies' `network:` entries even when the broker
    // serves no calls; without a policy directory it has `--allow-host` alone.
    let mut policy = if policy_dir.is_dir() {
        load_policy(policy_dir)?
    } else {
        PolicySet::default()
    };
    if let Some(patterns) = serve.egress {
        let patterns = patterns
            .iter()
            .map(|p| frona_policy::network::HostPattern::parse(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Failure::new(125, format!("--allow-host: {e}")))?;
        policy.allow_hosts("--allow-host", patterns);
    }
    let egress_rules = policy.network_len();
    let serves_ssh = serve.calls && policy.has_ssh_rules();
    let (broker, agent_root) = build_with(
        env,
        settings,
        agent,
        policy,
        serve.calls || serve.aws_credential.is_some(),
    )?;
    let dir = crate::dirs::session_dir(env, "session")?;
    let (mut socket, mut proxy, mut egress_handoff) = (None, None, None);
    let (mut placeholders, mut ca_bundle, mut aws_token) = (Vec::new(), None, None);
    let mut tool_socket = None;
    let mut ssh_agent = None;
    if let (true, Some(upstream)) = (serves_ssh, serve.ssh_upstream) {
        let path = dir.join("ssh-agent.sock");
        let listener =
            std::os::unix::net::UnixListener::bind(&path).map_err(|e| Failure::from_error(&e))?;
        let known_hosts = KnownHosts::openssh_defaults(Some(dirs::home(env)));
        let server = SshAgent::new(broker.clone(), upstream, known_hosts);
        std::thread::Builder::new()
            .name("frona-ssh".into())
            .spawn(move || server.serve(listener))
            .map_err(|e| Failure::from_error(&e))?;
        ssh_agent = Some(path);
    }
    if serve.calls {
        let path = dir.join("broker.sock");
        let listener =
            std::os::unix::net::UnixListener::bind(&path).map_err(|e| Failure::from_error(&e))?;
        socket = Some(path);
        // Tools get the agent's isolation, with the host network (they call APIs), and die
        // with frona like the agent does.
        let tools = Tools {
            env: tool_env,
            launcher: Some(ToolLauncher::new(
                frona_sandbox::supervise::self_exe(),
                std::process::id() as i32,
                tool_plan.clone(),
            )),
        };
        tool_socket = Some((ToolSocket::new(broker.clone(), tools), listener));
        let path = dir.join("proxy.sock");
        let proxy_listener = async_listener(&path)?;
        proxy = Some(path);
        let credential_proxy = frona_proxy::credential_proxy::CredentialProxy::new(broker.clone());
        let serving = broker.runtime().block_on(async move {
            let listener = tokio::net::UnixListener::from_std(proxy_listener)?;
            tokio::spawn(frona_proxy::credential_proxy::serve(
                credential_proxy,
                listener,
            ));
            Ok::<_, std::io::Error>(())
        });
        serving.map_err(|e| Failure::from_error(&e))?;
    }
    let mut egress = None;
    if serve.egress.is_some() {
        let resolver = Arc::new(frona_proxy::egress::StaticOverrides::new(
            serve.resolve.to_vec(),
        ));
        let mut built = Egress::new(broker.clone(), resolver);
        let intercept = Intercept::bind(&broker).map_err(|e| {
            Failure::from_error(&e).with_hint(
                "credentials bound with --inject-host need the system's CA certificates: install \
                 them (Debian: ca-certificates) or point SSL_CERT_FILE at a bundle",
            )
        })?;
        if let Some(intercept) = intercept {
            placeholders = intercept.placeholders();
            let path = dir.join("ca-bundle.pem");
            std::fs::write(&path, intercept.tls.bundle_pem()).map_err(|e| {
                Failure::from_error(&e).with_hint(format!("cannot write `{}`", path.display()))
            })?;
            ca_bundle = Some(path);
            built = built.with_intercept(Arc::new(intercept));
        }
        // On the egress proxy's listener only (it answers origin-form requests for it).
        if let Some((endpoint, token)) =
            crate::aws_credentials::endpoint(&broker, serve.aws_credential)?
        {
            aws_token = Some(token);
            built = built.with_aws(Arc::new(endpoint));
        }
        let built = Arc::new(built);
        let path = dir.join("egress.sock");
        let egress_listener = async_listener(&path)?;
        let path = dir.join("listen.sock");
        let handoff_listener = async_listener(&path)?;
        egress_handoff = Some(path);
        let serving = broker.runtime().block_on({
            let egress = Arc::clone(&built);
            async move {
                let listener = tokio::net::UnixListener::from_std(egress_listener)?;
                let handoff = tokio::net::UnixListener::from_std(handoff_listener)?;
                tokio::spawn(frona_proxy::egress::serve_handed_over(
                    Arc::clone(&egress),
                    handoff,
                ));
                tokio::spawn(frona_proxy::egress::serve(egress, listener));
                Ok::<_, std::io::Error>(())
            }
        });
        serving.map_err(|e| Failure::from_error(&e))?;
        egress = Some(built);
    }
    let control_dir = dirs::control_dir(env);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&control_dir)
        .map_err(|e| Failure::from_error(&e))?;
    let control = control_dir.join(format!("{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&control);
    let control_listener =
        std::os::unix::net::UnixListener::bind(&control).map_err(|e| Failure::from_error(&e))?;
    let decider = Arc::clone(&broker.decider);
    std::thread::Builder::new()
        .name("frona-control".into())
        .spawn(move || frona_broker::control::serve(decider, control_listener))
        .map_err(|e| Failure::from_error(&e))?;
    if let Some((server, listener)) = tool_socket {
        std::thread::Builder::new()
            .name("frona-broker".into())
            .spawn(move || server.serve(listener))
            .map_err(|e| Failure::from_error(&e))?;
    }
    Ok(RunningBroker {
        agent_root,
        socket,
        proxy,
        ssh_agent,
        egress_handoff,
        egress_rules,
        aws_token,
        placeholders,
        ca_bundle,
        dir,
        control,
        broker,
        egress,
    })
}
