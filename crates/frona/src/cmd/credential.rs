//! `frona credential`: the registry of credential names, and talking to their backends.
//! Nothing here prints a value: `test` shows a fingerprint (for a TOTP seed, only that a code
//! was generated), `health` latencies.

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use frona_backends::config::Backends;
use frona_backends::registry::{Credential, CredentialKind, Registry, RegistryError, Route, Scope};
use frona_backends::{BackendKind, Secret, SecretRef};
use frona_sandbox::EnvSnapshot;
use serde_json::json;

use crate::backends::BackendArgs;
use crate::cli::{CredentialCommand, RegisterArgs};
use crate::dirs;
use crate::failure::Failure;

/// Exit status when a probed backend is unhealthy or a fetch failed.
const UNHEALTHY: i32 = 1;

pub(super) fn registry(env: &EnvSnapshot) -> Registry {
    Registry::new(dirs::registry_file(env))
}

/// The backends, with the config files' `backends:` section read once.
fn backends(env: &EnvSnapshot, flags: &BackendArgs) -> Result<Backends, Failure> {
    let settings = crate::settings::load(env)?.resolve(&crate::settings::RunLayer::default())?;
    crate::backends::backends(env, &settings.backends, Some(flags))
}

fn cwd() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| "/".into())
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::from_error(&e))
}

pub fn credential(command: CredentialCommand, env: &EnvSnapshot) -> Result<i32, Failure> {
    let registry = registry(env);
    let err = |e: &dyn std::error::Error| Failure::from_error(e);
    match command {
        CredentialCommand::Register(args) => {
            let credential = credential_from(args)?;
            let replaced = registry.register(credential.clone()).map_err(|e| err(&e))?;
            eprintln!(
                "frona: {} `{}` ({} `{}`, scope {})",
                if replaced { "replaced" } else { "registered" },
                credential.name,
                credential.backend,
                credential.path,
                credential.scope
            );
            Ok(0)
        }
        CredentialCommand::List { json } => {
            let all = registry.list().map_err(|e| err(&e))?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&all).map_err(|e| err(&e))?
                );
            } else {
                println!("NAME\tBACKEND\tPATH\tFIELD\tENV\tSCOPE\tKIND\tROUTE\tBOUND HOSTS");
                for c in all {
                    let route = c.route.as_ref().map_or("-".to_owned(), |r| {
                        format!("{}={} ({})", r.name, r.upstream, r.inject)
                    });
                    let bound = if c.inject_hosts.is_empty() {
                        "-".to_owned()
                    } else {
                        c.inject_hosts.join(",")
                    };
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{route}\t{bound}",
                        c.name,
                        c.backend,
                        c.path,
                        c.field.as_deref().unwrap_or("-"),
                        c.env.as_deref().unwrap_or("-"),
                        c.scope,
                        c.kind
                    );
                }
            }
            Ok(0)
        }
        CredentialCommand::Remove { name, scope } => {
            let scope = scope.map(|s| parse_scope(&s)).transpose()?;
            match registry
                .remove(&name, scope.as_ref())
                .map_err(|e| err(&e))?
            {
                0 => Err(
                    Failure::new(UNHEALTHY, format!("no credential named `{name}`"))
                        .with_hint("`frona credential list` shows the names"),
                ),
                _ => Ok(0),
            }
        }
        CredentialCommand::Test {
            name,
            agent,
            json,
            backend,
        } => {
            let credential = resolve(&registry, &name, agent.as_deref())?;
            let mut backends = backends(env, &backend)?;
            let started = Instant::now();
            let fetched = runtime()?.block_on(async {
                let client = backends.client(credential.backend).await?;
                client.fetch(&SecretRef::from(&credential)).await
            });
            let latency = started.elapsed().as_millis();
            let value = fetched.map_err(|e| err(&e).with_code(UNHEALTHY))?;
            if credential.kind == CredentialKind::Totp {
                return test_totp(&name, &credential, &value, latency, json);
            }
            if json {
                println!(
                    "{}",
                    json!({"name": name, "backend": credential.backend, "ok": true, "fingerprint": value.fingerprint(), "bytes": value.len(), "latency_ms": latency})
                );
            } else {
                println!(
                    "{name}: ok ({}, {latency} ms), {} bytes, fingerprint {}",
                    credential.backend,
                    value.len(),
                    value.fingerprint()
                );
            }
            Ok(0)
        }
        CredentialCommand::Rotate {
            name,
            agent,
            backend,
        } => {
            let credential = resolve(&registry, &name, agent.as_deref())?;
            let mut backends = backends(env, &backend)?;
            let new_value = match credential.backend {
                // AWS rotates by itself; systemd credentials are read-only (an error, unprompted).
                BackendKind::Aws | BackendKind::SystemdCreds => None,
                _ => Some(crate::prompt::read_secret(&format!(
                    "new value for `{name}`"
                ))?),
            };
            let rotated = runtime()?.block_on(async {
                let client = backends.client(credential.backend).await?;
                client
                    .rotate(&SecretRef::from(&credential), new_value.as_ref())
                    .await
            });
            let rotated = rotated.map_err(|e| err(&e).with_code(UNHEALTHY))?;
            eprintln!(
                "frona: rotated `{name}` in {}{}",
                credential.backend,
                rotated
                    .version
                    .map(|v| format!(" (version {v})"))
                    .unwrap_or_default()
            );
            Ok(0)
        }
        CredentialCommand::Health { json, backend } => health(backends(env, &backend)?, json),
    }
}

fn health(mut backends: Backends, as_json: bool) -> Result<i32, Failure> {
    let runtime = runtime()?;
    let mut rows = Vec::new();
    for kind in backends.configured() {
        let started = Instant::now();
        let result = runtime.block_on(async { backends.client(kind).await?.health().await });
        rows.push((
            kind,
            started.elapsed().as_millis(),
            result.map_err(|e| frona_sandbox::error_chain(&e)),
        ));
    }
    let healthy = rows.iter().all(|(_, _, r)| r.is_ok());
    if as_json {
        let doc: Vec<_> = rows
            .iter()
            .map(|(kind, ms, r)| json!({"backend": kind, "healthy": r.is_ok(), "latency_ms": ms, "error": r.as_ref().err()}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(|e| Failure::from_error(&e))?
        );
    } else {
        for (kind, ms, result) in &rows {
            match result {
                Ok(()) => println!("{kind}\thealthy\t{ms} ms"),
                Err(e) => println!("{kind}\tUNHEALTHY\t{ms} ms\t{e}"),
            }
        }
    }
    Ok(if healthy { 0 } else { UNHEALTHY })
}

/// A TOTP credential passes when its seed yields a code; neither is printed.
fn test_totp(
    name: &str,
    credential: &Credential,
    seed: &Secret,
    latency: u128,
    json: bool,
) -> Result<i32, Failure> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| Failure::from_error(&e))?
        .as_secs();
    let digits = frona_backends::totp::code(seed, now)
        .map_err(|e| {
            Failure::new(
                UNHEALTHY,
                format!("`{name}`: {}", frona_sandbox::error_chain(&e)),
            )
            .with_hint(
                "a totp credential holds a base32 seed or an `otpauth://totp/…?secret=…` URI; \
                     `frona credential rotate` replaces it",
            )
        })?
        .len();
    if json {
        println!(
            "{}",
            json!({"name": name, "backend": credential.backend, "ok": true, "kind": "totp", "digits": digits, "latency_ms": latency})
        );
    } else {
        println!(
            "{name}: ok ({}, {latency} ms), totp: {} {digits}-digit code was generated",
            credential.backend,
            if digits == 8 { "an" } else { "a" }
        );
    }
    Ok(0)
}

fn resolve(registry: &Registry, name: &str, agent: Option<&str>) -> Result<Credential, Failure> {
    registry
        .resolve(name, agent, &cwd())
        .map_err(|e| Failure::from_error(&e))?
        .ok_or_else(|| {
            Failure::new(
                UNHEALTHY,
                format!("no credential named `{name}` applies here"),
            )
            .with_hint("`frona credential list` shows the names and their scopes")
        })
}

pub(super) fn parse_scope(text: &str) -> Result<Scope, Failure> {
    if text == "project" {
        return Ok(Scope::Project(cwd()));
    }
    text.parse()
        .map_err(|e: frona_backends::registry::RegistryError| Failure::from_error(&e))
}

fn credential_from(args: RegisterArgs) -> Result<Credential, Failure> {
    let backend: BackendKind = args
        .backend
        .parse()
        .map_err(|e: String| Failure::new(125, e))?;
    let kind = match args.kind.as_str() {
        "static" => CredentialKind::Static,
        "dynamic" => CredentialKind::Dynamic,
        "totp" => CredentialKind::Totp,
        "aws-sts" => CredentialKind::AwsSts,
        other => {
            return Err(Failure::new(125, format!("unknown kind `{other}`"))
                .with_hint("use static, dynamic, totp or aws-sts"));
        }
    };
    let credential = Credential {
        name: args.name,
        backend,
        path: args.path,
        field: args.field,
        version: args.secret_version,
        env: args.env,
        scope: parse_scope(&args.scope)?,
        kind,
        route: match (args.route, args.inject) {
            (Some(route), Some(inject)) => {
                let (name, upstream) = route.split_once('=').ok_or_else(|| {
                    Failure::new(125, format!("--route `{route}` is not NAME=URL"))
                        .with_hint("e.g. --route stripe=https://api.stripe.com --inject basic")
                })?;
                Some(Route {
                    name: name.into(),
                    upstream: upstream.trim_end_matches('/').into(),
                    inject: inject
                        .parse()
                        .map_err(|e: RegistryError| Failure::from_error(&e).with_code(125))?,
                })
            }
            _ => None,
        },
        inject_hosts: args.inject_host,
        inject_query: args.inject_query,
        inject_headers: args.inject_header,
    };
    credential
        .validate()
        .map_err(|e| Failure::from_error(&e).with_code(125))?;
    Ok(credential)
}
