//! `operator unseal`: submit one unseal key share (or reset the attempt).

use serde_json::Value;
use strongroom_api::{SealStatus, UnsealRequest};
use zeroize::Zeroizing;

use super::status::{print, with_leader};
use super::{Command, Ctx, decode, expect_at_most, read_key_share};
use crate::args::{FlagSpec, Parsed};
use crate::config::HTTP_FLAGS;
use crate::error::{CliError, EXIT_OK};
use crate::output::FORMAT_FLAGS;

const UNSEAL_FLAGS: &[FlagSpec] = &[
    FlagSpec::switch("reset", "Discard the key shares submitted so far."),
    FlagSpec::switch("migrate", "Mark the share as part of a seal migration."),
];

pub const COMMAND: Command = Command {
    words: &["operator", "unseal"],
    args: "[KEY | -]",
    synopsis: "Submit an unseal key share (prompts for it if omitted; '-' reads stdin).",
    flags: &[HTTP_FLAGS, FORMAT_FLAGS, UNSEAL_FLAGS],
    run,
};

fn run(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_at_most(flags, 1)?;
    let output = ctx.output(flags)?;
    let reset = flags.switch("reset");
    let key: Option<Zeroizing<String>> = if reset {
        None
    } else {
        Some(read_key_share(
            ctx,
            flags.positionals.first().map(String::as_str),
        )?)
    };
    if key.as_ref().is_some_and(|k| k.is_empty()) {
        return Err(CliError::Usage("The unseal key is empty".to_string()));
    }
    let client = ctx.connect(flags)?;
    let request = UnsealRequest {
        key: key.as_ref().map(|k| k.to_string()),
        reset,
        migrate: flags.switch("migrate"),
    };
    let mut body = serde_json::to_value(&request)
        .map_err(|err| CliError::Local(format!("Error encoding the request: {err}")))?;
    drop(request);
    let answer = client.put_json("sys/unseal", &body);
    if let Some(Value::String(sent)) = body.get_mut("key") {
        zeroize::Zeroize::zeroize(sent);
    }
    let answer = answer.map_err(|err| CliError::client("Error unsealing", err))?;
    let seal: SealStatus = decode(answer.clone(), "Error unsealing")?;
    let report = with_leader(&client, seal, answer.unwrap_or(Value::Null))?;
    print(ctx, &report, output.format)?;
    Ok(EXIT_OK)
}
