//! Vault's human-readable table output.
//!
//! People read these tables, but scripts grep them too (`awk '/Unseal Key/'`, `grep Sealed`), so
//! the row names, the `Key`/`Value` header with its dashed underline, the four-space column gap
//! and Go's `%v` rendering of values follow the Vault CLI.

use serde_json::{Map, Value};

/// Gap between columns, as in Vault's columnized output.
const GAP: &str = "    ";

/// What an empty cell shows, as in Vault's tables.
const EMPTY_CELL: &str = "n/a";

/// Renders rows as a two-column table with a `Key`/`Value` header.
pub fn key_value_table(rows: &[(String, String)]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(k, v)| vec![k.clone(), v.clone()])
        .collect();
    table(&["Key", "Value"], &rows)
}

/// Renders a table with a header row, its dashed underline, and `n/a` in empty cells.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut all = vec![
        header.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
        header
            .iter()
            .map(|h| "-".repeat(h.chars().count()))
            .collect(),
    ];
    all.extend(rows.iter().map(|row| {
        row.iter()
            .map(|cell| {
                if cell.is_empty() {
                    EMPTY_CELL.to_string()
                } else {
                    cell.clone()
                }
            })
            .collect()
    }));
    columns(&all)
}

/// Whether Vault prints a data key's integer value as a duration (`ttl`, `*_ttl`, `period`...).
pub fn looks_like_duration(key: &str) -> bool {
    key == "period"
        || key.ends_with("_period")
        || key == "ttl"
        || key.ends_with("_ttl")
        || key.ends_with("_duration")
        || key == "refresh_interval"
}

/// A data value as a table cell: `%v`, except that integer TTL-like keys become durations.
pub fn cell_value(key: &str, value: &Value) -> String {
    if looks_like_duration(key) {
        let seconds = match value {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse::<i64>().ok(),
            _ => None,
        };
        if let Some(seconds) = seconds {
            return human_duration(seconds);
        }
    }
    go_value(value)
}

/// Seconds as Go's `time.Duration.String()` writes them (`1h0m0s`, `30m0s`, `45s`, `0s`):
/// the form Vault's CLI sends TTLs in.
pub fn go_duration(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, (seconds % 3600) / 60, seconds % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
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

    // Empty cells show Vault's `n/a` and no line keeps trailing spaces.
    #[test]
    fn empty_cells_are_na() {
        let table = key_value_table(&rows(&[("empty", "")]));

        assert_eq!(table, "Key      Value\n---      -----\nempty    n/a\n");
        assert!(table.lines().all(|line| !line.ends_with(' ')));
    }

    // Multi-column tables underline each header with dashes of its own width.
    #[test]
    fn header_underline() {
        let out = table(
            &["Path", "Type"],
            &[
                vec!["secret/".into(), "kv".into()],
                vec!["x/".into(), "".into()],
            ],
        );

        assert_eq!(
            out,
            "Path       Type\n----       ----\nsecret/    kv\nx/         n/a\n"
        );
    }

    // TTL-like keys print as durations, other numbers as they are; Go's duration strings.
    #[test]
    fn duration_cells() {
        assert_eq!(cell_value("ttl", &json!(2764800)), "768h");
        assert_eq!(cell_value("creation_ttl", &json!(60)), "1m");
        assert_eq!(cell_value("lease_duration", &json!(0)), "0s");
        assert_eq!(cell_value("period", &json!("30")), "30s");
        assert_eq!(cell_value("num_uses", &json!(3)), "3");
        assert_eq!(cell_value("ttl", &json!("soon")), "soon");
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(45), "45s");
        assert_eq!(go_duration(1800), "30m0s");
        assert_eq!(go_duration(3600), "1h0m0s");
        assert_eq!(go_duration(5430), "1h30m30s");
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
