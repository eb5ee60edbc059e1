//! `frona completions SHELL` and `frona man`: generated from the clap definitions, so they
//! never drift from the real flags. Hidden subcommands (`__init`) are left out.

use std::io::Write as _;

use clap::CommandFactory as _;

use crate::cli::Cli;
use crate::failure::Failure;

/// Prints the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<i32, Failure> {
    // clap_complete offers hidden subcommands too; `frona __init` is not for people.
    let full = Cli::command();
    let mut command = clap::Command::new("frona")
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|c| !c.is_hide_set()).cloned());
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "frona", &mut out);
    write_stdout(&out)
}

/// Prints frona(1), with every subcommand's options, as roff on stdout.
pub fn man() -> Result<i32, Failure> {
    let mut out = Vec::new();
    render_man(&mut out).map_err(|e| Failure::from_error(&e))?;
    write_stdout(&out)
}

/// The page for `frona` itself, then one section per visible subcommand (and nested ones), so
/// that a single page documents every flag.
fn render_man(out: &mut Vec<u8>) -> std::io::Result<()> {
    let command = Cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut page)?;
    // clap_mangen points at one page per subcommand (frona-run(1)); here they are sections.
    let mut page = String::from_utf8_lossy(&page).into_owned();
    for sub in command.get_subcommands() {
        let name = sub.get_name();
        page = page.replace(
            &format!("frona\\-{name}(1)"),
            &format!("\\fBfrona {name}\\fR (below)"),
        );
    }
    let page = page.replace("frona\\-help(1)", "\\fBfrona help\\fR");
    out.extend_from_slice(page.as_bytes());
    let mut stack: Vec<(String, clap::Command)> = command
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| (format!("frona {}", c.get_name()), c.clone()))
        .collect();
    stack.reverse();
    while let Some((path, sub)) = stack.pop() {
        writeln!(out, ".SH \"{}\"", path.to_uppercase())?;
        let man = clap_mangen::Man::new(sub.clone().bin_name(path.clone()));
        let mut section = Vec::new();
        man.render_synopsis_section(&mut section)?;
        man.render_description_section(&mut section)?;
        if sub.get_arguments().any(|a| !a.is_hide_set()) {
            man.render_options_section(&mut section)?;
        }
        out.extend(demote(&section));
        let mut children: Vec<_> = sub
            .get_subcommands()
            .filter(|c| !c.is_hide_set() && c.get_name() != "help")
            .map(|c| (format!("{path} {}", c.get_name()), c.clone()))
            .collect();
        children.reverse();
        stack.extend(children);
    }
    Ok(())
}

/// A subcommand's sections become subsections of its own section.
fn demote(roff: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(roff.len());
    for line in roff.split_inclusive(|b| *b == b'\n') {
        match line.strip_prefix(b".SH ") {
            Some(rest) => {
                out.extend_from_slice(b".SS ");
                out.extend_from_slice(rest);
            }
            None => out.extend_from_slice(line),
        }
    }
    out
}

fn write_stdout(bytes: &[u8]) -> Result<i32, Failure> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(0),
        // `frona man | head` is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(Failure::from_error(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_page_documents_every_subcommand() {
        let mut out = Vec::new();
        render_man(&mut out).unwrap();
        let page = String::from_utf8(out).unwrap();
        assert!(page.contains(".TH frona 1"), "{}", &page[..200]);
        for sub in Cli::command()
            .get_subcommands()
            .filter(|c| !c.is_hide_set())
        {
            let heading = format!(".SH \"FRONA {}\"", sub.get_name().to_uppercase());
            assert!(page.contains(&heading), "no {heading}");
        }
        assert!(page.contains("FRONA CREDENTIAL REGISTER"));
        assert!(!page.contains("__init"));
    }
}
