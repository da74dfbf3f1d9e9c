//! `write`: PUT data to a logical path.

use reqwest::Method;
use serde_json::Value;

use super::{Command, Ctx, sanitize_path};
use crate::args::{FlagKind, FlagSpec, Parsed};
use crate::client::Body;
use crate::config::HTTP_FLAGS;
use crate::error::{CliError, EXIT_OK};
use crate::kv_args::parse_data;
use crate::output::{OUTPUT_FLAGS, render_secret};

const WRITE_FLAGS: &[FlagSpec] = &[FlagSpec {
    name: "force",
    aliases: &["f"],
    kind: FlagKind::Bool,
    help: "Allow the write with no data (for endpoints that take none).",
}];

pub const COMMAND: Command = Command {
    words: &["write"],
    args: "PATH [K=V | K=@FILE | K=- | @FILE.json | -]...",
    synopsis: "Write data to a path.",
    flags: &[HTTP_FLAGS, OUTPUT_FLAGS, WRITE_FLAGS],
    run,
};

fn run(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    let Some((path, data_args)) = flags.positionals.split_first() else {
        return Err(CliError::Usage(
            "Not enough arguments (expected at least 1, got 0)".to_string(),
        ));
    };
    let path = sanitize_path(path);
    if data_args.is_empty() && !flags.switch("force") {
        return Err(CliError::Usage(
            "Must supply data or use -force".to_string(),
        ));
    }
    let output = ctx.output(flags)?;
    let data = parse_data(data_args, ctx.stdin)?;
    let client = ctx.connect(flags)?;

    let body = Value::Object(data);
    let answer = client
        .request(Method::PUT, &path, &[], Body::Json(&body))
        .and_then(|resp| resp.json(&Method::PUT, &client.url(&path)))
        .map_err(|err| CliError::client(format!("Error writing data to {path}"), err))?;
    match answer {
        None => {
            if output.field.is_some() {
                return Err(CliError::Local(format!(
                    "Field \"{}\" not present in secret: the write returned no data",
                    output.field.as_deref().unwrap_or_default()
                )));
            }
            ctx.out(&format!("Success! Data written to: {path}\n"))?;
        }
        Some(value) => {
            let rendered = render_secret(&value, &output)?;
            ctx.emit(&rendered)?;
        }
    }
    Ok(EXIT_OK)
}
