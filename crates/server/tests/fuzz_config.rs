//! Fuzz target for the server configuration parser (HCL and JSON, then merge and validate).
//!
//! Configuration files are written by hand and copied from Vault deployments, so any text
//! must end in a configuration or a [`ConfigError`] that says what is wrong; a panic would
//! take the server down at start or on SIGHUP. Inputs are valid samples with a few bytes
//! damaged, token soups in the grammar's own words, JSON trees of the real setting names, and
//! deep nesting. `PROPTEST_CASES` raises the case count (256 by default).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use serde_json::{Map, Value};
use strongroom_fuzz::{config, mutate_text, mutations, nested, token_soup};
use strongroom_server::config::{ConfigError, parse_str};

/// The spec's configuration example, the one the config unit tests parse.
const SAMPLE_HCL: &str = include_str!("../testdata/spec_sample.hcl");

const SAMPLE_JSON: &str = r#"{
  "ui": true,
  "disable_mlock": "true",
  "api_addr": "https://10.0.0.1:8200",
  "storage": {"raft": {"path": "/tmp/raft", "node_id": "n1"}},
  "listener": [{"tcp": {"address": "127.0.0.1:8200", "tls_disable": 1}}],
  "telemetry": {"prometheus_retention_time": "1h"},
  "default_lease_ttl": 3600
}"#;

/// Words of the configuration grammar: setting names, block types, values and HCL syntax.
const VOCABULARY: &[&str] = &[
    "storage",
    "\"raft\"",
    "\"inmem\"",
    "\"file\"",
    "listener",
    "\"tcp\"",
    "\"unix\"",
    "telemetry",
    "replication",
    "seal",
    "\"transit\"",
    "retry_join",
    "leader_api_addr",
    "leader_ca_cert_file",
    "leader_client_cert",
    "auto_join",
    "performance_multiplier",
    "autopilot_update_interval",
    "path",
    "node_id",
    "address",
    "cluster_address",
    "tls_disable",
    "tls_cert_file",
    "tls_key_file",
    "tls_min_version",
    "tls_max_version",
    "max_request_size",
    "max_request_duration",
    "api_addr",
    "cluster_addr",
    "ui",
    "disable_mlock",
    "log_level",
    "default_lease_ttl",
    "max_lease_ttl",
    "prometheus_retention_time",
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "=",
    ",",
    ":",
    "\"",
    "\"\"",
    "\"0.0.0.0:8200\"",
    "\"https://a:1\"",
    "\"30s\"",
    "\"-1h\"",
    "\"768h\"",
    "\"tls12\"",
    "\"tls14\"",
    "true",
    "false",
    "null",
    "0",
    "-1",
    "1e400",
    "18446744073709551616",
    "\"${x}\"",
    "\"%{ if a }b%{ endif }\"",
    "<<EOF\nx\nEOF\n",
    "# c\n",
    "/* c */",
    "//",
    "a.b",
    "!",
    "-",
    "+",
    "*",
    "?",
    "x ? y : z",
    "f(1)",
    "[for x in y: x]",
    "\"\\u0000\"",
    "\"\\q\"",
];

/// Every rejection must be typed and tell the operator something.
fn assert_useful(err: &ConfigError) {
    assert!(
        !err.message.trim().is_empty(),
        "an empty config error: {err:?}"
    );
    assert!(!err.to_string().is_empty());
}

/// Runs the whole load path an operator's file takes: parse, merge into a config, apply
/// environment overrides, validate. Returns nothing: success and typed refusal both pass.
fn load(text: &str, name: &str, env: &[(String, String)]) {
    let partial = match parse_str(text, name) {
        Ok(p) => p,
        Err(e) => return assert_useful(&e),
    };
    // Certificate files named by retry_join "read" as a fixed PEM: fuzzed paths must not reach
    // the real filesystem (a device file would block), and the rules after reading still run.
    let fake_pem = |_: &std::path::Path| -> Result<String, String> {
        Ok("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n".to_owned())
    };
    let mut config = match partial.into_config_with(&fake_pem) {
        Ok(c) => c,
        Err(e) => return assert_useful(&e),
    };
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    if let Err(e) = config.apply_env(lookup) {
        return assert_useful(&e);
    }
    if let Err(e) = config.validate() {
        assert_useful(&e);
    }
}

fn file_name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&["config.hcl", "config.json", "config", "dir/x.conf"][..])
}

fn env_overrides() -> impl Strategy<Value = Vec<(String, String)>> {
    let names = prop::sample::select(
        &[
            "VAULT_API_ADDR",
            "VAULT_CLUSTER_ADDR",
            "VAULT_RAFT_PATH",
            "VAULT_RAFT_NODE_ID",
            "VAULT_LOG_LEVEL",
            "VAULT_DISABLE_MLOCK",
            "VAULT_UI",
            "VAULT_RAFT_RETRY_JOIN_AS_NON_VOTER",
        ][..],
    );
    prop::collection::vec((names.prop_map(str::to_owned), ".{0,12}"), 0..3)
}

/// JSON documents built from the real setting names, with values of every type.
fn json_tree() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(VOCABULARY).prop_map(|s| Value::String(s.trim_matches('"').into())),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop::sample::select(VOCABULARY).prop_map(|k| k.trim_matches('"')),
                    inner
                ),
                0..5
            )
            .prop_map(|entries| {
                let map: Map<String, Value> = entries
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect();
                Value::Object(map)
            }),
        ]
    })
}

proptest! {
    #![proptest_config(config(256))]

    /// Why: a typo anywhere in a real file must be reported, not crash the server.
    #[test]
    fn fuzz_config_mutated_samples(
        edits in mutations(4),
        json in any::<bool>(),
        name in file_name(),
        env in env_overrides(),
    ) {
        let sample = if json { SAMPLE_JSON } else { SAMPLE_HCL };
        load(&mutate_text(sample, &edits), name, &env);
    }

    /// Why: random programs in the grammar's words reach the decoder's type and value checks.
    #[test]
    fn fuzz_config_token_soup(text in token_soup(VOCABULARY, 40), name in file_name()) {
        load(&text, name, &[]);
    }

    /// Why: JSON configurations with real setting names but any value types.
    #[test]
    fn fuzz_config_json_trees(doc in json_tree(), env in env_overrides()) {
        load(&doc.to_string(), "config.json", &env);
    }

    /// Why: arbitrary text, including control characters and broken UTF-8.
    #[test]
    fn fuzz_config_random_text(text in ".{0,200}", name in file_name()) {
        load(&text, name, &[]);
    }

    /// Why: recursive parsers overflow the stack on deep nesting unless they bound it; a
    /// stack overflow aborts the process, which no error handling can catch.
    #[test]
    fn fuzz_config_deep_nesting(depth in 1usize..20_000, kind in 0usize..4) {
        let text = match kind {
            0 => format!("a = {}", nested("[", "1", "]", depth)),
            1 => format!("a = {}", nested("{ b = ", "1", " }", depth)),
            2 => format!("a = {}", nested("(", "1", ")", depth)),
            _ => format!("{{\"a\": {}}}", nested("[", "1", "]", depth)),
        };
        load(&text, "config", &[]);
    }
}

#[test]
fn fuzz_config_regression_deep_json_is_refused_not_a_stack_overflow() {
    // Why: found by fuzz_config_deep_nesting: 1,500 nested JSON arrays overflowed the
    // stack (serde_json's validation pass does not bound depth; the scanner recursed).
    let text = format!("{{\"a\": {}}}", nested("[", "1", "]", 100_000));

    let err = parse_str(&text, "config.json").unwrap_err();

    assert!(err.message.contains("nest deeper than 64 levels"), "{err}");
}
