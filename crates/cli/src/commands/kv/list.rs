//! `kv list`: the keys under a path (KV version 2 lists its `metadata/` tree).

use reqwest::Method;
use serde_json::Value;

use super::{KvPath, MOUNT_FLAG, path_arg};
use crate::args::{FlagSpec, Parsed};
use crate::client::Body;
use crate::commands::{Command, Ctx, expect_args};
use crate::config::HTTP_FLAGS;
use crate::error::{CliError, EXIT_OK, EXIT_REMOTE};
use crate::output::{FORMAT_FLAGS, is_wrapped, render_secret};

const LIST_FLAGS: &[FlagSpec] = &[MOUNT_FLAG];

pub const COMMAND: Command = Command {
    words: &["kv", "list"],
    args: "PATH",
    synopsis: "List the keys under a path of a KV engine.",
    flags: &[HTTP_FLAGS, FORMAT_FLAGS, LIST_FLAGS],
    run,
};

fn run(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 1)?;
    let output = ctx.output(flags)?;
    let mut client = ctx.connect(flags)?;
    let path = KvPath::resolve(&mut client, flags, path_arg(flags)?)?;
    let full = format!("{}/", path.api("metadata"));
    let query = [("list".to_string(), "true".to_string())];
    let value = match client.send(Method::GET, &full, &query, Body::None) {
        Ok(Some(value)) => value,
        Ok(None) => return not_found(ctx, &full),
        Err(err) if err.status() == Some(404) => return not_found(ctx, &full),
        Err(err) => return Err(CliError::client(format!("Error listing {full}"), err)),
    };
    if is_wrapped(&value) {
        ctx.emit(&render_secret(&value, &output)?)?;
        return Ok(EXIT_OK);
    }
    let Some(keys) = value.pointer("/data/keys").and_then(Value::as_array) else {
        return not_found(ctx, &full);
    };
    ctx.out(&crate::commands::list::render_keys(keys, output.format))?;
    Ok(EXIT_OK)
}

fn not_found(ctx: &mut Ctx<'_>, path: &str) -> Result<i32, CliError> {
    ctx.err(&format!("No value found at {path}\n"))?;
    Ok(EXIT_REMOTE)
}
