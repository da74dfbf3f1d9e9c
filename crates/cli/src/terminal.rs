//! Prompting for secrets (tokens, unseal keys, passwords) without echoing them.
//!
//! Secrets typed at a prompt must not stay on screen or in terminal scrollback, so when the
//! CLI reads from a real terminal it turns echo off for the duration of the read. When stdin is
//! a pipe (scripts, tests) the line is read as is. This is the CLI's only module that calls
//! libc (termios), so it is the only one allowed `unsafe`.

#![allow(unsafe_code)]

use std::io::{BufRead, Write};

use zeroize::Zeroizing;

use crate::error::CliError;

/// Prints `label` to `prompt_out`, reads one line from `input` with echo disabled when `hide`
/// is true and fd 0 is a terminal, and returns it without the line ending.
pub fn prompt_secret(
    input: &mut dyn BufRead,
    prompt_out: &mut dyn Write,
    label: &str,
    hide: bool,
) -> Result<Zeroizing<String>, CliError> {
    write!(prompt_out, "{label}")?;
    prompt_out.flush()?;
    let guard = if hide { EchoGuard::disable() } else { None };
    let mut line = Zeroizing::new(String::new());
    let read = input
        .read_line(&mut line)
        .map_err(|err| CliError::Local(format!("Error reading from stdin: {err}")));
    if guard.is_some() {
        drop(guard);
        // Echo was off, so the operator's Enter did not move the cursor.
        writeln!(prompt_out)?;
    }
    if read? == 0 {
        return Err(CliError::Local(
            "No input on stdin: pass the value as an argument or pipe it in".to_string(),
        ));
    }
    let trimmed = line.trim_end_matches(['\r', '\n']);
    if trimmed.is_empty() {
        return Err(CliError::Local("No value entered".to_string()));
    }
    Ok(Zeroizing::new(trimmed.to_string()))
}

/// Restores the terminal's echo setting when dropped.
struct EchoGuard {
    original: libc::termios,
}

impl EchoGuard {
    /// Turns off echo on fd 0 if it is a terminal; `None` otherwise (nothing to restore).
    fn disable() -> Option<Self> {
        // SAFETY: isatty only inspects the descriptor.
        if unsafe { libc::isatty(libc::STDIN_FILENO) } != 1 {
            return None;
        }
        // SAFETY: termios is a plain C struct; all-zero is a valid value to be overwritten.
        let mut original: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd 0 is a terminal and `original` is a valid, writable termios.
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut original) } != 0 {
            return None;
        }
        let mut silent = original;
        silent.c_lflag &= !libc::ECHO;
        silent.c_lflag |= libc::ECHONL;
        // SAFETY: `silent` is a valid termios derived from the current settings.
        if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &silent) } != 0 {
            return None;
        }
        Some(Self { original })
    }
}

impl Drop for EchoGuard {
    fn drop(&mut self) {
        // SAFETY: restores settings previously read from the same descriptor.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.original);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Piped input yields the line without its ending, and the prompt goes to the prompt stream.
    #[test]
    fn reads_one_line() {
        let mut input = &b"abc123\r\nnext\n"[..];
        let mut prompt = Vec::new();

        let value = prompt_secret(&mut input, &mut prompt, "Key: ", false).unwrap();

        assert_eq!(value.as_str(), "abc123");
        assert_eq!(prompt, b"Key: ");
    }

    // End of input or an empty line is an error, never an empty secret sent to the server.
    #[test]
    fn empty_input_is_an_error() {
        let mut eof = &b""[..];
        let mut blank = &b"\n"[..];

        assert!(prompt_secret(&mut eof, &mut Vec::new(), "Key: ", false).is_err());
        assert!(prompt_secret(&mut blank, &mut Vec::new(), "Key: ", false).is_err());
    }
}
