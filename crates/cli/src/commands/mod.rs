//! The command table and dispatcher.
//!
//! Each command declares its words (`operator raft snapshot save`), its flags and its usage
//! line in one table, so parsing, `-help` and "unknown command" handling are uniform and a new
//! command is one entry plus one function.

mod delete;
mod generate_root;
mod kv;
mod list;
mod login;
mod mounts;
mod operator_init;
mod operator_rekey;
mod operator_seal;
mod operator_unseal;
mod pgp_keys;
mod policy;
mod raft;
mod raft_autopilot;
mod raft_snapshot;
mod read;
mod rotate;
mod status;
mod token;
mod unwrap;
mod version;
mod write;

use std::io::{BufRead, Write};

use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::args::{self, FlagSpec, Parsed};
use crate::client::{Client, ClientError};
use crate::config::Config;
use crate::error::{CliError, EXIT_LOCAL, EXIT_OK};
use crate::output::{OutputOpts, Rendered};

pub use generate_root::{DecodeError, decode_token};
pub use raft_snapshot::verify_snapshot;

/// Name the binary is invoked as in help texts.
pub const BIN: &str = "strongroom";

/// What a command can reach: the standard streams and the environment.
pub struct Ctx<'a> {
    pub stdin: &'a mut dyn BufRead,
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Stdin is the process's own terminal, so prompts may switch echo off.
    pub interactive: bool,
}

impl Ctx<'_> {
    /// Writes text to stdout.
    pub fn out(&mut self, text: &str) -> Result<(), CliError> {
        self.stdout.write_all(text.as_bytes())?;
        Ok(())
    }

    /// Writes text to stderr.
    pub fn err(&mut self, text: &str) -> Result<(), CliError> {
        self.stderr.write_all(text.as_bytes())?;
        Ok(())
    }

    /// Writes a rendered response.
    pub fn emit(&mut self, rendered: &Rendered) -> Result<(), CliError> {
        self.err(&rendered.stderr)?;
        self.out(&rendered.stdout)
    }

    /// Output options from `-format`/`-field` and `VAULT_FORMAT`.
    pub fn output(&self, flags: &Parsed) -> Result<OutputOpts, CliError> {
        OutputOpts::resolve(self.env, flags)
    }

    /// A client configured from the flags and environment.
    pub fn connect(&self, flags: &Parsed) -> Result<Client, CliError> {
        let config = Config::resolve(self.env, flags)?;
        Client::new(&config).map_err(|err| CliError::Local(err.to_string()))
    }

    /// Prompts on stderr and reads a secret line from stdin.
    pub fn prompt_secret(&mut self, label: &str) -> Result<Zeroizing<String>, CliError> {
        crate::terminal::prompt_secret(self.stdin, self.stderr, label, self.interactive)
    }
}

type Handler = fn(&mut Ctx<'_>, &Parsed) -> Result<i32, CliError>;

/// One entry of the command table.
pub struct Command {
    /// The words that select the command, e.g. `["operator", "init"]`.
    pub words: &'static [&'static str],
    /// Arguments after the options in the usage line, e.g. `PATH [K=V...]`.
    pub args: &'static str,
    /// One-line description.
    pub synopsis: &'static str,
    pub flags: &'static [&'static [FlagSpec]],
    pub run: Handler,
}

impl Command {
    fn name(&self) -> String {
        self.words.join(" ")
    }

    fn usage_line(&self) -> String {
        format!("Usage: {BIN} {} [options] {}", self.name(), self.args)
            .trim_end()
            .to_string()
    }

    fn help(&self) -> String {
        let mut text = format!("{}\n\n  {}\n", self.usage_line(), self.synopsis);
        let flags = args::describe(self.flags);
        if !flags.is_empty() {
            text.push_str("\nOptions:\n\n");
            text.push_str(&flags);
        }
        text
    }
}

/// Every command the CLI knows, by group.
const GROUPS: &[&[Command]] = &[BASE, kv::COMMANDS, token::COMMANDS, policy::COMMANDS];

/// Every command the CLI knows.
fn commands() -> impl Iterator<Item = &'static Command> {
    GROUPS
        .iter()
        .chain(mounts::COMMANDS.iter())
        .flat_map(|group| group.iter())
}

/// The generic and operator commands.
const BASE: &[Command] = &[
    status::COMMAND,
    read::COMMAND,
    write::COMMAND,
    delete::COMMAND,
    list::COMMAND,
    login::COMMAND,
    unwrap::COMMAND,
    operator_init::COMMAND,
    operator_unseal::COMMAND,
    operator_rekey::COMMAND,
    operator_seal::SEAL,
    operator_seal::STEP_DOWN,
    generate_root::COMMAND,
    rotate::ROTATE,
    rotate::KEY_STATUS,
    raft::LIST_PEERS,
    raft::JOIN,
    raft::REMOVE_PEER,
    raft::PROMOTE,
    raft::DEMOTE,
    raft_autopilot::STATE,
    raft_autopilot::GET_CONFIG,
    raft_autopilot::SET_CONFIG,
    raft_snapshot::SAVE,
    raft_snapshot::RESTORE,
    version::COMMAND,
];

/// Runs the command named by the leading words of `argv` (which excludes the program name).
pub fn dispatch(ctx: &mut Ctx<'_>, argv: &[String]) -> i32 {
    match argv.first().map(String::as_str) {
        None | Some("help" | "-h" | "-help" | "--help") => {
            let result = ctx_write_usage(ctx, EXIT_OK);
            return finish(ctx, result, None);
        }
        Some("-v" | "-version" | "--version") => {
            let result = version::print(ctx);
            return finish(ctx, result, None);
        }
        _ => {}
    }
    let Some(command) = commands()
        .filter(|cmd| {
            cmd.words.len() <= argv.len() && cmd.words.iter().zip(argv).all(|(w, a)| w == a)
        })
        .max_by_key(|cmd| cmd.words.len())
    else {
        return unknown_command(ctx, argv);
    };
    let rest = &argv[command.words.len()..];
    let result = args::parse(rest, command.flags)
        .map_err(CliError::from)
        .and_then(|parsed| {
            if parsed.help {
                ctx.out(&command.help()).map(|()| EXIT_OK)
            } else {
                (command.run)(ctx, &parsed)
            }
        });
    finish(ctx, result, Some(command))
}

fn finish(ctx: &mut Ctx<'_>, result: Result<i32, CliError>, command: Option<&Command>) -> i32 {
    let code = match result {
        Ok(code) => code,
        Err(err) => {
            let mut text = err.to_string();
            if let (CliError::Usage(_), Some(command)) = (&err, command) {
                text.push_str(&format!(
                    "\n\n{}\n\nRun \"{BIN} {} -help\" for the options.",
                    command.usage_line(),
                    command.name()
                ));
            }
            // Nothing sensible is left to do if stderr itself is broken.
            let _ = writeln!(ctx.stderr, "{text}");
            err.exit_code()
        }
    };
    let _ = ctx.stdout.flush();
    let _ = ctx.stderr.flush();
    code
}

fn unknown_command(ctx: &mut Ctx<'_>, argv: &[String]) -> i32 {
    // A known prefix such as `operator` or `operator raft`: list what can follow it.
    let prefix: Vec<&String> = argv.iter().take_while(|a| !a.starts_with('-')).collect();
    for depth in (1..=prefix.len()).rev() {
        let words = &prefix[..depth];
        let children: Vec<&Command> = commands()
            .filter(|cmd| {
                cmd.words.len() > depth && cmd.words.iter().zip(words).all(|(w, a)| w == *a)
            })
            .collect();
        if !children.is_empty() {
            let group = words
                .iter()
                .map(|w| w.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let mut text = match argv.get(depth) {
                Some(sub) => format!("Unknown subcommand \"{sub}\" for \"{group}\".\n\n"),
                None => String::new(),
            };
            text.push_str(&format!(
                "Usage: {BIN} {group} <subcommand> [options] [args]\n\n"
            ));
            text.push_str(&listing(&children));
            let _ = ctx.stderr.write_all(text.as_bytes());
            return EXIT_LOCAL;
        }
    }
    let name = argv.first().map(String::as_str).unwrap_or("");
    let _ = writeln!(ctx.stderr, "Unknown command \"{name}\".\n");
    ctx_write_usage_to_stderr(ctx);
    EXIT_LOCAL
}

fn listing(commands: &[&Command]) -> String {
    let rows: Vec<Vec<String>> = commands
        .iter()
        .map(|cmd| vec![format!("    {}", cmd.name()), cmd.synopsis.to_string()])
        .collect();
    crate::output::columns(&rows)
}

fn usage_text() -> String {
    let mut text = format!(
        "Usage: {BIN} <command> [options] [args]\n\n\
         A client for Strongroom and other servers speaking the Vault HTTP API.\n\
         (`{BIN} server` starts a server.)\n\nCommands:\n\n"
    );
    let all: Vec<&Command> = commands().collect();
    text.push_str(&listing(&all));
    text.push_str(&format!(
        "\nRun \"{BIN} <command> -help\" for a command's options.\n"
    ));
    text
}

fn ctx_write_usage(ctx: &mut Ctx<'_>, code: i32) -> Result<i32, CliError> {
    ctx.out(&usage_text())?;
    Ok(code)
}

fn ctx_write_usage_to_stderr(ctx: &mut Ctx<'_>) {
    let _ = ctx.stderr.write_all(usage_text().as_bytes());
}

/// Fails unless exactly `count` positional arguments were given.
pub fn expect_args(parsed: &Parsed, count: usize) -> Result<(), CliError> {
    let got = parsed.positionals.len();
    if got == count {
        Ok(())
    } else if got < count {
        Err(CliError::Usage(format!(
            "Not enough arguments (expected {count}, got {got})"
        )))
    } else {
        Err(CliError::Usage(format!(
            "Too many arguments (expected {count}, got {got})"
        )))
    }
}

/// Fails if more than `max` positional arguments were given.
pub fn expect_at_most(parsed: &Parsed, max: usize) -> Result<(), CliError> {
    let got = parsed.positionals.len();
    if got > max {
        return Err(CliError::Usage(format!(
            "Too many arguments (expected at most {max}, got {got})"
        )));
    }
    Ok(())
}

/// An unseal key share from the argument, stdin (`-`) or, without one, a hidden prompt.
pub fn read_key_share(
    ctx: &mut Ctx<'_>,
    positional: Option<&str>,
) -> Result<Zeroizing<String>, CliError> {
    Ok(match positional {
        Some("-") => {
            let mut text = Zeroizing::new(String::new());
            ctx.stdin
                .read_to_string(&mut text)
                .map_err(|err| CliError::Local(format!("Error reading from stdin: {err}")))?;
            Zeroizing::new(text.trim().to_string())
        }
        Some(key) => Zeroizing::new(key.trim().to_string()),
        None => ctx.prompt_secret("Unseal Key (will be hidden): ")?,
    })
}

/// A key share count flag (`-key-shares`, `-key-threshold`): 1 to 255, `default` if absent.
pub fn share_count(flags: &Parsed, name: &str, default: u32) -> Result<u32, CliError> {
    match flags.value(name) {
        None => Ok(default),
        Some(raw) => match raw.trim().parse::<u32>() {
            Ok(n) if (1..=255).contains(&n) => Ok(n),
            _ => Err(CliError::Usage(format!(
                "Invalid -{name} {raw:?}: use a whole number from 1 to 255"
            ))),
        },
    }
}

/// Normalizes a logical path as Vault does: surrounding spaces and slashes removed.
pub fn sanitize_path(path: &str) -> String {
    path.trim().trim_matches('/').to_string()
}

/// Decodes a raw sys answer into its wire type.
pub fn decode<T: serde::de::DeserializeOwned>(
    value: Option<Value>,
    what: &str,
) -> Result<T, CliError> {
    let value =
        value.ok_or_else(|| CliError::Remote(format!("{what}: the server sent no body")))?;
    serde_json::from_value(value).map_err(|err| {
        CliError::Remote(format!("{what}: unexpected answer from the server: {err}"))
    })
}

/// Parses a TTL flag given as seconds or a Go duration (`30s`, `1h30m`) into whole seconds.
pub fn duration_flag(flags: &Parsed, name: &str) -> Result<Option<u64>, CliError> {
    let Some(raw) = flags.value(name) else {
        return Ok(None);
    };
    let parsed = crate::config::parse_duration(raw)
        .filter(|d| d.subsec_nanos() == 0)
        .ok_or_else(|| {
            CliError::Usage(format!(
                "Invalid duration {raw:?} for -{name}: use whole seconds or a duration like 30s, 5m or 1h"
            ))
        })?;
    Ok(Some(parsed.as_secs()))
}

/// Collects a repeatable `-name=key=value` flag into a JSON object of strings.
pub fn map_flag(flags: &Parsed, name: &str) -> Result<Map<String, Value>, CliError> {
    let mut map = Map::new();
    for raw in flags.values(name) {
        let (key, value) = raw
            .split_once('=')
            .filter(|(key, _)| !key.is_empty())
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "Invalid value {raw:?} for -{name}: the format is key=value"
                ))
            })?;
        map.insert(key.to_string(), Value::String(value.to_string()));
    }
    Ok(map)
}

/// Splits repeated and comma-separated list flags (`-policy=a,b -policy=c`) into their items.
pub fn list_flag(flags: &Parsed, name: &str) -> Vec<String> {
    flags
        .values(name)
        .iter()
        .flat_map(|raw| raw.split(','))
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}

/// A mount-style path as Vault shows it: sanitized, with one trailing slash.
pub fn mount_path(path: &str) -> String {
    format!("{}/", sanitize_path(path))
}

/// Finishes a command whose endpoint normally answers 204: prints `message`, or the answer
/// itself when the server sent one (a wrapped response, warnings).
pub fn report_write(
    ctx: &mut Ctx<'_>,
    answer: Option<Value>,
    output: &OutputOpts,
    message: &str,
) -> Result<i32, CliError> {
    match answer {
        Some(value) if crate::output::is_wrapped(&value) || output.field.is_some() => {
            let rendered = crate::output::render_secret(&value, output)?;
            ctx.emit(&rendered)?;
        }
        Some(value) if output.format != crate::output::Format::Table => {
            let rendered = crate::output::render_secret(&value, output)?;
            ctx.emit(&rendered)?;
        }
        Some(value) => {
            let rendered = crate::output::render_secret(&value, output)?;
            ctx.err(&rendered.stderr)?;
            ctx.out(&format!("{message}\n"))?;
        }
        None => {
            if let Some(field) = &output.field {
                return Err(CliError::Local(format!(
                    "Field \"{field}\" not present in secret"
                )));
            }
            ctx.out(&format!("{message}\n"))?;
        }
    }
    Ok(EXIT_OK)
}

/// Maps an error of a command whose exit code 2 is reserved for a state (sealed, not
/// initialized): every failure must exit 1 instead.
pub fn status_error(context: &str, err: ClientError) -> CliError {
    CliError::Local(format!("{context}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(argv: &[&str]) -> (i32, String, String) {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let mut stdin = &b""[..];
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let env = |_: &str| None;
        let mut ctx = Ctx {
            stdin: &mut stdin,
            stdout: &mut stdout,
            stderr: &mut stderr,
            env: &env,
            interactive: false,
        };
        let code = dispatch(&mut ctx, &argv);
        (
            code,
            String::from_utf8(stdout).unwrap(),
            String::from_utf8(stderr).unwrap(),
        )
    }

    // No arguments or `help` prints the command list and succeeds.
    #[test]
    fn help_lists_commands() {
        for argv in [&[][..], &["help"][..], &["--help"][..]] {
            let (code, out, _) = run(argv);
            assert_eq!(code, 0);
            assert!(out.contains("operator raft snapshot save"));
            assert!(out.contains("read"));
        }
    }

    // Unknown commands are usage errors (exit 1) that say what was typed.
    #[test]
    fn unknown_command_exits_1() {
        let (code, _, err) = run(&["frobnicate"]);

        assert_eq!(code, 1);
        assert!(err.contains("\"frobnicate\""));
    }

    // A group word alone lists its subcommands.
    #[test]
    fn group_lists_subcommands() {
        let (code, _, err) = run(&["operator", "raft", "bogus"]);

        assert_eq!(code, 1);
        assert!(err.contains("Unknown subcommand \"bogus\""));
        assert!(err.contains("list-peers"));
    }

    // An unknown flag names the flag, shows the usage line and exits 1 before any network use.
    #[test]
    fn unknown_flag_exits_1() {
        let (code, _, err) = run(&["read", "-bogus", "secret/x"]);

        assert_eq!(code, 1);
        assert!(err.contains("flag provided but not defined: -bogus"));
        assert!(err.contains("Usage: strongroom read"));
    }

    // `-help` on a command prints its options and succeeds.
    #[test]
    fn command_help() {
        let (code, out, _) = run(&["write", "-help"]);

        assert_eq!(code, 0);
        assert!(out.contains("-force, -f"));
        assert!(out.contains("-address"));
    }

    // Wrong positional counts are usage errors.
    #[test]
    fn positional_count_is_checked() {
        let (code, _, err) = run(&["read"]);

        assert_eq!(code, 1);
        assert!(err.contains("Not enough arguments"));
    }

    // A connection failure is a remote error: exit 2, with the URL in the message.
    #[test]
    fn connection_refused_exits_2() {
        let argv = ["read", "-address=http://127.0.0.1:1", "secret/x"];
        let env = |key: &str| (key == "VAULT_MAX_RETRIES").then(|| "0".to_string());
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let mut stdin = &b""[..];
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let mut ctx = Ctx {
            stdin: &mut stdin,
            stdout: &mut stdout,
            stderr: &mut stderr,
            env: &env,
            interactive: false,
        };

        let code = dispatch(&mut ctx, &argv);

        assert_eq!(code, 2);
        let err = String::from_utf8(stderr).unwrap();
        assert!(
            err.starts_with("Error reading secret/x: GET http://127.0.0.1:1/v1/secret/x"),
            "{err}"
        );
    }

    // Paths lose surrounding slashes and spaces, as in Vault.
    #[test]
    fn path_sanitizing() {
        assert_eq!(sanitize_path(" /secret/foo/ "), "secret/foo");
    }
}
