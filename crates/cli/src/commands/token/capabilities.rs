//! `token capabilities`: what a token (yours by default) may do on a path.

use reqwest::Method;
use serde_json::{Value, json};

use crate::args::{FlagSpec, Parsed};
use crate::client::Body;
use crate::commands::{Command, Ctx, sanitize_path};
use crate::config::HTTP_FLAGS;
use crate::error::{CliError, EXIT_OK};
use crate::output::{FORMAT_FLAGS, Format, render_value};

const CAPABILITIES_FLAGS: &[FlagSpec] = &[FlagSpec::switch(
    "accessor",
    "Treat the first argument as a token accessor instead of a token.",
)];

pub const COMMAND: Command = Command {
    words: &["token", "capabilities"],
    args: "[TOKEN | ACCESSOR] PATH",
    synopsis: "List a token's capabilities on a path.",
    flags: &[HTTP_FLAGS, FORMAT_FLAGS, CAPABILITIES_FLAGS],
    run,
};

fn run(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    let output = ctx.output(flags)?;
    let (endpoint, body, path) = request(flags)?;
    let client = ctx.connect(flags)?;
    let answer = client
        .send(Method::POST, endpoint, &[], Body::Json(&body))
        .map_err(|err| CliError::client("Error listing capabilities", err))?
        .unwrap_or(Value::Null);
    let mut capabilities = capabilities_of(&answer, &path);
    capabilities.sort();
    match output.format {
        Format::Table => ctx.out(&format!("{}\n", capabilities.join(", ")))?,
        format => ctx.out(&render_value(&json!(capabilities), format))?,
    }
    Ok(EXIT_OK)
}

/// The endpoint, body and queried path for the arguments.
fn request(flags: &Parsed) -> Result<(&'static str, Value, String), CliError> {
    let accessor = flags.switch("accessor");
    match flags.positionals.as_slice() {
        [path] if !accessor => {
            let path = sanitize_path(path);
            Ok(("sys/capabilities-self", json!({ "paths": [path] }), path))
        }
        [token, path] => {
            let path = sanitize_path(path);
            if accessor {
                Ok((
                    "sys/capabilities-accessor",
                    json!({ "accessor": token.trim(), "paths": [path] }),
                    path,
                ))
            } else {
                Ok((
                    "sys/capabilities",
                    json!({ "token": token.trim(), "paths": [path] }),
                    path,
                ))
            }
        }
        [_] => Err(CliError::Usage(
            "-accessor needs both an accessor and a path".to_string(),
        )),
        [] => Err(CliError::Usage(
            "Not enough arguments (expected 1-2, got 0)".to_string(),
        )),
        more => Err(CliError::Usage(format!(
            "Too many arguments (expected 1-2, got {})",
            more.len()
        ))),
    }
}

/// The list for `path`, read from `data` or the top level, under the path or `capabilities`.
fn capabilities_of(answer: &Value, path: &str) -> Vec<String> {
    let places = [answer.get("data"), Some(answer)];
    places
        .into_iter()
        .flatten()
        .flat_map(|place| [place.get(path), place.get("capabilities")])
        .flatten()
        .find_map(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The path's own key is preferred; `capabilities` is the single-path fallback.
    #[test]
    fn reading_the_answer() {
        let by_path = json!({"data": {"secret/x": ["read", "create"], "capabilities": ["deny"]}});
        let fallback = json!({"capabilities": ["root"]});

        assert_eq!(
            capabilities_of(&by_path, "secret/x"),
            vec!["read", "create"]
        );
        assert_eq!(capabilities_of(&fallback, "secret/x"), vec!["root"]);
        assert!(capabilities_of(&Value::Null, "x").is_empty());
    }
}
