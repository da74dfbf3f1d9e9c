//! Metrics: one process-wide recorder, rendered by `sys/metrics`.
//!
//! The `metrics` facade lets every crate record without knowing the exporter. The Prometheus
//! recorder is installed once per process (a second install would fail, and tests build many
//! cores in one process), and `sys/metrics` renders it as Prometheus text or as Vault's JSON
//! shape, derived from the same samples so the two formats never disagree.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::{Value, json};

use crate::CoreError;

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Output format of `sys/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsFormat {
    Json,
    Prometheus,
}

/// A handle on the process metrics, and the settings that govern their exposure.
#[derive(Clone, Default)]
pub struct Telemetry {
    inner: Option<Arc<TelemetryInner>>,
}

struct TelemetryInner {
    handle: PrometheusHandle,
    /// `telemetry.prometheus_retention_time`; zero disables the Prometheus format.
    prometheus_retention: Duration,
}

impl Telemetry {
    /// Installs (once per process) the recorder and returns a handle on it.
    pub fn install(prometheus_retention: Duration) -> Telemetry {
        let handle = RECORDER.get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.000_1, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                    1.0, 2.5, 5.0, 10.0,
                ])
                .ok()?
                .set_buckets_for_metric(
                    Matcher::Full(strongroom_replication::metrics::STREAM_LAG_SECONDS.to_owned()),
                    strongroom_replication::metrics::STREAM_LAG_BUCKETS,
                )
                .ok()?
                .set_buckets_for_metric(
                    Matcher::Full(
                        strongroom_replication::metrics::STREAM_COMMIT_LAG_SECONDS.to_owned(),
                    ),
                    strongroom_replication::metrics::STREAM_LAG_BUCKETS,
                )
                .ok()?
                .set_buckets_for_metric(
                    Matcher::Full(strongroom_storage::APPLY_LAG_SECONDS.to_owned()),
                    strongroom_replication::metrics::STREAM_LAG_BUCKETS,
                )
                .ok()?
                .set_buckets_for_metric(
                    Matcher::Full(
                        strongroom_replication::metrics::PERF_STREAM_LAG_SECONDS.to_owned(),
                    ),
                    strongroom_replication::metrics::STREAM_LAG_BUCKETS,
                )
                .ok()?
                .set_buckets_for_metric(
                    Matcher::Full(
                        strongroom_replication::metrics::PERF_STREAM_COMMIT_LAG_SECONDS.to_owned(),
                    ),
                    strongroom_replication::metrics::STREAM_LAG_BUCKETS,
                )
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            // Histograms buffer samples until upkeep drains them; without this task an
            // unscraped server would grow without bound.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let upkeep = handle.clone();
                rt.spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_secs(5));
                    loop {
                        tick.tick().await;
                        upkeep.run_upkeep();
                    }
                });
            }
            Some(handle)
        });
        match handle {
            Some(handle) => Telemetry {
                inner: Some(Arc::new(TelemetryInner {
                    handle: handle.clone(),
                    prometheus_retention,
                })),
            },
            None => Telemetry::default(),
        }
    }

    /// Records one logical request.
    pub fn record_request(&self, class: &'static str, took: Duration, ok: bool) {
        let status = if ok { "ok" } else { "error" };
        metrics::counter!("vault_core_handle_request_total", "path" => class, "status" => status)
            .increment(1);
        metrics::histogram!("vault_core_handle_request_seconds", "path" => class)
            .record(took.as_secs_f64());
    }

    /// Publishes the seal state.
    pub fn set_unsealed(&self, unsealed: bool) {
        metrics::gauge!("vault_core_unsealed").set(if unsealed { 1.0 } else { 0.0 });
    }

    /// Whether `format=prometheus` is enabled by configuration.
    pub fn prometheus_enabled(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|i| !i.prometheus_retention.is_zero())
    }

    /// Renders the metrics in `format`.
    pub fn render(&self, format: MetricsFormat) -> Result<(&'static str, String), CoreError> {
        let Some(inner) = &self.inner else {
            return Err(CoreError::InvalidRequest(
                "telemetry is not enabled on this server".into(),
            ));
        };
        let text = inner.handle.render();
        match format {
            MetricsFormat::Prometheus => {
                if inner.prometheus_retention.is_zero() {
                    return Err(CoreError::InvalidRequest(
                        "prometheus is not enabled: set telemetry { prometheus_retention_time = \"24h\" } in the server configuration".into(),
                    ));
                }
                Ok(("text/plain; version=0.0.4", text))
            }
            MetricsFormat::Json => {
                let body = prometheus_text_to_json(&text);
                let s = serde_json::to_string(&body)
                    .map_err(|e| CoreError::Internal(format!("encoding metrics: {e}")))?;
                Ok(("application/json", s))
            }
        }
    }
}

/// The coarse class of a request path, a bounded label set for metrics.
pub fn path_class(path: &str) -> &'static str {
    let first = path.split('/').next().unwrap_or("");
    match first {
        "sys" => "sys",
        "auth" => "auth",
        "" => "root",
        _ => "logical",
    }
}

/// Converts Prometheus exposition text to Vault's in-memory-sink JSON shape
/// (`Gauges`, `Counters`, `Samples`).
fn prometheus_text_to_json(text: &str) -> Value {
    let mut types = std::collections::HashMap::new();
    let mut gauges = Vec::new();
    let mut counters = Vec::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (it.next(), it.next()) {
                types.insert(name.to_owned(), kind.to_owned());
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, parse_labels(l.trim_end_matches('}'))),
            None => (series, serde_json::Map::new()),
        };
        let base = name
            .trim_end_matches("_sum")
            .trim_end_matches("_count")
            .trim_end_matches("_bucket");
        match types
            .get(name)
            .or_else(|| types.get(base))
            .map(String::as_str)
        {
            Some("counter") => {
                counters.push(json!({"Name": name, "Count": value, "Sum": value, "Labels": labels}))
            }
            Some("histogram") | Some("summary") => {
                if name.ends_with("_bucket") {
                    continue;
                }
                samples.push(json!({"Name": name, "Value": value, "Labels": labels}))
            }
            _ => gauges.push(json!({"Name": name, "Value": value, "Labels": labels})),
        }
    }
    json!({
        "Timestamp": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        "Gauges": gauges,
        "Counters": counters,
        "Samples": samples,
        "Points": [],
    })
}

fn parse_labels(s: &str) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    for pair in s.split("\",") {
        if let Some((k, v)) = pair.split_once("=\"") {
            out.insert(k.trim().to_owned(), json!(v.trim_end_matches('"')));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_maps_to_vault_json_buckets() {
        // Why: JSON and Prometheus formats must report the same numbers.
        let text = "# TYPE vault_core_unsealed gauge\nvault_core_unsealed 1\n# TYPE req_total counter\nreq_total{path=\"sys\"} 3\n";
        let v = prometheus_text_to_json(text);
        assert_eq!(v["Gauges"][0]["Name"], "vault_core_unsealed");
        assert_eq!(v["Counters"][0]["Count"], 3.0);
        assert_eq!(v["Counters"][0]["Labels"]["path"], "sys");
    }
}
