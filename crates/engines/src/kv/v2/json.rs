//! JSON transformations KV v2 applies to secrets: merge patch and the subkeys outline.

use serde_json::{Map, Value};

/// Applies an RFC 7396 JSON merge patch: objects merge recursively, `null` removes a key,
/// anything else replaces.
pub(crate) fn merge_patch(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (k, v) in patch {
        match v {
            Value::Null => {
                target.remove(k);
            }
            Value::Object(p) => {
                let entry = target
                    .entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                if let Value::Object(t) = entry {
                    merge_patch(t, p);
                }
            }
            other => {
                target.insert(k.clone(), other.clone());
            }
        }
    }
}

/// The structure of `data` with every leaf replaced by `null`. `depth` 0 is unlimited;
/// otherwise objects deeper than `depth` levels are shown as `null`.
pub(crate) fn subkeys(data: &Map<String, Value>, depth: u64) -> Map<String, Value> {
    data.iter()
        .map(|(k, v)| {
            let outline = match v {
                Value::Object(inner) if depth != 1 => {
                    Value::Object(subkeys(inner, depth.saturating_sub(1)))
                }
                _ => Value::Null,
            };
            (k.clone(), outline)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn merge_patch_follows_rfc_7396() {
        // Why: `kv patch` must change only the named fields and delete those set to null.
        let mut t = obj(json!({"a": 1, "b": {"c": 2, "d": 3}, "e": "x"}));
        merge_patch(&mut t, &obj(json!({"a": null, "b": {"c": 9}, "f": [1]})));
        assert_eq!(
            Value::Object(t),
            json!({"b": {"c": 9, "d": 3}, "e": "x", "f": [1]})
        );
    }

    #[test]
    fn subkeys_hide_values_and_respect_depth() {
        // Why: subkeys must reveal structure without any secret value.
        let d = obj(json!({"a": 1, "b": {"c": {"d": "secret"}}}));
        assert_eq!(
            Value::Object(subkeys(&d, 0)),
            json!({"a": null, "b": {"c": {"d": null}}})
        );
        assert_eq!(Value::Object(subkeys(&d, 1)), json!({"a": null, "b": null}));
        assert_eq!(
            Value::Object(subkeys(&d, 2)),
            json!({"a": null, "b": {"c": null}})
        );
    }
}
