//! DR operation tokens generated from unseal key shares (`generate-operation-token/*`).
//!
//! When no batch token was prepared on the primary, the key holders can still authorize a
//! promotion: the same quorum ceremony as root-token generation, verified against the
//! primary's root key that the secondary now stores. The result is not a real token (a DR
//! secondary issues none) but a 24-character secret whose hash is kept cluster-local and
//! accepted only by DR operation paths until `operation-token/delete`.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use strongroom_barrier::{BarrierError, SealConfig, combine_shares};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::generate_root::encode_token;
use crate::seal::decode_share;
use crate::util::lock;
use crate::{Core, CoreError, Response};

/// Length of the OTP and of the DR operation token (Vault reports 24).
pub(crate) const OP_TOKEN_LENGTH: usize = 24;
/// Where generated DR operation tokens are recorded, by SHA-256 (cluster-local).
pub(crate) const OP_TOKEN_PREFIX: &str = "core/replication/dr/op-token/";

/// The storage key recording `token` as a DR operation token.
pub(crate) fn op_token_key(token: &str) -> String {
    format!(
        "{OP_TOKEN_PREFIX}{}",
        hex::encode(Sha256::digest(token.as_bytes()))
    )
}

/// One generation attempt in progress.
pub(crate) struct OpTokenAttempt {
    nonce: String,
    otp: Zeroizing<String>,
    shares: Vec<Zeroizing<Vec<u8>>>,
}

fn status(
    started: bool,
    nonce: &str,
    progress: usize,
    required: u32,
) -> serde_json::Map<String, Value> {
    let v = json!({
        "started": started,
        "nonce": nonce,
        "progress": progress,
        "required": required,
        "encoded_token": "",
        "encoded_root_token": "",
        "pgp_fingerprint": "",
        "otp": "",
        "otp_length": OP_TOKEN_LENGTH,
        "complete": false,
    });
    match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

fn raw(body: serde_json::Map<String, Value>) -> Response {
    Response {
        raw_body: Some(Value::Object(body)),
        mount_type: "system".into(),
        ..Response::default()
    }
}

impl Core {
    async fn op_token_required(&self) -> Result<u32, CoreError> {
        Ok(SealConfig::load(self.storage.as_ref())
            .await?
            .map(|c| c.secret_threshold)
            .unwrap_or(0))
    }

    /// `GET .../generate-operation-token/attempt`.
    pub(super) async fn op_token_status(&self) -> Result<Response, CoreError> {
        let required = self.op_token_required().await?;
        let a = lock(&self.replication.op_attempt);
        Ok(raw(match a.as_ref() {
            Some(a) => status(true, &a.nonce, a.shares.len(), required),
            None => status(false, "", 0, required),
        }))
    }

    /// `PUT .../generate-operation-token/attempt`: starts an attempt with a server OTP.
    pub(super) async fn op_token_start(
        &self,
        data: &serde_json::Map<String, Value>,
    ) -> Result<Response, CoreError> {
        if crate::util::str_param(data, "pgp_key")?.is_some_and(|k| !k.is_empty()) {
            return Err(CoreError::InvalidRequest(
                "PGP-encrypted DR operation tokens are not supported; omit pgp_key".into(),
            ));
        }
        if crate::util::str_param(data, "otp")?.is_some_and(|k| !k.is_empty()) {
            return Err(CoreError::InvalidRequest(
                "the legacy otp parameter is not supported; omit it and use the generated OTP"
                    .into(),
            ));
        }
        let otp = Zeroizing::new(crate::util::random_base62(OP_TOKEN_LENGTH)?);
        let nonce = uuid::Uuid::new_v4().to_string();
        {
            let mut a = lock(&self.replication.op_attempt);
            if a.is_some() {
                return Err(CoreError::InvalidRequest(
                    "DR operation token generation already in progress".into(),
                ));
            }
            *a = Some(OpTokenAttempt {
                nonce: nonce.clone(),
                otp: otp.clone(),
                shares: Vec::new(),
            });
        }
        let required = self.op_token_required().await?;
        let mut body = status(true, &nonce, 0, required);
        body.insert("otp".into(), Value::String(otp.to_string()));
        Ok(raw(body))
    }

    /// `DELETE .../generate-operation-token/attempt`.
    pub(super) fn op_token_cancel(&self) -> Response {
        *lock(&self.replication.op_attempt) = None;
        Response::no_content()
    }

    /// `PUT .../generate-operation-token/update`: one share; the last one mints the token.
    pub(super) async fn op_token_update(
        &self,
        data: &serde_json::Map<String, Value>,
    ) -> Result<Response, CoreError> {
        let key = crate::util::str_param(data, "key")?.unwrap_or_default();
        let given_nonce = crate::util::str_param(data, "nonce")?.unwrap_or_default();
        if key.is_empty() {
            return Err(CoreError::InvalidRequest("missing key".into()));
        }
        if given_nonce.is_empty() {
            return Err(CoreError::InvalidRequest("missing nonce".into()));
        }
        let share = decode_share(key)?;
        let required = self.op_token_required().await?;
        let (shares, otp, nonce) = {
            let mut g = lock(&self.replication.op_attempt);
            let Some(a) = g.as_mut() else {
                return Err(CoreError::InvalidRequest(
                    "no DR operation token generation in progress".into(),
                ));
            };
            if !bool::from(a.nonce.as_bytes().ct_eq(given_nonce.as_bytes())) {
                return Err(CoreError::InvalidRequest(format!(
                    "incorrect nonce supplied; nonce for this operation is {}",
                    a.nonce
                )));
            }
            if a.shares
                .iter()
                .any(|s| bool::from(s.as_slice().ct_eq(share.as_slice())))
            {
                return Err(CoreError::InvalidRequest(
                    "given key has already been provided during this generation operation".into(),
                ));
            }
            a.shares.push(share);
            if (a.shares.len() as u32) < required {
                return Ok(raw(status(true, &a.nonce, a.shares.len(), required)));
            }
            let Some(a) = g.take() else {
                return Err(CoreError::Internal("attempt vanished".into()));
            };
            (a.shares, a.otp, a.nonce)
        };
        let key = combine_shares(&shares).map_err(|_| {
            CoreError::InvalidRequest("unable to combine the provided key shares".into())
        })?;
        match self.barrier.verify_unseal_key(&key).await {
            Ok(()) => {}
            Err(BarrierError::InvalidKey) => {
                return Err(CoreError::InvalidRequest(
                    "the provided key shares do not match this cluster's unseal key; the attempt was cancelled".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        let token = Zeroizing::new(crate::util::random_base62(OP_TOKEN_LENGTH)?);
        let created = super::now_ms().to_string().into_bytes();
        self.storage.put(&op_token_key(&token), created).await?;
        let encoded = encode_token(&token, &otp)?;
        let mut body = status(true, &nonce, shares.len(), required);
        body.insert("encoded_token".into(), Value::String(encoded.clone()));
        body.insert("encoded_root_token".into(), Value::String(encoded));
        body.insert("complete".into(), Value::Bool(true));
        Ok(raw(body))
    }

    /// `operation-token/delete`: forgets the generated DR operation token given in the body.
    pub(super) async fn op_token_delete(
        &self,
        data: &serde_json::Map<String, Value>,
    ) -> Result<Response, CoreError> {
        let token = crate::util::str_param(data, "dr_operation_token")?
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                CoreError::InvalidRequest("DR operation token was not provided".into())
            })?;
        self.storage.delete(&op_token_key(token)).await?;
        Ok(Response::no_content())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_token_records_are_cluster_local_and_hide_the_token() {
        // Why: a DR operation token must not replicate, and storage must not reveal it.
        let key = op_token_key("abcdefghijklmnopqrstuvwx");

        assert!(!key.contains("abcdefghijklmnopqrstuvwx"));
        assert_eq!(
            strongroom_storage::keyspace::classify(&key),
            strongroom_storage::keyspace::KeyClass::ClusterLocal
        );
    }

    #[test]
    fn status_always_reports_the_otp_length() {
        // Why: `vault operator generate-root -dr-token -decode` reads otp_length from GET.
        let s = status(false, "", 0, 3);

        assert_eq!(s["otp_length"], json!(24));
        assert_eq!(s["started"], json!(false));
    }
}
