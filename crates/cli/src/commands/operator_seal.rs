//! `operator seal` and `operator step-down`: the two sudo actions on a running active node.

use reqwest::Method;

use super::{Command, Ctx, expect_args};
use crate::args::Parsed;
use crate::client::Body;
use crate::config::HTTP_FLAGS;
use crate::error::{CliError, EXIT_OK};

pub const SEAL: Command = Command {
    words: &["operator", "seal"],
    args: "",
    synopsis: "Seal the server (it then needs unseal keys again).",
    flags: &[HTTP_FLAGS],
    run: seal,
};

pub const STEP_DOWN: Command = Command {
    words: &["operator", "step-down"],
    args: "",
    synopsis: "Make the active node give up leadership.",
    flags: &[HTTP_FLAGS],
    run: step_down,
};

fn seal(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 0)?;
    let client = ctx.connect(flags)?;
    client
        .request(Method::PUT, "sys/seal", &[], Body::None)
        .map_err(|err| CliError::client("Error sealing", err))?;
    ctx.out("Success! Vault is sealed.\n")?;
    Ok(EXIT_OK)
}

fn step_down(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 0)?;
    let client = ctx.connect(flags)?;
    client
        .request(Method::PUT, "sys/step-down", &[], Body::None)
        .map_err(|err| CliError::client("Error stepping down", err))?;
    ctx.out(&format!(
        "Success! Stepped down: {}\n",
        client.url("").trim_end_matches("/v1/")
    ))?;
    Ok(EXIT_OK)
}
