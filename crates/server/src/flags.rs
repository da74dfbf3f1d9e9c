//! Flags of `strongroom server`, accepted in Vault's single-dash style as typed.

use std::path::PathBuf;

/// Parsed `server` flags.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ServerFlags {
    pub config: Vec<PathBuf>,
    pub dev: bool,
    /// `-dev-dr`: a DR primary and its DR secondary in one process.
    pub dev_dr: bool,
    /// `-dev-ha`: a three-node Raft cluster in one process.
    pub dev_ha: bool,
    /// `-dev-pr`: a performance primary, its performance secondary and that secondary's DR
    /// secondary in one process.
    pub dev_pr: bool,
    pub dev_root_token_id: Option<String>,
    pub dev_listen_address: Option<String>,
    pub dev_no_store_token: bool,
    pub log_level: Option<String>,
}

const USAGE: &str = "Usage: strongroom server [options]

  Starts a Strongroom server.

  -config=<path>             Path to a configuration file or directory (repeatable).
  -dev                       In-memory, auto-initialized and unsealed development server.
  -dev-dr                    Like -dev, but a DR primary and its DR secondary over TLS
                             (API on the -dev-listen-address port and that port + 10).
  -dev-ha                    Like -dev, but a three-node Raft cluster over TLS, already
                             formed (API on the -dev-listen-address port, +10 and +20).
  -dev-pr                    Like -dev, but a performance primary, its performance secondary
                             and that secondary's DR secondary over TLS (API on the
                             -dev-listen-address port, +10 and +20).
  -dev-root-token-id=<id>    Root token id for -dev (env VAULT_DEV_ROOT_TOKEN_ID).
  -dev-listen-address=<addr> Listen address for -dev (default 127.0.0.1:8200,
                             env VAULT_DEV_LISTEN_ADDRESS).
  -dev-no-store-token        Do not write the root token to ~/.vault-token in -dev.
  -log-level=<level>         trace, debug, info, warn or error (env VAULT_LOG_LEVEL).";

impl ServerFlags {
    /// Parses `args` (after the word `server`); `env` supplies Vault's environment fallbacks.
    pub fn parse(
        args: &[String],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ServerFlags, String> {
        let mut f = ServerFlags::default();
        let mut i = 0;
        while i < args.len() {
            let arg = &args[i];
            let body = arg
                .strip_prefix("--")
                .or_else(|| arg.strip_prefix('-'))
                .ok_or_else(|| {
                    format!("unexpected argument {arg:?}: server takes only flags\n\n{USAGE}")
                })?;
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (body, None),
            };
            let value = |i: &mut usize| -> Result<String, String> {
                if let Some(v) = inline.clone() {
                    return Ok(v);
                }
                *i += 1;
                args.get(*i)
                    .cloned()
                    .ok_or_else(|| format!("flag -{name} needs a value"))
            };
            match name {
                "config" => f.config.push(PathBuf::from(value(&mut i)?)),
                "dev" => f.dev = parse_bool(name, inline.as_deref())?,
                "dev-dr" => f.dev_dr = parse_bool(name, inline.as_deref())?,
                "dev-ha" => f.dev_ha = parse_bool(name, inline.as_deref())?,
                "dev-pr" => f.dev_pr = parse_bool(name, inline.as_deref())?,
                "dev-root-token-id" => f.dev_root_token_id = Some(value(&mut i)?),
                "dev-listen-address" => f.dev_listen_address = Some(value(&mut i)?),
                "dev-no-store-token" => f.dev_no_store_token = parse_bool(name, inline.as_deref())?,
                "log-level" => f.log_level = Some(value(&mut i)?),
                "h" | "help" => return Err(USAGE.to_owned()),
                _ => return Err(format!("unknown flag -{name}\n\n{USAGE}")),
            }
            i += 1;
        }
        if f.dev_dr || f.dev_ha || f.dev_pr {
            f.dev = false;
            f.dev_root_token_id = f
                .dev_root_token_id
                .or_else(|| env("VAULT_DEV_ROOT_TOKEN_ID"));
            f.dev_listen_address = f
                .dev_listen_address
                .or_else(|| env("VAULT_DEV_LISTEN_ADDRESS"));
        } else if f.dev {
            f.dev_root_token_id = f
                .dev_root_token_id
                .or_else(|| env("VAULT_DEV_ROOT_TOKEN_ID"));
            f.dev_listen_address = f
                .dev_listen_address
                .or_else(|| env("VAULT_DEV_LISTEN_ADDRESS"));
        } else if f.config.is_empty() {
            return Err(format!(
                "a configuration is required: pass -config=FILE, or -dev for a development server\n\n{USAGE}"
            ));
        }
        f.log_level = f.log_level.or_else(|| env("VAULT_LOG_LEVEL"));
        Ok(f)
    }
}

fn parse_bool(name: &str, v: Option<&str>) -> Result<bool, String> {
    match v {
        None => Ok(true),
        Some("true" | "1" | "t") => Ok(true),
        Some("false" | "0" | "f") => Ok(false),
        Some(other) => Err(format!("flag -{name} takes a boolean, got {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ServerFlags, String> {
        ServerFlags::parse(
            &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            |_| None,
        )
    }

    #[test]
    fn vault_style_flags_parse_as_typed() {
        // Why: operators paste Vault command lines unchanged.
        let f = parse(&[
            "-dev",
            "-dev-root-token-id=root",
            "--dev-listen-address",
            "127.0.0.1:9",
        ])
        .unwrap();
        assert!(f.dev);
        assert_eq!(f.dev_root_token_id.as_deref(), Some("root"));
        assert_eq!(f.dev_listen_address.as_deref(), Some("127.0.0.1:9"));
        let f = parse(&["-config=a.hcl", "-config", "b.hcl"]).unwrap();
        assert_eq!(f.config.len(), 2);
    }

    #[test]
    fn missing_config_and_unknown_flags_are_errors() {
        // Why: a typo must not start a server with defaults the operator did not ask for.
        assert!(
            parse(&[])
                .unwrap_err()
                .contains("configuration is required")
        );
        assert!(
            parse(&["-dev", "-bogus"])
                .unwrap_err()
                .contains("unknown flag -bogus")
        );
    }
}
