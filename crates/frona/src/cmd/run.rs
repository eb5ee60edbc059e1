//! `frona run`: scrub the environment, plan the isolation, then start and supervise the agent,
//! telling systemd how it goes when it runs as a `Type=notify` service.

use std::os::unix::ffi::OsStrExt as _;

use frona_sandbox::EnvSnapshot;
use frona_sandbox::environ::wipe_process_environ;
use frona_sandbox::isolation::persistence::{self, Placeholders};
use frona_sandbox::isolation::{Facts, IsolationMode, Skipped};
use frona_sandbox::scrub::{scrub, service_manager_var};
use frona_sandbox::supervise::{Events, InitConfig, Started, SuperviseError, supervise_init};

use crate::cli::RunArgs;
use crate::failure::Failure;
use crate::settings::Settings;
use crate::systemd::notify::Notifier;

pub fn run(args: RunArgs, settings: Settings, env: EnvSnapshot) -> Result<i32, Failure> {
    let run = &settings.run;
    let options = run.env.scrub_options(&run.isolation.allow_socket)?;
    let (report, mut agent_env) = scrub(&env, &options);
    // Everything stripped leaves frona's exposed environment block now; the snapshot (zeroized
    // on drop) is the only copy left. systemd's plumbing is no secret and stays: `sd-notify`
    // reads NOTIFY_SOCKET there.
    // SAFETY: `frona run` is still single-threaded here (no runtime, no helper thread has
    // started), so nothing reads the environment while it is overwritten.
    #[allow(unsafe_code)]
    unsafe {
        wipe_process_environ(
            report
                .stripped()
                .map(|(name, _)| name)
                .filter(|name| service_manager_var(name).is_none()),
        );
    }
    // frona's own directories are hidden wherever FRONA_CONFIG_DIR/FRONA_DATA_DIR put them, and
    // so are the credentials systemd loaded for frona's unit.
    let mut isolation = run.isolation.clone();
    isolation
        .hide
        .extend([crate::dirs::config_dir(&env), crate::dirs::data_dir(&env)]);
    isolation.hide.push(crate::dirs::state_dir(&env));
    // The system config file too, so that the agent cannot rewrite the next run's defaults.
    isolation.hide.push(crate::dirs::system_config_file(&env));
    isolation
        .hide
        .extend(crate::systemd::credentials::directory(&env));
    isolation
        .protect
        .extend(frona_protected(&env, Some(run.policy.clone())));
    let facts = Facts::gather(&env);
    let mut plan = isolation.plan(&facts)?;
    // The `aws-sts` credential the agent's AWS SDKs get, under `--net proxy` only.
    let aws_credential = crate::aws_credentials::choose(
        &env,
        &run.agent,
        run.aws_credential.as_deref(),
        plan.egress_listener.is_some(),
        args.no_broker,
        run.quiet,
    )?;
    if plan.egress_listener.is_none() && !run.quiet {
        note_unserved_bindings(&env, &run.agent);
    }
    // Signals are blocked before the broker's threads exist, so they all reach the supervisor.
    frona_sandbox::supervise::block_forwarded_signals().map_err(|e| failure(&e))?;
    // The broker serves calls when there are policies to apply: without any, every call would
    // be denied, and the agent simply gets no broker socket. Under `--net proxy` it runs for
    // the egress proxy in any case.
    let policy_dir = &run.policy;
    // Another session's placeholder for a missing policy directory does not count.
    let serve_calls =
        !args.no_broker && policy_dir.is_dir() && !persistence::is_placeholder(policy_dir);
    // Placeholders for missing protected paths exist from here (after every decision that
    // looks at frona's own directories) until the agent and the broker's tools are gone
    // (`release` below; dropped on every early return).
    let mut placeholders = prepare_persistence(&mut plan)?;
    // The user's ssh-agent, unless `--allow-socket` passes it through: frona's SSH agent relays
    // to it what `ssh:` rules permit.
    let ssh_upstream = env
        .get(crate::env_vars::SSH_AUTH_SOCK)
        .filter(|v| v.first() == Some(&b'/'))
        .map(|v| std::path::PathBuf::from(std::ffi::OsStr::from_bytes(v)))
        .filter(|_| {
            !agent_env
                .iter()
                .any(|(n, _)| n == crate::env_vars::SSH_AUTH_SOCK)
        });
    let broker = if !serve_calls && plan.egress_listener.is_none() {
        None
    } else {
        let mut tool_plan = plan.clone();
        tool_plan.namespaces.net = false;
        tool_plan.loopback = false;
        tool_plan.egress_listener = None;
        let broker = crate::broker::start(
            &env,
            &settings,
            &run.agent,
            policy_dir,
            agent_env.clone(),
            &tool_plan,
            crate::broker::Serve {
                calls: serve_calls,
                egress: plan
                    .egress_listener
                    .is_some()
                    .then_some(run.allow_host.as_slice()),
                resolve: &args.proxy_resolve,
                aws_credential: aws_credential.as_deref(),
                ssh_upstream,
            },
        )?;
        if let Some(socket) = &broker.ssh_agent {
            crate::env_vars::set(&mut agent_env, crate::env_vars::SSH_AUTH_SOCK, socket);
            if !run.quiet {
                eprintln!(
                    "frona: SSH_AUTH_SOCK is frona's SSH agent: the keys and signatures the `ssh:` rules permit"
                );
            }
        }
        if let (Some(socket), Some(proxy)) = (&broker.socket, &broker.proxy) {
            agent_env.push((
                crate::env_vars::FRONA_BROKER_SOCKET.into(),
                socket.clone().into(),
            ));
            agent_env.push((crate::env_vars::FRONA_PROXY.into(), proxy.clone().into()));
        }
        if let (Some(relay), Some(handoff)) =
            (plan.egress_listener.as_mut(), &broker.egress_handoff)
        {
            relay.socket.clone_from(handoff);
            for (name, value) in crate::env_vars::egress_proxy_env(relay.port) {
                crate::env_vars::set(&mut agent_env, name, value);
            }
            if let Some(token) = &broker.aws_token {
                crate::aws_credentials::agent_env(&mut agent_env, relay.port, token);
            }
            // Bound credentials: the agent holds placeholders, and trusts the session CA that
            // the egress proxy terminates their hosts' TLS with.
            for (var, placeholder) in &broker.placeholders {
                let value = std::ffi::OsStr::from_bytes(placeholder.expose());
                crate::env_vars::set(&mut agent_env, var, value);
            }
            if let Some(bundle) = &broker.ca_bundle {
                for var in crate::env_vars::CA_BUNDLE_VARS {
                    crate::env_vars::set(&mut agent_env, var, bundle);
                }
            }
            if broker.egress_rules == 0 && !run.quiet {
                eprintln!(
                    "frona: --net proxy: no host is allowed; give --allow-host or a `network:` entry in a policy"
                );
            }
        }
        Some(broker)
    };
    // `.env` files: a copy without values, placeholders where the agent holds them.
    let masked_copies = crate::dotenv::MaskedCopies::write(
        &env,
        &mut plan,
        broker
            .as_ref()
            .map_or(&[][..], |b| b.placeholders.as_slice()),
    )?;
    let mut notifier = args
        .command
        .first()
        .and_then(|program| Notifier::from_env(&env, program, broker.is_some()));
    drop(env);
    if !run.quiet {
        if let Some(line) = report.summary_line() {
            eprintln!("{line}");
        }
        for skipped in &plan.skipped {
            eprintln!(
                "frona: isolation: skipped {}: {}",
                skipped.feature, skipped.reason
            );
        }
        // Passing a socket that acts for the user is the user's call; say what it grants.
        for socket in &run.isolation.allow_socket {
            if let Some(what) = frona_sandbox::isolation::ambient::known_socket(
                socket,
                facts.runtime_dir.as_deref(),
            ) {
                eprintln!(
                    "frona: --allow-socket {}: the agent can use {what} as you",
                    socket.display()
                );
            }
        }
    }
    let config = InitConfig {
        parent: std::process::id() as i32,
        stop_timeout: run.stop_timeout,
        plan,
        command: args.command,
    };
    let mut events = RunEvents {
        agent_root: broker
            .as_ref()
            .map(|b| std::sync::Arc::clone(&b.agent_root)),
        notifier: notifier.as_mut(),
    };
    let status = supervise_init(
        &frona_sandbox::supervise::self_exe(),
        &agent_env,
        &config,
        &mut events,
    );
    if let Some(notifier) = &mut notifier {
        notifier.stopping(&match &status {
            Ok(code) => format!("agent exited with status {code}"),
            Err(e) => format!("frona failed: {e}"),
        });
    }
    drop(broker);
    drop(masked_copies);
    placeholders.release();
    status.map_err(|e| failure(&e))
}

/// Says which credentials bound to hosts the agent goes without: their placeholders exist only
/// under `--net proxy`, where the egress proxy can swap them.
fn note_unserved_bindings(env: &EnvSnapshot, agent: &str) {
    use frona_backends::registry::Registry;
    let registry = Registry::new(crate::dirs::registry_file(env));
    let Ok(listed) = registry.list() else {
        return;
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    for credential in Registry::bound(&listed, Some(agent), &cwd) {
        eprintln!(
            "frona: credential `{}` is bound to hosts; the agent gets its placeholder only under --net proxy",
            credential.name
        );
    }
}

/// Persistence protection for frona itself: the agent may not create or change frona's
/// configuration, data, state and policies (the next run's defaults and rules), wherever they
/// are, even where they do not exist yet.
pub fn frona_protected(
    env: &EnvSnapshot,
    policy: Option<std::path::PathBuf>,
) -> Vec<std::path::PathBuf> {
    vec![
        crate::dirs::config_dir(env),
        crate::dirs::data_dir(env),
        crate::dirs::state_dir(env),
        crate::dirs::system_config_file(env),
        policy.unwrap_or_else(|| crate::dirs::policy_dir(env)),
    ]
}

/// Decides the persistence mounts and makes the placeholders they need; under `best-effort` a
/// failure leaves persistence protection out (and says so) instead of refusing to start.
fn prepare_persistence(plan: &mut frona_sandbox::isolation::Plan) -> Result<Placeholders, Failure> {
    match persistence::prepare(plan) {
        Ok(placeholders) => Ok(placeholders),
        Err(err) if plan.mode == IsolationMode::BestEffort => {
            plan.persistence = None;
            plan.skipped.push(Skipped {
                feature: "persistence protection".into(),
                reason: frona_sandbox::error_chain(&err),
            });
            Ok(Placeholders::default())
        }
        Err(err) => Err(Failure::from_error(&err).with_hint(format!(
            "leave it out with --writable {}, or run with --isolation best-effort",
            err.path.display()
        ))),
    }
}

/// What the supervisor reports: the init helper's pid opens the broker to the agent's tree;
/// the agent's start and a stop request go to systemd.
struct RunEvents<'a> {
    agent_root: Option<std::sync::Arc<std::sync::atomic::AtomicI32>>,
    notifier: Option<&'a mut Notifier>,
}

impl Events for RunEvents<'_> {
    fn wants_started(&self) -> bool {
        self.notifier.is_some()
    }

    fn spawned(&mut self, pid: i32, started: Option<Started>) {
        if let Some(root) = &self.agent_root {
            root.store(pid, std::sync::atomic::Ordering::SeqCst);
        }
        if let (Some(notifier), Some(started)) = (self.notifier.as_deref_mut(), started) {
            notifier.spawned(pid, started);
        }
    }

    fn stopping(&mut self) {
        if let Some(notifier) = self.notifier.as_deref_mut() {
            notifier.stopping("SIGTERM received");
        }
    }
}

fn failure(err: &SuperviseError) -> Failure {
    let failure = Failure::from_error(err).with_code(err.exit_code());
    match err {
        SuperviseError::Isolation(e) => failure.with_hint(e.hint()),
        _ => failure,
    }
}
