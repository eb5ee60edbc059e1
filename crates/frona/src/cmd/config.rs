//! `frona config show`: every setting in effect, its value and where it came from. Secrets
//! never appear: the config holds only paths of files with secrets, and a value that is (or
//! looks like) a credential prints as `<set>`.

use frona_sandbox::EnvSnapshot;
use serde_json::{Value, json};

use crate::cli::ConfigShowArgs;
use crate::config::{Given, Origin, Setting, overlay};
use crate::failure::Failure;

/// What a secret-bearing value prints as.
const SET: &str = "<set>";

/// Identifiers that are credentials in all but name.
const SENSITIVE: &[&str] = &["backends.vault.role_id", "backends.infisical.client_id"];

/// The backends' own variables, which win over the config file (as `crate::backends` reads
/// them; the first set one counts); `true` when the variable holds the secret itself rather
/// than the setting.
const BACKEND_ENV: &[(&str, &[&str], bool)] = &[
    ("backends.vault.addr", &["VAULT_ADDR"], false),
    ("backends.vault.token_file", &["VAULT_TOKEN"], true),
    ("backends.vault.role_id", &["VAULT_ROLE_ID"], true),
    ("backends.vault.secret_id_file", &["VAULT_SECRET_ID"], true),
    ("backends.vault.namespace", &["VAULT_NAMESPACE"], false),
    (
        "backends.aws.region",
        &["AWS_REGION", "AWS_DEFAULT_REGION"],
        false,
    ),
    ("backends.aws.endpoint_url", &["AWS_ENDPOINT_URL"], false),
    ("backends.gcp.project", &["GOOGLE_CLOUD_PROJECT"], false),
    (
        "backends.gcp.endpoint",
        &["FRONA_CREDENTIAL_GCP_ENDPOINT"],
        false,
    ),
    ("backends.azure.vault_url", &["AZURE_KEYVAULT_URL"], false),
    (
        "backends.onepassword.host",
        &["FRONA_CREDENTIAL_1PASSWORD_HOST", "OP_CONNECT_HOST"],
        false,
    ),
    (
        "backends.onepassword.token_file",
        &["FRONA_CREDENTIAL_1PASSWORD_TOKEN", "OP_CONNECT_TOKEN"],
        true,
    ),
    (
        "backends.infisical.host",
        &["FRONA_CREDENTIAL_INFISICAL_HOST"],
        false,
    ),
    (
        "backends.infisical.client_id",
        &["FRONA_CREDENTIAL_INFISICAL_CLIENT_ID"],
        true,
    ),
    (
        "backends.infisical.client_secret_file",
        &["FRONA_CREDENTIAL_INFISICAL_CLIENT_SECRET"],
        true,
    ),
    (
        "backends.infisical.project_id",
        &["FRONA_CREDENTIAL_INFISICAL_PROJECT_ID"],
        false,
    ),
    (
        "backends.infisical.environment",
        &["FRONA_CREDENTIAL_INFISICAL_ENVIRONMENT"],
        false,
    ),
];

pub fn show(args: &ConfigShowArgs, given: Given<'_>, env: &EnvSnapshot) -> Result<i32, Failure> {
    let config = crate::config::load(env)?;
    let mut settings = config.settings.clone();
    for (key, vars, secret) in BACKEND_ENV {
        let set = vars
            .iter()
            .find_map(|v| env.get(v).filter(|x| !x.is_empty()).map(|x| (*v, x)));
        if let Some((var, value)) = set {
            let value = if *secret {
                Value::String(SET.into())
            } else {
                Value::String(String::from_utf8_lossy(value).into_owned())
            };
            overlay(&mut settings, key, value, Origin::Env(var));
        }
    }
    for (key, flag, value) in flags(args, given)? {
        overlay(&mut settings, key, value, Origin::Flag(flag));
    }
    settings.sort_by(|a, b| a.key.cmp(&b.key));
    for setting in &mut settings {
        setting.value = redact(&setting.key, &setting.value);
    }
    if args.json {
        let doc = json!({
            "files": config.files.iter().map(|f| json!({
                "layer": f.layer.name(),
                "path": f.path,
                "found": f.found,
            })).collect::<Vec<_>>(),
            "settings": settings.iter().map(setting_json).collect::<Vec<_>>(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(|e| Failure::from_error(&e))?
        );
        return Ok(0);
    }
    println!("FILE     PATH");
    for file in &config.files {
        println!(
            "{:<8} {}{}",
            file.layer.name(),
            file.path.display(),
            if file.found { "" } else { " (not found)" }
        );
    }
    println!();
    let rows: Vec<(String, String, String)> = settings
        .iter()
        .map(|s| (s.key.clone(), text(&s.value), s.origin.to_string()))
        .collect();
    let key_width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(3);
    let value_width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(5);
    println!("{:<key_width$}  {:<value_width$}  SOURCE", "KEY", "VALUE");
    for (key, value, origin) in rows {
        println!("{key:<key_width$}  {value:<value_width$}  {origin}");
    }
    Ok(0)
}

/// The flags of `frona run` given to `config show`, as config values.
fn flags(
    args: &ConfigShowArgs,
    given: Given<'_>,
) -> Result<Vec<(&'static str, &'static str, Value)>, Failure> {
    let paths = |list: &[std::path::PathBuf]| {
        Value::from(
            list.iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect::<Vec<_>>(),
        )
    };
    let mut out = Vec::new();
    let candidates: Vec<(&str, &str, &str, Value)> = vec![
        (
            "isolation",
            "run.isolation",
            "--isolation",
            to_json(&args.settings.isolation.isolation)?,
        ),
        (
            "net",
            "run.net",
            "--net",
            to_json(&args.settings.isolation.net)?,
        ),
        (
            "env_mode",
            "run.env_mode",
            "--env-mode",
            to_json(&args.settings.env.env_mode)?,
        ),
        (
            "stop_timeout",
            "run.stop_timeout",
            "--stop-timeout",
            Value::String(crate::config_file::Timeout(args.settings.stop_timeout).into()),
        ),
        (
            "quiet",
            "run.quiet",
            "--quiet",
            Value::Bool(args.settings.quiet),
        ),
        (
            "agent",
            "run.agent",
            "--agent",
            Value::from(args.settings.agent.clone()),
        ),
        (
            "policy",
            "run.policy",
            "--policy",
            args.settings
                .policy
                .as_ref()
                .map_or(Value::Null, |p| p.to_string_lossy().into_owned().into()),
        ),
        (
            "allow_host",
            "run.allow_host",
            "--allow-host",
            Value::from(args.settings.allow_host.clone()),
        ),
        (
            "keep",
            "run.keep",
            "--keep",
            Value::from(
                args.settings
                    .env
                    .keep
                    .iter()
                    .map(|k| k.to_string_lossy().into_owned())
                    .collect::<Vec<_>>(),
            ),
        ),
        (
            "strip",
            "run.strip",
            "--strip",
            Value::from(args.settings.env.strip.clone()),
        ),
        (
            "hide",
            "run.hide",
            "--hide",
            paths(&args.settings.isolation.hide),
        ),
        (
            "unhide",
            "run.unhide",
            "--unhide",
            paths(&args.settings.isolation.unhide),
        ),
        (
            "fs_write",
            "run.fs_write",
            "--fs-write",
            paths(&args.settings.isolation.fs_write),
        ),
        (
            "protect",
            "run.protect",
            "--protect",
            paths(&args.settings.isolation.protect),
        ),
        (
            "writable",
            "run.writable",
            "--writable",
            paths(&args.settings.isolation.writable),
        ),
    ];
    for (id, key, flag, value) in candidates {
        if given.has(id) {
            out.push((key, flag, value));
        }
    }
    Ok(out)
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Value, Failure> {
    serde_json::to_value(value).map_err(|e| Failure::from_error(&e))
}

/// `<set>` for a sensitive key, or any string that looks like a credential.
fn redact(key: &str, value: &Value) -> Value {
    let looks_secret =
        |s: &str| frona_sandbox::scrub::detect_credential_value(s.as_bytes()).is_some();
    match value {
        _ if SENSITIVE.contains(&key) => Value::String(SET.into()),
        Value::String(s) if looks_secret(s) => Value::String(SET.into()),
        Value::Array(items) => Value::Array(items.iter().map(|v| redact(key, v)).collect()),
        other => other.clone(),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(text).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

fn setting_json(setting: &Setting) -> Value {
    let mut doc = json!({
        "key": setting.key,
        "value": setting.value,
        "source": setting.origin.source(),
    });
    match &setting.origin {
        Origin::File(_, path) => doc["path"] = json!(path),
        Origin::Env(name) => doc["env"] = json!(name),
        Origin::Flag(flag) => doc["flag"] = json!(flag),
        Origin::Default => {}
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_print_as_set() {
        assert_eq!(redact("backends.vault.role_id", &json!("role")), json!(SET));
        assert_eq!(
            redact(
                "backends.vault.addr",
                &json!("https://u:Sup3rS3cretPw@vault:8200")
            ),
            json!(SET)
        );
        assert_eq!(
            redact(
                "run.keep",
                &json!(["EDITOR", "ghp_R4nd0mL00k1ngT0k3nV4lu3F0rT3st1ng00"])
            ),
            json!(["EDITOR", SET])
        );
        assert_eq!(
            redact("backends.vault.addr", &json!("https://vault:8200")),
            json!("https://vault:8200")
        );
    }
}
