//! `operator generate-root`: build a new root token from a quorum of unseal key shares.
//!
//! The server only ever returns the new token XOR-ed with a one-time password the operator
//! holds, so `-decode` is a purely local step. hvac's tests shell out to exactly
//! `generate-root -decode <enc> -otp <otp>`, which is why that path needs no server at all.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use reqwest::Method;
use serde_json::{Value, json};
use strongroom_api::{GenerateRootStartRequest, GenerateRootStatus, GenerateRootUpdateRequest};
use thiserror::Error;
use zeroize::{Zeroize, Zeroizing};

use super::{Command, Ctx, decode, expect_at_most, read_key_share};
use crate::args::{FlagSpec, Parsed};
use crate::client::{Body, Client};
use crate::config::HTTP_FLAGS;
use crate::error::{CliError, EXIT_OK};
use crate::output::{FORMAT_FLAGS, Format, key_value_table, render_value};

const GENERATE_ROOT_FLAGS: &[FlagSpec] = &[
    FlagSpec::switch("init", "Start a root token generation attempt."),
    FlagSpec::value(
        "otp",
        "One-time password: given to -init (optional) and needed by -decode.",
    ),
    FlagSpec::value("nonce", "Nonce of the attempt a key share is submitted to."),
    FlagSpec::value(
        "decode",
        "Decode this encoded token with -otp (local, no server call); '-' reads stdin.",
    ),
    FlagSpec::switch("status", "Print the status of the current attempt."),
    FlagSpec::switch("cancel", "Cancel the current attempt."),
];

pub const COMMAND: Command = Command {
    words: &["operator", "generate-root"],
    args: "[KEY | -]",
    synopsis: "Generate a new root token from unseal key shares.",
    flags: &[HTTP_FLAGS, FORMAT_FLAGS, GENERATE_ROOT_FLAGS],
    run,
};

/// Why an encoded root token could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("the encoded token is not valid base64")]
    InvalidBase64,
    #[error(
        "the OTP is {otp} bytes but the encoded token is {token}: check that this OTP belongs to this attempt"
    )]
    LengthMismatch { token: usize, otp: usize },
    #[error("the decoded token is not valid text: check the OTP")]
    NotUtf8,
}

/// Decodes `base64(token XOR otp)` back into the token.
pub fn decode_token(encoded: &str, otp: &str) -> Result<Zeroizing<String>, DecodeError> {
    let encoded = encoded.trim();
    let mut bytes = Zeroizing::new(
        STANDARD_NO_PAD
            .decode(encoded)
            .or_else(|_| STANDARD.decode(encoded))
            .map_err(|_| DecodeError::InvalidBase64)?,
    );
    let otp = otp.trim().as_bytes();
    if bytes.len() != otp.len() {
        return Err(DecodeError::LengthMismatch {
            token: bytes.len(),
            otp: otp.len(),
        });
    }
    for (byte, pad) in bytes.iter_mut().zip(otp) {
        *byte ^= pad;
    }
    let token = std::str::from_utf8(&bytes).map_err(|_| DecodeError::NotUtf8)?;
    Ok(Zeroizing::new(token.to_string()))
}

fn run(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_at_most(flags, 1)?;
    let output = ctx.output(flags)?;
    let modes = ["init", "status", "cancel", "decode"]
        .into_iter()
        .filter(|mode| flags.given(mode) && (*mode == "decode" || flags.switch(mode)))
        .collect::<Vec<_>>();
    if modes.len() > 1 {
        return Err(CliError::Usage(format!(
            "Only one of -init, -status, -cancel and -decode may be given (got {})",
            modes
                .iter()
                .map(|m| format!("-{m}"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if !flags.positionals.is_empty() && !modes.is_empty() {
        return Err(CliError::Usage(
            "A key share can only be given when submitting (with -nonce)".to_string(),
        ));
    }
    match modes.first().copied() {
        Some("decode") => decode_mode(ctx, flags, output.format),
        Some("init") => {
            let client = ctx.connect(flags)?;
            let request = GenerateRootStartRequest {
                otp: flags.value("otp").unwrap_or_default().to_string(),
                pgp_key: String::new(),
            };
            let body = serde_json::to_value(&request)
                .map_err(|err| CliError::Local(format!("Error encoding the request: {err}")))?;
            let answer = client
                .put_json("sys/generate-root/attempt", &body)
                .map_err(|err| CliError::client("Error initializing root generation", err))?;
            let status: GenerateRootStatus =
                decode(answer.clone(), "Error initializing root generation")?;
            if output.format == Format::Table && !status.otp.is_empty() {
                ctx.out(
                    "A one-time password (OTP) has been generated and is shown below. It is \
                     needed to\ndecode the new root token at the end, so keep it safe.\n\n",
                )?;
            }
            print_status(ctx, &status, answer, output.format)
        }
        Some("status") => {
            let client = ctx.connect(flags)?;
            let (status, raw) = fetch_status(&client)?;
            print_status(ctx, &status, raw, output.format)
        }
        Some("cancel") => {
            let client = ctx.connect(flags)?;
            client
                .request(Method::DELETE, "sys/generate-root/attempt", &[], Body::None)
                .map_err(|err| CliError::client("Error canceling root generation", err))?;
            ctx.out("Success! Root token generation canceled (if it was started)\n")?;
            Ok(EXIT_OK)
        }
        _ => submit_share(ctx, flags, output.format),
    }
}

fn decode_mode(ctx: &mut Ctx<'_>, flags: &Parsed, format: Format) -> Result<i32, CliError> {
    let otp = flags
        .value("otp")
        .filter(|otp| !otp.is_empty())
        .ok_or_else(|| {
            CliError::Usage("-decode needs the -otp that was used to start the attempt".to_string())
        })?;
    let mut encoded = Zeroizing::new(flags.value("decode").unwrap_or_default().to_string());
    if encoded.as_str() == "-" {
        encoded.clear();
        ctx.stdin
            .read_to_string(&mut encoded)
            .map_err(|err| CliError::Local(format!("Error reading from stdin: {err}")))?;
    }
    if encoded.trim().is_empty() {
        return Err(CliError::Usage(
            "-decode needs the encoded token".to_string(),
        ));
    }
    let token = decode_token(&encoded, otp)
        .map_err(|err| CliError::Local(format!("Error decoding the root token: {err}")))?;
    let mut text = match format {
        Format::Table => format!("{}\n", token.as_str()),
        other => render_value(&json!({ "token": token.as_str() }), other),
    };
    let written = ctx.out(&text);
    text.zeroize();
    written?;
    Ok(EXIT_OK)
}

fn submit_share(ctx: &mut Ctx<'_>, flags: &Parsed, format: Format) -> Result<i32, CliError> {
    let client = ctx.connect(flags)?;
    let nonce = match flags.value("nonce") {
        Some(nonce) => nonce.to_string(),
        None => {
            let (status, _) = fetch_status(&client)?;
            if !status.started {
                return Err(CliError::Usage(
                    "No root token generation is in progress: start one with -init".to_string(),
                ));
            }
            status.nonce
        }
    };
    let key = read_key_share(ctx, flags.positionals.first().map(String::as_str))?;
    let request = GenerateRootUpdateRequest {
        key: key.to_string(),
        nonce,
    };
    let mut body = serde_json::to_value(&request)
        .map_err(|err| CliError::Local(format!("Error encoding the request: {err}")))?;
    drop(request);
    let answer = client.put_json("sys/generate-root/update", &body);
    if let Some(Value::String(sent)) = body.get_mut("key") {
        sent.zeroize();
    }
    let answer = answer.map_err(|err| CliError::client("Error posting unseal key", err))?;
    let status: GenerateRootStatus = decode(answer.clone(), "Error posting unseal key")?;
    print_status(ctx, &status, answer, format)
}

fn fetch_status(client: &Client) -> Result<(GenerateRootStatus, Option<Value>), CliError> {
    let answer = client
        .get_json("sys/generate-root/attempt")
        .map_err(|err| CliError::client("Error getting root generation status", err))?;
    let status = decode(answer.clone(), "Error getting root generation status")?;
    Ok((status, answer))
}

fn print_status(
    ctx: &mut Ctx<'_>,
    status: &GenerateRootStatus,
    raw: Option<Value>,
    format: Format,
) -> Result<i32, CliError> {
    match format {
        Format::Table => ctx.out(&key_value_table(&status_rows(status)))?,
        other => ctx.out(&render_value(&raw.unwrap_or(Value::Null), other))?,
    }
    Ok(EXIT_OK)
}

/// Table rows for an attempt's status.
pub fn status_rows(status: &GenerateRootStatus) -> Vec<(String, String)> {
    let mut rows = vec![
        ("Nonce".to_string(), status.nonce.clone()),
        ("Started".to_string(), status.started.to_string()),
        (
            "Progress".to_string(),
            format!("{}/{}", status.progress, status.required),
        ),
        ("Complete".to_string(), status.complete.to_string()),
    ];
    if !status.otp.is_empty() {
        rows.push(("OTP".to_string(), status.otp.clone()));
    }
    if !status.pgp_fingerprint.is_empty() {
        rows.push((
            "PGP Fingerprint".to_string(),
            status.pgp_fingerprint.clone(),
        ));
    }
    let encoded = if status.encoded_token.is_empty() {
        &status.encoded_root_token
    } else {
        &status.encoded_token
    };
    if !encoded.is_empty() {
        rows.push(("Encoded Token".to_string(), encoded.clone()));
    }
    rows.push(("OTP Length".to_string(), status.otp_length.to_string()));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    // The spec's verified vector: this is the computation hvac's test suite relies on.
    #[test]
    fn decodes_spec_vector() {
        let token = decode_token(
            "PzVHSRMXERYIFCl9IhIMKwUoMz8OJBEgXAIIdQ",
            "WC4gXgKrEUZIRDxHRNTiiUIf9GO8",
        )
        .unwrap();

        assert_eq!(token.as_str(), "hvs.KpZdMAs4pVtcWfgVgqXFeEGM");
    }

    // Padded base64 is accepted too, so tokens copied from other tools still decode.
    #[test]
    fn accepts_padding() {
        let otp = "abcd";
        let encoded = STANDARD.encode([b'w' ^ b'a', b'x' ^ b'b', b'y' ^ b'c', b'z' ^ b'd']);
        assert!(encoded.ends_with('='));

        assert_eq!(decode_token(&encoded, otp).unwrap().as_str(), "wxyz");
    }

    // A wrong OTP or garbage input fails loudly instead of printing a bogus token.
    #[test]
    fn rejects_bad_input() {
        assert_eq!(
            decode_token("PzVHSRMXERYIFCl9IhIMKwUoMz8OJBEgXAIIdQ", "short"),
            Err(DecodeError::LengthMismatch { token: 28, otp: 5 })
        );
        assert_eq!(decode_token("!!!", "abc"), Err(DecodeError::InvalidBase64));
        let not_utf8 = STANDARD_NO_PAD.encode([0xff ^ b'a']);
        assert_eq!(decode_token(&not_utf8, "a"), Err(DecodeError::NotUtf8));
    }

    // A finished attempt shows the encoded token (legacy field name included).
    #[test]
    fn status_rows_show_encoded_token() {
        let status = GenerateRootStatus {
            started: true,
            nonce: "n".into(),
            progress: 3,
            required: 3,
            complete: true,
            encoded_root_token: "ENC".into(),
            otp_length: 28,
            ..GenerateRootStatus::default()
        };

        let rows = status_rows(&status);

        assert!(rows.contains(&("Progress".to_string(), "3/3".to_string())));
        assert!(rows.contains(&("Encoded Token".to_string(), "ENC".to_string())));
    }
}
