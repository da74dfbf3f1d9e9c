//! `token lookup` and `token renew`: one token's properties, or more life for it.
//!
//! Without an argument both act on the caller's own token (`lookup-self`, `renew-self`);
//! with `-accessor` the argument is an accessor instead of a token.

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::print_answer;
use crate::args::{FlagKind, FlagSpec, Parsed};
use crate::client::Body;
use crate::commands::{Command, Ctx, duration_flag, expect_at_most};
use crate::config::HTTP_FLAGS;
use crate::error::CliError;
use crate::output::OUTPUT_FLAGS;

const ACCESSOR_FLAG: FlagSpec = FlagSpec::switch(
    "accessor",
    "Treat the argument as a token accessor instead of a token.",
);
const LOOKUP_FLAGS: &[FlagSpec] = &[ACCESSOR_FLAG];
const RENEW_FLAGS: &[FlagSpec] = &[
    ACCESSOR_FLAG,
    FlagSpec {
        name: "increment",
        aliases: &["i"],
        kind: FlagKind::Value,
        help: "Requested new TTL from now (the server may cap it).",
    },
];

pub const LOOKUP: Command = Command {
    words: &["token", "lookup"],
    args: "[TOKEN | ACCESSOR]",
    synopsis: "Show a token's properties (your own token without an argument).",
    flags: &[HTTP_FLAGS, OUTPUT_FLAGS, LOOKUP_FLAGS],
    run: run_lookup,
};

pub const RENEW: Command = Command {
    words: &["token", "renew"],
    args: "[TOKEN | ACCESSOR]",
    synopsis: "Extend a token's TTL (your own token without an argument).",
    flags: &[HTTP_FLAGS, OUTPUT_FLAGS, RENEW_FLAGS],
    run: run_renew,
};

/// Which token an operation is about.
enum Target<'a> {
    Own,
    Token(&'a str),
    Accessor(&'a str),
}

fn target(flags: &Parsed) -> Result<Target<'_>, CliError> {
    expect_at_most(flags, 1)?;
    match (flags.positionals.first(), flags.switch("accessor")) {
        (None, true) => Err(CliError::Usage(
            "-accessor needs an accessor argument".to_string(),
        )),
        (None, false) => Ok(Target::Own),
        (Some(arg), true) => Ok(Target::Accessor(arg.trim())),
        (Some(arg), false) => Ok(Target::Token(arg.trim())),
    }
}

fn run_lookup(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    let target = target(flags)?;
    let output = ctx.output(flags)?;
    let client = ctx.connect(flags)?;
    let answer = match target {
        Target::Own => client.send(Method::GET, "auth/token/lookup-self", &[], Body::None),
        Target::Token(token) => client.send(
            Method::POST,
            "auth/token/lookup",
            &[],
            Body::Json(&json!({ "token": token })),
        ),
        Target::Accessor(accessor) => client.send(
            Method::POST,
            "auth/token/lookup-accessor",
            &[],
            Body::Json(&json!({ "accessor": accessor })),
        ),
    }
    .map_err(|err| CliError::client("Error looking up token", err))?;
    print_answer(ctx, answer, &output, "Error looking up token")
}

fn run_renew(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    let target = target(flags)?;
    let output = ctx.output(flags)?;
    let increment = duration_flag(flags, "increment")?.unwrap_or(0);
    let (path, body) = renew_request(&target, increment);
    let client = ctx.connect(flags)?;
    let answer = client
        .send(Method::POST, path, &[], Body::Json(&body))
        .map_err(|err| CliError::client("Error renewing token", err))?;
    print_answer(ctx, answer, &output, "Error renewing token")
}

/// The endpoint and body of a renewal; the increment is in seconds, 0 meaning "the default".
fn renew_request(target: &Target<'_>, increment: u64) -> (&'static str, Value) {
    let mut body = Map::new();
    body.insert("increment".to_string(), json!(increment));
    let path = match target {
        Target::Own => "auth/token/renew-self",
        Target::Token(token) => {
            body.insert("token".to_string(), json!(token));
            "auth/token/renew"
        }
        Target::Accessor(accessor) => {
            body.insert("accessor".to_string(), json!(accessor));
            "auth/token/renew-accessor"
        }
    };
    (path, Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each target picks its own endpoint and names itself in the body.
    #[test]
    fn renew_requests() {
        assert_eq!(
            renew_request(&Target::Own, 0),
            ("auth/token/renew-self", json!({"increment": 0}))
        );
        assert_eq!(
            renew_request(&Target::Token("t"), 3600),
            ("auth/token/renew", json!({"increment": 3600, "token": "t"}))
        );
        assert_eq!(
            renew_request(&Target::Accessor("a"), 60),
            (
                "auth/token/renew-accessor",
                json!({"increment": 60, "accessor": "a"})
            )
        );
    }
}
