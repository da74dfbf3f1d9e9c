//! Fuzz target: logical requests with arbitrary paths, operations, tokens and JSON bodies
//! through the whole pipeline (seal gate, token lookup, ACL, routing, handlers).
//!
//! Paths are built from the real mount and endpoint names so requests reach the handlers,
//! and bodies use the real parameter names with values of every JSON type. One core serves
//! a whole sequence of requests, so earlier requests (mounts, policies, tokens) shape what
//! later ones meet. Properties: no request panics or hangs, and every refusal is a client
//! error with a message. `sys/audit*` and `sys/replication*` are left out: they write files
//! at client-chosen paths and open network listeners, which a test must not do at random.

use proptest::prelude::*;
use serde_json::{Map, Value};
use strongroom_core::{Operation, Request};
use strongroom_fuzz::config;

use crate::support::{assert_client_refusal, bounded, with_kv};

/// Real endpoints; `{}` is replaced by a generated name.
const ENDPOINTS: &[&str] = &[
    "secret/{}",
    "secret/",
    "kv/data/{}",
    "kv/metadata/{}",
    "kv/metadata/",
    "kv/config",
    "kv/delete/{}",
    "kv/undelete/{}",
    "kv/destroy/{}",
    "kv/subkeys/{}",
    "cubbyhole/{}",
    "sys/mounts",
    "sys/mounts/{}",
    "sys/mounts/{}/tune",
    "sys/remount",
    "sys/auth",
    "sys/auth/{}",
    "sys/auth/{}/tune",
    "sys/policy",
    "sys/policy/{}",
    "sys/policies/acl",
    "sys/policies/acl/{}",
    "sys/capabilities",
    "sys/capabilities-self",
    "sys/capabilities-accessor",
    "sys/wrapping/wrap",
    "sys/wrapping/unwrap",
    "sys/wrapping/lookup",
    "sys/wrapping/rewrap",
    "auth/token/create",
    "auth/token/create-orphan",
    "auth/token/create/{}",
    "auth/token/lookup",
    "auth/token/lookup-self",
    "auth/token/lookup-accessor",
    "auth/token/renew",
    "auth/token/renew-self",
    "auth/token/revoke",
    "auth/token/revoke-accessor",
    "auth/token/revoke-orphan",
    "auth/token/roles",
    "auth/token/roles/{}",
    "auth/token/tidy",
    "auth/token/accessors",
    "sys/leases/lookup",
    "sys/leases/lookup/{}",
    "sys/leases/renew",
    "sys/leases/revoke",
    "sys/leases/revoke-prefix/{}",
    "sys/leases/tidy",
    "sys/health",
    "sys/seal-status",
    "sys/leader",
    "sys/key-status",
    "sys/rotate",
    "sys/internal/ui/mounts",
    "sys/internal/ui/mounts/{}",
    "sys/generate-root/attempt",
    "sys/tools/random",
    "sys/tools/hash",
    "sys/raw/{}",
    "sys/host-info",
    "sys/config/state/sanitized",
    "sys/metrics",
    "auth/userpass/users",
    "auth/userpass/users/{}",
    "auth/userpass/login/{}",
    "auth/approle/role",
    "auth/approle/role/{}",
    "auth/approle/role/{}/role-id",
    "auth/approle/role/{}/secret-id",
    "auth/approle/role/{}/secret-id/lookup",
    "auth/approle/login",
    "{}",
];

const NAMES: &[&str] = &[
    "a",
    "b",
    "x/y",
    "app",
    "kv",
    "secret",
    "userpass",
    "approle",
    "",
    ".",
    "..",
    "*",
    "+",
    "a/",
    "%2F",
    " ",
    "\u{0}",
    "sys",
    "auth/token",
    "core/keyring",
];
const KEYS: &[&str] = &[
    "type",
    "path",
    "options",
    "version",
    "description",
    "config",
    "policy",
    "policies",
    "rules",
    "ttl",
    "max_ttl",
    "period",
    "explicit_max_ttl",
    "num_uses",
    "renewable",
    "no_parent",
    "no_default_policy",
    "display_name",
    "meta",
    "token",
    "accessor",
    "password",
    "username",
    "role_id",
    "secret_id",
    "bind_secret_id",
    "token_ttl",
    "token_policies",
    "token_type",
    "data",
    "cas",
    "versions",
    "max_versions",
    "lease_id",
    "increment",
    "paths",
    "local",
    "seal_wrap",
    "default_lease_ttl",
    "max_lease_ttl",
    "listing_visibility",
    "id",
    "key",
    "wrap_ttl",
    "secret_shares",
];

/// Operations, weighted towards the ones most endpoints serve.
fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        4 => Just(Operation::Update),
        3 => Just(Operation::Read),
        1 => Just(Operation::List),
        1 => Just(Operation::Delete),
        1 => Just(Operation::Create),
        1 => Just(Operation::Patch),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => (prop::sample::select(ENDPOINTS), prop::sample::select(NAMES), any::<bool>())
            .prop_map(|(e, n, slash)| {
                let p = e.replace("{}", n);
                if slash { format!("{p}/") } else { p }
            }),
        1 => ".{0,40}",
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e20f64..1e20).prop_map(Value::from),
        prop::sample::select(
            &[
                "kv", "1h", "-5s", "batch", "service", "default", "root", "2", "true", "*"
            ][..]
        )
        .prop_map(|s| Value::String(s.into())),
        "path \"[a-z*]{0,6}\" \\{ capabilities = \\[\"read\"\\] \\}".prop_map(Value::String),
        ".{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..4).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

fn body() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec((prop::sample::select(KEYS), value()), 0..5)
        .prop_map(|kv| kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// Which token a request carries: the root token, none, or a made-up one.
#[derive(Debug, Clone)]
enum TokenChoice {
    Root,
    Missing,
    Other(String),
}

fn token() -> impl Strategy<Value = TokenChoice> {
    prop_oneof![
        6 => Just(TokenChoice::Root),
        1 => Just(TokenChoice::Missing),
        1 => prop_oneof![Just("hvs.".to_owned()), Just("hvb.".to_owned()), ".{0,30}".prop_map(|s| s)]
            .prop_map(TokenChoice::Other),
    ]
}

fn request() -> impl Strategy<Value = (Operation, String, Map<String, Value>, TokenChoice)> {
    (operation(), path(), body(), token())
}

/// Requests the target leaves out (see the module doc).
fn excluded(path: &str) -> bool {
    let p = path.trim_start_matches('/');
    p.starts_with("sys/audit") || p.starts_with("sys/replication")
}

proptest! {
    #![proptest_config(config(128))]

    /// Why: every byte of a request is chosen by a client.
    #[test]
    fn fuzz_pipeline_requests(requests in prop::collection::vec(request(), 1..12)) {
        let rt = strongroom_fuzz::runtime().unwrap();
        rt.block_on(async {
            let (mut core, mut root) = with_kv().await;
            for (op, path, data, token) in &requests {
                if excluded(path) {
                    continue;
                }
                let mut req = Request::new(*op, path.clone()).with_data(data.clone());
                match token {
                    TokenChoice::Root => req = req.with_token(root.clone()),
                    TokenChoice::Missing => {}
                    TokenChoice::Other(t) => req = req.with_token(t.clone()),
                }
                let input = (op, path, data);
                if let Err(e) = bounded("a request", core.handle(req)).await {
                    assert_client_refusal(&e, &input);
                }
                // A request may legitimately seal the core or revoke the root token; start
                // the rest of the sequence on a fresh core rather than fuzz a locked door.
                let root_works = core
                    .handle(Request::new(Operation::Read, "auth/token/lookup-self").with_token(root.clone()))
                    .await
                    .is_ok();
                if !root_works {
                    (core, root) = with_kv().await;
                }
            }
        });
    }
}
