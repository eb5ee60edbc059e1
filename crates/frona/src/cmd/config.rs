//! `frona config show`: every setting in effect, its value and where it came from. Secrets
//! never appear: the config holds only paths of files with secrets, and a value that is (or
//! looks like) a credential prints as `<set>`.

use frona_sandbox::EnvSnapshot;
use serde_json::{Value, json};

use crate::backends::BACKENDS;
use crate::cli::ConfigShowArgs;
use crate::failure::Failure;
use crate::settings::{Entry, Origin, overlay};

/// What a secret-bearing value prints as.
const SET: &str = "<set>";

/// Whether `backends.NAME.KEY` is a credential in all but name (its descriptor says so).
fn sensitive(key: &str) -> bool {
    BACKENDS.iter().any(|backend| {
        backend
            .keys
            .iter()
            .any(|k| k.sensitive && key == format!("backends.{}.{}", backend.name, k.name))
    })
}

pub fn show(args: &ConfigShowArgs, env: &EnvSnapshot) -> Result<i32, Failure> {
    let config = crate::settings::load(env)?;
    let mut settings = config.entries(&args.settings.layer);
    // The backends' own variables, which win over the config file (as their descriptors say;
    // the first set one counts).
    for backend in BACKENDS {
        for key in backend.keys {
            let set = key
                .env
                .iter()
                .find_map(|v| env.get(v).filter(|x| !x.is_empty()).map(|x| (*v, x)));
            if let Some((var, value)) = set {
                let value = if key.env_is_secret {
                    Value::String(SET.into())
                } else {
                    Value::String(String::from_utf8_lossy(value).into_owned())
                };
                let name = format!("backends.{}.{}", backend.name, key.name);
                overlay(&mut settings, &name, value, Origin::Env(var));
            }
        }
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

/// `<set>` for a sensitive key, or any string that looks like a credential.
fn redact(key: &str, value: &Value) -> Value {
    let looks_secret =
        |s: &str| frona_sandbox::scrub::detect_credential_value(s.as_bytes()).is_some();
    match value {
        _ if sensitive(key) => Value::String(SET.into()),
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

fn setting_json(setting: &Entry) -> Value {
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
