//! `frona approve|deny|approvals|grant`: the operator talks to every running broker through its
//! control socket (in frona's state directory); grants can also be read and revoked with no
//! broker running.

use std::path::PathBuf;

use frona_broker::grants::Grants;
use frona_sandbox::EnvSnapshot;
use serde_json::{Value, json};

use crate::cli::GrantCommand;
use crate::failure::Failure;

/// The live control sockets; stale ones (their frona is gone) are removed.
fn sockets(env: &EnvSnapshot) -> Vec<PathBuf> {
    let dir = crate::dirs::control_dir(env);
    let mut live = Vec::new();
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "sock") {
            if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                live.push(path);
            } else {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    live
}

/// Sends `request` to each running broker until one says ok; returns its answer.
fn ask_all(env: &EnvSnapshot, request: &Value) -> Result<Option<Value>, Failure> {
    let mut last_error = None;
    for socket in sockets(env) {
        match frona_broker::control::call(&socket, request) {
            Ok(answer) if answer["ok"] == true => return Ok(Some(answer)),
            Ok(answer) => last_error = answer["error"].as_str().map(str::to_owned),
            Err(e) => last_error = Some(e.to_string()),
        }
    }
    match last_error {
        Some(error) => Err(Failure::new(1, error)),
        None => Ok(None),
    }
}

pub fn approve(id: &str, lifetime: &str, env: &EnvSnapshot) -> Result<i32, Failure> {
    lifetime
        .parse::<frona_broker::grants::Lifetime>()
        .map_err(|e| Failure::from_error(&e).with_hint("use once, 30m, 2h, 3d or permanent"))?;
    match ask_all(env, &json!({"op": "approve", "id": id, "for": lifetime}))? {
        Some(_) => {
            eprintln!("frona: approved {id} ({lifetime})");
            Ok(0)
        }
        None => Err(Failure::new(1, "no frona broker is running")
            .with_hint("approvals are answered while `frona run` waits")),
    }
}

pub fn deny(id: &str, reason: Option<String>, env: &EnvSnapshot) -> Result<i32, Failure> {
    match ask_all(env, &json!({"op": "deny", "id": id, "reason": reason}))? {
        Some(_) => Ok(0),
        None => Err(Failure::new(1, "no frona broker is running")
            .with_hint("approvals are answered while `frona run` waits")),
    }
}

pub fn approvals(as_json: bool, env: &EnvSnapshot) -> Result<i32, Failure> {
    let mut pending = Vec::new();
    for socket in sockets(env) {
        if let Ok(answer) = frona_broker::control::call(&socket, &json!({"op": "pending"})) {
            pending.extend(answer["pending"].as_array().cloned().unwrap_or_default());
        }
    }
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&pending).map_err(|e| Failure::from_error(&e))?
        );
    } else {
        for p in &pending {
            println!(
                "{}\t{}\t{} {}\t{}",
                p["id"].as_str().unwrap_or(""),
                p["agent"].as_str().unwrap_or(""),
                p["tool"].as_str().unwrap_or(""),
                p["args"],
                p["credentials"]
            );
        }
    }
    Ok(0)
}

pub fn grant(command: GrantCommand, env: &EnvSnapshot) -> Result<i32, Failure> {
    let running = !sockets(env).is_empty();
    let open = || Grants::open(&crate::dirs::grants_db(env)).map_err(|e| Failure::from_error(&e));
    match command {
        GrantCommand::List { json } => {
            let grants: Vec<Value> = if running {
                ask_all(env, &json!({"op": "grants"}))?
                    .and_then(|a| a["grants"].as_array().cloned())
                    .unwrap_or_default()
            } else {
                open()?
                    .list(jiff::Timestamp::now())
                    .map_err(|e| Failure::from_error(&e))?
                    .iter()
                    .filter_map(|g| serde_json::to_value(g).ok())
                    .collect()
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&grants).map_err(|e| Failure::from_error(&e))?
                );
            } else {
                println!("ID\tAGENT\tTOOL\tCREDENTIALS\tEXPIRES");
                for g in &grants {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        g["id"].as_str().unwrap_or(""),
                        g["agent"].as_str().unwrap_or(""),
                        g["tool"].as_str().unwrap_or(""),
                        g["credentials"],
                        g["expires"].as_str().unwrap_or("never")
                    );
                }
            }
            Ok(0)
        }
        GrantCommand::Revoke { id } => {
            let revoked = if running {
                ask_all(env, &json!({"op": "revoke", "id": id}))?.is_some()
            } else {
                open()?.revoke(&id).map_err(|e| Failure::from_error(&e))?
            };
            if revoked {
                Ok(0)
            } else {
                Err(Failure::new(1, format!("no grant `{id}`"))
                    .with_hint("`frona grant list` shows the ids"))
            }
        }
    }
}
