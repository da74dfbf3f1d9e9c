//! Turning `key=value` command arguments into a JSON request body.
//!
//! Vault's argument grammar is how operators feed secrets to `write` without putting them on
//! the command line: `key=@file` and `key=-` read values from a file or stdin, and a bare
//! `@file.json` or `-` supplies a whole JSON object. Values from `k=v` stay strings even when
//! they look like numbers; the server converts types, exactly as with Vault.

use std::io::Read;

use serde_json::{Map, Value};

use crate::error::CliError;

/// Parses data arguments. `stdin` is read at most once; a second use is an error.
pub fn parse_data(args: &[String], stdin: &mut dyn Read) -> Result<Map<String, Value>, CliError> {
    let mut data = Map::new();
    let mut stdin_used = false;
    let mut read_stdin = |what: &str| -> Result<String, CliError> {
        if stdin_used {
            return Err(CliError::Usage(format!(
                "stdin can only be read once, but {what} asks for it again"
            )));
        }
        stdin_used = true;
        let mut text = String::new();
        stdin
            .read_to_string(&mut text)
            .map_err(|err| CliError::Local(format!("Error reading from stdin: {err}")))?;
        Ok(text)
    };

    for arg in args {
        if arg == "-" {
            let text = read_stdin("'-'")?;
            merge_object(&mut data, &text, "stdin")?;
        } else if let Some(file) = arg.strip_prefix('@').filter(|_| !arg.contains('=')) {
            let text = read_file(file)?;
            merge_object(&mut data, &text, file)?;
        } else if let Some((key, raw)) = arg.split_once('=') {
            if key.is_empty() {
                return Err(CliError::Usage(format!(
                    "Invalid key/value pair {arg:?}: the key is empty"
                )));
            }
            let value = if raw == "-" {
                read_stdin(&format!("{key}=-"))?
            } else if let Some(file) = raw.strip_prefix('@') {
                read_file(file)?
            } else {
                raw.to_string()
            };
            insert(&mut data, key, Value::String(value));
        } else {
            return Err(CliError::Usage(format!(
                "Invalid key/value pair {arg:?}: format must be key=value"
            )));
        }
    }
    Ok(data)
}

/// Repeating a key collects its values into a list (`policies=a policies=b`).
fn insert(data: &mut Map<String, Value>, key: &str, value: Value) {
    match data.get_mut(key) {
        Some(Value::Array(items)) => items.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
        None => {
            data.insert(key.to_string(), value);
        }
    }
}

fn merge_object(data: &mut Map<String, Value>, text: &str, source: &str) -> Result<(), CliError> {
    let parsed: Value = serde_json::from_str(text)
        .map_err(|err| CliError::Usage(format!("Error parsing JSON from {source}: {err}")))?;
    let Value::Object(object) = parsed else {
        return Err(CliError::Usage(format!(
            "The JSON from {source} must be an object"
        )));
    };
    data.extend(object);
    Ok(())
}

fn read_file(path: &str) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|err| CliError::Local(format!("Error reading file {path}: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    // Values stay strings even when they look like numbers or booleans, as Vault sends them.
    #[test]
    fn key_values_are_strings() {
        let data = parse_data(&args(&["a=1", "b=true", "c=x=y", "d="]), &mut &b""[..]).unwrap();

        assert_eq!(
            Value::Object(data),
            json!({"a": "1", "b": "true", "c": "x=y", "d": ""})
        );
    }

    // `key=@file` reads the value from a file, verbatim.
    #[test]
    fn value_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cert.pem");
        std::fs::write(&path, "line1\nline2\n").unwrap();
        let arg = format!("cert=@{}", path.display());

        let data = parse_data(&[arg], &mut &b""[..]).unwrap();

        assert_eq!(data["cert"], json!("line1\nline2\n"));
    }

    // `key=-` reads the value from stdin.
    #[test]
    fn value_from_stdin() {
        let data = parse_data(&args(&["password=-", "user=bob"]), &mut &b"s3cret"[..]).unwrap();

        assert_eq!(
            Value::Object(data),
            json!({"password": "s3cret", "user": "bob"})
        );
    }

    // A bare `@file.json` and a bare `-` supply whole JSON objects, types preserved.
    #[test]
    fn objects_from_file_and_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.json");
        std::fs::write(&path, r#"{"ttl": 60, "nested": {"a": true}}"#).unwrap();
        let file_arg = format!("@{}", path.display());

        let from_file = parse_data(&[file_arg], &mut &b""[..]).unwrap();
        let from_stdin = parse_data(&args(&["-", "extra=x"]), &mut &br#"{"k": [1]}"#[..]).unwrap();

        assert_eq!(
            Value::Object(from_file),
            json!({"ttl": 60, "nested": {"a": true}})
        );
        assert_eq!(Value::Object(from_stdin), json!({"k": [1], "extra": "x"}));
    }

    // An argument beginning with `@` that contains `=` is a key, not a file.
    #[test]
    fn at_key_with_equals_is_a_key() {
        let data = parse_data(&args(&["@key=v"]), &mut &b""[..]).unwrap();
        assert_eq!(data["@key"], json!("v"));
    }

    // Repeated keys become lists.
    #[test]
    fn repeated_keys_collect() {
        let data = parse_data(&args(&["p=a", "p=b", "p=c"]), &mut &b""[..]).unwrap();
        assert_eq!(data["p"], json!(["a", "b", "c"]));
    }

    // Malformed input is rejected with a usage error instead of sending something surprising.
    #[test]
    fn errors() {
        let bad_pair = parse_data(&args(&["novalue"]), &mut &b""[..]).unwrap_err();
        let empty_key = parse_data(&args(&["=v"]), &mut &b""[..]).unwrap_err();
        let twice = parse_data(&args(&["a=-", "b=-"]), &mut &b"x"[..]).unwrap_err();
        let not_object = parse_data(&args(&["-"]), &mut &b"[1]"[..]).unwrap_err();
        let missing = parse_data(&args(&["@/nonexistent/x.json"]), &mut &b""[..]).unwrap_err();

        assert!(bad_pair.to_string().contains("key=value"));
        assert_eq!(empty_key.exit_code(), 1);
        assert!(twice.to_string().contains("once"));
        assert!(not_object.to_string().contains("object"));
        assert_eq!(missing.exit_code(), 1);
    }
}
