//! Shared pieces of the `fuzz_*` property tests, so every target mutates and counts alike.
//!
//! Fuzzing here runs on stable Rust through proptest: each target is an ordinary test named
//! `fuzz_<thing>` that runs a bounded number of cases in the normal suite and many more when
//! `PROPTEST_CASES` is raised (see the README's "Fuzzing" section). Parsers only get past
//! their first byte when fed nearly valid input, so besides random bytes the targets take
//! valid documents and damage them with [`mutations`], or build text from a vocabulary of
//! the grammar's own tokens with [`token_soup`].

#![forbid(unsafe_code)]

use proptest::prelude::*;
use proptest::test_runner::Config;

/// The environment variable that overrides every target's case count.
pub const CASES_VAR: &str = "PROPTEST_CASES";

/// A proptest configuration running `PROPTEST_CASES` cases when set, else `default`, and
/// writing no regression files (a failure prints its minimal input; add it as a unit test).
pub fn config(default: u32) -> Config {
    let cases = std::env::var(CASES_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// One edit to a byte string. Indices are taken modulo the current length, so every edit
/// applies to any input.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Overwrite one byte.
    Set(usize, u8),
    /// Flip one bit of one byte.
    Flip(usize, u8),
    /// Insert one byte.
    Insert(usize, u8),
    /// Remove one byte.
    Remove(usize),
    /// Cut the input short.
    Truncate(usize),
    /// Copy a run of the input over another place (repeats structure, breaks lengths).
    Splice { from: usize, to: usize, len: usize },
}

/// One to `max` edits.
pub fn mutations(max: usize) -> impl Strategy<Value = Vec<Mutation>> {
    let one = prop_oneof![
        3 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        3 => (any::<usize>(), 0u8..8).prop_map(|(i, bit)| Mutation::Flip(i, bit)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        2 => any::<usize>().prop_map(Mutation::Remove),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), any::<usize>(), 1usize..64)
            .prop_map(|(from, to, len)| Mutation::Splice { from, to, len }),
    ];
    prop::collection::vec(one, 1..=max.max(1))
}

/// Applies `edits` in order.
pub fn mutate(mut bytes: Vec<u8>, edits: &[Mutation]) -> Vec<u8> {
    for edit in edits {
        let len = bytes.len();
        match *edit {
            Mutation::Set(i, b) if len > 0 => bytes[i % len] = b,
            Mutation::Flip(i, bit) if len > 0 => bytes[i % len] ^= 1 << (bit % 8),
            Mutation::Insert(i, b) => bytes.insert(i % (len + 1), b),
            Mutation::Remove(i) if len > 0 => {
                bytes.remove(i % len);
            }
            Mutation::Truncate(i) => bytes.truncate(i % (len + 1)),
            Mutation::Splice { from, to, len: n } if len > 0 => {
                let from = from % len;
                let n = n.min(len - from);
                let run = bytes[from..from + n].to_vec();
                let to = to % len;
                let end = (to + n).min(len);
                bytes.splice(to..end, run);
            }
            _ => {}
        }
    }
    bytes
}

/// Applies `edits` to text; a broken UTF-8 sequence becomes U+FFFD, as a server that reads
/// text would see it.
pub fn mutate_text(text: &str, edits: &[Mutation]) -> String {
    String::from_utf8_lossy(&mutate(text.as_bytes().to_vec(), edits)).into_owned()
}

/// Text of up to `max` tokens drawn from `vocabulary`, each followed by one of a few
/// separators: random programs in the grammar's own words.
pub fn token_soup(
    vocabulary: &'static [&'static str],
    max: usize,
) -> impl Strategy<Value = String> {
    let sep = prop::sample::select(&[" ", "", "\n", " = ", "\t"][..]);
    prop::collection::vec((prop::sample::select(vocabulary), sep), 0..max).prop_map(|tokens| {
        tokens
            .into_iter()
            .flat_map(|(t, s)| [t, s])
            .collect::<String>()
    })
}

/// `depth` copies of `open`, then `inner`, then `depth` copies of `close`: nesting that
/// recursive-descent parsers must bound instead of overflowing the stack.
pub fn nested(open: &str, inner: &str, close: &str, depth: usize) -> String {
    let mut s = open.repeat(depth);
    s.push_str(inner);
    s.push_str(&close.repeat(depth));
    s
}

/// A current-thread runtime for driving async code inside a proptest case.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_apply_to_any_input_and_change_it() {
        // Why: a mutation that indexes out of range would fail every target at once.
        let edits = [
            Mutation::Set(7, b'x'),
            Mutation::Flip(100, 3),
            Mutation::Insert(1000, b'y'),
            Mutation::Remove(5),
            Mutation::Truncate(9),
            Mutation::Splice {
                from: 3,
                to: 1,
                len: 50,
            },
        ];
        for len in 0..80 {
            let _ = mutate(vec![7u8; len], &edits);
        }
        assert_eq!(mutate(Vec::new(), &edits[2..3]), b"y".to_vec());
        assert_eq!(
            mutate(b"abc".to_vec(), &[Mutation::Flip(4, 0)]),
            b"acc".to_vec()
        );
        assert_ne!(
            mutate(b"hello world".to_vec(), &edits),
            b"hello world".to_vec()
        );
        assert_eq!(nested("[", "1", "]", 3), "[[[1]]]");
    }
}
