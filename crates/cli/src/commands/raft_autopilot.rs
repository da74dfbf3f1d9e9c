//! `operator raft autopilot state | get-config | set-config`: the Raft cluster as autopilot
//! sees it, and autopilot's settings, with Vault's flags and text layout.

use serde_json::Value;
use strongroom_api::{
    AutopilotConfiguration, AutopilotConfigurationUpdate, AutopilotServer, AutopilotState,
    duration::format_go_duration,
};

use super::raft::encode;
use super::{Command, Ctx, duration_flag, expect_args};
use crate::args::{FlagSpec, Parsed};
use crate::config::HTTP_FLAGS;
use crate::error::{CliError, EXIT_OK};
use crate::output::{FORMAT_FLAGS, Format, columns, render_value};

const STATE_PATH: &str = "sys/storage/raft/autopilot/state";
const CONFIG_PATH: &str = "sys/storage/raft/autopilot/configuration";

pub const STATE: Command = Command {
    words: &["operator", "raft", "autopilot", "state"],
    args: "",
    synopsis: "Show the raft cluster's health as autopilot sees it.",
    flags: &[HTTP_FLAGS, FORMAT_FLAGS],
    run: state,
};

pub const GET_CONFIG: Command = Command {
    words: &["operator", "raft", "autopilot", "get-config"],
    args: "",
    synopsis: "Show autopilot's configuration.",
    flags: &[HTTP_FLAGS, FORMAT_FLAGS],
    run: get_config,
};

const SET_CONFIG_FLAGS: &[FlagSpec] = &[
    FlagSpec::switch(
        "cleanup-dead-servers",
        "Remove dead servers periodically and when a server joins (needs -min-quorum).",
    ),
    FlagSpec::value(
        "last-contact-threshold",
        "How long a server may go without contact from the leader before it is unhealthy (e.g. 10s).",
    ),
    FlagSpec::value(
        "dead-server-last-contact-threshold",
        "How long a server may go without contact from the leader before it is dead (e.g. 24h, at least 1m).",
    ),
    FlagSpec::value(
        "max-trailing-logs",
        "How many log entries a server may lag behind the leader and stay healthy.",
    ),
    FlagSpec::value(
        "min-quorum",
        "Fewest voters dead-server cleanup must leave in the cluster.",
    ),
    FlagSpec::value(
        "server-stabilization-time",
        "How long a new server must stay healthy before it becomes a voter (e.g. 10s).",
    ),
];

pub const SET_CONFIG: Command = Command {
    words: &["operator", "raft", "autopilot", "set-config"],
    args: "",
    synopsis: "Change autopilot's configuration (only the settings given change).",
    flags: &[HTTP_FLAGS, SET_CONFIG_FLAGS],
    run: set_config,
};

/// The answer's `data` (Vault's client reads autopilot answers from there); a raw object
/// is accepted as it is.
fn data_of(answer: Value) -> Value {
    match answer {
        Value::Object(mut obj) if obj.get("data").is_some_and(Value::is_object) => {
            obj.remove("data").unwrap_or(Value::Null)
        }
        other => other,
    }
}

fn read_data(ctx: &Ctx<'_>, flags: &Parsed, path: &str, what: &str) -> Result<Value, CliError> {
    let client = ctx.connect(flags)?;
    let answer = client
        .get_json(path)
        .map_err(|err| CliError::client(format!("Error reading {what}"), err))?
        .ok_or_else(|| {
            CliError::Remote(format!("Error reading {what}: the server sent no body"))
        })?;
    Ok(data_of(answer))
}

fn decode<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> Result<T, CliError> {
    serde_json::from_value(value).map_err(|err| {
        CliError::Remote(format!(
            "Error reading {what}: unexpected answer from the server: {err}"
        ))
    })
}

fn state(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 0)?;
    let output = ctx.output(flags)?;
    let what = "the autopilot state";
    let data = read_data(ctx, flags, STATE_PATH, what)?;
    if output.format != Format::Table {
        ctx.out(&render_value(&data, output.format))?;
        return Ok(EXIT_OK);
    }
    let state: AutopilotState = decode(data, what)?;
    ctx.out(&state_text(&state))?;
    Ok(EXIT_OK)
}

/// An empty value shows as `n/a`, as in Vault's columns.
fn cell(value: &str) -> String {
    if value.is_empty() {
        "n/a".to_string()
    } else {
        value.to_string()
    }
}

/// Vault's text layout of the autopilot state: the cluster lines, the voters, then each
/// server (by id) with its details indented below it.
pub fn state_text(state: &AutopilotState) -> String {
    let mut out = columns(&[
        vec!["Healthy:".into(), state.healthy.to_string()],
        vec![
            "Failure Tolerance:".into(),
            state.failure_tolerance.to_string(),
        ],
        vec!["Leader:".into(), cell(&state.leader)],
    ]);
    out.push_str("Voters:\n");
    for voter in &state.voters {
        out.push_str(&format!("   {voter}\n"));
    }
    if !state.non_voters.is_empty() {
        out.push_str("Non Voters:\n");
        for id in &state.non_voters {
            out.push_str(&format!("   {id}\n"));
        }
    }
    out.push_str("Servers:\n");
    let blocks: Vec<(&String, Vec<Vec<String>>)> = state
        .servers
        .iter()
        .map(|(id, server)| (id, server_rows(server)))
        .collect();
    // One alignment for every server's rows, as Vault's single column layout gives.
    let width = blocks
        .iter()
        .flat_map(|(_, rows)| rows.iter())
        .map(|row| row[0].chars().count())
        .max()
        .unwrap_or(0);
    for (id, rows) in blocks {
        out.push_str(&format!("   {id}\n"));
        for row in rows {
            let pad = width.saturating_sub(row[0].chars().count());
            out.push_str(&format!("{}{}    {}\n", row[0], " ".repeat(pad), row[1]));
        }
    }
    out
}

fn server_rows(server: &AutopilotServer) -> Vec<Vec<String>> {
    [
        ("Name:", cell(&server.name)),
        ("Address:", cell(&server.address)),
        ("Status:", server.status.as_str().to_string()),
        ("Node Status:", server.node_status.as_str().to_string()),
        ("Healthy:", server.healthy.to_string()),
        ("Last Contact:", cell(&server.last_contact)),
        ("Last Term:", server.last_term.to_string()),
        ("Last Index:", server.last_index.to_string()),
        ("Version:", cell(&server.version)),
        ("Node Type:", cell(&server.node_type)),
    ]
    .into_iter()
    .map(|(key, value)| vec![format!("      {key}"), value])
    .collect()
}

fn get_config(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 0)?;
    let output = ctx.output(flags)?;
    let what = "the autopilot configuration";
    let data = read_data(ctx, flags, CONFIG_PATH, what)?;
    if output.format != Format::Table {
        ctx.out(&render_value(&data, output.format))?;
        return Ok(EXIT_OK);
    }
    let config: AutopilotConfiguration = decode(data, what)?;
    ctx.out(&config_text(&config))?;
    Ok(EXIT_OK)
}

/// Vault's `Key  Value` layout of the autopilot configuration (no underline, as Vault prints
/// it), durations in Go's spelling.
pub fn config_text(config: &AutopilotConfiguration) -> String {
    let rows: Vec<Vec<String>> = [
        ("Key", "Value".to_string()),
        (
            "Cleanup Dead Servers",
            config.cleanup_dead_servers.to_string(),
        ),
        (
            "Last Contact Threshold",
            format_go_duration(config.last_contact_threshold),
        ),
        (
            "Dead Server Last Contact Threshold",
            format_go_duration(config.dead_server_last_contact_threshold),
        ),
        (
            "Server Stabilization Time",
            format_go_duration(config.server_stabilization_time),
        ),
        ("Min Quorum", config.min_quorum.to_string()),
        ("Max Trailing Logs", config.max_trailing_logs.to_string()),
    ]
    .into_iter()
    .map(|(key, value)| vec![key.to_string(), value])
    .collect();
    columns(&rows)
}

/// The set-config body: only the flags given.
pub fn config_update(flags: &Parsed) -> Result<AutopilotConfigurationUpdate, CliError> {
    let seconds = |name: &str| -> Result<Option<std::time::Duration>, CliError> {
        Ok(duration_flag(flags, name)?.map(std::time::Duration::from_secs))
    };
    let count = |name: &str| -> Result<Option<u64>, CliError> {
        flags
            .value(name)
            .map(|raw| {
                raw.trim().parse::<u64>().map_err(|_| {
                    CliError::Usage(format!(
                        "Invalid -{name} {raw:?}: use a whole number, 0 or more"
                    ))
                })
            })
            .transpose()
    };
    let min_quorum = count("min-quorum")?
        .map(|n| {
            u32::try_from(n)
                .map_err(|_| CliError::Usage(format!("Invalid -min-quorum {n}: too large")))
        })
        .transpose()?;
    let update = AutopilotConfigurationUpdate {
        cleanup_dead_servers: flags
            .given("cleanup-dead-servers")
            .then(|| flags.switch("cleanup-dead-servers")),
        last_contact_threshold: seconds("last-contact-threshold")?,
        dead_server_last_contact_threshold: seconds("dead-server-last-contact-threshold")?,
        max_trailing_logs: count("max-trailing-logs")?,
        min_quorum,
        server_stabilization_time: seconds("server-stabilization-time")?,
    };
    if update == AutopilotConfigurationUpdate::default() {
        return Err(CliError::Usage(
            "Nothing to change: give at least one setting, e.g. -cleanup-dead-servers=true -min-quorum=3".to_string(),
        ));
    }
    Ok(update)
}

fn set_config(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 0)?;
    let update = config_update(flags)?;
    let client = ctx.connect(flags)?;
    client
        .put_json(CONFIG_PATH, &encode(&update)?)
        .map_err(|err| CliError::client("Error updating the autopilot configuration", err))?;
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::args;

    fn parsed(argv: &[&str], flags: &[&[FlagSpec]]) -> Parsed {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        args::parse(&argv, flags).unwrap()
    }

    /// A two-server state as the server's API answers it (enveloped).
    fn state_fixture() -> Value {
        json!({"request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 0,
            "data": {"healthy": false, "failure_tolerance": 0, "leader": "raft1",
              "voters": ["raft1", "raft2"], "non_voters": ["raft3"],
              "servers": {
                "raft2": {"id": "raft2", "name": "raft2", "address": "127.0.0.2:8201",
                  "node_status": "failed", "last_contact": "12.5s", "last_term": 3,
                  "last_index": 40, "healthy": false,
                  "stable_since": "2025-01-01T00:00:00Z", "status": "voter",
                  "version": "1.16.3", "node_type": "voter"},
                "raft1": {"id": "raft1", "name": "raft1", "address": "127.0.0.1:8201",
                  "node_status": "alive", "last_contact": "0s", "last_term": 3,
                  "last_index": 61, "healthy": true,
                  "stable_since": "2025-01-01T00:00:00Z", "status": "leader",
                  "version": "1.16.3", "node_type": "voter"},
                "raft3": {"id": "raft3", "name": "raft3", "address": "127.0.0.3:8201",
                  "node_status": "alive", "last_contact": "", "last_term": 3,
                  "last_index": 61, "healthy": true,
                  "stable_since": "2025-01-01T00:00:00Z", "status": "non-voter",
                  "version": "", "node_type": "voter"}}},
            "wrap_info": null, "warnings": null, "auth": null})
    }

    // The state prints in Vault's layout: cluster lines, voters, then servers sorted by id.
    #[test]
    fn state_text_layout() {
        let state: AutopilotState = serde_json::from_value(data_of(state_fixture())).unwrap();

        let text = state_text(&state);

        assert_eq!(
            text,
            "Healthy:              false\n\
             Failure Tolerance:    0\n\
             Leader:               raft1\n\
             Voters:\n\
             \x20  raft1\n\
             \x20  raft2\n\
             Non Voters:\n\
             \x20  raft3\n\
             Servers:\n\
             \x20  raft1\n\
             \x20     Name:            raft1\n\
             \x20     Address:         127.0.0.1:8201\n\
             \x20     Status:          leader\n\
             \x20     Node Status:     alive\n\
             \x20     Healthy:         true\n\
             \x20     Last Contact:    0s\n\
             \x20     Last Term:       3\n\
             \x20     Last Index:      61\n\
             \x20     Version:         1.16.3\n\
             \x20     Node Type:       voter\n\
             \x20  raft2\n\
             \x20     Name:            raft2\n\
             \x20     Address:         127.0.0.2:8201\n\
             \x20     Status:          voter\n\
             \x20     Node Status:     failed\n\
             \x20     Healthy:         false\n\
             \x20     Last Contact:    12.5s\n\
             \x20     Last Term:       3\n\
             \x20     Last Index:      40\n\
             \x20     Version:         1.16.3\n\
             \x20     Node Type:       voter\n\
             \x20  raft3\n\
             \x20     Name:            raft3\n\
             \x20     Address:         127.0.0.3:8201\n\
             \x20     Status:          non-voter\n\
             \x20     Node Status:     alive\n\
             \x20     Healthy:         true\n\
             \x20     Last Contact:    n/a\n\
             \x20     Last Term:       3\n\
             \x20     Last Index:      61\n\
             \x20     Version:         n/a\n\
             \x20     Node Type:       voter\n"
        );
    }

    // A raw (un-enveloped) answer is read as it is.
    #[test]
    fn data_of_accepts_raw_and_enveloped() {
        let raw = json!({"healthy": true});

        assert_eq!(data_of(raw.clone()), raw);
        assert_eq!(
            data_of(json!({"data": raw.clone(), "request_id": "x"})),
            raw
        );
    }

    // get-config prints Vault's rows with Go durations.
    #[test]
    fn config_text_layout() {
        let fixture = json!({"cleanup_dead_servers": true, "last_contact_threshold": "10s",
            "dead_server_last_contact_threshold": "24h0m0s", "max_trailing_logs": 1000,
            "min_quorum": 3, "server_stabilization_time": "10s"});
        let config: AutopilotConfiguration = serde_json::from_value(fixture).unwrap();

        assert_eq!(
            config_text(&config),
            "Key                                   Value\n\
             Cleanup Dead Servers                  true\n\
             Last Contact Threshold                10s\n\
             Dead Server Last Contact Threshold    24h0m0s\n\
             Server Stabilization Time             10s\n\
             Min Quorum                            3\n\
             Max Trailing Logs                     1000\n"
        );
    }

    // set-config sends exactly the flags given, durations as Go strings.
    #[test]
    fn set_config_flags_become_the_update() {
        let flags = parsed(
            &[
                "-cleanup-dead-servers",
                "-min-quorum=3",
                "-dead-server-last-contact-threshold=1h",
                "-server-stabilization-time",
                "30",
            ],
            &[SET_CONFIG_FLAGS],
        );

        let body = encode(&config_update(&flags).unwrap()).unwrap();

        assert_eq!(
            body,
            json!({"cleanup_dead_servers": true, "min_quorum": 3,
                "dead_server_last_contact_threshold": "1h0m0s",
                "server_stabilization_time": "30s"})
        );
        let off = parsed(&["-cleanup-dead-servers=false"], &[SET_CONFIG_FLAGS]);
        assert_eq!(
            encode(&config_update(&off).unwrap()).unwrap(),
            json!({"cleanup_dead_servers": false})
        );
    }

    // Bad or missing set-config values are usage errors before any request.
    #[test]
    fn set_config_rejects_bad_flags() {
        for argv in [
            &["-max-trailing-logs=many"][..],
            &["-min-quorum=-1"][..],
            &["-last-contact-threshold=soon"][..],
            &[][..],
        ] {
            let err = config_update(&parsed(argv, &[SET_CONFIG_FLAGS])).unwrap_err();
            assert!(matches!(err, CliError::Usage(_)), "{argv:?}: {err}");
        }
    }
}
