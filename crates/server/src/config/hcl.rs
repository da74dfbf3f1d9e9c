//! Lowers an HCL configuration file into the line-annotated [`tree`](super::tree).
//!
//! hcl-rs's serde model loses source positions and turns repeated labeled blocks into arrays,
//! so this walks the span-preserving `hcl::edit` syntax tree instead: that gives exact lines for
//! every key and value, which the decoder uses in its error messages.

use hcl::edit::Span;
use hcl::edit::expr::{Expression, ObjectKey, UnaryOperator};
use hcl::edit::structure::{Body, Structure};

use super::error::ConfigError;
use super::tree::{Entry, LineIndex, Node, NodeKind};

/// Parses `text` as HCL and returns the top-level entries.
///
/// A block `a "b" "c" { body }` becomes the entry `a = { b = { c = { body } } }`, which is how
/// Vault's HCL1 decoder (and its JSON form) sees it.
pub(crate) fn parse(text: &str, file: &str) -> Result<Vec<Entry>, ConfigError> {
    let body = hcl::edit::parser::parse_body(text).map_err(|err| {
        let location = err.location();
        // hcl-rs parses HCL2, which (unlike Vault's HCL1) needs a newline between the settings
        // of a block; that is the most likely cause of this particular complaint.
        let hint = if err.message().contains("newline") {
            "; put each setting of a block on its own line"
        } else {
            ""
        };
        ConfigError::new(
            file,
            Some(location.line()),
            None,
            format!(
                "invalid HCL syntax at column {}: {} (in `{}`){hint}",
                location.column(),
                err.message(),
                err.line().trim()
            ),
        )
    })?;
    let lines = LineIndex::new(text);
    Ok(lower_body(&body, &lines))
}

fn line_of(span: Option<std::ops::Range<usize>>, lines: &LineIndex) -> Option<usize> {
    span.map(|range| lines.line_of(range.start))
}

fn lower_body(body: &Body, lines: &LineIndex) -> Vec<Entry> {
    body.iter()
        .map(|structure| match structure {
            Structure::Attribute(attribute) => Entry {
                key: attribute.key.as_str().to_owned(),
                line: line_of(attribute.key.span(), lines),
                value: lower_expr(&attribute.value, lines),
            },
            Structure::Block(block) => {
                let block_line = line_of(block.span(), lines);
                let mut value = Node {
                    kind: NodeKind::Object(lower_body(&block.body, lines)),
                    line: block_line,
                };
                for label in block.labels.iter().rev() {
                    let label_line = line_of(label.span(), lines).or(block_line);
                    value = Node {
                        kind: NodeKind::Object(vec![Entry {
                            key: label.as_str().to_owned(),
                            line: label_line,
                            value,
                        }]),
                        line: label_line,
                    };
                }
                Entry {
                    key: block.ident.as_str().to_owned(),
                    line: line_of(block.ident.span(), lines).or(block_line),
                    value,
                }
            }
        })
        .collect()
}

const EXPRESSION: &str = "an expression (variables, functions, operators and interpolation are not supported; use a literal value)";

fn lower_expr(expr: &Expression, lines: &LineIndex) -> Node {
    let line = line_of(expr.span(), lines);
    let kind = match expr {
        Expression::Null(_) => NodeKind::Null,
        Expression::Bool(value) => NodeKind::Bool(*value.value()),
        Expression::Number(number) => lower_number(number.value()),
        Expression::String(value) => NodeKind::String(value.value().clone()),
        Expression::Array(array) => {
            NodeKind::Array(array.iter().map(|item| lower_expr(item, lines)).collect())
        }
        Expression::Object(object) => {
            let mut entries = Vec::with_capacity(object.len());
            for (key, value) in object.iter() {
                let (name, key_line) = match key {
                    ObjectKey::Ident(ident) => {
                        (ident.as_str().to_owned(), line_of(ident.span(), lines))
                    }
                    ObjectKey::Expression(Expression::String(name)) => {
                        (name.value().clone(), line_of(name.span(), lines))
                    }
                    ObjectKey::Expression(_) => {
                        return Node {
                            kind: NodeKind::Unsupported(EXPRESSION),
                            line,
                        };
                    }
                };
                entries.push(Entry {
                    key: name,
                    line: key_line.or(line),
                    value: lower_expr(value.expr(), lines),
                });
            }
            NodeKind::Object(entries)
        }
        Expression::Parenthesis(inner) => return lower_expr(inner.inner(), lines),
        Expression::UnaryOp(op) => match (op.operator.value(), &op.expr) {
            (UnaryOperator::Neg, Expression::Number(number)) => lower_number(&(-*number.value())),
            _ => NodeKind::Unsupported(EXPRESSION),
        },
        Expression::HeredocTemplate(_) => {
            NodeKind::Unsupported("a heredoc (use a quoted string instead)")
        }
        _ => NodeKind::Unsupported(EXPRESSION),
    };
    Node { kind, line }
}

fn lower_number(number: &hcl::edit::Number) -> NodeKind {
    let converted = if let Some(value) = number.as_u64() {
        Some(serde_json::Number::from(value))
    } else if let Some(value) = number.as_i64() {
        Some(serde_json::Number::from(value))
    } else {
        number.as_f64().and_then(serde_json::Number::from_f64)
    };
    match converted {
        Some(value) => NodeKind::Number(value),
        None => NodeKind::Unsupported("a number that is not finite"),
    }
}
