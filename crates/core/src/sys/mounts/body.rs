//! Parsing the bodies of enable and tune requests into typed specs.
//!
//! Kept apart from the handlers so the loose forms Vault accepts (TTLs as `"1h"` or `3600`,
//! lists as arrays or comma strings) are decided in one place for secrets and auth mounts.

use serde_json::{Map, Value};

use crate::mounts::{MountConfig, MountSpec, TuneSpec};
use crate::params::{bool_param, duration_param, string_list_param};
use crate::util::str_param;
use crate::{CoreError, Request};

/// An optional JSON object parameter.
fn object<'a>(
    data: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a Map<String, Value>>, CoreError> {
    match data.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(other) => Err(CoreError::InvalidRequest(format!(
            "invalid value for \"{name}\": expected an object, got {other}"
        ))),
    }
}

/// A duration in seconds as stored in mount config.
fn secs(data: &Map<String, Value>, name: &str) -> Result<Option<i64>, CoreError> {
    // "system" means "use the system default", which a 0 stores.
    if data.get(name).and_then(Value::as_str) == Some("system") {
        return Ok(Some(0));
    }
    duration_param(data, name)?
        .map(|s| {
            i64::try_from(s).map_err(|_| {
                CoreError::InvalidRequest(format!("invalid value for \"{name}\": too large"))
            })
        })
        .transpose()
}

/// `POST sys/mounts/:path` or `sys/auth/:path`.
pub(super) fn enable_spec(req: &Request, path: &str, auth: bool) -> Result<MountSpec, CoreError> {
    let d = &req.data;
    let engine = str_param(d, "type")?
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            CoreError::InvalidRequest(if auth {
                "missing 'type' parameter: the auth method to enable, e.g. type=userpass".into()
            } else {
                "missing 'type' parameter: the secrets engine to mount, e.g. type=kv".into()
            })
        })?;
    let mut config = MountConfig::default();
    if let Some(c) = object(d, "config")? {
        config.default_lease_ttl = secs(c, "default_lease_ttl")?.unwrap_or(0);
        config.max_lease_ttl = secs(c, "max_lease_ttl")?.unwrap_or(0);
        config.force_no_cache = bool_param(c, "force_no_cache")?.unwrap_or(false);
        config.listing_visibility = str_param(c, "listing_visibility")?.unwrap_or("").to_owned();
        config.audit_non_hmac_request_keys =
            string_list_param(c, "audit_non_hmac_request_keys")?.unwrap_or_default();
        config.audit_non_hmac_response_keys =
            string_list_param(c, "audit_non_hmac_response_keys")?.unwrap_or_default();
        config.passthrough_request_headers =
            string_list_param(c, "passthrough_request_headers")?.unwrap_or_default();
        config.allowed_response_headers =
            string_list_param(c, "allowed_response_headers")?.unwrap_or_default();
        if let Some(t) = str_param(c, "token_type")? {
            if !auth {
                return Err(CoreError::InvalidRequest(
                    "token_type can only be set on auth mounts".into(),
                ));
            }
            config.token_type = t.to_owned();
        }
    }
    Ok(MountSpec {
        path: path.to_owned(),
        engine: engine.to_owned(),
        description: str_param(d, "description")?.unwrap_or("").to_owned(),
        options: object(d, "options")?.cloned().unwrap_or_default(),
        local: bool_param(d, "local")?.unwrap_or(false),
        seal_wrap: bool_param(d, "seal_wrap")?.unwrap_or(false),
        config,
        auth,
    })
}

/// `POST .../tune`.
pub(super) fn tune_spec(req: &Request) -> Result<TuneSpec, CoreError> {
    let d = &req.data;
    Ok(TuneSpec {
        default_lease_ttl: secs(d, "default_lease_ttl")?,
        max_lease_ttl: secs(d, "max_lease_ttl")?,
        description: str_param(d, "description")?.map(str::to_owned),
        force_no_cache: bool_param(d, "force_no_cache")?,
        token_type: str_param(d, "token_type")?.map(str::to_owned),
        listing_visibility: str_param(d, "listing_visibility")?.map(str::to_owned),
        audit_non_hmac_request_keys: string_list_param(d, "audit_non_hmac_request_keys")?,
        audit_non_hmac_response_keys: string_list_param(d, "audit_non_hmac_response_keys")?,
        passthrough_request_headers: string_list_param(d, "passthrough_request_headers")?,
        allowed_response_headers: string_list_param(d, "allowed_response_headers")?,
        options: object(d, "options")?.cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Operation;
    use serde_json::json;

    fn req(body: Value) -> Request {
        Request::new(Operation::Update, "sys/mounts/x")
            .with_data(body.as_object().cloned().unwrap_or_default())
    }

    #[test]
    fn enable_body_accepts_loose_forms() {
        // Why: the CLI sends TTLs as strings and hvac as "3600s"; both must be understood.
        let r = req(json!({"type": "kv", "local": "true",
            "config": {"default_lease_ttl": "1h", "max_lease_ttl": 7200,
                       "audit_non_hmac_request_keys": "a,b"},
            "options": {"version": 2}}));
        let s = enable_spec(&r, "x", false).unwrap();
        assert!(s.local);
        assert_eq!(s.config.default_lease_ttl, 3600);
        assert_eq!(s.config.max_lease_ttl, 7200);
        assert_eq!(s.config.audit_non_hmac_request_keys, ["a", "b"]);
        assert_eq!(s.options.get("version"), Some(&json!(2)));
    }

    #[test]
    fn enable_body_refuses_bad_input() {
        // Why: a missing type or a token_type on a secrets mount is a client mistake.
        assert!(enable_spec(&req(json!({})), "x", false).is_err());
        let bad = req(json!({"type": "kv", "config": {"token_type": "batch"}}));
        assert!(enable_spec(&bad, "x", false).is_err());
        assert!(enable_spec(&bad, "x", true).is_ok());
        assert!(enable_spec(&req(json!({"type": "kv", "options": "v2"})), "x", false).is_err());
    }

    #[test]
    fn tune_body_leaves_absent_fields_alone() {
        // Why: tuning one setting must not reset the others.
        let t = tune_spec(&req(json!({"max_lease_ttl": "3600s"}))).unwrap();
        assert_eq!(t.max_lease_ttl, Some(3600));
        assert_eq!(t.default_lease_ttl, None);
        assert!(t.description.is_none() && t.options.is_none());
    }
}
