//! `frona policy check|test|explain`: the policy directory, read and compiled as the broker
//! will read it (`*.yaml` directly in the directory, in file-name order).

use std::path::{Path, PathBuf};

use frona_policy::{PolicySet, Request};
use frona_sandbox::EnvSnapshot;
use serde_json::json;

use crate::cli::PolicyCommand;
use crate::failure::Failure;

/// Exit status when a policy test fails.
const TESTS_FAILED: i32 = 1;

/// Reads every `*.yaml` file directly in `dir`, sorted by name.
pub fn read_dir(dir: &Path) -> Result<Vec<(String, String)>, Failure> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Failure::from_error(&e).with_hint(format!(
            "create `{}` with policy files, or pass another directory",
            dir.display()
        ))
    })?;
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let text = std::fs::read_to_string(&path).map_err(|e| Failure::from_error(&e))?;
            files.push((
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                text,
            ));
        }
    }
    files.sort();
    Ok(files)
}

fn load(dir: &Path) -> Result<PolicySet, Failure> {
    let files = read_dir(dir)?;
    PolicySet::load(files.iter().map(|(n, t)| (n.as_str(), t.as_str()))).map_err(|e| {
        Failure::new(
            frona_sandbox::supervise::EXIT_FRONA_ERROR,
            format!("{}/{e}", dir.display()),
        )
    })
}

/// `given`, else the config's `run.policy`, else `$XDG_CONFIG_HOME/frona/policies`.
fn policy_dir(given: Option<PathBuf>, env: &EnvSnapshot) -> Result<PathBuf, Failure> {
    Ok(crate::config::load(env)?.policy_dir(given, env))
}

pub fn policy(command: PolicyCommand, env: &EnvSnapshot) -> Result<i32, Failure> {
    let to_json = |v: serde_json::Value| {
        serde_json::to_string_pretty(&v).map_err(|e| Failure::from_error(&e))
    };
    match command {
        PolicyCommand::Check { dir, json } => {
            let dir = policy_dir(dir, env)?;
            let set = load(&dir)?;
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
            let set = load(&policy_dir(policy, env)?)?;
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
            http,
            args,
            credentials,
            agent,
            at,
            policy,
            json,
        } => {
            let set = load(&policy_dir(policy, env)?)?;
            let time = match at {
                Some(text) => text.parse().map_err(|e| {
                    Failure::new(125, format!("`{text}` is not an RFC 3339 time: {e}"))
                        .with_hint("e.g. --at 2025-06-02T10:00:00+02:00")
                })?,
                None => jiff::Timestamp::now(),
            };
            let request = match (tool, http.as_deref()) {
                (_, Some([method, url])) => {
                    let [credential] = <[String; 1]>::try_from(credentials).map_err(|_| {
                        Failure::new(125, "a proxied call carries one `--credential`")
                    })?;
                    let mut request =
                        frona_broker::proxy::http_request_for_url(method, url, credential, agent)
                            .map_err(|e| Failure::new(125, e))?;
                    request.time = time;
                    request
                }
                (Some(tool), _) => Request {
                    tool,
                    args,
                    credentials,
                    agent,
                    time,
                    sha256: None,
                    http: None,
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
