//! Rendering server answers as `table`, `json` or `yaml`, and `-field` extraction.
//!
//! All commands share this so `-format` and `-field` mean the same everywhere, and so the
//! envelope-specific views (auth tokens, wrapping tokens, lease fields) match what Vault users
//! and their scripts expect. Functions return strings; commands decide where they go.

mod sections;
mod table;
mod yaml;

pub use sections::{data_table, header_for_map, path_header};
pub use table::{
    cell_value, columns, go_duration, go_value, human_duration, key_value_table, quoted_list,
    sorted, table,
};
pub use yaml::to_yaml;

use serde_json::{Map, Value};

use crate::args::{FlagSpec, Parsed};
use crate::error::CliError;

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

impl Format {
    /// Parses a `-format` / `VAULT_FORMAT` value.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "table" => Some(Format::Table),
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            _ => None,
        }
    }
}

const FORMAT_FLAG: FlagSpec = FlagSpec::value(
    "format",
    "Output format: table, json or yaml (default $VAULT_FORMAT or table).",
);
const FIELD_FLAG: FlagSpec = FlagSpec::value(
    "field",
    "Print only this field, raw, with no table or formatting around it.",
);

/// `-format` alone.
pub const FORMAT_FLAGS: &[FlagSpec] = &[FORMAT_FLAG];
/// `-format` and `-field`.
pub const OUTPUT_FLAGS: &[FlagSpec] = &[FORMAT_FLAG, FIELD_FLAG];

/// How a command should print its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputOpts {
    pub format: Format,
    pub field: Option<String>,
}

impl OutputOpts {
    /// `-format` beats `VAULT_FORMAT`; the default is a table.
    pub fn resolve(env: &dyn Fn(&str) -> Option<String>, flags: &Parsed) -> Result<Self, CliError> {
        let raw = flags
            .value("format")
            .map(str::to_string)
            .or_else(|| env("VAULT_FORMAT").filter(|v| !v.is_empty()));
        let format = match raw {
            Some(raw) => Format::parse(&raw).ok_or_else(|| {
                CliError::Usage(format!(
                    "Invalid output format {raw:?}: use table, json or yaml"
                ))
            })?,
            None => Format::Table,
        };
        let field = flags.value("field").map(str::to_string);
        if field.as_deref() == Some("") {
            return Err(CliError::Usage("-field needs a field name".to_string()));
        }
        Ok(Self { format, field })
    }
}

/// Pretty JSON with two-space indentation and a trailing newline, as Vault prints it.
pub fn to_json(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_string());
    text.push('\n');
    text
}

/// A value in the JSON or YAML format; tables fall back to JSON for non-tabular values.
pub fn render_value(value: &Value, format: Format) -> String {
    match format {
        Format::Yaml => to_yaml(value),
        Format::Json | Format::Table => to_json(value),
    }
}

/// One extracted field: raw text in table mode (strings unquoted), otherwise the format's encoding.
pub fn render_field(value: &Value, format: Format) -> String {
    match (format, value) {
        (Format::Table, Value::String(s)) => format!("{s}\n"),
        (Format::Table, other) => format!("{other}\n"),
        (format, other) => render_value(other, format),
    }
}

/// What to print for a response: the stdout text, and warnings for stderr.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    pub stdout: String,
    pub stderr: String,
}

/// Renders a logical response (or a raw object) as `read` and `write` print it.
pub fn render_secret(resp: &Value, opts: &OutputOpts) -> Result<Rendered, CliError> {
    if let Some(field) = &opts.field {
        let value = extract_field(resp, field)
            .ok_or_else(|| CliError::Local(format!("Field \"{field}\" not present in secret")))?;
        return Ok(Rendered {
            stdout: render_field(&value, opts.format),
            stderr: String::new(),
        });
    }
    if opts.format != Format::Table {
        return Ok(Rendered {
            stdout: render_value(resp, opts.format),
            stderr: String::new(),
        });
    }
    let mut rendered = Rendered::default();
    let warnings = warnings(resp);
    if !warnings.is_empty() {
        rendered
            .stderr
            .push_str("WARNING! The following warnings were returned from Vault:\n\n");
        for warning in warnings {
            rendered.stderr.push_str(&format!("  * {warning}\n\n"));
        }
    }
    let rows = secret_rows(resp);
    if !rows.is_empty() {
        rendered.stdout = key_value_table(&rows);
    }
    Ok(rendered)
}

/// Whether `value` is a wrapped answer: such answers are printed the generic way whatever
/// command asked, so the wrapping token is always shown.
pub fn is_wrapped(value: &Value) -> bool {
    value.get("wrap_info").is_some_and(|wrap| wrap.is_object())
}

/// Whether `value` is a logical-response envelope rather than a raw object.
pub fn is_envelope(value: &Value) -> bool {
    value.as_object().is_some_and(|obj| {
        obj.contains_key("data")
            && ["request_id", "lease_id", "auth", "wrap_info"]
                .iter()
                .any(|key| obj.contains_key(*key))
    })
}

fn warnings(resp: &Value) -> Vec<String> {
    resp.get("warnings")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn non_null<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// Looks up `-field` the way Vault does: auth fields for login answers, wrapping fields for
/// wrapped answers, then `data`, then the lease fields; raw objects by top-level key.
pub fn extract_field(resp: &Value, field: &str) -> Option<Value> {
    let obj = resp.as_object()?;
    if let Some(auth) = non_null(obj, "auth") {
        let found = match field {
            "token" => auth.get("client_token"),
            "token_accessor" => auth.get("accessor"),
            "token_duration" => auth.get("lease_duration"),
            "token_renewable" => auth.get("renewable"),
            "token_policies" => auth.get("token_policies").or_else(|| auth.get("policies")),
            "identity_policies" => auth.get("identity_policies"),
            "policies" => auth.get("policies"),
            _ => field
                .strip_prefix("token_meta_")
                .and_then(|key| auth.get("metadata")?.get(key)),
        };
        if let Some(found) = found {
            return Some(found.clone());
        }
        if field == "identity_policies" {
            return Some(Value::Array(Vec::new()));
        }
    }
    if let Some(wrap) = non_null(obj, "wrap_info") {
        let found = match field {
            "token" | "wrapping_token" => wrap.get("token"),
            "wrapping_accessor" => wrap.get("accessor"),
            "wrapping_token_ttl" => wrap.get("ttl"),
            "wrapping_token_creation_time" => wrap.get("creation_time"),
            "wrapping_token_creation_path" => wrap.get("creation_path"),
            "wrapped_accessor" => wrap.get("wrapped_accessor"),
            _ => None,
        };
        if let Some(found) = found {
            return Some(found.clone());
        }
    }
    if let Some(found) = non_null(obj, "data")
        .and_then(Value::as_object)
        .and_then(|data| data.get(field))
    {
        return Some(found.clone());
    }
    if is_envelope(resp) {
        return match field {
            "refresh_interval" | "lease_duration" => obj.get("lease_duration").cloned(),
            "lease_id" => obj.get("lease_id").cloned(),
            "lease_renewable" => obj.get("renewable").cloned(),
            _ => None,
        };
    }
    obj.get(field).cloned()
}

/// Table rows for a response: lease, auth and wrapping rows first, then the data keys sorted.
pub fn secret_rows(resp: &Value) -> Vec<(String, String)> {
    let Some(obj) = resp.as_object() else {
        return vec![("value".to_string(), go_value(resp))];
    };
    if !is_envelope(resp) {
        return sorted(obj)
            .into_iter()
            .map(|(k, v)| (k.clone(), cell_value(k, v)))
            .collect();
    }
    let mut rows = Vec::new();
    let mut row = |k: &str, v: String| rows.push((k.to_string(), v));

    let lease_duration = obj
        .get("lease_duration")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if lease_duration > 0 {
        let lease_id = obj.get("lease_id").and_then(Value::as_str).unwrap_or("");
        if lease_id.is_empty() {
            row("refresh_interval", human_duration(lease_duration));
        } else {
            row("lease_id", lease_id.to_string());
            row("lease_duration", human_duration(lease_duration));
            row(
                "lease_renewable",
                go_value(obj.get("renewable").unwrap_or(&Value::Bool(false))),
            );
        }
    }

    if let Some(auth) = non_null(obj, "auth") {
        let text = |key: &str| auth.get(key).map(go_value).unwrap_or_default();
        row("token", text("client_token"));
        row("token_accessor", text("accessor"));
        let duration = auth
            .get("lease_duration")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        row(
            "token_duration",
            if duration == 0 {
                "∞".to_string()
            } else {
                human_duration(duration)
            },
        );
        row("token_renewable", text("renewable"));
        row(
            "token_policies",
            quoted_list(auth.get("token_policies").or_else(|| auth.get("policies"))),
        );
        row(
            "identity_policies",
            quoted_list(auth.get("identity_policies")),
        );
        row("policies", quoted_list(auth.get("policies")));
        if let Some(meta) = auth.get("metadata").and_then(Value::as_object) {
            for (key, value) in sorted(meta) {
                row(&format!("token_meta_{key}"), go_value(value));
            }
        }
    }

    if let Some(wrap) = non_null(obj, "wrap_info") {
        let text = |key: &str| wrap.get(key).map(go_value).unwrap_or_default();
        row("wrapping_token:", text("token"));
        row("wrapping_accessor:", text("accessor"));
        row(
            "wrapping_token_ttl:",
            human_duration(wrap.get("ttl").and_then(Value::as_i64).unwrap_or(0)),
        );
        row("wrapping_token_creation_time:", text("creation_time"));
        row("wrapping_token_creation_path:", text("creation_path"));
        let wrapped = text("wrapped_accessor");
        if !wrapped.is_empty() {
            row("wrapped_accessor:", wrapped);
        }
    }

    if let Some(data) = non_null(obj, "data").and_then(Value::as_object) {
        for (key, value) in sorted(data) {
            row(key, cell_value(key, value));
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kv_envelope() -> Value {
        json!({
            "request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 2764800,
            "data": {"foo": "bar", "n": 3, "list": ["a", "b"]},
            "wrap_info": null, "warnings": null, "auth": null
        })
    }

    fn auth_envelope() -> Value {
        json!({
            "request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 0,
            "data": null, "wrap_info": null, "warnings": null,
            "auth": {
                "client_token": "hvs.tok", "accessor": "acc", "policies": ["default", "web"],
                "token_policies": ["default", "web"], "metadata": {"user": "alice"},
                "lease_duration": 3600, "renewable": true, "entity_id": "",
                "token_type": "service", "orphan": false, "mfa_requirement": null, "num_uses": 0
            }
        })
    }

    fn wrapped_envelope() -> Value {
        json!({
            "request_id": "", "lease_id": "", "renewable": false, "lease_duration": 0,
            "data": null, "warnings": null, "auth": null,
            "wrap_info": {
                "token": "hvs.wrap", "accessor": "wacc", "ttl": 900,
                "creation_time": "2025-01-02T03:04:05.1Z", "creation_path": "auth/token/create",
                "wrapped_accessor": "inner"
            }
        })
    }

    // `-field` reads data keys of an ordinary secret, and lease fields when asked.
    #[test]
    fn field_from_data() {
        let resp = kv_envelope();

        assert_eq!(extract_field(&resp, "foo"), Some(json!("bar")));
        assert_eq!(extract_field(&resp, "n"), Some(json!(3)));
        assert_eq!(
            extract_field(&resp, "refresh_interval"),
            Some(json!(2764800))
        );
        assert_eq!(extract_field(&resp, "missing"), None);
    }

    // `-field=token` on a login answer is the client token, the most scripted CLI idiom.
    #[test]
    fn field_from_auth() {
        let resp = auth_envelope();

        assert_eq!(extract_field(&resp, "token"), Some(json!("hvs.tok")));
        assert_eq!(extract_field(&resp, "token_accessor"), Some(json!("acc")));
        assert_eq!(extract_field(&resp, "token_duration"), Some(json!(3600)));
        assert_eq!(
            extract_field(&resp, "token_policies"),
            Some(json!(["default", "web"]))
        );
        assert_eq!(extract_field(&resp, "identity_policies"), Some(json!([])));
        assert_eq!(
            extract_field(&resp, "token_meta_user"),
            Some(json!("alice"))
        );
    }

    // On a wrapped answer `token` means the wrapping token.
    #[test]
    fn field_from_wrap_info() {
        let resp = wrapped_envelope();

        assert_eq!(extract_field(&resp, "token"), Some(json!("hvs.wrap")));
        assert_eq!(
            extract_field(&resp, "wrapping_token"),
            Some(json!("hvs.wrap"))
        );
        assert_eq!(extract_field(&resp, "wrapping_token_ttl"), Some(json!(900)));
        assert_eq!(
            extract_field(&resp, "wrapped_accessor"),
            Some(json!("inner"))
        );
    }

    // Raw sys answers (no envelope) are looked up by top-level key.
    #[test]
    fn field_from_raw_object() {
        let resp = json!({"sealed": false, "t": 3});
        assert_eq!(extract_field(&resp, "sealed"), Some(json!(false)));
    }

    // A missing field is a local error with Vault's wording; strings print unquoted.
    #[test]
    fn render_field_and_missing_field() {
        let table = OutputOpts {
            format: Format::Table,
            field: Some("foo".into()),
        };
        let json_fmt = OutputOpts {
            format: Format::Json,
            field: Some("list".into()),
        };
        let missing = OutputOpts {
            format: Format::Table,
            field: Some("nope".into()),
        };

        assert_eq!(
            render_secret(&kv_envelope(), &table).unwrap().stdout,
            "bar\n"
        );
        assert_eq!(
            render_secret(&kv_envelope(), &json_fmt).unwrap().stdout,
            "[\n  \"a\",\n  \"b\"\n]\n"
        );
        let err = render_secret(&kv_envelope(), &missing).unwrap_err();
        assert_eq!(err.to_string(), "Field \"nope\" not present in secret");
        assert_eq!(err.exit_code(), 1);
        assert_eq!(render_field(&json!(["a"]), Format::Table), "[\"a\"]\n");
    }

    // A KV read prints refresh_interval then the data keys, sorted.
    #[test]
    fn table_for_data() {
        let opts = OutputOpts {
            format: Format::Table,
            field: None,
        };

        let out = render_secret(&kv_envelope(), &opts).unwrap().stdout;

        assert_eq!(
            out,
            "Key                 Value\n\
             ---                 -----\n\
             refresh_interval    768h\n\
             foo                 bar\n\
             list                [a b]\n\
             n                   3\n"
        );
    }

    // Login-style answers show the token rows Vault shows.
    #[test]
    fn table_for_auth() {
        let rows = secret_rows(&auth_envelope());
        let keys: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();

        assert_eq!(
            keys,
            [
                "token",
                "token_accessor",
                "token_duration",
                "token_renewable",
                "token_policies",
                "identity_policies",
                "policies",
                "token_meta_user"
            ]
        );
        assert_eq!(rows[2].1, "1h");
        assert_eq!(rows[4].1, r#"["default" "web"]"#);
    }

    // Wrapped answers show the wrapping rows, with Vault's trailing colons.
    #[test]
    fn table_for_wrap_info() {
        let rows = secret_rows(&wrapped_envelope());

        assert_eq!(
            rows[0],
            ("wrapping_token:".to_string(), "hvs.wrap".to_string())
        );
        assert_eq!(
            rows[2],
            ("wrapping_token_ttl:".to_string(), "15m".to_string())
        );
        assert_eq!(rows.last().unwrap().0, "wrapped_accessor:");
    }

    // A leased secret shows lease rows instead of refresh_interval.
    #[test]
    fn table_for_lease() {
        let resp = json!({"request_id": "r", "lease_id": "db/creds/x/abc", "renewable": true,
            "lease_duration": 3600, "data": {"user": "u"}});

        let rows = secret_rows(&resp);

        assert_eq!(
            rows[0],
            ("lease_id".to_string(), "db/creds/x/abc".to_string())
        );
        assert_eq!(rows[1], ("lease_duration".to_string(), "1h".to_string()));
        assert_eq!(rows[2], ("lease_renewable".to_string(), "true".to_string()));
    }

    // JSON output is the whole envelope, pretty-printed with two spaces.
    #[test]
    fn json_output_is_whole_envelope() {
        let opts = OutputOpts {
            format: Format::Json,
            field: None,
        };

        let out = render_secret(&json!({"data": {"a": 1}, "request_id": "r"}), &opts)
            .unwrap()
            .stdout;

        assert_eq!(
            out,
            "{\n  \"data\": {\n    \"a\": 1\n  },\n  \"request_id\": \"r\"\n}\n"
        );
    }

    // Warnings go to stderr so stdout stays parseable.
    #[test]
    fn warnings_go_to_stderr() {
        let resp = json!({"request_id": "r", "data": {"a": 1}, "warnings": ["careful"]});
        let opts = OutputOpts {
            format: Format::Table,
            field: None,
        };

        let rendered = render_secret(&resp, &opts).unwrap();

        assert!(rendered.stderr.contains("* careful"));
        assert!(!rendered.stdout.contains("careful"));
    }

    // VAULT_FORMAT applies unless -format overrides it; bad values are usage errors.
    #[test]
    fn format_resolution() {
        let parse = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            crate::args::parse(&args, &[OUTPUT_FLAGS]).unwrap()
        };
        let env_json = |key: &str| (key == "VAULT_FORMAT").then(|| "json".to_string());

        assert_eq!(
            OutputOpts::resolve(&env_json, &parse(&[])).unwrap().format,
            Format::Json
        );
        assert_eq!(
            OutputOpts::resolve(&env_json, &parse(&["-format=yaml"]))
                .unwrap()
                .format,
            Format::Yaml
        );
        assert_eq!(
            OutputOpts::resolve(&|_| None, &parse(&[])).unwrap().format,
            Format::Table
        );
        assert!(OutputOpts::resolve(&|_| None, &parse(&["-format=xml"])).is_err());
    }
}
