//! Lowers a JSON configuration file into the line-annotated [`tree`](super::tree).
//!
//! hvac's test harness hands the server JSON produced from HCL, so JSON must behave exactly like
//! HCL, including line numbers in errors. `serde_json::Value` drops positions and merges
//! duplicate keys, so the text is first validated by serde_json (which reports syntax errors
//! with line and column), then re-scanned here token by token to build the tree. The scanner
//! only ever sees valid JSON; string escapes and numbers are still decoded by serde_json.

use super::error::ConfigError;
use super::tree::{Entry, LineIndex, Node, NodeKind};

/// Deepest nesting of objects and arrays accepted. A real configuration nests four levels;
/// the scanner recurses per level, and serde_json's validation pass does not bound depth, so
/// without this a deeply nested file overflows the stack and aborts the server.
const MAX_NESTING: usize = 64;

/// Parses `text` as a JSON object and returns its entries in source order.
pub(crate) fn parse(text: &str, file: &str) -> Result<Vec<Entry>, ConfigError> {
    if let Err(err) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        return Err(ConfigError::new(
            file,
            Some(err.line()).filter(|line| *line > 0),
            None,
            format!("invalid JSON: {err}"),
        ));
    }
    let lines = LineIndex::new(text);
    let mut scanner = Scanner {
        text,
        pos: 0,
        depth: 0,
        lines: &lines,
    };
    let internal = |message: String| ConfigError::new(file, None, None, message);
    let root = scanner.value().map_err(internal)?;
    match root.kind {
        NodeKind::Object(entries) => Ok(entries),
        other => Err(ConfigError::new(
            file,
            root.line,
            None,
            format!(
                "the configuration must be a JSON object, got {}",
                other.describe()
            ),
        )),
    }
}

struct Scanner<'a> {
    text: &'a str,
    pos: usize,
    /// Objects and arrays currently open.
    depth: usize,
    lines: &'a LineIndex,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), String> {
        self.skip_whitespace();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn unexpected(&self) -> String {
        format!(
            "internal JSON scanner error at line {}",
            self.lines.line_of(self.pos)
        )
    }

    fn value(&mut self) -> Result<Node, String> {
        self.skip_whitespace();
        let line = Some(self.lines.line_of(self.pos));
        let kind = match self.peek() {
            Some(b'{' | b'[') if self.depth >= MAX_NESTING => {
                return Err(format!(
                    "objects and arrays nest deeper than {MAX_NESTING} levels at line {}",
                    self.lines.line_of(self.pos)
                ));
            }
            Some(b'{') => {
                self.depth += 1;
                let entries = self.object();
                self.depth -= 1;
                NodeKind::Object(entries?)
            }
            Some(b'[') => {
                self.depth += 1;
                let items = self.array();
                self.depth -= 1;
                NodeKind::Array(items?)
            }
            Some(b'"') => NodeKind::String(self.string()?),
            Some(b't') => self.literal("true", NodeKind::Bool(true))?,
            Some(b'f') => self.literal("false", NodeKind::Bool(false))?,
            Some(b'n') => self.literal("null", NodeKind::Null)?,
            Some(b'-' | b'0'..=b'9') => NodeKind::Number(self.number()?),
            _ => return Err(self.unexpected()),
        };
        Ok(Node { kind, line })
    }

    fn object(&mut self) -> Result<Vec<Entry>, String> {
        self.expect(b'{')?;
        let mut entries = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(entries);
        }
        loop {
            self.skip_whitespace();
            let line = Some(self.lines.line_of(self.pos));
            let key = self.string()?;
            self.expect(b':')?;
            let value = self.value()?;
            entries.push(Entry { key, line, value });
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(entries);
                }
                _ => return Err(self.unexpected()),
            }
        }
    }

    fn array(&mut self) -> Result<Vec<Node>, String> {
        self.expect(b'[')?;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(items);
        }
        loop {
            items.push(self.value()?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(items);
                }
                _ => return Err(self.unexpected()),
            }
        }
    }

    /// Finds the end of the string token (honouring escapes) and lets serde_json decode it.
    fn string(&mut self) -> Result<String, String> {
        self.skip_whitespace();
        let start = self.pos;
        if self.peek() != Some(b'"') {
            return Err(self.unexpected());
        }
        self.pos += 1;
        loop {
            match self.peek() {
                Some(b'\\') => self.pos += 2,
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(_) => self.pos += 1,
                None => return Err(self.unexpected()),
            }
        }
        let token = self
            .text
            .get(start..self.pos)
            .ok_or_else(|| self.unexpected())?;
        serde_json::from_str(token).map_err(|err| format!("{}: {err}", self.unexpected()))
    }

    fn number(&mut self) -> Result<serde_json::Number, String> {
        let start = self.pos;
        while matches!(
            self.peek(),
            Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
        ) {
            self.pos += 1;
        }
        let token = self
            .text
            .get(start..self.pos)
            .ok_or_else(|| self.unexpected())?;
        serde_json::from_str(token).map_err(|err| format!("{}: {err}", self.unexpected()))
    }

    fn literal(&mut self, word: &str, kind: NodeKind) -> Result<NodeKind, String> {
        let end = self.pos + word.len();
        if self.text.get(self.pos..end) == Some(word) {
            self.pos = end;
            Ok(kind)
        } else {
            Err(self.unexpected())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Duplicate keys and key lines must survive, unlike with serde_json::Value.
    #[test]
    fn keeps_duplicates_order_and_lines() {
        let text =
            "{\n  \"a\": 1,\n  \"b\": {\"c\": \"x\\\"y\\u00e9\"},\n  \"a\": [true, null, -2.5]\n}";

        let entries = parse(text, "t.json").unwrap();

        let keys: Vec<(&str, Option<usize>)> = entries
            .iter()
            .map(|entry| (entry.key.as_str(), entry.line))
            .collect();
        assert_eq!(keys, vec![("a", Some(2)), ("b", Some(3)), ("a", Some(4))]);
        let NodeKind::Object(inner) = &entries[1].value.kind else {
            panic!("b is not an object");
        };
        assert_eq!(inner[0].value.kind, NodeKind::String("x\"yé".into()));
        let NodeKind::Array(items) = &entries[2].value.kind else {
            panic!("a is not a list");
        };
        assert_eq!(items.len(), 3);
    }

    // Syntax errors must carry serde_json's line so operators can find them.
    #[test]
    fn syntax_error_names_line() {
        let text = "{\n  \"a\": 1,\n  \"b\": \n}";

        let err = parse(text, "bad.json").unwrap_err();

        assert_eq!(err.file, "bad.json");
        assert_eq!(err.line, Some(4));
        assert!(err.message.starts_with("invalid JSON"), "{}", err.message);
    }

    // A JSON array or scalar at the top level is not a configuration.
    #[test]
    fn rejects_non_object_root() {
        let err = parse("[1]", "list.json").unwrap_err();

        assert!(
            err.message.contains("must be a JSON object"),
            "{}",
            err.message
        );
    }
}
