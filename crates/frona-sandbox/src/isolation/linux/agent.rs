//! The agent's part, run between `fork` and `exec` in the single-threaded init helper: a nested
//! user namespace mapping the caller back to their own ids, no capabilities, no_new_privs,
//! Landlock, and the seccomp filter, in that order (each step needs the privileges the
//! previous ones still leave).
#![allow(unsafe_code)]

use std::io;

use landlock::{
    ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};

use crate::isolation::{IsolationMode, Plan, SeccompProgram, seccomp};

/// Runs in the forked agent before `exec`. Errors are printed here, where the step is known,
/// since only the errno crosses back to the helper.
pub fn apply_in_agent(plan: &Plan, seccomp_program: &SeccompProgram) -> io::Result<()> {
    let step = |what: &str, result: io::Result<()>| -> io::Result<()> {
        result.inspect_err(|e| eprintln!("frona: isolation: cannot {what}: {e}"))
    };
    if let Some(ids) = plan.namespaces.user {
        step(
            "create the agent's user namespace",
            map_back(ids.uid, ids.gid),
        )?;
    }
    if plan.drop_capabilities {
        step("drop capabilities", drop_capabilities())?;
    }
    if plan.no_new_privs {
        // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only.
        let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        step(
            "set no_new_privs",
            if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            },
        )?;
    }
    if let Some(landlock) = &plan.landlock {
        match restrict_writes(&landlock.writable) {
            Ok(true) => {}
            // Persistence protection left some paths to Landlock: it must hold.
            Ok(false)
                if !landlock.required
                    && plan.mode == IsolationMode::BestEffort
                    && !plan
                        .persistence
                        .as_ref()
                        .is_some_and(|p| p.relies_on_landlock) =>
            {
                eprintln!("frona: isolation: skipped: landlock is not enforced by this kernel");
            }
            Ok(false) => step(
                "enforce landlock",
                Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP)),
            )?,
            Err(e) => step("apply landlock", Err(e))?,
        }
    }
    if plan.seccomp {
        step(
            "install the seccomp filter",
            seccomp::install(seccomp_program),
        )?;
    }
    Ok(())
}

fn write(path: &str, data: &str) -> io::Result<()> {
    std::fs::write(path, data)
}

/// A user namespace inside the helper's, in which the agent has the caller's own uid and gid
/// (the helper is uid 0 of its namespace, mapped to the caller).
fn map_back(uid: u32, gid: u32) -> io::Result<()> {
    // The helper is non-dumpable, which makes /proc/self/* root-owned and so unwritable here.
    // This fork holds no secret (the helper never had any), and exec resets the flag anyway.
    nix::sys::prctl::set_dumpable(true)?;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)?;
    write("/proc/self/setgroups", "deny")?;
    write("/proc/self/uid_map", &format!("{uid} 0 1\n"))?;
    write("/proc/self/gid_map", &format!("{gid} 0 1\n"))
}

/// Empties the bounding set, the ambient set, and the permitted/effective/inheritable sets.
fn drop_capabilities() -> io::Result<()> {
    for cap in 0..64 {
        // SAFETY: integer arguments; EINVAL past the last capability ends the loop.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINVAL) {
                break;
            }
            return Err(err);
        }
    }
    // SAFETY: integer arguments.
    if unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capset reads one header and two data structs (version 3), both valid here.
    if unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Landlock: writes only beneath `writable`; reads unrestricted; signals and abstract UNIX
/// sockets scoped to the sandbox where the kernel supports it. Returns whether the kernel
/// enforces the rules.
fn restrict_writes(writable: &[std::path::PathBuf]) -> io::Result<bool> {
    let abi = ABI::V6;
    let to_io = |e: landlock::RulesetError| io::Error::other(e.to_string());
    let status = Ruleset::default()
        .handle_access(AccessFs::from_write(abi))
        .map_err(to_io)?
        .scope(Scope::from_all(abi))
        .map_err(to_io)?
        .create()
        .map_err(to_io)?
        .add_rules(landlock::path_beneath_rules(
            writable,
            AccessFs::from_write(abi),
        ))
        .map_err(to_io)?
        .restrict_self()
        .map_err(to_io)?;
    Ok(status.ruleset != RulesetStatus::NotEnforced)
}
