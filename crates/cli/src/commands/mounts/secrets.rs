//! `secrets enable|list|disable|tune|move`: the secrets engine mount table (`sys/mounts`).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::{
    ENABLE_FLAGS, LIST_FLAGS, MountKind, PathWrite, TUNE_FLAGS, enable_body, list_mounts,
    path_write, tune_body,
};
use crate::args::{FlagSpec, Parsed};
use crate::client::{Body, Client};
use crate::commands::{Command, Ctx, expect_args, report_write, sanitize_path};
use crate::config::HTTP_FLAGS;
use crate::error::{CliError, EXIT_OK};
use crate::output::{FORMAT_FLAGS, OUTPUT_FLAGS};

const SECRETS_ENABLE_FLAGS: &[FlagSpec] = &[FlagSpec::value(
    "version",
    "KV engine version (1 or 2); the same as -options=version=N.",
)];

/// How often `secrets move` asks whether the migration finished, and for how long.
const MOVE_POLL: Duration = Duration::from_secs(1);
const MOVE_LIMIT: Duration = Duration::from_secs(600);

pub const COMMANDS: &[Command] = &[
    Command {
        words: &["secrets", "enable"],
        args: "TYPE",
        synopsis: "Mount a secrets engine (kv-v2 means kv with version 2).",
        flags: &[HTTP_FLAGS, OUTPUT_FLAGS, ENABLE_FLAGS, SECRETS_ENABLE_FLAGS],
        run: run_enable,
    },
    Command {
        words: &["secrets", "list"],
        args: "",
        synopsis: "List mounted secrets engines.",
        flags: &[HTTP_FLAGS, FORMAT_FLAGS, LIST_FLAGS],
        run: run_list,
    },
    Command {
        words: &["secrets", "disable"],
        args: "PATH",
        synopsis: "Unmount a secrets engine, deleting its data and revoking its leases.",
        flags: &[HTTP_FLAGS, OUTPUT_FLAGS],
        run: run_disable,
    },
    Command {
        words: &["secrets", "tune"],
        args: "PATH",
        synopsis: "Change the TTLs, description or options of a secrets engine.",
        flags: &[HTTP_FLAGS, OUTPUT_FLAGS, TUNE_FLAGS],
        run: run_tune,
    },
    Command {
        words: &["secrets", "move"],
        args: "FROM TO",
        synopsis: "Move a secrets engine to another path, with its data.",
        flags: &[HTTP_FLAGS],
        run: run_move,
    },
];

fn run_enable(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 1)?;
    let output = ctx.output(flags)?;
    let typed = flags.positionals[0].trim().to_string();
    let path = sanitize_path(flags.value("path").unwrap_or(&typed));
    if typed.is_empty() || path.is_empty() {
        return Err(CliError::Usage(
            "The engine type and path must not be empty".to_string(),
        ));
    }
    let (kind, mut options) = engine_type(&typed);
    if let Some(version) = flags.value("version") {
        if !matches!(version, "1" | "2") {
            return Err(CliError::Usage(format!(
                "Invalid -version {version:?}: use 1 or 2"
            )));
        }
        options.insert("version".to_string(), json!(version));
    }
    let body = enable_body(flags, kind, options)?;
    let client = ctx.connect(flags)?;
    let answer = client
        .send(
            Method::POST,
            &format!("sys/mounts/{path}"),
            &[],
            Body::Json(&body),
        )
        .map_err(|err| CliError::client("Error enabling", err))?;
    report_write(
        ctx,
        answer,
        &output,
        &format!("Success! Enabled the {typed} secrets engine at: {path}/"),
    )
}

/// `kv-v2` is shorthand for a `kv` engine with `version=2`.
fn engine_type(typed: &str) -> (&str, Map<String, Value>) {
    let mut options = Map::new();
    if typed == "kv-v2" {
        options.insert("version".to_string(), json!("2"));
        return ("kv", options);
    }
    (typed, options)
}

fn run_list(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    list_mounts(
        ctx,
        flags,
        "sys/mounts",
        MountKind::Secrets,
        "Error listing secrets engines",
    )
}

fn run_disable(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    path_write(
        ctx,
        flags,
        PathWrite {
            method: Method::DELETE,
            api_path: &|p| format!("sys/mounts/{p}"),
            body: None,
            error: &|p| format!("Error disabling secrets engine at {p}"),
            success: &|p| format!("Success! Disabled the secrets engine (if it existed) at: {p}"),
        },
    )
}

fn run_tune(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    path_write(
        ctx,
        flags,
        PathWrite {
            method: Method::POST,
            api_path: &|p| format!("sys/mounts/{p}/tune"),
            body: Some(tune_body(flags)?),
            error: &|p| format!("Error tuning secrets engine {p}"),
            success: &|p| format!("Success! Tuned the secrets engine at: {p}"),
        },
    )
}

fn run_move(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 2)?;
    let (from, to) = (
        sanitize_path(&flags.positionals[0]),
        sanitize_path(&flags.positionals[1]),
    );
    if from.is_empty() || to.is_empty() {
        return Err(CliError::Usage("Both paths must be non-empty".to_string()));
    }
    let client = ctx.connect(flags)?;
    let body = json!({ "from": from, "to": to });
    let answer = client
        .send(Method::POST, "sys/remount", &[], Body::Json(&body))
        .map_err(|err| CliError::client("Error moving secrets engine", err))?;
    let moving = format!("secrets engine {from}/ to {to}/");
    let Some(id) = answer.as_ref().and_then(migration_id) else {
        ctx.out(&format!("Success! Moved {moving}\n"))?;
        return Ok(EXIT_OK);
    };
    ctx.out(&format!(
        "Started moving {moving}, with migration ID {id}\n"
    ))?;
    wait_for_migration(ctx, &client, &id, &moving)
}

fn migration_id(answer: &Value) -> Option<String> {
    answer
        .pointer("/data/migration_id")
        .or_else(|| answer.get("migration_id"))
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_string)
}

/// Polls `sys/remount/status/<id>` until the migration succeeds or fails.
fn wait_for_migration(
    ctx: &mut Ctx<'_>,
    client: &Client,
    id: &str,
    moving: &str,
) -> Result<i32, CliError> {
    let started = Instant::now();
    loop {
        let status = client
            .send(
                Method::GET,
                &format!("sys/remount/status/{id}"),
                &[],
                Body::None,
            )
            .map_err(|err| CliError::client("Error checking the migration status", err))?
            .unwrap_or(Value::Null);
        let state = status
            .pointer("/data/migration_info/status")
            .or_else(|| status.pointer("/migration_info/status"))
            .and_then(Value::as_str)
            .unwrap_or("");
        match state {
            "success" => {
                ctx.out(&format!(
                    "Success! Finished moving {moving}, with migration ID {id}\n"
                ))?;
                return Ok(EXIT_OK);
            }
            "failure" => {
                return Err(CliError::Remote(format!(
                    "Failure! Error encountered moving {moving}, with migration ID {id}"
                )));
            }
            _ if started.elapsed() > MOVE_LIMIT => {
                return Err(CliError::Remote(format!(
                    "Gave up waiting for the migration of {moving} (ID {id}); check \
                     sys/remount/status/{id} later"
                )));
            }
            _ => {
                ctx.out(&format!(
                    "Waiting for terminal status in migration of {moving}, with migration ID {id}\n"
                ))?;
                std::thread::sleep(MOVE_POLL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // kv-v2 becomes a version 2 kv engine; other types pass through untouched.
    #[test]
    fn kv_v2_shorthand() {
        let (kind, options) = engine_type("kv-v2");
        assert_eq!(kind, "kv");
        assert_eq!(options.get("version"), Some(&json!("2")));
        let (kind, options) = engine_type("kv");
        assert_eq!(kind, "kv");
        assert!(options.is_empty());
    }

    // The migration ID may be enveloped or on top; an empty one counts as absent.
    #[test]
    fn migration_ids() {
        assert_eq!(
            migration_id(&json!({"data": {"migration_id": "m1"}})).as_deref(),
            Some("m1")
        );
        assert_eq!(
            migration_id(&json!({"migration_id": "m2"})).as_deref(),
            Some("m2")
        );
        assert_eq!(migration_id(&json!({"migration_id": ""})), None);
    }
}
