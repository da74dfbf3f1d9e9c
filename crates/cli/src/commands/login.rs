//! `login`: authenticate and remember the token in the token helper.
//!
//! Token login verifies the token with `auth/token/lookup-self` before storing it, so a typo
//! never replaces a working token; userpass and approle logins exchange credentials for a new
//! token. A wrapped login answer (`-wrap-ttl`) is shown, never stored: the token inside is
//! meant for whoever unwraps it.

use reqwest::Method;
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use super::{BIN, Command, Ctx, sanitize_path};
use crate::args::{FlagSpec, Parsed};
use crate::client::Body;
use crate::config::HTTP_FLAGS;
use crate::error::{CliError, EXIT_OK};
use crate::kv_args::parse_data;
use crate::output::{Format, OUTPUT_FLAGS, is_wrapped, render_secret};
use crate::token_helper::TokenHelper;

const LOGIN_FLAGS: &[FlagSpec] = &[
    FlagSpec::value(
        "method",
        "Auth method: token (default), userpass or approle.",
    ),
    FlagSpec::value(
        "path",
        "Mount path of the auth method (default: the method name).",
    ),
    FlagSpec::switch("no-store", "Do not store the token in the token helper."),
    FlagSpec::switch("token-only", "Print only the token; implies -no-store."),
    FlagSpec::switch("no-print", "Print nothing on success."),
];

pub const COMMAND: Command = Command {
    words: &["login"],
    args: "[TOKEN | K=V...]",
    synopsis: "Authenticate and store the token (prompts for it if omitted).",
    flags: &[HTTP_FLAGS, OUTPUT_FLAGS, LOGIN_FLAGS],
    run,
};

fn run(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<i32, CliError> {
    let output = ctx.output(flags)?;
    let method = flags.value("method").unwrap_or("token");
    let envelope = match method {
        "token" => token_login(ctx, flags)?,
        "userpass" => userpass_login(ctx, flags)?,
        "approle" => approle_login(ctx, flags)?,
        other => {
            return Err(CliError::Usage(format!(
                "Unsupported auth method {other:?}: use token, userpass or approle"
            )));
        }
    };
    if is_wrapped(&envelope) {
        let rendered = render_secret(&envelope, &output)?;
        ctx.emit(&rendered)?;
        return Ok(EXIT_OK);
    }
    let token = envelope
        .pointer("/auth/client_token")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let token = Zeroizing::new(token);
    if token.is_empty() {
        return Err(CliError::Remote(
            "Error authenticating: the server returned no token".to_string(),
        ));
    }

    let token_only = flags.switch("token-only");
    let store = !flags.switch("no-store") && !token_only;
    if store {
        let helper = TokenHelper::from_env(ctx.env).ok_or_else(|| {
            CliError::Local(
                "Cannot store the token: HOME is not set (use -no-store and VAULT_TOKEN)"
                    .to_string(),
            )
        })?;
        helper.store(&token)?;
    }

    if token_only {
        ctx.out(&format!("{}\n", token.as_str()))?;
        return Ok(EXIT_OK);
    }
    if flags.switch("no-print") {
        return Ok(EXIT_OK);
    }
    if output.field.is_none() && output.format == Format::Table {
        ctx.out(&success_banner(store))?;
    }
    let rendered = render_secret(&envelope, &output)?;
    ctx.emit(&rendered)?;
    Ok(EXIT_OK)
}

fn success_banner(stored: bool) -> String {
    if stored {
        format!(
            "Success! You are now authenticated. The token information displayed below\n\
             is already stored in the token helper. You do NOT need to run \"{BIN} login\"\n\
             again. Future requests will automatically use this token.\n\n"
        )
    } else {
        "Success! You are now authenticated. The token information displayed below\n\
         was NOT stored in the token helper; set it as VAULT_TOKEN to use it in later\n\
         requests.\n\n"
            .to_string()
    }
}

/// Verifies a token with lookup-self and presents it as a login answer.
fn token_login(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<Value, CliError> {
    if flags.positionals.len() > 1 {
        return Err(CliError::Usage(format!(
            "Too many arguments (expected at most 1, got {})",
            flags.positionals.len()
        )));
    }
    let token = match flags.positionals.first().map(String::as_str) {
        Some("-") => {
            let mut text = Zeroizing::new(String::new());
            ctx.stdin
                .read_to_string(&mut text)
                .map_err(|err| CliError::Local(format!("Error reading from stdin: {err}")))?;
            Zeroizing::new(text.trim().to_string())
        }
        // `login token=X` is accepted as well as `login X`.
        Some(token) => Zeroizing::new(
            token
                .strip_prefix("token=")
                .unwrap_or(token)
                .trim()
                .to_string(),
        ),
        None => ctx.prompt_secret("Token (will be hidden): ")?,
    };
    if token.is_empty() {
        return Err(CliError::Usage("The token is empty".to_string()));
    }
    let mut client = ctx.connect(flags)?;
    client.set_token(Some(token.clone()));
    // The lookup only verifies the token for us; wrapping it would hide the answer.
    client.set_wrap_ttl(None);
    let lookup = client
        .get_json("auth/token/lookup-self")
        .map_err(|err| CliError::client("Error authenticating", err))?
        .ok_or_else(|| {
            CliError::Remote("Error authenticating: the token lookup returned no data".to_string())
        })?;
    Ok(auth_from_lookup(&token, &lookup))
}

/// Builds a login-shaped envelope from a lookup-self answer.
fn auth_from_lookup(token: &str, lookup: &Value) -> Value {
    let data = lookup.get("data").cloned().unwrap_or(Value::Null);
    let field = |key: &str| data.get(key).cloned().unwrap_or(Value::Null);
    let policies = data
        .get("policies")
        .cloned()
        .unwrap_or_else(|| Value::Array(Vec::new()));
    let metadata = match data.get("meta") {
        Some(Value::Object(meta)) => Value::Object(meta.clone()),
        _ => Value::Null,
    };
    json!({
        "request_id": lookup.get("request_id").cloned().unwrap_or(json!("")),
        "lease_id": "",
        "lease_duration": 0,
        "renewable": false,
        "data": null,
        "warnings": lookup.get("warnings").cloned().unwrap_or(Value::Null),
        "wrap_info": null,
        "auth": {
            "client_token": token,
            "accessor": field("accessor"),
            "policies": policies.clone(),
            "token_policies": policies,
            "identity_policies": data.get("identity_policies").cloned().unwrap_or(json!([])),
            "metadata": metadata,
            "lease_duration": data.get("ttl").cloned().unwrap_or(json!(0)),
            "renewable": data.get("renewable").cloned().unwrap_or(json!(false)),
            "entity_id": data.get("entity_id").cloned().unwrap_or(json!("")),
            "token_type": data.get("type").cloned().unwrap_or(json!("service")),
            "orphan": data.get("orphan").cloned().unwrap_or(json!(false)),
            "mfa_requirement": null,
            "num_uses": data.get("num_uses").cloned().unwrap_or(json!(0)),
        }
    })
}

/// `-method=userpass username=U [password=P]`: POST auth/<path>/login/<username>.
fn userpass_login(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<Value, CliError> {
    let mut data: Map<String, Value> = parse_data(&flags.positionals, ctx.stdin)?;
    let username = match data.remove("username") {
        Some(Value::String(name)) if !name.is_empty() => name,
        _ => {
            return Err(CliError::Usage(
                "userpass login needs username=<name>".to_string(),
            ));
        }
    };
    let password = match data.remove("password") {
        Some(Value::String(password)) => Zeroizing::new(password),
        Some(_) => {
            return Err(CliError::Usage(
                "password must be a single value".to_string(),
            ));
        }
        None => ctx.prompt_secret("Password (will be hidden): ")?,
    };
    data.insert("password".to_string(), Value::String(password.to_string()));
    let mount = sanitize_path(flags.value("path").unwrap_or("userpass"));
    let path = format!("auth/{mount}/login/{username}");
    post_credentials(ctx, flags, &path, data, "password")
}

/// `-method=approle role_id=R [secret_id=S]`: POST auth/<path>/login.
fn approle_login(ctx: &mut Ctx<'_>, flags: &Parsed) -> Result<Value, CliError> {
    let data: Map<String, Value> = parse_data(&flags.positionals, ctx.stdin)?;
    match data.get("role_id") {
        Some(Value::String(id)) if !id.is_empty() => {}
        _ => {
            return Err(CliError::Usage(
                "approle login needs role_id=<role ID> (and secret_id=<secret ID> unless the \
                 role does not bind one)"
                    .to_string(),
            ));
        }
    }
    if data.get("secret_id").is_some_and(|id| !id.is_string()) {
        return Err(CliError::Usage(
            "secret_id must be a single value".to_string(),
        ));
    }
    let mount = sanitize_path(flags.value("path").unwrap_or("approle"));
    let path = format!("auth/{mount}/login");
    post_credentials(ctx, flags, &path, data, "secret_id")
}

/// POSTs login credentials without any stored token, then wipes the secret field's copy.
fn post_credentials(
    ctx: &mut Ctx<'_>,
    flags: &Parsed,
    path: &str,
    data: Map<String, Value>,
    secret_field: &str,
) -> Result<Value, CliError> {
    let mut client = ctx.connect(flags)?;
    client.set_token(None);
    let body = Value::Object(data);
    let result = client.send(Method::POST, path, &[], Body::Json(&body));
    // The request body held the credential; clear our copy now that it has been sent.
    if let Value::Object(mut map) = body
        && let Some(Value::String(mut sent)) = map.remove(secret_field)
    {
        zeroize::Zeroize::zeroize(&mut sent);
    }
    result
        .map_err(|err| CliError::client("Error authenticating", err))?
        .ok_or_else(|| {
            CliError::Remote("Error authenticating: the server returned no data".to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::extract_field;

    // A token login is presented like a login answer, so -field=token and the table work.
    #[test]
    fn lookup_becomes_auth_envelope() {
        let lookup = json!({
            "request_id": "r",
            "data": {"accessor": "acc", "policies": ["root"], "ttl": 0, "renewable": false,
                      "meta": null, "type": "service", "id": "root"}
        });

        let envelope = auth_from_lookup("root", &lookup);

        assert_eq!(extract_field(&envelope, "token"), Some(json!("root")));
        assert_eq!(
            extract_field(&envelope, "token_accessor"),
            Some(json!("acc"))
        );
        assert_eq!(
            extract_field(&envelope, "token_policies"),
            Some(json!(["root"]))
        );
        assert_eq!(envelope["auth"]["metadata"], Value::Null);
    }
}
