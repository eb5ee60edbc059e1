//! Interactive use: with a terminal, Ctrl-C, window resize and Ctrl-Z behave as without frona.

use std::io::{Read as _, Write as _};
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{agent_bin, frona_bin, wait_until};

/// A program running as the session leader of a fresh pseudo-terminal.
struct Pty {
    master: std::fs::File,
    output: Arc<Mutex<String>>,
    child: Child,
}

impl Pty {
    fn spawn(mut cmd: Command) -> Self {
        let pty = nix::pty::openpty(None, None).unwrap();
        let slave: OwnedFd = pty.slave;
        cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()?;
                if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        let master = std::fs::File::from(pty.master);
        let output = Arc::new(Mutex::new(String::new()));
        let mut reader = master.try_clone().unwrap();
        let sink = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Self {
            master,
            output,
            child,
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).unwrap();
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits until the output holds `needle` `times` times.
    fn expect(&self, needle: &str, times: usize) {
        let seen = wait_until(Duration::from_secs(10), || {
            self.output().matches(needle).count() >= times
        });
        assert!(
            seen.is_some(),
            "never saw {needle:?} x{times} in:\n{}",
            self.output()
        );
    }

    fn resize(&self, rows: u16, cols: u16) {
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        assert_eq!(
            unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) },
            0
        );
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn frona_with_agent(agent_args: &[&str]) -> Command {
    let mut cmd = Command::new(frona_bin());
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .args(["run", "--quiet", "--"])
        .arg(agent_bin())
        .args(agent_args);
    cmd
}

/// Ctrl-C and a window resize reach the agent once each: the terminal delivers them to the
/// agent's (foreground) process group, and frona does not forward them a second time.
#[test]
fn ctrl_c_and_resize_reach_the_agent_once() {
    let mut pty = Pty::spawn(frona_with_agent(&["count-signals"]));
    pty.expect("ready", 1);
    pty.send(&[0x03]);
    pty.resize(40, 120);
    pty.expect("int=", 1);
    let status = pty.child.wait().unwrap();
    assert!(pty.output().contains("int=1 winch=1"), "{}", pty.output());
    assert_eq!(status.code(), Some(0));
}

/// Ctrl-Z in a job-control shell stops the agent and gives the prompt back; `fg` resumes it
/// in the foreground, where Ctrl-C reaches it.
#[test]
fn ctrl_z_suspends_and_fg_resumes() {
    let mut shell = Command::new("bash");
    shell
        .args(["--norc", "--noprofile", "-i"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("PS1", "$ ");
    let mut pty = Pty::spawn(shell);
    let frona = frona_bin();
    let agent = agent_bin();
    let line = format!(
        "{} run --quiet -- {} signals SIGINT\n",
        frona.display(),
        agent.display()
    );
    pty.send(line.as_bytes());
    pty.expect("ready", 1);
    pty.send(&[0x1a]);
    pty.expect("Stopped", 1);
    pty.send(b"jobs -l\n");
    pty.expect("Stopped", 2);
    pty.send(b"fg\n");
    std::thread::sleep(Duration::from_millis(300));
    pty.send(&[0x03]);
    pty.expect("got SIGINT", 1);
    pty.send(b"echo \"exit=$?\"\n");
    pty.expect("exit=0", 1);
    let out = pty.output();
    assert_eq!(out.matches("got SIGINT").count(), 1, "{out}");
    pty.send(b"exit\n");
}

/// Runs `cmd` as the session leader of a pseudo-terminal until it exits; returns the output.
pub fn in_pty(cmd: &mut Command) -> String {
    let mut replacement = Command::new(cmd.get_program());
    replacement.args(cmd.get_args());
    replacement
        .env_clear()
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))));
    let mut pty = Pty::spawn(replacement);
    let _ = pty.child.wait();
    std::thread::sleep(Duration::from_millis(100));
    pty.output()
}
