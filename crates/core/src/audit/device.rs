//! One enabled audit device: its settings, its salt and its open output.

use super::config::{DeviceConfig, Settings};
use super::entry::{self, Event};
use super::salt::{Hasher, Salt};
use super::sink::Sink;
use crate::CoreError;

/// An enabled device, ready to record.
pub(super) struct Device {
    pub config: DeviceConfig,
    settings: Settings,
    salt: Salt,
    sink: Sink,
}

impl Device {
    /// Validates `config` and opens its output. Errors are client errors (400) because they
    /// come from the operator's options (bad option, unwritable file).
    pub(super) fn open(config: DeviceConfig, salt: Salt) -> Result<Device, CoreError> {
        let settings = Settings::parse(&config.options)?;
        let sink = Sink::open(&settings.target, settings.mode).map_err(|e| {
            CoreError::InvalidRequest(format!(
                "audit device {:?} cannot open its file for appending: {e}; check the \
                 directory exists and is writable by the server",
                config.path
            ))
        })?;
        Ok(Device {
            config,
            settings,
            salt,
            sink,
        })
    }

    /// Writes `ev` as one line.
    pub(super) fn record(&self, ev: &Event<'_>) -> Result<(), String> {
        let hasher = Hasher {
            salt: (!self.settings.log_raw).then_some(&self.salt),
            hmac_accessor: self.settings.hmac_accessor,
        };
        let value = entry::render(ev, &hasher, self.settings.elide_list_responses);
        let mut line = Vec::with_capacity(1024);
        line.extend_from_slice(self.settings.prefix.as_bytes());
        serde_json::to_writer(&mut line, &value).map_err(|e| format!("encoding: {e}"))?;
        line.push(b'\n');
        self.sink.write_line(&line).map_err(|e| e.to_string())
    }

    /// The salt, for persisting at enable time.
    pub(super) fn salt_bytes(&self) -> &[u8] {
        self.salt.as_bytes()
    }

    /// `sys/audit-hash`: the value as this device would log it (always salted, even for
    /// `log_raw` devices, so operators can compare against other devices).
    pub(super) fn hash(&self, input: &str) -> String {
        self.salt.hash(input)
    }
}
