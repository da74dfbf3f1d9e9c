//! `operator raft list-peers | join | remove-peer`: integrated storage membership.

use serde_json::{Map, Value, json};
use strongroom_api::RaftConfiguration;

use super::{Command, Ctx, expect_args};
use crate::args::{FlagSpec, Parsed};
use crate::config::HTTP_FLAGS;
use crate::error::{CliError, EXIT_OK};
use crate::output::{FORMAT_FLAGS, Format, columns, key_value_table, render_value};

pub const LIST_PEERS: Command = Command {
    words: &["operator", "raft", "list-peers"],
    args: "",
    synopsis: "List the members of the raft cluster.",
    flags: &[HTTP_FLAGS, FORMAT_FLAGS],
    run: list_peers,
};

const JOIN_FLAGS: &[FlagSpec] = &[
    FlagSpec::switch("retry", "Keep retrying the join until it succeeds."),
    FlagSpec::switch("non-voter", "Join as a non-voting member."),
    FlagSpec::value(
        "leader-ca-cert",
        "CA certificate (PEM, or @FILE) to verify the leader's API certificate.",
    ),
    FlagSpec::value(
        "leader-client-cert",
        "Client certificate (PEM, or @FILE) to present to the leader.",
    ),
    FlagSpec::value(
        "leader-client-key",
        "Client key (PEM, or @FILE) for -leader-client-cert.",
    ),
    FlagSpec::value(
        "leader-tls-servername",
        "Name to verify the leader's certificate against.",
    ),
];

pub const JOIN: Command = Command {
    words: &["operator", "raft", "join"],
    args: "LEADER_API_ADDR",
    synopsis: "Join this (uninitialized) node to an existing raft cluster.",
    flags: &[HTTP_FLAGS, FORMAT_FLAGS, JOIN_FLAGS],
    run: join,
};

pub const REMOVE_PEER: Command = Command {
    words: &["operator", "raft", "remove-peer"],
    args: "NODE_ID",
    synopsis: "Remove a node from the raft cluster.",
    flags: &[HTTP_FLAGS],
    run: remove_peer,
};

fn list_peers(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 0)?;
    let output = ctx.output(flags)?;
    let client = ctx.connect(flags)?;
    let answer = client
        .get_json("sys/storage/raft/configuration")
        .map_err(|err| CliError::client("Error reading the raft cluster configuration", err))?
        .ok_or_else(|| CliError::Remote("No raft cluster configuration found".to_string()))?;
    if output.format != Format::Table {
        ctx.out(&render_value(&answer, output.format))?;
        return Ok(EXIT_OK);
    }
    let config: RaftConfiguration = answer
        .pointer("/data/config")
        .cloned()
        .ok_or_else(|| CliError::Remote("No raft cluster configuration found".to_string()))
        .and_then(|config| {
            serde_json::from_value(config).map_err(|err| {
                CliError::Remote(format!(
                    "Error reading the raft cluster configuration: unexpected answer: {err}"
                ))
            })
        })?;
    ctx.out(&peers_table(&config))?;
    Ok(EXIT_OK)
}

/// The `Node / Address / State / Voter` table.
pub fn peers_table(config: &RaftConfiguration) -> String {
    let mut rows = vec![
        vec![
            "Node".into(),
            "Address".into(),
            "State".into(),
            "Voter".into(),
        ],
        vec![
            "----".into(),
            "-------".into(),
            "-----".into(),
            "-----".into(),
        ],
    ];
    for server in &config.servers {
        rows.push(vec![
            server.node_id.clone(),
            server.address.clone(),
            if server.leader { "leader" } else { "follower" }.to_string(),
            server.voter.to_string(),
        ]);
    }
    columns(&rows)
}

fn join(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 1)?;
    let output = ctx.output(flags)?;
    let mut body = Map::new();
    body.insert("leader_api_addr".into(), json!(flags.positionals[0]));
    body.insert("retry".into(), json!(flags.switch("retry")));
    body.insert("non_voter".into(), json!(flags.switch("non-voter")));
    for (flag, field) in [
        ("leader-ca-cert", "leader_ca_cert"),
        ("leader-client-cert", "leader_client_cert"),
        ("leader-client-key", "leader_client_key"),
    ] {
        if let Some(raw) = flags.value(flag) {
            body.insert(field.into(), Value::String(pem_argument(flag, raw)?));
        }
    }
    if let Some(name) = flags.value("leader-tls-servername") {
        body.insert("leader_tls_servername".into(), json!(name));
    }
    let client = ctx.connect(flags)?;
    let answer = client
        .put_json("sys/storage/raft/join", &Value::Object(body))
        .map_err(|err| CliError::client("Error joining the node to the raft cluster", err))?
        .unwrap_or_else(|| json!({"joined": true}));
    match output.format {
        Format::Table => {
            let joined = answer
                .get("joined")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            ctx.out(&key_value_table(&[(
                "Joined".to_string(),
                joined.to_string(),
            )]))?;
        }
        other => ctx.out(&render_value(&answer, other))?,
    }
    Ok(EXIT_OK)
}

/// PEM flags take the PEM text itself or `@FILE`.
fn pem_argument(flag: &str, raw: &str) -> Result<String, CliError> {
    match raw.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|err| CliError::Local(format!("Error reading -{flag} file {path}: {err}"))),
        None => Ok(raw.to_string()),
    }
}

fn remove_peer(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 1)?;
    let client = ctx.connect(flags)?;
    let body = json!({"server_id": flags.positionals[0]});
    client
        .put_json("sys/storage/raft/remove-peer", &body)
        .map_err(|err| CliError::client("Error removing the peer from the raft cluster", err))?;
    ctx.out("Peer removed successfully!\n")?;
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strongroom_api::RaftServer;

    // list-peers prints Vault's four columns with leader/follower states.
    #[test]
    fn peers_table_layout() {
        let config = RaftConfiguration {
            index: 24,
            servers: vec![
                RaftServer {
                    address: "127.0.0.1:8201".into(),
                    leader: true,
                    node_id: "raft1".into(),
                    protocol_version: "3".into(),
                    voter: true,
                },
                RaftServer {
                    address: "127.0.0.2:8201".into(),
                    leader: false,
                    node_id: "raft2".into(),
                    protocol_version: "3".into(),
                    voter: false,
                },
            ],
        };

        let table = peers_table(&config);

        assert_eq!(
            table,
            "Node     Address           State       Voter\n\
             ----     -------           -----       -----\n\
             raft1    127.0.0.1:8201    leader      true\n\
             raft2    127.0.0.2:8201    follower    false\n"
        );
    }

    // PEM flags accept inline text or @FILE.
    #[test]
    fn pem_argument_forms() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "PEMDATA").unwrap();

        assert_eq!(pem_argument("x", "inline").unwrap(), "inline");
        assert_eq!(
            pem_argument("x", &format!("@{}", path.display())).unwrap(),
            "PEMDATA"
        );
        assert!(pem_argument("x", "@/nonexistent/ca.pem").is_err());
    }
}
