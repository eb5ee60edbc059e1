//! `frona env check`: the scrubbing analysis of the current environment, without running.

use frona_sandbox::EnvSnapshot;
use frona_sandbox::isolation::Facts;
use frona_sandbox::isolation::ambient::{self, Action, Found, Kind};
use frona_sandbox::scrub::{Decision, KeepReason, scrub};

use crate::failure::Failure;
use crate::settings::Run;

pub fn check(run: &Run, json: bool, env: &EnvSnapshot) -> Result<i32, Failure> {
    let options = run.env.scrub_options(&run.isolation.allow_socket)?;
    let (report, _) = scrub(env, &options);
    let facts = Facts::gather(env);
    // What is not a variable: files, history, sockets (an isolation that cannot start finds
    // nothing to report here; `frona doctor` says why).
    let mut found = run
        .isolation
        .plan(&facts)
        .map(|plan| ambient::survey(&plan, &facts))
        .unwrap_or_default();
    mark_ssh_filtered(&mut found, env, run);
    if json {
        let mut doc =
            serde_json::to_value(report.to_json_value()).map_err(|e| Failure::from_error(&e))?;
        doc["ambient"] = serde_json::to_value(&found).map_err(|e| Failure::from_error(&e))?;
        let json = serde_json::to_string_pretty(&doc).map_err(|e| Failure::from_error(&e))?;
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
    println!();
    print_ambient(&found, facts.home.as_deref());
    Ok(0)
}

/// The user's ssh-agent, hidden, is reached through frona's SSH agent when the policies have
/// `ssh:` rules (and `--allow-socket` does not pass it through): say so.
pub fn mark_ssh_filtered(found: &mut [Found], env: &EnvSnapshot, run: &Run) {
    use std::os::unix::ffi::OsStrExt as _;
    let Some(socket) = env
        .get(crate::env_vars::SSH_AUTH_SOCK)
        .map(|v| std::path::PathBuf::from(std::ffi::OsStr::from_bytes(v)))
    else {
        return;
    };
    let filtered =
        run.policy.is_dir() && crate::policies::load(&run.policy).is_ok_and(|p| p.has_ssh_rules());
    if !filtered {
        return;
    }
    for f in found
        .iter_mut()
        .filter(|f| f.path == socket && f.action == Action::Hidden)
    {
        f.action = Action::Filtered;
    }
}

/// The ambient credentials found here and what `frona run` does with each (also `frona doctor`).
pub fn print_ambient(found: &[Found], home: Option<&std::path::Path>) {
    if found.is_empty() {
        println!("no credential file, history file, socket or .env file of the known kinds found");
        return;
    }
    let shown = |path: &std::path::Path| match home.and_then(|h| path.strip_prefix(h).ok()) {
        Some(rel) => format!("~/{}", rel.display()),
        None => path.display().to_string(),
    };
    let width = found
        .iter()
        .map(|f| shown(&f.path).len())
        .max()
        .unwrap_or(0)
        .max(14);
    println!(
        "{:<width$}  {:<11}  {:<8}  TOOL",
        "FILE OR SOCKET", "KIND", "IN RUN"
    );
    for f in found {
        let kind = match f.kind {
            Kind::Credentials => "credentials",
            Kind::History => "history",
            Kind::Socket => "socket",
        };
        let action = match f.action {
            Action::Hidden => "hidden",
            Action::Masked => "masked",
            Action::Allowed => "allowed",
            Action::Filtered => "filtered",
            Action::Reachable => "REACHABLE",
        };
        println!(
            "{:<width$}  {kind:<11}  {action:<8}  {}",
            shown(&f.path),
            f.tool
        );
    }
}
