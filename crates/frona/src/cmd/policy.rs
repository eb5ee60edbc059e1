//! `frona policy check|test|explain`: the policy directory, read and compiled as the broker
//! will read it (`*.yaml` directly in the directory, in file-name order).

use std::path::{Path, PathBuf};

use std::net::IpAddr;

use frona_policy::network::{Connect, EgressDecision, EgressRequest, HostPattern, Target};
use frona_policy::{PolicySet, Request};
use frona_proxy::egress::Resolve as _;
use frona_sandbox::EnvSnapshot;
use serde_json::{Value, json};

use crate::cli::PolicyCommand;
use crate::failure::Failure;
use crate::settings::{Origin, RunLayer};

/// Exit status when a policy test fails.
const TESTS_FAILED: i32 = 1;

/// `given`, else the config's `run.policy`, else `$XDG_CONFIG_HOME/frona/policies`. The
/// config is read (and checked) either way.
fn policy_dir(given: Option<PathBuf>, env: &EnvSnapshot) -> Result<PathBuf, Failure> {
    let settings = crate::settings::load(env)?.resolve(&RunLayer::default())?;
    Ok(given.unwrap_or(settings.run.policy))
}

pub fn policy(command: PolicyCommand, env: &EnvSnapshot) -> Result<i32, Failure> {
    let to_json = |v: serde_json::Value| {
        serde_json::to_string_pretty(&v).map_err(|e| Failure::from_error(&e))
    };
    match command {
        PolicyCommand::Check { dir, json } => {
            let dir = policy_dir(dir, env)?;
            let set = crate::policies::load(&dir)?;
            let network = set.network_len();
            if json {
                println!(
                    "{}",
                    to_json(
                        json!({"dir": dir, "rules": set.len(), "network": network, "valid": true})
                    )?
                );
            } else if network > 0 {
                println!(
                    "{}: {} rules, {network} network entries, valid",
                    dir.display(),
                    set.len()
                );
            } else {
                println!("{}: {} rules, valid", dir.display(), set.len());
            }
            Ok(0)
        }
        PolicyCommand::Test { file, policy, json } => {
            let set = crate::policies::load(&policy_dir(policy, env)?)?;
            let text = std::fs::read_to_string(&file).map_err(|e| Failure::from_error(&e))?;
            let results =
                frona_policy::testing::run_cases(&set, &file.display().to_string(), &text)
                    .map_err(|e| {
                        Failure::new(frona_sandbox::supervise::EXIT_FRONA_ERROR, e.to_string())
                    })?;
            let failed = results.iter().filter(|r| !r.passed).count();
            if json {
                println!(
                    "{}",
                    to_json(
                        json!({"passed": results.len() - failed, "failed": failed, "cases": results})
                    )?
                );
            } else {
                for result in &results {
                    match &result.failure {
                        None => println!("ok    {}", result.name),
                        Some(why) => println!("FAIL  {}: {why}", result.name),
                    }
                }
                println!("{} passed, {failed} failed", results.len() - failed);
            }
            Ok(if failed == 0 { 0 } else { TESTS_FAILED })
        }
        PolicyCommand::Explain {
            tool,
            mcp,
            http,
            connect,
            allow_host,
            proxy_resolve,
            no_resolve,
            args,
            credentials,
            agent,
            at,
            policy,
            json,
        } => {
            let time = match at {
                Some(text) => text.parse().map_err(|e| {
                    Failure::new(125, format!("`{text}` is not an RFC 3339 time: {e}"))
                        .with_hint("e.g. --at 2025-06-02T10:00:00+02:00")
                })?,
                None => jiff::Timestamp::now(),
            };
            if let Some(target) = connect {
                let loaded = crate::settings::load(env)?;
                let settings = loaded.resolve(&RunLayer::default())?;
                let dir = policy.unwrap_or_else(|| settings.run.policy.clone());
                let configured = (settings.run.allow_host, loaded.origin("run.allow_host"));
                return explain_connect(
                    &dir,
                    configured,
                    ConnectArgs {
                        target,
                        allow_host,
                        proxy_resolve,
                        no_resolve,
                        agent,
                        time,
                        json,
                    },
                );
            }
            let set = crate::policies::load(&policy_dir(policy, env)?)?;
            let request = match (tool, http.as_deref()) {
                _ if mcp.is_some() => {
                    let parts = mcp.unwrap_or_default();
                    let [server, name, rest @ ..] = parts.as_slice() else {
                        return Err(Failure::new(125, "--mcp takes SERVER TOOL [ARGUMENTS]"));
                    };
                    let (server, name) = (server.clone(), name.clone());
                    let arguments = match rest.first() {
                        None => serde_json::Map::new(),
                        Some(text) => serde_json::from_str(text).map_err(|e| {
                            Failure::new(
                                125,
                                format!("the MCP arguments are not a JSON object: {e}"),
                            )
                            .with_hint(r#"e.g. '{"owner":"acme","repo":"app"}'"#)
                        })?,
                    };
                    let mut call = frona_broker::Call::new(
                        None,
                        frona_broker::Action::Mcp(frona_policy::McpCall {
                            server,
                            tool: name,
                            arguments,
                        }),
                        Vec::new(),
                    );
                    call.time = time;
                    call.request(agent)
                }
                (_, Some([method, url])) => {
                    let [credential] = <[String; 1]>::try_from(credentials).map_err(|_| {
                        Failure::new(125, "a proxied call carries one `--credential`")
                    })?;
                    let mut call =
                        frona_proxy::credential_proxy::call_for_url(method, url, credential)
                            .map_err(|e| Failure::from_error(&e))?;
                    call.time = time;
                    call.request(agent)
                }
                (Some(tool), _) => Request {
                    tool,
                    args,
                    credentials,
                    agent,
                    time,
                    sha256: None,
                    http: None,
                    ssh: None,
                    mcp: None,
                },
                _ => return Err(Failure::new(125, "give `--tool` or `--http METHOD URL`")),
            };
            let (decision, steps) = set.explain(&request);
            if json {
                println!(
                    "{}",
                    to_json(json!({"decision": decision, "steps": steps}))?
                );
            } else {
                for step in &steps {
                    match &step.skipped {
                        Some(why) => println!("  skip  {} ({}): {why}", step.rule, step.file),
                        None => println!("  match {} ({})", step.rule, step.file),
                    }
                }
                println!(
                    "{:?} by {}: {}",
                    decision.effect,
                    decision
                        .rule
                        .as_deref()
                        .map_or("default".to_owned(), |r| format!("`{r}`")),
                    decision.reason
                );
            }
            Ok(0)
        }
    }
}

/// `frona policy explain --connect`'s options.
struct ConnectArgs {
    target: String,
    allow_host: Vec<String>,
    proxy_resolve: Vec<(String, Vec<IpAddr>)>,
    no_resolve: bool,
    agent: String,
    time: jiff::Timestamp,
    json: bool,
}

/// The config's `run.allow_host` and where it came from.
type Configured = (Vec<String>, Option<Origin>);

/// The egress proxy's rules as `frona run --net proxy` builds them: the policies' `network:`
/// entries (none without a policy directory), then `--allow-host`, else the config's
/// `run.allow_host`. Returns the set, the patterns and where they came from.
fn egress_rules(
    dir: &Path,
    configured: Configured,
    flags: Vec<String>,
) -> Result<(PolicySet, Vec<String>, Option<Origin>), Failure> {
    let mut set = if dir.is_dir() {
        crate::policies::load(dir)?
    } else {
        PolicySet::default()
    };
    let (patterns, origin) = if flags.is_empty() {
        configured
    } else {
        (flags, Some(Origin::Flag("--allow-host")))
    };
    let parsed = patterns
        .iter()
        .map(|p| HostPattern::parse(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::new(125, format!("--allow-host: {e}")))?;
    set.allow_hosts("--allow-host", parsed);
    let origin = if patterns.is_empty() { None } else { origin };
    Ok((set, patterns, origin))
}

/// Resolves `name` as the egress proxy does: `--proxy-resolve` first, else the system
/// resolver, within the proxy's time limit; no address at all is a failure (the inner error).
fn resolve(
    name: &str,
    port: u16,
    overrides: Vec<(String, Vec<IpAddr>)>,
) -> Result<Result<Vec<IpAddr>, String>, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::from_error(&e))?;
    let resolver = frona_proxy::egress::StaticOverrides::new(overrides);
    let timeout = frona_proxy::egress::RESOLVE_TIMEOUT;
    Ok(runtime.block_on(async {
        match tokio::time::timeout(timeout, resolver.resolve(name, port)).await {
            Ok(Ok(found)) if !found.is_empty() => Ok(found),
            Ok(Ok(_)) => Err("no address".to_owned()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {}s", timeout.as_secs())),
        }
    }))
}

/// `frona policy explain --connect`: the egress proxy's decision for one request, with the
/// same functions: the host and port ([`PolicySet::egress`]), then every address the name
/// resolves to (or the address named) ([`PolicySet::egress_address`]).
fn explain_connect(dir: &Path, configured: Configured, args: ConnectArgs) -> Result<i32, Failure> {
    let connect = Connect::parse(&args.target).map_err(|e| {
        Failure::new(125, format!("--connect: {e}")).with_hint(
            "e.g. --connect api.github.com, --connect github.com:22, --connect \
             http://pypi.org/simple/",
        )
    })?;
    let (set, patterns, origin) = egress_rules(dir, configured, args.allow_host)?;
    let request = EgressRequest {
        target: connect.target.clone(),
        port: connect.port,
        agent: args.agent,
        time: args.time,
    };
    let host = set.egress(&request);
    // As the proxy: nothing is resolved for a refused host; an address named is checked as is.
    let addresses: Option<Result<Vec<IpAddr>, String>> = match &connect.target {
        _ if !host.allowed => None,
        Target::Ip(ip) => Some(Ok(vec![*ip])),
        Target::Name(_) if args.no_resolve => None,
        Target::Name(name) => Some(resolve(name, connect.port, args.proxy_resolve)?),
    };
    let checked: Option<Vec<(IpAddr, Option<EgressDecision>)>> = match &addresses {
        Some(Ok(ips)) => Some(
            ips.iter()
                .map(|ip| (*ip, set.egress_address(&request, *ip)))
                .collect(),
        ),
        _ => None,
    };
    // The proxy's answer: the host's refusal, a failed lookup, or the first address refusal
    // when no address passed.
    let (effect, rule, reason) = match (&addresses, &checked) {
        _ if !host.allowed => ("deny", host.rule.clone(), host.reason.clone()),
        (Some(Err(e)), _) => (
            "error",
            host.rule.clone(),
            format!("cannot resolve `{}`: {e}", connect.target),
        ),
        (_, Some(list)) if list.iter().all(|(_, refused)| refused.is_some()) => {
            match list.iter().find_map(|(_, refused)| refused.clone()) {
                Some(refused) => ("deny", refused.rule, refused.reason),
                None => ("deny", None, "no address".to_owned()),
            }
        }
        _ => ("permit", host.rule.clone(), host.reason.clone()),
    };
    let address_json = |(ip, refused): &(IpAddr, Option<EgressDecision>)| {
        json!({
            "address": ip.to_string(),
            "class": frona_policy::network::classify(*ip),
            "allowed": refused.is_none(),
            "rule": refused.as_ref().and_then(|r| r.rule.clone()),
            "reason": refused.as_ref().map(|r| r.reason.clone()),
        })
    };
    if args.json {
        let mut doc = json!({
            "connect": {
                "host": connect.target.to_string(),
                "port": connect.port,
                "plain_http": connect.path.is_some(),
                "path": connect.path,
            },
            "agent": request.agent,
            "time": request.time.to_string(),
            "allow_host": patterns,
            "allow_host_source": origin.as_ref().map(Origin::source),
            "host_decision": host,
            "addresses": checked.as_ref().map(|list| list.iter().map(address_json).collect::<Vec<_>>()),
            "decision": {"effect": effect, "rule": rule, "reason": reason},
        });
        if let Some(Err(e)) = &addresses {
            doc["resolve_error"] = Value::String(e.clone());
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(|e| Failure::from_error(&e))?
        );
        return Ok(0);
    }
    let with = match &origin {
        Some(origin) => format!(", with --allow-host {} (from {origin})", patterns.join(" ")),
        None => String::new(),
    };
    println!("{connect}, agent `{}`{with}", request.agent);
    if host.allowed {
        println!(
            "  host    allowed by `{}`: {}",
            host.rule.as_deref().unwrap_or_default(),
            host.reason
        );
        match (&addresses, &checked) {
            (Some(Err(e)), _) => println!("  cannot resolve `{}`: {e}", connect.target),
            (_, Some(list)) => {
                for (ip, refused) in list {
                    let class = frona_policy::network::classify(*ip).describe();
                    match refused {
                        None => println!("  address {ip} ({class}): allowed"),
                        Some(why) => println!(
                            "  address {ip} ({class}): refused{}: {}",
                            why.rule
                                .as_ref()
                                .map(|r| format!(" by `{r}`"))
                                .unwrap_or_default(),
                            why.reason
                        ),
                    }
                }
            }
            _ => println!(
                "  addresses not checked (--no-resolve): a loopback, private or metadata address \
                 is still refused unless an address pattern allows it"
            ),
        }
    }
    let word = match effect {
        "permit" => "Permit",
        "deny" => "Deny",
        _ => "Error",
    };
    match &rule {
        Some(_) if effect == "error" => println!("{word}: {reason}"),
        Some(r) => println!("{word} by `{r}`: {reason}"),
        None if effect == "deny" => println!("{word}, not allowed: {reason}"),
        None => println!("{word}: {reason}"),
    }
    Ok(0)
}
