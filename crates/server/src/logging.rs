//! Logging to stderr with a level that SIGHUP can change without a restart.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

/// Changes the log level of the running process.
pub struct LogControl {
    handle: reload::Handle<EnvFilter, tracing_subscriber::Registry>,
}

/// Maps Vault's level names to a filter: our crates at `level`, dependencies at `warn`
/// whatever the level (their debug and trace output is not vetted for secrets).
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
    EnvFilter::try_new(format!("warn,strongroom={level},strongroom_core={level},strongroom_http={level},strongroom_server={level},strongroom_storage={level},strongroom_barrier={level},strongroom_replication={level}"))
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

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    /// Collects what the fmt layer writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn trace_reaches_our_crates_but_dependencies_stay_at_warn() {
        // Set up: a subscriber with the `trace` filter writing into a buffer.
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::registry()
            .with(super::filter("trace").unwrap())
            .with(tracing_subscriber::fmt::layer().with_writer(move || writer.clone()));

        // Act: trace events from our crates and from dependencies (h2, hyper), whose debug
        // and trace output describes connections and frames we have not vetted for secrets.
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "strongroom_http::router", "ours-http");
            tracing::trace!(target: "strongroom_replication::runner", "ours-replication");
            tracing::trace!(target: "h2::codec", "theirs-h2");
            tracing::debug!(target: "hyper::proto", "theirs-hyper");
            tracing::warn!(target: "rustls::conn", "theirs-warning");
        });

        // Assert
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(
            text.contains("ours-http") && text.contains("ours-replication"),
            "{text}"
        );
        assert!(
            !text.contains("theirs-h2") && !text.contains("theirs-hyper"),
            "{text}"
        );
        assert!(text.contains("theirs-warning"), "{text}");
    }
}
