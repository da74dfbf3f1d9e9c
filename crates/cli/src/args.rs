//! Command-line flag parsing in Vault's dialect.
//!
//! Operators type `vault`-style flags from muscle memory and scripts (hvac's test suite among
//! them) pass them verbatim: single-dash long names (`-field=token`, `-format json`), bare boolean
//! switches (`-f`, `-tls-skip-verify`) and explicit booleans (`-force=false`). Generic parsers
//! treat `-field` as a cluster of short options, so this module implements the Go `flag` rules
//! itself, with one relaxation: flags may appear anywhere before a `--`, not only before the first
//! positional argument.

use std::collections::BTreeMap;

use thiserror::Error;

/// Whether a flag takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagKind {
    /// A switch: `-force` sets it, `-force=false` clears it; it never consumes the next argument.
    Bool,
    /// Takes a value, either joined (`-format=json`) or as the next argument (`-format json`).
    Value,
}

/// One flag a command accepts.
#[derive(Debug, Clone, Copy)]
pub struct FlagSpec {
    /// Canonical name without dashes; parsed values are stored under it.
    pub name: &'static str,
    /// Other spellings (for example `f` for `force`).
    pub aliases: &'static [&'static str],
    pub kind: FlagKind,
    /// One-line description for the command's help text.
    pub help: &'static str,
}

impl FlagSpec {
    /// A switch with no aliases.
    pub const fn switch(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            aliases: &[],
            kind: FlagKind::Bool,
            help,
        }
    }

    /// A flag with a value and no aliases.
    pub const fn value(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            aliases: &[],
            kind: FlagKind::Value,
            help,
        }
    }

    fn matches(&self, name: &str) -> bool {
        self.name == name || self.aliases.contains(&name)
    }
}

/// Why a command line could not be parsed. Always a usage error (exit code 1).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ArgsError {
    #[error("flag provided but not defined: -{0}")]
    UnknownFlag(String),
    #[error("flag needs an argument: -{0}")]
    MissingValue(String),
    #[error("invalid boolean value {value:?} for -{flag}: use true or false")]
    InvalidBool { flag: String, value: String },
    #[error("bad flag syntax: {0}")]
    BadSyntax(String),
}

/// The result of parsing: flag values by canonical name, plus positional arguments in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Parsed {
    flags: BTreeMap<&'static str, Vec<String>>,
    pub positionals: Vec<String>,
    /// `-h`, `-help` or `--help` was given.
    pub help: bool,
}

impl Parsed {
    /// The last value given for a value flag.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.flags
            .get(name)
            .and_then(|values| values.last())
            .map(String::as_str)
    }

    /// Every value given for a repeatable value flag, in order (`-policy=a -policy=b`).
    pub fn values(&self, name: &str) -> &[String] {
        self.flags.get(name).map(Vec::as_slice).unwrap_or_default()
    }

    /// Whether a switch is set (the last occurrence wins).
    pub fn switch(&self, name: &str) -> bool {
        self.value(name) == Some("true")
    }

    /// Whether the flag appeared at all.
    pub fn given(&self, name: &str) -> bool {
        self.flags.contains_key(name)
    }
}

/// Parses a Go-style boolean (`strconv.ParseBool`).
pub fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Parses `args` against the union of `groups`.
///
/// Rules: `--` ends flag parsing; a lone `-` is positional (it means stdin); `-name` and
/// `--name` are the same flag; `=` joins a value; a value flag without `=` takes the next
/// argument whatever it looks like; a bool flag never takes the next argument.
pub fn parse(args: &[String], groups: &[&[FlagSpec]]) -> Result<Parsed, ArgsError> {
    let mut parsed = Parsed::default();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--" {
            parsed.positionals.extend(iter.by_ref().cloned());
            break;
        }
        let Some(body) = flag_body(arg)? else {
            parsed.positionals.push(arg.clone());
            continue;
        };
        let (name, inline) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        if name.is_empty() {
            return Err(ArgsError::BadSyntax(arg.clone()));
        }
        if matches!(name, "h" | "help") && inline.is_none() {
            parsed.help = true;
            continue;
        }
        let spec = groups
            .iter()
            .flat_map(|group| group.iter())
            .find(|spec| spec.matches(name))
            .ok_or_else(|| ArgsError::UnknownFlag(name.to_string()))?;
        let value = match (spec.kind, inline) {
            (FlagKind::Bool, None) => "true".to_string(),
            (FlagKind::Bool, Some(raw)) => parse_bool(raw)
                .ok_or_else(|| ArgsError::InvalidBool {
                    flag: name.to_string(),
                    value: raw.to_string(),
                })?
                .to_string(),
            (FlagKind::Value, Some(raw)) => raw.to_string(),
            (FlagKind::Value, None) => iter
                .next()
                .cloned()
                .ok_or_else(|| ArgsError::MissingValue(name.to_string()))?,
        };
        parsed.flags.entry(spec.name).or_default().push(value);
    }
    Ok(parsed)
}

/// Returns the text after the dashes if `arg` is a flag, `None` if it is positional.
fn flag_body(arg: &str) -> Result<Option<&str>, ArgsError> {
    if arg == "-" || !arg.starts_with('-') {
        return Ok(None);
    }
    let body = arg
        .strip_prefix("--")
        .or_else(|| arg.strip_prefix('-'))
        .unwrap_or(arg);
    if body.is_empty() || body.starts_with('-') {
        return Err(ArgsError::BadSyntax(arg.to_string()));
    }
    Ok(Some(body))
}

/// Renders the flag list of a command for its help text.
pub fn describe(groups: &[&[FlagSpec]]) -> String {
    let mut out = String::new();
    for spec in groups.iter().flat_map(|group| group.iter()) {
        let mut names = format!("-{}", spec.name);
        for alias in spec.aliases {
            names.push_str(&format!(", -{alias}"));
        }
        if spec.kind == FlagKind::Value {
            names.push_str("=<value>");
        }
        out.push_str(&format!("  {names}\n      {}\n", spec.help));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[FlagSpec] = &[
        FlagSpec::value("field", "field"),
        FlagSpec::value("format", "format"),
        FlagSpec {
            name: "force",
            aliases: &["f"],
            kind: FlagKind::Bool,
            help: "force",
        },
        FlagSpec::value("address", "address"),
        FlagSpec::value("ca-cert", "ca"),
        FlagSpec::switch("tls-skip-verify", "skip"),
        FlagSpec::value("key-shares", "shares"),
        FlagSpec::value("key-threshold", "threshold"),
        FlagSpec::value("policy", "policy"),
    ];

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    // Vault's single-dash long flags with `=` must work exactly as typed.
    #[test]
    fn single_dash_joined_values() {
        let parsed = parse(
            &args(&[
                "-field=token",
                "-format=json",
                "-address=https://x:8200",
                "-ca-cert=/tmp/ca.pem",
                "-key-shares=5",
            ]),
            &[SPECS],
        )
        .unwrap();

        assert_eq!(parsed.value("field"), Some("token"));
        assert_eq!(parsed.value("format"), Some("json"));
        assert_eq!(parsed.value("address"), Some("https://x:8200"));
        assert_eq!(parsed.value("ca-cert"), Some("/tmp/ca.pem"));
        assert_eq!(parsed.value("key-shares"), Some("5"));
        assert!(parsed.positionals.is_empty());
    }

    // hvac shells out with `-decode <enc> -otp <otp>`: the value may be the next argument.
    #[test]
    fn value_as_next_argument() {
        let parsed = parse(
            &args(&["-key-threshold", "3", "--format", "yaml", "path"]),
            &[SPECS],
        )
        .unwrap();

        assert_eq!(parsed.value("key-threshold"), Some("3"));
        assert_eq!(parsed.value("format"), Some("yaml"));
        assert_eq!(parsed.positionals, args(&["path"]));
    }

    // A value flag takes the next argument even when it starts with a dash, like Go's flag.
    #[test]
    fn value_may_look_like_a_flag() {
        let parsed = parse(&args(&["-field", "-x"]), &[SPECS]).unwrap();

        assert_eq!(parsed.value("field"), Some("-x"));
    }

    // `-f`, `-force`, `--force` and explicit booleans all set the same switch.
    #[test]
    fn switches_and_aliases() {
        for form in ["-f", "-force", "--force", "--f", "-force=true", "-f=1"] {
            let parsed = parse(&args(&[form]), &[SPECS]).unwrap();
            assert!(parsed.switch("force"), "{form}");
        }
        let parsed = parse(&args(&["-force", "-force=false"]), &[SPECS]).unwrap();
        assert!(!parsed.switch("force"));
        assert!(parsed.given("force"));
    }

    // A switch must never swallow the following positional argument.
    #[test]
    fn switch_does_not_consume_next_argument() {
        let parsed = parse(&args(&["-tls-skip-verify", "secret/foo"]), &[SPECS]).unwrap();

        assert!(parsed.switch("tls-skip-verify"));
        assert_eq!(parsed.positionals, args(&["secret/foo"]));
    }

    // Flags are accepted after positionals, but not after `--`.
    #[test]
    fn flags_anywhere_before_double_dash() {
        let parsed = parse(
            &args(&["secret/foo", "-format=json", "a=b", "--", "-field=x", "-"]),
            &[SPECS],
        )
        .unwrap();

        assert_eq!(parsed.value("format"), Some("json"));
        assert_eq!(parsed.value("field"), None);
        assert_eq!(
            parsed.positionals,
            args(&["secret/foo", "a=b", "-field=x", "-"])
        );
    }

    // A lone dash means "stdin" and is positional.
    #[test]
    fn lone_dash_is_positional() {
        let parsed = parse(&args(&["secret/foo", "-"]), &[SPECS]).unwrap();

        assert_eq!(parsed.positionals, args(&["secret/foo", "-"]));
    }

    // Unknown flags are reported by name so the operator can fix the typo.
    #[test]
    fn unknown_flag_is_named() {
        let err = parse(&args(&["-feild=token"]), &[SPECS]).unwrap_err();

        assert_eq!(err, ArgsError::UnknownFlag("feild".into()));
        assert_eq!(err.to_string(), "flag provided but not defined: -feild");
    }

    // A value flag at the end of the line is an error, not an empty value.
    #[test]
    fn missing_value_is_an_error() {
        let err = parse(&args(&["-format"]), &[SPECS]).unwrap_err();

        assert_eq!(err, ArgsError::MissingValue("format".into()));
    }

    // `-force=maybe` must not silently count as true or false.
    #[test]
    fn invalid_bool_is_an_error() {
        let err = parse(&args(&["-force=maybe"]), &[SPECS]).unwrap_err();

        assert!(matches!(err, ArgsError::InvalidBool { .. }));
    }

    // Malformed dashes are rejected rather than guessed at.
    #[test]
    fn bad_syntax() {
        assert!(matches!(
            parse(&args(&["---x"]), &[SPECS]),
            Err(ArgsError::BadSyntax(_))
        ));
        assert!(matches!(
            parse(&args(&["-=x"]), &[SPECS]),
            Err(ArgsError::BadSyntax(_))
        ));
    }

    // Repeated flags keep every value; `value` returns the last one.
    #[test]
    fn repeated_values() {
        let parsed = parse(&args(&["-policy=a", "-policy", "b"]), &[SPECS]).unwrap();

        assert_eq!(parsed.values("policy"), args(&["a", "b"]).as_slice());
        assert_eq!(parsed.value("policy"), Some("b"));
        assert!(parsed.values("field").is_empty());
    }

    // Help flags are recognised in every command without being declared.
    #[test]
    fn help_flags() {
        for form in ["-h", "-help", "--help"] {
            assert!(parse(&args(&[form]), &[SPECS]).unwrap().help, "{form}");
        }
    }

    // Flags from several groups (global + command) combine.
    #[test]
    fn groups_combine() {
        const EXTRA: &[FlagSpec] = &[FlagSpec::switch("reset", "reset")];
        let parsed = parse(&args(&["-reset", "-address=http://a"]), &[SPECS, EXTRA]).unwrap();

        assert!(parsed.switch("reset"));
        assert_eq!(parsed.value("address"), Some("http://a"));
    }
}
