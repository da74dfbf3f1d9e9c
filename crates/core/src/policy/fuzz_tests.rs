//! Fuzz target for ACL policy text (HCL and JSON) and for deciding requests with the result.
//!
//! Policies arrive over `sys/policy` from any token with that capability, and a policy that
//! parses is then consulted on every request its tokens make, so both the parser and the
//! matcher must survive any input: the parser refuses with a [`PolicyError`] that says
//! something, and [`Acl::check`] decides every path without panicking. Inputs are a sample
//! policy with bytes damaged, token soups of the grammar's words, and deep nesting.
//! `PROPTEST_CASES` raises the case count (256 by default).

use proptest::prelude::*;
use serde_json::{Map, Value};
use strongroom_fuzz::{config, mutate_text, mutations, nested, token_soup};

use super::Acl;
use crate::Operation;
use strongroom_policy::{PathRule, PolicyError, parse_policy};

const SAMPLE_HCL: &str = r#"
name = "ops"
path "secret/*" {
  capabilities = ["create", "read", "update", "list"]
  allowed_parameters = { "ttl" = ["1h", "2h"], "*" = [] }
  denied_parameters = { "admin" = [] }
  required_parameters = ["owner"]
  min_wrapping_ttl = "1m"
  max_wrapping_ttl = 3600
}
path "secret/+/teamb" { capabilities = ["deny"] }
path "sys/mounts" { policy = "sudo" }
path "auth/token/lookup-self" { capabilities = "read" }
"#;

const SAMPLE_JSON: &str = r#"{"path": {
  "secret/*": {"capabilities": ["read", "list"], "allowed_parameters": [{"a": ["x", 1, null]}]},
  "kv/data/+/x": [{"policy": "write"}, {"max_wrapping_ttl": "10m"}]
}}"#;

const VOCABULARY: &[&str] = &[
    "path",
    "\"secret/*\"",
    "\"a/+/b\"",
    "\"+*\"",
    "\"*x\"",
    "\"{{identity.entity.id}}\"",
    "capabilities",
    "policy",
    "\"read\"",
    "\"deny\"",
    "\"sudo\"",
    "\"write\"",
    "\"bogus\"",
    "allowed_parameters",
    "denied_parameters",
    "required_parameters",
    "min_wrapping_ttl",
    "max_wrapping_ttl",
    "mfa_methods",
    "name",
    "{",
    "}",
    "[",
    "]",
    "=",
    ",",
    ":",
    "\"\"",
    "\"1h\"",
    "-1",
    "1e999",
    "true",
    "null",
    "\"${var.x}\"",
    "x.y",
    "f()",
    "# c\n",
    "\n",
];

const PATHS: &[&str] = &[
    "",
    "/",
    "secret",
    "secret/",
    "secret/a",
    "secret/a/teamb",
    "secret/zip/zap",
    "kv/data/x/x",
    "sys/mounts",
    "auth/token/lookup-self",
    "+",
    "*",
    "a//b",
    "\u{fffd}",
];

fn assert_useful(err: &PolicyError) {
    assert!(
        !err.message.trim().is_empty(),
        "an empty policy error: {err:?}"
    );
}

/// Parses `text`; when it is accepted, compiles it and decides requests with it.
fn parse_and_decide(text: &str, probes: &[(Operation, String, Map<String, Value>)]) {
    let rules: Vec<PathRule> = match parse_policy(text) {
        Ok(p) => p.paths,
        Err(e) => return assert_useful(&e),
    };
    let acl = Acl::compile([("fuzz", rules.as_slice())]);
    for (op, path, data) in probes {
        let decision = acl.check(*op, path, data);
        assert!(!decision.root, "a parsed policy never grants root");
        let _ = acl.capabilities(path);
    }
}

fn operation() -> impl Strategy<Value = Operation> {
    prop::sample::select(
        &[
            Operation::Read,
            Operation::Create,
            Operation::Update,
            Operation::Patch,
            Operation::Delete,
            Operation::List,
        ][..],
    )
}

fn probes() -> impl Strategy<Value = Vec<(Operation, String, Map<String, Value>)>> {
    let path = prop_oneof![
        prop::sample::select(PATHS).prop_map(str::to_owned),
        "[a-z+*/]{0,16}",
    ];
    let data = prop::collection::vec(
        (
            prop::sample::select(&["ttl", "TTL", "owner", "admin", "a", "x"][..]),
            prop_oneof![
                Just(Value::Null),
                "[a-z0-9]{0,3}".prop_map(Value::String),
                any::<i32>().prop_map(Value::from)
            ],
        ),
        0..3,
    )
    .prop_map(|kv| kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
    prop::collection::vec((operation(), path, data), 1..4)
}

proptest! {
    #![proptest_config(config(256))]

    /// Why: an operator's typo must be refused with a message, never crash the server.
    #[test]
    fn fuzz_policy_mutated_samples(
        edits in mutations(4),
        json in any::<bool>(),
        probes in probes(),
    ) {
        let sample = if json { SAMPLE_JSON } else { SAMPLE_HCL };
        parse_and_decide(&mutate_text(sample, &edits), &probes);
    }

    /// Why: random programs in the policy grammar reach the rule validation.
    #[test]
    fn fuzz_policy_token_soup(text in token_soup(VOCABULARY, 40), probes in probes()) {
        parse_and_decide(&text, &probes);
    }

    /// Why: arbitrary text, including control characters.
    #[test]
    fn fuzz_policy_random_text(text in ".{0,200}", probes in probes()) {
        parse_and_decide(&text, &probes);
    }

    /// Why: any pattern an operator writes, matched against any request path.
    #[test]
    fn fuzz_policy_patterns(pattern in "[a-z+*/{}.]{0,24}", probes in probes()) {
        let text = format!("path {} {{ capabilities = [\"read\"] }}", Value::String(pattern));
        parse_and_decide(&text, &probes);
    }

    /// Why: a stack overflow on deep nesting aborts the server, which no error can catch.
    #[test]
    fn fuzz_policy_deep_nesting(depth in 1usize..20_000, kind in 0usize..3) {
        let text = match kind {
            0 => format!("path \"a\" {{ allowed_parameters = {{ x = {} }} }}", nested("[", "1", "]", depth)),
            1 => format!("path \"a\" {{ capabilities = {} }}", nested("(", "\"read\"", ")", depth)),
            _ => format!("{{\"path\": {{\"a\": {}}}}}", nested("[", "{}", "]", depth)),
        };
        parse_and_decide(&text, &[]);
    }
}
