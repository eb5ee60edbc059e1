//! The seccomp filter every isolated agent runs under: a deny-list, so that real programs
//! (shells, Python, Node, git, static binaries) keep working, while the system calls an agent
//! could use to reach other processes' memory, the kernel, or around its mount namespace fail
//! with `EPERM`.
//!
//! The BPF program is built by hand (no dependency): it checks the architecture (anything
//! else, including the 32-bit x86 ABI, kills the process), refuses the x32 ABI, and compares
//! the syscall number against the list; `ioctl`, `clone`, `unshare` and `socket` also look at
//! their arguments. `clone3` answers `ENOSYS` because its flags sit behind a pointer that
//! seccomp cannot read; libc then falls back to `clone`, whose flags are checked.
//!
//! `io_uring` is refused outright: its operations (sockets, connects, opens) never pass
//! through this filter. `socket(AF_VSOCK)` is refused in every mode (it reaches the
//! hypervisor's host, around any network namespace). With a private network (`--net none`,
//! `--net proxy`, [`Profile::private_network`]) packet sockets and raw IP sockets are refused
//! too; raw sockets of other families stay (netlink, which `getifaddrs` and glibc's resolver
//! use, is opened as `SOCK_RAW`).
#![allow(unsafe_code)]

use std::io;

use libc::sock_filter;

/// Refused outright with `EPERM`: `(name, number)`.
pub const DENIED: &[(&str, libc::c_long)] = &[
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("setns", libc::SYS_setns),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("reboot", libc::SYS_reboot),
    ("acct", libc::SYS_acct),
    ("syslog", libc::SYS_syslog),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    #[cfg(target_arch = "x86_64")]
    ("iopl", libc::SYS_iopl),
    #[cfg(target_arch = "x86_64")]
    ("ioperm", libc::SYS_ioperm),
];

/// Socket families refused in every mode: `(name, AF_*)`.
pub const DENIED_SOCKET_FAMILIES: &[(&str, u32)] = &[("AF_VSOCK", libc::AF_VSOCK as u32)];

/// Socket families refused with a private network.
pub const PRIVATE_NET_DENIED_SOCKET_FAMILIES: &[(&str, u32)] =
    &[("AF_PACKET", libc::AF_PACKET as u32)];

/// Socket types refused for `AF_INET` and `AF_INET6` with a private network: raw IP, and the
/// obsolete `SOCK_PACKET`, which the kernel turns into a packet socket.
pub const PRIVATE_NET_DENIED_SOCKET_TYPES: &[(&str, u32)] = &[
    ("SOCK_RAW", libc::SOCK_RAW as u32),
    // SOCK_PACKET (deprecated in libc, which is the point).
    ("SOCK_PACKET", 10),
];

/// What the filter is built for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Profile {
    /// The agent has a network namespace of its own: refuse packet and raw IP sockets too.
    pub private_network: bool,
}

/// `ioctl` requests refused: terminal input injection (`TIOCSTI`) and the virtual-console
/// multiplexer that can do the same (`TIOCLINUX`).
pub const DENIED_IOCTLS: &[(&str, u32)] = &[("TIOCSTI", 0x5412), ("TIOCLINUX", 0x541C)];

/// Namespace-creating flags refused in `clone` (`CLONE_NEWTIME` shares its bit with the exit
/// signal there) and in `unshare`.
const CLONE_NS_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u32;
const UNSHARE_NS_FLAGS: u32 = CLONE_NS_FLAGS | 0x80; // CLONE_NEWTIME

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 62 | 0x8000_0000 | 0x4000_0000;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 183 | 0x8000_0000 | 0x4000_0000;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("frona's seccomp filter supports x86_64 and aarch64");

const LD_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JSET: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const AND: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
#[cfg(target_arch = "x86_64")]
const JGE: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const RET: u16 = 0x06; // BPF_RET | BPF_K
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;

fn op(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Offset of the low 32 bits of argument `i` in `struct seccomp_data` (little-endian).
fn arg_low(i: u32) -> u32 {
    16 + 8 * i
}

fn nr(n: libc::c_long) -> u32 {
    n as u32
}

/// `if nr == syscall { A = arg; for each check: if matches → EPERM }; A = nr`
fn with_arg(prog: &mut Vec<sock_filter>, syscall: libc::c_long, arg: u32, checks: &[(u16, u32)]) {
    let rest = u8::try_from(2 + 2 * checks.len()).unwrap_or(u8::MAX);
    prog.push(op(JEQ, nr(syscall), 0, rest));
    prog.push(op(LD_ABS, arg_low(arg), 0, 0));
    for &(code, k) in checks {
        prog.push(op(code, k, 0, 1));
        prog.push(op(RET, RET_ERRNO | libc::EPERM as u32, 0, 0));
    }
    prog.push(op(LD_ABS, OFFSET_NR, 0, 0));
}

/// `socket(domain, type, …)`: the refused families, and with a private network the refused
/// types of `AF_INET`/`AF_INET6` (the type's low four bits; the rest are flags).
fn socket_checks(prog: &mut Vec<sock_filter>, profile: Profile) {
    let deny = op(RET, RET_ERRNO | libc::EPERM as u32, 0, 0);
    let mut body = vec![op(LD_ABS, arg_low(0), 0, 0)];
    let mut families = DENIED_SOCKET_FAMILIES.to_vec();
    if profile.private_network {
        families.extend_from_slice(PRIVATE_NET_DENIED_SOCKET_FAMILIES);
    }
    for (_, family) in families {
        body.push(op(JEQ, family, 0, 1));
        body.push(deny);
    }
    if profile.private_network {
        let mut types = vec![op(LD_ABS, arg_low(1), 0, 0), op(AND, 0xf, 0, 0)];
        for &(_, kind) in PRIVATE_NET_DENIED_SOCKET_TYPES {
            types.push(op(JEQ, kind, 0, 1));
            types.push(deny);
        }
        // AF_INET: straight to the type checks; neither AF_INET nor AF_INET6: past them.
        body.push(op(JEQ, libc::AF_INET as u32, 1, 0));
        body.push(op(
            JEQ,
            libc::AF_INET6 as u32,
            0,
            u8::try_from(types.len()).unwrap_or(u8::MAX),
        ));
        body.extend(types);
    }
    body.push(op(LD_ABS, OFFSET_NR, 0, 0));
    prog.push(op(
        JEQ,
        nr(libc::SYS_socket),
        0,
        u8::try_from(body.len()).unwrap_or(u8::MAX),
    ));
    prog.extend(body);
}

/// The whole filter program.
pub fn program(profile: Profile) -> Vec<sock_filter> {
    let mut prog = vec![
        op(LD_ABS, OFFSET_ARCH, 0, 0),
        op(JEQ, AUDIT_ARCH, 1, 0),
        op(RET, RET_KILL_PROCESS, 0, 0),
        op(LD_ABS, OFFSET_NR, 0, 0),
    ];
    #[cfg(target_arch = "x86_64")]
    prog.extend([
        op(JGE, 0x4000_0000, 0, 1),
        op(RET, RET_ERRNO | libc::ENOSYS as u32, 0, 0),
    ]);
    for &(_, number) in DENIED {
        prog.push(op(JEQ, nr(number), 0, 1));
        prog.push(op(RET, RET_ERRNO | libc::EPERM as u32, 0, 0));
    }
    prog.push(op(JEQ, nr(libc::SYS_clone3), 0, 1));
    prog.push(op(RET, RET_ERRNO | libc::ENOSYS as u32, 0, 0));
    let ioctls: Vec<(u16, u32)> = DENIED_IOCTLS
        .iter()
        .map(|&(_, request)| (JEQ, request))
        .collect();
    with_arg(&mut prog, libc::SYS_ioctl, 1, &ioctls);
    with_arg(&mut prog, libc::SYS_clone, 0, &[(JSET, CLONE_NS_FLAGS)]);
    with_arg(&mut prog, libc::SYS_unshare, 0, &[(JSET, UNSHARE_NS_FLAGS)]);
    socket_checks(&mut prog, profile);
    prog.push(op(RET, RET_ALLOW, 0, 0));
    prog
}

/// Installs `prog` for the calling thread and its future children. Needs no_new_privs (or
/// CAP_SYS_ADMIN). Allocates nothing: safe between fork and exec.
pub fn install(prog: &[sock_filter]) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `prog`, which outlives the call; the kernel copies it.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &fprog as *const _,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `check` in a forked child under the filter; returns its exit code.
    fn in_filtered_child(check: fn() -> i32) -> i32 {
        in_child_with(Profile::default(), check)
    }

    /// Runs `check` in a forked child under the filter for `profile`.
    fn in_child_with(profile: Profile, check: fn() -> i32) -> i32 {
        let prog = program(profile);
        // SAFETY: the child only makes system calls and exits with _exit.
        unsafe {
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                    || install(&prog).is_err()
                {
                    libc::_exit(100);
                }
                libc::_exit(check());
            }
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
            assert!(libc::WIFEXITED(status), "child died: {status:#x}");
            libc::WEXITSTATUS(status)
        }
    }

    fn errno() -> i32 {
        io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }

    #[test]
    fn denied_calls_fail_with_eperm_and_ordinary_ones_work() {
        let code = in_filtered_child(|| unsafe {
            if libc::getpid() <= 0 {
                return 1;
            }
            if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) != -1 || errno() != libc::EPERM {
                return 2;
            }
            if libc::syscall(libc::SYS_bpf, 0, 0, 0) != -1 || errno() != libc::EPERM {
                return 3;
            }
            if libc::unshare(libc::CLONE_NEWUSER) != -1 || errno() != libc::EPERM {
                return 4;
            }
            if libc::ioctl(0, 0x5412, c"x".as_ptr()) != -1 || errno() != libc::EPERM {
                return 5;
            }
            if libc::syscall(libc::SYS_clone3, 0, 0) != -1 || errno() != libc::ENOSYS {
                return 6;
            }
            // unshare without namespace flags and an ordinary ioctl still work.
            if libc::unshare(libc::CLONE_FILES) != 0 {
                return 7;
            }
            let mut size: libc::c_int = 0;
            let _ = libc::ioctl(0, libc::FIONREAD, &mut size);
            if errno() == libc::EPERM {
                return 8;
            }
            let pid = libc::fork();
            if pid == 0 {
                libc::_exit(0);
            }
            if pid < 0 {
                return 9;
            }
            0
        });
        assert_eq!(code, 0);
    }

    /// `socket(domain, type, 0)`: 0 when refused with EPERM, 1 when it worked, 2 on another
    /// error (the kernel lacks the family, or the test runs without CAP_NET_RAW).
    fn try_socket(domain: i32, kind: i32, protocol: i32) -> i32 {
        // SAFETY: integer arguments; a descriptor that was made is closed.
        unsafe {
            let fd = libc::socket(domain, kind, protocol);
            if fd >= 0 {
                libc::close(fd);
                return 1;
            }
        }
        if errno() == libc::EPERM { 0 } else { 2 }
    }

    #[test]
    fn io_uring_and_vsock_are_refused_in_every_mode() {
        for profile in [
            Profile::default(),
            Profile {
                private_network: true,
            },
        ] {
            let code = in_child_with(profile, || unsafe {
                let mut params = [0u8; 120];
                let ring = libc::syscall(libc::SYS_io_uring_setup, 4, params.as_mut_ptr());
                if ring != -1 || errno() != libc::EPERM {
                    return 1;
                }
                if libc::syscall(libc::SYS_io_uring_enter, 0, 0, 0, 0, 0, 0) != -1
                    || errno() != libc::EPERM
                {
                    return 2;
                }
                if libc::syscall(libc::SYS_io_uring_register, 0, 0, 0, 0) != -1
                    || errno() != libc::EPERM
                {
                    return 3;
                }
                if try_socket(libc::AF_VSOCK, libc::SOCK_STREAM, 0) != 0 {
                    return 4;
                }
                if try_socket(libc::AF_VSOCK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) != 0 {
                    return 5;
                }
                // Ordinary sockets, and netlink's raw ones, still work.
                if try_socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) != 1
                    || try_socket(libc::AF_INET6, libc::SOCK_DGRAM, 0) != 1
                    || try_socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) != 1
                    || try_socket(libc::AF_NETLINK, libc::SOCK_RAW, 0) != 1
                {
                    return 6;
                }
                0
            });
            assert_eq!(code, 0, "{profile:?}");
        }
    }

    #[test]
    fn raw_and_packet_sockets_are_refused_with_a_private_network() {
        let code = in_child_with(
            Profile {
                private_network: true,
            },
            || {
                for (domain, kind, protocol) in [
                    (libc::AF_PACKET, libc::SOCK_RAW, 0),
                    (libc::AF_PACKET, libc::SOCK_DGRAM, 0),
                    (libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP),
                    (
                        libc::AF_INET,
                        libc::SOCK_RAW | libc::SOCK_NONBLOCK,
                        libc::IPPROTO_TCP,
                    ),
                    (
                        libc::AF_INET6,
                        libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                        libc::IPPROTO_ICMPV6,
                    ),
                    (libc::AF_INET, 10, 0x0300), // SOCK_PACKET, htons(ETH_P_ALL)
                ] {
                    if try_socket(domain, kind, protocol) != 0 {
                        return 1;
                    }
                }
                if try_socket(libc::AF_INET, libc::SOCK_STREAM, 0) != 1
                    || try_socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) != 1
                {
                    return 2;
                }
                0
            },
        );
        assert_eq!(code, 0);
        // Without a private network the filter leaves them to capabilities: as root (CI), a
        // packet socket works, which shows the refusal above is the filter's.
        let code = in_child_with(Profile::default(), || {
            try_socket(libc::AF_PACKET, libc::SOCK_RAW, 0)
        });
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(code, 1);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x32_syscalls_are_refused() {
        let code = in_filtered_child(|| unsafe {
            let r = libc::syscall(0x4000_0000 | libc::SYS_getpid);
            if r == -1 && errno() == libc::ENOSYS {
                0
            } else {
                1
            }
        });
        assert_eq!(code, 0);
    }
}
