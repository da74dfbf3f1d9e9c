//! `kv metadata get|put|delete`: the per-key settings and version history of KV version 2.

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::{KvPath, MOUNT_FLAG, path_arg, require_v2};
use crate::args::{FlagSpec, Parsed};
use crate::client::Body;
use crate::commands::{Command, Ctx, duration_flag, expect_args, map_flag, report_write};
use crate::config::HTTP_FLAGS;
use crate::error::{CliError, EXIT_OK, EXIT_REMOTE};
use crate::output::{
    FORMAT_FLAGS, Format, OUTPUT_FLAGS, data_table, go_duration, header_for_map, is_wrapped,
    path_header, render_secret,
};

const MOUNT_ONLY: &[FlagSpec] = &[MOUNT_FLAG];
const PUT_FLAGS: &[FlagSpec] = &[
    MOUNT_FLAG,
    FlagSpec::value(
        "max-versions",
        "Versions to keep; older ones are pruned (0: the engine's setting).",
    ),
    FlagSpec::switch(
        "cas-required",
        "Require check-and-set on every write of this key (-cas-required=false to clear).",
    ),
    FlagSpec::value(
        "delete-version-after",
        "Soft-delete each version this long after it is written (0s: never).",
    ),
    FlagSpec::value(
        "custom-metadata",
        "A key=value pair of custom metadata; repeat for more.",
    ),
];

pub const GET: Command = Command {
    words: &["kv", "metadata", "get"],
    args: "PATH",
    synopsis: "Show the metadata and version history of a KV version 2 key.",
    flags: &[HTTP_FLAGS, FORMAT_FLAGS, MOUNT_ONLY],
    run: run_get,
};

pub const PUT: Command = Command {
    words: &["kv", "metadata", "put"],
    args: "PATH",
    synopsis: "Change the settings of a KV version 2 key.",
    flags: &[HTTP_FLAGS, OUTPUT_FLAGS, PUT_FLAGS],
    run: run_put,
};

pub const DELETE: Command = Command {
    words: &["kv", "metadata", "delete"],
    args: "PATH",
    synopsis: "Delete a KV version 2 key with all its versions and metadata.",
    flags: &[HTTP_FLAGS, OUTPUT_FLAGS, MOUNT_ONLY],
    run: run_delete,
};

fn resolve(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<(crate::client::Client, String), CliError> {
    expect_args(flags, 1)?;
    let mut client = ctx.connect(flags)?;
    let path = KvPath::resolve(&mut client, flags, path_arg(flags)?)?;
    require_v2(&path, "Metadata")?;
    Ok((client, path.api("metadata")))
}

fn run_get(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    let output = ctx.output(flags)?;
    let (client, full) = resolve(ctx, flags)?;
    let secret = match client.send(Method::GET, &full, &[], Body::None) {
        Ok(Some(secret)) => secret,
        Ok(None) => return not_found(ctx, &full),
        Err(err) if err.status() == Some(404) => return not_found(ctx, &full),
        Err(err) => return Err(CliError::client(format!("Error reading {full}"), err)),
    };
    let rendered = render_secret(&secret, &output)?;
    if output.format != Format::Table || is_wrapped(&secret) {
        ctx.emit(&rendered)?;
        return Ok(EXIT_OK);
    }
    ctx.err(&rendered.stderr)?;
    ctx.out(&metadata_view(&full, &secret))?;
    Ok(EXIT_OK)
}

/// `Metadata Path`, the key's settings, then one section per version, oldest first.
fn metadata_view(full: &str, secret: &Value) -> String {
    let mut data = secret
        .get("data")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let versions = match data.remove("versions") {
        Some(Value::Object(versions)) => versions,
        _ => Map::new(),
    };
    let mut out = path_header("Metadata Path", full);
    out.push_str(&header_for_map("Metadata", &data));
    out.push_str(&data_table(&data));
    let mut numbered: Vec<(u64, &Map<String, Value>)> = versions
        .iter()
        .filter_map(|(number, info)| Some((number.parse().ok()?, info.as_object()?)))
        .collect();
    numbered.sort_by_key(|(number, _)| *number);
    for (number, info) in numbered {
        out.push('\n');
        out.push_str(&header_for_map(&format!("Version {number}"), info));
        out.push_str(&data_table(info));
    }
    out
}

fn run_put(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    let output = ctx.output(flags)?;
    let body = put_body(flags)?;
    let (client, full) = resolve(ctx, flags)?;
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

/// Only the settings given on the command line are sent, so others keep their values.
fn put_body(flags: &Parsed) -> Result<Value, CliError> {
    let mut body = Map::new();
    if let Some(raw) = flags.value("max-versions") {
        let max: u64 = raw.parse().map_err(|_| {
            CliError::Usage(format!(
                "Invalid -max-versions {raw:?}: use a non-negative integer"
            ))
        })?;
        body.insert("max_versions".to_string(), json!(max));
    }
    if flags.given("cas-required") {
        body.insert(
            "cas_required".to_string(),
            json!(flags.switch("cas-required")),
        );
    }
    if let Some(seconds) = duration_flag(flags, "delete-version-after")? {
        body.insert(
            "delete_version_after".to_string(),
            json!(go_duration(seconds)),
        );
    }
    let custom = map_flag(flags, "custom-metadata")?;
    if !custom.is_empty() {
        body.insert("custom_metadata".to_string(), Value::Object(custom));
    }
    Ok(Value::Object(body))
}

fn run_delete(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    let output = ctx.output(flags)?;
    let (client, full) = resolve(ctx, flags)?;
    let answer = client
        .send(Method::DELETE, &full, &[], Body::None)
        .map_err(|err| CliError::client(format!("Error deleting {full}"), err))?;
    report_write(
        ctx,
        answer,
        &output,
        &format!("Success! Data deleted (if it existed) at: {full}"),
    )
}

fn not_found(ctx: &mut Ctx<'_>, path: &str) -> Result<i32, CliError> {
    ctx.err(&format!("No value found at {path}\n"))?;
    Ok(EXIT_REMOTE)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Versions print oldest first, numerically (10 after 9), after the key's settings.
    #[test]
    fn versions_in_numeric_order() {
        let secret = json!({"data": {"current_version": 10, "max_versions": 0,
        "versions": {
            "10": {"created_time": "t10", "deletion_time": "", "destroyed": false},
            "9": {"created_time": "t9", "deletion_time": "", "destroyed": true}
        }}});

        let out = metadata_view("secret/metadata/x", &secret);

        let v9 = out.find("Version 9").unwrap();
        let v10 = out.find("Version 10").unwrap();
        assert!(v9 < v10);
        assert!(out.starts_with("= Metadata Path =\nsecret/metadata/x\n\n"));
        assert!(out.contains("current_version    10\n"));
        assert!(!out.lines().any(|line| line.starts_with("versions ")));
    }

    // Only given settings are sent; durations go out as Go duration strings.
    #[test]
    fn put_body_fields() {
        let args: Vec<String> = [
            "-max-versions=5",
            "-cas-required=false",
            "-delete-version-after=1h",
            "-custom-metadata=owner=ann",
            "-custom-metadata=env=prod",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let parsed = crate::args::parse(&args, &[PUT_FLAGS]).unwrap();
        let empty = crate::args::parse(&[], &[PUT_FLAGS]).unwrap();

        assert_eq!(
            put_body(&parsed).unwrap(),
            json!({"max_versions": 5, "cas_required": false,
                   "delete_version_after": "1h0m0s",
                   "custom_metadata": {"owner": "ann", "env": "prod"}})
        );
        assert_eq!(put_body(&empty).unwrap(), json!({}));
    }
}
