//! Reading a secret value from the user: stdin when it is not a terminal, otherwise a prompt
//! on the terminal with echo turned off. Never from argv.

use std::io::{BufRead as _, IsTerminal as _, Read as _, Write as _};

use frona_backends::Secret;
use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};

use crate::failure::Failure;

/// The value, from stdin (whole, one trailing newline removed) or an echo-less prompt typed
/// twice.
pub fn read_secret(what: &str) -> Result<Secret, Failure> {
    let stdin = std::io::stdin();
    let value = if stdin.is_terminal() {
        let first = prompt(&format!("{what}: "))?;
        let second = prompt(&format!("{what} (again): "))?;
        if first != second {
            return Err(
                Failure::new(125, "the two values differ").with_hint("type the same value twice")
            );
        }
        first
    } else {
        let mut bytes = Vec::new();
        stdin
            .lock()
            .read_to_end(&mut bytes)
            .map_err(|e| Failure::from_error(&e))?;
        let mut value = Secret::new(bytes);
        if value.expose().ends_with(b"\n") {
            let trimmed = value.expose().strip_suffix(b"\n").unwrap_or_default();
            let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
            value = Secret::new(trimmed.to_vec());
        }
        value
    };
    if value.is_empty() {
        return Err(Failure::new(125, "empty value")
            .with_hint("pipe the value on stdin, e.g. `frona secret set NAME < file`"));
    }
    Ok(value)
}

fn prompt(text: &str) -> Result<Secret, Failure> {
    let stdin = std::io::stdin();
    let original = tcgetattr(&stdin).map_err(|e| Failure::from_error(&e))?;
    let mut silent = original.clone();
    silent.local_flags.remove(LocalFlags::ECHO);
    silent.local_flags.insert(LocalFlags::ECHONL);
    eprint!("{text}");
    let _ = std::io::stderr().flush();
    tcsetattr(&stdin, SetArg::TCSANOW, &silent).map_err(|e| Failure::from_error(&e))?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &original);
    read.map_err(|e| Failure::from_error(&e))?;
    let value = Secret::from_string(line);
    let trimmed = value.expose().strip_suffix(b"\n").unwrap_or(value.expose());
    Ok(Secret::new(
        trimmed.strip_suffix(b"\r").unwrap_or(trimmed).to_vec(),
    ))
}
