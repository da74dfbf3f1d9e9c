//! `kv put` and `kv patch`: write a new version of a secret.
//!
//! Both print the new version's metadata for KV version 2. `patch` sends a JSON merge patch
//! (the server merges it into the latest version); `-method=rw` instead reads the latest
//! version, merges locally and writes back with check-and-set, for servers or policies that
//! do not allow PATCH.

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::{KvPath, MOUNT_FLAG, path_arg};
use crate::args::{FlagSpec, Parsed};
use crate::client::{Body, Client};
use crate::commands::{Command, Ctx};
use crate::config::HTTP_FLAGS;
use crate::error::{CliError, EXIT_OK, EXIT_REMOTE};
use crate::kv_args::parse_data;
use crate::output::{
    Format, OUTPUT_FLAGS, OutputOpts, data_table, header_for_map, is_wrapped, path_header,
    render_secret,
};

const CAS_FLAG: FlagSpec = FlagSpec::value(
    "cas",
    "Check-and-set: write only if the current version is this (0: only if absent).",
);

const PUT_FLAGS: &[FlagSpec] = &[MOUNT_FLAG, CAS_FLAG];
const PATCH_FLAGS: &[FlagSpec] = &[
    MOUNT_FLAG,
    CAS_FLAG,
    FlagSpec::value(
        "method",
        "patch (default): HTTP PATCH; rw: read, merge locally, write back with check-and-set.",
    ),
];

pub const PUT: Command = Command {
    words: &["kv", "put"],
    args: "PATH [K=V | K=@FILE | K=- | @FILE.json | -]...",
    synopsis: "Write a secret to a KV engine, replacing its data.",
    flags: &[HTTP_FLAGS, OUTPUT_FLAGS, PUT_FLAGS],
    run: run_put,
};

pub const PATCH: Command = Command {
    words: &["kv", "patch"],
    args: "PATH [K=V...]",
    synopsis: "Change some keys of a secret in a KV version 2 engine.",
    flags: &[HTTP_FLAGS, OUTPUT_FLAGS, PATCH_FLAGS],
    run: run_patch,
};

/// What the command line asked to write.
struct Request {
    output: OutputOpts,
    data: Map<String, Value>,
    cas: Option<u64>,
}

fn parse_request(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<Request, CliError> {
    let data_args = flags.positionals.get(1..).unwrap_or_default();
    path_arg(flags)?;
    if data_args.is_empty() {
        return Err(CliError::Usage("Must supply data".to_string()));
    }
    let output = ctx.output(flags)?;
    let cas = match flags.value("cas") {
        Some(raw) => Some(raw.parse::<u64>().map_err(|_| {
            CliError::Usage(format!("Invalid -cas {raw:?}: use a non-negative integer"))
        })?),
        None => None,
    };
    let data = parse_data(data_args, ctx.stdin)?;
    Ok(Request { output, data, cas })
}

/// `{"data": ..., "options": {"cas": N}}`, the KV version 2 write body.
fn v2_body(data: Map<String, Value>, cas: Option<u64>) -> Value {
    let mut options = Map::new();
    if let Some(cas) = cas {
        options.insert("cas".to_string(), json!(cas));
    }
    json!({ "data": data, "options": options })
}

fn run_put(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    let request = parse_request(ctx, flags)?;
    let mut client = ctx.connect(flags)?;
    let path = KvPath::resolve(&mut client, flags, path_arg(flags)?)?;
    let full = path.api("data");
    let body = if path.v2 {
        v2_body(request.data, request.cas)
    } else {
        Value::Object(request.data)
    };
    let answer = client
        .send(Method::PUT, &full, &[], Body::Json(&body))
        .map_err(|err| CliError::client(format!("Error writing data to {full}"), err))?;
    print_written(ctx, answer, &request.output, &full, path.v2)
}

fn run_patch(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    let request = parse_request(ctx, flags)?;
    let rw = match flags.value("method").unwrap_or("patch") {
        "patch" => false,
        "rw" => true,
        other => {
            return Err(CliError::Usage(format!(
                "Invalid -method {other:?}: use patch or rw"
            )));
        }
    };
    let mut client = ctx.connect(flags)?;
    let path = KvPath::resolve(&mut client, flags, path_arg(flags)?)?;
    if !path.v2 {
        return Err(CliError::Remote(
            "K/V engine mount must be version 2 for patch support".to_string(),
        ));
    }
    let full = path.api("data");
    let answer = if rw {
        read_merge_write(&client, &full, request.data, request.cas)?
    } else {
        let body = v2_body(request.data, request.cas);
        match client.send(Method::PATCH, &full, &[], Body::MergePatch(&body)) {
            Ok(answer) => answer,
            Err(err) if err.status() == Some(404) => {
                ctx.err(&format!("No value found at {full}\n"))?;
                return Ok(EXIT_REMOTE);
            }
            Err(err) => {
                return Err(CliError::client(
                    format!("Error writing data to {full}"),
                    err,
                ));
            }
        }
    };
    let Some(answer) = answer else {
        ctx.err(&format!("No value found at {full}\n"))?;
        return Ok(EXIT_REMOTE);
    };
    print_written(ctx, Some(answer), &request.output, &full, true)
}

/// `-method=rw`: read the latest version, merge, write it back guarded by its version number.
fn read_merge_write(
    client: &Client,
    full: &str,
    patch: Map<String, Value>,
    cas: Option<u64>,
) -> Result<Option<Value>, CliError> {
    let current = client
        .send(Method::GET, full, &[], Body::None)
        .map_err(|err| CliError::client(format!("Error reading {full}"), err))?
        .ok_or_else(|| CliError::Remote(format!("No value found at {full}")))?;
    let Some(mut data) = current
        .pointer("/data/data")
        .and_then(Value::as_object)
        .cloned()
    else {
        return Err(CliError::Remote(format!(
            "No value found at {full}: the latest version is deleted or destroyed"
        )));
    };
    let version = current
        .pointer("/data/metadata/version")
        .and_then(Value::as_u64);
    data.extend(patch);
    let body = v2_body(data, cas.or(version));
    client
        .send(Method::PUT, full, &[], Body::Json(&body))
        .map_err(|err| CliError::client(format!("Error writing data to {full}"), err))
}

/// Vault's output after a write: the success line, or for version 2 the new version's metadata.
fn print_written(
    ctx: &mut Ctx<'_>,
    answer: Option<Value>,
    output: &OutputOpts,
    full: &str,
    v2: bool,
) -> Result<i32, CliError> {
    let Some(answer) = answer else {
        return crate::commands::report_write(
            ctx,
            None,
            output,
            &format!("Success! Data written to: {full}"),
        );
    };
    let rendered = render_secret(&answer, output)?;
    if !v2 || output.field.is_some() || output.format != Format::Table || is_wrapped(&answer) {
        ctx.emit(&rendered)?;
        return Ok(EXIT_OK);
    }
    ctx.err(&rendered.stderr)?;
    let metadata = answer
        .get("data")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    ctx.out(&path_header("Secret Path", full))?;
    ctx.out(&header_for_map("Metadata", &metadata))?;
    ctx.out(&data_table(&metadata))?;
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Version 2 writes nest the data and always carry an options object; cas only when asked.
    #[test]
    fn v2_body_shape() {
        let mut data = Map::new();
        data.insert("a".to_string(), json!("1"));

        assert_eq!(
            v2_body(data.clone(), None),
            json!({"data": {"a": "1"}, "options": {}})
        );
        assert_eq!(
            v2_body(data, Some(0)),
            json!({"data": {"a": "1"}, "options": {"cas": 0}})
        );
    }
}
