//! `status`: seal state and HA/raft details of the server.
//!
//! Its exit code is an API of its own (0 unsealed, 2 sealed, 1 error): health checks and init
//! scripts branch on it, so every failure maps to 1 and never collides with "sealed".

use serde_json::Value;
use strongroom_api::{LeaderResponse, SealStatus};

use super::{Command, Ctx, decode, expect_args, status_error};
use crate::args::Parsed;
use crate::client::Client;
use crate::config::HTTP_FLAGS;
use crate::error::{CliError, EXIT_OK, EXIT_REMOTE};
use crate::output::{FORMAT_FLAGS, Format, key_value_table, render_value};

pub const COMMAND: Command = Command {
    words: &["status"],
    args: "",
    synopsis: "Print the seal and HA status of the server (exit 0 unsealed, 2 sealed, 1 error).",
    flags: &[HTTP_FLAGS, FORMAT_FLAGS],
    run,
};

/// An RFC 3339 "zero time": the server was never active.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn run(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 0)?;
    let output = ctx.output(flags)?;
    let client = ctx.connect(flags)?;
    let report = fetch(&client).map_err(|err| CliError::Local(err.to_string()))?;
    print(ctx, &report, output.format)?;
    Ok(if report.seal.sealed {
        EXIT_REMOTE
    } else {
        EXIT_OK
    })
}

/// Seal status, plus leader details once unsealed.
pub struct StatusReport {
    pub seal: SealStatus,
    pub raw_seal: Value,
    pub leader: Option<(LeaderResponse, Value)>,
}

/// Reads `sys/seal-status` and, when unsealed, `sys/leader`. Errors exit 1 (see module docs).
pub fn fetch(client: &Client) -> Result<StatusReport, CliError> {
    let raw_seal = client
        .get_json("sys/seal-status")
        .map_err(|err| status_error("Error checking seal status", err))?;
    let report_seal: SealStatus = decode(raw_seal.clone(), "Error checking seal status")?;
    with_leader(client, report_seal, raw_seal.unwrap_or(Value::Null))
}

/// Completes a seal status (from `seal-status` or `unseal`) with the leader details.
pub fn with_leader(
    client: &Client,
    seal: SealStatus,
    raw_seal: Value,
) -> Result<StatusReport, CliError> {
    let leader = if seal.sealed {
        None
    } else {
        let raw = client
            .get_json("sys/leader")
            .map_err(|err| status_error("Error checking leader status", err))?;
        let parsed: LeaderResponse = decode(raw.clone(), "Error checking leader status")?;
        Some((parsed, raw.unwrap_or(Value::Null)))
    };
    Ok(StatusReport {
        seal,
        raw_seal,
        leader,
    })
}

/// Prints a status report in the requested format.
pub fn print(ctx: &mut Ctx<'_>, report: &StatusReport, format: Format) -> Result<(), CliError> {
    match format {
        Format::Table => {
            let rows = rows(&report.seal, report.leader.as_ref().map(|(l, _)| l));
            ctx.out(&key_value_table(&rows))
        }
        other => {
            // One object: the seal-status fields, then the leader fields, as `vault status` does.
            let mut merged = report.raw_seal.as_object().cloned().unwrap_or_default();
            if let Some((_, Value::Object(leader))) = &report.leader {
                for (key, value) in leader {
                    merged.entry(key.clone()).or_insert_with(|| value.clone());
                }
            }
            ctx.out(&render_value(&Value::Object(merged), other))
        }
    }
}

/// The table rows of `vault status`.
pub fn rows(seal: &SealStatus, leader: Option<&LeaderResponse>) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |key: &str, value: String| rows.push((key.to_string(), value));
    row("Seal Type", seal.seal_type.clone());
    row("Initialized", seal.initialized.to_string());
    row("Sealed", seal.sealed.to_string());
    row("Total Shares", seal.n.to_string());
    row("Threshold", seal.t.to_string());
    if seal.sealed {
        row("Unseal Progress", format!("{}/{}", seal.progress, seal.t));
        row(
            "Unseal Nonce",
            if seal.nonce.is_empty() {
                "n/a".to_string()
            } else {
                seal.nonce.clone()
            },
        );
    }
    row("Version", seal.version.clone());
    if !seal.build_date.is_empty() {
        row("Build Date", seal.build_date.clone());
    }
    row("Storage Type", seal.storage_type.clone());
    if let Some(name) = &seal.cluster_name {
        row("Cluster Name", name.clone());
    }
    if let Some(id) = &seal.cluster_id {
        row("Cluster ID", id.clone());
    }
    if let Some(leader) = leader {
        row("HA Enabled", leader.ha_enabled.to_string());
        if leader.ha_enabled {
            row(
                "HA Cluster",
                if leader.leader_cluster_address.is_empty() {
                    "n/a".to_string()
                } else {
                    leader.leader_cluster_address.clone()
                },
            );
            row(
                "HA Mode",
                if leader.is_self { "active" } else { "standby" }.to_string(),
            );
            if leader.is_self && !leader.active_time.is_empty() && leader.active_time != ZERO_TIME {
                row("Active Since", leader.active_time.clone());
            }
            if !leader.is_self {
                // Where a standby forwards to (and redirects clients to), as Vault shows it.
                row(
                    "Active Node Address",
                    if leader.leader_address.is_empty() {
                        "<none>".to_string()
                    } else {
                        leader.leader_address.clone()
                    },
                );
            }
        }
        if seal.storage_type == "raft" {
            row(
                "Raft Committed Index",
                leader.raft_committed_index.to_string(),
            );
            row("Raft Applied Index", leader.raft_applied_index.to_string());
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unsealed() -> SealStatus {
        SealStatus {
            seal_type: "shamir".into(),
            initialized: true,
            sealed: false,
            t: 3,
            n: 5,
            version: "1.16.3".into(),
            build_date: "2024-05-29T14:28:42Z".into(),
            cluster_name: Some("vault-cluster-1".into()),
            cluster_id: Some("cid".into()),
            storage_type: "raft".into(),
            ..SealStatus::default()
        }
    }

    fn keys(rows: &[(String, String)]) -> Vec<&str> {
        rows.iter().map(|(k, _)| k.as_str()).collect()
    }

    // An active raft node shows every row Vault shows, in Vault's order.
    #[test]
    fn unsealed_active_rows() {
        let leader = LeaderResponse {
            ha_enabled: true,
            is_self: true,
            active_time: "2025-01-02T03:04:05Z".into(),
            leader_cluster_address: "https://10.0.0.1:8201".into(),
            raft_committed_index: 52,
            raft_applied_index: 51,
            ..LeaderResponse::default()
        };

        let rows = rows(&unsealed(), Some(&leader));

        assert_eq!(
            keys(&rows),
            [
                "Seal Type",
                "Initialized",
                "Sealed",
                "Total Shares",
                "Threshold",
                "Version",
                "Build Date",
                "Storage Type",
                "Cluster Name",
                "Cluster ID",
                "HA Enabled",
                "HA Cluster",
                "HA Mode",
                "Active Since",
                "Raft Committed Index",
                "Raft Applied Index"
            ]
        );
        assert_eq!(rows[12].1, "active");
        assert_eq!(rows[14].1, "52");
    }

    // A sealed server shows unseal progress and nonce, and no HA rows (leader is not asked).
    #[test]
    fn sealed_rows() {
        let seal = SealStatus {
            sealed: true,
            progress: 2,
            nonce: "n-1".into(),
            cluster_name: None,
            cluster_id: None,
            ..unsealed()
        };

        let rows = rows(&seal, None);

        assert!(rows.contains(&("Unseal Progress".into(), "2/3".into())));
        assert!(rows.contains(&("Unseal Nonce".into(), "n-1".into())));
        assert!(!keys(&rows).contains(&"HA Enabled"));
    }

    // A standby never shows "Active Since", and a never-active zero time is hidden.
    #[test]
    fn standby_rows() {
        let leader = LeaderResponse {
            ha_enabled: true,
            is_self: false,
            active_time: ZERO_TIME.into(),
            ..LeaderResponse::default()
        };

        let rows = rows(&unsealed(), Some(&leader));

        assert!(rows.contains(&("HA Mode".into(), "standby".into())));
        assert!(rows.contains(&("HA Cluster".into(), "n/a".into())));
        assert!(rows.contains(&("Active Node Address".into(), "<none>".into())));
        assert!(!keys(&rows).contains(&"Active Since"));
    }

    // A standby of a cluster, decoded from the sys/leader JSON a standby answers: the HA
    // block of spec §3 in Vault's order, pointing at the active node.
    #[test]
    fn standby_rows_from_leader_json() {
        let leader: LeaderResponse = serde_json::from_value(serde_json::json!({
            "ha_enabled": true, "is_self": false, "active_time": ZERO_TIME,
            "leader_address": "https://10.0.0.1:8200",
            "leader_cluster_address": "https://10.0.0.1:8201",
            "performance_standby": false, "performance_standby_last_remote_wal": 0,
            "last_wal": 0, "raft_committed_index": 70, "raft_applied_index": 69}))
        .unwrap();

        let rows = rows(&unsealed(), Some(&leader));

        let ha: Vec<(&str, &str)> = rows
            .iter()
            .skip_while(|(k, _)| k != "HA Enabled")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            ha,
            [
                ("HA Enabled", "true"),
                ("HA Cluster", "https://10.0.0.1:8201"),
                ("HA Mode", "standby"),
                ("Active Node Address", "https://10.0.0.1:8200"),
                ("Raft Committed Index", "70"),
                ("Raft Applied Index", "69"),
            ]
        );
    }

    // Without HA (inmem storage) only "HA Enabled false" shows of the HA block.
    #[test]
    fn non_ha_rows() {
        let seal = SealStatus {
            storage_type: "inmem".into(),
            ..unsealed()
        };

        let rows = rows(&seal, Some(&LeaderResponse::default()));

        let ha: Vec<&str> = keys(&rows)
            .into_iter()
            .skip_while(|k| *k != "HA Enabled")
            .collect();
        assert_eq!(ha, ["HA Enabled"]);
    }
}
