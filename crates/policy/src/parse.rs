//! Turns policy text (HCL or JSON) into typed path rules.
//!
//! Operators write policies by hand, so a mistake must be refused with the line where it was
//! made, and nothing half-understood may be stored: every key and capability is validated
//! here, before the text reaches storage. hcl-rs parses HCL2, where repeated `path "x" {}`
//! blocks are legal; we walk the syntax tree (with byte spans, for line numbers) instead of
//! deserializing through serde, which would fold repeated blocks into arrays.

use std::collections::BTreeMap;
use std::time::Duration;

use hcl::edit::Span;
use serde_json::{Map, Value};

use crate::caps::{CAP_NAMES, CREATE, Caps, DELETE, DENY, LIST, READ, SUDO, UPDATE};
use crate::error::PolicyError;

/// Keys a `path` block may carry. `mfa_methods` and `control_group` are Enterprise features:
/// accepted so Vault policies load, but they grant nothing.
const PATH_KEYS: &[&str] = &[
    "capabilities",
    "policy",
    "required_parameters",
    "allowed_parameters",
    "denied_parameters",
    "min_wrapping_ttl",
    "max_wrapping_ttl",
    "description",
    "comment",
    "subscribe_event_types",
    "mfa_methods",
    "control_group",
];

/// The rules of one `path` block (or JSON `path` entry), validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathRule {
    /// The pattern as written, without a leading `/`.
    pub pattern: String,
    /// 1-based line of the block (HCL) or of the pattern's first mention (JSON).
    pub line: Option<usize>,
    pub caps: Caps,
    /// Lower-cased request keys that must be present.
    pub required: Vec<String>,
    /// Lower-cased key -> allowed values (`[]` = any value). Empty map = no constraint.
    pub allowed: BTreeMap<String, Vec<Value>>,
    /// Lower-cased key -> denied values (`[]` = the key itself is denied).
    pub denied: BTreeMap<String, Vec<Value>>,
    pub min_wrapping_ttl: Option<Duration>,
    pub max_wrapping_ttl: Option<Duration>,
}

/// A parsed policy: its rules in document order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedPolicy {
    pub paths: Vec<PathRule>,
}

/// Parses HCL or JSON policy text. JSON is recognised by a leading `{`.
pub fn parse_policy(text: &str) -> Result<ParsedPolicy, PolicyError> {
    if text.trim_start().starts_with('{') {
        parse_json(text)
    } else {
        parse_hcl(text)
    }
}

/// The 1-based line of byte offset `at` in `text`.
fn line_at(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The line where `"pattern"` first appears, to point JSON errors at their entry.
fn line_of_quoted(text: &str, pattern: &str) -> Option<usize> {
    let quoted = serde_json::to_string(pattern).ok()?;
    text.find(&quoted).map(|at| line_at(text, at))
}

fn parse_hcl(text: &str) -> Result<ParsedPolicy, PolicyError> {
    let body = hcl::edit::parser::parse_body(text).map_err(|e| {
        let loc = e.location();
        PolicyError::syntax(loc.line(), loc.column(), e.message())
    })?;
    let mut policy = ParsedPolicy::default();
    for structure in body.iter() {
        let line = structure.span().map(|s| line_at(text, s.start));
        match structure {
            hcl::edit::structure::Structure::Attribute(attr) => match attr.key.as_str() {
                // A policy may name itself; the name in the URL wins, as in Vault.
                "name" => {}
                other => {
                    return Err(PolicyError::at(
                        line,
                        format!("invalid key \"{other}\" (expected path blocks)"),
                    ));
                }
            },
            hcl::edit::structure::Structure::Block(block) => {
                if block.ident.as_str() != "path" {
                    return Err(PolicyError::at(
                        line,
                        format!(
                            "invalid block \"{}\" (expected path blocks)",
                            block.ident.as_str()
                        ),
                    ));
                }
                let [label] = block.labels.as_slice() else {
                    return Err(PolicyError::at(
                        line,
                        "a path block needs exactly one label: path \"<pattern>\" { ... }",
                    ));
                };
                let mut fields = Map::new();
                for inner in block.body.iter() {
                    let inner_line = inner.span().map(|s| line_at(text, s.start));
                    match inner {
                        hcl::edit::structure::Structure::Attribute(attr) => {
                            let expr = hcl::Expression::from(attr.value.clone());
                            let value = expr_to_json(&expr).map_err(|m| {
                                PolicyError::at(
                                    inner_line,
                                    format!("path \"{}\": {}: {m}", label.as_str(), attr.key),
                                )
                            })?;
                            fields.insert(attr.key.as_str().to_owned(), value);
                        }
                        hcl::edit::structure::Structure::Block(b) => {
                            return Err(PolicyError::at(
                                inner_line,
                                format!(
                                    "path \"{}\": unexpected block \"{}\"",
                                    label.as_str(),
                                    b.ident.as_str()
                                ),
                            ));
                        }
                    }
                }
                let mut rule =
                    path_rule(label.as_str(), &fields).map_err(|m| PolicyError::at(line, m))?;
                rule.line = line;
                policy.paths.push(rule);
            }
        }
    }
    Ok(policy)
}

/// Converts a literal HCL expression to JSON; anything computed (variables, templates,
/// function calls) is refused, since a policy has no evaluation context.
fn expr_to_json(expr: &hcl::Expression) -> Result<Value, String> {
    Ok(match expr {
        hcl::Expression::Null => Value::Null,
        hcl::Expression::Bool(b) => Value::Bool(*b),
        hcl::Expression::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| "number out of range".to_owned())?
            }
        }
        hcl::Expression::String(s) => Value::String(s.clone()),
        hcl::Expression::Array(items) => Value::Array(
            items
                .iter()
                .map(expr_to_json)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        hcl::Expression::Object(obj) => {
            let mut map = Map::new();
            for (k, v) in obj {
                let key = match k {
                    hcl::ObjectKey::Identifier(id) => id.as_str().to_owned(),
                    hcl::ObjectKey::Expression(hcl::Expression::String(s)) => s.clone(),
                    _ => return Err("object keys must be names or strings".into()),
                };
                map.insert(key, expr_to_json(v)?);
            }
            Value::Object(map)
        }
        hcl::Expression::Parenthesis(inner) => expr_to_json(inner)?,
        _ => return Err("only literal values are allowed (no variables or templates)".into()),
    })
}

fn parse_json(text: &str) -> Result<ParsedPolicy, PolicyError> {
    let doc: Value = serde_json::from_str(text).map_err(|e| {
        // serde_json appends "at line L column C"; we report the location ourselves.
        let text = e.to_string();
        let message = text.split(" at line ").next().unwrap_or(&text).to_owned();
        PolicyError::syntax(e.line(), e.column(), message)
    })?;
    let Value::Object(top) = doc else {
        return Err(PolicyError::at(Some(1), "a JSON policy must be an object"));
    };
    let mut policy = ParsedPolicy::default();
    for (key, value) in &top {
        match key.as_str() {
            "name" => {}
            "path" => {
                // HCL1's JSON form allows the path map itself to be a list of maps.
                let maps: Vec<&Value> = match value {
                    Value::Array(items) => items.iter().collect(),
                    other => vec![other],
                };
                for map in maps {
                    let Value::Object(entries) = map else {
                        return Err(PolicyError::at(
                            None,
                            "\"path\" must map patterns to rule objects",
                        ));
                    };
                    for (pattern, rules) in entries {
                        let line = line_of_quoted(text, pattern);
                        let bodies: Vec<&Value> = match rules {
                            Value::Array(items) => items.iter().collect(),
                            other => vec![other],
                        };
                        for body in bodies {
                            let Value::Object(fields) = body else {
                                return Err(PolicyError::at(
                                    line,
                                    format!("path \"{pattern}\": rules must be an object"),
                                ));
                            };
                            let mut rule =
                                path_rule(pattern, fields).map_err(|m| PolicyError::at(line, m))?;
                            rule.line = line;
                            policy.paths.push(rule);
                        }
                    }
                }
            }
            other => {
                let line = line_of_quoted(text, other);
                return Err(PolicyError::at(
                    line,
                    format!("invalid key \"{other}\" (expected \"path\")"),
                ));
            }
        }
    }
    Ok(policy)
}

/// Validates one path entry's fields (shared by HCL and JSON).
fn path_rule(pattern: &str, fields: &Map<String, Value>) -> Result<PathRule, String> {
    let pat = pattern.strip_prefix('/').unwrap_or(pattern);
    let fail = |msg: String| format!("path \"{pattern}\": {msg}");
    if pat.contains("+*") {
        return Err(fail("invalid use of wildcards ('+*' is forbidden)".into()));
    }
    if pat.find('*').is_some_and(|i| i + 1 != pat.len()) {
        return Err(fail(
            "the '*' glob is only allowed as the last character".into(),
        ));
    }
    let mut rule = PathRule {
        pattern: pat.to_owned(),
        ..PathRule::default()
    };
    for (key, value) in fields {
        match key.as_str() {
            "capabilities" => {
                for cap in string_list(value).map_err(|m| fail(format!("capabilities: {m}")))? {
                    let bit = CAP_NAMES
                        .iter()
                        .find(|(n, _)| *n == cap)
                        .map(|(_, b)| *b)
                        .ok_or_else(|| fail(format!("invalid capability \"{cap}\"")))?;
                    rule.caps |= bit;
                }
            }
            "policy" => {
                let Value::String(s) = value else {
                    return Err(fail("policy must be a string".into()));
                };
                rule.caps |= match s.as_str() {
                    "deny" => DENY,
                    "read" => READ | LIST,
                    "write" => CREATE | READ | UPDATE | DELETE | LIST,
                    "sudo" => CREATE | READ | UPDATE | DELETE | LIST | SUDO,
                    other => {
                        return Err(fail(format!(
                            "invalid policy \"{other}\" (expected deny, read, write or sudo)"
                        )));
                    }
                };
            }
            "required_parameters" => {
                rule.required = string_list(value)
                    .map_err(|m| fail(format!("required_parameters: {m}")))?
                    .into_iter()
                    .map(|s| s.to_lowercase())
                    .collect();
            }
            "allowed_parameters" => {
                rule.allowed =
                    parameter_map(value).map_err(|m| fail(format!("allowed_parameters: {m}")))?;
            }
            "denied_parameters" => {
                rule.denied =
                    parameter_map(value).map_err(|m| fail(format!("denied_parameters: {m}")))?;
            }
            "min_wrapping_ttl" => {
                rule.min_wrapping_ttl =
                    duration(value).map_err(|m| fail(format!("min_wrapping_ttl: {m}")))?;
            }
            "max_wrapping_ttl" => {
                rule.max_wrapping_ttl =
                    duration(value).map_err(|m| fail(format!("max_wrapping_ttl: {m}")))?;
            }
            other if PATH_KEYS.contains(&other) => {}
            other => return Err(fail(format!("invalid key \"{other}\""))),
        }
    }
    // A deny anywhere in the block means deny only.
    if rule.caps & DENY != 0 {
        rule.caps = DENY;
    }
    if let (Some(min), Some(max)) = (rule.min_wrapping_ttl, rule.max_wrapping_ttl)
        && max < min
    {
        return Err(fail(
            "max_wrapping_ttl cannot be less than min_wrapping_ttl".into(),
        ));
    }
    Ok(rule)
}

fn string_list(value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!("expected a list of strings, found {other}")),
            })
            .collect(),
        // HCL1 accepted a single string where a list was expected.
        Value::String(s) => Ok(vec![s.clone()]),
        other => Err(format!("expected a list of strings, found {other}")),
    }
}

fn parameter_map(value: &Value) -> Result<BTreeMap<String, Vec<Value>>, String> {
    // HCL1's JSON form may wrap the object in a one-element list.
    let obj = match value {
        Value::Object(o) => o,
        Value::Array(items) if items.len() == 1 => match &items[0] {
            Value::Object(o) => o,
            _ => return Err("expected a map of parameter name to list of values".into()),
        },
        _ => return Err("expected a map of parameter name to list of values".into()),
    };
    let mut out = BTreeMap::new();
    for (k, v) in obj {
        let values = match v {
            Value::Array(items) => items.clone(),
            Value::Null => Vec::new(),
            scalar => vec![scalar.clone()],
        };
        out.insert(k.to_lowercase(), values);
    }
    Ok(out)
}

fn duration(value: &Value) -> Result<Option<Duration>, String> {
    let secs = match value {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| format!("expected a non-negative duration, found {n}"))?,
        Value::String(s) => strongroom_api::duration::parse_duration(s)
            .ok_or_else(|| format!("invalid duration \"{s}\""))?,
        other => return Err(format!("expected a duration, found {other}")),
    };
    Ok((secs > 0).then(|| Duration::from_secs(secs)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::cap_names;

    #[test]
    fn repeated_hcl_path_blocks_each_become_a_rule() {
        // Why: hcl-rs's serde model folds repeated blocks into arrays; we must keep each one.
        let p = parse_policy(
            "path \"a/*\" {\n capabilities = [\"read\"]\n}\npath \"b\" { capabilities = [\"list\", \"sudo\"] }\n",
        )
        .unwrap();
        assert_eq!(p.paths.len(), 2);
        assert_eq!(p.paths[0].pattern, "a/*");
        assert_eq!(p.paths[0].caps, READ);
        assert_eq!(p.paths[1].caps, LIST | SUDO);
    }

    #[test]
    fn legacy_policy_shorthand_expands_like_vault() {
        // Why: hvac fixtures still use `policy = "write"`.
        let p = parse_policy(
            "path \"w\" { policy = \"write\" }\npath \"r\" { policy = \"read\" }\npath \"s\" { policy = \"sudo\" }\npath \"d\" { policy = \"deny\" }",
        )
        .unwrap();
        assert_eq!(p.paths[0].caps, CREATE | READ | UPDATE | DELETE | LIST);
        assert_eq!(p.paths[1].caps, READ | LIST);
        assert_eq!(
            p.paths[2].caps,
            CREATE | READ | UPDATE | DELETE | LIST | SUDO
        );
        assert_eq!(p.paths[3].caps, DENY);
    }

    #[test]
    fn parameters_and_wrapping_ttls_are_parsed() {
        // Why: constraints silently dropped would widen access.
        let p = parse_policy(
            r#"path "secret/restricted" {
  capabilities        = ["create", "update"]
  required_parameters = ["Owner"]
  allowed_parameters  = { "owner" = [], "env" = ["dev", "stage"], "*" = [] }
  denied_parameters   = { "password" = [] }
  min_wrapping_ttl = "1s"
  max_wrapping_ttl = 90
}"#,
        )
        .unwrap();
        let r = &p.paths[0];
        assert_eq!(r.required, vec!["owner"]);
        assert_eq!(r.allowed.len(), 3);
        assert_eq!(
            r.allowed["env"],
            vec![Value::from("dev"), Value::from("stage")]
        );
        assert!(r.denied["password"].is_empty());
        assert_eq!(r.min_wrapping_ttl, Some(Duration::from_secs(1)));
        assert_eq!(r.max_wrapping_ttl, Some(Duration::from_secs(90)));
    }

    #[test]
    fn json_policy_parses_like_hcl() {
        // Why: hvac writes JSON policies and expects them to work.
        let p = parse_policy(
            r#"{"path": {"secret/foo": {"capabilities": ["read"]}, "x/*": [{"policy": "deny"}]}}"#,
        )
        .unwrap();
        assert_eq!(p.paths.len(), 2);
        assert!(
            p.paths
                .iter()
                .any(|r| r.pattern == "secret/foo" && r.caps == READ)
        );
        assert!(p.paths.iter().any(|r| r.pattern == "x/*" && r.caps == DENY));
    }

    #[test]
    fn errors_name_the_line() {
        // Why: `vault policy write` users need to find their mistake.
        let e = parse_policy("path \"a\" {\n  capabilities = [\"read\"]\n}\npath \"b\" {\n  capabilities = [\"fly\"]\n}\n")
            .unwrap_err();
        assert_eq!(e.line, Some(4));
        assert!(e.to_string().contains("invalid capability \"fly\""), "{e}");
        let e = parse_policy("path \"a\" {\n  capabilities = [\"read\"\n").unwrap_err();
        assert!(e.line.is_some(), "{e}");
        let e =
            parse_policy("{\"path\": {\n\"a\": {\"capabilities\": [\"read\"]}}\n,}").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        let e =
            parse_policy("path \"a\" {\n  capabilities = [\"read\"]\n  bogus = 1\n}").unwrap_err();
        assert!(e.to_string().contains("invalid key \"bogus\""), "{e}");
    }

    #[test]
    fn each_rule_knows_its_line() {
        // Why: tools that point at a rule (and error messages) need its place in the file.
        let hcl = parse_policy("# team\npath \"a\" {\n capabilities = [\"read\"]\n}\n\npath \"b\" { policy = \"deny\" }\n")
            .unwrap();
        let json = parse_policy("{\"path\": {\n \"x\": {\"policy\": \"read\"}}}").unwrap();

        assert_eq!(hcl.paths[0].line, Some(2));
        assert_eq!(hcl.paths[1].line, Some(6));
        assert_eq!(json.paths[0].line, Some(2));
    }

    #[test]
    fn misplaced_globs_are_refused() {
        // Why: a `*` in the middle would silently be literal and grant nothing expected.
        assert!(parse_policy("path \"a/*/b\" { capabilities = [\"read\"] }").is_err());
        assert!(parse_policy("path \"a/+*\" { capabilities = [\"read\"] }").is_err());
        assert!(parse_policy("path \"a/+/b*\" { capabilities = [\"read\"] }").is_ok());
    }

    #[test]
    fn deny_absorbs_other_capabilities() {
        // Why: deny overrides everything, including sudo.
        let p =
            parse_policy("path \"a\" { capabilities = [\"read\", \"deny\", \"sudo\"] }").unwrap();
        assert_eq!(p.paths[0].caps, DENY);
        assert_eq!(cap_names(p.paths[0].caps), vec!["deny"]);
        assert_eq!(
            cap_names(READ | UPDATE | SUDO),
            vec!["read", "sudo", "update"]
        );
    }
}
