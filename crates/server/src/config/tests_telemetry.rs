//! Prometheus is on by default, as in Vault: a configuration without a `telemetry` stanza
//! serves `sys/metrics?format=prometheus`, and `prometheus_retention_time = 0` turns it off.
//!
//! The configuration is parsed as the server parses it and handed to the same
//! `Telemetry::install` the server calls, so the test covers the whole path from file to
//! rendered metrics.

use std::time::Duration;

use strongroom_core::telemetry::{MetricsFormat, Telemetry};

use super::*;

const WITHOUT_TELEMETRY: &str = r#"
storage "inmem" {}
listener "tcp" {
  tls_disable = true
}
"#;

fn config_with(telemetry: &str) -> ServerConfig {
    let text = format!("{WITHOUT_TELEMETRY}{telemetry}");
    parse_str(&text, "server.hcl")
        .unwrap()
        .into_config()
        .unwrap()
}

#[tokio::test]
async fn prometheus_metrics_without_a_telemetry_stanza() {
    let config = config_with("");

    let telemetry = Telemetry::install(config.telemetry.prometheus_retention_time);
    telemetry.set_unsealed(true);
    let rendered = telemetry.render(MetricsFormat::Prometheus);

    assert_eq!(
        config.telemetry.prometheus_retention_time,
        Duration::from_secs(24 * 3600)
    );
    assert!(telemetry.prometheus_enabled());
    let (content_type, text) = rendered.unwrap();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert!(text.contains("vault_core_unsealed"), "{text}");
}

#[tokio::test]
async fn prometheus_retention_zero_turns_prometheus_off() {
    for setting in [
        "prometheus_retention_time = 0",
        "prometheus_retention_time = \"0\"",
        "prometheus_retention_time = \"0s\"",
    ] {
        let config = config_with(&format!("telemetry {{\n  {setting}\n}}\n"));

        let telemetry = Telemetry::install(config.telemetry.prometheus_retention_time);
        let refused = telemetry.render(MetricsFormat::Prometheus);

        assert_eq!(config.telemetry.prometheus_retention_time, Duration::ZERO);
        assert!(!telemetry.prometheus_enabled(), "{setting}");
        let message = refused.unwrap_err().to_string();
        assert!(
            message.contains("prometheus is not enabled"),
            "{setting}: {message}"
        );
        assert!(telemetry.render(MetricsFormat::Json).is_ok(), "{setting}");
    }
}

#[test]
fn other_telemetry_settings_keep_the_prometheus_default() {
    let config = config_with("telemetry {\n  disable_hostname = true\n}\n");

    assert!(config.telemetry.disable_hostname);
    assert_eq!(
        config.telemetry.prometheus_retention_time,
        DEFAULT_PROMETHEUS_RETENTION
    );
}
