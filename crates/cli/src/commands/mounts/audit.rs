//! `audit enable|list|disable`: audit devices (`sys/audit`).

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::{
    DESCRIPTION_FLAG, LIST_FLAGS, LOCAL_FLAG, PATH_FLAG, PathWrite, mount_map, path_write,
};
use crate::args::{FlagSpec, Parsed};
use crate::client::Body;
use crate::commands::{Command, Ctx, expect_args, report_write, sanitize_path};
use crate::config::HTTP_FLAGS;
use crate::error::{CliError, EXIT_OK, EXIT_REMOTE};
use crate::kv_args::parse_data;
use crate::output::{
    FORMAT_FLAGS, Format, OUTPUT_FLAGS, go_value, is_wrapped, render_secret, render_value, sorted,
    table,
};

const ENABLE_FLAGS: &[FlagSpec] = &[PATH_FLAG, DESCRIPTION_FLAG, LOCAL_FLAG];

pub const COMMANDS: &[Command] = &[
    Command {
        words: &["audit", "enable"],
        args: "TYPE [K=V...]",
        synopsis: "Enable an audit device (e.g. file file_path=/var/log/audit.log).",
        flags: &[HTTP_FLAGS, OUTPUT_FLAGS, ENABLE_FLAGS],
        run: run_enable,
    },
    Command {
        words: &["audit", "list"],
        args: "",
        synopsis: "List enabled audit devices.",
        flags: &[HTTP_FLAGS, FORMAT_FLAGS, LIST_FLAGS],
        run: run_list,
    },
    Command {
        words: &["audit", "disable"],
        args: "PATH",
        synopsis: "Disable an audit device.",
        flags: &[HTTP_FLAGS, OUTPUT_FLAGS],
        run: run_disable,
    },
];

fn run_enable(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    let Some((kind, option_args)) = flags.positionals.split_first() else {
        return Err(CliError::Usage(
            "Not enough arguments (expected at least 1, got 0)".to_string(),
        ));
    };
    let output = ctx.output(flags)?;
    let kind = kind.trim().to_string();
    let path = sanitize_path(flags.value("path").unwrap_or(&kind));
    if kind.is_empty() || path.is_empty() {
        return Err(CliError::Usage(
            "The device type and path must not be empty".to_string(),
        ));
    }
    let options = string_options(parse_data(option_args, ctx.stdin)?);
    let mut body = Map::new();
    body.insert("type".to_string(), json!(kind));
    if let Some(description) = flags.value("description") {
        body.insert("description".to_string(), json!(description));
    }
    if flags.switch("local") {
        body.insert("local".to_string(), json!(true));
    }
    body.insert("options".to_string(), Value::Object(options));
    let client = ctx.connect(flags)?;
    let answer = client
        .send(
            Method::PUT,
            &format!("sys/audit/{path}"),
            &[],
            Body::Json(&Value::Object(body)),
        )
        .map_err(|err| CliError::client("Error enabling audit device", err))?;
    report_write(
        ctx,
        answer,
        &output,
        &format!("Success! Enabled the {kind} audit device at: {path}/"),
    )
}

/// Audit options are strings on the wire, whatever JSON a `@file` argument supplied.
fn string_options(data: Map<String, Value>) -> Map<String, Value> {
    data.into_iter()
        .map(|(key, value)| {
            let text = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            (key, Value::String(text))
        })
        .collect()
}

fn run_list(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 0)?;
    let output = ctx.output(flags)?;
    let client = ctx.connect(flags)?;
    let answer = client
        .send(Method::GET, "sys/audit", &[], Body::None)
        .map_err(|err| CliError::client("Error listing audits", err))?
        .unwrap_or(Value::Null);
    if is_wrapped(&answer) {
        ctx.emit(&render_secret(&answer, &output)?)?;
        return Ok(EXIT_OK);
    }
    let devices = mount_map(&answer);
    if output.format != Format::Table {
        ctx.out(&render_value(&Value::Object(devices), output.format))?;
        return Ok(EXIT_OK);
    }
    if devices.is_empty() {
        ctx.out("No audit devices are enabled.\n")?;
        return Ok(EXIT_REMOTE);
    }
    ctx.out(&audit_table(&devices, flags.switch("detailed")))?;
    Ok(EXIT_OK)
}

fn audit_table(devices: &Map<String, Value>, detailed: bool) -> String {
    let cell = |device: &Value, key: &str| match device.get(key) {
        None | Some(Value::Null) => String::new(),
        Some(value) => go_value(value),
    };
    let rows: Vec<Vec<String>> = sorted(devices)
        .into_iter()
        .map(|(path, device)| {
            let mut row = vec![
                path.clone(),
                cell(device, "type"),
                cell(device, "description"),
            ];
            if detailed {
                let local = device
                    .get("local")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                row.push(if local { "local" } else { "replicated" }.to_string());
                let options = device
                    .get("options")
                    .and_then(Value::as_object)
                    .map(|options| {
                        sorted(options)
                            .into_iter()
                            .map(|(k, v)| format!("{k}={}", go_value(v)))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default();
                row.push(options);
            }
            row
        })
        .collect();
    if detailed {
        table(
            &["Path", "Type", "Description", "Replication", "Options"],
            &rows,
        )
    } else {
        table(&["Path", "Type", "Description"], &rows)
    }
}

fn run_disable(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    path_write(
        ctx,
        flags,
        PathWrite {
            method: Method::DELETE,
            api_path: &|p| format!("sys/audit/{p}"),
            body: None,
            error: &|_| "Error disabling audit device".to_string(),
            success: &|p| format!("Success! Disabled audit device (if it was enabled) at: {p}"),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // The detailed table shows replication and the options as sorted key=value pairs.
    #[test]
    fn detailed_audit_table() {
        let devices = mount_map(&json!({"file/": {"type": "file", "description": "",
            "local": false, "options": {"mode": "0600", "file_path": "/tmp/a.log"}}}));

        let out = audit_table(&devices, true);

        assert_eq!(
            out,
            "Path     Type    Description    Replication    Options\n\
             ----     ----    -----------    -----------    -------\n\
             file/    file    n/a            replicated     file_path=/tmp/a.log mode=0600\n"
        );
    }

    // Non-string option values from a JSON file are sent as strings.
    #[test]
    fn options_become_strings() {
        let mut data = Map::new();
        data.insert("log_raw".to_string(), json!(true));
        data.insert("prefix".to_string(), json!("x"));

        assert_eq!(
            Value::Object(string_options(data)),
            json!({"log_raw": "true", "prefix": "x"})
        );
    }
}
