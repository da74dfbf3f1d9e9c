//! `operator rekey`: replace the unseal key shares with a new set, as `vault operator rekey`.
//!
//! The flow is Vault's: `-init` starts an attempt (new `-key-shares`/`-key-threshold`,
//! optional `-pgp-keys`, `-backup`, `-verify`), then each operator runs the command with the
//! attempt's `-nonce` and one current share (argument, `-` for stdin, or a hidden prompt).
//! The last share prints the new shares. With `-verify` at init, operators then give back
//! a threshold of the new shares with `-verify -nonce=<verification nonce>` before the new
//! key is used. `-backup-retrieve`/`-backup-delete` (also `-retrieve`/`-delete`) read and
//! remove the PGP-encrypted backup, which needs a sudo token.

use reqwest::Method;
use serde_json::Value;
use strongroom_api::{
    RekeyBackup, RekeyInitRequest, RekeyStatus, RekeyUpdateAnswer, RekeyUpdateRequest,
    RekeyVerificationStatus, RekeyVerifyAnswer,
};
use zeroize::{Zeroize, Zeroizing};

use super::pgp_keys::share_keys;
use super::{Command, Ctx, decode, expect_at_most, read_key_share, share_count};
use crate::args::{FlagSpec, Parsed};
use crate::client::{Body, Client};
use crate::config::HTTP_FLAGS;
use crate::error::{CliError, EXIT_OK};
use crate::output::{FORMAT_FLAGS, Format, key_value_table, render_value};

mod render;

const REKEY_FLAGS: &[FlagSpec] = &[
    FlagSpec::switch("init", "Start a rekey attempt."),
    FlagSpec::switch(
        "cancel",
        "Cancel the attempt (with -verify: restart verification).",
    ),
    FlagSpec::switch(
        "status",
        "Print the attempt's status (with -verify: the verification's).",
    ),
    FlagSpec::value(
        "key-shares",
        "Number of new key shares (with -init; default 5).",
    ),
    FlagSpec::value(
        "key-threshold",
        "New shares needed to unseal (with -init; default 3).",
    ),
    FlagSpec::value(
        "nonce",
        "Nonce of the attempt (or of the verification, with -verify).",
    ),
    FlagSpec::value(
        "pgp-keys",
        "Comma-separated PGP public key files, one per new share (with -init).",
    ),
    FlagSpec::switch(
        "backup",
        "Keep the PGP-encrypted new shares on the server (with -init).",
    ),
    FlagSpec::switch(
        "verify",
        "With -init: require verification. Otherwise: submit a NEW share to verify.",
    ),
    FlagSpec::switch(
        "backup-retrieve",
        "Print the backed-up encrypted shares (sudo).",
    ),
    FlagSpec::switch(
        "backup-delete",
        "Delete the backed-up encrypted shares (sudo).",
    ),
    FlagSpec::switch("retrieve", "Same as -backup-retrieve."),
    FlagSpec::switch("delete", "Same as -backup-delete."),
];

pub const COMMAND: Command = Command {
    words: &["operator", "rekey"],
    args: "[KEY | -]",
    synopsis: "Generate new unseal key shares from a quorum of the current ones.",
    flags: &[HTTP_FLAGS, FORMAT_FLAGS, REKEY_FLAGS],
    run,
};

/// The one thing this invocation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Init,
    Cancel,
    Status,
    Retrieve,
    DeleteBackup,
    Submit,
}

fn mode(flags: &Parsed) -> Result<Mode, CliError> {
    let chosen: Vec<(&str, Mode)> = [
        ("init", Mode::Init),
        ("cancel", Mode::Cancel),
        ("status", Mode::Status),
        ("backup-retrieve", Mode::Retrieve),
        ("retrieve", Mode::Retrieve),
        ("backup-delete", Mode::DeleteBackup),
        ("delete", Mode::DeleteBackup),
    ]
    .into_iter()
    .filter(|(name, _)| flags.switch(name))
    .collect();
    match chosen.as_slice() {
        [] => Ok(Mode::Submit),
        [(_, m)] => Ok(*m),
        _ => Err(CliError::Usage(format!(
            "Only one of -init, -cancel, -status, -backup-retrieve and -backup-delete may be given (got {})",
            chosen
                .iter()
                .map(|(n, _)| format!("-{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn run(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_at_most(flags, 1)?;
    let format = ctx.output(flags)?.format;
    let mode = mode(flags)?;
    if mode != Mode::Submit && !flags.positionals.is_empty() {
        return Err(CliError::Usage(
            "A key share can only be given when submitting one (without -init, -status, ...)"
                .to_string(),
        ));
    }
    let verify = flags.switch("verify");
    match mode {
        Mode::Init => init(ctx, flags, format),
        Mode::Cancel => cancel(ctx, flags, verify),
        Mode::Status => {
            let client = ctx.connect(flags)?;
            if verify {
                let (status, raw) = verify_status(&client)?;
                print(ctx, raw, format, || render::verification_rows(&status))
            } else {
                let (status, raw) = rekey_status(&client)?;
                print(ctx, raw, format, || render::status_rows(&status))
            }
        }
        Mode::Retrieve => retrieve(ctx, flags, format),
        Mode::DeleteBackup => {
            let client = ctx.connect(flags)?;
            client
                .request(Method::DELETE, "sys/rekey/backup", &[], Body::None)
                .map_err(|err| CliError::client("Error deleting backup keys", err))?;
            ctx.out("Success! Delete stored keys (if they existed)\n")?;
            Ok(EXIT_OK)
        }
        Mode::Submit if verify => submit_verification(ctx, flags, format),
        Mode::Submit => submit(ctx, flags, format),
    }
}

fn init(ctx: &mut Ctx<'_>, flags: &Parsed, format: Format) -> Result<i32, CliError> {
    let shares = share_count(flags, "key-shares", 5)?;
    let threshold = share_count(flags, "key-threshold", 3)?;
    if threshold > shares {
        return Err(CliError::Usage(format!(
            "-key-threshold ({threshold}) cannot be larger than -key-shares ({shares})"
        )));
    }
    let pgp_keys = share_keys(flags, shares)?;
    if flags.switch("backup") && pgp_keys.is_empty() {
        return Err(CliError::Usage(
            "-backup needs -pgp-keys: only PGP-encrypted shares can be backed up".to_string(),
        ));
    }
    let request = RekeyInitRequest {
        secret_shares: shares,
        secret_threshold: threshold,
        pgp_keys,
        backup: flags.switch("backup"),
        require_verification: flags.switch("verify"),
    };
    let body = serde_json::to_value(&request)
        .map_err(|err| CliError::Local(format!("Error encoding the request: {err}")))?;
    let client = ctx.connect(flags)?;
    let answer = client
        .put_json("sys/rekey/init", &body)
        .map_err(|err| CliError::client("Error initializing rekey", err))?;
    let status: RekeyStatus = decode(answer.clone(), "Error initializing rekey")?;
    print(ctx, answer, format, || render::status_rows(&status))
}

fn cancel(ctx: &mut Ctx<'_>, flags: &Parsed, verify: bool) -> Result<i32, CliError> {
    let client = ctx.connect(flags)?;
    if verify {
        client
            .request(Method::DELETE, "sys/rekey/verify", &[], Body::None)
            .map_err(|err| CliError::client("Error canceling rekey verification", err))?;
        ctx.out("Success! Canceled rekey verification (progress was reset, the nonce changed)\n")?;
    } else {
        client
            .request(Method::DELETE, "sys/rekey/init", &[], Body::None)
            .map_err(|err| CliError::client("Error canceling rekey", err))?;
        ctx.out("Success! Canceled rekeying (if it was started)\n")?;
    }
    Ok(EXIT_OK)
}

fn retrieve(ctx: &mut Ctx<'_>, flags: &Parsed, format: Format) -> Result<i32, CliError> {
    let client = ctx.connect(flags)?;
    let answer = client
        .get_json("sys/rekey/backup")
        .map_err(|err| CliError::client("Error retrieving rekey stored keys", err))?;
    let data = answer.and_then(|mut v| v.get_mut("data").map(Value::take));
    let backup: RekeyBackup = decode(data.clone(), "Error retrieving rekey stored keys")?;
    print(ctx, data, format, || render::backup_rows(&backup))
}

/// Submits one current share to `sys/rekey/update`.
fn submit(ctx: &mut Ctx<'_>, flags: &Parsed, format: Format) -> Result<i32, CliError> {
    let client = ctx.connect(flags)?;
    let nonce = match flags.value("nonce") {
        Some(n) => n.to_string(),
        None => {
            let (status, _) = rekey_status(&client)?;
            if !status.started {
                return Err(CliError::Usage(
                    "No rekey is in progress: start one with -init".to_string(),
                ));
            }
            if format == Format::Table {
                ctx.err(&format!("Rekey operation nonce: {}\n", status.nonce))?;
            }
            status.nonce
        }
    };
    let key = read_share(ctx, flags)?;
    let answer = send_share(&client, "sys/rekey/update", key, nonce)?;
    match decode::<RekeyUpdateAnswer>(answer.clone(), "Error posting unseal key")? {
        RekeyUpdateAnswer::Progress(status) => {
            print(ctx, answer, format, || render::status_rows(&status))
        }
        RekeyUpdateAnswer::Complete(mut done) => {
            let mut text = match format {
                Format::Table => render::completion(&done),
                other => render_value(&answer.unwrap_or(Value::Null), other),
            };
            let written = ctx.out(&text);
            text.zeroize();
            done.keys.zeroize();
            done.keys_base64.zeroize();
            written?;
            Ok(EXIT_OK)
        }
    }
}

/// Submits one NEW share to `sys/rekey/verify`.
fn submit_verification(ctx: &mut Ctx<'_>, flags: &Parsed, format: Format) -> Result<i32, CliError> {
    let client = ctx.connect(flags)?;
    let nonce = match flags.value("nonce") {
        Some(n) => n.to_string(),
        None => verify_status(&client)?.0.nonce,
    };
    let key = read_share(ctx, flags)?;
    let answer = send_share(&client, "sys/rekey/verify", key, nonce)?;
    match decode::<RekeyVerifyAnswer>(answer.clone(), "Error posting unseal key")? {
        RekeyVerifyAnswer::Progress(status) => {
            print(ctx, answer, format, || render::verification_rows(&status))
        }
        RekeyVerifyAnswer::Complete(done) => match format {
            Format::Table => {
                ctx.out(&format!(
                    "Success! Rekey verification was successful. The rekey operation is complete \
                     and the new keys are now active.\n\nRekey verification nonce: {}\n",
                    done.nonce
                ))?;
                Ok(EXIT_OK)
            }
            other => {
                ctx.out(&render_value(&answer.unwrap_or(Value::Null), other))?;
                Ok(EXIT_OK)
            }
        },
    }
}

/// The share to submit; an empty one is refused before any request.
fn read_share(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<Zeroizing<String>, CliError> {
    let key = read_key_share(ctx, flags.positionals.first().map(String::as_str))?;
    if key.is_empty() {
        return Err(CliError::Usage("The unseal key is empty".to_string()));
    }
    Ok(key)
}

/// PUTs `{key, nonce}` to `path`, wiping the key from every buffer afterwards.
fn send_share(
    client: &Client,
    path: &str,
    key: Zeroizing<String>,
    nonce: String,
) -> Result<Option<Value>, CliError> {
    let mut request = RekeyUpdateRequest {
        key: key.to_string(),
        nonce,
    };
    let encoded = serde_json::to_value(&request);
    request.key.zeroize();
    let mut body =
        encoded.map_err(|err| CliError::Local(format!("Error encoding the request: {err}")))?;
    let answer = client.put_json(path, &body);
    if let Some(Value::String(sent)) = body.get_mut("key") {
        sent.zeroize();
    }
    answer.map_err(|err| CliError::client("Error posting unseal key", err))
}

fn rekey_status(client: &Client) -> Result<(RekeyStatus, Option<Value>), CliError> {
    let answer = client
        .get_json("sys/rekey/init")
        .map_err(|err| CliError::client("Error reading rekey status", err))?;
    Ok((
        decode(answer.clone(), "Error reading rekey status")?,
        answer,
    ))
}

fn verify_status(client: &Client) -> Result<(RekeyVerificationStatus, Option<Value>), CliError> {
    let answer = client
        .get_json("sys/rekey/verify")
        .map_err(|err| CliError::client("Error reading rekey verification status", err))?;
    Ok((
        decode(answer.clone(), "Error reading rekey verification status")?,
        answer,
    ))
}

/// Prints `raw` in JSON/YAML, or the rows `table` builds as a key/value table.
fn print(
    ctx: &mut Ctx<'_>,
    raw: Option<Value>,
    format: Format,
    table: impl FnOnce() -> Vec<(String, String)>,
) -> Result<i32, CliError> {
    match format {
        Format::Table => ctx.out(&key_value_table(&table()))?,
        other => ctx.out(&render_value(&raw.unwrap_or(Value::Null), other))?,
    }
    Ok(EXIT_OK)
}
