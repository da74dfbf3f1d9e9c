//! The sectioned layout of Vault's `kv` commands: `== Secret Path ==` over the full API path,
//! then `=== Data ===`-style headers sized to the table below them.
//!
//! Operators recognise these headers at a glance and some scripts split output on them, so the
//! width rule follows Vault's: the header spans the widest key plus the column gap and the
//! width of the word `Value`, with the title centred between runs of `=`.

use serde_json::{Map, Value};

use super::table::{cell_value, key_value_table, sorted};

/// Column gap plus `Value`: what a key-value table adds to its widest key.
const VALUE_COLUMN: usize = 4 + 5;

/// `title` centred in `=` signs so the line is about `width` wide (at least two signs a side;
/// an odd count gives the extra sign to both sides, as Vault does).
fn pad_equal_signs(title: &str, width: usize) -> String {
    let mut signs = width.saturating_sub(title.chars().count() + 2);
    if signs == 0 {
        signs = 4;
    }
    if !signs.is_multiple_of(2) {
        signs += 1;
    }
    let side = "=".repeat(signs / 2);
    format!("{side} {title} {side}")
}

/// The header over a key-value table of `map`.
pub fn header_for_map(title: &str, map: &Map<String, Value>) -> String {
    let widest = map.keys().map(|k| k.chars().count()).max().unwrap_or(0);
    format!("{}\n", pad_equal_signs(title, widest + VALUE_COLUMN))
}

/// The `== Secret Path ==` block: header, path, blank line.
pub fn path_header(title: &str, path: &str) -> String {
    format!(
        "{}\n{path}\n\n",
        pad_equal_signs(title, path.chars().count())
    )
}

/// A `Key`/`Value` table of a JSON object, keys sorted, durations humanised.
pub fn data_table(map: &Map<String, Value>) -> String {
    let rows: Vec<(String, String)> = sorted(map)
        .into_iter()
        .map(|(k, v)| (k.clone(), cell_value(k, v)))
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    key_value_table(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    // The header widths Vault users see for the common kv outputs.
    #[test]
    fn header_widths() {
        let metadata = object(json!({"created_time": "", "custom_metadata": null,
            "deletion_time": "", "destroyed": false, "version": 1}));
        let data = object(json!({"foo": "bar"}));

        assert_eq!(
            header_for_map("Metadata", &metadata),
            "======= Metadata =======\n"
        );
        assert_eq!(header_for_map("Data", &data), "=== Data ===\n");
        assert_eq!(
            path_header("Secret Path", "secret/data/creds"),
            "== Secret Path ==\nsecret/data/creds\n\n"
        );
        // Too narrow for any padding: two signs each side.
        assert_eq!(
            path_header("Secret Path", "a/data/b"),
            "== Secret Path ==\na/data/b\n\n"
        );
        // Odd padding rounds up on both sides.
        assert_eq!(pad_equal_signs("Data", 11), "=== Data ===");
    }

    // Data tables render values the way the rest of the CLI does, and nothing for no keys.
    #[test]
    fn data_tables() {
        let out = data_table(&object(json!({"b": [1, 2], "a": "", "ttl": 60})));

        assert_eq!(
            out,
            "Key    Value\n---    -----\na      n/a\nb      [1 2]\nttl    1m\n"
        );
        assert_eq!(data_table(&Map::new()), "");
    }
}
