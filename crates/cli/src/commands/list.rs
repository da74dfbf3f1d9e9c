//! `list`: the keys under a path (`GET ?list=true`).

use reqwest::Method;
use serde_json::Value;

use super::{Command, Ctx, expect_args, sanitize_path};
use crate::args::Parsed;
use crate::client::Body;
use crate::config::HTTP_FLAGS;
use crate::error::{CliError, EXIT_OK, EXIT_REMOTE};
use crate::output::{FORMAT_FLAGS, Format, render_value};

pub const COMMAND: Command = Command {
    words: &["list"],
    args: "PATH",
    synopsis: "List the keys under a path.",
    flags: &[HTTP_FLAGS, FORMAT_FLAGS],
    run,
};

fn run(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 1)?;
    let path = format!("{}/", sanitize_path(&flags.positionals[0]));
    let output = ctx.output(flags)?;
    let client = ctx.connect(flags)?;

    let query = [("list".to_string(), "true".to_string())];
    let answer = client
        .request(Method::GET, &path, &query, Body::None)
        .and_then(|resp| resp.json(&Method::GET, &client.url(&path)));
    let value = match answer {
        Ok(Some(value)) => value,
        Ok(None) => return not_found(ctx, &path),
        Err(err) if err.status() == Some(404) => return not_found(ctx, &path),
        Err(err) => return Err(CliError::client(format!("Error listing {path}"), err)),
    };
    let Some(keys) = value.pointer("/data/keys").and_then(Value::as_array) else {
        ctx.err(&format!("No entries found at {path}\n"))?;
        return Ok(EXIT_REMOTE);
    };
    ctx.out(&render_keys(keys, output.format))?;
    Ok(EXIT_OK)
}

fn not_found(ctx: &mut Ctx<'_>, path: &str) -> Result<i32, CliError> {
    ctx.err(&format!("No value found at {path}\n"))?;
    Ok(EXIT_REMOTE)
}

/// A table is a `Keys` column; JSON and YAML print just the list, as Vault does.
pub fn render_keys(keys: &[Value], format: Format) -> String {
    match format {
        Format::Table => {
            let mut out = String::from("Keys\n----\n");
            for key in keys {
                match key {
                    Value::String(s) => out.push_str(s),
                    other => out.push_str(&other.to_string()),
                }
                out.push('\n');
            }
            out
        }
        other => render_value(&Value::Array(keys.to_vec()), other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // The table is Vault's single `Keys` column; JSON is the bare array scripts parse.
    #[test]
    fn key_rendering() {
        let keys = vec![json!("a"), json!("b/")];

        assert_eq!(render_keys(&keys, Format::Table), "Keys\n----\na\nb/\n");
        assert_eq!(
            render_keys(&keys, Format::Json),
            "[\n  \"a\",\n  \"b/\"\n]\n"
        );
        assert_eq!(render_keys(&keys, Format::Yaml), "- a\n- b/\n");
    }
}
