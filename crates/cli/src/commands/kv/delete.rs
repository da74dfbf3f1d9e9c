//! `kv delete`, `kv undelete`, `kv destroy`: soft-delete, restore, or wipe versions.

use reqwest::Method;

use super::{KvPath, MOUNT_FLAG, path_arg, require_v2, versions_body, versions_flag};
use crate::args::{FlagSpec, Parsed};
use crate::client::Body;
use crate::commands::{Command, Ctx, expect_args, report_write};
use crate::config::HTTP_FLAGS;
use crate::error::CliError;
use crate::output::OUTPUT_FLAGS;

const VERSIONS_FLAGS: &[FlagSpec] = &[
    MOUNT_FLAG,
    FlagSpec::value(
        "versions",
        "Comma-separated versions to act on (KV version 2), e.g. -versions=1,3.",
    ),
];

pub const DELETE: Command = Command {
    words: &["kv", "delete"],
    args: "PATH",
    synopsis: "Delete a secret (KV version 2: soft-delete the latest or the -versions given).",
    flags: &[HTTP_FLAGS, OUTPUT_FLAGS, VERSIONS_FLAGS],
    run: run_delete,
};

pub const UNDELETE: Command = Command {
    words: &["kv", "undelete"],
    args: "PATH",
    synopsis: "Restore soft-deleted versions of a secret (KV version 2).",
    flags: &[HTTP_FLAGS, OUTPUT_FLAGS, VERSIONS_FLAGS],
    run: run_undelete,
};

pub const DESTROY: Command = Command {
    words: &["kv", "destroy"],
    args: "PATH",
    synopsis: "Permanently wipe versions of a secret (KV version 2).",
    flags: &[HTTP_FLAGS, OUTPUT_FLAGS, VERSIONS_FLAGS],
    run: run_destroy,
};

fn run_delete(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 1)?;
    let output = ctx.output(flags)?;
    let versions = versions_flag(flags)?;
    let mut client = ctx.connect(flags)?;
    let path = KvPath::resolve(&mut client, flags, path_arg(flags)?)?;
    let (full, answer) = if path.v2 && !versions.is_empty() {
        let full = path.api("delete");
        let body = versions_body(&versions);
        (
            full.clone(),
            client.send(Method::PUT, &full, &[], Body::Json(&body)),
        )
    } else {
        let full = path.api("data");
        (
            full.clone(),
            client.send(Method::DELETE, &full, &[], Body::None),
        )
    };
    let answer = answer.map_err(|err| CliError::client(format!("Error deleting {full}"), err))?;
    report_write(
        ctx,
        answer,
        &output,
        &format!("Success! Data deleted (if it existed) at: {full}"),
    )
}

fn run_undelete(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    write_versions(ctx, flags, "undelete", "Undelete")
}

fn run_destroy(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    write_versions(ctx, flags, "destroy", "Destroy")
}

/// `undelete` and `destroy`: PUT `{"versions": [...]}` to `<mount>/<section>/<path>`.
fn write_versions(
    ctx: &mut Ctx<'_>,
    flags: &Parsed,
    section: &str,
    what: &str,
) -> Result<i32, CliError> {
    expect_args(flags, 1)?;
    let output = ctx.output(flags)?;
    let versions = versions_flag(flags)?;
    if versions.is_empty() {
        return Err(CliError::Usage(format!(
            "No versions provided, use the \"-versions\" flag to specify the version to {section}."
        )));
    }
    let mut client = ctx.connect(flags)?;
    let path = KvPath::resolve(&mut client, flags, path_arg(flags)?)?;
    require_v2(&path, what)?;
    let full = path.api(section);
    let body = versions_body(&versions);
    let answer = client
        .send(Method::PUT, &full, &[], Body::Json(&body))
        .map_err(|err| CliError::client(format!("Error writing data to {full}"), err))?;
    report_write(
        ctx,
        answer,
        &output,
        &format!("Success! Data written to: {full}"),
    )
}
