//! End-to-end tests of the configuration module: real files in, `ServerConfig` or an exact
//! error message out.

use std::path::PathBuf;
use std::time::Duration;

use super::*;

/// The configuration example of the spec, shared with the config fuzz target.
const SPEC_SAMPLE: &str = include_str!("../../testdata/spec_sample.hcl");

/// What the fake certificate reader of [`config_of`] answers for `path`.
fn fake_pem(path: &str) -> String {
    format!("-----BEGIN CERTIFICATE-----\n{path}\n-----END CERTIFICATE-----\n")
}

/// Parses and assembles a configuration; certificate files "read" as [`fake_pem`].
fn config_of(text: &str, name: &str) -> ServerConfig {
    parse_str(text, name)
        .unwrap()
        .into_config_with(&|path: &std::path::Path| Ok(fake_pem(&path.display().to_string())))
        .unwrap()
}

/// The storage of the spec sample (and its JSON twin) as loaded from `file`.
fn expected_spec_storage(file: &str) -> StorageConfig {
    StorageConfig::Raft(RaftStorageConfig {
        path: "/var/lib/vault/raft".into(),
        node_id: Some("node1".into()),
        retry_join: vec![RetryJoin {
            leader_api_addr: "https://10.0.0.2:8200".into(),
            tls_servername: None,
            ca_cert_pem: Some(fake_pem("/etc/vault/ca.pem")),
            client_cert_pem: None,
            client_key_pem: None,
            defined_at: SourceLocation {
                file: file.into(),
                line: Some(12),
            },
        }],
        ..RaftStorageConfig::default()
    })
}

fn error_of(text: &str, name: &str) -> String {
    parse_str(text, name).unwrap_err().to_string()
}

fn expected_spec_listener(file: &str, line: usize) -> ListenerConfig {
    ListenerConfig {
        address: "0.0.0.0:8200".into(),
        cluster_address: Some("0.0.0.0:8201".into()),
        tls_disable: false,
        tls_cert_file: Some("/etc/vault/tls.crt".into()),
        tls_key_file: Some("/etc/vault/tls.key".into()),
        tls_client_ca_file: Some("/etc/vault/client-ca.pem".into()),
        tls_min_version: TlsVersion::Tls12,
        tls_max_version: TlsVersion::Tls13,
        tls_require_and_verify_client_cert: false,
        tls_disable_client_certs: false,
        max_request_size: DEFAULT_MAX_REQUEST_SIZE,
        max_request_duration: None,
        unauthenticated_metrics_access: false,
        defined_at: Some(SourceLocation {
            file: file.into(),
            line: Some(line),
        }),
    }
}

// The documented sample configuration must load to exactly the documented values.
#[test]
fn spec_sample_hcl_parses_to_expected_values() {
    let config = config_of(SPEC_SAMPLE, "config.hcl");

    assert_eq!(config.storage, expected_spec_storage("config.hcl"));
    assert_eq!(
        config.storage_defined_at,
        Some(SourceLocation {
            file: "config.hcl".into(),
            line: Some(9)
        })
    );
    assert_eq!(
        config.listeners,
        vec![expected_spec_listener("config.hcl", 18)]
    );
    assert_eq!(config.api_addr.as_deref(), Some("https://10.0.0.1:8200"));
    assert_eq!(
        config.cluster_addr.as_deref(),
        Some("https://10.0.0.1:8201")
    );
    assert!(config.ui);
    assert!(config.disable_mlock);
    assert_eq!(config.log_level.as_deref(), Some("info"));
    assert_eq!(
        config.default_lease_ttl,
        Some(Duration::from_secs(768 * 3600))
    );
    assert_eq!(config.max_lease_ttl, Some(Duration::from_secs(768 * 3600)));
    assert_eq!(
        config.telemetry,
        TelemetryConfig {
            prometheus_retention_time: Duration::from_secs(30),
            disable_hostname: true,
        }
    );
    assert!(config.ignored.is_empty(), "{:?}", config.ignored);
    assert!(config.validate().is_ok());
}

// Two listener blocks are common (public + localhost); hcl-rs's serde model breaks on them.
#[test]
fn two_listener_blocks_are_both_kept() {
    let text = r#"
storage "inmem" {}
listener "tcp" {
  address     = "127.0.0.1:8200"
  tls_disable = true
}
listener "tcp" {
  address          = "10.0.0.5:8300"
  tls_disable      = "1"
  max_request_size = 1024
  max_request_duration = 90
}
"#;

    let config = config_of(text, "two.hcl");

    assert_eq!(config.listeners.len(), 2);
    assert_eq!(config.listeners[0].address, "127.0.0.1:8200");
    assert_eq!(
        config.listeners[0].max_request_size,
        DEFAULT_MAX_REQUEST_SIZE
    );
    assert_eq!(config.listeners[1].address, "10.0.0.5:8300");
    assert!(config.listeners[1].tls_disable);
    assert_eq!(config.listeners[1].max_request_size, 1024);
    assert_eq!(
        config.listeners[1].max_request_duration,
        Some(Duration::from_secs(90))
    );
    assert_eq!(
        config.listeners[1].cluster_address_or_default().unwrap(),
        "10.0.0.5:8301"
    );
    assert!(config.validate().is_ok());
}

// The JSON form of the spec sample must give the same configuration as the HCL form.
#[test]
fn json_equivalent_matches_hcl() {
    let json = r#"{
  "ui": true,
  "disable_mlock": true,
  "log_level": "info",
  "api_addr": "https://10.0.0.1:8200",
  "cluster_addr": "https://10.0.0.1:8201",
  "default_lease_ttl": "768h",
  "max_lease_ttl": "768h",
  "storage": {"raft": {
    "path": "/var/lib/vault/raft",
    "node_id": "node1",
    "retry_join": [{"leader_api_addr": "https://10.0.0.2:8200", "leader_ca_cert_file": "/etc/vault/ca.pem"}]
  }},
  "listener": [{"tcp": {
    "address": "0.0.0.0:8200",
    "cluster_address": "0.0.0.0:8201",
    "tls_disable": false,
    "tls_cert_file": "/etc/vault/tls.crt",
    "tls_key_file": "/etc/vault/tls.key",
    "tls_client_ca_file": "/etc/vault/client-ca.pem",
    "tls_min_version": "tls12",
    "telemetry": {"unauthenticated_metrics_access": false}
  }}],
  "telemetry": {"prometheus_retention_time": "30s", "disable_hostname": true}
}"#;

    let from_json = config_of(json, "config.json");
    let from_hcl = config_of(SPEC_SAMPLE, "config.hcl");

    assert_eq!(from_json.storage, expected_spec_storage("config.json"));
    assert_eq!(from_hcl.storage, expected_spec_storage("config.hcl"));
    assert_eq!(
        from_json.listeners,
        vec![expected_spec_listener("config.json", 14)]
    );
    assert_eq!(from_json.telemetry, from_hcl.telemetry);
    assert_eq!(from_json.default_lease_ttl, from_hcl.default_lease_ttl);
    assert_eq!(
        (from_json.ui, from_json.disable_mlock, &from_json.log_level),
        (from_hcl.ui, from_hcl.disable_mlock, &from_hcl.log_level)
    );
    assert!(from_json.ignored.is_empty(), "{:?}", from_json.ignored);
}

// hvac's harness writes pyhcl JSON with `backend "inmem"`, relative TLS paths and tls10.
#[test]
fn hvac_style_json_loads() {
    let json = r#"{"backend": {"inmem": {}}, "listener": {"tcp": {"tls_cert_file": "tests/config_files/server-cert.pem", "tls_key_file": "tests/config_files/server-key.pem", "tls_min_version": "tls10", "address": "0.0.0.0:8200"}}, "disable_mlock": true, "default_lease_ttl": "768h", "max_lease_ttl": "768h"}"#;

    let config = config_of(json, "vault-tls.json");

    assert_eq!(config.storage, StorageConfig::Inmem);
    let listener = &config.listeners[0];
    assert_eq!(
        listener.tls_cert_file,
        Some(PathBuf::from("tests/config_files/server-cert.pem"))
    );
    assert_eq!(
        listener.tls_key_file,
        Some(PathBuf::from("tests/config_files/server-key.pem"))
    );
    assert_eq!(listener.tls_min_version, TlsVersion::Tls12);
    assert_eq!(
        config.warnings,
        vec![
            "listener.tcp.tls_min_version (vault-tls.json:1): \"tls10\" is not supported; using tls12 as the minimum"
        ]
    );
    assert!(config.validate().is_ok());
}

// The HCL original of hvac's fixture (no address set) must load with the default address.
#[test]
fn hvac_style_hcl_with_backend_alias_loads() {
    let text = "backend \"inmem\" {\n}\n\nlistener \"tcp\" {\n  // address = \"127.0.0.1:8200\"\n  tls_cert_file = \"tests/config_files/server-cert.pem\"\n  tls_key_file  = \"tests/config_files/server-key.pem\"\n}\n\ndisable_mlock = true\n";

    let config = config_of(text, "vault-ha-node1.hcl");

    assert_eq!(config.storage, StorageConfig::Inmem);
    assert_eq!(config.listeners[0].address, DEFAULT_LISTENER_ADDRESS);
    assert_eq!(
        config.listeners[0].cluster_address_or_default().unwrap(),
        "127.0.0.1:8201"
    );
}

// Splitting configuration over files must follow Vault's merge rules, in argument order.
#[test]
fn merging_two_files_follows_vault_rules() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("base.hcl");
    let second = dir.path().join("override.json");
    std::fs::write(
        &first,
        r#"
storage "raft" { path = "/data/one" }
listener "tcp" {
  address = "127.0.0.1:8200"
  tls_disable = true
}
log_level = "debug"
ui = true
telemetry {
  prometheus_retention_time = "1m"
  disable_hostname = true
}
"#,
    )
    .unwrap();
    std::fs::write(
        &second,
        r#"{"storage": {"inmem": {}}, "listener": {"tcp": {"address": "127.0.0.1:9200", "tls_disable": true}}, "log_level": "warn", "telemetry": {"prometheus_retention_time": "2m"}}"#,
    )
    .unwrap();

    let config = load(&[first, second]).unwrap();

    assert_eq!(config.storage, StorageConfig::Inmem);
    let addresses: Vec<&str> = config
        .listeners
        .iter()
        .map(|l| l.address.as_str())
        .collect();
    assert_eq!(addresses, vec!["127.0.0.1:8200", "127.0.0.1:9200"]);
    assert_eq!(config.log_level.as_deref(), Some("warn"));
    assert!(
        config.ui,
        "a setting absent from the later file must survive"
    );
    assert_eq!(
        config.telemetry.prometheus_retention_time,
        Duration::from_secs(120)
    );
    assert!(
        config.telemetry.disable_hostname,
        "telemetry merges per setting"
    );
}

// A directory loads its .hcl/.json files in name order and skips everything else.
#[test]
fn directory_loads_config_files_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("10-storage.hcl"),
        "storage \"inmem\" {}\nlog_level = \"info\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("20-listener.json"),
        r#"{"listener": {"tcp": {"address": "127.0.0.1:8200", "tls_disable": true}}, "log_level": "error"}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("README.md"), "this = is not config {").unwrap();
    std::fs::write(dir.path().join(".hidden.hcl"), "broken {{{").unwrap();

    let config = load(&[dir.path().to_path_buf()]).unwrap();

    assert_eq!(config.storage, StorageConfig::Inmem);
    assert_eq!(config.listeners.len(), 1);
    assert_eq!(config.log_level.as_deref(), Some("error"));
    assert!(config.validate().is_ok());
}

// A file without a known extension is sniffed: JSON when it starts with '{'.
#[test]
fn unknown_extension_is_detected_by_content() {
    let json = config_of(r#" {"storage": {"inmem": {}}}"#, "vault.conf");
    let hcl = config_of("storage \"inmem\" {}", "vault.conf");

    assert_eq!(json.storage, StorageConfig::Inmem);
    assert_eq!(hcl.storage, StorageConfig::Inmem);
}

// Every class of mistake must point at the exact file, line and setting.
#[test]
fn errors_name_file_line_and_setting() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_cert_fil = \"/x\"\n}\n",
            "config.hcl",
            "error loading configuration: config.hcl:3: listener.tcp.tls_cert_fil: unknown setting",
        ),
        (
            "ui = true\n\nlistener \"tcp\" {\n  address = \"127.0.0.1:8200\"\n  tls_disable = \"maybe\"\n}\n",
            "config.hcl",
            "error loading configuration: config.hcl:5: listener.tcp.tls_disable: expected a boolean (true/false), got the string \"maybe\"",
        ),
        (
            "default_lease_ttl = \"10 years\"\n",
            "ttl.hcl",
            "error loading configuration: ttl.hcl:1: default_lease_ttl: invalid duration \"10 years\": unknown unit \" years\" (use ns, us, ms, s, m, h or d)",
        ),
        (
            "listener \"tcp\" {\n  address = \"0.0.0.0\"\n}\n",
            "addr.hcl",
            "error loading configuration: addr.hcl:2: listener.tcp.address: invalid address \"0.0.0.0\": missing port (use host:port, e.g. \"0.0.0.0:8200\" or \"[::]:8200\")",
        ),
        (
            "\nstorage \"consul\" {\n  address = \"127.0.0.1:8500\"\n}\n",
            "consul.hcl",
            "error loading configuration: consul.hcl:2: storage: unsupported storage type \"consul\": supported types are \"raft\" and \"inmem\"",
        ),
        (
            "listener \"unix\" {\n  address = \"/run/vault.sock\"\n}\n",
            "unix.hcl",
            "error loading configuration: unix.hcl:1: listener: unsupported listener type \"unix\": only \"tcp\" is supported",
        ),
        (
            "storage \"inmem\" {}\n\nseal \"transit\" {\n  address = \"https://vault-2:8200\"\n}\n",
            "seal.hcl",
            "error loading configuration: seal.hcl:3: seal: auto-unseal seals are not supported; remove the seal stanza to use Shamir unseal keys",
        ),
        (
            "listener \"tcp\" {\n  tls_max_version = \"tls11\"\n}\n",
            "tls.hcl",
            "error loading configuration: tls.hcl:2: listener.tcp.tls_max_version: \"tls11\" is not supported: use tls12 or tls13",
        ),
        (
            "listener \"tcp\" {\n  tls_min_version = \"ssl3\"\n}\n",
            "tls.hcl",
            "error loading configuration: tls.hcl:2: listener.tcp.tls_min_version: invalid TLS version \"ssl3\": use tls12 or tls13",
        ),
        (
            "log_level = \"verbose\"\n",
            "log.hcl",
            "error loading configuration: log.hcl:1: log_level: invalid value \"verbose\": use one of trace, debug, info, warn, warning, error",
        ),
        (
            "storage \"raft\" {\n  path = \"/d\"\n  trailing_logs = -5\n}\n",
            "raft.hcl",
            "error loading configuration: raft.hcl:3: storage.raft.trailing_logs: expected a non-negative integer, got the number -5",
        ),
        (
            "storage \"inmem\" {\n  path = \"/d\"\n}\n",
            "mem.hcl",
            "error loading configuration: mem.hcl:2: storage.inmem.path: unknown setting",
        ),
        (
            "storage \"inmem\" {}\nbackend \"inmem\" {}\n",
            "twice.hcl",
            "error loading configuration: twice.hcl:2: backend: more than one storage stanza in one file; keep only one",
        ),
        (
            "api_addr = \"10.0.0.1:8200\"\n",
            "api.hcl",
            "error loading configuration: api.hcl:1: api_addr: invalid address \"10.0.0.1:8200\": use a URL such as \"https://10.0.0.1:8200\"",
        ),
        (
            "pid_file = var.pid\n",
            "expr.hcl",
            "error loading configuration: expr.hcl:1: pid_file: expected a string, got an expression (variables, functions, operators and interpolation are not supported; use a literal value)",
        ),
        (
            "listener \"tcp\" {\n  telemetry {\n    unauthenticated_metrics_acess = true\n  }\n}\n",
            "nested.hcl",
            "error loading configuration: nested.hcl:3: listener.tcp.telemetry.unauthenticated_metrics_acess: unknown setting",
        ),
    ];
    for (text, name, expected) in cases {
        let message = error_of(text, name);

        assert_eq!(&message, expected, "for {name}:\n{text}");
    }
}

// JSON files get the same file:line precision as HCL files.
#[test]
fn json_errors_name_file_line_and_setting() {
    let unknown = "{\n  \"storage\": {\"inmem\": {}},\n  \"listener\": {\"tcp\": {\n    \"address\": \"127.0.0.1:8200\",\n    \"tls_cert_fil\": \"x\"\n  }}\n}";
    let wrong_type = "{\n  \"ui\": \"yes\"\n}";
    let syntax = "{\n  \"ui\": true,\n  \"log_level\" \"info\"\n}";

    let unknown_message = error_of(unknown, "c.json");
    let wrong_type_message = error_of(wrong_type, "c.json");
    let syntax_error = parse_str(syntax, "c.json").unwrap_err();

    assert_eq!(
        unknown_message,
        "error loading configuration: c.json:5: listener.tcp.tls_cert_fil: unknown setting"
    );
    assert_eq!(
        wrong_type_message,
        "error loading configuration: c.json:2: ui: expected a boolean (true/false), got the string \"yes\""
    );
    assert_eq!(syntax_error.line, Some(3));
    assert!(
        syntax_error.message.starts_with("invalid JSON"),
        "{}",
        syntax_error.message
    );
}

// HCL syntax errors must carry the parser's line so the operator can find the typo.
#[test]
fn hcl_syntax_error_names_line() {
    let text = "ui = true\nlistener \"tcp\" {\n  address = \n}\n";

    let err = parse_str(text, "syntax.hcl").unwrap_err();

    assert_eq!(err.file, "syntax.hcl");
    assert!(matches!(err.line, Some(3 | 4)), "line {:?}", err.line);
    assert!(
        err.message.starts_with("invalid HCL syntax"),
        "{}",
        err.message
    );
}

// Vault's loose booleans and numeric strings must all be accepted.
#[test]
fn loose_booleans_and_numbers_are_accepted() {
    let text = r#"
storage "raft" {
  path = "/d"
  trailing_logs = "500"
  snapshot_threshold = 100
  performance_multiplier = 1
}
ui = "true"
disable_mlock = 1
listener "tcp" {
  tls_disable = "0"
  tls_disable_client_certs = 0
  tls_cert_file = "c"
  tls_key_file = "k"
  max_request_size = -1
}
"#;

    let config = config_of(text, "loose.hcl");

    assert!(config.ui);
    assert!(config.disable_mlock);
    assert!(!config.listeners[0].tls_disable);
    assert_eq!(
        config.listeners[0].max_request_size,
        DEFAULT_MAX_REQUEST_SIZE
    );
    assert_eq!(
        config.storage,
        StorageConfig::Raft(RaftStorageConfig {
            path: "/d".into(),
            trailing_logs: Some(500),
            snapshot_threshold: Some(100),
            performance_multiplier: 1,
            ..RaftStorageConfig::default()
        })
    );
    assert!(config.ignored.is_empty(), "{:?}", config.ignored);
}

// Harmless Vault settings are accepted but reported so the server can warn about each.
#[test]
fn harmless_vault_settings_are_collected_as_ignored() {
    let text = r#"
plugin_directory = "/plugins"
cache_size = 1000
disable_cache = true
raw_storage_endpoint = true
introspection_endpoint = true
enable_response_header_hostname = true
enable_response_header_raft_node_id = true
disable_clustering = false
storage "inmem" {}
listener "tcp" {
  tls_disable = true
  http_idle_timeout = "5m"
  http_read_header_timeout = "10s"
  http_read_timeout = "30s"
  http_write_timeout = "0"
  tls_cipher_suites = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
}
telemetry {
  statsd_address = "127.0.0.1:8125"
}
"#;

    let config = config_of(text, "ignored.hcl");

    let settings: Vec<&str> = config
        .ignored
        .iter()
        .filter_map(|entry| entry.split(' ').next())
        .collect();
    assert_eq!(
        settings,
        vec![
            "plugin_directory",
            "cache_size",
            "disable_cache",
            "raw_storage_endpoint",
            "introspection_endpoint",
            "enable_response_header_hostname",
            "enable_response_header_raft_node_id",
            "disable_clustering",
            "listener.tcp.http_idle_timeout",
            "listener.tcp.http_read_header_timeout",
            "listener.tcp.http_read_timeout",
            "listener.tcp.http_write_timeout",
            "listener.tcp.tls_cipher_suites",
            "telemetry.statsd_address",
        ]
    );
    assert!(config.ignored[0].contains("(ignored.hcl:2)"));
}

// Environment variables override files, and only where Vault says they do.
#[test]
fn env_overrides_apply() {
    let mut config = config_of(
        "storage \"raft\" {}\nlog_level = \"info\"\nlistener \"tcp\" { tls_disable = true }\n",
        "env.hcl",
    );
    let env = |name: &str| -> Option<String> {
        match name {
            "VAULT_API_ADDR" => Some("https://api.example:8200".into()),
            "VAULT_CLUSTER_ADDR" => Some("https://api.example:8201".into()),
            "VAULT_RAFT_PATH" => Some("/env/raft".into()),
            "VAULT_RAFT_NODE_ID" => Some("env-node".into()),
            "VAULT_LOG_LEVEL" => Some("DEBUG".into()),
            "VAULT_DISABLE_MLOCK" => Some("true".into()),
            "VAULT_UI" => Some("1".into()),
            _ => None,
        }
    };

    let before = config.validate().unwrap_err();
    config.apply_env(env).unwrap();

    assert_eq!(
        before.to_string(),
        "error loading configuration: env.hcl:1: storage.raft.path: raft storage requires a data directory: set path or VAULT_RAFT_PATH"
    );
    assert_eq!(config.api_addr.as_deref(), Some("https://api.example:8200"));
    assert_eq!(
        config.cluster_addr.as_deref(),
        Some("https://api.example:8201")
    );
    assert_eq!(
        config.storage,
        StorageConfig::Raft(RaftStorageConfig {
            path: "/env/raft".into(),
            node_id: Some("env-node".into()),
            ..RaftStorageConfig::default()
        })
    );
    assert_eq!(config.log_level.as_deref(), Some("debug"));
    assert!(config.disable_mlock);
    assert!(config.ui);
    assert!(config.validate().is_ok());
}

// Empty variables change nothing, and malformed ones are rejected by name.
#[test]
fn env_overrides_reject_bad_values_and_skip_empty() {
    let mut config = config_of("storage \"inmem\" {}\nui = true\n", "env.hcl");

    config.apply_env(|_| Some(String::new())).unwrap();
    let bad_bool = config
        .clone()
        .apply_env(|name| (name == "VAULT_UI").then(|| "sometimes".to_owned()))
        .unwrap_err();
    let bad_level = config
        .clone()
        .apply_env(|name| (name == "VAULT_LOG_LEVEL").then(|| "loud".to_owned()))
        .unwrap_err();

    assert!(config.ui);
    assert_eq!(config.storage, StorageConfig::Inmem);
    assert_eq!(
        bad_bool.to_string(),
        "error loading configuration: environment: VAULT_UI: invalid boolean \"sometimes\": use true or false"
    );
    assert_eq!(bad_level.setting.as_deref(), Some("VAULT_LOG_LEVEL"));
}

// Validation must stop configurations that would serve without TLS material or check nothing.
#[test]
fn validate_rejects_unsafe_or_incomplete_configs() {
    let base = "storage \"inmem\" {}\n";
    let cases: &[(&str, &str)] = &[
        (
            "",
            "error loading configuration: listener: at least one listener is required: add `listener \"tcp\" { address = \"127.0.0.1:8200\" ... }`",
        ),
        (
            "listener \"tcp\" {\n  tls_key_file = \"k\"\n}\n",
            "error loading configuration: v.hcl:2: listener.tcp.tls_cert_file: TLS is enabled but tls_cert_file is not set: set tls_cert_file and tls_key_file, or tls_disable = true",
        ),
        (
            "listener \"tcp\" {\n  tls_cert_file = \"c\"\n  tls_key_file = \"k\"\n  tls_require_and_verify_client_cert = true\n}\n",
            "error loading configuration: v.hcl:2: listener.tcp.tls_require_and_verify_client_cert: requires tls_client_ca_file naming the CA that signs client certificates",
        ),
        (
            "listener \"tcp\" {\n  tls_cert_file = \"c\"\n  tls_key_file = \"k\"\n  tls_min_version = \"tls13\"\n  tls_max_version = \"tls12\"\n}\n",
            "error loading configuration: v.hcl:2: listener.tcp.tls_min_version: tls_min_version (tls13) is above tls_max_version (tls12)",
        ),
        (
            "listener \"tcp\" { tls_disable = true }\nlistener \"tcp\" { tls_disable = true }\n",
            "error loading configuration: v.hcl:3: listener.tcp.address: address \"127.0.0.1:8200\" is used by more than one listener",
        ),
        (
            "listener \"tcp\" { tls_disable = true }\ndefault_lease_ttl = \"2h\"\nmax_lease_ttl = \"1h\"\n",
            "error loading configuration: default_lease_ttl: default_lease_ttl (7200s) is greater than max_lease_ttl (3600s): lower it or raise max_lease_ttl",
        ),
    ];
    for (extra, expected) in cases {
        let config = config_of(&format!("{base}{extra}"), "v.hcl");

        let message = config.validate().unwrap_err().to_string();

        assert_eq!(&message, expected, "for:\n{extra}");
    }
}

// Load-time failures (missing files, empty directories, no storage) must be reported, not panic.
#[test]
fn load_reports_missing_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.hcl");
    let only_listener = dir.path().join("listener.hcl");
    std::fs::write(&only_listener, "listener \"tcp\" { tls_disable = true }\n").unwrap();
    let empty_dir = dir.path().join("empty");
    std::fs::create_dir(&empty_dir).unwrap();

    let no_paths = load(&[]).unwrap_err();
    let missing_file = load(std::slice::from_ref(&missing)).unwrap_err();
    let empty = load(&[empty_dir]).unwrap_err();
    let no_storage = load(&[only_listener]).unwrap_err();

    assert!(no_paths.message.contains("-config"), "{no_paths}");
    assert_eq!(missing_file.file, missing.display().to_string());
    assert!(empty.message.contains("no .hcl or .json"), "{empty}");
    assert_eq!(no_storage.setting.as_deref(), Some("storage"));
}

// Every JSON shape pyhcl or a human may produce for repeated listeners must be understood.
#[test]
fn json_listener_shapes_are_equivalent() {
    let map_of_list = r#"{"storage": {"inmem": {}}, "listener": {"tcp": [{"address": "127.0.0.1:1", "tls_disable": true}, {"address": "127.0.0.1:2", "tls_disable": true}]}}"#;
    let list_of_maps = r#"{"storage": {"inmem": {}}, "listener": [{"tcp": {"address": "127.0.0.1:1", "tls_disable": true}}, {"tcp": {"address": "127.0.0.1:2", "tls_disable": true}}]}"#;
    let repeated_key = r#"{"storage": {"inmem": {}}, "listener": {"tcp": {"address": "127.0.0.1:1", "tls_disable": true}}, "listener": {"tcp": {"address": "127.0.0.1:2", "tls_disable": true}}}"#;

    let results: Vec<Vec<String>> = [map_of_list, list_of_maps, repeated_key]
        .iter()
        .map(|text| {
            config_of(text, "l.json")
                .listeners
                .into_iter()
                .map(|listener| listener.address)
                .collect()
        })
        .collect();

    for addresses in results {
        assert_eq!(addresses, vec!["127.0.0.1:1", "127.0.0.1:2"]);
    }
}

// HCL1-style one-line blocks fail in HCL2; the error must say how to fix the file.
#[test]
fn hcl1_one_line_block_error_gives_fix() {
    let text = "storage \"inmem\" {}\nlistener \"tcp\" { address = \"127.0.0.1:8200\" tls_disable = true }\n";

    let message = error_of(text, "one-line.hcl");

    assert!(
        message.starts_with("error loading configuration: one-line.hcl:2: invalid HCL syntax"),
        "{message}"
    );
    assert!(
        message.ends_with("put each setting of a block on its own line"),
        "{message}"
    );
}

// Attribute syntax (`storage = { inmem = {} }`) is the same tree as block syntax.
#[test]
fn hcl_attribute_objects_equal_blocks() {
    let text = "storage = { inmem = {} }\nlistener = [{ tcp = { tls_disable = true } }]\ntelemetry = { disable_hostname = true }\n";

    let config = config_of(text, "attrs.hcl");

    assert_eq!(config.storage, StorageConfig::Inmem);
    assert_eq!(config.listeners.len(), 1);
    assert!(config.listeners[0].tls_disable);
    assert!(config.telemetry.disable_hostname);
}

#[test]
fn replication_stanza_sets_wal_retention_and_rejects_nonsense() {
    // Why: retention bounds how long a secondary may be away and still resume streaming.
    let cfg = parse_str(
        "storage \"inmem\" {}\nlistener \"tcp\" { tls_disable = true }\nreplication {\n  wal_retention_entries = 500\n  logshipper_buffer_size = 1048576\n}\n",
        "r.hcl",
    )
    .unwrap()
    .into_config()
    .unwrap();
    assert_eq!(cfg.replication.wal_retention_entries, 500);
    assert_eq!(cfg.replication.wal_retention_bytes, 1_048_576);
    let err = parse_str(
        "storage \"inmem\" {}\nreplication {\n  wal_retention_entries = -1\n}\n",
        "r.hcl",
    )
    .unwrap_err();
    assert!(err.to_string().contains("r.hcl:3"), "{err}");
}
