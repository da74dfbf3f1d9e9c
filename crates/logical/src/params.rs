//! Loose parameter parsing with Vault's rules.
//!
//! Vault clients send the same parameter in many shapes: `ttl` as `3600`, `"3600"` or `"1h"`,
//! `policies` as `["a","b"]` or `"a,b"`, booleans as `true` or `"true"`. Handlers that parse
//! strictly break real clients (the CLI sends nearly everything as strings), so every handler
//! uses these parsers and reports a bad value the same way: a 400 naming the parameter.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::BackendError;

fn invalid(name: &str, expected: &str, got: &Value) -> BackendError {
    BackendError::InvalidRequest(format!(
        "invalid value for \"{name}\": expected {expected}, got {got}"
    ))
}

fn present<'a>(data: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    match data.get(name) {
        None | Some(Value::Null) => None,
        Some(v) => Some(v),
    }
}

/// Reads an integer given as a JSON number (integral) or a numeric string.
pub fn int_param(data: &Map<String, Value>, name: &str) -> Result<Option<i64>, BackendError> {
    let Some(v) = present(data, name) else {
        return Ok(None);
    };
    parse_int(v)
        .map(Some)
        .ok_or_else(|| invalid(name, "an integer", v))
}

fn parse_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

/// Reads a boolean given as a JSON bool, a Go `strconv.ParseBool` string or the numbers 0/1.
pub fn bool_param(data: &Map<String, Value>, name: &str) -> Result<Option<bool>, BackendError> {
    let Some(v) = present(data, name) else {
        return Ok(None);
    };
    let parsed = match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
            _ => None,
        },
        Value::Number(n) => match n.as_i64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        _ => None,
    };
    parsed
        .map(Some)
        .ok_or_else(|| invalid(name, "a boolean", v))
}

/// Reads a duration in whole seconds: integer seconds, a numeric string, or a Go duration
/// string such as `"1h30m"`, `"768h"`, `"90s"`, `"1.5h"`, with Vault's extra `d` (day) unit.
/// Fractions of a second are truncated. Negative durations are refused.
pub fn duration_param(data: &Map<String, Value>, name: &str) -> Result<Option<u64>, BackendError> {
    let Some(v) = present(data, name) else {
        return Ok(None);
    };
    let parsed = match v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .filter(|secs| *secs <= MAX_DURATION_SECS),
        Value::String(s) => parse_duration(s),
        _ => None,
    };
    parsed.map(Some).ok_or_else(|| {
        invalid(
            name,
            "a non-negative duration of at most 100 years (seconds or a string such as \"1h30m\")",
            v,
        )
    })
}

pub use strongroom_api::duration::{MAX_DURATION_SECS, parse_duration};

/// Reads a list of strings given as a JSON array or a comma-separated string. Entries are
/// trimmed and empty entries dropped; numbers and booleans in an array are stringified.
pub fn string_list_param(
    data: &Map<String, Value>,
    name: &str,
) -> Result<Option<Vec<String>>, BackendError> {
    let Some(v) = present(data, name) else {
        return Ok(None);
    };
    let expected = "a list of strings or a comma-separated string";
    let mut out = Vec::new();
    match v {
        Value::String(s) => out.extend(s.split(',').map(str::trim).map(str::to_owned)),
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::String(s) => out.push(s.trim().to_owned()),
                    Value::Number(n) => out.push(n.to_string()),
                    Value::Bool(b) => out.push(b.to_string()),
                    _ => return Err(invalid(name, expected, v)),
                }
            }
        }
        _ => return Err(invalid(name, expected, v)),
    }
    out.retain(|s| !s.is_empty());
    Ok(Some(out))
}

/// Reads a string-to-string map given as a JSON object (string, number or bool values) or as
/// a list of `key=value` strings (Vault's `TypeKVPairs`).
pub fn string_map_param(
    data: &Map<String, Value>,
    name: &str,
) -> Result<Option<BTreeMap<String, String>>, BackendError> {
    let Some(v) = present(data, name) else {
        return Ok(None);
    };
    let expected = "a map of strings or a list of \"key=value\" strings";
    let mut out = BTreeMap::new();
    match v {
        Value::Object(m) => {
            for (k, val) in m {
                let s = match val {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => return Err(invalid(name, expected, v)),
                };
                out.insert(k.clone(), s);
            }
        }
        Value::Array(items) => {
            for item in items {
                let Some((k, val)) = item.as_str().and_then(|s| s.split_once('=')) else {
                    return Err(invalid(name, expected, v));
                };
                out.insert(k.trim().to_owned(), val.trim().to_owned());
            }
        }
        _ => return Err(invalid(name, expected, v)),
    }
    Ok(Some(out))
}

/// Reads a string parameter.
pub fn str_param<'a>(
    data: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, BackendError> {
    match data.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(BackendError::InvalidRequest(format!(
            "invalid value for \"{name}\": expected a string, got {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn durations_accept_every_vault_form() {
        // Why: the CLI sends "1h", SDKs send 3600 or "3600"; all must mean the same TTL.
        let d = obj(
            json!({"a": 3600, "b": "3600", "c": "1h", "d": "1h30m", "e": "10d",
            "f": "1.5h", "g": "1500ms", "h": "", "i": 90.0}),
        );
        let get = |k| duration_param(&d, k).unwrap();
        assert_eq!(get("a"), Some(3600));
        assert_eq!(get("b"), Some(3600));
        assert_eq!(get("c"), Some(3600));
        assert_eq!(get("d"), Some(5400));
        assert_eq!(get("e"), Some(864_000));
        assert_eq!(get("f"), Some(5400));
        assert_eq!(get("g"), Some(1));
        assert_eq!(get("h"), Some(0));
        assert_eq!(get("i"), Some(90));
        assert_eq!(get("missing"), None);
    }

    #[test]
    fn bad_durations_name_the_parameter() {
        // Why: a typo in a TTL must be refused with a 400 that says which field is wrong.
        for bad in [
            json!("1x"),
            json!("-5s"),
            json!("h"),
            json!(-3),
            json!([1]),
            json!("5"),
        ] {
            let d = obj(json!({ "ttl": bad.clone() }));
            let r = duration_param(&d, "ttl");
            if bad == json!("5") {
                assert_eq!(r.unwrap(), Some(5));
                continue;
            }
            match r {
                Err(BackendError::InvalidRequest(m)) => assert!(m.contains("\"ttl\""), "{m}"),
                other => panic!("{bad}: expected InvalidRequest, got {other:?}"),
            }
        }
    }

    #[test]
    fn ints_and_bools_accept_strings() {
        // Why: form-encoded and CLI requests carry numbers and booleans as strings.
        let d = obj(
            json!({"n": "7", "m": 8, "f": 9.0, "b": "true", "c": false, "z": 0,
            "bad": "seven", "badb": "yes"}),
        );
        assert_eq!(int_param(&d, "n").unwrap(), Some(7));
        assert_eq!(int_param(&d, "m").unwrap(), Some(8));
        assert_eq!(int_param(&d, "f").unwrap(), Some(9));
        assert_eq!(bool_param(&d, "b").unwrap(), Some(true));
        assert_eq!(bool_param(&d, "c").unwrap(), Some(false));
        assert_eq!(bool_param(&d, "z").unwrap(), Some(false));
        assert!(int_param(&d, "bad").is_err());
        assert!(bool_param(&d, "badb").is_err());
        assert_eq!(bool_param(&d, "none").unwrap(), None);
    }

    #[test]
    fn string_lists_split_commas_and_drop_blanks() {
        // Why: `policies=a,b` and `["a","b"]` must grant the same policies.
        let d = obj(json!({"s": "a, b,,c", "a": ["x", " y ", ""], "bad": {"k": 1}}));
        assert_eq!(
            string_list_param(&d, "s").unwrap().unwrap(),
            ["a", "b", "c"]
        );
        assert_eq!(string_list_param(&d, "a").unwrap().unwrap(), ["x", "y"]);
        assert!(string_list_param(&d, "bad").is_err());
    }

    #[test]
    fn string_maps_accept_objects_and_pairs() {
        // Why: token `meta` arrives as an object from the API and as k=v pairs from the CLI.
        let d = obj(json!({"o": {"a": "1", "b": 2}, "p": ["x=1", "y=2"], "bad": ["noeq"]}));
        let o = string_map_param(&d, "o").unwrap().unwrap();
        assert_eq!(o.get("b").map(String::as_str), Some("2"));
        let p = string_map_param(&d, "p").unwrap().unwrap();
        assert_eq!(p.get("y").map(String::as_str), Some("2"));
        assert!(string_map_param(&d, "bad").is_err());
    }
}
