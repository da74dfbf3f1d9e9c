//! The secondary side of both kinds: enable, promote, update-primary, disable, recover,
//! reindex.
//!
//! Enabling is the one destructive step: after the bundle is fetched and checked, the
//! secondary's replicated data is wiped and replaced by the primary's keyring, root key and
//! seal configuration, so it can decrypt what it receives and later unseal with the primary's
//! shares. Every check that can fail runs before the wipe. The kinds differ in who may ask
//! (a DR secondary serves no tokens, so its operations take a DR operation token; a
//! performance secondary's take its own ordinary tokens) and in what a secondary does after
//! (a DR secondary stops serving; a performance secondary keeps serving reads and its own
//! tokens and leases).

use std::time::SystemTime;

use strongroom_barrier::{BarrierError, BarrierOp};
use strongroom_replication::activation::{self, ActivationError, UnwrapTls, jwt};
use strongroom_replication::{ReplicationKind, SecondaryStatus};
use strongroom_storage::{Op, ReplCommand};
use zeroize::Zeroizing;

use super::bundle::ActivationBundle;
use super::config::{ReplConfig, ReplicationMode, SecondaryMaterial};
use super::primary::DISABLE_WARNING;
use super::{now_secs, string_param, warning};
use crate::params::bool_param;
use crate::util::lock;
use crate::{Core, CoreError, Request, Response};

const ENABLE_WARNING: &str = "Vault has successfully found secondary information; it may take a while to perform setup tasks. Vault will be unavailable until these tasks and initial sync complete.";
const PROMOTE_WARNING: &str = "This cluster is being promoted to a replication primary. Vault will be unavailable for a brief period and will resume service shortly.";
/// A heartbeat older than this means the link may have lost entries.
const CAUGHT_UP_HEARTBEAT_AGE: std::time::Duration = std::time::Duration::from_secs(3);
/// The 503 of a promotion that would lose writes not yet received.
pub(super) const CATCHING_UP: &str =
    "replication is still catching up, try again later or provide the force argument";

/// Whether a secondary with `status` holds everything its primary had logged, as of `now`:
/// streaming, at or past the primary's last WAL index from its latest heartbeat, and that
/// heartbeat recent (an older one could predate entries we never received).
pub(super) fn caught_up(status: &SecondaryStatus, now: SystemTime) -> bool {
    let fresh = status.last_heartbeat.is_some_and(|t| {
        now.duration_since(t)
            .is_ok_and(|age| age < CAUGHT_UP_HEARTBEAT_AGE)
            // A heartbeat stamped slightly in our future (clock step) is still fresh.
            || t.duration_since(now).is_ok()
    });
    status.state == "stream-wals" && status.last_remote_wal >= status.primary_last_wal && fresh
}

fn secondary_material(b: &ActivationBundle) -> SecondaryMaterial {
    SecondaryMaterial {
        secondary_id: b.secondary_id.clone(),
        primary_api_addr: b.primary_api_addr.clone(),
        primary_cluster_addrs: b.primary_cluster_addrs.clone(),
        known_primary_cluster_addrs: Vec::new(),
        ca_pem: b.ca_pem.clone(),
        client_cert_pem: b.client_cert_pem.clone(),
        client_key_pem: b.client_key_pem.clone(),
        paths_filter: None,
    }
}

impl Core {
    /// Unwraps the activation token given in `req` (`token`, `primary_api_addr`, TLS files).
    async fn fetch_activation(
        &self,
        kind: ReplicationKind,
        req: &Request,
        token: &str,
    ) -> Result<ActivationBundle, CoreError> {
        if token.starts_with(super::pubkey::TOKEN_PREFIX) {
            // Public-key mode: decrypted here, no call to the primary's API.
            return self.open_bundle(kind, token, now_secs());
        }
        let claims = jwt::decode_unverified(token).map_err(|e| {
            CoreError::InvalidRequest(format!(
                "the activation token is not valid ({e}); pass the wrap_info.token of the primary's sys/replication/dr/primary/secondary-token (or performance/primary/secondary-token)"
            ))
        })?;
        let api_addr = string_param(&req.data, "primary_api_addr")?
            .filter(|s| !s.is_empty())
            .unwrap_or(claims.addr);
        let tls = UnwrapTls {
            ca_file: string_param(&req.data, "ca_file")?.filter(|s| !s.is_empty()),
            ca_path: string_param(&req.data, "ca_path")?.filter(|s| !s.is_empty()),
            client_cert_file: string_param(&req.data, "client_cert_file")?
                .filter(|s| !s.is_empty()),
            client_key_file: string_param(&req.data, "client_key_file")?.filter(|s| !s.is_empty()),
        };
        let data = activation::fetch_wrapped_data(&api_addr, token, &tls)
            .await
            .map_err(|e| match e {
                ActivationError::Invalid(m) => CoreError::InvalidRequest(m),
                ActivationError::Internal(m) => CoreError::Internal(m),
            })?;
        ActivationBundle::from_data(serde_json::Value::Object(data))
    }

    fn require_secondary(&self, kind: ReplicationKind) -> Result<ReplConfig, CoreError> {
        self.repl(kind)
            .config()
            .filter(|c| c.mode == ReplicationMode::Secondary)
            .ok_or_else(|| {
                CoreError::InvalidRequest(match kind {
                    ReplicationKind::Dr => "Not a DR secondary.".into(),
                    ReplicationKind::Performance => "Not a performance secondary.".into(),
                })
            })
    }

    /// Authorizes an operation on a secondary of `kind`: DR operations carry a DR operation
    /// token (the door admitted them unauthenticated); performance ones passed the door's
    /// ordinary token and ACL check already.
    async fn authorize_secondary_op(
        &self,
        kind: ReplicationKind,
        req: &Request,
    ) -> Result<(), CoreError> {
        match kind {
            ReplicationKind::Dr => self.authorize_dr_op(req).await,
            ReplicationKind::Performance => Ok(()),
        }
    }

    /// Reloads what an unsealed, serving core keeps in memory (after promote or disable: the
    /// replicated mount table, policies and audit devices are now ours to serve).
    async fn resume_service(&self) -> Result<(), CoreError> {
        self.barrier.reload_keyring().await?;
        self.policies.clear();
        self.load_mounts().await?;
        self.load_audit().await?;
        self.expiration_start().await?;
        Ok(())
    }

    /// Every record under `core/cluster/local/`, decrypted (see `dr_secondary_enable`).
    async fn read_cluster_local(&self) -> Result<Vec<(String, Zeroizing<Vec<u8>>)>, CoreError> {
        const PREFIX: &str = "core/cluster/local/";
        const PAGE: usize = 256;
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.storage.scan(PREFIX, after.as_deref(), PAGE).await?;
            let done = page.len() < PAGE;
            for (key, _) in page {
                if let Some(value) = self.barrier.get(&key).await? {
                    out.push((key.clone(), Zeroizing::new(value)));
                }
                after = Some(key);
            }
            if done {
                return Ok(out);
            }
        }
    }

    /// `sys/replication/{dr,performance}/secondary/enable`: checks, then the wipe that adopts
    /// the primary's keys, then the new configuration.
    pub(super) async fn secondary_enable(
        &self,
        kind: ReplicationKind,
        req: &Request,
    ) -> Result<Response, CoreError> {
        let token = string_param(&req.data, "token")?
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| CoreError::InvalidRequest("missing activation token".into()))?;
        let set = self.repl(kind);
        let _ops = set.ops.lock().await;
        // A DR transition also ends the performance role: no performance operation may run
        // (or restart a runner) meanwhile. Locks are taken DR first, then performance.
        let _perf_ops = match kind {
            ReplicationKind::Dr => Some(self.perf.ops.lock().await),
            ReplicationKind::Performance => None,
        };
        self.check_enable_secondary(kind)?;
        let bundle = self.fetch_activation(kind, req, &token).await?;
        check_bundle_kind(&bundle, kind)?;
        if kind == ReplicationKind::Dr {
            // Nothing may apply into the keyspace the wipe is about to replace.
            self.stop_runner(ReplicationKind::Performance).await;
        }
        self.adopt_primary_keys(&bundle).await?;
        if kind == ReplicationKind::Performance {
            // A performance secondary serves from the start: built-in mounts and its own
            // lease timer (the shared data then arrives with the stream). Loaded before the
            // mode changes, while this cluster may still write its own built-ins.
            self.load_mounts().await?;
            self.load_audit().await?;
            self.expiration_start().await?;
        }
        let first_addr = bundle
            .primary_cluster_addrs
            .first()
            .cloned()
            .unwrap_or_default();
        self.commit_repl_config(
            kind,
            ReplConfig {
                mode: ReplicationMode::Secondary,
                cluster_id: bundle.cluster_id.clone(),
                primary_cluster_addr: first_addr,
                secondary: Some(secondary_material(&bundle)),
                ..ReplConfig::default()
            },
        )
        .await?;
        if kind == ReplicationKind::Dr {
            // The wipe took this cluster's performance record; the primary's (which arrives
            // with the data) is not ours to act on while we are its DR secondary.
            self.apply_repl_config(ReplicationKind::Performance, None)
                .await;
        }
        tracing::info!(secondary_id = %bundle.secondary_id, kind = set.label(), "replication enabled as secondary; data wiped");
        Ok(warning(ENABLE_WARNING))
    }

    /// Whether this cluster may become a secondary of `kind` now.
    fn check_enable_secondary(&self, kind: ReplicationKind) -> Result<(), CoreError> {
        let set = self.repl(kind);
        let label = set.label();
        match set.mode() {
            ReplicationMode::Primary => Err(CoreError::InvalidRequest(format!(
                "this cluster is a {label} primary; disable or demote it before enabling it as a secondary"
            ))),
            ReplicationMode::Secondary => Err(CoreError::InvalidRequest(format!(
                "this cluster is already a {label} secondary; use update-primary to follow another primary"
            ))),
            ReplicationMode::Disabled
                if kind == ReplicationKind::Performance && self.replication.is_dr_secondary() =>
            {
                Err(CoreError::InvalidRequest(
                    "this cluster is a DR secondary; promote it before enabling performance replication".into(),
                ))
            }
            ReplicationMode::Disabled => Ok(()),
        }
    }

    /// The point of no return: the replicated keyspace is wiped and replaced by the
    /// primary's seal configuration, root key and keyring, in one atomic step (a crash never
    /// leaves an uninitialized node behind), and the barrier reopens under them.
    async fn adopt_primary_keys(&self, bundle: &ActivationBundle) -> Result<(), CoreError> {
        let root_key = bundle.root_key()?;
        let records = bundle.stored_records()?;
        let cluster_local = self.read_cluster_local().await?;
        self.expiration_stop().await;
        let ops = records
            .into_iter()
            .map(|(key, value)| Op::Put { key, value })
            .collect();
        self.storage
            .apply_replication(ReplCommand::WipeReplicatedThen(ops))
            .await?;
        match self.barrier.unseal_with_root_key(&root_key).await {
            Ok(()) => {}
            Err(BarrierError::InvalidKey) => {
                return Err(CoreError::InvalidRequest(
                    "the activation bundle's root key does not open its keyring".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        // Our own cluster-local records (identity, cluster CA, leader advertisement, Raft
        // bookkeeping) were sealed under the old keyring: re-seal them under the new one, or
        // this cluster's nodes could no longer join, forward or find their active node.
        if !cluster_local.is_empty() {
            let ops = cluster_local
                .iter()
                .map(|(key, value)| BarrierOp::Put {
                    key: key.clone(),
                    value: value.to_vec(),
                })
                .collect();
            self.barrier.write(ops).await?;
        }
        self.policies.clear();
        self.mounts.write().await.clear();
        self.clear_audit();
        Ok(())
    }

    /// Whether the runner of `kind` has applied everything the primary reported having.
    fn caught_up(&self, kind: ReplicationKind) -> bool {
        let runner = lock(&self.repl(kind).runner);
        match runner.as_ref() {
            // No primary configured (demoted or forgotten): nothing to wait for.
            None => true,
            Some(handle) => caught_up(&handle.status(), SystemTime::now()),
        }
    }

    /// `sys/replication/dr/secondary/promote` (DR-op).
    pub(super) async fn dr_secondary_promote(&self, req: &Request) -> Result<Response, CoreError> {
        self.authorize_dr_op(req).await?;
        let force = bool_param(&req.data, "force")?.unwrap_or(false);
        let addr = string_param(&req.data, "primary_cluster_addr")?.unwrap_or_default();
        let _ops = self.replication.ops.lock().await;
        let _perf_ops = self.perf.ops.lock().await;
        let config = self.require_secondary(ReplicationKind::Dr)?;
        if !force && !self.caught_up(ReplicationKind::Dr) {
            return Err(CoreError::Unavailable(CATCHING_UP.into()));
        }
        self.stop_runner(ReplicationKind::Dr).await;
        self.storage
            .apply_replication(ReplCommand::BumpEpoch)
            .await?;
        // DR operation tokens authorize operations on a secondary only: none outlive promotion.
        self.delete_prefix(super::op_token::OP_TOKEN_PREFIX).await?;
        let material = self.new_primary_material(&config.cluster_id, &addr)?;
        self.commit_repl_config(
            ReplicationKind::Dr,
            ReplConfig {
                mode: ReplicationMode::Primary,
                cluster_id: config.cluster_id.clone(),
                primary_cluster_addr: addr,
                primary: Some(material),
                last_reindex_epoch: config.last_reindex_epoch,
                ..ReplConfig::default()
            },
        )
        .await?;
        self.resume_service().await?;
        // Whatever our primary was in performance replication, we now are (spec §2.6).
        let perf = self.read_repl_config(ReplicationKind::Performance).await?;
        self.apply_repl_config(ReplicationKind::Performance, perf)
            .await;
        tracing::info!("DR secondary promoted to primary");
        Ok(warning(PROMOTE_WARNING))
    }

    /// `sys/replication/performance/secondary/promote`: this cluster becomes the performance
    /// primary of its set. Its own tokens and leases stay; other secondaries need
    /// `update-primary`.
    pub(super) async fn perf_secondary_promote(
        &self,
        req: &Request,
    ) -> Result<Response, CoreError> {
        let kind = ReplicationKind::Performance;
        let force = bool_param(&req.data, "force")?.unwrap_or(false);
        let addr = string_param(&req.data, "primary_cluster_addr")?.unwrap_or_default();
        let _ops = self.perf.ops.lock().await;
        let config = self.require_secondary(kind)?;
        if !force && !self.caught_up(kind) {
            return Err(CoreError::Unavailable(CATCHING_UP.into()));
        }
        self.stop_runner(kind).await;
        let material = self.new_primary_material(&config.cluster_id, &addr)?;
        self.commit_repl_config(
            kind,
            ReplConfig {
                mode: ReplicationMode::Primary,
                cluster_id: config.cluster_id.clone(),
                primary_cluster_addr: addr,
                primary: Some(material),
                last_reindex_epoch: config.last_reindex_epoch,
                ..ReplConfig::default()
            },
        )
        .await?;
        tracing::info!("performance secondary promoted to primary");
        Ok(warning(PROMOTE_WARNING))
    }

    /// `sys/replication/{dr,performance}/secondary/disable` (DR: DR-op): stops replicating
    /// and serves the data it has as a standalone cluster.
    pub(super) async fn secondary_disable(
        &self,
        kind: ReplicationKind,
        req: &Request,
    ) -> Result<Response, CoreError> {
        self.authorize_secondary_op(kind, req).await?;
        let set = self.repl(kind);
        let _ops = set.ops.lock().await;
        let _perf_ops = match kind {
            ReplicationKind::Dr => Some(self.perf.ops.lock().await),
            ReplicationKind::Performance => None,
        };
        self.require_secondary(kind)?;
        self.commit_repl_config(kind, ReplConfig::default()).await?;
        if kind == ReplicationKind::Dr {
            self.resume_service().await?;
            let perf = self.read_repl_config(ReplicationKind::Performance).await?;
            self.apply_repl_config(ReplicationKind::Performance, perf)
                .await;
        }
        tracing::info!(kind = set.label(), "replication disabled on the secondary");
        Ok(warning(DISABLE_WARNING))
    }

    /// `sys/replication/{dr,performance}/secondary/update-primary` (DR: DR-op): follow
    /// another primary of the same set (no wipe), or forget the primary with `token=""`.
    /// A performance secondary may instead name the new primary's cluster addresses
    /// (`update_primary_addrs`) and keep its activation identity.
    pub(super) async fn secondary_update_primary(
        &self,
        kind: ReplicationKind,
        req: &Request,
    ) -> Result<Response, CoreError> {
        self.authorize_secondary_op(kind, req).await?;
        let addrs = crate::params::string_list_param(&req.data, "update_primary_addrs")?;
        let token = string_param(&req.data, "token")?;
        if addrs.is_some() && kind == ReplicationKind::Dr {
            return Err(CoreError::InvalidRequest(
                "update_primary_addrs is not supported for DR secondaries; pass an activation token".into(),
            ));
        }
        if let (Some(_), Some(t)) = (&addrs, &token)
            && !t.is_empty()
        {
            return Err(CoreError::InvalidRequest(
                "token and update_primary_addrs are mutually exclusive".into(),
            ));
        }
        let set = self.repl(kind);
        if let Some(addrs) = addrs.filter(|a| !a.is_empty()) {
            return self.follow_primary_addrs(kind, &addrs).await;
        }
        let Some(token) = token else {
            return Err(CoreError::InvalidRequest(
                "token is required (an activation token from the new primary, or \"\" to forget the primary)".into(),
            ));
        };
        let token = token.trim().to_owned();
        let _ops = set.ops.lock().await;
        let mut config = self.require_secondary(kind)?;
        if token.is_empty() {
            config.secondary = None;
            self.commit_repl_config(kind, config).await?;
            tracing::info!(
                kind = set.label(),
                "secondary forgot its primary; replication idle"
            );
            return Ok(Response::no_content());
        }
        let bundle = self.fetch_activation(kind, req, &token).await?;
        if bundle.cluster_id != config.cluster_id {
            return Err(CoreError::InvalidRequest(format!(
                "the activation token belongs to replication set {} but this cluster is in {}; use secondary/enable (which wipes) to join another set",
                bundle.cluster_id, config.cluster_id
            )));
        }
        config.primary = None;
        config.primary_cluster_addr = bundle
            .primary_cluster_addrs
            .first()
            .cloned()
            .unwrap_or_default();
        config.secondary = Some(secondary_material(&bundle));
        self.commit_repl_config(kind, config).await?;
        tracing::info!(secondary_id = %bundle.secondary_id, kind = set.label(), "secondary follows a new primary");
        Ok(Response::no_content())
    }

    /// `update-primary update_primary_addrs=...` (performance): the same activation
    /// identity, dialing the primary at these cluster addresses (no wipe; a merkle diff
    /// only if the new primary does not hold our position).
    async fn follow_primary_addrs(
        &self,
        kind: ReplicationKind,
        addrs: &[String],
    ) -> Result<Response, CoreError> {
        let mut normalized = Vec::with_capacity(addrs.len());
        for a in addrs {
            normalized.push(normalize_cluster_addr(a).ok_or_else(|| {
                CoreError::InvalidRequest(format!(
                    "update_primary_addrs: {a:?} is not a cluster address; give host:port or https://host:port"
                ))
            })?);
        }
        let set = self.repl(kind);
        let _ops = set.ops.lock().await;
        let mut config = self.require_secondary(kind)?;
        let Some(s) = config.secondary.as_mut() else {
            return Err(CoreError::InvalidRequest(
                "this secondary holds no activation identity to reconnect with; pass an activation token from the primary".into(),
            ));
        };
        s.primary_cluster_addrs = normalized;
        s.known_primary_cluster_addrs.clear();
        self.commit_repl_config(kind, config).await?;
        tracing::info!(
            kind = set.label(),
            "secondary follows the primary at new addresses"
        );
        Ok(Response::no_content())
    }

    /// `recover`: restarts replication from the stored position.
    pub(super) async fn dr_recover(&self) -> Result<Response, CoreError> {
        let _ops = self.replication.ops.lock().await;
        let config = self.replication.config();
        self.apply_repl_config(ReplicationKind::Dr, config).await;
        Ok(warning("replication recovery started"))
    }

    /// `reindex`: rebuilds the merkle index from storage.
    pub(super) async fn dr_reindex(&self) -> Result<Response, CoreError> {
        let _ops = self.replication.ops.lock().await;
        self.storage.rebuild_merkle().await?;
        if let Some(mut config) = self.replication.config() {
            config.last_reindex_epoch = now_secs();
            self.write_repl_config(ReplicationKind::Dr, &config).await?;
            *lock(&self.replication.config) = Some(config);
        }
        Ok(warning("reindex complete"))
    }
}

/// `https://host:port` for an address given with or without the scheme; `None` when it
/// names no port (or another scheme).
fn normalize_cluster_addr(addr: &str) -> Option<String> {
    let addr = addr.trim().trim_end_matches('/');
    let rest = addr.strip_prefix("https://").unwrap_or(addr);
    let (host, port) = rest.rsplit_once(':')?;
    let port_ok = !port.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0);
    if host.is_empty() || host.contains('/') || rest.contains("://") || !port_ok {
        return None;
    }
    Some(format!("https://{rest}"))
}

/// Refuses an activation token minted for the other kind of replication.
fn check_bundle_kind(bundle: &ActivationBundle, kind: ReplicationKind) -> Result<(), CoreError> {
    let bundle_kind = if bundle.kind.is_empty() {
        ReplicationKind::Dr.as_str()
    } else {
        bundle.kind.as_str()
    };
    if bundle_kind == kind.as_str() {
        return Ok(());
    }
    Err(CoreError::InvalidRequest(format!(
        "the activation token was issued for {bundle_kind} replication; generate one with sys/replication/{}/primary/secondary-token",
        kind.as_str()
    )))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use strongroom_replication::SecondaryStatus;

    use super::caught_up;

    fn streaming(last_remote_wal: u64, primary_last_wal: u64, hb: SystemTime) -> SecondaryStatus {
        SecondaryStatus {
            state: "stream-wals",
            connection_state: "ready",
            last_remote_wal,
            primary_last_wal,
            last_heartbeat: Some(hb),
            ..SecondaryStatus::default()
        }
    }

    #[test]
    fn update_primary_addrs_must_name_a_port() {
        // Why: an address without a port would leave the secondary dialing nothing, silently.
        use super::normalize_cluster_addr as n;

        assert_eq!(n("10.0.0.1:8201").as_deref(), Some("https://10.0.0.1:8201"));
        assert_eq!(
            n("https://pri-0:8201/").as_deref(),
            Some("https://pri-0:8201")
        );
        assert_eq!(n("[::1]:8201").as_deref(), Some("https://[::1]:8201"));
        for bad in ["pri-0", "http://pri-0:8201", "pri-0:0", ":8201", "pri-0:x"] {
            assert_eq!(n(bad), None, "{bad}");
        }
    }

    #[test]
    fn promote_waits_for_streaming_position_and_a_fresh_heartbeat() {
        // Why: an unforced promote must never drop writes the primary already reported.
        let now = SystemTime::now();
        let recent = now - Duration::from_millis(500);
        let stale = now - Duration::from_secs(4);

        let verdicts = [
            caught_up(&streaming(10, 10, recent), now),
            caught_up(&streaming(11, 10, recent), now),
            caught_up(&streaming(9, 10, recent), now),
            caught_up(&streaming(10, 10, stale), now),
            caught_up(
                &SecondaryStatus {
                    state: "merkle-sync",
                    ..streaming(10, 10, recent)
                },
                now,
            ),
            caught_up(
                &SecondaryStatus {
                    last_heartbeat: None,
                    ..streaming(10, 10, recent)
                },
                now,
            ),
        ];

        assert_eq!(verdicts, [true, true, false, false, false, false]);
    }
}
