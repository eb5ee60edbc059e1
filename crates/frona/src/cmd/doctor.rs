//! `frona doctor`: what this system offers for isolation, and what `frona run` would apply.

use frona_sandbox::EnvSnapshot;
use frona_sandbox::isolation::persistence::{Disposition, Preview, preview};
use frona_sandbox::isolation::probe::{namespace_refused_hint, try_namespaces};
use frona_sandbox::isolation::{Facts, Plan};
use serde_json::json;

use crate::failure::Failure;
use crate::settings::Run;

/// Exit status when `frona run` with these flags would refuse to start.
const RUN_WOULD_FAIL: i32 = 1;

pub fn doctor(run: &Run, json: bool, env: &EnvSnapshot) -> Result<i32, Failure> {
    let isolation = &run.isolation;
    let facts = Facts::gather(env);
    let namespaces_probe = try_namespaces(facts.uid != 0);
    // A refusal that no sysctl explains (those have their own hint above it).
    let probe_hint = match (&namespaces_probe, &facts.kernel.user_namespaces) {
        (Err(_), Ok(())) => Some(namespace_refused_hint(std::path::Path::new("/"))),
        (Err(_), Err(_)) if facts.uid == 0 => {
            Some(namespace_refused_hint(std::path::Path::new("/")))
        }
        _ => None,
    };
    let mut isolation = isolation.clone();
    isolation
        .protect
        .extend(super::run::frona_protected(env, None));
    let plan = isolation.plan(&facts);
    let (persistence, pins) = plan.as_ref().map(preview).unwrap_or_default();
    let mut ambient = plan
        .as_ref()
        .map(|plan| frona_sandbox::isolation::ambient::survey(plan, &facts))
        .unwrap_or_default();
    super::env::mark_ssh_filtered(&mut ambient, env, run);
    let kernel = &facts.kernel;
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let code = if plan.is_ok() { 0 } else { RUN_WOULD_FAIL };
    if json {
        let doc = json!({
            "os": std::env::consts::OS,
            "kernel": release,
            "uid": facts.uid,
            "user_namespaces": status(&kernel.user_namespaces.clone().map(|()| true)),
            "namespaces_probe": match &namespaces_probe { Ok(()) => json!({"ok": true}), Err(e) => json!({"ok": false, "error": e, "hint": probe_hint}) },
            "seccomp": status(&kernel.seccomp.clone().map(|()| true)),
            "landlock_abi": status(&kernel.landlock_abi.clone()),
            "plan": plan.as_ref().ok(),
            "persistence": {"paths": persistence, "pinned": pins},
            "ambient": ambient,
            "error": plan.as_ref().err().map(|f| json!({"message": f.message, "hint": f.hint})),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(|e| Failure::from_error(&e))?
        );
        return Ok(code);
    }
    println!("system");
    println!("  os:               {} {release}", std::env::consts::OS);
    println!(
        "  running as:       uid {}{}",
        facts.uid,
        if facts.uid == 0 {
            " (root: no user namespace, capabilities dropped)"
        } else {
            ""
        }
    );
    println!(
        "  user namespaces:  {}",
        text(
            &kernel
                .user_namespaces
                .clone()
                .map(|()| "available".to_owned())
        )
    );
    println!(
        "  namespace probe:  {}",
        match &namespaces_probe {
            Ok(()) => "created user/mount/pid/ipc/uts namespaces".to_owned(),
            Err(e) => match &probe_hint {
                Some(hint) => format!("failed: {e}\n                    hint: {hint}"),
                None => format!("failed: {e}"),
            },
        }
    );
    println!(
        "  seccomp:          {}",
        text(&kernel.seccomp.clone().map(|()| "available".to_owned()))
    );
    println!(
        "  landlock:         {}",
        text(&kernel.landlock_abi.clone().map(|abi| format!("ABI {abi}")))
    );
    match &plan {
        Ok(plan) => {
            print_plan(plan, &persistence, pins);
            println!("\nambient credentials found here");
            super::env::print_ambient(&ambient, facts.home.as_deref());
        }
        Err(failure) => {
            println!("\nfrona run would refuse to start: {}", failure.message);
            if let Some(hint) = &failure.hint {
                println!("  hint: {hint}");
            }
        }
    }
    Ok(code)
}

fn status<T: serde::Serialize>(value: &Result<T, (String, String)>) -> serde_json::Value {
    match value {
        Ok(v) => json!({"ok": true, "value": v}),
        Err((reason, hint)) => json!({"ok": false, "reason": reason, "hint": hint}),
    }
}

fn text(value: &Result<String, (String, String)>) -> String {
    match value {
        Ok(v) => v.clone(),
        Err((reason, hint)) => format!("unavailable: {reason}\n                    hint: {hint}"),
    }
}

fn print_plan(plan: &Plan, persistence: &[Preview], pins: usize) {
    println!(
        "\nfrona run would apply (--isolation {}):",
        serde_json::to_value(plan.mode)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    );
    if plan.is_empty() {
        println!("  nothing: scrubbing and supervision only");
    }
    let ns = &plan.namespaces;
    let names: Vec<&str> = [
        (ns.user.is_some(), "user"),
        (ns.mount, "mount"),
        (ns.pid, "pid"),
        (ns.ipc, "ipc"),
        (ns.uts, "uts"),
        (ns.net, "net"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    if !names.is_empty() {
        println!(
            "  namespaces:       {}{}",
            names.join(" "),
            if plan.fresh_proc {
                " (fresh /proc)"
            } else {
                ""
            }
        );
    }
    match &plan.egress_listener {
        Some(relay) => println!(
            "  network:          loopback, and frona's egress proxy at 127.0.0.1:{} (allowed hosts only)",
            relay.port
        ),
        None if plan.loopback => println!("  network:          loopback only"),
        None => {}
    }
    if plan.drop_capabilities {
        println!(
            "  capabilities:     all dropped{}",
            if plan.no_new_privs {
                ", no_new_privs"
            } else {
                ""
            }
        );
    }
    if plan.seccomp {
        println!(
            "  seccomp:          deny-list ({} syscalls, TIOCSTI, namespace creation, AF_VSOCK{})",
            seccomp_count(),
            if plan.namespaces.net {
                ", raw and packet sockets"
            } else {
                ""
            }
        );
    }
    if let Some(landlock) = &plan.landlock {
        let paths: Vec<String> = landlock
            .writable
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        println!("  landlock writes:  {}", paths.join(" "));
    }
    let hidden: Vec<String> = plan
        .hide
        .iter()
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    println!(
        "  hidden here:      {}",
        if hidden.is_empty() {
            "(none of the listed paths exist)".to_owned()
        } else {
            hidden.join(" ")
        }
    );
    if plan.persistence.is_some() {
        print_persistence(persistence, pins);
    }
    for skipped in &plan.skipped {
        println!(
            "  skipped:          {}: {}",
            skipped.feature, skipped.reason
        );
    }
}

/// The protected paths, grouped by what `frona run` would do with each here.
fn print_persistence(persistence: &[Preview], pins: usize) {
    println!(
        "  persistence:      the agent may not create or change these (docs/persistence.md){}",
        if pins > 0 {
            format!("; {pins} parent directories pinned")
        } else {
            String::new()
        }
    );
    for (disposition, label) in [
        (Disposition::ReadOnly, "read-only:"),
        (Disposition::Placeholder, "placeholder:"),
        (Disposition::Landlock, "landlock:"),
        (Disposition::Unwritable, "unwritable:"),
    ] {
        let paths: Vec<String> = persistence
            .iter()
            .filter(|p| p.disposition == disposition)
            .map(|p| p.path.display().to_string())
            .collect();
        if !paths.is_empty() {
            println!("    {label:<16}{}", paths.join(" "));
        }
    }
}

fn seccomp_count() -> usize {
    #[cfg(target_os = "linux")]
    return frona_sandbox::isolation::seccomp::DENIED.len();
    #[cfg(not(target_os = "linux"))]
    return 0;
}
