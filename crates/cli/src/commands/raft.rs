//! `operator raft list-peers | join | remove-peer | promote | demote`: integrated storage
//! membership (`autopilot` has its own file).

use serde_json::{Value, json};
use strongroom_api::{
    RaftConfiguration, RaftJoinRequest, RaftVoterChangeRequest, RemovePeerRequest, SecretString,
};

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
    FlagSpec::value(
        "auto-join",
        "Cloud auto-join configuration instead of LEADER_API_ADDR (Strongroom's servers refuse it).",
    ),
    FlagSpec::value(
        "auto-join-scheme",
        "Scheme for auto-joined addresses (default https).",
    ),
    FlagSpec::value(
        "auto-join-port",
        "Port for auto-joined addresses (default 8200).",
    ),
];

pub const JOIN: Command = Command {
    words: &["operator", "raft", "join"],
    args: "[LEADER_API_ADDR]",
    synopsis: "Join this (uninitialized) node to an existing raft cluster.",
    flags: &[HTTP_FLAGS, FORMAT_FLAGS, JOIN_FLAGS],
    run: join,
};

const REMOVE_PEER_FLAGS: &[FlagSpec] = &[FlagSpec::value(
    "dr-token",
    "DR operation token, when the cluster is a DR secondary.",
)];

pub const REMOVE_PEER: Command = Command {
    words: &["operator", "raft", "remove-peer"],
    args: "NODE_ID",
    synopsis: "Remove a node from the raft cluster.",
    flags: &[HTTP_FLAGS, REMOVE_PEER_FLAGS],
    run: remove_peer,
};

pub const PROMOTE: Command = Command {
    words: &["operator", "raft", "promote"],
    args: "NODE_ID",
    synopsis: "Make a non-voting member of the raft cluster a voter.",
    flags: &[HTTP_FLAGS],
    run: promote,
};

pub const DEMOTE: Command = Command {
    words: &["operator", "raft", "demote"],
    args: "NODE_ID",
    synopsis: "Make a voting member of the raft cluster a non-voter.",
    flags: &[HTTP_FLAGS],
    run: demote,
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

/// The join body from the command line: flags and the optional LEADER_API_ADDR.
pub fn join_request(flags: &Parsed) -> Result<RaftJoinRequest, CliError> {
    if flags.positionals.len() > 1 {
        return Err(CliError::Usage(format!(
            "Too many arguments (expected at most 1, got {})",
            flags.positionals.len()
        )));
    }
    let leader_api_addr = flags.positionals.first().cloned().unwrap_or_default();
    let auto_join = flags.value("auto-join").unwrap_or_default().to_string();
    match (leader_api_addr.is_empty(), auto_join.is_empty()) {
        (false, false) => {
            return Err(CliError::Usage(
                "Give either LEADER_API_ADDR or -auto-join, not both".to_string(),
            ));
        }
        (true, true) => {
            return Err(CliError::Usage(
                "Not enough arguments: give LEADER_API_ADDR, the API address of a cluster node (e.g. https://node-1:8200)".to_string(),
            ));
        }
        _ => {}
    }
    let auto_join_port = match flags.value("auto-join-port") {
        None => 0,
        Some(raw) => raw.trim().parse::<u16>().map_err(|_| {
            CliError::Usage(format!(
                "Invalid -auto-join-port {raw:?}: use a port number from 1 to 65535"
            ))
        })?,
    };
    let pem = |flag: &str| -> Result<String, CliError> {
        flags
            .value(flag)
            .map(|raw| pem_argument(flag, raw))
            .transpose()
            .map(Option::unwrap_or_default)
    };
    Ok(RaftJoinRequest {
        leader_api_addr,
        retry: flags.switch("retry"),
        leader_ca_cert: pem("leader-ca-cert")?,
        leader_client_cert: pem("leader-client-cert")?,
        leader_client_key: SecretString::new(pem("leader-client-key")?),
        leader_tls_servername: flags
            .value("leader-tls-servername")
            .unwrap_or_default()
            .to_string(),
        auto_join,
        auto_join_scheme: flags
            .value("auto-join-scheme")
            .unwrap_or_default()
            .to_string(),
        auto_join_port,
        non_voter: flags.switch("non-voter"),
    })
}

fn join(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    let output = ctx.output(flags)?;
    let request = join_request(flags)?;
    let body = serde_json::to_value(&request)
        .map_err(|err| CliError::Local(format!("Error encoding the join request: {err}")))?;
    let client = ctx.connect(flags)?;
    let answer = client
        .put_json("sys/storage/raft/join", &body)
        .map_err(|err| CliError::client("Error joining the node to the raft cluster", err))?
        .unwrap_or_else(|| json!({"joined": true}));
    ctx.out(&render_join(&answer, output.format))?;
    Ok(EXIT_OK)
}

/// `Joined true` as a Key/Value table, or the answer in the asked format.
pub fn render_join(answer: &Value, format: Format) -> String {
    match format {
        Format::Table => {
            let joined = answer
                .get("joined")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            key_value_table(&[("Joined".to_string(), joined.to_string())])
        }
        other => render_value(answer, other),
    }
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
    let request = RemovePeerRequest {
        server_id: flags.positionals[0].clone(),
        dr_operation_token: flags.value("dr-token").map(str::to_string),
    };
    let client = ctx.connect(flags)?;
    client
        .put_json("sys/storage/raft/remove-peer", &encode(&request)?)
        .map_err(|err| CliError::client("Error removing the peer from the raft cluster", err))?;
    ctx.out("Peer removed successfully!\n")?;
    Ok(EXIT_OK)
}

fn promote(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    change_voter(ctx, flags, "promote", "promoted")
}

fn demote(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    change_voter(ctx, flags, "demote", "demoted")
}

/// `sys/storage/raft/promote` or `demote` with the node id.
fn change_voter(
    ctx: &mut Ctx<'_>,
    flags: &Parsed,
    verb: &str,
    done: &str,
) -> Result<i32, CliError> {
    expect_args(flags, 1)?;
    let request = RaftVoterChangeRequest {
        server_id: flags.positionals[0].clone(),
    };
    let client = ctx.connect(flags)?;
    client
        .put_json(&format!("sys/storage/raft/{verb}"), &encode(&request)?)
        .map_err(|err| {
            CliError::client(
                format!("Error {verb_ing} the peer", verb_ing = ing(verb)),
                err,
            )
        })?;
    ctx.out(&format!("Peer {done} successfully!\n"))?;
    Ok(EXIT_OK)
}

fn ing(verb: &str) -> String {
    format!("{}ing", verb.trim_end_matches('e'))
}

/// A request body as JSON.
pub fn encode<T: serde::Serialize>(body: &T) -> Result<Value, CliError> {
    serde_json::to_value(body)
        .map_err(|err| CliError::Local(format!("Error encoding the request: {err}")))
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

    fn join_flags(argv: &[&str]) -> Result<RaftJoinRequest, CliError> {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        join_request(&crate::args::parse(&argv, JOIN.flags).unwrap())
    }

    // Every join flag lands in Vault's body field; @FILE values are read.
    #[test]
    fn join_flags_become_the_request() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "CA-PEM").unwrap();

        let request = join_flags(&[
            &format!("-leader-ca-cert=@{}", ca.display()),
            "-leader-client-cert=CERT-PEM",
            "-leader-client-key",
            "KEY-PEM",
            "-leader-tls-servername=node-1.example.com",
            "-retry",
            "-non-voter",
            "https://node-1.example.com:8200",
        ])
        .unwrap();

        assert_eq!(
            encode(&request).unwrap(),
            json!({"leader_api_addr": "https://node-1.example.com:8200", "retry": true,
                "leader_ca_cert": "CA-PEM", "leader_client_cert": "CERT-PEM",
                "leader_client_key": "KEY-PEM",
                "leader_tls_servername": "node-1.example.com", "non_voter": true})
        );
        let plain = join_flags(&["https://n1:8200"]).unwrap();
        assert_eq!(
            encode(&plain).unwrap(),
            json!({"leader_api_addr": "https://n1:8200", "retry": false, "non_voter": false})
        );
    }

    // Auto-join is passed on (the server refuses it); address and auto-join are exclusive.
    #[test]
    fn join_address_or_auto_join() {
        let auto = join_flags(&[
            "-auto-join=provider=aws",
            "-auto-join-scheme=http",
            "-auto-join-port=8300",
        ])
        .unwrap();
        assert_eq!(
            (
                auto.auto_join.as_str(),
                auto.auto_join_scheme.as_str(),
                auto.auto_join_port
            ),
            ("provider=aws", "http", 8300)
        );
        for argv in [
            &["-auto-join=provider=aws", "https://n1:8200"][..],
            &[][..],
            &["a", "b"][..],
            &["-auto-join=x", "-auto-join-port=99999"][..],
        ] {
            let err = join_flags(argv).unwrap_err();
            assert!(matches!(err, CliError::Usage(_)), "{argv:?}: {err}");
        }
        assert!(matches!(
            join_flags(&["-leader-ca-cert=@/nonexistent/ca.pem", "https://n1:8200"]),
            Err(CliError::Local(_))
        ));
    }

    // join prints Vault's one-row table, or the answer itself in JSON.
    #[test]
    fn join_rendering() {
        let answer = json!({"joined": true});

        assert_eq!(
            render_join(&answer, Format::Table),
            "Key       Value\n---       -----\nJoined    true\n"
        );
        assert_eq!(
            render_join(&answer, Format::Json),
            "{\n  \"joined\": true\n}\n"
        );
    }

    // list-peers reads the configuration fixture as the server sends it (enveloped).
    #[test]
    fn peers_table_from_configuration_json() {
        let answer = json!({"data": {"config": {"index": 24, "servers": [
            {"address": "10.0.0.1:8201", "leader": false, "node_id": "n1",
             "protocol_version": "3", "voter": true},
            {"address": "10.0.0.2:8201", "leader": true, "node_id": "n2",
             "protocol_version": "3", "voter": true}]}}});
        let data: strongroom_api::RaftConfigurationData =
            serde_json::from_value(answer["data"].clone()).unwrap();

        assert_eq!(
            peers_table(&data.config),
            "Node    Address          State       Voter\n\
             ----    -------          -----       -----\n\
             n1      10.0.0.1:8201    follower    true\n\
             n2      10.0.0.2:8201    leader      true\n"
        );
    }

    // promote/demote messages name the verb correctly.
    #[test]
    fn voter_change_wording() {
        assert_eq!(ing("promote"), "promoting");
        assert_eq!(ing("demote"), "demoting");
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
