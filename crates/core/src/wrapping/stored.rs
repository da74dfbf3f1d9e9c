//! The wrapped response as core keeps it in the wrapping token's cubbyhole.
//!
//! Core stores its own answer (the parts of a [`Response`] a client would receive) and `http`
//! renders Vault's envelope when the token is unwrapped, as for any other answer; core never
//! writes the wire format. Tokens wrapped by earlier releases hold the finished envelope as
//! JSON text instead (record key `response`); they are read into the same type, so they unwrap
//! to the same bytes as before.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use strongroom_api::{Auth, LogicalResponse};

use crate::{CoreError, LeaseInfo, Response};

/// Record key of the wrapped response in this release's form.
const RECORD_KEY: &str = "wrapped";
/// Record key of the envelope text written by earlier releases.
const LEGACY_RECORD_KEY: &str = "response";

/// What a wrapped answer carries to the client who unwraps it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct StoredResponse {
    #[serde(default)]
    data: Option<Map<String, Value>>,
    #[serde(default)]
    warnings: Vec<String>,
    #[serde(default)]
    auth: Option<Auth>,
    #[serde(default)]
    lease: Option<StoredLease>,
    #[serde(default)]
    mount_type: String,
}

/// [`LeaseInfo`] as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct StoredLease {
    lease_id: String,
    duration_secs: i64,
    renewable: bool,
}

impl StoredResponse {
    /// The part of `resp` a client sees (the login request and wrap info are not part of it).
    pub(super) fn from_response(resp: Response) -> Self {
        StoredResponse {
            data: resp.data,
            warnings: resp.warnings,
            auth: resp.auth,
            lease: resp.lease.map(|l| StoredLease {
                lease_id: l.lease_id,
                duration_secs: l.duration_secs,
                renewable: l.renewable,
            }),
            mount_type: resp.mount_type,
        }
    }

    /// The answer to hand out on unwrap.
    pub(super) fn into_response(self) -> Response {
        Response {
            data: self.data,
            warnings: self.warnings,
            auth: self.auth,
            lease: self.lease.map(|l| LeaseInfo {
                lease_id: l.lease_id,
                duration_secs: l.duration_secs,
                renewable: l.renewable,
            }),
            mount_type: self.mount_type,
            ..Response::default()
        }
    }

    /// A response as an earlier release stored it: the envelope minus the request id.
    fn from_legacy_envelope(env: LogicalResponse) -> Self {
        let has_lease = !env.lease_id.is_empty() || env.lease_duration != 0 || env.renewable;
        let lease = has_lease.then_some(StoredLease {
            lease_id: env.lease_id,
            duration_secs: env.lease_duration,
            renewable: env.renewable,
        });
        StoredResponse {
            data: env.data,
            warnings: env.warnings.unwrap_or_default(),
            auth: env.auth,
            lease,
            mount_type: env.mount_type,
        }
    }

    /// The cubbyhole record holding this response.
    pub(super) fn to_record(&self) -> Result<Vec<u8>, CoreError> {
        let mut record = Map::new();
        let value = serde_json::to_value(self)
            .map_err(|e| CoreError::Internal(format!("encoding the wrapped response: {e}")))?;
        record.insert(RECORD_KEY.into(), value);
        serde_json::to_vec(&record)
            .map_err(|e| CoreError::Internal(format!("encoding the wrapped response: {e}")))
    }

    /// Reads a cubbyhole record in this release's form or the envelope form of earlier ones.
    pub(super) fn from_record(bytes: &[u8]) -> Result<Self, CoreError> {
        let corrupt = |e: String| CoreError::Internal(format!("wrapped response is corrupt: {e}"));
        let mut record: Map<String, Value> =
            serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
        if let Some(value) = record.remove(RECORD_KEY) {
            return serde_json::from_value(value).map_err(|e| corrupt(e.to_string()));
        }
        match record.remove(LEGACY_RECORD_KEY) {
            Some(Value::String(text)) => serde_json::from_str::<LogicalResponse>(&text)
                .map(Self::from_legacy_envelope)
                .map_err(|e| corrupt(e.to_string())),
            _ => Err(corrupt("no response in the record".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Response {
        Response {
            data: json!({"k": "v", "n": 1}).as_object().cloned(),
            warnings: vec!["careful".into()],
            auth: Some(Auth {
                client_token: "hvs.inner".into(),
                accessor: "acc".into(),
                policies: vec!["default".into()],
                ..Auth::default()
            }),
            lease: Some(LeaseInfo {
                lease_id: "secret/x/1".into(),
                duration_secs: 60,
                renewable: true,
            }),
            mount_type: "kv".into(),
            ..Response::default()
        }
    }

    /// The envelope text an earlier release stored for `resp`, built as it built it.
    fn legacy_record(resp: &Response) -> Vec<u8> {
        let lease = resp.lease.clone().unwrap_or_default();
        let envelope = LogicalResponse {
            request_id: String::new(),
            lease_id: lease.lease_id,
            renewable: lease.renewable,
            lease_duration: lease.duration_secs,
            data: resp.data.clone(),
            wrap_info: None,
            warnings: (!resp.warnings.is_empty()).then(|| resp.warnings.clone()),
            auth: resp.auth.clone(),
            mount_type: resp.mount_type.clone(),
        };
        let text = serde_json::to_string(&envelope).unwrap();
        serde_json::to_vec(&json!({ "response": text })).unwrap()
    }

    #[test]
    fn a_record_gives_back_the_response_a_client_would_have_seen() {
        // Why: unwrap must hand out exactly the answer that was wrapped.
        let stored = StoredResponse::from_response(sample());

        let back = StoredResponse::from_record(&stored.to_record().unwrap()).unwrap();

        assert_eq!(back.into_response(), sample());
    }

    #[test]
    fn records_of_earlier_releases_read_as_the_same_response() {
        // Why: tokens wrapped before the upgrade hold the envelope text; they must unwrap to
        // the same answer, including absent warnings, leases and mount types.
        let bare = Response::with_data(Map::new());
        for resp in [sample(), bare] {
            let legacy = StoredResponse::from_record(&legacy_record(&resp)).unwrap();

            assert_eq!(legacy.into_response(), resp);
        }
    }

    #[test]
    fn records_without_a_response_are_corrupt() {
        // Why: a damaged cubbyhole must fail as a server error, not unwrap to nothing.
        for raw in [&b"{}"[..], br#"{"response": 3}"#, b"not json"] {
            assert!(matches!(
                StoredResponse::from_record(raw),
                Err(CoreError::Internal(_))
            ));
        }
    }
}
