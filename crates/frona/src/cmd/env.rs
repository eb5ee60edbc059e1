//! `frona env check`: the scrubbing analysis of the current environment, without running.

use frona_sandbox::EnvSnapshot;
use frona_sandbox::scrub::{Decision, KeepReason, scrub};

use crate::failure::Failure;
use crate::settings::EnvSettings;

pub fn check(settings: &EnvSettings, json: bool, env: &EnvSnapshot) -> Result<i32, Failure> {
    let options = settings.scrub_options()?;
    let (report, _) = scrub(env, &options);
    if json {
        let json = serde_json::to_string_pretty(&report.to_json_value())
            .map_err(|e| Failure::from_error(&e))?;
        println!("{json}");
        return Ok(0);
    }
    let width = report
        .entries
        .iter()
        .map(|(n, _)| n.len())
        .max()
        .unwrap_or(0)
        .max(8);
    println!("{:<width$}  {:<6}  WHY", "VARIABLE", "ACTION");
    for (name, decision) in &report.entries {
        let (action, why) = match decision {
            Decision::Strip(reason) => ("strip", reason.to_string()),
            Decision::Keep(KeepReason::Ordinary) => continue,
            Decision::Keep(KeepReason::Allowlisted) => ("keep", "in the allowlist".to_owned()),
            Decision::Keep(KeepReason::Keep) => ("keep", "--keep".to_owned()),
        };
        println!("{:<width$}  {action:<6}  {why}", name.to_string_lossy());
    }
    let stripped = report.stripped().count();
    println!(
        "{} stripped, {} passed",
        stripped,
        report.entries.len() - stripped
    );
    Ok(0)
}
