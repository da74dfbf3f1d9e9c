//! Connection settings resolved from `VAULT_*` environment variables and command-line flags.
//!
//! Vault's precedence is flag over environment over default, and the token comes from
//! `VAULT_TOKEN` before the token helper. Resolving all of it in one place keeps every command
//! consistent and lets tests drive the resolution with a fake environment.

use std::path::PathBuf;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::args::{FlagSpec, Parsed, parse_bool};
use crate::error::CliError;
use crate::token_helper::TokenHelper;

/// Default server address when neither `-address` nor `VAULT_ADDR` is set.
pub const DEFAULT_ADDRESS: &str = "https://127.0.0.1:8200";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_MAX_RETRIES: u32 = 2;

/// Flags every command that talks to the server accepts.
pub const HTTP_FLAGS: &[FlagSpec] = &[
    FlagSpec::value(
        "address",
        "Address of the server (default $VAULT_ADDR or https://127.0.0.1:8200).",
    ),
    FlagSpec::value(
        "ca-cert",
        "PEM file of CA certificates to verify the server with ($VAULT_CACERT).",
    ),
    FlagSpec::value(
        "ca-path",
        "Directory of PEM CA certificates to verify the server with ($VAULT_CAPATH).",
    ),
    FlagSpec::value(
        "client-cert",
        "PEM client certificate for TLS authentication ($VAULT_CLIENT_CERT).",
    ),
    FlagSpec::value(
        "client-key",
        "PEM private key for the client certificate ($VAULT_CLIENT_KEY).",
    ),
    FlagSpec::switch(
        "tls-skip-verify",
        "Do not verify the server's certificate; insecure ($VAULT_SKIP_VERIFY).",
    ),
    FlagSpec::value(
        "tls-server-name",
        "Name to verify the server certificate against ($VAULT_TLS_SERVER_NAME).",
    ),
    FlagSpec::value(
        "namespace",
        "Namespace header to send; only the root namespace exists ($VAULT_NAMESPACE).",
    ),
    FlagSpec::value(
        "wrap-ttl",
        "Ask the server to wrap the response in a single-use token living this long \
         ($VAULT_WRAP_TTL).",
    ),
];

/// Everything needed to build a [`crate::client::Client`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Server address without a trailing slash, e.g. `https://127.0.0.1:8200`.
    pub address: String,
    pub token: Option<Zeroizing<String>>,
    pub ca_cert: Option<PathBuf>,
    pub ca_path: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub skip_verify: bool,
    pub tls_server_name: Option<String>,
    pub namespace: Option<String>,
    pub timeout: Duration,
    pub max_retries: u32,
    /// Value of `X-Vault-Wrap-TTL` in whole seconds, when responses are to be wrapped.
    pub wrap_ttl: Option<String>,
}

impl Config {
    /// Resolves the settings: flag, then environment, then default.
    pub fn resolve(env: &dyn Fn(&str) -> Option<String>, flags: &Parsed) -> Result<Self, CliError> {
        let var = |name: &str| env(name).filter(|value| !value.is_empty());
        let pick =
            |flag: &str, name: &str| flags.value(flag).map(str::to_string).or_else(|| var(name));

        let address = pick("address", "VAULT_ADDR").unwrap_or_else(|| DEFAULT_ADDRESS.to_string());
        let address = address.trim_end_matches('/').to_string();
        if !(address.starts_with("http://") || address.starts_with("https://")) {
            return Err(CliError::Local(format!(
                "Invalid server address {address:?}: it must start with http:// or https://"
            )));
        }

        let skip_verify = if flags.given("tls-skip-verify") {
            flags.switch("tls-skip-verify")
        } else {
            match var("VAULT_SKIP_VERIFY") {
                Some(raw) => parse_bool(&raw).ok_or_else(|| {
                    CliError::Local(format!(
                        "Invalid VAULT_SKIP_VERIFY {raw:?}: use true or false"
                    ))
                })?,
                None => false,
            }
        };

        let timeout = match var("VAULT_CLIENT_TIMEOUT") {
            Some(raw) => parse_duration(&raw).ok_or_else(|| {
                CliError::Local(format!(
                    "Invalid VAULT_CLIENT_TIMEOUT {raw:?}: use seconds or a duration like 60s or 2m"
                ))
            })?,
            None => DEFAULT_TIMEOUT,
        };

        let max_retries = match var("VAULT_MAX_RETRIES") {
            Some(raw) => raw.trim().parse::<u32>().map_err(|_| {
                CliError::Local(format!(
                    "Invalid VAULT_MAX_RETRIES {raw:?}: use a non-negative integer"
                ))
            })?,
            None => DEFAULT_MAX_RETRIES,
        };

        let token = match var("VAULT_TOKEN") {
            Some(token) => Some(Zeroizing::new(token.trim().to_string())),
            None => match TokenHelper::from_env(env) {
                Some(helper) => helper.get()?,
                None => None,
            },
        };

        let wrap_ttl = match pick("wrap-ttl", "VAULT_WRAP_TTL") {
            Some(raw) => parse_wrap_ttl(&raw)?,
            None => None,
        };

        Ok(Self {
            address,
            token,
            wrap_ttl,
            ca_cert: pick("ca-cert", "VAULT_CACERT").map(PathBuf::from),
            ca_path: pick("ca-path", "VAULT_CAPATH").map(PathBuf::from),
            client_cert: pick("client-cert", "VAULT_CLIENT_CERT").map(PathBuf::from),
            client_key: pick("client-key", "VAULT_CLIENT_KEY").map(PathBuf::from),
            skip_verify,
            tls_server_name: pick("tls-server-name", "VAULT_TLS_SERVER_NAME"),
            namespace: pick("namespace", "VAULT_NAMESPACE"),
            timeout,
            max_retries,
        })
    }
}

/// Validates a wrap TTL and renders it as whole seconds; zero means "do not wrap".
fn parse_wrap_ttl(raw: &str) -> Result<Option<String>, CliError> {
    let ttl = parse_duration(raw).ok_or_else(|| {
        CliError::Usage(format!(
            "Invalid wrap TTL {raw:?}: use seconds or a duration like 30s, 5m or 1h"
        ))
    })?;
    if ttl.is_zero() {
        return Ok(None);
    }
    if ttl.subsec_nanos() != 0 {
        return Err(CliError::Usage(format!(
            "Invalid wrap TTL {raw:?}: it must be a whole number of seconds"
        )));
    }
    Ok(Some(ttl.as_secs().to_string()))
}

/// Parses integer seconds (`"60"`) or a Go duration (`"60s"`, `"1m30s"`, `"500ms"`, `"2h"`).
pub fn parse_duration(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    if let Ok(seconds) = raw.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = raw;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let amount: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(amount),
            "s" => Duration::from_secs(amount),
            "m" => Duration::from_secs(amount.checked_mul(60)?),
            "h" => Duration::from_secs(amount.checked_mul(3600)?),
            _ => return None,
        };
        total = total.checked_add(part)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::parse;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |key| map.get(key).cloned()
    }

    fn flags(list: &[&str]) -> Parsed {
        let args: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        parse(&args, &[HTTP_FLAGS]).unwrap()
    }

    // With nothing configured the CLI talks to Vault's default address with Vault's defaults.
    #[test]
    fn defaults() {
        let config = Config::resolve(&env_of(&[]), &flags(&[])).unwrap();

        assert_eq!(config.address, DEFAULT_ADDRESS);
        assert!(config.token.is_none());
        assert!(!config.skip_verify);
        assert_eq!(config.timeout, Duration::from_secs(60));
        assert_eq!(config.max_retries, 2);
    }

    // Flags beat the environment, and a trailing slash on the address is dropped.
    #[test]
    fn flags_override_env() {
        let env = env_of(&[
            ("VAULT_ADDR", "http://env:8200/"),
            ("VAULT_SKIP_VERIFY", "true"),
            ("VAULT_CACERT", "/env/ca.pem"),
        ]);

        let from_env = Config::resolve(&env, &flags(&[])).unwrap();
        let from_flags = Config::resolve(
            &env,
            &flags(&[
                "-address=https://flag:8200",
                "-tls-skip-verify=false",
                "-ca-cert",
                "/flag/ca.pem",
            ]),
        )
        .unwrap();

        assert_eq!(from_env.address, "http://env:8200");
        assert!(from_env.skip_verify);
        assert_eq!(from_env.ca_cert, Some(PathBuf::from("/env/ca.pem")));
        assert_eq!(from_flags.address, "https://flag:8200");
        assert!(!from_flags.skip_verify);
        assert_eq!(from_flags.ca_cert, Some(PathBuf::from("/flag/ca.pem")));
    }

    // VAULT_TOKEN wins over the token helper file.
    #[test]
    fn vault_token_beats_helper() {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join(".vault-token"), "from-file\n").unwrap();
        let home_str = home.path().to_str().unwrap().to_string();

        let helper_only = env_of(&[("HOME", &home_str)]);
        let both = env_of(&[("HOME", &home_str), ("VAULT_TOKEN", "from-env")]);

        let token = |env: &dyn Fn(&str) -> Option<String>| {
            Config::resolve(env, &flags(&[]))
                .unwrap()
                .token
                .map(|t| t.to_string())
        };
        assert_eq!(token(&helper_only).as_deref(), Some("from-file"));
        assert_eq!(token(&both).as_deref(), Some("from-env"));
    }

    // Garbage in numeric or boolean variables is reported, not silently defaulted.
    #[test]
    fn invalid_env_values_are_errors() {
        for (name, value) in [
            ("VAULT_SKIP_VERIFY", "perhaps"),
            ("VAULT_CLIENT_TIMEOUT", "soon"),
            ("VAULT_MAX_RETRIES", "-1"),
            ("VAULT_ADDR", "127.0.0.1:8200"),
        ] {
            let err = Config::resolve(&env_of(&[(name, value)]), &flags(&[])).unwrap_err();
            assert_eq!(err.exit_code(), 1, "{name}");
        }
    }

    // The wrap TTL is sent as whole seconds whatever form it was typed in; garbage is refused.
    #[test]
    fn wrap_ttl_resolution() {
        let from_flag = Config::resolve(&env_of(&[]), &flags(&["-wrap-ttl=5m"])).unwrap();
        let from_env = Config::resolve(&env_of(&[("VAULT_WRAP_TTL", "90")]), &flags(&[])).unwrap();
        let zero = Config::resolve(&env_of(&[]), &flags(&["-wrap-ttl=0s"])).unwrap();
        let bad = Config::resolve(&env_of(&[]), &flags(&["-wrap-ttl=soon"])).unwrap_err();
        let fraction = Config::resolve(&env_of(&[]), &flags(&["-wrap-ttl=1500ms"])).unwrap_err();

        assert_eq!(from_flag.wrap_ttl.as_deref(), Some("300"));
        assert_eq!(from_env.wrap_ttl.as_deref(), Some("90"));
        assert_eq!(zero.wrap_ttl, None);
        assert_eq!(bad.exit_code(), 1);
        assert!(fraction.to_string().contains("whole number"));
    }

    // Timeouts accept both plain seconds and Go durations, like VAULT_CLIENT_TIMEOUT does.
    #[test]
    fn durations() {
        assert_eq!(parse_duration("60"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("60s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("5d"), None);
    }
}
