//! What a hostile agent tries. Each attack returns `Ok(detail)` when it was blocked and
//! `Err(detail)` when it worked; the agent prints the verdict and exits 0 (blocked) or 1.

use std::ffi::CString;
use std::time::Duration;

type Verdict = Result<String, String>;

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

/// A syscall result: < 0 means refused (blocked), otherwise the attack worked.
fn refused(what: &str, rc: i64) -> Verdict {
    if rc < 0 {
        Ok(format!("{what}: {}", errno()))
    } else {
        Err(format!("{what} returned {rc}"))
    }
}

/// A child that just sleeps, to attack; killed when the guard drops.
struct Victim(libc::pid_t);

impl Victim {
    fn spawn() -> Self {
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            unsafe {
                libc::sleep(30);
                libc::_exit(0);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
        Victim(pid)
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.0, libc::SIGKILL);
            libc::waitpid(self.0, std::ptr::null_mut(), 0);
        }
    }
}

fn read_containing(path: &str, needle: &str) -> Verdict {
    match std::fs::read(path) {
        Ok(bytes) if String::from_utf8_lossy(&bytes).contains(needle) => {
            Err(format!("read {path}: secret found"))
        }
        Ok(bytes) => Ok(format!("{path}: {} bytes, no secret", bytes.len())),
        Err(e) => Ok(format!("{path}: {e}")),
    }
}

pub fn run(name: &str, args: &[String]) -> Verdict {
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    match name {
        // Every path must be unreadable or hold no secret.
        "read-files" => {
            let needle = arg(0);
            let mut blocked = Vec::new();
            for path in &args[1..] {
                blocked.push(read_containing(path, &needle)?);
            }
            Ok(blocked.join("; "))
        }
        // Every path must refuse a connection (Unix stream socket).
        "connect-sockets" => {
            let mut blocked = Vec::new();
            for path in args {
                match std::os::unix::net::UnixStream::connect(path) {
                    Ok(_) => return Err(format!("connected to {path}")),
                    Err(e) => blocked.push(format!("{path}: {e}")),
                }
            }
            Ok(blocked.join("; "))
        }
        "read-environ" => read_containing(&format!("/proc/{}/environ", arg(0)), &arg(1)),
        "read-mem" => {
            let pid = arg(0);
            let maps =
                std::fs::read_to_string(format!("/proc/{pid}/maps")).map_err(|e| e.to_string());
            let Ok(maps) = maps else {
                return Ok(format!("maps: {}", maps.unwrap_err()));
            };
            let start = maps
                .split('-')
                .next()
                .and_then(|a| u64::from_str_radix(a, 16).ok())
                .unwrap_or(0);
            use std::os::unix::fs::FileExt as _;
            match std::fs::File::open(format!("/proc/{pid}/mem")) {
                Err(e) => Ok(format!("open mem: {e}")),
                Ok(f) => match f.read_at(&mut [0u8; 16], start) {
                    Ok(n) if n > 0 => Err(format!("read {n} bytes of /proc/{pid}/mem")),
                    Ok(_) => Ok("read nothing".into()),
                    Err(e) => Ok(format!("read mem: {e}")),
                },
            }
        }
        // frona's own process (`frona run …`) must not be visible at all.
        "find-frona" => {
            for entry in std::fs::read_dir("/proc")
                .map_err(|e| e.to_string())?
                .flatten()
            {
                let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                    continue;
                };
                let words: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
                if words.len() > 1 && words[0].ends_with(b"frona") && words[1] == b"run" {
                    return Err(format!(
                        "found frona as pid {}",
                        entry.file_name().to_string_lossy()
                    ));
                }
            }
            Ok("no `frona run` process visible".into())
        }
        "ptrace" => {
            let pid: libc::pid_t = arg(0).parse().unwrap_or(1);
            refused("ptrace attach", unsafe {
                libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0)
            })
        }
        "ptrace-child" => {
            let victim = Victim::spawn();
            refused("ptrace attach to own child", unsafe {
                libc::ptrace(libc::PTRACE_ATTACH, victim.0, 0, 0)
            })
        }
        "vm-readv-child" => {
            let secret = [7u8; 8];
            let victim = Victim::spawn();
            let mut buf = [0u8; 8];
            let local = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: 8,
            };
            let remote = libc::iovec {
                iov_base: secret.as_ptr() as *mut _,
                iov_len: 8,
            };
            refused("process_vm_readv", unsafe {
                libc::process_vm_readv(victim.0, &local, 1, &remote, 1, 0) as i64
            })
        }
        "new-userns" => refused(
            "unshare(CLONE_NEWUSER)",
            unsafe { libc::unshare(libc::CLONE_NEWUSER) }.into(),
        ),
        // Undo a mask: from a fresh user+mount namespace, or directly.
        "uncover" => {
            let (path, needle) = (arg(0), arg(1));
            let c_path = CString::new(path.clone()).unwrap();
            let unshared = unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) };
            let umounted = unsafe { libc::umount2(c_path.as_ptr(), libc::MNT_DETACH) };
            let detail = format!("unshare: {unshared}, umount2: {umounted} ({})", errno());
            read_containing(&path, &needle)
                .map(|d| format!("{detail}; {d}"))
                .map_err(|e| format!("{detail}; {e}"))
        }
        "remount-proc" => {
            let proc_ = CString::new("proc").unwrap();
            let target = CString::new("/proc").unwrap();
            refused(
                "mount proc",
                unsafe {
                    libc::mount(
                        proc_.as_ptr(),
                        target.as_ptr(),
                        proc_.as_ptr(),
                        0,
                        std::ptr::null(),
                    )
                }
                .into(),
            )
        }
        "load-module" => {
            let empty = CString::new("").unwrap();
            let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) };
            refused("finit_module", unsafe {
                libc::syscall(libc::SYS_finit_module, fd, empty.as_ptr(), 0)
            })
        }
        "bpf" => {
            // BPF_MAP_CREATE of a 1-entry array: key 4 bytes, value 4 bytes.
            let mut attr = [0u32; 16];
            attr[0] = 2; // BPF_MAP_TYPE_ARRAY
            attr[1] = 4;
            attr[2] = 4;
            attr[3] = 1;
            refused("bpf(BPF_MAP_CREATE)", unsafe {
                libc::syscall(libc::SYS_bpf, 0, attr.as_ptr(), 64)
            })
        }
        "perf" => {
            let mut attr = [0u8; 128];
            attr[4..8].copy_from_slice(&128u32.to_ne_bytes()); // size; type 0 = hardware, config 0 = cycles
            refused("perf_event_open", unsafe {
                libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), 0, -1, -1, 0)
            })
        }
        "keyctl" => refused("add_key", unsafe {
            libc::syscall(
                libc::SYS_add_key,
                c"user".as_ptr(),
                c"frona-test".as_ptr(),
                c"x".as_ptr(),
                1,
                -2,
            )
        }),
        "userfaultfd" => refused("userfaultfd", unsafe {
            libc::syscall(libc::SYS_userfaultfd, 0)
        }),
        "tiocsti" => {
            let byte = b'#';
            refused(
                "ioctl(TIOCSTI)",
                unsafe { libc::ioctl(0, libc::TIOCSTI, &byte) }.into(),
            )
        }
        "kill" => {
            let pid: libc::pid_t = arg(0).parse().unwrap_or(0);
            let direct = unsafe { libc::kill(pid, libc::SIGKILL) };
            let everyone = unsafe { libc::kill(-1, libc::SIGKILL) };
            Ok(format!(
                "kill({pid}): {direct}, kill(-1): {everyone}; the test checks frona survived"
            ))
        }
        "write-file" => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(arg(0))
        {
            Ok(_) => Err(format!("opened {} for writing", arg(0))),
            Err(e) => Ok(format!("{}: {e}", arg(0))),
        },
        // io_uring's operations (sockets, connects) never pass through seccomp.
        "io-uring" => {
            let mut params = [0u8; 120];
            refused("io_uring_setup", unsafe {
                libc::syscall(libc::SYS_io_uring_setup, 4, params.as_mut_ptr())
            })
        }
        "vsock" => refused("socket(AF_VSOCK)", unsafe {
            libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM, 0).into()
        }),
        "raw-socket" => refused("socket(AF_INET, SOCK_RAW)", unsafe {
            libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP).into()
        }),
        "packet-socket" => refused("socket(AF_PACKET)", unsafe {
            libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0).into()
        }),
        other => Err(format!("unknown attack `{other}`")),
    }
}
