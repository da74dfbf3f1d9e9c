//! `policy ...`: manage ACL policies, and `policy fmt` to tidy a policy file locally.
//!
//! The server stores policy text verbatim, so `policy write` sends the file exactly as read.
//! `policy fmt` exists so operators can normalise files before review; it checks the document
//! with the server's own grammar (`strongroom-policy`), so a file it accepts uploads cleanly.

use reqwest::Method;
use serde_json::{Value, json};

use super::{Command, Ctx, expect_args, report_write};
use crate::args::Parsed;
use crate::client::Body as RequestBody;
use crate::config::HTTP_FLAGS;
use crate::error::{CliError, EXIT_OK, EXIT_REMOTE};
use crate::output::{FORMAT_FLAGS, Format, OUTPUT_FLAGS, is_wrapped, render_secret, render_value};

pub const COMMANDS: &[Command] = &[
    Command {
        words: &["policy", "write"],
        args: "NAME FILE|-",
        synopsis: "Upload a policy from a file (or stdin with -).",
        flags: &[HTTP_FLAGS, OUTPUT_FLAGS],
        run: run_write,
    },
    Command {
        words: &["policy", "read"],
        args: "NAME",
        synopsis: "Print a policy's text.",
        flags: &[HTTP_FLAGS, FORMAT_FLAGS],
        run: run_read,
    },
    Command {
        words: &["policy", "list"],
        args: "",
        synopsis: "List policy names.",
        flags: &[HTTP_FLAGS, FORMAT_FLAGS],
        run: run_list,
    },
    Command {
        words: &["policy", "delete"],
        args: "NAME",
        synopsis: "Delete a policy.",
        flags: &[HTTP_FLAGS, OUTPUT_FLAGS],
        run: run_delete,
    },
    Command {
        words: &["policy", "fmt"],
        args: "FILE",
        synopsis: "Check and reformat a policy file in place (local, no server).",
        flags: &[],
        run: run_fmt,
    },
];

/// Policy names are case-insensitive; the server keeps them lower-case.
fn policy_name(raw: &str) -> Result<String, CliError> {
    let name = raw.trim().to_lowercase();
    if name.is_empty() || name.contains('/') {
        return Err(CliError::Usage(format!(
            "Invalid policy name {raw:?}: it must be non-empty and contain no '/'"
        )));
    }
    Ok(name)
}

fn run_write(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 2)?;
    let output = ctx.output(flags)?;
    let name = policy_name(&flags.positionals[0])?;
    let source = &flags.positionals[1];
    let text = if source == "-" {
        let mut text = String::new();
        ctx.stdin
            .read_to_string(&mut text)
            .map_err(|err| CliError::Local(format!("Error reading policy from stdin: {err}")))?;
        text
    } else {
        std::fs::read_to_string(source)
            .map_err(|err| CliError::Local(format!("Error opening policy file {source}: {err}")))?
    };
    let client = ctx.connect(flags)?;
    let path = format!("sys/policies/acl/{name}");
    let answer = client
        .send(
            Method::PUT,
            &path,
            &[],
            RequestBody::Json(&json!({ "policy": text })),
        )
        .map_err(|err| CliError::client("Error uploading policy", err))?;
    report_write(
        ctx,
        answer,
        &output,
        &format!("Success! Uploaded policy: {name}"),
    )
}

fn run_read(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 1)?;
    let output = ctx.output(flags)?;
    let name = policy_name(&flags.positionals[0])?;
    let client = ctx.connect(flags)?;
    let answer = match client.send(
        Method::GET,
        &format!("sys/policies/acl/{name}"),
        &[],
        RequestBody::None,
    ) {
        Ok(answer) => answer,
        Err(err) if err.status() == Some(404) => None,
        Err(err) => return Err(CliError::client("Error reading policy", err)),
    };
    if let Some(answer) = answer.as_ref().filter(|a| is_wrapped(a)) {
        ctx.emit(&render_secret(answer, &output)?)?;
        return Ok(EXIT_OK);
    }
    let Some(text) = answer.as_ref().and_then(policy_text) else {
        ctx.err(&format!("No policy named: {name}\n"))?;
        return Ok(EXIT_REMOTE);
    };
    match output.format {
        Format::Table => ctx.out(&format!("{}\n", text.trim()))?,
        format => ctx.out(&render_value(&json!({ "policy": text }), format))?,
    }
    Ok(EXIT_OK)
}

/// The text of a policy read: `policy` (current API) or `rules` (legacy), in `data` or on top.
fn policy_text(answer: &Value) -> Option<String> {
    [answer.get("data"), Some(answer)]
        .into_iter()
        .flatten()
        .flat_map(|place| [place.get("policy"), place.get("rules")])
        .flatten()
        .find_map(Value::as_str)
        .map(str::to_string)
}

fn run_list(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 0)?;
    let output = ctx.output(flags)?;
    let client = ctx.connect(flags)?;
    let query = [("list".to_string(), "true".to_string())];
    let answer = client
        .send(Method::GET, "sys/policies/acl", &query, RequestBody::None)
        .map_err(|err| CliError::client("Error listing policies", err))?
        .unwrap_or(Value::Null);
    if is_wrapped(&answer) {
        ctx.emit(&render_secret(&answer, &output)?)?;
        return Ok(EXIT_OK);
    }
    let keys: Vec<Value> = answer
        .pointer("/data/keys")
        .or_else(|| answer.get("keys"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    match output.format {
        Format::Table => {
            let mut out = String::new();
            for key in keys.iter().filter_map(Value::as_str) {
                out.push_str(key);
                out.push('\n');
            }
            ctx.out(&out)?;
        }
        format => ctx.out(&render_value(&Value::Array(keys), format))?,
    }
    Ok(EXIT_OK)
}

fn run_delete(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 1)?;
    let output = ctx.output(flags)?;
    let name = policy_name(&flags.positionals[0])?;
    let client = ctx.connect(flags)?;
    let answer = client
        .send(
            Method::DELETE,
            &format!("sys/policies/acl/{name}"),
            &[],
            RequestBody::None,
        )
        .map_err(|err| CliError::client("Error deleting policy", err))?;
    report_write(
        ctx,
        answer,
        &output,
        &format!("Success! Deleted policy: {name}"),
    )
}

fn run_fmt(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    expect_args(flags, 1)?;
    let file = &flags.positionals[0];
    let text = std::fs::read_to_string(file)
        .map_err(|err| CliError::Local(format!("Error opening policy file {file}: {err}")))?;
    let formatted = format_policy(&text)
        .map_err(|e| CliError::Local(format!("Failed to parse policy {file}: {}", e.detail())))?;
    std::fs::write(file, formatted)
        .map_err(|err| CliError::Local(format!("Error writing policy file {file}: {err}")))?;
    ctx.out(&format!("Success! Formatted policy: {file}\n"))?;
    Ok(EXIT_OK)
}

/// Checks `text` with the server's policy grammar and renders it in canonical HCL layout.
pub fn format_policy(text: &str) -> Result<String, strongroom_policy::PolicyError> {
    strongroom_policy::format_policy(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    // `policy fmt` gives the verdict `policy write` gets from the server, case by case of the
    // shared table (which includes the `comment` key the old local checker refused).
    #[test]
    fn fmt_agrees_with_the_server_grammar() {
        for (name, accepted, text) in strongroom_policy::verdict_cases() {
            let fmt = format_policy(&text);

            assert_eq!(fmt.is_ok(), accepted, "{name}: {fmt:?}");
            if let Ok(out) = fmt {
                assert_eq!(format_policy(&out).as_ref().ok(), Some(&out), "{name}");
            }
        }
    }

    // Reads accept both the current and the legacy field.
    #[test]
    fn policy_text_fields() {
        assert_eq!(
            policy_text(&json!({"data": {"policy": "p"}})).as_deref(),
            Some("p")
        );
        assert_eq!(policy_text(&json!({"rules": "r"})).as_deref(), Some("r"));
        assert_eq!(policy_text(&json!({"data": {}})), None);
    }

    // Names are normalised to lower case; slashes are refused.
    #[test]
    fn names() {
        assert_eq!(policy_name(" Web ").unwrap(), "web");
        assert!(policy_name("a/b").is_err());
        assert!(policy_name(" ").is_err());
    }
}
