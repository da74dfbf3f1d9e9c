//! Vault's human-readable table output.
//!
//! People read these tables, but scripts grep them too (`awk '/Unseal Key/'`, `grep Sealed`), so
//! the row names, the `Key`/`Value` header with its dashed underline, the four-space column gap
//! and Go's `%v` rendering of values follow the Vault CLI.

use serde_json::{Map, Value};

/// Gap between columns, as in Vault's columnized output.
const GAP: &str = "    ";

/// Renders rows as a two-column table with a `Key`/`Value` header.
pub fn key_value_table(rows: &[(String, String)]) -> String {
    let mut all = vec![
        vec!["Key".to_string(), "Value".to_string()],
        vec!["---".to_string(), "-----".to_string()],
    ];
    all.extend(rows.iter().map(|(k, v)| vec![k.clone(), v.clone()]));
    columns(&all)
}

/// Renders rows of any width, aligning every column but the last.
pub fn columns(rows: &[Vec<String>]) -> String {
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; width];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.push_str(&" ".repeat(pad));
                line.push_str(GAP);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Go's `%v` rendering of a JSON value: strings bare, arrays `[a b]`, maps `map[k:v]`.
pub fn go_value(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(go_value).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = sorted(map)
                .into_iter()
                .map(|(k, v)| format!("{k}:{}", go_value(v)))
                .collect();
            format!("map[{}]", inner.join(" "))
        }
    }
}

/// Go's `%q` rendering of a string list, used for policies: `["default" "web"]`.
pub fn quoted_list(value: Option<&Value>) -> String {
    let items: Vec<String> = value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|item| match item {
                    Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    format!("[{}]", items.join(" "))
}

/// A number of seconds as Go prints a `time.Duration`, minus trailing zero units: `768h`,
/// `1h30m`, `1m30s`, `45s`, `0s`.
pub fn human_duration(seconds: i64) -> String {
    if seconds == 0 {
        return "0s".to_string();
    }
    let sign = if seconds < 0 { "-" } else { "" };
    let total = seconds.unsigned_abs();
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    let mut out = sign.to_string();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 || (h > 0 && s > 0) {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// Entries of a JSON object sorted by key, whatever map ordering serde_json was built with.
pub fn sorted(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    // The layout scripts depend on: header, dashes, values aligned four spaces after the longest key.
    #[test]
    fn key_value_layout() {
        let table = key_value_table(&rows(&[("foo", "bar"), ("refresh_interval", "768h")]));

        assert_eq!(
            table,
            "Key                 Value\n\
             ---                 -----\n\
             foo                 bar\n\
             refresh_interval    768h\n"
        );
    }

    // Empty trailing cells do not leave trailing spaces.
    #[test]
    fn no_trailing_whitespace() {
        let table = key_value_table(&rows(&[("empty", "")]));
        assert!(table.lines().all(|line| !line.ends_with(' ')));
    }

    // Values print like Go's %v, which is what Vault users see for non-string data.
    #[test]
    fn go_rendering() {
        assert_eq!(go_value(&json!("s")), "s");
        assert_eq!(go_value(&json!(3)), "3");
        assert_eq!(go_value(&json!(null)), "<nil>");
        assert_eq!(go_value(&json!(["a", 1, true])), "[a 1 true]");
        assert_eq!(go_value(&json!({"b": 2, "a": [1]})), "map[a:[1] b:2]");
        assert_eq!(
            quoted_list(Some(&json!(["default", "web"]))),
            r#"["default" "web"]"#
        );
        assert_eq!(quoted_list(None), "[]");
    }

    // Durations print as Vault prints TTLs (768h, not 2764800).
    #[test]
    fn durations() {
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(90), "1m30s");
        assert_eq!(human_duration(3600), "1h");
        assert_eq!(human_duration(3660), "1h1m");
        assert_eq!(human_duration(3601), "1h0m1s");
        assert_eq!(human_duration(2_764_800), "768h");
    }
}
