//! `kv get`: read a secret, showing KV version 2 metadata in its own section.

use reqwest::Method;
use serde_json::{Map, Value};

use super::{KvPath, MOUNT_FLAG, path_arg};
use crate::args::{FlagSpec, Parsed};
use crate::client::Body;
use crate::commands::{Command, Ctx, expect_args};
use crate::config::HTTP_FLAGS;
use crate::error::{CliError, EXIT_OK, EXIT_REMOTE};
use crate::output::{
    Format, OUTPUT_FLAGS, data_table, header_for_map, is_wrapped, path_header, render_field,
    render_secret,
};

const GET_FLAGS: &[FlagSpec] = &[
    MOUNT_FLAG,
    FlagSpec::value(
        "version",
        "Version to read (KV version 2 only; default: latest).",
    ),
];

pub const COMMAND: Command = Command {
    words: &["kv", "get"],
    args: "PATH",
    synopsis: "Read a secret from a KV engine (either version).",
    flags: &[HTTP_FLAGS, OUTPUT_FLAGS, GET_FLAGS],
    run,
};

fn run(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 1)?;
    let output = ctx.output(flags)?;
    let version = match flags.value("version") {
        Some(raw) => Some(raw.parse::<u64>().map_err(|_| {
            CliError::Usage(format!("Invalid -version {raw:?}: use a positive integer"))
        })?),
        None => None,
    };
    let mut client = ctx.connect(flags)?;
    let path = KvPath::resolve(&mut client, flags, path_arg(flags)?)?;
    let full = path.api("data");
    let query: Vec<(String, String)> = match version {
        Some(version) if path.v2 => vec![("version".to_string(), version.to_string())],
        _ => Vec::new(),
    };

    let Some(secret) = read(&client, &full, &query)? else {
        ctx.err(&format!("No value found at {full}\n"))?;
        return Ok(EXIT_REMOTE);
    };

    if let Some(field) = &output.field
        && path.v2
        && !is_wrapped(&secret)
    {
        let Some(data) = secret.pointer("/data/data").and_then(Value::as_object) else {
            ctx.err(&format!("No data found at {full}\n"))?;
            return Ok(EXIT_REMOTE);
        };
        let value = data
            .get(field)
            .ok_or_else(|| CliError::Local(format!("Field \"{field}\" not present in secret")))?;
        ctx.out(&render_field(value, output.format))?;
        return Ok(EXIT_OK);
    }
    if output.field.is_some() || output.format != Format::Table || is_wrapped(&secret) {
        let rendered = render_secret(&secret, &output)?;
        ctx.emit(&rendered)?;
        return Ok(EXIT_OK);
    }
    let rendered = render_secret(&secret, &output)?;
    ctx.err(&rendered.stderr)?;
    ctx.out(&sectioned(&secret, path.v2.then_some(full.as_str())))?;
    Ok(EXIT_OK)
}

/// GETs the secret. A 404 whose body still carries data or warnings (a deleted or destroyed
/// KV v2 version) is an answer, not "nothing here".
fn read(
    client: &crate::client::Client,
    path: &str,
    query: &[(String, String)],
) -> Result<Option<Value>, CliError> {
    match client.send(Method::GET, path, query, Body::None) {
        Ok(answer) => Ok(answer),
        Err(err) if err.status() == Some(404) => Ok(err.error_body().filter(has_content)),
        Err(err) => Err(CliError::client(format!("Error reading {path}"), err)),
    }
}

fn has_content(body: &Value) -> bool {
    let data = body
        .get("data")
        .and_then(Value::as_object)
        .is_some_and(|data| !data.is_empty());
    let warnings = body
        .get("warnings")
        .and_then(Value::as_array)
        .is_some_and(|warnings| !warnings.is_empty());
    data || warnings
}

/// The table view: `Secret Path` (version 2), `Metadata` (version 2), then `Data`.
fn sectioned(secret: &Value, v2_path: Option<&str>) -> String {
    let mut out = String::new();
    let empty = Map::new();
    let data = secret
        .get("data")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    if let Some(path) = v2_path {
        out.push_str(&path_header("Secret Path", path));
        if let Some(metadata) = data.get("metadata").and_then(Value::as_object) {
            out.push_str(&header_for_map("Metadata", metadata));
            out.push_str(&data_table(metadata));
            out.push('\n');
        }
    }
    let values = if v2_path.is_some() {
        data.get("data").and_then(Value::as_object)
    } else {
        Some(data)
    };
    if let Some(values) = values {
        out.push_str(&header_for_map("Data", values));
        out.push_str(&data_table(values));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // The version 2 layout: path, metadata, data, each under its own header.
    #[test]
    fn v2_sections() {
        let secret = json!({"data": {
            "data": {"foo": "bar"},
            "metadata": {"created_time": "2025-01-02T03:04:05Z", "custom_metadata": null,
                         "deletion_time": "", "destroyed": false, "version": 1}
        }});

        let out = sectioned(&secret, Some("secret/data/creds"));

        assert_eq!(
            out,
            "== Secret Path ==\nsecret/data/creds\n\n\
             ======= Metadata =======\n\
             Key                Value\n\
             ---                -----\n\
             created_time       2025-01-02T03:04:05Z\n\
             custom_metadata    <nil>\n\
             deletion_time      n/a\n\
             destroyed          false\n\
             version            1\n\n\
             === Data ===\n\
             Key    Value\n\
             ---    -----\n\
             foo    bar\n"
        );
    }

    // A deleted version has metadata but no data section.
    #[test]
    fn v2_deleted_version_has_no_data_section() {
        let secret = json!({"data": {"data": null, "metadata": {"version": 2,
            "deletion_time": "2025-01-02T03:04:05Z", "destroyed": false}}});

        let out = sectioned(&secret, Some("secret/data/x"));

        assert!(out.contains("Metadata"));
        assert!(!out.contains("Data ="));
    }

    // Version 1 shows only the data section.
    #[test]
    fn v1_data_only() {
        let out = sectioned(&json!({"data": {"a": "1"}}), None);
        assert_eq!(out, "== Data ==\nKey    Value\n---    -----\na      1\n");
    }

    // Only 404 bodies with data or warnings count as answers.
    #[test]
    fn content_detection() {
        assert!(has_content(&json!({"data": {"metadata": {}}})));
        assert!(has_content(&json!({"warnings": ["w"], "data": null})));
        assert!(!has_content(&json!({"errors": []})));
    }
}
