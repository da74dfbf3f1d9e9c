//! `sys/audit` (list), `sys/audit/:path` (enable, disable) and `sys/audit-hash/:path`.

use serde_json::{Map, Value, json};

use super::config::{DeviceConfig, options_param};
use super::device::Device;
use super::salt::Salt;
use crate::token::TokenEntry;
use crate::{Core, CoreError, Operation, Request, Response};

/// The only device type this server implements.
const FILE_TYPE: &str = "file";

/// `sys/audit`, `sys/audit/*`, `sys/audit-hash/*`.
pub(crate) async fn route(
    core: &Core,
    req: &Request,
    _token: Option<&TokenEntry>,
) -> Result<Response, CoreError> {
    let write = matches!(req.operation, Operation::Update | Operation::Create);
    let mut resp = if req.path == "sys/audit" || req.path == "sys/audit/" {
        match req.operation {
            Operation::Read | Operation::List => list(core).await?,
            _ => return Err(CoreError::UnsupportedOperation),
        }
    } else if let Some(path) = req.path.strip_prefix("sys/audit/") {
        match req.operation {
            _ if write => enable(core, req, path).await?,
            Operation::Delete => {
                core.disable_audit(&device_path(path)?).await?;
                Response::no_content()
            }
            _ => return Err(CoreError::UnsupportedOperation),
        }
    } else if let Some(path) = req.path.strip_prefix("sys/audit-hash/") {
        if !write {
            return Err(CoreError::UnsupportedOperation);
        }
        audit_hash(core, req, path).await?
    } else {
        return Err(CoreError::UnsupportedPath(req.path.clone()));
    };
    resp.mount_type = "system".into();
    Ok(resp)
}

/// `GET sys/audit`: the enabled devices keyed by path.
async fn list(core: &Core) -> Result<Response, CoreError> {
    let devices = core.audit_devices().await?;
    let data: Map<String, Value> = devices
        .iter()
        .map(|d| (d.config.path.clone(), d.config.to_json()))
        .collect();
    Ok(Response::with_data(data))
}

/// `POST sys/audit/:path`.
async fn enable(core: &Core, req: &Request, path: &str) -> Result<Response, CoreError> {
    let path = device_path(path)?;
    let kind = crate::util::str_param(&req.data, "type")?
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| CoreError::InvalidRequest("backend type must be specified".into()))?;
    if kind != FILE_TYPE {
        return Err(CoreError::InvalidRequest(format!(
            "unknown backend type: {kind:?}; only \"file\" audit devices are supported"
        )));
    }
    // Checked again under the table lock; checking first avoids creating a file for a
    // request that is refused anyway.
    if core
        .audit_devices()
        .await?
        .iter()
        .any(|d| d.config.path == path)
    {
        return Err(CoreError::InvalidRequest(format!(
            "path already in use: {path:?}"
        )));
    }
    let config = DeviceConfig {
        path,
        kind: kind.to_owned(),
        description: crate::util::str_param(&req.data, "description")?
            .unwrap_or_default()
            .to_owned(),
        options: options_param(&req.data)?,
        local: crate::params::bool_param(&req.data, "local")?.unwrap_or(false),
        uuid: uuid::Uuid::new_v4().to_string(),
    };
    let device = Device::open(config, Salt::generate()?)?;
    core.enable_audit(device).await?;
    Ok(Response::no_content())
}

/// `POST sys/audit-hash/:path`.
async fn audit_hash(core: &Core, req: &Request, path: &str) -> Result<Response, CoreError> {
    let path = device_path(path)?;
    let input = crate::util::str_param(&req.data, "input")?.unwrap_or("");
    let devices = core.audit_devices().await?;
    let device = devices
        .iter()
        .find(|d| d.config.path == path)
        .ok_or_else(|| CoreError::InvalidRequest(format!("unknown audit backend {path}")))?;
    let mut data = Map::new();
    data.insert("hash".into(), json!(device.hash(input)));
    Ok(Response::with_data(data))
}

/// `file` and `file/` both name the device `file/`.
fn device_path(raw: &str) -> Result<String, CoreError> {
    let trimmed = raw.trim_matches('/');
    if trimmed.is_empty() {
        return Err(CoreError::InvalidRequest(
            "audit device path is required".into(),
        ));
    }
    Ok(format!("{trimmed}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_paths_are_normalized() {
        // Why: `file` and `file/` must name the same device, as in Vault.
        assert_eq!(device_path("file").unwrap(), "file/");
        assert_eq!(device_path("file/").unwrap(), "file/");
        assert!(device_path("/").is_err());
    }
}
