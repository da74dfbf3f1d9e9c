//! Initialization and the seal lifecycle: init, unseal with key shares, seal.
//!
//! Unseal shares arrive one request at a time, possibly from different operators, so progress
//! lives in memory between requests and is dropped (zeroized) on reset, on success and on a
//! bad combination. A wrong combination is detected by the barrier failing to open the root
//! key, since Shamir itself cannot tell a wrong share from a right one.

use std::time::SystemTime;

use base64::Engine as _;
use strongroom_api::{InitRequest, InitResponse, SealStatus, UnsealRequest, VAULT_COMPAT_VERSION};
use strongroom_barrier::{
    BarrierError, RootKey, SealConfig, UnsealKey, combine_shares, split_unseal_key,
};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::core::CLUSTER_INFO_KEY;
use crate::node_state::ClusterInfo;
use crate::rekey::pgp::PgpRecipient;
use crate::rekey::shares::IssuedShares;
use crate::util::lock;
use crate::{Core, CoreError};

/// Shares collected so far for the current unseal attempt.
#[derive(Default)]
pub(crate) struct UnsealProgress {
    pub nonce: String,
    pub shares: Vec<Zeroizing<Vec<u8>>>,
}

/// Build date reported in seal-status; fixed per release.
const BUILD_DATE: &str = "2026-11-26T00:00:00Z";

impl Core {
    /// `GET sys/init`.
    pub async fn initialized(&self) -> Result<bool, CoreError> {
        Ok(self.barrier.initialized().await?)
    }

    /// `PUT sys/init`: creates the keyring, the root key, the unseal shares and a root token.
    /// The server stays sealed afterwards, as Vault's does with Shamir seals.
    pub async fn init(&self, req: InitRequest) -> Result<InitResponse, CoreError> {
        let _guard = self.seal_state.transition.lock().await;
        if self.barrier.initialized().await? {
            return Err(CoreError::AlreadyInitialized);
        }
        if req.stored_shares != 0
            || req.recovery_shares != 0
            || req.recovery_threshold != 0
            || !req.recovery_pgp_keys.is_empty()
        {
            return Err(CoreError::InvalidRequest(
                "recovery and stored shares apply to auto-unseal seals only; this server uses Shamir unseal keys".into(),
            ));
        }
        if !req.pgp_keys.is_empty() && req.pgp_keys.len() != req.secret_shares as usize {
            return Err(CoreError::InvalidRequest(format!(
                "{} PGP keys were given for {} key shares: give one per share",
                req.pgp_keys.len(),
                req.secret_shares
            )));
        }
        let recipients = PgpRecipient::parse_all(&req.pgp_keys)?;
        let root_recipient = match req.root_token_pgp_key.as_str() {
            "" => None,
            key => Some(PgpRecipient::parse(key, 0)?),
        };
        let config = SealConfig {
            seal_type: "shamir".into(),
            secret_shares: req.secret_shares,
            secret_threshold: req.secret_threshold,
        };
        config
            .validate()
            .map_err(|e| CoreError::InvalidRequest(e.to_string()))?;

        let unseal_key = UnsealKey::generate()?;
        let root_key = RootKey::generate()?;
        let shares = split_unseal_key(&unseal_key, config.secret_shares, config.secret_threshold)?;
        let mut issued = IssuedShares::issue(&shares, &recipients)?;

        if self.pending_join_shape().is_some() {
            return Err(CoreError::InvalidRequest(
                "this node is joining a raft cluster: unseal it with the cluster's keys instead of initializing it".into(),
            ));
        }
        // Raft storage: the first node becomes a one-node cluster, which later nodes join.
        if let Some(cluster) = self.cluster()
            && !cluster.is_member().await?
        {
            cluster.bootstrap().await?;
        }
        config.save(self.storage.as_ref()).await?;
        self.barrier.initialize(&unseal_key, &root_key).await?;

        // Open the barrier briefly to write what an initialized cluster must hold. If any step
        // fails, undo the initialization so the operator can retry: shares that were never
        // shown to anyone must not guard a cluster.
        let setup =
            async {
                self.barrier.unseal(&unseal_key).await?;
                self.ensure_cluster_info().await?;
                self.mount_defaults().await?;
                let token = self.create_root_token(None).await?;
                match &root_recipient {
                    // Vault's form: base64 of the binary PGP message holding the token.
                    Some(r) => Ok(base64::engine::general_purpose::STANDARD
                        .encode(r.encrypt(token.as_bytes())?)),
                    None => Ok(token),
                }
            }
            .await;
        self.barrier.seal().await;
        *lock(&self.node.cluster) = None;
        self.mounts.write().await.clear();
        let root_token = match setup {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "initialization failed; rolling back");
                if let Err(undo) = self.storage.replace_all(Vec::new()).await {
                    tracing::error!(error = %undo, "rolling back a failed initialization also failed; wipe the data directory before retrying");
                }
                return Err(e);
            }
        };

        Ok(InitResponse {
            keys: std::mem::take(&mut issued.keys),
            keys_base64: std::mem::take(&mut issued.keys_base64),
            root_token,
        })
    }

    /// `GET sys/seal-status`.
    pub async fn seal_status(&self) -> Result<SealStatus, CoreError> {
        let config = SealConfig::load(self.storage.as_ref()).await?;
        let initialized = self.barrier.initialized().await?;
        let sealed = self.barrier.sealed();
        let (progress, nonce) = {
            let p = lock(&self.seal_state.progress);
            (p.shares.len() as u32, p.nonce.clone())
        };
        let cluster = if sealed {
            None
        } else {
            lock(&self.node.cluster).clone()
        };
        let joining = self.pending_join_shape();
        let initialized = initialized || joining.is_some();
        let (t, n) = match (&config, joining, initialized) {
            (_, Some(shape), _) => shape,
            (Some(c), None, true) => (c.secret_threshold, c.secret_shares),
            _ => (0, 0),
        };
        Ok(SealStatus {
            seal_type: "shamir".into(),
            initialized,
            sealed,
            t,
            n,
            progress: if sealed { progress } else { 0 },
            nonce: if sealed { nonce } else { String::new() },
            version: VAULT_COMPAT_VERSION.into(),
            build_date: BUILD_DATE.into(),
            migration: false,
            cluster_name: cluster.as_ref().map(|c| c.name.clone()),
            cluster_id: cluster.as_ref().map(|c| c.id.clone()),
            recovery_seal: false,
            storage_type: self.storage.status().storage_type.into(),
        })
    }

    /// `PUT sys/unseal`: adds one share, or resets progress.
    pub async fn unseal(&self, req: UnsealRequest) -> Result<SealStatus, CoreError> {
        if req.reset {
            *lock(&self.seal_state.progress) = UnsealProgress::default();
            return self.seal_status().await;
        }
        let _guard = self.seal_state.transition.lock().await;
        let joining = self.pending_join_shape();
        if joining.is_none() && !self.barrier.initialized().await? {
            return Err(CoreError::InvalidRequest("Vault is not initialized".into()));
        }
        if !self.barrier.sealed() {
            drop(_guard);
            return self.seal_status().await;
        }
        let Some(key) = req.key.as_deref() else {
            return Err(CoreError::InvalidRequest(
                "'key' must be specified in request body as JSON, or 'reset' set to true".into(),
            ));
        };
        let share = decode_share(key)?;
        let threshold = match joining {
            Some((threshold, _)) => threshold,
            None => {
                SealConfig::load(self.storage.as_ref())
                    .await?
                    .ok_or_else(|| {
                        CoreError::Internal("seal configuration missing from storage".into())
                    })?
                    .secret_threshold
            }
        };

        let ready = {
            let mut p = lock(&self.seal_state.progress);
            if p.shares
                .iter()
                .any(|s| bool::from(s.as_slice().ct_eq(share.as_slice())))
            {
                return Err(CoreError::InvalidRequest(
                    "given key has already been provided during this unseal operation".into(),
                ));
            }
            if p.shares.is_empty() {
                p.nonce = uuid::Uuid::new_v4().to_string();
            }
            p.shares.push(share);
            if p.shares.len() as u32 >= threshold {
                Some(std::mem::take(&mut p.shares))
            } else {
                None
            }
        };
        let Some(shares) = ready else {
            drop(_guard);
            return self.seal_status().await;
        };
        *lock(&self.seal_state.progress) = UnsealProgress::default();
        if joining.is_some() {
            self.finish_join(&shares).await?;
            drop(_guard);
            return self.seal_status().await;
        }

        let unseal_key = combine_shares(&shares).map_err(|e| {
            CoreError::InvalidRequest(format!(
                "unable to combine the provided key shares ({e}): unseal progress was reset, submit this cluster's shares"
            ))
        })?;
        match self.barrier.unseal(&unseal_key).await {
            Ok(()) => {}
            Err(BarrierError::InvalidKey) => {
                return Err(CoreError::InvalidRequest(
                    "the provided unseal keys do not open this cluster's root key: unseal progress was reset, submit the correct shares".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        if let Err(e) = self.enter_service().await {
            self.seal_internal().await;
            return Err(e);
        }
        drop(_guard);
        self.seal_status().await
    }

    /// Drops every piece of unsealed state.
    pub(crate) async fn seal_internal(&self) {
        self.drop_active_state().await;
        self.barrier.seal().await;
        self.clear_identity();
        self.config.telemetry.set_unsealed(false);
        tracing::info!("core sealed");
    }

    /// Loads what an unsealed core keeps in memory.
    pub(crate) async fn post_unseal(&self) -> Result<(), CoreError> {
        self.ensure_cluster_info().await?;
        // The replication mode first: a DR secondary serves no requests, must not write
        // replicated keys (that would fork its WAL chain), and loads mounts and audit devices
        // only when promoted.
        self.load_replication().await?;
        if !self.replication.is_dr_secondary() {
            self.load_mounts().await?;
            self.load_audit().await?;
        }
        self.expiration_start().await?;
        *lock(&self.seal_state.active_since) = Some(SystemTime::now());
        self.config.telemetry.set_unsealed(true);
        tracing::info!("core unsealed");
        Ok(())
    }

    /// Reads this cluster's name and id, creating them on first unseal.
    pub(crate) async fn ensure_cluster_info(&self) -> Result<(), CoreError> {
        let info = match self.barrier.get(CLUSTER_INFO_KEY).await? {
            Some(raw) => serde_json::from_slice::<ClusterInfo>(&raw)
                .map_err(|e| CoreError::Internal(format!("cluster info is corrupt: {e}")))?,
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                let name = self
                    .config
                    .cluster_name
                    .clone()
                    .unwrap_or_else(|| format!("vault-cluster-{}", &id.replace('-', "")[..8]));
                let info = ClusterInfo { name, id };
                let raw = serde_json::to_vec(&info)
                    .map_err(|e| CoreError::Internal(format!("encoding cluster info: {e}")))?;
                self.barrier.put(CLUSTER_INFO_KEY, &raw).await?;
                info
            }
        };
        *lock(&self.node.cluster) = Some(info);
        Ok(())
    }

    /// Initializes with one share and unseals: the `server -dev` start-up.
    /// Returns the base64 unseal key and the root token.
    pub async fn dev_bootstrap(
        &self,
        root_token_id: Option<&str>,
    ) -> Result<(String, String), CoreError> {
        let init = self
            .init(InitRequest {
                secret_shares: 1,
                secret_threshold: 1,
                ..InitRequest::default()
            })
            .await?;
        let key = init
            .keys_base64
            .first()
            .cloned()
            .ok_or_else(|| CoreError::Internal("init returned no key share".into()))?;
        self.unseal(UnsealRequest {
            key: Some(key.clone()),
            ..UnsealRequest::default()
        })
        .await?;
        let root = match root_token_id.filter(|id| !id.is_empty()) {
            Some(id) => {
                self.create_root_token(Some(id)).await?;
                self.revoke_token(&init.root_token).await?;
                id.to_owned()
            }
            None => init.root_token,
        };
        Ok((key, root))
    }
}

/// Accepts a share as hex (as `keys`) or standard base64 (as `keys_base64`).
/// A share is 33 bytes (32 of key material and the x coordinate); with one share the key
/// itself (32 bytes) is the share. Anything else is refused before it can count as progress.
pub(crate) fn decode_share(key: &str) -> Result<Zeroizing<Vec<u8>>, CoreError> {
    let key = key.trim();
    let bytes = match hex::decode(key) {
        Ok(b) => Zeroizing::new(b),
        Err(_) => base64::engine::general_purpose::STANDARD
            .decode(key)
            .map(Zeroizing::new)
            .map_err(|_| {
                CoreError::InvalidRequest("'key' must be a valid hex or base64 string".into())
            })?,
    };
    if bytes.len() != 32 && bytes.len() != 33 {
        return Err(CoreError::InvalidRequest(format!(
            "'key' is {} bytes long; an unseal key share is 33 bytes (32 with a single share)",
            bytes.len()
        )));
    }
    Ok(bytes)
}
