//! The configuration's Vault rules: defaults, the GET body's JSON types, POST parsing and
//! validation with Vault's error texts, and the persisted record.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::*;

const DAY: u64 = 24 * 3600;

fn params(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("test params are objects"),
    }
}

fn cleanup(min_quorum: u64) -> AutopilotConfig {
    AutopilotConfig {
        cleanup_dead_servers: true,
        min_quorum,
        ..AutopilotConfig::default()
    }
}

#[test]
fn config_get_body_has_vault_defaults_and_types() {
    // Why: `vault operator raft autopilot get-config` and Terraform read these exact strings.
    let body = Value::Object(AutopilotConfig::default().to_data());
    assert_eq!(
        body,
        json!({
            "cleanup_dead_servers": false,
            "last_contact_threshold": "10s",
            "dead_server_last_contact_threshold": "24h0m0s",
            "max_trailing_logs": 1000,
            "min_quorum": 0,
            "server_stabilization_time": "10s",
            "disable_upgrade_migration": false,
        })
    );
}

#[test]
fn config_update_takes_strings_seconds_and_ignores_unknown_fields() {
    // Why: the CLI sends every value as a string, Terraform sends numbers.
    let next = AutopilotConfig::default()
        .updated(&params(json!({
            "last_contact_threshold": "20s",
            "dead_server_last_contact_threshold": "48h",
            "server_stabilization_time": 30,
            "max_trailing_logs": "500",
            "min_quorum": 5,
            "cleanup_dead_servers": "true",
            "redundancy_zone_tag": "zone",
        })))
        .unwrap();
    assert_eq!(
        next,
        AutopilotConfig {
            cleanup_dead_servers: true,
            last_contact_threshold: Duration::from_secs(20),
            dead_server_last_contact_threshold: Duration::from_secs(2 * DAY),
            max_trailing_logs: 500,
            min_quorum: 5,
            server_stabilization_time: Duration::from_secs(30),
        }
    );
    assert_eq!(
        next.to_data()["dead_server_last_contact_threshold"],
        "48h0m0s"
    );
}

#[test]
fn config_update_treats_zero_as_not_given() {
    // Why: Vault's merge skips zero values; a zero contact threshold would make every
    // follower unhealthy.
    let before = AutopilotConfig {
        max_trailing_logs: 42,
        ..AutopilotConfig::default()
    };
    let next = before
        .updated(&params(json!({
            "max_trailing_logs": 0,
            "last_contact_threshold": "0s",
            "min_quorum": "0",
        })))
        .unwrap();
    assert_eq!(next, before);
}

#[test]
fn config_cleanup_requires_min_quorum_of_three_with_vaults_text() {
    // Why: cleanup with fewer than three voters could remove the last majority.
    let err = AutopilotConfig::default()
        .updated(&params(json!({"cleanup_dead_servers": true})))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "min_quorum must be set when cleanup_dead_servers is set and it should at least be 3; \
         cleanup_dead_servers: true, min_quorum: 0x0"
    );
    let err = AutopilotConfig::default()
        .updated(&params(
            json!({"cleanup_dead_servers": true, "min_quorum": 2}),
        ))
        .unwrap_err();
    assert!(err.to_string().ends_with("min_quorum: 0x2"), "{err}");
    let ok = AutopilotConfig::default()
        .updated(&params(
            json!({"cleanup_dead_servers": true, "min_quorum": 3}),
        ))
        .unwrap();
    assert!(ok.cleanup_dead_servers);
    // The rule applies to the merged configuration: min_quorum set earlier counts.
    let with_quorum = AutopilotConfig {
        min_quorum: 3,
        ..AutopilotConfig::default()
    };
    assert!(
        with_quorum
            .updated(&params(json!({"cleanup_dead_servers": true})))
            .is_ok()
    );
}

#[test]
fn config_cleanup_refuses_a_dead_threshold_under_a_minute() {
    // Why: a restart or a short partition must not cost a server its membership.
    let err = AutopilotConfig::default()
        .updated(&params(json!({
            "cleanup_dead_servers": true,
            "min_quorum": 3,
            "dead_server_last_contact_threshold": "30s",
        })))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "dead_server_last_contact_threshold should not be set to less than 1m; received: 30"
    );
    // A short threshold stored earlier (cleanup off) blocks turning cleanup on.
    let stored = AutopilotConfig {
        dead_server_last_contact_threshold: Duration::from_secs(30),
        ..AutopilotConfig::default()
    };
    let err = stored
        .updated(&params(
            json!({"cleanup_dead_servers": true, "min_quorum": 3}),
        ))
        .unwrap_err();
    assert_eq!(
        err,
        ConfigUpdateError::DeadThresholdTooShort {
            received: "<nil>".into()
        }
    );
    // Without cleanup a short threshold is accepted, as in Vault.
    assert!(
        AutopilotConfig::default()
            .updated(&params(
                json!({"dead_server_last_contact_threshold": "30s"})
            ))
            .is_ok()
    );
}

#[test]
fn config_update_refuses_bad_values_and_enterprise_fields() {
    // Why: a wrapped negative count or an unparsable duration must not become the config.
    let base = AutopilotConfig::default();
    for bad in [
        json!({"max_trailing_logs": -1}),
        json!({"min_quorum": "three"}),
        json!({"last_contact_threshold": "soon"}),
        json!({"cleanup_dead_servers": "maybe"}),
    ] {
        let err = base.updated(&params(bad.clone())).unwrap_err();
        assert!(
            matches!(err, ConfigUpdateError::BadParameter(ref m) if m.contains("invalid value")),
            "{bad}: {err:?}"
        );
    }
    let err = base
        .updated(&params(json!({"disable_upgrade_migration": true})))
        .unwrap_err();
    assert_eq!(err, ConfigUpdateError::EnterpriseOnly);
    let core: crate::CoreError = err.into();
    assert!(matches!(core, crate::CoreError::InvalidRequest(m) if m.contains("Enterprise")));
}

#[test]
fn config_persisted_form_round_trips_and_tolerates_old_records() {
    // Why: the record outlives releases; a missing field must read as its default.
    let config = cleanup(5);
    let text = serde_json::to_string(&config).unwrap();
    let record: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(record["last_contact_threshold"], 10);
    assert_eq!(record["dead_server_last_contact_threshold"], DAY);
    assert_eq!(
        serde_json::from_str::<AutopilotConfig>(&text).unwrap(),
        config
    );
    let old: AutopilotConfig =
        serde_json::from_str(r#"{"min_quorum": 3, "future_field": "x"}"#).unwrap();
    assert_eq!(
        old,
        AutopilotConfig {
            min_quorum: 3,
            ..AutopilotConfig::default()
        }
    );
}
