//! `frona secret`: the embedded store's values. Values go in through stdin or a prompt and
//! never come out of this command.

use frona_backends::local::LocalStore;
use frona_sandbox::EnvSnapshot;

use crate::backends::local_config;
use crate::cli::SecretCommand;
use crate::failure::Failure;
use crate::prompt::read_secret;

pub fn secret(command: SecretCommand, env: &EnvSnapshot) -> Result<i32, Failure> {
    let config = local_config(env)?;
    let store =
        LocalStore::open(&config.store, &config.key).map_err(|e| Failure::from_error(&e))?;
    match command {
        SecretCommand::Set { name } => {
            let value = read_secret(&format!("value for `{name}`"))?;
            let version = store
                .set(&name, &value)
                .map_err(|e| Failure::from_error(&e))?;
            eprintln!(
                "frona: stored `{name}` (version {version}, fingerprint {})",
                value.fingerprint()
            );
        }
        SecretCommand::List { json } => {
            let entries = store.list().map_err(|e| Failure::from_error(&e))?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&entries).map_err(|e| Failure::from_error(&e))?
                );
            } else {
                for entry in entries {
                    println!("{}\tversion {}", entry.name, entry.version);
                }
            }
        }
        SecretCommand::Rm { name } => {
            if !store.remove(&name).map_err(|e| Failure::from_error(&e))? {
                return Err(Failure::new(1, format!("no secret named `{name}`"))
                    .with_hint("`frona secret list` shows the names"));
            }
        }
    }
    Ok(0)
}
