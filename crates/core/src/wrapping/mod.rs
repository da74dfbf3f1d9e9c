//! Response wrapping: `X-Vault-Wrap-TTL` and `sys/wrapping/*`.
//!
//! Wrapping lets a trusted party fetch a secret and hand a *reference* to it through an
//! untrusted channel: the answer is parked in the cubbyhole of a fresh single-use token and
//! only that token travels. Whoever unwraps first wins; a second unwrap fails loudly, which is
//! how the intended recipient learns the reference was intercepted. Replication activation
//! tokens reuse this mechanism.
//!
//! Interface used by the pipeline (keep these signatures): [`Core::wrap_response`] and
//! [`route`].

mod claim;
mod routes;
mod stored;

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use strongroom_api::WrapInfo;
use strongroom_barrier::BarrierOp;

use self::stored::StoredResponse;
use crate::token::{IssueRequest, TokenEntry};
use crate::{Core, CoreError, Response};

pub(crate) use routes::route;

/// The only policy a wrapping token carries.
pub(crate) const WRAPPING_POLICY: &str = "response-wrapping";
/// Cubbyhole key of the wrapped response (readable as `cubbyhole/response`).
const RESPONSE_KEY: &str = "response";
/// Cubbyhole key of the wrapping metadata that `sys/wrapping/lookup` reports.
const INFO_KEY: &str = "wrapinfo";
/// The one error every unusable wrapping token gets, so callers cannot probe which part failed.
pub(crate) const INVALID_TOKEN: &str = "wrapping token is not valid or does not exist";
/// Longest wrapping TTL accepted (Vault's system maximum).
pub(crate) const MAX_WRAP_TTL: Duration = Duration::from_secs(768 * 3600);

/// What `sys/wrapping/lookup` and `rewrap` need to know about a wrapping token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct WrapRecord {
    /// RFC 3339 with nanoseconds, identical to the `wrap_info.creation_time` handed out.
    creation_time: String,
    creation_path: String,
    /// Seconds.
    creation_ttl: i64,
    #[serde(default)]
    wrapped_accessor: String,
}

/// A wrapped payload read back from a valid wrapping token's cubbyhole.
struct Opened {
    entry: TokenEntry,
    record: WrapRecord,
    payload: StoredResponse,
}

impl Core {
    /// Stores `resp` in a new single-use wrapping token's cubbyhole and returns the
    /// `wrap_info` answer instead.
    pub(crate) async fn wrap_response(
        &self,
        req: &crate::Request,
        resp: Response,
        ttl: Duration,
    ) -> Result<Response, CoreError> {
        let wrapped_accessor = resp
            .auth
            .as_ref()
            .map(|a| a.accessor.clone())
            .unwrap_or_default();
        let mount_type = resp.mount_type.clone();
        let payload = StoredResponse::from_response(resp);
        let info = self
            .store_wrapped(&req.path, ttl, &payload, wrapped_accessor)
            .await?;
        Ok(Response {
            wrap_info: Some(info),
            mount_type,
            ..Response::default()
        })
    }

    /// Wraps an answer a performance primary gave to a request this secondary forwarded:
    /// the wrapping token must be this cluster's, where the client will unwrap it, so the
    /// request went to the primary unwrapped and its `data` and `warnings` are wrapped here.
    pub async fn wrap_forwarded_answer(
        &self,
        creation_path: &str,
        data: Option<serde_json::Map<String, serde_json::Value>>,
        warnings: Vec<String>,
        ttl: Duration,
    ) -> Result<Response, CoreError> {
        let answer = Response {
            data,
            warnings,
            ..Response::default()
        };
        let payload = StoredResponse::from_response(answer);
        let info = self
            .store_wrapped(creation_path, ttl, &payload, String::new())
            .await?;
        Ok(Response {
            wrap_info: Some(info),
            ..Response::default()
        })
    }

    /// Issues a wrapping token for `payload` and parks the payload in its cubbyhole.
    async fn store_wrapped(
        &self,
        creation_path: &str,
        ttl: Duration,
        payload: &StoredResponse,
        wrapped_accessor: String,
    ) -> Result<WrapInfo, CoreError> {
        // A zero TTL would make a token that never expires: the opposite of what was asked.
        let ttl = Duration::from_secs(ttl.as_secs().max(1));
        let issued = self
            .issue_token(IssueRequest {
                policies: vec![WRAPPING_POLICY.into()],
                ttl: Some(ttl),
                max_ttl: Some(ttl),
                num_uses: 1,
                renewable: false,
                no_default_policy: true,
                path: creation_path.to_owned(),
                parent: None,
                ..IssueRequest::default()
            })
            .await?;
        let record = WrapRecord {
            creation_time: crate::util::rfc3339(SystemTime::now(), false),
            creation_path: creation_path.to_owned(),
            creation_ttl: ttl.as_secs() as i64,
            wrapped_accessor,
        };
        let prefix = crate::keys::cubbyhole_prefix(&issued.entry.id_hash);
        let ops = vec![
            BarrierOp::Put {
                key: format!("{prefix}{RESPONSE_KEY}"),
                value: payload.to_record()?,
            },
            BarrierOp::Put {
                key: format!("{prefix}{INFO_KEY}"),
                value: encode(&record)?,
            },
        ];
        if let Err(e) = self.barrier.write(ops).await {
            // Do not leave a live token that points at nothing.
            if let Err(revoke) = self.revoke_token(&issued.token).await {
                tracing::warn!(error = %revoke, "revoking an unused wrapping token failed");
            }
            return Err(e.into());
        }
        Ok(WrapInfo {
            token: issued.token.to_string(),
            accessor: issued.entry.accessor.clone(),
            ttl: record.creation_ttl,
            creation_time: record.creation_time,
            creation_path: record.creation_path,
            wrapped_accessor: record.wrapped_accessor,
        })
    }

    /// Reads a wrapping token's payload without consuming it. Every failure is the same
    /// client error ([`INVALID_TOKEN`]) except storage faults.
    async fn open_wrapped(&self, token: &str) -> Result<Opened, CoreError> {
        let invalid = || CoreError::InvalidRequest(INVALID_TOKEN.into());
        let entry = self.lookup_token(token).await?.ok_or_else(invalid)?;
        if entry.policies.len() != 1 || entry.policies[0] != WRAPPING_POLICY {
            return Err(invalid());
        }
        let prefix = crate::keys::cubbyhole_prefix(&entry.id_hash);
        let (Some(info), Some(stored)) = (
            self.barrier.get(&format!("{prefix}{INFO_KEY}")).await?,
            self.barrier.get(&format!("{prefix}{RESPONSE_KEY}")).await?,
        ) else {
            return Err(invalid());
        };
        let record: WrapRecord = serde_json::from_slice(&info)
            .map_err(|e| CoreError::Internal(format!("wrapping record is corrupt: {e}")))?;
        let payload = StoredResponse::from_record(&stored)?;
        Ok(Opened {
            entry,
            record,
            payload,
        })
    }

    /// Destroys a wrapping token and its cubbyhole: the single-use guarantee.
    async fn burn_wrapping_token(&self, token: &str, entry: &TokenEntry) -> Result<(), CoreError> {
        self.revoke_token(token).await?;
        let prefix = crate::keys::cubbyhole_prefix(&entry.id_hash);
        self.barrier
            .write(vec![
                BarrierOp::Delete {
                    key: format!("{prefix}{RESPONSE_KEY}"),
                },
                BarrierOp::Delete {
                    key: format!("{prefix}{INFO_KEY}"),
                },
            ])
            .await?;
        Ok(())
    }
}

/// JSON bytes of a cubbyhole record.
fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CoreError> {
    serde_json::to_vec(value)
        .map_err(|e| CoreError::Internal(format!("encoding a wrapping record: {e}")))
}

#[cfg(test)]
mod tests;
