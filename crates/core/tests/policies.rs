//! ACL policies end to end through `Core::handle`: policies written through `sys/policies/acl`,
//! tokens created through `auth/token/create`, and KV requests that must succeed or get 403.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Map, Value, json};
use strongroom_api::{InitRequest, UnsealRequest};
use strongroom_core::{Core, CoreConfig, CoreError, Operation, Request, Response};
use strongroom_storage::InmemStorage;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

/// An unsealed core with a KV v1 mount at `kv/`; returns the root token.
async fn setup() -> (Arc<Core>, String) {
    let core = Core::new(CoreConfig::default(), Arc::new(InmemStorage::new()));
    let init = core
        .init(InitRequest {
            secret_shares: 1,
            secret_threshold: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    let status = core
        .unseal(UnsealRequest {
            key: Some(init.keys[0].clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!status.sealed);
    let root = init.root_token;
    call(
        &core,
        &root,
        Operation::Update,
        "sys/mounts/kv",
        json!({"type": "kv"}),
    )
    .await
    .unwrap();
    (core, root)
}

async fn call(
    core: &Core,
    token: &str,
    op: Operation,
    path: &str,
    data: Value,
) -> Result<Response, CoreError> {
    core.handle(
        Request::new(op, path)
            .with_token(token)
            .with_data(obj(data)),
    )
    .await
}

async fn put_policy(core: &Core, root: &str, name: &str, text: &str) {
    call(
        core,
        root,
        Operation::Update,
        &format!("sys/policies/acl/{name}"),
        json!({"policy": text}),
    )
    .await
    .unwrap();
}

/// A token carrying `policies` (plus `default`), created by root.
async fn token_with(core: &Core, root: &str, policies: &[&str]) -> String {
    let resp = call(
        core,
        root,
        Operation::Update,
        "auth/token/create",
        json!({"policies": policies}),
    )
    .await
    .unwrap();
    resp.auth.unwrap().client_token
}

/// Creates a policy and a token that carries only it.
async fn policy_token(core: &Core, root: &str, name: &str, text: &str) -> String {
    put_policy(core, root, name, text).await;
    token_with(core, root, &[name]).await
}

async fn read_ok(core: &Core, token: &str, path: &str) -> bool {
    match call(core, token, Operation::Read, path, json!({})).await {
        Ok(_) | Err(CoreError::NotFound) => true,
        Err(CoreError::PermissionDenied) => false,
        Err(e) => panic!("unexpected error reading {path}: {e:?}"),
    }
}

async fn write_ok(core: &Core, token: &str, path: &str, data: Value) -> bool {
    match call(core, token, Operation::Update, path, data).await {
        Ok(_) => true,
        Err(CoreError::PermissionDenied) => false,
        Err(e) => panic!("unexpected error writing {path}: {e:?}"),
    }
}

/// Checks one precedence rule both ways: `winner` beats `loser` on `path`, whichever of the
/// two grants and whichever denies.
async fn assert_precedence(winner: &str, loser: &str, path: &str) {
    let (core, root) = setup().await;
    call(&core, &root, Operation::Update, path, json!({"v": "1"}))
        .await
        .unwrap();
    let grant = format!(
        "path \"{winner}\" {{\n  capabilities = [\"read\"]\n}}\npath \"{loser}\" {{\n  capabilities = [\"deny\"]\n}}\n"
    );
    let deny = format!(
        "path \"{winner}\" {{\n  capabilities = [\"deny\"]\n}}\npath \"{loser}\" {{\n  capabilities = [\"read\"]\n}}\n"
    );
    let granted = policy_token(&core, &root, "grant", &grant).await;
    let denied = policy_token(&core, &root, "deny", &deny).await;
    assert!(
        read_ok(&core, &granted, path).await,
        "{winner} should beat {loser} on {path} (grant)"
    );
    assert!(
        !read_ok(&core, &denied, path).await,
        "{winner} should beat {loser} on {path} (deny)"
    );
}

#[tokio::test]
async fn exact_path_beats_any_glob() {
    // Why: rule 1 — an exact pattern has no wildcard, so it always has the latest one.
    assert_precedence("kv/app/db", "kv/app/*", "kv/app/db").await;
}

#[tokio::test]
async fn later_first_wildcard_beats_earlier() {
    // Why: rule 1 — `kv/a/*` (first wildcard later) beats `kv/+/teamb`.
    assert_precedence("kv/a/*", "kv/+/teamb", "kv/a/teamb").await;
}

#[tokio::test]
async fn pattern_without_trailing_star_beats_glob() {
    // Why: rule 2 — `kv/+` beats `kv/*` where both match.
    assert_precedence("kv/+", "kv/*", "kv/x").await;
}

#[tokio::test]
async fn fewer_plus_segments_win() {
    // Why: rule 3 — `kv/+/+/foo/*` loses to `kv/*`.
    assert_precedence("kv/*", "kv/+/+/foo/*", "kv/a/b/foo/c").await;
}

#[tokio::test]
async fn longer_pattern_wins() {
    // Why: rule 4 — same wildcard position, both globs, same `+` count: longer wins.
    assert_precedence("kv/+/xy*", "kv/+/x*", "kv/q/xyz").await;
}

#[tokio::test]
async fn lexicographically_larger_pattern_wins() {
    // Why: rule 5 — the final tie-break is deterministic: the larger string wins.
    assert_precedence("kv/+/a/+", "kv/+/+/b", "kv/x/a/b").await;
}

#[tokio::test]
async fn plus_matches_exactly_one_segment() {
    // Why: `+` must not match across segments, or `kv/+/teamb` would open deeper paths.
    let (core, root) = setup().await;
    let t = policy_token(
        &core,
        &root,
        "teamb",
        "path \"kv/+/teamb\" {\n  capabilities = [\"read\"]\n}\n",
    )
    .await;
    assert!(read_ok(&core, &t, "kv/x/teamb").await);
    assert!(!read_ok(&core, &t, "kv/x/y/teamb").await);
    assert!(!read_ok(&core, &t, "kv/teamb").await);
}

#[tokio::test]
async fn same_pattern_in_two_policies_unions_and_deny_wins() {
    // Why: capabilities for one pattern add up across policies, except that deny overrides.
    let (core, root) = setup().await;
    put_policy(
        &core,
        &root,
        "r",
        "path \"kv/u\" {\n  capabilities = [\"read\"]\n}\n",
    )
    .await;
    put_policy(
        &core,
        &root,
        "w",
        "path \"kv/u\" {\n  capabilities = [\"create\", \"update\"]\n}\n",
    )
    .await;
    put_policy(
        &core,
        &root,
        "d",
        "path \"kv/u\" {\n  capabilities = [\"deny\"]\n}\n",
    )
    .await;
    let both = token_with(&core, &root, &["r", "w"]).await;
    let with_deny = token_with(&core, &root, &["r", "w", "d"]).await;

    assert!(write_ok(&core, &both, "kv/u", json!({"a": "b"})).await);
    assert!(read_ok(&core, &both, "kv/u").await);
    assert!(!read_ok(&core, &with_deny, "kv/u").await);
    assert!(!write_ok(&core, &with_deny, "kv/u", json!({"a": "b"})).await);
}

#[tokio::test]
async fn create_and_update_are_distinct_capabilities() {
    // Why: `create` must not allow overwriting, nor `update` allow creating.
    let (core, root) = setup().await;
    call(
        &core,
        &root,
        Operation::Update,
        "kv/existing",
        json!({"a": "1"}),
    )
    .await
    .unwrap();
    let creator = policy_token(
        &core,
        &root,
        "c",
        "path \"kv/*\" {\n  capabilities = [\"create\"]\n}\n",
    )
    .await;
    let updater = policy_token(
        &core,
        &root,
        "u",
        "path \"kv/*\" {\n  capabilities = [\"update\"]\n}\n",
    )
    .await;
    assert!(write_ok(&core, &creator, "kv/new", json!({"a": "1"})).await);
    assert!(!write_ok(&core, &creator, "kv/existing", json!({"a": "2"})).await);
    assert!(write_ok(&core, &updater, "kv/existing", json!({"a": "2"})).await);
    assert!(!write_ok(&core, &updater, "kv/other", json!({"a": "1"})).await);
}

#[tokio::test]
async fn list_capability_covers_the_folder() {
    // Why: LIST paths are matched as prefixes ending with `/`; `kv/*` list must allow LIST kv/.
    let (core, root) = setup().await;
    call(&core, &root, Operation::Update, "kv/a", json!({"x": "1"}))
        .await
        .unwrap();
    let lister = policy_token(
        &core,
        &root,
        "l",
        "path \"kv/*\" {\n  capabilities = [\"list\"]\n}\n",
    )
    .await;
    let reader = policy_token(
        &core,
        &root,
        "r",
        "path \"kv/*\" {\n  capabilities = [\"read\"]\n}\n",
    )
    .await;
    assert!(
        call(&core, &lister, Operation::List, "kv/", json!({}))
            .await
            .is_ok()
    );
    assert!(matches!(
        call(&core, &reader, Operation::List, "kv/", json!({})).await,
        Err(CoreError::PermissionDenied)
    ));
    assert!(!read_ok(&core, &lister, "kv/a").await);
}

const PARAMS_POLICY: &str = r#"path "kv/restricted" {
  capabilities        = ["create", "update"]
  required_parameters = ["owner"]
  allowed_parameters  = { "owner" = [], "env" = ["dev", "stage-*", "*-test"] }
  denied_parameters   = { "env" = ["stage-prod"], "password" = [] }
}
path "kv/open" {
  capabilities       = ["create", "update"]
  allowed_parameters = { "env" = ["dev"], "*" = [] }
  denied_parameters  = { "password" = [] }
}
path "kv/sealed" {
  capabilities      = ["create", "update"]
  denied_parameters = { "*" = [] }
}
"#;

#[tokio::test]
async fn required_parameters_must_be_present() {
    // Why: a required key missing from the request denies it.
    let (core, root) = setup().await;
    let t = policy_token(&core, &root, "p", PARAMS_POLICY).await;
    assert!(write_ok(&core, &t, "kv/restricted", json!({"owner": "me"})).await);
    assert!(!write_ok(&core, &t, "kv/restricted", json!({"env": "dev"})).await);
}

#[tokio::test]
async fn allowed_parameters_restrict_keys_and_values() {
    // Why: listed keys only, listed values only (with prefix and suffix globs), `[]` = any.
    let (core, root) = setup().await;
    let t = policy_token(&core, &root, "p", PARAMS_POLICY).await;
    let w = |data: Value| {
        let core = core.clone();
        let t = t.clone();
        async move { write_ok(&core, &t, "kv/restricted", data).await }
    };
    assert!(
        w(json!({"owner": "anyone at all"})).await,
        "[] allows any value"
    );
    assert!(
        w(json!({"owner": "me", "env": "dev"})).await,
        "listed value"
    );
    assert!(
        w(json!({"owner": "me", "env": "stage-eu"})).await,
        "prefix glob"
    );
    assert!(
        w(json!({"owner": "me", "env": "load-test"})).await,
        "suffix glob"
    );
    assert!(
        !w(json!({"owner": "me", "env": "prod"})).await,
        "unlisted value"
    );
    assert!(
        !w(json!({"owner": "me", "color": "red"})).await,
        "unlisted key"
    );
}

#[tokio::test]
async fn star_key_in_allowed_parameters_admits_other_keys() {
    // Why: `"*" = []` lets unlisted keys through while listed keys stay constrained.
    let (core, root) = setup().await;
    let t = policy_token(&core, &root, "p", PARAMS_POLICY).await;
    assert!(write_ok(&core, &t, "kv/open", json!({"color": "red", "env": "dev"})).await);
    assert!(!write_ok(&core, &t, "kv/open", json!({"env": "prod"})).await);
}

#[tokio::test]
async fn denied_parameters_override_allowed() {
    // Why: a denied key or value refuses the request even where allowed would admit it.
    let (core, root) = setup().await;
    let t = policy_token(&core, &root, "p", PARAMS_POLICY).await;
    assert!(
        !write_ok(
            &core,
            &t,
            "kv/restricted",
            json!({"owner": "me", "env": "stage-prod"})
        )
        .await,
        "denied value beats the allowed glob stage-*"
    );
    assert!(
        !write_ok(&core, &t, "kv/open", json!({"password": "x"})).await,
        "denied key beats \"*\" = []"
    );
    assert!(
        !write_ok(&core, &t, "kv/sealed", json!({"anything": "x"})).await,
        "\"*\" denies every key"
    );
}

#[tokio::test]
async fn bad_policy_is_refused_with_its_line_and_not_stored() {
    // Why: operators need the line of their mistake, and a refused write must change nothing.
    let (core, root) = setup().await;
    let text = "path \"kv/a\" {\n  capabilities = [\"read\"]\n}\npath \"kv/b\" {\n  capabilities = [\"read\"\n";
    let err = call(
        &core,
        &root,
        Operation::Update,
        "sys/policies/acl/broken",
        json!({"policy": text}),
    )
    .await
    .unwrap_err();
    let CoreError::InvalidRequest(msg) = err else {
        panic!("expected 400, got {err:?}");
    };
    assert!(msg.contains("line "), "{msg}");
    let err = call(
        &core,
        &root,
        Operation::Update,
        "sys/policy/broken",
        json!({"policy": "path \"kv/a\" {\n  capabilities = [\"fly\"]\n}\n"}),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, CoreError::InvalidRequest(m) if m.contains("line 1") && m.contains("fly")),
        "{err:?}"
    );
    assert!(matches!(
        call(
            &core,
            &root,
            Operation::Read,
            "sys/policies/acl/broken",
            json!({})
        )
        .await,
        Err(CoreError::NotFound)
    ));
}

#[tokio::test]
async fn policy_text_round_trips_verbatim_in_hcl_and_json() {
    // Why: hvac compares the read-back text byte for byte and json.loads JSON policies.
    let (core, root) = setup().await;
    let hcl = "# comment kept\npath \"kv/*\" {\n    capabilities = [\"read\"]   # aligned\n}\n";
    let json_text = "{\n  \"path\": {\n    \"kv/*\": {\"capabilities\": [\"read\"]}\n  }\n}";
    put_policy(&core, &root, "Mixed-Case", hcl).await;
    put_policy(&core, &root, "json", json_text).await;

    let acl = call(
        &core,
        &root,
        Operation::Read,
        "sys/policies/acl/mixed-case",
        json!({}),
    )
    .await
    .unwrap()
    .data
    .unwrap();
    assert_eq!(acl["name"], "mixed-case");
    assert_eq!(acl["policy"], hcl);
    let legacy = call(&core, &root, Operation::Read, "sys/policy/json", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(legacy["rules"], json_text);

    let t = token_with(&core, &root, &["json"]).await;
    assert!(read_ok(&core, &t, "kv/x").await, "JSON policy takes effect");
}

#[tokio::test]
async fn base64_policy_text_is_decoded() {
    // Why: the API accepts base64 policy text to spare clients from escaping.
    let (core, root) = setup().await;
    let text = "path \"kv/*\" {\n  capabilities = [\"read\"]\n}\n";
    let encoded = base64::engine::general_purpose::STANDARD.encode(text);
    put_policy(&core, &root, "b64", &encoded).await;
    let data = call(
        &core,
        &root,
        Operation::Read,
        "sys/policies/acl/b64",
        json!({}),
    )
    .await
    .unwrap()
    .data
    .unwrap();
    assert_eq!(data["policy"], text);
}

#[tokio::test]
async fn listing_and_builtin_policy_rules() {
    // Why: `root` is immutable, `default` cannot be deleted, and both are always listed.
    let (core, root) = setup().await;
    put_policy(
        &core,
        &root,
        "web",
        "path \"kv/*\" {\n  capabilities = [\"read\"]\n}\n",
    )
    .await;

    let legacy = call(&core, &root, Operation::Read, "sys/policy", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(legacy["keys"], json!(["default", "root", "web"]));
    assert_eq!(legacy["policies"], json!(["default", "root", "web"]));
    let acl = call(&core, &root, Operation::List, "sys/policies/acl", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(acl["keys"], json!(["default", "root", "web"]));

    for (op, path) in [
        (Operation::Update, "sys/policies/acl/root"),
        (Operation::Delete, "sys/policies/acl/root"),
        (Operation::Delete, "sys/policy/default"),
    ] {
        let r = call(
            &core,
            &root,
            op,
            path,
            json!({"policy": "path \"a\" {\n  capabilities = [\"read\"]\n}\n"}),
        )
        .await;
        assert!(
            matches!(r, Err(CoreError::InvalidRequest(_))),
            "{path}: {r:?}"
        );
    }
    assert!(matches!(
        call(&core, &root, Operation::Read, "sys/policy/root", json!({})).await,
        Err(CoreError::NotFound)
    ));

    // default is editable: after removing lookup-self from it, tokens lose that right.
    let before = token_with(&core, &root, &[]).await;
    assert!(read_ok(&core, &before, "auth/token/lookup-self").await);
    put_policy(
        &core,
        &root,
        "default",
        "path \"cubbyhole/*\" {\n  capabilities = [\"read\"]\n}\n",
    )
    .await;
    assert!(!read_ok(&core, &before, "auth/token/lookup-self").await);

    // Deleting a normal policy is idempotent and takes effect at once.
    let t = token_with(&core, &root, &["web"]).await;
    assert!(read_ok(&core, &t, "kv/x").await);
    for _ in 0..2 {
        call(
            &core,
            &root,
            Operation::Delete,
            "sys/policies/acl/web",
            json!({}),
        )
        .await
        .unwrap();
    }
    assert!(!read_ok(&core, &t, "kv/x").await);
}

#[tokio::test]
async fn default_policy_grants_self_service_only() {
    // Why: every token gets `default`; it must allow lookup-self but nothing like KV.
    let (core, root) = setup().await;
    let t = token_with(&core, &root, &[]).await;
    let text = call(
        &core,
        &root,
        Operation::Read,
        "sys/policy/default",
        json!({}),
    )
    .await
    .unwrap()
    .data
    .unwrap();
    assert!(
        text["rules"]
            .as_str()
            .unwrap()
            .contains("auth/token/lookup-self")
    );
    assert!(read_ok(&core, &t, "auth/token/lookup-self").await);
    assert!(!read_ok(&core, &t, "kv/anything").await);
    assert!(!read_ok(&core, &t, "sys/mounts").await);
}

#[tokio::test]
async fn sudo_protected_path_needs_sudo() {
    // Why: root-protected paths (sys/audit) need sudo on top of the verb capability.
    let (core, root) = setup().await;
    let plain = policy_token(
        &core,
        &root,
        "plain",
        "path \"sys/audit\" {\n  capabilities = [\"read\"]\n}\n",
    )
    .await;
    let sudo = policy_token(
        &core,
        &root,
        "sudo",
        "path \"sys/audit\" {\n  capabilities = [\"read\", \"sudo\"]\n}\n",
    )
    .await;
    assert!(matches!(
        call(&core, &plain, Operation::Read, "sys/audit", json!({})).await,
        Err(CoreError::PermissionDenied)
    ));
    let r = call(&core, &sudo, Operation::Read, "sys/audit", json!({})).await;
    assert!(!matches!(r, Err(CoreError::PermissionDenied)), "{r:?}");
}

#[tokio::test]
async fn capabilities_endpoints_report_the_acl() {
    // Why: the CLI's `token capabilities` and UIs rely on these exact shapes.
    let (core, root) = setup().await;
    let t = policy_token(
        &core,
        &root,
        "caps",
        "path \"kv/*\" {\n  capabilities = [\"update\", \"read\"]\n}\npath \"kv/locked\" {\n  capabilities = [\"deny\"]\n}\n",
    )
    .await;

    let one = call(
        &core,
        &t,
        Operation::Update,
        "sys/capabilities-self",
        json!({"paths": ["kv/a"]}),
    )
    .await
    .unwrap()
    .data
    .unwrap();
    assert_eq!(one["capabilities"], json!(["read", "update"]));
    assert_eq!(one["kv/a"], json!(["read", "update"]));

    let two = call(
        &core,
        &t,
        Operation::Update,
        "sys/capabilities-self",
        json!({"paths": ["kv/locked", "other/x"]}),
    )
    .await
    .unwrap()
    .data
    .unwrap();
    assert!(two.get("capabilities").is_none());
    assert_eq!(two["kv/locked"], json!(["deny"]));
    assert_eq!(two["other/x"], json!(["deny"]));

    let by_token = call(
        &core,
        &root,
        Operation::Update,
        "sys/capabilities",
        json!({"token": t, "path": "kv/b"}),
    )
    .await
    .unwrap()
    .data
    .unwrap();
    assert_eq!(by_token["capabilities"], json!(["read", "update"]));

    let rootcaps = call(
        &core,
        &root,
        Operation::Update,
        "sys/capabilities-self",
        json!({"paths": ["kv/a"]}),
    )
    .await
    .unwrap()
    .data
    .unwrap();
    assert_eq!(rootcaps["capabilities"], json!(["root"]));

    let accessor = call(
        &core,
        &t,
        Operation::Read,
        "auth/token/lookup-self",
        json!({}),
    )
    .await
    .unwrap()
    .data
    .unwrap()["accessor"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_accessor = call(
        &core,
        &root,
        Operation::Update,
        "sys/capabilities-accessor",
        json!({"accessor": accessor, "paths": ["kv/c"]}),
    )
    .await
    .unwrap()
    .data
    .unwrap();
    assert_eq!(by_accessor["kv/c"], json!(["read", "update"]));
    assert!(matches!(
        call(
            &core,
            &root,
            Operation::Update,
            "sys/capabilities-accessor",
            json!({"accessor": "nope", "paths": ["kv/c"]}),
        )
        .await,
        Err(CoreError::InvalidRequest(_))
    ));
}

#[tokio::test]
async fn wrapping_ttl_bounds_are_enforced() {
    // Why: min/max_wrapping_ttl bound X-Vault-Wrap-TTL; out-of-bounds requests are refused.
    let (core, root) = setup().await;
    call(&core, &root, Operation::Update, "kv/w", json!({"a": "1"}))
        .await
        .unwrap();
    let t = policy_token(
        &core,
        &root,
        "wrap",
        "path \"kv/w\" {\n  capabilities = [\"read\"]\n  min_wrapping_ttl = \"10s\"\n  max_wrapping_ttl = \"90s\"\n}\n",
    )
    .await;
    let with_ttl = |secs: u64| {
        let mut req = Request::new(Operation::Read, "kv/w").with_token(t.clone());
        req.wrap_ttl = Some(std::time::Duration::from_secs(secs));
        req
    };
    assert!(matches!(
        core.handle(with_ttl(300)).await,
        Err(CoreError::PermissionDenied)
    ));
    assert!(matches!(
        core.handle(with_ttl(5)).await,
        Err(CoreError::PermissionDenied)
    ));
    let r = core.handle(with_ttl(60)).await;
    assert!(!matches!(r, Err(CoreError::PermissionDenied)), "{r:?}");
}

#[tokio::test]
async fn policy_writes_give_the_verdicts_of_the_shared_grammar_table() {
    // Why: the CLI's `policy fmt` is held to the same table; a policy it accepts must upload,
    // and one it refuses must be refused here (a `comment` key once split the two).
    let (core, root) = setup().await;
    for (i, (name, accepted, text)) in strongroom_policy::verdict_cases().into_iter().enumerate() {
        let path = format!("sys/policies/acl/table-{i}");

        let written = call(
            &core,
            &root,
            Operation::Update,
            &path,
            json!({ "policy": text }),
        )
        .await;

        match written {
            Ok(_) => assert!(accepted, "{name}: the server accepted a refused policy"),
            Err(CoreError::InvalidRequest(m)) => assert!(!accepted, "{name}: refused: {m}"),
            Err(other) => panic!("{name}: unexpected error {other:?}"),
        }
    }
}
