//! `delete`: DELETE a logical path.

use reqwest::Method;

use super::{Command, Ctx, expect_args, sanitize_path};
use crate::args::Parsed;
use crate::client::Body;
use crate::config::HTTP_FLAGS;
use crate::error::{CliError, EXIT_OK};

pub const COMMAND: Command = Command {
    words: &["delete"],
    args: "PATH",
    synopsis: "Delete data at a path.",
    flags: &[HTTP_FLAGS],
    run,
};

fn run(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 1)?;
    let path = sanitize_path(&flags.positionals[0]);
    let client = ctx.connect(flags)?;
    client
        .request(Method::DELETE, &path, &[], Body::None)
        .map_err(|err| CliError::client(format!("Error deleting {path}"), err))?;
    ctx.out(&format!(
        "Success! Data deleted (if it existed) at: {path}\n"
    ))?;
    Ok(EXIT_OK)
}
