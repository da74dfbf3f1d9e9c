//! The client half of the `strongroom` binary: a `vault`-compatible command line.
//!
//! Operators and scripts already know the `vault` CLI, so this crate speaks its dialect —
//! single-dash long flags, `VAULT_*` variables, `~/.vault-token`, Vault's tables, JSON keys and
//! exit codes (0 ok, 1 local/usage error, 2 server error) — against any server that speaks the
//! Vault HTTP API. The binary's `main` handles `server` and hands every other command here.
//!
//! Entry points: [`run`] uses the real process environment and standard streams;
//! [`run_with_io`] takes them as parameters so tests can drive the CLI in-process.

// libc calls live in one small module that opts in with `#![allow(unsafe_code)]`.
#![deny(unsafe_code)]

mod args;
mod client;
mod commands;
mod config;
#[cfg(test)]
mod e2e_tests;
mod error;
mod kv_args;
mod output;
mod terminal;
mod tls;
mod token_helper;

use std::io::{BufReader, IsTerminal, Read, Write};

pub use commands::{DecodeError, decode_token, verify_snapshot};
pub use error::{CliError, EXIT_LOCAL, EXIT_OK, EXIT_REMOTE};
pub use token_helper::TokenHelper;

/// Runs one CLI invocation with the process's environment and standard streams.
///
/// `args` are the arguments after the program name, e.g. `["read", "-field=foo", "secret/x"]`.
/// Returns the exit code.
pub fn run(args: Vec<String>) -> i32 {
    let interactive = std::io::stdin().is_terminal();
    let mut stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    let env = |key: &str| std::env::var(key).ok();
    execute(
        args,
        &mut stdin,
        &mut stdout,
        &mut stderr,
        &env,
        interactive,
    )
}

/// Runs one CLI invocation with explicit streams and environment (for tests).
///
/// `env` answers environment lookups (`VAULT_ADDR`, `VAULT_TOKEN`, `HOME`, ...); nothing is read
/// from the real process environment. Prompts never try to switch terminal echo off. Safe to
/// call from inside a tokio runtime: the work then runs on a helper thread.
pub fn run_with_io(
    args: Vec<String>,
    stdin: &mut (dyn Read + Send),
    stdout: &mut (dyn Write + Send),
    stderr: &mut (dyn Write + Send),
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> i32 {
    execute(args, stdin, stdout, stderr, env, false)
}

fn execute(
    args: Vec<String>,
    stdin: &mut (dyn Read + Send),
    stdout: &mut (dyn Write + Send),
    stderr: &mut (dyn Write + Send),
    env: &(dyn Fn(&str) -> Option<String> + Sync),
    interactive: bool,
) -> i32 {
    let work = move || {
        let mut stdin = BufReader::new(stdin);
        let mut ctx = commands::Ctx {
            stdin: &mut stdin,
            stdout,
            stderr,
            env,
            interactive,
        };
        commands::dispatch(&mut ctx, &args)
    };
    // The HTTP client blocks on its own runtime, which tokio forbids inside another runtime's
    // worker; run on a scoped thread in that case.
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|scope| scope.spawn(work).join().unwrap_or(EXIT_LOCAL))
    } else {
        work()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_capture(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut input = stdin;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_with_io(args, &mut input, &mut out, &mut err, &|_| None);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    // `-version`, `--version` and `version` print the same single line.
    #[test]
    fn version_forms() {
        for form in ["-version", "--version", "version", "-v"] {
            let (code, out, _) = run_capture(&[form], b"");
            assert_eq!(code, 0, "{form}");
            assert!(out.starts_with("Vault v1.16.3 "), "{form}: {out}");
            assert!(out.contains("Strongroom v"), "{form}: {out}");
        }
    }

    // hvac's exact invocation of generate-root -decode works with no server (and -address unused).
    #[test]
    fn generate_root_decode_end_to_end() {
        let (code, out, err) = run_capture(
            &[
                "operator",
                "generate-root",
                "-address",
                "https://127.0.0.1:1",
                "-tls-skip-verify",
                "-decode",
                "PzVHSRMXERYIFCl9IhIMKwUoMz8OJBEgXAIIdQ",
                "-otp",
                "WC4gXgKrEUZIRDxHRNTiiUIf9GO8",
            ],
            b"",
        );

        assert_eq!(code, 0, "{err}");
        assert_eq!(out, "hvs.KpZdMAs4pVtcWfgVgqXFeEGM\n");
    }

    // With -format=json the decoded token is a {"token": ...} object.
    #[test]
    fn generate_root_decode_json() {
        let (code, out, _) = run_capture(
            &[
                "operator",
                "generate-root",
                "-format=json",
                "-decode=PzVHSRMXERYIFCl9IhIMKwUoMz8OJBEgXAIIdQ",
                "-otp=WC4gXgKrEUZIRDxHRNTiiUIf9GO8",
            ],
            b"",
        );

        assert_eq!(code, 0);
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value["token"], "hvs.KpZdMAs4pVtcWfgVgqXFeEGM");
    }

    // -decode without -otp is a usage error, exit 1.
    #[test]
    fn generate_root_decode_needs_otp() {
        let (code, _, err) = run_capture(&["operator", "generate-root", "-decode=abc"], b"");

        assert_eq!(code, 1);
        assert!(err.contains("-otp"));
    }

    // `write` with no data and no -force is refused locally before contacting anything.
    #[test]
    fn write_without_data_needs_force() {
        let (code, _, err) = run_capture(&["write", "secret/x"], b"");

        assert_eq!(code, 1);
        assert!(err.contains("-force"));
    }

    // The entry point also works when called from inside a tokio runtime (e2e tests do that).
    #[tokio::test(flavor = "current_thread")]
    async fn callable_inside_runtime() {
        let (code, out, _) = run_capture(&["version"], b"");

        assert_eq!(code, 0);
        assert!(out.starts_with("Vault v"));
    }

    // Inside a runtime a network command must not panic on the nested runtime either.
    #[tokio::test(flavor = "current_thread")]
    async fn network_command_inside_runtime() {
        let args: Vec<String> = ["status", "-address=http://127.0.0.1:1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let env = |key: &str| (key == "VAULT_MAX_RETRIES").then(|| "0".to_string());

        let code = run_with_io(args, &mut &b""[..], &mut out, &mut err, &env);

        assert_eq!(code, 1, "{}", String::from_utf8_lossy(&err));
    }
}
