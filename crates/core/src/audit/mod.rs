//! Audit devices: one JSON line per request and per response, secrets HMAC'd.
//!
//! The audit log is how a team answers "who read this secret, when?" after the fact, so it
//! must be complete (a request that cannot be recorded is refused: fail closed) and must not
//! itself become a copy of the secrets (every sensitive string is an HMAC under a per-device
//! salt kept behind the barrier; `sys/audit-hash` lets an operator hash a candidate to search
//! for it).
//!
//! Interface used by the pipeline (keep these signatures): [`Core::audit_request`],
//! [`Core::audit_response`] (both fail closed when devices exist but none can record), and
//! [`route`] for `sys/audit*` and `sys/audit-hash/*`. [`Core::load_audit`] reads the device
//! table (call it after unseal; requests also load it lazily) and [`Core::clear_audit`]
//! forgets it (call it on seal).

mod config;
mod device;
mod entry;
mod routes;
mod salt;
mod sink;

use std::sync::{Arc, RwLock};

use strongroom_barrier::BarrierOp;

use crate::keys::{AUDIT, AUDIT_SALT_PREFIX};
use crate::mounts::MountEntry;
use crate::policy::AclDecision;
use crate::token::TokenEntry;
use crate::{Core, CoreError, Request, Response};
use config::{AuditTable, DeviceConfig};
use device::Device;
use entry::Event;
use salt::Salt;

pub(crate) use routes::route;

type Devices = Arc<Vec<Arc<Device>>>;

/// The devices that recorded a request (`None`: the request was not audited).
pub(crate) struct AuditTrail(Option<Devices>);

/// The in-memory audit devices of a core (the `Core::audit` field).
#[derive(Default)]
pub(crate) struct AuditBroker {
    /// `None` until the table was read since the last unseal.
    devices: RwLock<Option<Devices>>,
    /// Serializes table changes and loading.
    change: tokio::sync::Mutex<()>,
}

/// Paths Vault never audits (most never reach the pipeline; listed for the ones that might).
fn audited(path: &str) -> bool {
    const EXACT: &[&str] = &[
        "sys/init",
        "sys/seal-status",
        "sys/unseal",
        "sys/leader",
        "sys/health",
        "sys/storage/raft/bootstrap",
        "sys/storage/raft/join",
        "sys/internal/ui/feature-flags",
    ];
    if EXACT.contains(&path) {
        return false;
    }
    let rekey = path.starts_with("sys/rekey")
        && ["/init", "/update", "/verify"]
            .iter()
            .any(|s| path.ends_with(s));
    !rekey
}

impl Core {
    /// Reads the audit table and opens every device. A device that cannot be opened is an
    /// error: serving without it would silently drop its audit trail.
    pub(crate) async fn load_audit(&self) -> Result<(), CoreError> {
        let _guard = self.audit.change.lock().await;
        let devices = self.read_audit_table().await?;
        *write_lock(&self.audit.devices) = Some(devices);
        Ok(())
    }

    /// Forgets the devices (on seal); they are re-read on the next unseal or request.
    pub(crate) fn clear_audit(&self) {
        *write_lock(&self.audit.devices) = None;
    }

    /// Records a request before it is served, and returns the devices that recorded it: the
    /// response goes to the same devices, even if the request itself sealed the node or
    /// replaced the audit table.
    pub(crate) async fn audit_request(
        &self,
        req: &Request,
        token: Option<&TokenEntry>,
        mount: Option<&MountEntry>,
        decision: Option<&AclDecision>,
    ) -> Result<AuditTrail, CoreError> {
        // A DR secondary's audit table is its primary's, with the primary's file paths: it
        // takes effect at promotion. Until then the few paths a secondary answers are not
        // audited, rather than refused for devices this host may not have.
        if !audited(&req.path) || self.replication.is_dr_secondary() {
            return Ok(AuditTrail(None));
        }
        let devices = self.audit_devices().await?;
        if devices.is_empty() {
            return Ok(AuditTrail(None));
        }
        let time = crate::util::rfc3339(std::time::SystemTime::now(), false);
        let ev = Event {
            req,
            token,
            mount,
            decision,
            result: None,
            time: &time,
        };
        broadcast(&devices, &ev, "request")?;
        Ok(AuditTrail(Some(devices)))
    }

    /// Records the outcome of a request on the devices that recorded the request.
    pub(crate) fn audit_response(
        &self,
        trail: &AuditTrail,
        req: &Request,
        token: Option<&TokenEntry>,
        mount: Option<&MountEntry>,
        result: &Result<Response, CoreError>,
    ) -> Result<(), CoreError> {
        let Some(devices) = &trail.0 else {
            return Ok(());
        };
        let time = crate::util::rfc3339(std::time::SystemTime::now(), false);
        let ev = Event {
            req,
            token,
            mount,
            decision: None,
            result: Some(result),
            time: &time,
        };
        broadcast(devices, &ev, "response")
    }

    /// The current devices, reading the table on first use after unseal.
    async fn audit_devices(&self) -> Result<Devices, CoreError> {
        if let Some(d) = read_lock(&self.audit.devices).as_ref() {
            return Ok(d.clone());
        }
        let _guard = self.audit.change.lock().await;
        if let Some(d) = read_lock(&self.audit.devices).as_ref() {
            return Ok(d.clone());
        }
        let devices = self.read_audit_table().await?;
        *write_lock(&self.audit.devices) = Some(devices.clone());
        Ok(devices)
    }

    async fn read_audit_table(&self) -> Result<Devices, CoreError> {
        let table = self.stored_audit_table().await?;
        let mut devices = Vec::with_capacity(table.entries.len());
        for config in table.entries {
            let raw = self.barrier.get(&salt_key(&config)).await?.ok_or_else(|| {
                CoreError::Internal(format!(
                    "audit device {:?} has no stored salt; disable and re-enable it",
                    config.path
                ))
            })?;
            let salt = Salt::from_bytes(raw)?;
            let path = config.path.clone();
            let device = Device::open(config, salt).map_err(|e| {
                CoreError::Internal(format!("audit device {path:?} cannot be opened: {e}"))
            })?;
            devices.push(Arc::new(device));
        }
        Ok(Arc::new(devices))
    }

    async fn stored_audit_table(&self) -> Result<AuditTable, CoreError> {
        match self.barrier.get(AUDIT).await? {
            None => Ok(AuditTable::default()),
            Some(raw) => serde_json::from_slice(&raw)
                .map_err(|e| CoreError::Internal(format!("audit table is corrupt: {e}"))),
        }
    }

    /// Persists and activates a new device.
    async fn enable_audit(&self, device: Device) -> Result<(), CoreError> {
        self.audit_devices().await?;
        let _guard = self.audit.change.lock().await;
        let mut table = self.stored_audit_table().await?;
        if table.entries.iter().any(|e| e.path == device.config.path) {
            return Err(CoreError::InvalidRequest(format!(
                "path already in use: {:?}",
                device.config.path
            )));
        }
        table.entries.push(device.config.clone());
        let ops = vec![
            BarrierOp::Put {
                key: salt_key(&device.config),
                value: device.salt_bytes().to_vec(),
            },
            BarrierOp::Put {
                key: AUDIT.into(),
                value: encode_table(&table)?,
            },
        ];
        self.barrier.write(ops).await?;
        let mut guard = write_lock(&self.audit.devices);
        let mut next: Vec<Arc<Device>> = guard.as_deref().cloned().unwrap_or_default();
        next.push(Arc::new(device));
        *guard = Some(Arc::new(next));
        Ok(())
    }

    /// Removes a device; absent devices are not an error (Vault answers 204).
    async fn disable_audit(&self, path: &str) -> Result<(), CoreError> {
        self.audit_devices().await?;
        let _guard = self.audit.change.lock().await;
        let mut table = self.stored_audit_table().await?;
        let Some(pos) = table.entries.iter().position(|e| e.path == path) else {
            return Ok(());
        };
        let removed = table.entries.remove(pos);
        let ops = vec![
            BarrierOp::Put {
                key: AUDIT.into(),
                value: encode_table(&table)?,
            },
            BarrierOp::Delete {
                key: salt_key(&removed),
            },
        ];
        self.barrier.write(ops).await?;
        let mut guard = write_lock(&self.audit.devices);
        let next: Vec<Arc<Device>> = guard
            .as_deref()
            .map(|d| {
                d.iter()
                    .filter(|d| d.config.path != path)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        *guard = Some(Arc::new(next));
        Ok(())
    }
}

/// Writes `ev` to every device; fails only when devices exist and none recorded it.
fn broadcast(devices: &[Arc<Device>], ev: &Event<'_>, what: &str) -> Result<(), CoreError> {
    let mut recorded = 0usize;
    for device in devices.iter() {
        match device.record(ev) {
            Ok(()) => recorded += 1,
            // The error is an I/O or encoding message: it never contains the line.
            Err(e) => tracing::error!(
                device = %device.config.path,
                error = %e,
                "audit device failed to record a {what}"
            ),
        }
    }
    if recorded == 0 {
        return Err(CoreError::Internal(format!(
            "failed to log {what} to any audit device; fix the audit devices' outputs \
             (see the server log) before retrying"
        )));
    }
    Ok(())
}

/// Locks for reading, ignoring poisoning: the guarded value is replaced whole, never left
/// half-updated.
fn read_lock<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write_lock<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

fn salt_key(config: &DeviceConfig) -> String {
    format!("{AUDIT_SALT_PREFIX}{}", config.uuid)
}

fn encode_table(table: &AuditTable) -> Result<Vec<u8>, CoreError> {
    serde_json::to_vec(table).map_err(|e| CoreError::Internal(format!("encoding audit table: {e}")))
}

#[cfg(test)]
mod tests {
    use super::audited;

    #[test]
    fn seal_and_health_paths_are_not_audited() {
        // Why: Vault's list of never-audited paths; everything else must be recorded.
        assert!(!audited("sys/health"));
        assert!(!audited("sys/rekey/init"));
        assert!(!audited("sys/rekey-recovery-key/verify"));
        assert!(audited("sys/rekey/backup"));
        assert!(audited("secret/data/x"));
        assert!(audited("sys/audit/file"));
    }
}
