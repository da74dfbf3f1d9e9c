//! A format-neutral, line-annotated view of one configuration file.
//!
//! HCL and JSON configurations describe the same settings, and Vault treats
//! `listener "tcp" { ... }` exactly like `{"listener": {"tcp": {...}}}`. Both loaders therefore
//! lower their input into this small tree, and a single decoder applies the rules. Every node
//! keeps the line it came from so that semantic errors can name it. Objects are lists of entries,
//! not maps, because repeated blocks (`listener` twice) are legal and order matters.

/// One value in a configuration file, with the line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) kind: NodeKind,
    pub(crate) line: Option<usize>,
}

/// The shape of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NodeKind {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Node>),
    Object(Vec<Entry>),
    /// An HCL construct that has no literal value (variables, functions, interpolation). Kept
    /// rather than rejected at once so that ignored settings may contain anything.
    Unsupported(&'static str),
}

/// One `key = value` pair or block of an object, with the line of its key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) line: Option<usize>,
    pub(crate) value: Node,
}

impl NodeKind {
    /// Human description used in "expected X, got Y" messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            NodeKind::Null => "null".into(),
            NodeKind::Bool(value) => format!("the boolean {value}"),
            NodeKind::Number(value) => format!("the number {value}"),
            NodeKind::String(value) => format!("the string \"{value}\""),
            NodeKind::Array(_) => "a list".into(),
            NodeKind::Object(_) => "a block/object".into(),
            NodeKind::Unsupported(what) => (*what).into(),
        }
    }
}

/// Maps byte offsets of a source text to one-based line numbers.
pub(crate) struct LineIndex {
    line_starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(offset, _)| offset + 1),
        );
        Self { line_starts }
    }

    /// One-based line containing byte `offset`.
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        self.line_starts
            .partition_point(|start| *start <= offset)
            .max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Line numbers in every error message come from this mapping, including the edges.
    #[test]
    fn line_index_maps_offsets_to_lines() {
        let index = LineIndex::new("ab\ncd\n\nef");

        let lines: Vec<usize> = [0, 1, 2, 3, 5, 6, 7, 8, 100]
            .iter()
            .map(|offset| index.line_of(*offset))
            .collect();

        assert_eq!(lines, vec![1, 1, 1, 2, 2, 3, 4, 4, 4]);
    }
}
