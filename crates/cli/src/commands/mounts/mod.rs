//! `secrets ...`, `auth ...` and `audit ...`: enabling, listing, tuning and disabling mounts.
//!
//! Secrets engines and auth methods share one mount table shape, so their request bodies and
//! list tables are built here once; the audit device table is similar enough to live beside
//! them.

mod audit;
mod auth;
mod secrets;

use serde_json::{Map, Value, json};

use super::{Command, duration_flag, map_flag};
use crate::args::{FlagSpec, Parsed};
use crate::error::CliError;
use crate::output::{go_duration, go_value, human_duration, sorted, table};

/// The shared body of `secrets list` and `auth list`: GET `api_path`, print the mount table.
fn list_mounts(
    ctx: &mut crate::commands::Ctx<'_>,
    flags: &Parsed,
    api_path: &str,
    kind: MountKind,
    error: &str,
) -> Result<i32, CliError> {
    use crate::output::{Format, is_wrapped, render_secret, render_value};
    crate::commands::expect_args(flags, 0)?;
    let output = ctx.output(flags)?;
    let client = ctx.connect(flags)?;
    let answer = client
        .send(
            reqwest::Method::GET,
            api_path,
            &[],
            crate::client::Body::None,
        )
        .map_err(|err| CliError::client(error.to_string(), err))?
        .unwrap_or(Value::Null);
    if is_wrapped(&answer) {
        ctx.emit(&render_secret(&answer, &output)?)?;
        return Ok(crate::error::EXIT_OK);
    }
    let mounts = mount_map(&answer);
    match output.format {
        Format::Table => ctx.out(&mount_table(&mounts, kind, flags.switch("detailed")))?,
        format => ctx.out(&render_value(&Value::Object(mounts), format))?,
    }
    Ok(crate::error::EXIT_OK)
}

/// What a one-path write command (disable, tune) sends and says.
struct PathWrite<'a> {
    method: reqwest::Method,
    /// Builds the API path from the sanitized mount path.
    api_path: &'a dyn Fn(&str) -> String,
    body: Option<Value>,
    /// Builds the error prefix and the success line from the mount path.
    error: &'a dyn Fn(&str) -> String,
    success: &'a dyn Fn(&str) -> String,
}

/// The shared body of `disable` and `tune`: one PATH argument, one request, Vault's messages.
fn path_write(
    ctx: &mut crate::commands::Ctx<'_>,
    flags: &Parsed,
    w: PathWrite<'_>,
) -> Result<i32, CliError> {
    use crate::client::Body;
    use crate::commands::{expect_args, mount_path, report_write, sanitize_path};
    expect_args(flags, 1)?;
    let output = ctx.output(flags)?;
    let path = mount_path(&flags.positionals[0]);
    let client = ctx.connect(flags)?;
    let body = match &w.body {
        Some(v) => Body::Json(v),
        None => Body::None,
    };
    let answer = client
        .send(w.method, &(w.api_path)(&sanitize_path(&path)), &[], body)
        .map_err(|err| CliError::client((w.error)(&path), err))?;
    report_write(ctx, answer, &output, &(w.success)(&path))
}

/// Every mount command.
pub const COMMANDS: &[&[Command]] = &[secrets::COMMANDS, auth::COMMANDS, audit::COMMANDS];

const DESCRIPTION_FLAG: FlagSpec = FlagSpec::value("description", "Human-readable description.");
const PATH_FLAG: FlagSpec = FlagSpec::value("path", "Where to mount it (default: the type name).");
const LOCAL_FLAG: FlagSpec = FlagSpec::switch(
    "local",
    "Keep the mount local to this cluster: it is not replicated.",
);
const DEFAULT_TTL_FLAG: FlagSpec = FlagSpec::value(
    "default-lease-ttl",
    "Default lease TTL for this mount (default: the system's).",
);
const MAX_TTL_FLAG: FlagSpec = FlagSpec::value(
    "max-lease-ttl",
    "Maximum lease TTL for this mount (default: the system's).",
);
const OPTIONS_FLAG: FlagSpec = FlagSpec::value(
    "options",
    "A key=value option for the engine (e.g. version=2); repeat for more.",
);
const SEAL_WRAP_FLAG: FlagSpec = FlagSpec::switch("seal-wrap", "Seal-wrap the mount's data.");

/// Flags of `secrets enable` and `auth enable`.
const ENABLE_FLAGS: &[FlagSpec] = &[
    PATH_FLAG,
    DESCRIPTION_FLAG,
    DEFAULT_TTL_FLAG,
    MAX_TTL_FLAG,
    LOCAL_FLAG,
    SEAL_WRAP_FLAG,
    OPTIONS_FLAG,
];

/// Flags of `secrets tune` and `auth tune`.
const TUNE_FLAGS: &[FlagSpec] = &[
    DESCRIPTION_FLAG,
    DEFAULT_TTL_FLAG,
    MAX_TTL_FLAG,
    OPTIONS_FLAG,
];

/// `-detailed` for the list commands.
const LIST_FLAGS: &[FlagSpec] = &[FlagSpec::switch(
    "detailed",
    "Show every property of each mount.",
)];

/// The TTL part of a mount's `config`, from the TTL flags; durations as Go strings.
fn ttl_config(flags: &Parsed) -> Result<Map<String, Value>, CliError> {
    let mut config = Map::new();
    for (flag, field) in [
        ("default-lease-ttl", "default_lease_ttl"),
        ("max-lease-ttl", "max_lease_ttl"),
    ] {
        if let Some(seconds) = duration_flag(flags, flag)? {
            config.insert(field.to_string(), json!(go_duration(seconds)));
        }
    }
    Ok(config)
}

/// The body of `POST sys/mounts/<p>` and `POST sys/auth/<p>`; only given settings are sent.
fn enable_body(
    flags: &Parsed,
    kind: &str,
    mut options: Map<String, Value>,
) -> Result<Value, CliError> {
    let mut body = Map::new();
    body.insert("type".to_string(), json!(kind));
    if let Some(description) = flags.value("description") {
        body.insert("description".to_string(), json!(description));
    }
    let config = ttl_config(flags)?;
    if !config.is_empty() {
        body.insert("config".to_string(), Value::Object(config));
    }
    if flags.switch("local") {
        body.insert("local".to_string(), json!(true));
    }
    if flags.switch("seal-wrap") {
        body.insert("seal_wrap".to_string(), json!(true));
    }
    options.extend(map_flag(flags, "options")?);
    if !options.is_empty() {
        body.insert("options".to_string(), Value::Object(options));
    }
    Ok(Value::Object(body))
}

/// The body of a tune request; refuses an empty one, which would change nothing.
fn tune_body(flags: &Parsed) -> Result<Value, CliError> {
    let mut body = ttl_config(flags)?;
    if let Some(description) = flags.value("description") {
        body.insert("description".to_string(), json!(description));
    }
    let options = map_flag(flags, "options")?;
    if !options.is_empty() {
        body.insert("options".to_string(), Value::Object(options));
    }
    if body.is_empty() {
        return Err(CliError::Usage(
            "Nothing to tune: give at least one of -default-lease-ttl, -max-lease-ttl, \
             -description or -options"
                .to_string(),
        ));
    }
    Ok(Value::Object(body))
}

/// The mounts of a list answer, keyed by path: `data` when enveloped, else the top level.
fn mount_map(answer: &Value) -> Map<String, Value> {
    let source = match answer.get("data") {
        Some(Value::Object(data)) => data,
        _ => match answer.as_object() {
            Some(top) => top,
            None => return Map::new(),
        },
    };
    source
        .iter()
        .filter(|(_, mount)| mount.get("type").is_some())
        .map(|(path, mount)| (path.clone(), mount.clone()))
        .collect()
}

/// Which table a list command prints.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MountKind {
    Secrets,
    Auth,
}

fn text(mount: &Value, pointer: &str) -> String {
    match mount.pointer(pointer) {
        None | Some(Value::Null) => String::new(),
        Some(value) => go_value(value),
    }
}

fn ttl_cell(mount: &Value, key: &str) -> String {
    match mount
        .pointer(&format!("/config/{key}"))
        .and_then(Value::as_i64)
    {
        None | Some(0) => "system".to_string(),
        Some(seconds) => human_duration(seconds),
    }
}

fn flag_cell(mount: &Value, pointer: &str) -> String {
    go_value(mount.pointer(pointer).unwrap_or(&Value::Bool(false)))
}

/// The `secrets list` / `auth list` table.
fn mount_table(mounts: &Map<String, Value>, kind: MountKind, detailed: bool) -> String {
    let rows: Vec<Vec<String>> = sorted(mounts)
        .into_iter()
        .map(|(path, mount)| {
            if !detailed {
                let mut row = vec![
                    path.clone(),
                    text(mount, "/type"),
                    text(mount, "/accessor"),
                    text(mount, "/description"),
                ];
                if kind == MountKind::Auth {
                    row.push(text(mount, "/plugin_version"));
                }
                return row;
            }
            let mut row = vec![
                path.clone(),
                text(mount, "/type"),
                text(mount, "/accessor"),
                ttl_cell(mount, "default_lease_ttl"),
                ttl_cell(mount, "max_lease_ttl"),
            ];
            if kind == MountKind::Auth {
                row.push(text(mount, "/config/token_type"));
            } else {
                row.push(flag_cell(mount, "/config/force_no_cache"));
            }
            let local = mount.get("local").and_then(Value::as_bool).unwrap_or(false);
            row.push(if local { "local" } else { "replicated" }.to_string());
            row.push(flag_cell(mount, "/seal_wrap"));
            row.push(flag_cell(mount, "/external_entropy_access"));
            row.push(match mount.get("options") {
                None | Some(Value::Null) => "map[]".to_string(),
                Some(options) => go_value(options),
            });
            for pointer in [
                "/description",
                "/uuid",
                "/plugin_version",
                "/running_plugin_version",
                "/running_sha256",
                "/deprecation_status",
            ] {
                row.push(text(mount, pointer));
            }
            row
        })
        .collect();
    let header: &[&str] = match (kind, detailed) {
        (MountKind::Secrets, false) => &["Path", "Type", "Accessor", "Description"],
        (MountKind::Auth, false) => &["Path", "Type", "Accessor", "Description", "Version"],
        (MountKind::Secrets, true) => &[
            "Path",
            "Plugin",
            "Accessor",
            "Default TTL",
            "Max TTL",
            "Force No Cache",
            "Replication",
            "Seal Wrap",
            "External Entropy Access",
            "Options",
            "Description",
            "UUID",
            "Version",
            "Running Version",
            "Running SHA256",
            "Deprecation Status",
        ],
        (MountKind::Auth, true) => &[
            "Path",
            "Plugin",
            "Accessor",
            "Default TTL",
            "Max TTL",
            "Token Type",
            "Replication",
            "Seal Wrap",
            "External Entropy Access",
            "Options",
            "Description",
            "UUID",
            "Version",
            "Running Version",
            "Running SHA256",
            "Deprecation Status",
        ],
    };
    table(header, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Parsed {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        crate::args::parse(&args, &[ENABLE_FLAGS]).unwrap()
    }

    // Every enable flag lands in its API field; unset ones are not sent at all.
    #[test]
    fn enable_bodies() {
        let full = parse(&[
            "-description=team kv",
            "-default-lease-ttl=1h",
            "-max-lease-ttl=2h",
            "-local",
            "-seal-wrap",
            "-options=a=b",
        ]);
        let mut version = Map::new();
        version.insert("version".to_string(), json!("2"));

        assert_eq!(
            enable_body(&full, "kv", version).unwrap(),
            json!({"type": "kv", "description": "team kv",
                   "config": {"default_lease_ttl": "1h0m0s", "max_lease_ttl": "2h0m0s"},
                   "local": true, "seal_wrap": true, "options": {"version": "2", "a": "b"}})
        );
        assert_eq!(
            enable_body(&parse(&[]), "userpass", Map::new()).unwrap(),
            json!({"type": "userpass"})
        );
    }

    // A tune with nothing to change is a usage error rather than a silent no-op.
    #[test]
    fn empty_tune_is_refused() {
        let args: Vec<String> = Vec::new();
        let flags = crate::args::parse(&args, &[TUNE_FLAGS]).unwrap();
        assert_eq!(tune_body(&flags).unwrap_err().exit_code(), 1);
    }

    // Lists come enveloped or with the map on top; both yield only the mounts.
    #[test]
    fn mount_maps() {
        let enveloped = json!({"request_id": "r", "data": {"kv/": {"type": "kv"}}});
        let top = json!({"request_id": "r", "kv/": {"type": "kv"}, "data": null});

        assert_eq!(mount_map(&enveloped).len(), 1);
        assert_eq!(mount_map(&top).len(), 1);
        assert!(mount_map(&top).contains_key("kv/"));
    }

    // The plain table is sorted by path and shows n/a for blank descriptions.
    #[test]
    fn plain_table() {
        let mounts = mount_map(&json!({"data": {
            "sys/": {"type": "system", "accessor": "system_1", "description": "system endpoints"},
            "cubbyhole/": {"type": "cubbyhole", "accessor": "cubbyhole_2", "description": ""}
        }}));

        let out = mount_table(&mounts, MountKind::Secrets, false);

        assert_eq!(
            out,
            "Path          Type         Accessor       Description\n\
             ----          ----         --------       -----------\n\
             cubbyhole/    cubbyhole    cubbyhole_2    n/a\n\
             sys/          system       system_1       system endpoints\n"
        );
    }

    // The detailed table spells out TTL defaults, replication and options as Vault does.
    #[test]
    fn detailed_table() {
        let mounts = mount_map(&json!({"data": {
            "kv/": {"type": "kv", "accessor": "kv_1", "local": true, "options": {"version": "2"},
                    "config": {"default_lease_ttl": 0, "max_lease_ttl": 7200,
                               "force_no_cache": false}}
        }}));

        let out = mount_table(&mounts, MountKind::Secrets, true);
        let row = out.lines().nth(2).unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();

        assert_eq!(
            &cells[..9],
            &[
                "kv/", "kv", "kv_1", "system", "2h", "false", "local", "false", "false"
            ]
        );
        assert_eq!(cells[9], "map[version:2]");
    }
}
