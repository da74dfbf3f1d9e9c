//! The primary side of both kinds: enable, demote, disable, activation tokens, revocation.
//!
//! Enabling (or promoting) creates the replication set's private CA, the cluster-port
//! identity and the activation-token signing key; everything a secondary ever trusts comes
//! from those, so they are generated here and stored only in the cluster-local record.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use strongroom_replication::activation::jwt::{self, ActivationClaims};
use strongroom_replication::pki::is_valid_secondary_id;
use strongroom_replication::{ReplicationCa, ReplicationKind};

use super::bundle::{ActivationBundle, BOOTSTRAP_KEYS};
use super::config::{PrimaryMaterial, ReplConfig, ReplicationMode, SecondaryRecord};
use super::{now_secs, string_param as str_param_opt, warning};
use crate::params::duration_param;
use crate::util::lock;
use crate::{Core, CoreError, Request, Response};

/// Default lifetime of an activation token (Vault: 30 minutes).
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(30 * 60);

const ENABLE_WARNING: &str = "This cluster is being enabled as a primary for replication. Vault will be unavailable for a brief period and will resume service shortly.";
/// How long a demote waits for requests admitted before it.
const DEMOTE_DRAIN: std::time::Duration = std::time::Duration::from_secs(30);
const DEMOTE_WARNING: &str = "This cluster is being demoted to a replication secondary. Vault will be unavailable for a brief period and will resume service shortly.";
pub(super) const DISABLE_WARNING: &str = "This cluster is having replication disabled. Vault will be unavailable for a brief period and will resume service shortly.";

fn pki_error(e: strongroom_replication::ReplicationError) -> CoreError {
    CoreError::Internal(e.to_string())
}

impl Core {
    /// Fresh CA, server identity and signing key for the replication set `cluster_id`.
    /// `cluster_addr` (the `primary_cluster_addr` parameter) overrides the advertised one.
    pub(super) fn new_primary_material(
        &self,
        cluster_id: &str,
        cluster_addr: &str,
    ) -> Result<PrimaryMaterial, CoreError> {
        let addr = if cluster_addr.is_empty() {
            lock(&self.node.advertised).1.clone()
        } else {
            cluster_addr.to_owned()
        };
        let ca = ReplicationCa::generate(cluster_id).map_err(pki_error)?;
        let hosts = if addr.is_empty() {
            vec!["localhost".to_owned()]
        } else {
            vec![addr.clone()]
        };
        let (server_cert_pem, server_key_pem) = ca.issue_server_cert(&hosts).map_err(pki_error)?;
        let signing_key = jwt::generate_key()
            .map_err(|e| CoreError::Internal(format!("generating the signing key: {e}")))?;
        Ok(PrimaryMaterial {
            ca_cert_pem: ca.ca_cert_pem.clone(),
            ca_key_pem: ca.ca_key_pem.to_string(),
            server_cert_pem,
            server_key_pem: server_key_pem.to_string(),
            signing_key_b64: STANDARD.encode(signing_key.as_slice()),
            cluster_addrs: if addr.is_empty() {
                Vec::new()
            } else {
                vec![addr]
            },
        })
    }

    /// Persists `config` as the record of `kind`, then makes it the configuration in force.
    pub(super) async fn commit_repl_config(
        &self,
        kind: ReplicationKind,
        config: ReplConfig,
    ) -> Result<(), CoreError> {
        self.write_repl_config(kind, &config).await?;
        self.apply_repl_config(kind, Some(config)).await;
        Ok(())
    }

    /// `sys/replication/{dr,performance}/primary/enable`.
    pub(super) async fn primary_enable(
        &self,
        kind: ReplicationKind,
        req: &Request,
    ) -> Result<Response, CoreError> {
        let set = self.repl(kind);
        let _ops = set.ops.lock().await;
        match set.mode() {
            ReplicationMode::Secondary => {
                return Err(CoreError::InvalidRequest(format!(
                    "cannot enable as primary while a {} secondary; promote instead",
                    set.label()
                )));
            }
            ReplicationMode::Primary => {
                return Err(CoreError::InvalidRequest(format!(
                    "{} replication is already enabled as primary on this cluster",
                    set.label()
                )));
            }
            ReplicationMode::Disabled => {}
        }
        let addr = str_param_opt(&req.data, "primary_cluster_addr")?.unwrap_or_default();
        let cluster_id = uuid::Uuid::new_v4().to_string();
        let material = self.new_primary_material(&cluster_id, &addr)?;
        self.commit_repl_config(
            kind,
            ReplConfig {
                mode: ReplicationMode::Primary,
                cluster_id,
                primary_cluster_addr: addr,
                primary: Some(material),
                ..ReplConfig::default()
            },
        )
        .await?;
        tracing::info!(kind = set.label(), "replication enabled as primary");
        Ok(warning(ENABLE_WARNING))
    }

    pub(super) fn require_primary(&self, kind: ReplicationKind) -> Result<ReplConfig, CoreError> {
        let set = self.repl(kind);
        set.config()
            .filter(|c| c.mode == ReplicationMode::Primary)
            .ok_or_else(|| {
                CoreError::InvalidRequest(format!("this cluster is not a {} primary", set.label()))
            })
    }

    /// `sys/replication/performance/primary/demote`: an idle performance secondary of the
    /// same set. Unlike a DR demote the cluster keeps serving: reads, its own tokens and
    /// leases; changes to shared state fail until it follows a primary again.
    pub(super) async fn perf_primary_demote(&self) -> Result<Response, CoreError> {
        let kind = ReplicationKind::Performance;
        let _ops = self.repl(kind).ops.lock().await;
        let config = self.require_primary(kind)?;
        self.commit_repl_config(
            kind,
            ReplConfig {
                mode: ReplicationMode::Secondary,
                cluster_id: config.cluster_id.clone(),
                last_reindex_epoch: config.last_reindex_epoch,
                primary: config.primary.clone(),
                secondaries: config.secondaries.clone(),
                paths_filters: config.paths_filters.clone(),
                ..ReplConfig::default()
            },
        )
        .await?;
        tracing::info!("performance primary demoted to an idle secondary");
        Ok(warning(DEMOTE_WARNING))
    }

    /// `sys/replication/dr/primary/demote`: becomes an idle secondary of the same set.
    pub(super) async fn dr_primary_demote(&self) -> Result<Response, CoreError> {
        let _ops = self.replication.ops.lock().await;
        let _perf_ops = self.perf.ops.lock().await;
        let config = self.require_primary(ReplicationKind::Dr)?;
        // The demoted cluster takes no more writes, but it keeps its replication identity and
        // its secondaries' grants until it follows a new primary: connected secondaries drain
        // the final WAL entries, so a planned failover loses nothing that was acknowledged.
        self.commit_repl_config(
            ReplicationKind::Dr,
            ReplConfig {
                mode: ReplicationMode::Secondary,
                cluster_id: config.cluster_id.clone(),
                last_reindex_epoch: config.last_reindex_epoch,
                primary: config.primary.clone(),
                secondaries: config.secondaries.clone(),
                ..ReplConfig::default()
            },
        )
        .await?;
        // A DR secondary takes part in no performance replication: whatever role this cluster
        // had there passes, with the record, to the DR secondary that is promoted next.
        self.apply_repl_config(ReplicationKind::Performance, None)
            .await;
        // No more background lease revocations, then wait (bounded) for the client requests
        // admitted before the switch: their writes are in the WAL, and so reach the
        // secondaries, before this call answers.
        self.expiration_stop().await;
        let mut warnings = vec![DEMOTE_WARNING.to_owned()];
        match tokio::time::timeout(DEMOTE_DRAIN, self.gates.client.write()).await {
            Ok(guard) => drop(guard),
            Err(_) => warnings.push(format!(
                "requests admitted before the demote were still running after {}s; wait for the secondary's last_remote_wal to stop moving before promoting it",
                DEMOTE_DRAIN.as_secs()
            )),
        }
        tracing::info!("DR primary demoted to an idle secondary");
        Ok(Response {
            warnings,
            ..Response::default()
        })
    }

    /// `sys/replication/{dr,performance}/primary/disable`: forgets the set; every secondary
    /// is cut off.
    pub(super) async fn primary_disable(
        &self,
        kind: ReplicationKind,
    ) -> Result<Response, CoreError> {
        let set = self.repl(kind);
        let _ops = set.ops.lock().await;
        self.require_primary(kind)?;
        self.commit_repl_config(kind, ReplConfig::default()).await?;
        tracing::info!(kind = set.label(), "replication disabled on the primary");
        Ok(warning(DISABLE_WARNING))
    }

    /// `sys/replication/{dr,performance}/primary/revoke-secondary`.
    pub(super) async fn primary_revoke(
        &self,
        kind: ReplicationKind,
        req: &Request,
    ) -> Result<Response, CoreError> {
        let set = self.repl(kind);
        let _ops = set.ops.lock().await;
        let mut config = self.require_primary(kind)?;
        let id = str_param_opt(&req.data, "id")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| CoreError::InvalidRequest("missing secondary id".into()))?;
        let Some(record) = config.secondaries.get_mut(&id) else {
            return Err(CoreError::InvalidRequest(format!(
                "no secondary with id {id:?} was ever activated by this primary"
            )));
        };
        record.revoked = true;
        config.paths_filters.remove(&id);
        self.write_repl_config(kind, &config).await?;
        set.registry.refresh(Some(&config));
        set.filters.refresh(Some(&config));
        *lock(&set.config) = Some(config);
        tracing::info!(secondary_id = %id, kind = set.label(), "secondary revoked");
        Ok(Response::no_content())
    }

    /// `sys/replication/{dr,performance}/primary/secondary-token` (sudo): a wrapped
    /// activation bundle whose wrapping token is replaced by an ES512 JWT naming this primary.
    pub(super) async fn primary_secondary_token(
        &self,
        kind: ReplicationKind,
        req: &Request,
    ) -> Result<Response, CoreError> {
        let set = self.repl(kind);
        let public_key =
            str_param_opt(&req.data, "secondary_public_key")?.filter(|k| !k.is_empty());
        let id = match str_param_opt(&req.data, "id")?.filter(|s| !s.is_empty()) {
            Some(id) => id,
            None => uuid::Uuid::new_v4().to_string(),
        };
        if !is_valid_secondary_id(&id) {
            return Err(CoreError::InvalidRequest(format!(
                "invalid secondary id {id:?}: use 1-64 letters, digits, '-', '_' or '.'"
            )));
        }
        let ttl = duration_param(&req.data, "ttl")?
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_TTL);
        if ttl > crate::wrapping::MAX_WRAP_TTL {
            return Err(CoreError::InvalidRequest(
                "ttl is longer than the maximum wrapping TTL (768h)".into(),
            ));
        }

        let _ops = set.ops.lock().await;
        let mut config = self.require_primary(kind)?;
        match config.secondaries.get(&id) {
            Some(r) if r.revoked => {
                // A revoked id stays dead: its old client certificate carries the same name.
                return Err(CoreError::InvalidRequest(format!(
                    "secondary id {id:?} was revoked and cannot be reused; choose another id"
                )));
            }
            Some(_) => {
                return Err(CoreError::InvalidRequest(format!(
                    "a secondary with id {id:?} already exists; revoke it first or choose another id"
                )));
            }
            None => {}
        }
        let Some(primary) = config.primary.clone() else {
            return Err(CoreError::Internal(
                "the primary's replication material is missing; disable and re-enable replication"
                    .into(),
            ));
        };
        let ca = ReplicationCa::from_pem(&primary.ca_cert_pem, &primary.ca_key_pem)
            .map_err(pki_error)?;
        let (client_cert_pem, client_key_pem) = ca.issue_client_cert(&id).map_err(pki_error)?;
        let mut stored = std::collections::BTreeMap::new();
        for key in BOOTSTRAP_KEYS {
            let raw = self.storage.get(key).await?.ok_or_else(|| {
                CoreError::Internal(format!("the {key} record is missing from storage"))
            })?;
            stored.insert(key.to_owned(), STANDARD.encode(raw));
        }
        let root_key = self.barrier.root_key()?;
        let api_addr = lock(&self.node.advertised).0.clone();
        let bundle = ActivationBundle {
            kind: kind.as_str().to_owned(),
            cluster_id: config.cluster_id.clone(),
            secondary_id: id.clone(),
            primary_api_addr: api_addr.clone(),
            primary_cluster_addrs: self.bundle_cluster_addrs(&primary.cluster_addrs),
            ca_pem: primary.ca_cert_pem.clone(),
            client_cert_pem,
            client_key_pem: client_key_pem.to_string(),
            root_key_b64: STANDARD.encode(root_key.expose_secret()),
            stored,
        };

        config.secondaries.insert(
            id.clone(),
            SecondaryRecord {
                revoked: false,
                issued_at: now_secs(),
            },
        );
        self.write_repl_config(kind, &config).await?;
        set.registry.refresh(Some(&config));
        set.filters.refresh(Some(&config));
        *lock(&set.config) = Some(config);

        if let Some(public_key) = public_key {
            // Public-key mode: the bundle encrypted to the secondary's key, unwrapped.
            let token = super::pubkey::seal_bundle(
                &bundle,
                &public_key,
                now_secs() + ttl.as_secs() as i64,
            )?;
            let mut data = serde_json::Map::new();
            data.insert("token".into(), serde_json::Value::String(token));
            tracing::info!(secondary_id = %id, kind = set.label(), "activation token issued (public-key mode)");
            return Ok(Response::with_data(data));
        }
        let mut resp = self
            .wrap_response(req, Response::with_data(bundle.to_data()?), ttl)
            .await?;
        let Some(info) = resp.wrap_info.as_mut() else {
            return Err(CoreError::Internal("wrapping produced no wrap_info".into()));
        };
        let key = self.activation_signing_key(kind).ok_or_else(|| {
            CoreError::Internal("the activation signing key is unavailable".into())
        })?;
        let now = now_secs();
        let claims = ActivationClaims {
            addr: api_addr,
            exp: now + info.ttl,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            kind: "wrapping".into(),
            wt: std::mem::take(&mut info.token),
        };
        info.token = jwt::sign(&key, &claims)
            .map_err(|e| CoreError::Internal(format!("signing the activation token: {e}")))?;
        tracing::info!(secondary_id = %id, kind = set.label(), "activation token issued");
        Ok(resp)
    }
}
