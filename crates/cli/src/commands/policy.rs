//! `policy ...`: manage ACL policies, and `policy fmt` to tidy a policy file locally.
//!
//! The server stores policy text verbatim, so `policy write` sends the file exactly as read.
//! `policy fmt` exists so operators can normalise files before review; it checks the document
//! is a policy (only `path` blocks with known keys) so a typo is caught before upload.

use hcl::format::Format as _;
use hcl::{Body, Expression, Structure};
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
        .map_err(|reason| CliError::Local(format!("Failed to parse policy {file}: {reason}")))?;
    std::fs::write(file, formatted)
        .map_err(|err| CliError::Local(format!("Error writing policy file {file}: {err}")))?;
    ctx.out(&format!("Success! Formatted policy: {file}\n"))?;
    Ok(EXIT_OK)
}

/// Keys a `path` block may hold.
const PATH_KEYS: &[&str] = &[
    "capabilities",
    "policy",
    "required_parameters",
    "allowed_parameters",
    "denied_parameters",
    "min_wrapping_ttl",
    "max_wrapping_ttl",
    "description",
    "subscribe_event_types",
    "mfa_methods",
    "control_group",
];

const CAPABILITIES: &[&str] = &[
    "create",
    "read",
    "update",
    "patch",
    "delete",
    "list",
    "sudo",
    "deny",
    "subscribe",
    "recover",
];

const SHORTHANDS: &[&str] = &["deny", "read", "write", "sudo", "list"];

/// Checks that `text` is an HCL policy and renders it in canonical HCL layout.
pub fn format_policy(text: &str) -> Result<String, String> {
    let body: Body = hcl::parse(text).map_err(|err| err.to_string())?;
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attr) if attr.key() == "name" => {}
            Structure::Attribute(attr) => {
                return Err(format!("invalid top-level key {:?}", attr.key()));
            }
            Structure::Block(block) if block.identifier() == "path" => {
                let [label] = block.labels() else {
                    return Err(
                        "a path block needs exactly one path, e.g. path \"secret/*\" { ... }"
                            .to_string(),
                    );
                };
                check_path_body(label.as_str(), block.body())?;
            }
            Structure::Block(block) => {
                return Err(format!("invalid top-level block {:?}", block.identifier()));
            }
        }
    }
    let mut formatter = hcl::format::Formatter::builder()
        .compact_arrays(true)
        .build_vec();
    body.format_string(&mut formatter)
        .map_err(|err| err.to_string())
}

fn check_path_body(path: &str, body: &Body) -> Result<(), String> {
    if let Some(block) = body.blocks().next() {
        return Err(format!(
            "path {path:?}: unexpected block {:?}; use key = value",
            block.identifier()
        ));
    }
    for attr in body.attributes() {
        let key = attr.key();
        if !PATH_KEYS.contains(&key) {
            return Err(format!("path {path:?}: invalid key {key:?}"));
        }
        match key {
            "capabilities" => {
                let Expression::Array(items) = attr.expr() else {
                    return Err(format!("path {path:?}: capabilities must be a list"));
                };
                for item in items {
                    match item {
                        Expression::String(cap) if CAPABILITIES.contains(&cap.as_str()) => {}
                        other => {
                            return Err(format!("path {path:?}: invalid capability {other}"));
                        }
                    }
                }
            }
            "policy" => match attr.expr() {
                Expression::String(p) if SHORTHANDS.contains(&p.as_str()) => {}
                other => return Err(format!("path {path:?}: invalid policy {other}")),
            },
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Messy but valid policies come out in one canonical layout.
    #[test]
    fn formats_valid_policy() {
        let messy = "path   \"secret/*\"   {\ncapabilities=[\"read\",\"list\"]\n}\n\n\n\
                     path \"sys/x\" { policy = \"deny\" }";

        let out = format_policy(messy).unwrap();

        assert_eq!(
            out,
            "path \"secret/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n\n\
             path \"sys/x\" {\n  policy = \"deny\"\n}\n"
        );
        assert_eq!(format_policy(&out).unwrap(), out);
    }

    // Syntax errors and non-policy content are refused with a reason.
    #[test]
    fn refuses_bad_policies() {
        for bad in [
            "path \"a\" {",
            "path \"a\" { capabilities = [\"fly\"] }",
            "path \"a\" { capabilites = [\"read\"] }",
            "path { capabilities = [\"read\"] }",
            "paths \"a\" { capabilities = [\"read\"] }",
            "path \"a\" { capabilities = \"read\" }",
        ] {
            assert!(format_policy(bad).is_err(), "{bad}");
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
