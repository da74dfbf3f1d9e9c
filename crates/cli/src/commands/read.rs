//! `read`: GET a logical path and print the answer.

use reqwest::Method;

use super::{Command, Ctx, sanitize_path};
use crate::args::Parsed;
use crate::client::Body;
use crate::config::HTTP_FLAGS;
use crate::error::{CliError, EXIT_OK, EXIT_REMOTE};
use crate::output::{OUTPUT_FLAGS, render_secret};

pub const COMMAND: Command = Command {
    words: &["read"],
    args: "PATH [K=V...]",
    synopsis: "Read data from a path (K=V pairs become query parameters).",
    flags: &[HTTP_FLAGS, OUTPUT_FLAGS],
    run,
};

fn run(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    let Some((path, extra)) = flags.positionals.split_first() else {
        return Err(CliError::Usage(
            "Not enough arguments (expected 1, got 0)".to_string(),
        ));
    };
    let path = sanitize_path(path);
    let query = query_pairs(extra)?;
    let output = ctx.output(flags)?;
    let client = ctx.connect(flags)?;

    let answer = client
        .request(Method::GET, &path, &query, Body::None)
        .and_then(|resp| resp.json(&Method::GET, &client.url(&path)));
    let value = match answer {
        Ok(Some(value)) => value,
        Ok(None) => return not_found(ctx, &path),
        Err(err) if err.status() == Some(404) => return not_found(ctx, &path),
        Err(err) => return Err(CliError::client(format!("Error reading {path}"), err)),
    };
    let rendered = render_secret(&value, &output)?;
    ctx.emit(&rendered)?;
    Ok(EXIT_OK)
}

fn not_found(ctx: &mut Ctx<'_>, path: &str) -> Result<i32, CliError> {
    ctx.err(&format!("No value found at {path}\n"))?;
    Ok(EXIT_REMOTE)
}

/// `k=v` arguments of `read` become query parameters (`version=2`).
fn query_pairs(args: &[String]) -> Result<Vec<(String, String)>, CliError> {
    args.iter()
        .map(|arg| {
            arg.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| {
                    CliError::Usage(format!(
                        "Invalid key/value pair {arg:?}: format must be key=value"
                    ))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Extra read arguments must be key=value; anything else is a usage error.
    #[test]
    fn query_pairs_parse() {
        let ok = query_pairs(&["version=2".to_string(), "a=b=c".to_string()]).unwrap();
        assert_eq!(
            ok,
            vec![
                ("version".to_string(), "2".to_string()),
                ("a".to_string(), "b=c".to_string())
            ]
        );
        assert!(query_pairs(&["bare".to_string()]).is_err());
        assert!(query_pairs(&["=x".to_string()]).is_err());
    }
}
