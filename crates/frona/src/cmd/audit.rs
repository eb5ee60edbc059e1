//! `frona audit [verify]`: the broker's audit log, verified before it is shown. With `--json`
//! the records print as they are stored (one JSON object per line), and `verify` prints one
//! object: `path`, `intact`, then `records` or `error`.

use frona_sandbox::EnvSnapshot;
use serde_json::json;

use crate::cli::{AuditArgs, AuditCommand};
use crate::failure::Failure;

/// Exit status when the log fails verification.
const TAMPERED: i32 = 1;

pub fn audit(args: AuditArgs, env: &EnvSnapshot) -> Result<i32, Failure> {
    let path = crate::dirs::audit_log(env);
    match args.command {
        Some(AuditCommand::Verify) => match frona_broker::audit::verify(&path) {
            Ok(head) if args.json => {
                println!(
                    "{}",
                    json!({"path": path, "records": head.records, "intact": true})
                );
                Ok(0)
            }
            Ok(head) => {
                println!("{}: {} records, chain intact", path.display(), head.records);
                Ok(0)
            }
            Err(e) if args.json => {
                println!(
                    "{}",
                    json!({"path": path, "intact": false, "error": frona_sandbox::error_chain(&e)})
                );
                Ok(TAMPERED)
            }
            Err(e) => Err(Failure::from_error(&e).with_code(TAMPERED)),
        },
        None => {
            let since = args
                .since
                .map(|t| {
                    t.parse::<jiff::Timestamp>().map_err(|e| {
                        Failure::new(125, format!("`{t}` is not an RFC 3339 time: {e}"))
                            .with_hint("e.g. --since 2025-06-02T00:00:00Z")
                    })
                })
                .transpose()?;
            let records = frona_broker::audit::read(&path).map_err(|e| {
                Failure::from_error(&e)
                    .with_code(TAMPERED)
                    .with_hint("`frona audit verify` says whether the log was changed")
            })?;
            for record in records {
                let time = record["time"]
                    .as_str()
                    .and_then(|t| t.parse::<jiff::Timestamp>().ok());
                if since.is_some_and(|s| time.is_some_and(|t| t < s)) {
                    continue;
                }
                if args.json {
                    println!("{record}");
                } else {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        record["time"].as_str().unwrap_or(""),
                        record["kind"].as_str().unwrap_or(""),
                        record["decision"].as_str().unwrap_or("-"),
                        record["tool"].as_str().unwrap_or("-"),
                        record["reason"].as_str().unwrap_or("")
                    );
                }
            }
            Ok(0)
        }
    }
}
