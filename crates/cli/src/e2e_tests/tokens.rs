//! `token`, `login`, `unwrap` on the wire.

use super::*;

fn auth_answer(token: &str) -> Value {
    json!({"request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 0,
           "data": null, "wrap_info": null, "warnings": null,
           "auth": {"client_token": token, "accessor": "acc", "policies": ["default", "web"],
                    "token_policies": ["default", "web"], "metadata": null,
                    "lease_duration": 3600, "renewable": true, "entity_id": "",
                    "token_type": "service", "orphan": false, "num_uses": 0}})
}

// `token create` POSTs every flag in its API form; -field=token prints just the token.
#[test]
fn token_create_body() {
    let (address, server) = serve(vec![json_answer(200, auth_answer("hvs.child"))]);

    let outcome = cli(
        &address,
        &[
            "token",
            "create",
            "-policy=web",
            "-policy=db",
            "-ttl=30m",
            "-explicit-max-ttl=1h",
            "-renewable=false",
            "-display-name=ci",
            "-use-limit=5",
            "-metadata",
            "team=core",
            "-no-default-policy",
            "-type=service",
            "-field=token",
        ],
        b"",
        &[],
    );

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(outcome.stdout, "hvs.child\n");
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].target, "/v1/auth/token/create");
    assert_eq!(
        seen[0].json(),
        json!({"policies": ["web", "db"], "ttl": "30m0s", "explicit_max_ttl": "1h0m0s",
               "renewable": false, "display_name": "ci", "num_uses": 5,
               "meta": {"team": "core"}, "no_default_policy": true, "type": "service"})
    );
}

// -orphan and -role choose their endpoints; the table is Vault's token table.
#[test]
fn token_create_orphan_and_role() {
    let (address, server) = serve(vec![
        json_answer(200, auth_answer("hvs.o")),
        json_answer(200, auth_answer("hvs.r")),
    ]);

    let orphan = cli(
        &address,
        &["token", "create", "-orphan", "-period=1h"],
        b"",
        &[],
    );
    let role = cli(&address, &["token", "create", "-role=deploy"], b"", &[]);

    let seen = server.join().unwrap();
    assert_eq!(orphan.code, 0, "{}", orphan.stderr);
    assert_eq!(seen[0].target, "/v1/auth/token/create-orphan");
    assert_eq!(
        seen[0].json(),
        json!({"period": "1h0m0s", "renewable": true})
    );
    assert_eq!(seen[1].target, "/v1/auth/token/create/deploy");
    assert_eq!(
        role.stdout,
        "Key                  Value\n\
         ---                  -----\n\
         token                hvs.r\n\
         token_accessor       acc\n\
         token_duration       1h\n\
         token_renewable      true\n\
         token_policies       [\"default\" \"web\"]\n\
         identity_policies    []\n\
         policies             [\"default\" \"web\"]\n"
    );
}

// lookup without an argument is lookup-self; with one, a POST naming the token; TTLs humanised.
#[test]
fn token_lookup_forms() {
    let lookup = json!({"request_id": "r", "lease_id": "", "lease_duration": 0,
        "renewable": false, "data": {"accessor": "acc", "creation_ttl": 2764800,
        "ttl": 2764790, "explicit_max_ttl": 0, "policies": ["default"], "meta": null,
        "id": "hvs.x", "num_uses": 0}});
    let (address, server) = serve(vec![
        json_answer(200, lookup.clone()),
        json_answer(200, lookup.clone()),
        json_answer(200, lookup),
    ]);

    let own = cli(&address, &["token", "lookup"], b"", &[]);
    let other = cli(&address, &["token", "lookup", "hvs.other"], b"", &[]);
    let accessor = cli(
        &address,
        &["token", "lookup", "-accessor", "acc2"],
        b"",
        &[],
    );

    let seen = server.join().unwrap();
    assert_eq!(own.code, 0, "{}", own.stderr);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].target, "/v1/auth/token/lookup-self");
    assert_eq!(seen[1].method, "POST");
    assert_eq!(seen[1].target, "/v1/auth/token/lookup");
    assert_eq!(seen[1].json(), json!({"token": "hvs.other"}));
    assert_eq!(seen[2].target, "/v1/auth/token/lookup-accessor");
    assert_eq!(seen[2].json(), json!({"accessor": "acc2"}));
    assert_eq!(other.code, 0);
    assert_eq!(accessor.code, 0);
    assert!(
        own.stdout.contains("creation_ttl        768h\n"),
        "{}",
        own.stdout
    );
    assert!(own.stdout.contains("explicit_max_ttl    0s\n"));
    assert!(own.stdout.contains("meta                <nil>\n"));
    assert!(own.stdout.contains("ttl                 767h59m50s\n"));
}

// renew sends the increment in seconds to the endpoint matching the target.
#[test]
fn token_renew() {
    let (address, server) = serve(vec![
        json_answer(200, auth_answer("hvs.a")),
        json_answer(200, auth_answer("hvs.b")),
    ]);

    let own = cli(&address, &["token", "renew", "-increment=1h"], b"", &[]);
    let other = cli(
        &address,
        &["token", "renew", "-i", "30s", "hvs.b"],
        b"",
        &[],
    );

    let seen = server.join().unwrap();
    assert_eq!(own.code, 0, "{}", own.stderr);
    assert_eq!(seen[0].target, "/v1/auth/token/renew-self");
    assert_eq!(seen[0].json(), json!({"increment": 3600}));
    assert_eq!(other.code, 0, "{}", other.stderr);
    assert_eq!(seen[1].target, "/v1/auth/token/renew");
    assert_eq!(seen[1].json(), json!({"increment": 30, "token": "hvs.b"}));
}

// revoke forms reach their endpoints and print Vault's line; -mode=path revokes by prefix.
#[test]
fn token_revoke_forms() {
    let (address, server) = serve(vec![empty_answer(), empty_answer(), empty_answer()]);

    let own = cli(&address, &["token", "revoke", "-self"], b"", &[]);
    let orphan = cli(
        &address,
        &["token", "revoke", "-mode=orphan", "hvs.p"],
        b"",
        &[],
    );
    let path = cli(
        &address,
        &["token", "revoke", "-mode=path", "auth/userpass/"],
        b"",
        &[],
    );

    let seen = server.join().unwrap();
    assert_eq!(own.code, 0, "{}", own.stderr);
    assert_eq!(own.stdout, "Success! Revoked token (if it existed)\n");
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].target, "/v1/auth/token/revoke-self");
    assert_eq!(seen[1].target, "/v1/auth/token/revoke-orphan");
    assert_eq!(seen[1].json(), json!({"token": "hvs.p"}));
    assert_eq!(orphan.code, 0);
    assert_eq!(seen[2].method, "PUT");
    assert_eq!(seen[2].target, "/v1/sys/leases/revoke-prefix/auth/userpass");
    assert_eq!(path.code, 0);
}

// capabilities: one argument asks about our token, two about another; sorted, comma-joined.
#[test]
fn token_capabilities() {
    let (address, server) = serve(vec![
        json_answer(
            200,
            json!({"capabilities": ["update", "read"], "secret/x": ["update", "read"],
                   "data": {"capabilities": ["update", "read"], "secret/x": ["update", "read"]}}),
        ),
        json_answer(200, json!({"data": {"secret/x": ["deny"]}})),
    ]);

    let own = cli(&address, &["token", "capabilities", "secret/x"], b"", &[]);
    let other = cli(
        &address,
        &["token", "capabilities", "-format=json", "hvs.o", "secret/x"],
        b"",
        &[],
    );

    let seen = server.join().unwrap();
    assert_eq!(own.code, 0, "{}", own.stderr);
    assert_eq!(own.stdout, "read, update\n");
    assert_eq!(seen[0].target, "/v1/sys/capabilities-self");
    assert_eq!(seen[0].json(), json!({"paths": ["secret/x"]}));
    assert_eq!(seen[1].target, "/v1/sys/capabilities");
    assert_eq!(
        seen[1].json(),
        json!({"token": "hvs.o", "paths": ["secret/x"]})
    );
    assert_eq!(other.stdout, "[\n  \"deny\"\n]\n");
}

// approle login POSTs role_id and secret_id without any old token and stores the new one.
#[test]
fn approle_login() {
    let home = tempfile::tempdir().unwrap();
    let home_str = home.path().to_str().unwrap().to_string();
    let (address, server) = serve(vec![json_answer(200, auth_answer("hvs.app"))]);

    let outcome = cli(
        &address,
        &[
            "login",
            "-method=approle",
            "-path=ci",
            "role_id=r1",
            "secret_id=s1",
        ],
        b"",
        &[("HOME", &home_str)],
    );

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].target, "/v1/auth/ci/login");
    assert_eq!(seen[0].json(), json!({"role_id": "r1", "secret_id": "s1"}));
    assert!(!seen[0].headers.contains_key("x-vault-token"));
    assert!(outcome.stdout.starts_with(
        "Success! You are now authenticated. The token information displayed below\n\
         is already stored in the token helper."
    ));
    assert!(outcome.stdout.contains("token                hvs.app\n"));
    assert_eq!(
        std::fs::read_to_string(home.path().join(".vault-token")).unwrap(),
        "hvs.app"
    );
}

// approle login without role_id is a usage error and sends nothing.
#[test]
fn approle_login_needs_role_id() {
    let outcome = cli(
        "http://127.0.0.1:1",
        &["login", "-method=approle", "secret_id=s"],
        b"",
        &[],
    );

    assert_eq!(outcome.code, 1);
    assert!(outcome.stderr.contains("role_id"));
}

// A wrapped login is shown (wrapping token) and never stored.
#[test]
fn wrapped_login_is_not_stored() {
    let home = tempfile::tempdir().unwrap();
    let home_str = home.path().to_str().unwrap().to_string();
    let (address, server) = serve(vec![json_answer(
        200,
        json!({"request_id": "", "data": null, "auth": null,
               "wrap_info": {"token": "hvs.w", "accessor": "a", "ttl": 60,
                             "creation_time": "t", "creation_path": "auth/userpass/login/bob"}}),
    )]);

    let outcome = cli(
        &address,
        &[
            "login",
            "-method=userpass",
            "-wrap-ttl=60s",
            "-field=wrapping_token",
            "username=bob",
            "password=pw",
        ],
        b"",
        &[("HOME", &home_str)],
    );

    let seen = server.join().unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(outcome.stdout, "hvs.w\n");
    assert_eq!(seen[0].headers["x-vault-wrap-ttl"], "60");
    assert!(!home.path().join(".vault-token").exists());
}

// unwrap TOKEN sends it in the body with our token; bare unwrap authenticates as the wrapper.
#[test]
fn unwrap_forms() {
    let (address, server) = serve(vec![
        json_answer(200, kv_answer()),
        json_answer(200, auth_answer("hvs.inner")),
    ]);

    let with_arg = cli(&address, &["unwrap", "-field=foo", "hvs.wrapper"], b"", &[]);
    let bare = cli(
        &address,
        &["unwrap", "-field=token"],
        b"",
        &[("VAULT_TOKEN", "hvs.wrapper2")],
    );

    let seen = server.join().unwrap();
    assert_eq!(with_arg.code, 0, "{}", with_arg.stderr);
    assert_eq!(with_arg.stdout, "bar\n");
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(seen[0].target, "/v1/sys/wrapping/unwrap");
    assert_eq!(seen[0].headers["x-vault-token"], "test-token");
    assert_eq!(seen[0].json(), json!({"token": "hvs.wrapper"}));
    assert_eq!(bare.code, 0, "{}", bare.stderr);
    assert_eq!(bare.stdout, "hvs.inner\n");
    assert_eq!(seen[1].headers["x-vault-token"], "hvs.wrapper2");
    assert!(seen[1].body.is_empty());
}

// A consumed wrapping token is a server error: exit 2 with Vault's error text.
#[test]
fn unwrap_reused_token() {
    let (address, server) = serve(vec![json_answer(
        400,
        json!({"errors": ["wrapping token is not valid or does not exist"]}),
    )]);

    let outcome = cli(&address, &["unwrap", "hvs.used"], b"", &[]);

    server.join().unwrap();
    assert_eq!(outcome.code, 2);
    assert!(
        outcome
            .stderr
            .starts_with("Error unwrapping: Error making API request.")
    );
    assert!(outcome.stderr.contains("wrapping token is not valid"));
}
