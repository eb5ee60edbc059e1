//! `frona run`'s AWS credentials for the agent's SDKs: which `aws-sts` credential the egress
//! proxy's container credentials endpoint serves (`--aws-credential NAME`, `run.aws_credential`,
//! or the one such credential visible to the agent), and the variables that point the SDKs at
//! it. The endpoint itself is `frona_broker::container_credentials`.

use std::ffi::OsString;
use std::path::Path;

use frona_backends::Secret;
use frona_backends::registry::{Credential, CredentialKind, Registry};
use frona_sandbox::EnvSnapshot;

use crate::env_vars::{
    AWS_CONTAINER_AUTHORIZATION_TOKEN, AWS_CONTAINER_CREDENTIALS_FULL_URI, AWS_CONTAINER_REMOVED,
};
use crate::failure::Failure;

/// Which credential to serve. `given` is `--aws-credential`; without it, the one `aws-sts`
/// credential this agent sees in `cwd`, if there is exactly one (and not under
/// `--no-broker`). Only under `--net proxy` (`proxy`): a credential given then is an error, one
/// found is left out, and said so unless `quiet`.
pub fn choose(
    env: &EnvSnapshot,
    agent: &str,
    given: Option<&str>,
    proxy: bool,
    no_broker: bool,
    quiet: bool,
) -> Result<Option<String>, Failure> {
    let registry = Registry::new(crate::dirs::registry_file(env));
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    if let Some(name) = given {
        if !proxy {
            return Err(Failure::new(
                125,
                format!(
                    "--aws-credential `{name}`: the AWS container credentials endpoint is part of the egress proxy"
                ),
            )
            .with_hint("use --net proxy"));
        }
        let found = registry
            .resolve(name, Some(agent), &cwd)
            .map_err(|e| Failure::from_error(&e))?;
        return match found {
            Some(c) if c.kind == CredentialKind::AwsSts => Ok(Some(name.to_owned())),
            Some(c) => Err(Failure::new(
                125,
                format!(
                    "--aws-credential `{name}` is a {} credential, not aws-sts",
                    c.kind
                ),
            )
            .with_hint(
                "register the role with `frona credential register --kind aws-sts --backend aws --path arn:aws:iam::ACCOUNT:role/NAME`",
            )),
            None => Err(Failure::new(
                125,
                format!("--aws-credential `{name}`: no such credential applies to agent `{agent}` here"),
            )
            .with_hint("`frona credential list` shows the names and their scopes")),
        };
    }
    if no_broker {
        return Ok(None);
    }
    let listed = match registry.list() {
        Ok(listed) => listed,
        Err(e) => {
            tracing::warn!("not looking for an aws-sts credential: {e}");
            return Ok(None);
        }
    };
    let found = visible_aws_sts(&listed, agent, &cwd);
    match found.as_slice() {
        [] => Ok(None),
        [name] if proxy => Ok(Some(name.clone())),
        [name] => {
            if !quiet {
                eprintln!(
                    "frona: the aws-sts credential `{name}` is served to AWS SDKs only under --net proxy; the agent gets no AWS credentials"
                );
            }
            Ok(None)
        }
        several => {
            if !quiet && proxy {
                eprintln!(
                    "frona: several aws-sts credentials apply ({}); choose one with --aws-credential NAME; the agent gets no AWS credentials",
                    several.join(", ")
                );
            }
            Ok(None)
        }
    }
}

/// The names whose registration for `agent` in `cwd` (narrowest scope) is of kind `aws-sts`.
fn visible_aws_sts(listed: &[Credential], agent: &str, cwd: &Path) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for credential in listed {
        if names.contains(&credential.name) {
            continue;
        }
        if Registry::narrowest(listed, &credential.name, Some(agent), cwd)
            .is_some_and(|c| c.kind == CredentialKind::AwsSts)
        {
            names.push(credential.name.clone());
        }
    }
    names
}

/// The endpoint serving `credential` on the broker's egress proxy, and the token for the agent.
pub fn endpoint(
    broker: &frona_broker::Broker,
    credential: Option<&str>,
) -> Result<Option<(frona_proxy::aws_endpoint::AwsEndpoint, Secret)>, Failure> {
    credential
        .map(|name| {
            frona_proxy::aws_endpoint::AwsEndpoint::new(broker.clone(), name)
                .map_err(|e| Failure::from_error(&e))
        })
        .transpose()
}

/// Points the agent's AWS SDKs at the endpoint on the egress proxy's `port`, and takes away
/// whatever would make them look elsewhere first (keys, profiles, other container or web
/// identity settings, other config files).
pub fn agent_env(agent_env: &mut Vec<(OsString, OsString)>, port: u16, token: &Secret) {
    use std::os::unix::ffi::OsStrExt as _;
    agent_env.retain(|(name, _)| !AWS_CONTAINER_REMOVED.iter().any(|var| name == var));
    let uri = format!("http://127.0.0.1:{port}{}", frona_proxy::aws_endpoint::PATH);
    crate::env_vars::set(agent_env, AWS_CONTAINER_CREDENTIALS_FULL_URI, uri);
    let token = std::ffi::OsStr::from_bytes(token.expose());
    crate::env_vars::set(agent_env, AWS_CONTAINER_AUTHORIZATION_TOKEN, token);
}

#[cfg(test)]
mod tests {
    use super::*;
    use frona_backends::BackendKind;
    use frona_backends::registry::Scope;

    fn cred(name: &str, scope: Scope, kind: CredentialKind) -> Credential {
        Credential {
            scope,
            kind,
            ..Credential::new(
                name,
                BackendKind::Aws,
                "arn:aws:iam::123456789012:role/agent",
            )
        }
    }

    #[test]
    fn only_the_narrowest_registration_counts() {
        let listed = vec![
            cred("aws", Scope::Global, CredentialKind::AwsSts),
            cred("ci", Scope::Agent("ci".into()), CredentialKind::AwsSts),
            cred("db", Scope::Global, CredentialKind::AwsSts),
            cred("db", Scope::Agent("dev".into()), CredentialKind::Static),
        ];
        let cwd = Path::new("/src");
        assert_eq!(visible_aws_sts(&listed, "default", cwd), ["aws", "db"]);
        assert_eq!(visible_aws_sts(&listed, "dev", cwd), ["aws"]);
        assert_eq!(visible_aws_sts(&listed, "ci", cwd), ["aws", "ci", "db"]);
    }

    #[test]
    fn the_sdks_find_the_endpoint_and_nothing_else() {
        let mut env: Vec<(OsString, OsString)> = [
            ("PATH", "/usr/bin"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_PROFILE", "prod"),
            ("AWS_ACCESS_KEY_ID", "AKIA"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_SESSION_TOKEN", "t"),
            ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/x"),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "old"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
        agent_env(&mut env, 3128, &Secret::from_string("tok".into()));
        let names: Vec<&str> = env.iter().map(|(k, _)| k.to_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "PATH",
                "AWS_REGION",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN"
            ]
        );
        assert_eq!(env[2].1, "http://127.0.0.1:3128/frona/aws-credentials");
        assert_eq!(env[3].1, "tok");
    }
}
