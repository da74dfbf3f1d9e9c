//! `storage "raft"` cluster settings: `retry_join` stanzas (HCL and JSON), the per-stanza
//! rules, certificate files read at load time, and the autopilot and timing settings.

use std::path::Path;
use std::time::Duration;

use super::*;

const CA: &str = "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n";
const CERT: &str = "-----BEGIN CERTIFICATE-----\nCLIENT\n-----END CERTIFICATE-----\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n";

/// Answers the three well-known paths, and fails like a missing file for anything else.
fn reader(path: &Path) -> Result<String, String> {
    match path.to_str() {
        Some("/etc/vault/ca.pem") => Ok(CA.into()),
        Some("/etc/vault/client.pem") => Ok(CERT.into()),
        Some("/etc/vault/client.key") => Ok(KEY.into()),
        _ => Err("No such file or directory (os error 2)".into()),
    }
}

fn raft_of(text: &str, name: &str) -> RaftStorageConfig {
    match parse_str(text, name)
        .unwrap()
        .into_config_with(&reader)
        .unwrap()
        .storage
    {
        StorageConfig::Raft(raft) => raft,
        StorageConfig::Inmem => panic!("expected raft storage"),
    }
}

fn error_of(text: &str, name: &str) -> String {
    match parse_str(text, name) {
        Err(err) => err.to_string(),
        Ok(partial) => partial.into_config_with(&reader).unwrap_err().to_string(),
    }
}

/// The spec's two-stanza example plus every other cluster setting.
const FULL_HCL: &str = r#"storage "raft" {
  path    = "/var/lib/vault"
  node_id = "node-2"
  retry_join {
    leader_api_addr         = "https://node-1.example.com:8200"
    leader_ca_cert_file     = "/etc/vault/ca.pem"
    leader_client_cert_file = "/etc/vault/client.pem"
    leader_client_key_file  = "/etc/vault/client.key"
    leader_tls_servername   = "node-1.example.com"
  }
  retry_join { leader_api_addr = "https://node-3.example.com:8200" }
  retry_join_as_non_voter      = true
  performance_multiplier       = 5
  max_entry_size               = 2097152
  autopilot_reconcile_interval = "30s"
  autopilot_update_interval    = "5s"
  trailing_logs                = 20000
  snapshot_threshold           = 4096
}
"#;

// Every retry_join field and cluster setting of the spec lands in the model, files read.
#[test]
fn full_raft_stanza_loads_every_setting() {
    let raft = raft_of(FULL_HCL, "node2.hcl");

    assert_eq!(raft.retry_join.len(), 2);
    let first = &raft.retry_join[0];
    assert_eq!(first.leader_api_addr, "https://node-1.example.com:8200");
    assert_eq!(first.tls_servername.as_deref(), Some("node-1.example.com"));
    assert_eq!(first.ca_cert_pem.as_deref(), Some(CA));
    assert_eq!(first.client_cert_pem.as_deref(), Some(CERT));
    assert_eq!(first.client_key_pem.as_ref().map(|k| k.expose()), Some(KEY));
    assert_eq!(
        first.defined_at,
        SourceLocation {
            file: "node2.hcl".into(),
            line: Some(4)
        }
    );
    let second = &raft.retry_join[1];
    assert_eq!(second.leader_api_addr, "https://node-3.example.com:8200");
    assert_eq!(
        (
            &second.ca_cert_pem,
            &second.client_cert_pem,
            &second.tls_servername
        ),
        (&None, &None, &None)
    );
    assert!(second.client_key_pem.is_none());
    assert!(raft.retry_join_as_non_voter);
    assert_eq!(raft.performance_multiplier, 5);
    assert_eq!(raft.max_entry_size, 2 * 1024 * 1024);
    assert_eq!(raft.autopilot_reconcile_interval, Duration::from_secs(30));
    assert_eq!(raft.autopilot_update_interval, Duration::from_secs(5));
    assert_eq!(raft.trailing_logs, Some(20000));
    assert_eq!(raft.snapshot_threshold, Some(4096));
}

// Without the settings, Vault's defaults apply.
#[test]
fn raft_defaults_follow_vault() {
    let raft = raft_of("storage \"raft\" { path = \"/d\" }\n", "d.hcl");

    assert_eq!(raft.max_entry_size, 1024 * 1024);
    assert_eq!(raft.performance_multiplier, 0);
    assert_eq!(raft.autopilot_reconcile_interval, Duration::from_secs(10));
    assert_eq!(raft.autopilot_update_interval, Duration::from_secs(2));
    assert!(!raft.retry_join_as_non_voter);
    assert!(raft.retry_join.is_empty());
}

// Standbys serve reads unless the top-level `disable_standby_reads` says otherwise.
#[test]
fn standby_reads_are_on_unless_disabled() {
    let load = |text: &str| {
        parse_str(text, "s.hcl")
            .unwrap()
            .into_config_with(&reader)
            .unwrap()
    };
    let stanza = "storage \"raft\" { path = \"/d\" }\n";

    let default = load(stanza);
    let disabled = load(&format!("{stanza}disable_standby_reads = true\n"));

    assert!(!default.disable_standby_reads);
    assert!(disabled.disable_standby_reads);
}

// JSON writes repeated stanzas as a list; the result is the same as the HCL form.
#[test]
fn json_retry_join_list_matches_hcl() {
    let json = r#"{"storage": {"raft": {
  "path": "/var/lib/vault",
  "node_id": "node-2",
  "retry_join": [
    {"leader_api_addr": "https://node-1.example.com:8200",
     "leader_ca_cert_file": "/etc/vault/ca.pem",
     "leader_client_cert_file": "/etc/vault/client.pem",
     "leader_client_key_file": "/etc/vault/client.key",
     "leader_tls_servername": "node-1.example.com"},
    {"leader_api_addr": "https://node-3.example.com:8200"}
  ],
  "retry_join_as_non_voter": "true",
  "performance_multiplier": "5",
  "max_entry_size": 2097152,
  "autopilot_reconcile_interval": 30,
  "autopilot_update_interval": "5s",
  "trailing_logs": 20000,
  "snapshot_threshold": 4096
}}}"#;

    let mut from_json = raft_of(json, "node2.json");
    let mut from_hcl = raft_of(FULL_HCL, "node2.hcl");
    for join in from_json
        .retry_join
        .iter_mut()
        .chain(&mut from_hcl.retry_join)
    {
        join.defined_at = SourceLocation::default();
    }

    assert_eq!(from_json, from_hcl);
}

// Inline PEM (a quoted string with \n escapes; heredocs are refused by the HCL reader) is
// taken as written, and no file is read for it.
#[test]
fn inline_pem_is_used_as_is() {
    let text = format!(
        "storage \"raft\" {{\n  path = \"/d\"\n  retry_join {{\n    leader_api_addr = \"https://n1:8200\"\n    leader_ca_cert = \"{}\"\n    leader_client_cert = \"{}\"\n    leader_client_key = \"{}\"\n  }}\n}}\n",
        CA.replace('\n', "\\n"),
        CERT.replace('\n', "\\n"),
        KEY.replace('\n', "\\n")
    );

    let raft = parse_str(&text, "inline.hcl")
        .unwrap()
        .into_config_with(&|path: &Path| -> Result<String, String> {
            panic!("no file should be read, got {}", path.display())
        })
        .unwrap()
        .storage;

    let StorageConfig::Raft(raft) = raft else {
        panic!("expected raft");
    };
    let join = &raft.retry_join[0];
    assert_eq!(join.ca_cert_pem.as_deref(), Some(CA));
    assert_eq!(join.client_cert_pem.as_deref(), Some(CERT));
    assert_eq!(join.client_key_pem.as_ref().map(|k| k.expose()), Some(KEY));
}

// Each per-stanza rule is an error naming the file, the line and the setting, with the fix.
#[test]
fn retry_join_rules_are_enforced_with_located_errors() {
    let stanza = |body: &str| {
        format!("storage \"raft\" {{\n  path = \"/d\"\n  retry_join {{\n{body}\n  }}\n}}\n")
    };
    let cases = [
        (
            "    leader_api_addr = \"https://n1:8200\"\n    leader_ca_cert_file = \"/etc/vault/ca.pem\"\n    leader_client_cert = \"-----BEGIN CERTIFICATE-----\"\n    leader_client_key = \"-----BEGIN PRIVATE KEY-----\"",
            "j.hcl:6: storage.raft.retry_join.leader_client_cert: file paths and inline PEM cannot be mixed in one retry_join stanza (leader_ca_cert_file is a file path)",
        ),
        (
            "    leader_api_addr = \"https://n1:8200\"\n    auto_join = \"provider=aws tag_key=vault\"",
            "j.hcl:5: storage.raft.retry_join.auto_join: leader_api_addr and auto_join are mutually exclusive",
        ),
        (
            "    auto_join = \"provider=aws tag_key=vault\"\n    auto_join_scheme = \"https\"",
            "j.hcl:4: storage.raft.retry_join.auto_join: cloud auto-join is not supported by Strongroom",
        ),
        (
            "    leader_tls_servername = \"n1\"",
            "j.hcl:3: storage.raft.retry_join: leader_api_addr is required",
        ),
        (
            "    leader_api_addr = \"https://n1:8200\"\n    leader_client_cert_file = \"/etc/vault/client.pem\"",
            "j.hcl:5: storage.raft.retry_join.leader_client_cert_file: a client certificate needs its key",
        ),
        (
            "    leader_api_addr = \"n1:8200\"",
            "j.hcl:4: storage.raft.retry_join.leader_api_addr: invalid address \"n1:8200\"",
        ),
        (
            "    leader_api_addr = \"https://n1:8200\"\n    leader_ca_cert = \"/etc/vault/ca.pem\"",
            "j.hcl:5: storage.raft.retry_join.leader_ca_cert: expected PEM text (-----BEGIN ...); to name a file use the _file setting",
        ),
        (
            "    leader_api_addr = \"https://n1:8200\"\n    leader_ca_file = \"/etc/vault/ca.pem\"",
            "j.hcl:5: storage.raft.retry_join.leader_ca_file: unknown setting",
        ),
        (
            "    leader_api_addr = \"https://n1:8200\"\n    auto_join_port = 70000",
            "j.hcl:5: storage.raft.retry_join.auto_join_port: must be a port",
        ),
    ];
    for (body, expected) in cases {
        let err = error_of(&stanza(body), "j.hcl");
        assert!(
            err.starts_with(&format!("error loading configuration: {expected}")),
            "{body}\n  got: {err}\n  want: {expected}"
        );
    }
}

// A scheme or port without auto_join does nothing, and the operator is told so.
#[test]
fn auto_join_scheme_and_port_alone_are_reported_as_ignored() {
    let text = "storage \"raft\" {\n  path = \"/d\"\n  retry_join {\n    leader_api_addr = \"https://n1:8200\"\n    auto_join_scheme = \"http\"\n    auto_join_port = 8300\n  }\n}\n";

    let config = parse_str(text, "a.hcl")
        .unwrap()
        .into_config_with(&reader)
        .unwrap();

    assert_eq!(
        config.ignored,
        vec![
            "storage.raft.retry_join.auto_join_scheme (a.hcl:5): has no effect without auto_join, ignored",
            "storage.raft.retry_join.auto_join_port (a.hcl:6): has no effect without auto_join, ignored",
        ]
    );
}

// Out-of-range timing and size settings are refused rather than clamped.
#[test]
fn raft_settings_out_of_range_are_refused() {
    let cases = [
        (
            "performance_multiplier = 11",
            "r.hcl:2: storage.raft.performance_multiplier: 11 is out of range: use 0 (the default timing) to 10",
        ),
        (
            "performance_multiplier = -1",
            "r.hcl:2: storage.raft.performance_multiplier: expected a non-negative integer",
        ),
        (
            "max_entry_size = 0",
            "r.hcl:2: storage.raft.max_entry_size: must be a positive number of bytes",
        ),
        (
            "autopilot_update_interval = \"0s\"",
            "r.hcl:2: storage.raft.autopilot_update_interval: must be longer than zero",
        ),
        (
            "autopilot_reconcile_interval = \"soon\"",
            "r.hcl:2: storage.raft.autopilot_reconcile_interval:",
        ),
        (
            "retry_join_as_non_voter = \"maybe\"",
            "r.hcl:2: storage.raft.retry_join_as_non_voter: expected a boolean",
        ),
    ];
    for (setting, expected) in cases {
        let text = format!("storage \"raft\" {{\n{setting}\npath = \"/d\"\n}}\n");
        let err = error_of(&text, "r.hcl");
        assert!(
            err.starts_with(&format!("error loading configuration: {expected}")),
            "{setting}\n  got: {err}"
        );
    }
}

// Certificate files are read by `load`, and a missing or non-PEM file names both files.
#[test]
fn certificate_files_are_read_at_load_time() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, CA).unwrap();
    let not_pem = dir.path().join("ca.txt");
    std::fs::write(&not_pem, "hello").unwrap();
    let config_file = dir.path().join("node.hcl");
    let write = |ca_path: &Path| {
        std::fs::write(
            &config_file,
            format!(
                "storage \"raft\" {{\n  path = \"/d\"\n  retry_join {{\n    leader_api_addr = \"https://n1:8200\"\n    leader_ca_cert_file = \"{}\"\n  }}\n}}\nlistener \"tcp\" {{ tls_disable = true }}\n",
                ca_path.display()
            ),
        )
        .unwrap();
    };

    write(&ca);
    let config = load(std::slice::from_ref(&config_file)).unwrap();
    let StorageConfig::Raft(raft) = &config.storage else {
        panic!("expected raft");
    };
    assert_eq!(raft.retry_join[0].ca_cert_pem.as_deref(), Some(CA));

    let missing = dir.path().join("gone.pem");
    write(&missing);
    let err = load(std::slice::from_ref(&config_file))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "error loading configuration: {}:5: storage.raft.retry_join.leader_ca_cert_file: cannot read {}: ",
            config_file.display(),
            missing.display()
        )),
        "{err}"
    );

    write(&not_pem);
    let err = load(std::slice::from_ref(&config_file))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("cannot read {}: no PEM data", not_pem.display())),
        "{err}"
    );

    write(dir.path());
    let err = load(std::slice::from_ref(&config_file))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a regular file"), "{err}");
}

// A later file's storage stanza replaces the earlier one with its retry_join stanzas.
#[test]
fn retry_join_follows_its_storage_stanza_when_merging() {
    let first = parse_str(
        "storage \"raft\" {\n  path = \"/a\"\n  retry_join { leader_api_addr = \"https://old:8200\" }\n}\n",
        "a.hcl",
    )
    .unwrap();
    let no_storage = parse_str("ui = true\n", "b.hcl").unwrap();
    let replacing = parse_str("storage \"raft\" { path = \"/c\" }\n", "c.hcl").unwrap();

    let kept = first
        .clone()
        .merge(no_storage)
        .into_config_with(&reader)
        .unwrap();
    let replaced = first.merge(replacing).into_config_with(&reader).unwrap();

    let joins = |config: &ServerConfig| match &config.storage {
        StorageConfig::Raft(raft) => raft.retry_join.len(),
        StorageConfig::Inmem => usize::MAX,
    };
    assert_eq!(joins(&kept), 1);
    assert_eq!(joins(&replaced), 0);
}

// VAULT_RAFT_RETRY_JOIN_AS_NON_VOTER overrides the file, and a bad value is named.
#[test]
fn retry_join_as_non_voter_env_override() {
    let mut config = parse_str("storage \"raft\" { path = \"/d\" }\n", "e.hcl")
        .unwrap()
        .into_config_with(&reader)
        .unwrap();

    let err = config
        .clone()
        .apply_env(|name| (name == "VAULT_RAFT_RETRY_JOIN_AS_NON_VOTER").then(|| "perhaps".into()))
        .unwrap_err();
    config
        .apply_env(|name| (name == "VAULT_RAFT_RETRY_JOIN_AS_NON_VOTER").then(|| "1".into()))
        .unwrap();

    assert_eq!(
        err.to_string(),
        "error loading configuration: environment: VAULT_RAFT_RETRY_JOIN_AS_NON_VOTER: invalid boolean \"perhaps\": use true or false"
    );
    let StorageConfig::Raft(raft) = &config.storage else {
        panic!("expected raft");
    };
    assert!(raft.retry_join_as_non_voter);
}

// The client key never reaches Debug output (and so never a log line).
#[test]
fn client_key_is_redacted_in_debug() {
    let raft = raft_of(FULL_HCL, "node2.hcl");

    let debug = format!("{raft:?}");

    assert!(!debug.contains("KEY\n"), "{debug}");
    assert!(debug.contains("<redacted>"));
}
