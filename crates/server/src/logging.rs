//! Logging to stderr with a level that SIGHUP can change without a restart.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

/// Changes the log level of the running process.
pub struct LogControl {
    handle: reload::Handle<EnvFilter, tracing_subscriber::Registry>,
}

/// Maps Vault's level names to a filter: our crates at `level`, dependencies one step quieter.
fn filter(level: &str) -> Result<EnvFilter, String> {
    let level = match level.to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "info" | "" => "info",
        "warn" | "warning" => "warn",
        "err" | "error" => "error",
        other => {
            return Err(format!(
                "invalid log level {other:?}: use trace, debug, info, warn or error"
            ));
        }
    };
    EnvFilter::try_new(format!("warn,strongroom={level},strongroom_core={level},strongroom_http={level},strongroom_server={level},strongroom_storage={level},strongroom_barrier={level}"))
        .map_err(|e| format!("invalid log filter: {e}"))
}

impl LogControl {
    /// Installs the global subscriber. `json` selects `log_format = "json"`.
    pub fn init(level: &str, json: bool) -> Result<LogControl, String> {
        let (layer, handle) = reload::Layer::new(filter(level)?);
        let registry = tracing_subscriber::registry().with(layer);
        use std::io::IsTerminal as _;
        let fmt = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal());
        let res = if json {
            registry.with(fmt.json()).try_init()
        } else {
            registry.with(fmt).try_init()
        };
        res.map_err(|e| format!("installing the logger: {e}"))?;
        Ok(LogControl { handle })
    }

    /// Switches to a new level.
    pub fn set_level(&self, level: &str) -> Result<(), String> {
        self.handle
            .reload(filter(level)?)
            .map_err(|e| format!("reloading log level: {e}"))
    }
}
