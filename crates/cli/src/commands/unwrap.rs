//! `unwrap`: redeem a response-wrapping token for the answer it holds.
//!
//! With an argument the wrapping token travels in the body and the caller's own token
//! authenticates; without one the wrapping token is the caller's token (`VAULT_TOKEN`), which
//! is how a process that only received a wrapping token gets its secret. Either way the
//! wrapping token is single-use: a second unwrap fails on the server.

use reqwest::Method;
use serde_json::json;
use zeroize::Zeroizing;

use super::{Command, Ctx, expect_at_most};
use crate::args::Parsed;
use crate::client::Body;
use crate::config::HTTP_FLAGS;
use crate::error::{CliError, EXIT_OK, EXIT_REMOTE};
use crate::output::{OUTPUT_FLAGS, render_secret};

pub const COMMAND: Command = Command {
    words: &["unwrap"],
    args: "[TOKEN]",
    synopsis: "Unwrap a wrapped response (the wrapping token defaults to your token).",
    flags: &[HTTP_FLAGS, OUTPUT_FLAGS],
    run,
};

fn run(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_at_most(flags, 1)?;
    let output = ctx.output(flags)?;
    let wrapping = flags
        .positionals
        .first()
        .map(|token| Zeroizing::new(token.trim().to_string()));
    if wrapping.as_ref().is_some_and(|token| token.is_empty()) {
        return Err(CliError::Usage("The wrapping token is empty".to_string()));
    }
    let client = ctx.connect(flags)?;
    let answer = match &wrapping {
        Some(token) => {
            let mut body = json!({ "token": token.as_str() });
            let sent = client.send(Method::PUT, "sys/wrapping/unwrap", &[], Body::Json(&body));
            // Our copy of the wrapping token in the body is no longer needed.
            if let Some(serde_json::Value::String(copy)) = body.get_mut("token") {
                zeroize::Zeroize::zeroize(copy);
            }
            sent
        }
        None => client.send(Method::PUT, "sys/wrapping/unwrap", &[], Body::None),
    }
    .map_err(|err| CliError::client("Error unwrapping", err))?;
    let Some(secret) = answer else {
        ctx.err("Could not find wrapped response\n")?;
        return Ok(EXIT_REMOTE);
    };
    let rendered = render_secret(&secret, &output)?;
    ctx.emit(&rendered)?;
    Ok(EXIT_OK)
}
