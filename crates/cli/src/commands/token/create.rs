//! `token create`: mint a child, orphan or role token.

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::print_answer;
use crate::args::{FlagSpec, Parsed};
use crate::client::Body;
use crate::commands::{Command, Ctx, duration_flag, expect_args, list_flag, map_flag};
use crate::config::HTTP_FLAGS;
use crate::error::CliError;
use crate::output::{OUTPUT_FLAGS, go_duration};

const CREATE_FLAGS: &[FlagSpec] = &[
    FlagSpec::value(
        "policy",
        "Policy to attach; repeat or comma-separate for several (default: the caller's).",
    ),
    FlagSpec::value("ttl", "Initial TTL, e.g. 30m or 1h."),
    FlagSpec::value(
        "explicit-max-ttl",
        "Hard limit on the token's life, renewals included.",
    ),
    FlagSpec::value(
        "period",
        "Make the token periodic: each renewal resets its TTL to this.",
    ),
    FlagSpec::switch(
        "orphan",
        "Create a token with no parent (needs sudo or root).",
    ),
    FlagSpec::switch("no-default-policy", "Do not attach the default policy."),
    FlagSpec::switch(
        "renewable",
        "Allow renewals (default true; -renewable=false to forbid).",
    ),
    FlagSpec::value("type", "service (default) or batch."),
    FlagSpec::value(
        "display-name",
        "Name shown for the token in lookups and audit logs.",
    ),
    FlagSpec::value(
        "use-limit",
        "Number of requests the token may make before it is revoked (0: unlimited).",
    ),
    FlagSpec::value("metadata", "A key=value pair of metadata; repeat for more."),
    FlagSpec::value("role", "Token role to create the token against."),
    FlagSpec::value("id", "Explicit token value (root only)."),
];

pub const COMMAND: Command = Command {
    words: &["token", "create"],
    args: "",
    synopsis: "Create a new token.",
    flags: &[HTTP_FLAGS, OUTPUT_FLAGS, CREATE_FLAGS],
    run,
};

fn run(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 0)?;
    let output = ctx.output(flags)?;
    let body = body(flags)?;
    let path = endpoint(flags)?;
    let client = ctx.connect(flags)?;
    let answer = client
        .send(Method::POST, &path, &[], Body::Json(&body))
        .map_err(|err| CliError::client("Error creating token", err))?;
    print_answer(ctx, answer, &output, "Error creating token")
}

/// `-orphan` wins over `-role`, as in Vault.
fn endpoint(flags: &Parsed) -> Result<String, CliError> {
    if flags.switch("orphan") {
        return Ok("auth/token/create-orphan".to_string());
    }
    match flags.value("role").map(str::trim) {
        Some("") => Err(CliError::Usage("-role needs a role name".to_string())),
        Some(role) => Ok(format!("auth/token/create/{role}")),
        None => Ok("auth/token/create".to_string()),
    }
}

/// The create request; only what was asked for is sent, except `renewable`, which Vault's CLI
/// always states.
fn body(flags: &Parsed) -> Result<Value, CliError> {
    let mut body = Map::new();
    let policies = list_flag(flags, "policy");
    if !policies.is_empty() {
        body.insert("policies".to_string(), json!(policies));
    }
    for (flag, field) in [
        ("ttl", "ttl"),
        ("explicit-max-ttl", "explicit_max_ttl"),
        ("period", "period"),
    ] {
        if let Some(seconds) = duration_flag(flags, flag)? {
            body.insert(field.to_string(), json!(go_duration(seconds)));
        }
    }
    if flags.switch("no-default-policy") {
        body.insert("no_default_policy".to_string(), json!(true));
    }
    let renewable = !flags.given("renewable") || flags.switch("renewable");
    body.insert("renewable".to_string(), json!(renewable));
    if let Some(kind) = flags.value("type") {
        if !matches!(kind, "service" | "batch") {
            return Err(CliError::Usage(format!(
                "Invalid -type {kind:?}: use service or batch"
            )));
        }
        body.insert("type".to_string(), json!(kind));
    }
    if let Some(name) = flags.value("display-name") {
        body.insert("display_name".to_string(), json!(name));
    }
    if let Some(raw) = flags.value("use-limit") {
        let uses: u64 = raw.parse().map_err(|_| {
            CliError::Usage(format!(
                "Invalid -use-limit {raw:?}: use a non-negative integer"
            ))
        })?;
        body.insert("num_uses".to_string(), json!(uses));
    }
    let meta = map_flag(flags, "metadata")?;
    if !meta.is_empty() {
        body.insert("meta".to_string(), Value::Object(meta));
    }
    if let Some(id) = flags.value("id") {
        body.insert("id".to_string(), json!(id));
    }
    Ok(Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Parsed {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        crate::args::parse(&args, &[CREATE_FLAGS]).unwrap()
    }

    // Every flag lands in its API field with the API's type; durations as Go strings.
    #[test]
    fn full_body() {
        let flags = parse(&[
            "-policy=a,b",
            "-policy=c",
            "-ttl=1h",
            "-explicit-max-ttl=2h",
            "-period=30m",
            "-no-default-policy",
            "-renewable=false",
            "-type=batch",
            "-display-name=ci",
            "-use-limit=3",
            "-metadata=user=ann",
        ]);

        assert_eq!(
            body(&flags).unwrap(),
            json!({"policies": ["a", "b", "c"], "ttl": "1h0m0s", "explicit_max_ttl": "2h0m0s",
                   "period": "30m0s", "no_default_policy": true, "renewable": false,
                   "type": "batch", "display_name": "ci", "num_uses": 3,
                   "meta": {"user": "ann"}})
        );
    }

    // With no flags only `renewable: true` is sent, so server defaults apply.
    #[test]
    fn minimal_body() {
        assert_eq!(body(&parse(&[])).unwrap(), json!({"renewable": true}));
    }

    // The endpoint follows -orphan, then -role.
    #[test]
    fn endpoints() {
        assert_eq!(endpoint(&parse(&[])).unwrap(), "auth/token/create");
        assert_eq!(
            endpoint(&parse(&["-role=ci"])).unwrap(),
            "auth/token/create/ci"
        );
        assert_eq!(
            endpoint(&parse(&["-role=ci", "-orphan"])).unwrap(),
            "auth/token/create-orphan"
        );
    }

    // Bad values are refused before anything is sent.
    #[test]
    fn bad_values() {
        assert!(body(&parse(&["-type=weird"])).is_err());
        assert!(body(&parse(&["-use-limit=-1"])).is_err());
        assert!(body(&parse(&["-ttl=soon"])).is_err());
        assert!(body(&parse(&["-metadata=novalue"])).is_err());
    }
}
