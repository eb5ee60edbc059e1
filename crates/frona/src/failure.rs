//! Turning errors into what the user sees: the whole cause chain, lowercase, names in
//! backticks, a `hint:` when there is something to do, and the documented exit status.
//! Messages never carry control characters to the terminal.

use std::error::Error;
use std::process::ExitCode;

use frona_sandbox::supervise::EXIT_FRONA_ERROR;

/// A failure on its way to stderr and the exit status.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
    pub hint: Option<String>,
}

impl Failure {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            hint: None,
        }
    }

    /// The error and every `source()` below it, joined with `: `.
    pub fn from_error(err: &dyn Error) -> Self {
        Self::new(EXIT_FRONA_ERROR, frona_sandbox::error_chain(err))
    }

    pub fn with_code(mut self, code: i32) -> Self {
        self.code = code;
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// [`Failure::with_hint`] unless there is a hint already (a more specific one).
    pub fn or_hint(self, hint: impl Into<String>) -> Self {
        match self.hint {
            Some(_) => self,
            None => self.with_hint(hint),
        }
    }

    /// Prints to stderr and returns the exit status.
    pub fn report(self) -> ExitCode {
        eprintln!("frona: {}", printable(&self.message));
        if let Some(hint) = &self.hint {
            eprintln!("  hint: {}", printable(hint));
        }
        ExitCode::from(u8::try_from(self.code).unwrap_or(u8::MAX))
    }
}

/// `text` with control characters escaped: messages quote file names, config values and
/// answers from servers, any of which could carry terminal escape sequences.
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// clap's own output for `--help`/`--version` (status 0) and usage errors (status 125, as
/// `env` and `docker run` do, so that usage errors never pass for the agent's status).
pub fn clap_exit(err: &clap::Error) -> ExitCode {
    let _ = err.print();
    if err.use_stderr() {
        ExitCode::from(EXIT_FRONA_ERROR as u8)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("plain `x`"), "plain `x`");
        assert_eq!(printable("a\x1b[31mred\nb"), "a\\u{1b}[31mred\\nb");
    }
}
