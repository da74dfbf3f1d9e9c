//! `operator init`: initialize a new server and print its unseal keys and root token.
//!
//! This is the only time the key shares exist in one place, so the output format is part of
//! operators' runbooks: `Unseal Key N:` / `Initial Root Token:` lines in a table, and Vault's
//! exact JSON keys with `-format=json`.

use serde::Serialize;
use serde_json::Value;
use strongroom_api::{InitRequest, InitResponse};
use zeroize::Zeroize;

use super::pgp_keys::{read_key_file, share_keys};
use super::{Command, Ctx, decode, expect_args, share_count, status_error};
use crate::args::{FlagSpec, Parsed};
use crate::config::HTTP_FLAGS;
use crate::error::{CliError, EXIT_OK, EXIT_REMOTE};
use crate::output::{FORMAT_FLAGS, Format, to_yaml};

const INIT_FLAGS: &[FlagSpec] = &[
    FlagSpec::value(
        "key-shares",
        "Number of unseal key shares to create (default 5).",
    ),
    FlagSpec::value(
        "key-threshold",
        "Number of shares needed to unseal (default 3).",
    ),
    FlagSpec::value(
        "pgp-keys",
        "Comma-separated PGP public key files, one per share: each share is encrypted to its key.",
    ),
    FlagSpec::value(
        "root-token-pgp-key",
        "PGP public key file the initial root token is encrypted to.",
    ),
    FlagSpec::switch(
        "status",
        "Only report whether the server is initialized (exit 0 yes, 2 no, 1 error).",
    ),
];

pub const COMMAND: Command = Command {
    words: &["operator", "init"],
    args: "",
    synopsis: "Initialize the server: create the unseal key shares and the root token.",
    flags: &[HTTP_FLAGS, FORMAT_FLAGS, INIT_FLAGS],
    run,
};

/// The `-format=json` document, field order as Vault prints it.
#[derive(Debug, Serialize)]
pub struct InitOutput {
    pub unseal_keys_b64: Vec<String>,
    pub unseal_keys_hex: Vec<String>,
    pub unseal_shares: u32,
    pub unseal_threshold: u32,
    pub recovery_keys_b64: Vec<String>,
    pub recovery_keys_hex: Vec<String>,
    pub recovery_keys_shares: u32,
    pub recovery_keys_threshold: u32,
    pub root_token: String,
}

impl Drop for InitOutput {
    fn drop(&mut self) {
        self.unseal_keys_b64.zeroize();
        self.unseal_keys_hex.zeroize();
        self.root_token.zeroize();
    }
}

fn run(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 0)?;
    let output = ctx.output(flags)?;
    if flags.switch("status") {
        return init_status(ctx, flags);
    }
    let shares = share_count(flags, "key-shares", 5)?;
    let threshold = share_count(flags, "key-threshold", 3)?;
    if threshold > shares {
        return Err(CliError::Usage(format!(
            "-key-threshold ({threshold}) cannot be larger than -key-shares ({shares})"
        )));
    }
    let pgp_keys = share_keys(flags, shares)?;
    let root_token_pgp_key = match flags.value("root-token-pgp-key") {
        Some(path) => read_key_file("root-token-pgp-key", path)?,
        None => String::new(),
    };
    let client = ctx.connect(flags)?;
    let request = InitRequest {
        secret_shares: shares,
        secret_threshold: threshold,
        pgp_keys,
        root_token_pgp_key,
        ..InitRequest::default()
    };
    let body = serde_json::to_value(&request)
        .map_err(|err| CliError::Local(format!("Error encoding the request: {err}")))?;
    let answer = client
        .put_json("sys/init", &body)
        .map_err(|err| CliError::client("Error initializing", err))?;
    let mut response: InitResponse = decode(answer, "Error initializing")?;
    let result = InitOutput {
        unseal_keys_b64: std::mem::take(&mut response.keys_base64),
        unseal_keys_hex: std::mem::take(&mut response.keys),
        unseal_shares: shares,
        unseal_threshold: threshold,
        recovery_keys_b64: Vec::new(),
        recovery_keys_hex: Vec::new(),
        recovery_keys_shares: 0,
        recovery_keys_threshold: 0,
        root_token: std::mem::take(&mut response.root_token),
    };
    let mut text = render(&result, output.format)?;
    let written = ctx.out(&text);
    text.zeroize();
    written?;
    Ok(EXIT_OK)
}

/// Renders the init result in the chosen format.
pub fn render(result: &InitOutput, format: Format) -> Result<String, CliError> {
    let encode_err =
        |err: serde_json::Error| CliError::Local(format!("Error encoding output: {err}"));
    match format {
        Format::Json => {
            let mut text = serde_json::to_string_pretty(result).map_err(encode_err)?;
            text.push('\n');
            Ok(text)
        }
        Format::Yaml => {
            let value: Value = serde_json::to_value(result).map_err(encode_err)?;
            Ok(to_yaml(&value))
        }
        Format::Table => {
            let mut text = String::new();
            for (i, key) in result.unseal_keys_b64.iter().enumerate() {
                text.push_str(&format!("Unseal Key {}: {key}\n", i + 1));
            }
            text.push_str(&format!("\nInitial Root Token: {}\n\n", result.root_token));
            text.push_str(&format!(
                "The server is initialized with {shares} key shares and a key threshold of \
                 {threshold}.\nStore each key share above separately and securely. Whenever the \
                 server is sealed or\nrestarted, {threshold} of these shares are needed to unseal it.\n\n\
                 The root key itself is never stored: with fewer than {threshold} shares the data \
                 cannot be\nrecovered. New shares can be made from a quorum of existing ones \
                 (rekey).\n",
                shares = result.unseal_shares,
                threshold = result.unseal_threshold,
            ));
            Ok(text)
        }
    }
}

/// `-status`: exit 0 when initialized, 2 when not, 1 on error.
fn init_status(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    let client = ctx.connect(flags)?;
    let answer = client
        .get_json("sys/init")
        .map_err(|err| status_error("Error checking initialization status", err))?;
    let initialized = answer
        .as_ref()
        .and_then(|v| v.get("initialized"))
        .and_then(Value::as_bool)
        .ok_or_else(|| {
            CliError::Local(
                "Error checking initialization status: unexpected answer from the server"
                    .to_string(),
            )
        })?;
    if initialized {
        ctx.out("Vault is initialized\n")?;
        Ok(EXIT_OK)
    } else {
        ctx.out("Vault is not initialized\n")?;
        Ok(EXIT_REMOTE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> InitOutput {
        InitOutput {
            unseal_keys_b64: vec!["b64a".into(), "b64b".into()],
            unseal_keys_hex: vec!["hexa".into(), "hexb".into()],
            unseal_shares: 2,
            unseal_threshold: 2,
            recovery_keys_b64: Vec::new(),
            recovery_keys_hex: Vec::new(),
            recovery_keys_shares: 0,
            recovery_keys_threshold: 0,
            root_token: "hvs.root".into(),
        }
    }

    // JSON output carries exactly Vault's keys in Vault's order, recovery fields empty.
    #[test]
    fn json_keys() {
        let text = render(&sample(), Format::Json).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();

        let order: Vec<usize> = [
            "unseal_keys_b64",
            "unseal_keys_hex",
            "unseal_shares",
            "unseal_threshold",
            "recovery_keys_b64",
            "recovery_keys_hex",
            "recovery_keys_shares",
            "recovery_keys_threshold",
            "root_token",
        ]
        .iter()
        .map(|key| text.find(&format!("\"{key}\"")).unwrap())
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(value["recovery_keys_b64"], serde_json::json!([]));
        assert_eq!(value["recovery_keys_shares"], 0);
        assert_eq!(value["unseal_keys_hex"][1], "hexb");
    }

    // The table has the greppable `Unseal Key N:` and `Initial Root Token:` lines.
    #[test]
    fn table_lines() {
        let text = render(&sample(), Format::Table).unwrap();

        assert!(text.starts_with(
            "Unseal Key 1: b64a\nUnseal Key 2: b64b\n\nInitial Root Token: hvs.root\n"
        ));
    }

    // Share counts outside Shamir's 1..=255 range are rejected locally.
    #[test]
    fn share_counts_are_validated() {
        let parse = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            crate::args::parse(&args, &[INIT_FLAGS]).unwrap()
        };

        assert_eq!(share_count(&parse(&[]), "key-shares", 5).unwrap(), 5);
        assert_eq!(
            share_count(&parse(&["-key-shares=1"]), "key-shares", 5).unwrap(),
            1
        );
        assert!(share_count(&parse(&["-key-shares=0"]), "key-shares", 5).is_err());
        assert!(share_count(&parse(&["-key-shares=256"]), "key-shares", 5).is_err());
        assert!(share_count(&parse(&["-key-shares=x"]), "key-shares", 5).is_err());
    }
}
