//! A minimal YAML emitter for JSON values (`-format=yaml`).
//!
//! Only emitting is needed and the input is always JSON-shaped, so a few dozen lines replace a
//! YAML dependency. Strings that a YAML reader could take for another type (numbers, booleans,
//! dates, anything with indicator characters) are written double-quoted with JSON escapes,
//! which YAML accepts verbatim.

use serde_json::Value;

/// Renders `value` as a YAML document (block style, sorted keys, trailing newline).
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => emit_map(&mut out, value, 0),
        Value::Array(items) if !items.is_empty() => emit_seq(&mut out, items, 0),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn emit_map(out: &mut String, map: &Value, indent: usize) {
    let Some(map) = map.as_object() else {
        return;
    };
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        let Some(value) = map.get(key) else {
            continue;
        };
        out.push_str(&" ".repeat(indent));
        out.push_str(&string_scalar(key));
        out.push(':');
        match value {
            Value::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                emit_map(out, value, indent + 2);
            }
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                emit_seq(out, items, indent);
            }
            other => {
                out.push(' ');
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

fn emit_seq(out: &mut String, items: &[Value], indent: usize) {
    let pad = " ".repeat(indent);
    for item in items {
        match item {
            Value::Object(inner) if !inner.is_empty() => {
                let mut nested = String::new();
                emit_map(&mut nested, item, indent + 2);
                push_as_item(out, &pad, &nested, indent + 2);
            }
            Value::Array(inner) if !inner.is_empty() => {
                let mut nested = String::new();
                emit_seq(&mut nested, inner, indent + 2);
                push_as_item(out, &pad, &nested, indent + 2);
            }
            other => {
                out.push_str(&pad);
                out.push_str("- ");
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

/// Turns a block rendered at `nested_indent` into a sequence item: the first line's indentation
/// becomes `pad` + `- `.
fn push_as_item(out: &mut String, pad: &str, nested: &str, nested_indent: usize) {
    out.push_str(pad);
    out.push_str("- ");
    out.push_str(nested.get(nested_indent..).unwrap_or(nested));
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string_scalar(s),
        Value::Array(_) => "[]".to_string(),
        Value::Object(_) => "{}".to_string(),
    }
}

fn string_scalar(s: &str) -> String {
    if is_plain_safe(s) {
        s.to_string()
    } else {
        // JSON string escapes are valid YAML double-quoted escapes.
        serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
    }
}

/// Whether `s` can be written unquoted and still read back as the same string.
fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    const RESERVED: &[&str] = &[
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~",
    ];
    if RESERVED.contains(&s.to_ascii_lowercase().as_str()) {
        return false;
    }
    if first.is_ascii_digit() || "-+.?:,[]{}#&*!|>'\"%@` ".contains(first) {
        return false;
    }
    if s.ends_with(' ') || s.ends_with(':') {
        return false;
    }
    if s.contains(": ") || s.contains(" #") {
        return false;
    }
    !s.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Nested maps, sequences of scalars and of maps must come out as block YAML a parser reads back.
    #[test]
    fn nested_document() {
        let value = json!({
            "b": {"x": 1, "z": [true, null]},
            "a": "plain",
            "list": [{"k": "v", "k2": 2}, "s"],
            "empty_map": {},
            "empty_list": []
        });

        let yaml = to_yaml(&value);

        assert_eq!(
            yaml,
            "a: plain\n\
             b:\n  x: 1\n  z:\n  - true\n  - null\n\
             empty_list: []\n\
             empty_map: {}\n\
             list:\n- k: v\n  k2: 2\n- s\n"
        );
    }

    // Strings that YAML would read as another type are quoted, so values round-trip as strings.
    #[test]
    fn ambiguous_strings_are_quoted() {
        for s in [
            "",
            "true",
            "No",
            "null",
            "123",
            "1.5",
            "-x",
            "a: b",
            "x #y",
            "line\nbreak",
            " lead",
            "2025-01-01",
        ] {
            let yaml = to_yaml(&json!(s));
            assert!(yaml.starts_with('"'), "{s:?} -> {yaml}");
        }
        assert_eq!(to_yaml(&json!("hvs.abc/def")), "hvs.abc/def\n");
        assert_eq!(to_yaml(&json!("line\nbreak")), "\"line\\nbreak\"\n");
    }

    // Nested sequences use the compact `- - x` form.
    #[test]
    fn nested_sequences() {
        assert_eq!(to_yaml(&json!([["a", "b"], "c"])), "- - a\n  - b\n- c\n");
    }
}
