//! The ACL policy grammar: one definition of what a policy document may say.
//!
//! The server parses a policy when it is written and when a token uses it; the CLI's
//! `policy fmt` checks and reformats a file before review. Both go through this crate, so a
//! file `policy fmt` accepts is one the server accepts, key for key (Vault's `policy fmt` runs
//! the server's parser too). Parsing yields typed path rules with the line each came from;
//! formatting lays an accepted HCL document out canonically.

#![forbid(unsafe_code)]

mod caps;
mod error;
mod format;
mod parse;

pub use caps::{
    CAP_NAMES, CREATE, Caps, DELETE, DENY, LIST, PATCH, READ, RECOVER, SUBSCRIBE, SUDO, UPDATE,
    cap_names,
};
pub use error::PolicyError;
pub use format::format_policy;
pub use parse::{ParsedPolicy, PathRule, parse_policy};

/// The shared verdict table (`testdata/verdicts.txt`): `(name, accepted, text)` per case.
/// Test support for the server and CLI tables; it reads only the embedded file.
#[doc(hidden)]
pub fn verdict_cases() -> Vec<(String, bool, String)> {
    let mut cases: Vec<(String, bool, String)> = Vec::new();
    for line in include_str!("../testdata/verdicts.txt").lines() {
        if let Some(head) = line.strip_prefix("=== ") {
            let (verdict, name) = head.split_once(' ').unwrap_or((head, ""));
            cases.push((name.to_owned(), verdict == "ok", String::new()));
        } else if let Some((_, _, text)) = cases.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    cases
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_grammar_gives_each_table_verdict() {
        // Why: the table is what server and CLI are both held to; it must hold here first.
        let cases = super::verdict_cases();
        assert!(cases.len() >= 15);
        for (name, accepted, text) in cases {
            assert_eq!(super::parse_policy(&text).is_ok(), accepted, "{name}");
        }
    }
}
