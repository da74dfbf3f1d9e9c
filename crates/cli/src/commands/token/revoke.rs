//! `token revoke`: end a token, its children (unless `-mode=orphan`), or everything issued
//! under a path (`-mode=path`).

use reqwest::Method;
use serde_json::{Value, json};

use crate::args::{FlagSpec, Parsed};
use crate::client::Body;
use crate::commands::{Command, Ctx, expect_args, report_write};
use crate::config::HTTP_FLAGS;
use crate::error::CliError;
use crate::output::OUTPUT_FLAGS;

const REVOKE_FLAGS: &[FlagSpec] = &[
    FlagSpec::switch("self", "Revoke the token this command authenticates with."),
    FlagSpec::switch(
        "accessor",
        "Treat the argument as a token accessor instead of a token.",
    ),
    FlagSpec::value(
        "mode",
        "orphan: keep the children as orphans; path: revoke every token created under the \
         argument's path prefix. Default: the token and all its children.",
    ),
];

pub const COMMAND: Command = Command {
    words: &["token", "revoke"],
    args: "[TOKEN | ACCESSOR | PATH]",
    synopsis: "Revoke a token and, by default, all its children.",
    flags: &[HTTP_FLAGS, OUTPUT_FLAGS, REVOKE_FLAGS],
    run,
};

fn run(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    let output = ctx.output(flags)?;
    let (path, body) = request(flags)?;
    let client = ctx.connect(flags)?;
    let body = match &body {
        Some(value) => Body::Json(value),
        None => Body::None,
    };
    let method = if path.starts_with("sys/") {
        Method::PUT
    } else {
        Method::POST
    };
    let answer = client
        .send(method, &path, &[], body)
        .map_err(|err| CliError::client("Error revoking token", err))?;
    report_write(
        ctx,
        answer,
        &output,
        "Success! Revoked token (if it existed)",
    )
}

/// Picks the endpoint from the flags, refusing combinations Vault refuses.
fn request(flags: &Parsed) -> Result<(String, Option<Value>), CliError> {
    let mode = flags.value("mode").unwrap_or("");
    if !matches!(mode, "" | "orphan" | "path") {
        return Err(CliError::Usage(format!(
            "Invalid -mode {mode:?}: use orphan or path"
        )));
    }
    if flags.switch("self") {
        if flags.switch("accessor") || !mode.is_empty() {
            return Err(CliError::Usage(
                "-self cannot be combined with -accessor or -mode".to_string(),
            ));
        }
        expect_args(flags, 0)?;
        return Ok(("auth/token/revoke-self".to_string(), None));
    }
    expect_args(flags, 1)?;
    let arg = flags.positionals[0].trim();
    if flags.switch("accessor") {
        if !mode.is_empty() {
            return Err(CliError::Usage(
                "-accessor cannot be combined with -mode".to_string(),
            ));
        }
        return Ok((
            "auth/token/revoke-accessor".to_string(),
            Some(json!({ "accessor": arg })),
        ));
    }
    Ok(match mode {
        "orphan" => (
            "auth/token/revoke-orphan".to_string(),
            Some(json!({ "token": arg })),
        ),
        "path" => (
            format!(
                "sys/leases/revoke-prefix/{}",
                crate::commands::sanitize_path(arg)
            ),
            None,
        ),
        _ => (
            "auth/token/revoke".to_string(),
            Some(json!({ "token": arg })),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Parsed {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        crate::args::parse(&args, &[REVOKE_FLAGS]).unwrap()
    }

    // Each flag combination reaches the endpoint Vault's CLI uses for it.
    #[test]
    fn endpoints() {
        assert_eq!(
            request(&parse(&["t"])).unwrap(),
            ("auth/token/revoke".to_string(), Some(json!({"token": "t"})))
        );
        assert_eq!(
            request(&parse(&["-self"])).unwrap(),
            ("auth/token/revoke-self".to_string(), None)
        );
        assert_eq!(
            request(&parse(&["-accessor", "a"])).unwrap(),
            (
                "auth/token/revoke-accessor".to_string(),
                Some(json!({"accessor": "a"}))
            )
        );
        assert_eq!(
            request(&parse(&["-mode=orphan", "t"])).unwrap(),
            (
                "auth/token/revoke-orphan".to_string(),
                Some(json!({"token": "t"}))
            )
        );
        assert_eq!(
            request(&parse(&["-mode=path", "auth/token/create/"])).unwrap(),
            (
                "sys/leases/revoke-prefix/auth/token/create".to_string(),
                None
            )
        );
    }

    // Contradictory or incomplete command lines are usage errors, never a revocation.
    #[test]
    fn refused_combinations() {
        for args in [
            &[][..],
            &["-self", "t"][..],
            &["-self", "-accessor"][..],
            &["-accessor", "-mode=orphan", "a"][..],
            &["-mode=all", "t"][..],
        ] {
            let err = request(&parse(args)).unwrap_err();
            assert_eq!(err.exit_code(), 1, "{args:?}");
        }
    }
}
