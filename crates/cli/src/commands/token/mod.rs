//! `token ...`: create, inspect, renew and revoke tokens, and ask what a token may do.
//!
//! These are thin wrappers over `auth/token/*` and `sys/capabilities*`, but the flag names,
//! which endpoint each flag combination picks, and the output follow Vault's CLI so scripts
//! written for `vault token` work unchanged.

mod capabilities;
mod create;
mod lookup;
mod revoke;

use serde_json::Value;

use super::{Command, Ctx};
use crate::error::{CliError, EXIT_OK};
use crate::output::{OutputOpts, render_secret};

/// Every `token` command.
pub const COMMANDS: &[Command] = &[
    create::COMMAND,
    lookup::LOOKUP,
    lookup::RENEW,
    revoke::COMMAND,
    capabilities::COMMAND,
];

/// Prints an answer that must have a body (token answers always do).
fn print_answer(
    ctx: &mut Ctx<'_>,
    answer: Option<Value>,
    output: &OutputOpts,
    what: &str,
) -> Result<i32, CliError> {
    let answer =
        answer.ok_or_else(|| CliError::Remote(format!("{what}: the server returned no data")))?;
    let rendered = render_secret(&answer, output)?;
    ctx.emit(&rendered)?;
    Ok(EXIT_OK)
}
