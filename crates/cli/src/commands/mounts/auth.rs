//! `auth enable|list|disable|tune`: the auth method mount table (`sys/auth`).

use reqwest::Method;
use serde_json::Map;

use super::{
    ENABLE_FLAGS, LIST_FLAGS, MountKind, PathWrite, TUNE_FLAGS, enable_body, list_mounts,
    path_write, tune_body,
};
use crate::args::Parsed;
use crate::client::Body;
use crate::commands::{Command, Ctx, expect_args, report_write, sanitize_path};
use crate::config::HTTP_FLAGS;
use crate::error::CliError;
use crate::output::{FORMAT_FLAGS, OUTPUT_FLAGS};

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
    list_mounts(
        ctx,
        flags,
        "sys/auth",
        MountKind::Auth,
        "Error listing enabled authentications",
    )
}

fn run_disable(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    path_write(
        ctx,
        flags,
        PathWrite {
            method: Method::DELETE,
            api_path: &|p| format!("sys/auth/{p}"),
            body: None,
            error: &|p| format!("Error disabling auth method at {p}"),
            success: &|p| format!("Success! Disabled the auth method (if it existed) at: {p}"),
        },
    )
}

fn run_tune(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    path_write(
        ctx,
        flags,
        PathWrite {
            method: Method::POST,
            api_path: &|p| format!("sys/auth/{p}/tune"),
            body: Some(tune_body(flags)?),
            error: &|p| format!("Error tuning auth method {p}"),
            success: &|p| format!("Success! Tuned the auth method at: {p}"),
        },
    )
}
