//! `operator rotate` and `operator key-status`: the barrier encryption key term.

use reqwest::Method;
use serde_json::Value;

use super::{Command, Ctx, expect_args};
use crate::args::Parsed;
use crate::client::{Body, Client};
use crate::config::HTTP_FLAGS;
use crate::error::{CliError, EXIT_OK};
use crate::output::{FORMAT_FLAGS, Format, key_value_table, render_value};

pub const ROTATE: Command = Command {
    words: &["operator", "rotate"],
    args: "",
    synopsis: "Rotate the barrier encryption key (adds a new key term).",
    flags: &[HTTP_FLAGS, FORMAT_FLAGS],
    run: rotate,
};

pub const KEY_STATUS: Command = Command {
    words: &["operator", "key-status"],
    args: "",
    synopsis: "Print the current barrier key term and its install time.",
    flags: &[HTTP_FLAGS, FORMAT_FLAGS],
    run: key_status,
};

fn rotate(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 0)?;
    let output = ctx.output(flags)?;
    let client = ctx.connect(flags)?;
    client
        .request(Method::PUT, "sys/rotate", &[], Body::None)
        .map_err(|err| CliError::client("Error rotating key", err))?;
    let status = fetch(&client).map_err(|err| CliError::client("Error after rotating key", err))?;
    if output.format == Format::Table {
        ctx.out("Success! Rotated key\n\n")?;
    }
    ctx.out(&render(&status, output.format))?;
    Ok(EXIT_OK)
}

fn key_status(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 0)?;
    let output = ctx.output(flags)?;
    let client = ctx.connect(flags)?;
    let status = fetch(&client).map_err(|err| CliError::client("Error reading key status", err))?;
    ctx.out(&render(&status, output.format))?;
    Ok(EXIT_OK)
}

/// The key-status fields, from `data` (or the top level, where the server also injects them).
fn fetch(client: &Client) -> Result<Value, crate::client::ClientError> {
    let answer = client.get_json("sys/key-status")?.unwrap_or(Value::Null);
    Ok(match answer.get("data") {
        Some(data) if data.is_object() => data.clone(),
        _ => answer,
    })
}

fn render(status: &Value, format: Format) -> String {
    match format {
        Format::Table => {
            let text = |key: &str| match status.get(key) {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => "n/a".to_string(),
            };
            key_value_table(&[
                ("Key Term".to_string(), text("term")),
                ("Install Time".to_string(), text("install_time")),
                ("Encryption Count".to_string(), text("encryptions")),
            ])
        }
        other => render_value(status, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // The table names match `vault operator key-status`.
    #[test]
    fn table_rows() {
        let status = json!({"term": 2, "install_time": "2025-01-02T03:04:05Z", "encryptions": 9});

        let text = render(&status, Format::Table);

        assert!(text.contains("Key Term            2\n"));
        assert!(text.contains("Install Time        2025-01-02T03:04:05Z\n"));
        assert!(text.contains("Encryption Count    9\n"));
    }
}
