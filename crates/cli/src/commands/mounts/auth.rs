//! `auth enable|list|disable|tune`: the auth method mount table (`sys/auth`).

use reqwest::Method;
use serde_json::{Map, Value};

use super::{
    ENABLE_FLAGS, LIST_FLAGS, MountKind, TUNE_FLAGS, enable_body, mount_map, mount_table, tune_body,
};
use crate::args::Parsed;
use crate::client::Body;
use crate::commands::{Command, Ctx, expect_args, mount_path, report_write, sanitize_path};
use crate::config::HTTP_FLAGS;
use crate::error::{CliError, EXIT_OK};
use crate::output::{FORMAT_FLAGS, Format, OUTPUT_FLAGS, is_wrapped, render_secret, render_value};

pub const COMMANDS: &[Command] = &[
    Command {
        words: &["auth", "enable"],
        args: "TYPE",
        synopsis: "Enable an auth method (userpass, approle, ...).",
        flags: &[HTTP_FLAGS, OUTPUT_FLAGS, ENABLE_FLAGS],
        run: run_enable,
    },
    Command {
        words: &["auth", "list"],
        args: "",
        synopsis: "List enabled auth methods.",
        flags: &[HTTP_FLAGS, FORMAT_FLAGS, LIST_FLAGS],
        run: run_list,
    },
    Command {
        words: &["auth", "disable"],
        args: "PATH",
        synopsis: "Disable an auth method, revoking every token it issued.",
        flags: &[HTTP_FLAGS, OUTPUT_FLAGS],
        run: run_disable,
    },
    Command {
        words: &["auth", "tune"],
        args: "PATH",
        synopsis: "Change the TTLs, description or options of an auth method.",
        flags: &[HTTP_FLAGS, OUTPUT_FLAGS, TUNE_FLAGS],
        run: run_tune,
    },
];

fn run_enable(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 1)?;
    let output = ctx.output(flags)?;
    let kind = flags.positionals[0].trim().to_string();
    let path = sanitize_path(flags.value("path").unwrap_or(&kind));
    if kind.is_empty() || path.is_empty() {
        return Err(CliError::Usage(
            "The method type and path must not be empty".to_string(),
        ));
    }
    let body = enable_body(flags, &kind, Map::new())?;
    let client = ctx.connect(flags)?;
    let answer = client
        .send(
            Method::POST,
            &format!("sys/auth/{path}"),
            &[],
            Body::Json(&body),
        )
        .map_err(|err| CliError::client("Error enabling", err))?;
    report_write(
        ctx,
        answer,
        &output,
        &format!("Success! Enabled {kind} auth method at: {path}/"),
    )
}

fn run_list(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 0)?;
    let output = ctx.output(flags)?;
    let client = ctx.connect(flags)?;
    let answer = client
        .send(Method::GET, "sys/auth", &[], Body::None)
        .map_err(|err| CliError::client("Error listing enabled authentications", err))?
        .unwrap_or(Value::Null);
    if is_wrapped(&answer) {
        ctx.emit(&render_secret(&answer, &output)?)?;
        return Ok(EXIT_OK);
    }
    let mounts = mount_map(&answer);
    match output.format {
        Format::Table => ctx.out(&mount_table(
            &mounts,
            MountKind::Auth,
            flags.switch("detailed"),
        ))?,
        format => ctx.out(&render_value(&Value::Object(mounts), format))?,
    }
    Ok(EXIT_OK)
}

fn run_disable(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 1)?;
    let output = ctx.output(flags)?;
    let path = mount_path(&flags.positionals[0]);
    let client = ctx.connect(flags)?;
    let answer = client
        .send(
            Method::DELETE,
            &format!("sys/auth/{}", sanitize_path(&path)),
            &[],
            Body::None,
        )
        .map_err(|err| CliError::client(format!("Error disabling auth method at {path}"), err))?;
    report_write(
        ctx,
        answer,
        &output,
        &format!("Success! Disabled the auth method (if it existed) at: {path}"),
    )
}

fn run_tune(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 1)?;
    let output = ctx.output(flags)?;
    let path = mount_path(&flags.positionals[0]);
    let body = tune_body(flags)?;
    let client = ctx.connect(flags)?;
    let answer = client
        .send(
            Method::POST,
            &format!("sys/auth/{}/tune", sanitize_path(&path)),
            &[],
            Body::Json(&body),
        )
        .map_err(|err| CliError::client(format!("Error tuning auth method {path}"), err))?;
    report_write(
        ctx,
        answer,
        &output,
        &format!("Success! Tuned the auth method at: {path}"),
    )
}
